// SPDX-License-Identifier: GPL-2.0
//! The series manifest (`series/manifest.toml`): base, cover letter and patches.
//!
//! Each patch carries new files whole (copied from the repository at their kernel path) and
//! unified diffs for files that exist upstream, applied in the order listed.

use crate::util::{Context, Result};
use crate::{bail, err};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub base: Base,
    pub cover: Cover,
    /// Trailers every patch carries (e.g. `Assisted-by:`); never `Signed-off-by:`.
    #[serde(default)]
    pub trailers: Vec<String>,
    #[serde(default, rename = "patch")]
    pub patches: Vec<Patch>,
}

/// The Debian package the pristine base comes from, pinned.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Base {
    pub package: String,
    pub version: String,
    /// The apt suite that carries it.
    pub suite: String,
    /// Kernel version the unpacked Makefile must report.
    pub kernel: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cover {
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    pub subject: String,
    pub body: String,
    /// New files, whole, at their kernel path (relative to the repository root).
    #[serde(default)]
    pub files: Vec<String>,
    /// Unified diffs (paths relative to the repository root) against the tree as left by the
    /// previous patches.
    #[serde(default)]
    pub diffs: Vec<String>,
    /// Trailers of this patch alone (`Fixes:`, `Cc: stable@vger.kernel.org`), before the
    /// series' own.
    #[serde(default)]
    pub trailers: Vec<String>,
}

impl Patch {
    /// Whether the patch fixes an upstream commit (it has a `Fixes:` trailer).
    pub fn is_fix(&self) -> bool {
        self.trailers.iter().any(|t| t.starts_with("Fixes: "))
    }
}

/// Top-level entries of the repository that mirror the kernel tree.
pub const KERNEL_DIRS: &[&str] = &[
    "Documentation",
    "arch",
    "drivers",
    "fs",
    "include",
    "init",
    "kernel",
    "lib",
    "mm",
    "rust",
    "samples",
    "scripts",
    "tools",
];

/// Root-level kernel files that may be touched through a diff (`MAINTAINERS.<topic>.diff`).
pub const KERNEL_ROOT_FILES: &[&str] = &["MAINTAINERS", "Makefile"];

impl Manifest {
    pub fn parse(text: &str) -> Result<Self> {
        let m: Manifest = toml::from_str(text).map_err(|e| err!("series manifest: {e}"))?;
        m.check_text()?;
        Ok(m)
    }

    pub fn load(repo: &Path) -> Result<Self> {
        let p = repo.join("series/manifest.toml");
        let text = std::fs::read_to_string(&p).context(|| format!("read {}", p.display()))?;
        Self::parse(&text)
    }

    /// Checks that need only the manifest's text.
    fn check_text(&self) -> Result<()> {
        if self.cover.subject.trim().is_empty() {
            bail!("series manifest: the cover letter has no subject");
        }
        let mut seen = BTreeSet::new();
        for (i, p) in self.patches.iter().enumerate() {
            let n = i + 1;
            let s = p.subject.trim();
            if s.is_empty() || s != p.subject || s.contains('\n') {
                bail!("patch {n}: subject must be one trimmed line");
            }
            if !s.contains(": ") {
                bail!("patch {n}: subject `{s}` lacks a subsystem prefix (`rust: mm: ...`)");
            }
            if s.len() > 75 {
                bail!("patch {n}: subject is {} characters (at most 75)", s.len());
            }
            if p.body.trim().is_empty() {
                bail!("patch {n} ({s}): the changelog is empty; say why");
            }
            if p.files.is_empty() && p.diffs.is_empty() {
                bail!("patch {n} ({s}): carries no file and no diff");
            }
            for f in p.files.iter().chain(&p.diffs) {
                if f.starts_with('/') || f.split('/').any(|c| c == ".." || c.is_empty()) {
                    bail!("patch {n}: bad path `{f}`");
                }
                if !seen.insert(f.clone()) {
                    bail!("patch {n}: `{f}` is listed twice in the series");
                }
            }
            for d in &p.diffs {
                if !d.ends_with(".diff") {
                    bail!("patch {n}: diff `{d}` must end in .diff");
                }
            }
        }
        let all_trailers = self
            .trailers
            .iter()
            .chain(self.patches.iter().flat_map(|p| &p.trailers));
        for tr in all_trailers {
            if !tr.contains(": ") || tr.contains('\n') {
                bail!("series manifest: trailer `{tr}` is not one `Key: value` line");
            }
        }
        // `Fixes: <12 or more hex digits> ("<subject>")`, as submitting-patches.rst asks.
        for tr in self.patches.iter().flat_map(|p| &p.trailers) {
            if let Some(rest) = tr.strip_prefix("Fixes: ") {
                let (id, subject) = rest.split_once(' ').unwrap_or((rest, ""));
                let hex = id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit());
                if !hex || !subject.starts_with("(\"") || !subject.ends_with("\")") {
                    bail!(
                        "series manifest: `{tr}` is not `Fixes: <12+ hex digits> (\"<subject>\")`"
                    );
                }
            }
        }
        // Fixes go first, so that they can be sent (and backported) on their own.
        if let Some(i) = self.patches.iter().position(|p| !p.is_fix()) {
            if let Some(j) = self.patches[i..].iter().position(Patch::is_fix) {
                bail!(
                    "patch {} has a Fixes: trailer but comes after patch {}, which has none: \
                     fixes go first",
                    i + j + 1,
                    i + 1
                );
            }
        }
        let trailers = self
            .trailers
            .iter()
            .chain(self.patches.iter().flat_map(|p| &p.trailers))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        for body in std::iter::once(&self.cover.body)
            .chain(self.patches.iter().map(|p| &p.body))
            .chain(std::iter::once(&trailers))
        {
            for line in body.lines() {
                let l = line.trim_start().to_ascii_lowercase();
                if l.starts_with("signed-off-by:") || l.starts_with("from:") {
                    bail!(
                        "series manifest names a person (`{}`): identities come from git at emit time",
                        line.trim()
                    );
                }
            }
        }
        Ok(())
    }

    /// Checks against the repository: every listed file exists, and every file at a kernel path
    /// belongs to a patch (nothing is carried that the series does not send).
    pub fn check_repo(&self, repo: &Path, tracked: &[String]) -> Result<()> {
        let listed: BTreeSet<&str> = self
            .patches
            .iter()
            .flat_map(|p| p.files.iter().chain(&p.diffs))
            .map(String::as_str)
            .collect();
        for f in &listed {
            if !repo.join(f).is_file() {
                bail!("series manifest lists `{f}`, which is not in the repository");
            }
        }
        for f in tracked {
            if is_kernel_path(f) && !listed.contains(f.as_str()) {
                bail!("`{f}` is at a kernel path but no patch in series/manifest.toml carries it");
            }
        }
        Ok(())
    }
}

/// Whether a repository path is part of what the series sends (as opposed to tooling).
pub fn is_kernel_path(p: &str) -> bool {
    let first = p.split('/').next().unwrap_or("");
    (p.contains('/') && KERNEL_DIRS.contains(&first))
        || (!p.contains('/')
            && p.ends_with(".diff")
            && KERNEL_ROOT_FILES
                .iter()
                .any(|f| p.starts_with(&format!("{f}."))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[base]
package = "linux-source-7.3"
version = "7.3.4-1~bpo13+1"
suite = "trixie-backports"
kernel = "7.3.4"
[cover]
subject = "Rust page-table walker"
body = "Why."
"#;

    #[test]
    fn parses_empty_series() {
        let m = Manifest::parse(BASE).unwrap();
        assert!(m.patches.is_empty());
        assert_eq!(m.base.kernel, "7.3.4");
    }

    #[test]
    fn parses_patches_in_order() {
        let t = format!(
            "{BASE}\n[[patch]]\nsubject = \"rust: mm: add walker\"\nbody = \"b\"\nfiles = [\"rust/kernel/mm/pagewalk.rs\"]\n\
             [[patch]]\nsubject = \"fs/proc/task_mmu: x\"\nbody = \"c\"\ndiffs = [\"fs/proc/task_mmu.c.diff\"]\n"
        );
        let m = Manifest::parse(&t).unwrap();
        assert_eq!(m.patches.len(), 2);
        assert_eq!(m.patches[0].files, ["rust/kernel/mm/pagewalk.rs"]);
        assert_eq!(m.patches[1].diffs, ["fs/proc/task_mmu.c.diff"]);
    }

    fn bad(extra: &str) -> String {
        Manifest::parse(&format!("{BASE}\n{extra}")).unwrap_err().0
    }

    #[test]
    fn rejects_bad_patches() {
        assert!(
            bad("[[patch]]\nsubject = \"no prefix\"\nbody = \"b\"\nfiles = [\"fs/a.c\"]")
                .contains("prefix")
        );
        assert!(
            bad("[[patch]]\nsubject = \"a: b\"\nbody = \" \"\nfiles = [\"fs/a.c\"]")
                .contains("changelog")
        );
        assert!(bad("[[patch]]\nsubject = \"a: b\"\nbody = \"x\"").contains("no file"));
        assert!(
            bad("[[patch]]\nsubject = \"a: b\"\nbody = \"x\"\nfiles = [\"../etc/passwd\"]")
                .contains("bad path")
        );
        assert!(
            bad("[[patch]]\nsubject = \"a: b\"\nbody = \"x\"\ndiffs = [\"fs/a.c.patch\"]")
                .contains(".diff")
        );
        assert!(bad(
            "[[patch]]\nsubject = \"a: b\"\nbody = \"x\"\nfiles = [\"fs/a.c\", \"fs/a.c\"]"
        )
        .contains("twice"));
        let long = "a: ".to_string() + &"x".repeat(80);
        assert!(bad(&format!(
            "[[patch]]\nsubject = \"{long}\"\nbody = \"x\"\nfiles = [\"fs/a.c\"]"
        ))
        .contains("75"));
        assert!(bad("[[patch]]\nsubject = \"a: b\"\nbody = \"x\\nSigned-off-by: A <a@b>\"\nfiles = [\"fs/a.c\"]").contains("names a person"));
        assert!(bad(
            "[[patch]]\nsubject = \"a: b\"\nbody = \"x\"\nfiles = [\"fs/a.c\"]\nbogus = 1"
        )
        .contains("unknown field"));
    }

    #[test]
    fn trailers() {
        let with = |tr: &str| BASE.replace("[base]", &format!("trailers = [\"{tr}\"]\n[base]"));
        let e = Manifest::parse(&with("Signed-off-by: A <a@b>")).unwrap_err();
        assert!(e.0.contains("names a person"), "{e}");
        let e = Manifest::parse(&with("Assisted-by LLM")).unwrap_err();
        assert!(e.0.contains("Key: value"), "{e}");
        let m = Manifest::parse(&with("Assisted-by: LLM")).unwrap();
        assert_eq!(m.trailers, ["Assisted-by: LLM"]);
    }

    #[test]
    fn fixes_trailers_and_order() {
        let patch = |s: &str, tr: &str| {
            format!("[[patch]]\nsubject = \"{s}\"\nbody = \"b\"\nfiles = [\"fs/{}.c\"]\ntrailers = [{tr}]\n", s.len())
        };
        let fix = "\"Fixes: 52526ca7fdb9 (\\\"x\\\")\", \"Cc: stable@vger.kernel.org\"";
        let m = Manifest::parse(&format!(
            "{BASE}\n{}{}",
            patch("a: fix", fix),
            patch("b: feature", "")
        ))
        .unwrap();
        assert!(m.patches[0].is_fix() && !m.patches[1].is_fix());
        assert_eq!(m.patches[0].trailers[1], "Cc: stable@vger.kernel.org");
        let e = Manifest::parse(&format!(
            "{BASE}\n{}{}",
            patch("b: feature", ""),
            patch("a: fix", fix)
        ))
        .unwrap_err();
        assert!(e.0.contains("fixes go first"), "{e}");
        let short = "\"Fixes: 52526ca7 (\\\"x\\\")\"";
        let e = Manifest::parse(&format!("{BASE}\n{}", patch("a: fix", short))).unwrap_err();
        assert!(e.0.contains("12+ hex digits"), "{e}");
        let e = Manifest::parse(&format!(
            "{BASE}\n{}",
            patch("a: fix", "\"Signed-off-by: A <a@b>\"")
        ))
        .unwrap_err();
        assert!(e.0.contains("names a person"), "{e}");
    }

    /// The repository's own manifest passes the text checks (before any stage needs the tree).
    #[test]
    fn repository_manifest_parses() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let m = Manifest::load(&repo).unwrap();
        assert!(m.patches.first().is_some_and(Patch::is_fix));
    }

    #[test]
    fn kernel_paths() {
        assert!(is_kernel_path("rust/kernel/mm/pagewalk.rs"));
        assert!(is_kernel_path("fs/proc/task_mmu.c.diff"));
        assert!(is_kernel_path("MAINTAINERS.diff"));
        assert!(is_kernel_path("MAINTAINERS.pagewalk.diff"));
        assert!(!is_kernel_path("MAINTAINERS"));
        assert!(!is_kernel_path("Cargo.toml"));
        assert!(!is_kernel_path("tooling/xtask/src/main.rs"));
        assert!(!is_kernel_path("README.md"));
        assert!(!is_kernel_path("series/manifest.toml"));
    }
}
