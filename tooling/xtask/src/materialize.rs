// SPDX-License-Identifier: GPL-2.0
//! Base + series as a git branch: one commit per manifest patch, built with a private index
//! (so the work tree is only touched where the result differs, keeping mtimes and incremental
//! builds), then checked out.

use crate::bail;
use crate::ctx::Ctx;
use crate::manifest::Manifest;
use crate::setup::{git, BASE_TAG};
use crate::util::{output, run, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// The branch that holds the materialized series.
pub const BRANCH: &str = "series";

/// Files tracked by the repository's git (what the manifest may refer to).
pub fn tracked_files(ctx: &Ctx) -> Result<Vec<String>> {
    let out = output(Command::new("git").current_dir(&ctx.repo).args([
        "ls-files",
        "--cached",
        "--others",
        "--exclude-standard",
    ]))?;
    Ok(out.lines().map(str::to_string).collect())
}

/// Materializes base + series; returns the head commit.
pub fn materialize(ctx: &Ctx, m: &Manifest) -> Result<String> {
    m.check_repo(&ctx.repo, &tracked_files(ctx)?)?;
    let tree = ctx.tree();
    let index = tree.join(".git/pmrs-materialize.index");
    let _ = std::fs::remove_file(&index);
    let g = || {
        let mut c = git(&tree);
        c.env("GIT_INDEX_FILE", &index);
        c
    };
    run(g().args(["read-tree", BASE_TAG]))?;
    let mut head = output(git(&tree).args(["rev-parse", &format!("{BASE_TAG}^{{commit}}")]))?
        .trim()
        .to_string();
    for (i, p) in m.patches.iter().enumerate() {
        let n = i + 1;
        for d in &p.diffs {
            let path = ctx.repo.join(d);
            let st = g()
                .args(["apply", "--cached", "--whitespace=nowarn"])
                .arg(&path)
                .status()?;
            if !st.success() {
                bail!("patch {n} ({}): {d} does not apply", p.subject);
            }
        }
        for f in &p.files {
            let path = ctx.repo.join(f);
            let sha = output(git(&tree).args(["hash-object", "-w"]).arg(&path))?;
            let exec = std::fs::metadata(&path)?.permissions().mode() & 0o111 != 0;
            let mode = if exec { "100755" } else { "100644" };
            run(g().args([
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("{mode},{},{f}", sha.trim()),
            ]))
            .context(|| format!("patch {n}: adding {f}"))?;
        }
        let t = output(g().arg("write-tree"))?;
        let mut msg = format!("{}\n\n{}\n", p.subject, p.body.trim());
        if !m.trailers.is_empty() {
            msg.push('\n');
            for tr in &m.trailers {
                msg.push_str(tr);
                msg.push('\n');
            }
        }
        head = output(
            git(&tree)
                .args(["commit-tree", t.trim(), "-p", &head, "-m"])
                .arg(&msg),
        )?
        .trim()
        .to_string();
    }
    let _ = std::fs::remove_file(&index);
    run(git(&tree).args(["update-ref", &format!("refs/heads/{BRANCH}"), &head]))?;
    // Moves the work tree from whatever it held to the new head; only differing files are
    // rewritten. -f discards edits made by hand in the cache tree.
    run(git(&tree).args(["checkout", "-q", "-f", BRANCH]))?;
    run(git(&tree).args(["clean", "-q", "-f", "-d"]))?;
    println!(
        "materialized {} patch(es) on {} in {} (head {})",
        m.patches.len(),
        BASE_TAG,
        tree.display(),
        &head[..12]
    );
    Ok(head)
}
