// SPDX-License-Identifier: GPL-2.0
//! Checks on what the series adds: compiler and clippy warnings in its files (the vm build runs
//! with CLIPPY=1), `make rustfmtcheck`, and `make rustdoc` warnings.

use crate::ctx::Ctx;
use crate::manifest::Manifest;
use crate::util::Result;
use std::path::Path;

/// Kernel paths the series creates or changes: new files, and the targets of its diffs.
pub fn series_paths(repo: &Path, m: &Manifest) -> Vec<String> {
    let mut v = Vec::new();
    for p in &m.patches {
        v.extend(p.files.iter().cloned());
        for d in &p.diffs {
            let text = std::fs::read_to_string(repo.join(d)).unwrap_or_default();
            v.extend(diff_targets(&text));
        }
    }
    v.sort();
    v.dedup();
    v
}

/// The `+++ b/<path>` targets of a unified diff.
pub fn diff_targets(diff: &str) -> Vec<String> {
    diff.lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .map(|p| p.split('\t').next().unwrap_or(p).trim().to_string())
        .collect()
}

/// Objects to delete so that the next build recompiles (and re-reports warnings for) the
/// series' compiled files: a C file's object, the crate object of a Rust file.
pub fn objects_for(paths: &[String]) -> Vec<String> {
    let mut v: Vec<String> = paths
        .iter()
        .filter_map(|p| {
            if p.starts_with("rust/kernel/") && p.ends_with(".rs") {
                Some("rust/kernel.o".to_string())
            } else if p.starts_with("rust/helpers/") {
                Some("rust/helpers/helpers.o".to_string())
            } else if p == "rust/bindings/bindings_helper.h" {
                Some("rust/bindings.o".to_string())
            } else {
                p.strip_suffix(".c")
                    .or_else(|| p.strip_suffix(".rs"))
                    .map(|stem| format!("{stem}.o"))
            }
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Warning and error lines of a build log that point into `paths`, with the message they
/// belong to (rustc prints the message first, then `--> file:line`; C compilers print
/// `file:line:col: warning: message` on one line).
pub fn findings(log: &str, paths: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut last_msg: Option<&str> = None;
    let hits = |loc: &str| {
        paths
            .iter()
            .any(|p| loc.contains(&format!("/{p}:")) || loc.starts_with(&format!("{p}:")))
    };
    for line in log.lines() {
        let t = line.trim_start();
        if t.starts_with("warning:") || t.starts_with("error:") || t.starts_with("error[") {
            last_msg = Some(t);
            continue;
        }
        if let Some(loc) = t.strip_prefix("--> ") {
            if let Some(msg) = last_msg.take() {
                if hits(loc) {
                    out.push(format!("{loc}: {msg}"));
                }
            }
            continue;
        }
        if (t.contains(": warning: ") || t.contains(": error: ")) && hits(t) {
            out.push(t.to_string());
        }
    }
    out
}

/// Runs a make target for `variant`, returning (success, combined output).
pub fn make_target(ctx: &Ctx, variant: &str, target: &str) -> Result<(bool, String)> {
    let out = crate::kbuild::make(ctx, variant).arg(target).output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_of_a_diff() {
        let d = "--- a/fs/proc/task_mmu.c\n+++ b/fs/proc/task_mmu.c\n@@ -1 +1 @@\n-a\n+b\n\
                 --- a/fs/proc/Makefile\t2026-01-01\n+++ b/fs/proc/Makefile\t2026-01-01\n";
        assert_eq!(diff_targets(d), ["fs/proc/task_mmu.c", "fs/proc/Makefile"]);
    }

    #[test]
    fn objects() {
        let p: Vec<String> = [
            "rust/kernel/mm/pagewalk.rs",
            "rust/kernel/mm.rs",
            "rust/helpers/pagewalk.c",
            "mm/pagewalk.c",
            "fs/proc/pagemap_scan.rs",
            "include/linux/pagewalk.h",
            "rust/kernel/Kconfig.test",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            objects_for(&p),
            [
                "fs/proc/pagemap_scan.o",
                "mm/pagewalk.o",
                "rust/helpers/helpers.o",
                "rust/kernel.o"
            ]
        );
    }

    #[test]
    fn finds_rust_and_c_warnings_in_series_files_only() {
        let log = "warning: unused variable: `x`\n   --> /root/.cache/pmrs/tree/rust/kernel/mm/pagewalk.rs:10:9\n\
                   warning: unused import\n   --> /root/.cache/pmrs/tree/rust/kernel/sync.rs:3:5\n\
                   error[E0308]: mismatched types\n  --> ../rust/kernel/mm/pgtable.rs:5:1\n\
                   /root/.cache/pmrs/tree/mm/pagewalk.c:12:3: warning: unused variable 'y' [-Wunused-variable]\n\
                   /root/.cache/pmrs/tree/mm/gup.c:1:1: warning: something\n";
        let paths: Vec<String> = [
            "rust/kernel/mm/pagewalk.rs",
            "rust/kernel/mm/pgtable.rs",
            "mm/pagewalk.c",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let f = findings(log, &paths);
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f[0].contains("pagewalk.rs:10:9") && f[0].contains("unused variable"));
        assert!(f[1].contains("E0308"));
        assert!(f[2].contains("mm/pagewalk.c:12:3"));
    }
}
