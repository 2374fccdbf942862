// SPDX-License-Identifier: GPL-2.0
//! The series as a git branch, both ways.
//!
//! `materialize` writes base + one commit per manifest patch to branch `series` of the cache
//! tree, built with a private index (so the work tree is only touched where the result differs,
//! keeping mtimes and incremental builds), then checks it out. `export` is its inverse: the
//! commits of `series`, edited the kernel way (`git rebase -i`, `commit --fixup`, `git am`),
//! are written back into the repository: every new file whole at its path in its final version
//! (what the last patch leaves; a patch that adds a file later patches change carries that
//! version with their diffs taken back), every diff regenerated, subjects and changelogs into the manifest. Materializing what was exported
//! gives the same commits (trees and messages); exporting what was materialized changes
//! nothing.
//!
//! Nothing here throws work away: materialize (and the per-patch builds, through
//! [`guard_tree`]) refuse to run over uncommitted changes in the tree, over a rebase in
//! progress, and over commits on `series` that the repository does not hold.

use crate::ctx::Ctx;
use crate::manifest::Manifest;
use crate::setup::{git, BASE_TAG};
use crate::util::{output, run, Context, Result};
use crate::{bail, err};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The branch that holds the materialized series.
pub const BRANCH: &str = "series";

/// Where `series` stood after the last materialize or export: commits past it on `series`
/// are work the repository does not have yet.
pub const SYNCED_REF: &str = "refs/pmrs/synced";

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

/// The commits of branch `series` after the base, oldest first: one per patch.
pub fn series_commits(tree: &Path) -> Result<Vec<String>> {
    commits_of(tree, BRANCH)
}

/// The commits from the base to `reference`, oldest first.
fn commits_of(tree: &Path, reference: &str) -> Result<Vec<String>> {
    Ok(output(git(tree).args([
        "rev-list",
        "--reverse",
        "--first-parent",
        &format!("{BASE_TAG}..{reference}"),
    ]))?
    .lines()
    .map(str::to_string)
    .collect())
}

/// Which subject or changelog export keeps: the branch's, the repository's (edited there since
/// the branch and the repository last agreed, `synced`, while the branch kept it), or neither
/// (both changed it, differently).
fn pick_text<'t>(branch: &'t str, repo: &'t str, synced: Option<&str>) -> Option<&'t str> {
    if branch == repo {
        return Some(branch);
    }
    match synced {
        // The repository's edit is newer than the branch's copy: keep it.
        Some(s) if s == branch => Some(repo),
        // Only the branch changed it.
        Some(s) if s == repo => Some(branch),
        // Both changed it.
        Some(_) => None,
        None => Some(branch),
    }
}

/// The commit message materialize gives patch `p`.
fn message(m: &Manifest, p: &crate::manifest::Patch) -> String {
    let mut msg = format!("{}\n\n{}\n", p.subject, p.body.trim());
    if !p.trailers.is_empty() || !m.trailers.is_empty() {
        msg.push('\n');
        for tr in p.trailers.iter().chain(&m.trailers) {
            msg.push_str(tr);
            msg.push('\n');
        }
    }
    msg
}

/// Writes base + series as commits (no checkout, no ref moved); returns the head commit.
fn commit_series(ctx: &Ctx, m: &Manifest, tree: &Path) -> Result<String> {
    m.check_repo(&ctx.repo, &tracked_files(ctx)?)?;
    let index = tree.join(".git/pmrs-materialize.index");
    let _ = std::fs::remove_file(&index);
    let g = || {
        let mut c = git(tree);
        c.env("GIT_INDEX_FILE", &index);
        c
    };
    run(g().args(["read-tree", BASE_TAG]))?;
    let added = added_versions(ctx, m, tree)?;
    let mut head = rev(tree, &format!("{BASE_TAG}^{{commit}}"))?.unwrap_or_default();
    for (i, p) in m.patches.iter().enumerate() {
        let n = m.label(i);
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
            let sha = match added.get(f) {
                Some(sha) => sha.clone(),
                None => output(git(tree).args(["hash-object", "-w"]).arg(&path))?,
            };
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
        head = output(
            git(tree)
                .args(["commit-tree", t.trim(), "-p", &head, "-m"])
                .arg(message(m, p)),
        )?
        .trim()
        .to_string();
    }
    let _ = std::fs::remove_file(&index);
    Ok(head)
}

/// The version of a new file that the patch adding it carries, for each new file that later
/// patches change: the repository holds the final version (what the last patch leaves) at the
/// file's path, so the later patches' diffs of it are taken back from it, the last one first.
/// Blob ids, by path.
fn added_versions(
    ctx: &Ctx,
    m: &Manifest,
    tree: &Path,
) -> Result<std::collections::HashMap<String, String>> {
    let index = tree.join(".git/pmrs-added.index");
    let mut out = std::collections::HashMap::new();
    for (i, p) in m.patches.iter().enumerate() {
        for f in &p.files {
            let mut later = Vec::new();
            for d in m.patches[i + 1..].iter().flat_map(|q| &q.diffs) {
                let text =
                    std::fs::read_to_string(ctx.repo.join(d)).context(|| format!("read {d}"))?;
                if diff_targets(&text).iter().any(|t| t == f) {
                    later.push(d);
                }
            }
            if later.is_empty() {
                continue;
            }
            let _ = std::fs::remove_file(&index);
            let g = || {
                let mut c = git(tree);
                c.env("GIT_INDEX_FILE", &index);
                c
            };
            let sha = output(git(tree).args(["hash-object", "-w"]).arg(ctx.repo.join(f)))?;
            run(g().args([
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("100644,{},{f}", sha.trim()),
            ]))?;
            for d in later.iter().rev() {
                let st = g()
                    .args(["apply", "--cached", "-R", "--whitespace=nowarn"])
                    .arg(ctx.repo.join(d))
                    .status()?;
                if !st.success() {
                    bail!(
                        "{d} does not take back from {f}: the repository must hold the final \
                         version of {f} (the one the last patch that changes it leaves)"
                    );
                }
            }
            let staged = output(g().args(["ls-files", "-s", "--", f]))?;
            let Some(blob) = staged.split_whitespace().nth(1) else {
                bail!("{f} vanished while taking back the diffs of later patches");
            };
            out.insert(f.clone(), blob.to_string());
        }
    }
    let _ = std::fs::remove_file(&index);
    Ok(out)
}

/// The commit `r` names in `tree`, if any.
fn rev(tree: &Path, r: &str) -> Result<Option<String>> {
    let out = git(tree)
        .args(["rev-parse", "--verify", "--quiet", r])
        .output()?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
}

/// Tree and message of each commit of `BASE_TAG..head`: what makes two series the same.
fn series_content(tree: &Path, head: &str) -> Result<String> {
    series_log(tree, head, "%T%n%B%x00")
}

/// The trees of the commits from the base to `head`, without their messages.
fn series_trees(tree: &Path, head: &str) -> Result<String> {
    series_log(tree, head, "%T")
}

/// `git log` of `BASE_TAG..head`, oldest first, each commit in `format`.
fn series_log(tree: &Path, head: &str, format: &str) -> Result<String> {
    output(git(tree).args([
        "log",
        "--reverse",
        &format!("--format={format}"),
        &format!("{BASE_TAG}..{head}"),
    ]))
}

/// Refuses to go on when the cache tree holds work the repository does not: uncommitted
/// changes (tracked or untracked), a rebase, merge or am in progress, or commits on `series`
/// past [`SYNCED_REF`] (unless `new_head`, the series the repository now gives, has the same
/// content, i.e. they were exported). Says how to keep the work or drop it.
pub fn guard_tree(tree: &Path, new_head: Option<&str>) -> Result<()> {
    let t = tree.display();
    for d in [
        "rebase-merge",
        "rebase-apply",
        "MERGE_HEAD",
        "CHERRY_PICK_HEAD",
    ] {
        if tree.join(".git").join(d).exists() {
            bail!(
                "{t}: a git operation is in progress (.git/{d}): finish it (git rebase --continue, \
                 git am --continue, ...) and run `cargo xtask export`, or abort it"
            );
        }
    }
    let st = output(git(tree).args(["status", "--porcelain", "--untracked-files=all"]))?;
    if !st.trim().is_empty() {
        let first: Vec<&str> = st.lines().take(10).collect();
        bail!(
            "{t} has uncommitted changes, which this command would discard:\n  {}\n\
             keep them: commit them on branch {BRANCH} (git commit, or git commit --fixup=<patch> \
             and git rebase -i --autosquash {BASE_TAG}), then `cargo xtask export`;\n\
             drop them: git -C {t} checkout -f {BRANCH} && git -C {t} clean -fd",
            first.join("\n  ")
        );
    }
    let (Some(cur), Some(synced)) = (rev(tree, BRANCH)?, rev(tree, SYNCED_REF)?) else {
        return Ok(());
    };
    if cur == synced {
        return Ok(());
    }
    if let Some(new) = new_head {
        if series_content(tree, &cur)? == series_content(tree, new)? {
            return Ok(());
        }
    }
    bail!(
        "branch {BRANCH} of {t} has commits the repository does not hold (the last materialize \
         or export left it at {}):\n\
         keep them: `cargo xtask export` writes them into the repository;\n\
         drop them: git -C {t} checkout -f {BRANCH} && git -C {t} reset --hard {SYNCED_REF}",
        &synced[..12]
    )
}

/// Materializes base + series; returns the head commit.
pub fn materialize(ctx: &Ctx, m: &Manifest) -> Result<String> {
    let tree = ctx.tree();
    let head = commit_series(ctx, m, &tree)?;
    guard_tree(&tree, Some(&head))?;
    run(git(&tree).args(["update-ref", &format!("refs/heads/{BRANCH}"), &head]))?;
    run(git(&tree).args(["update-ref", SYNCED_REF, &head]))?;
    // Moves the work tree from whatever it held to the new head; only differing files are
    // rewritten. The guard above made sure nothing unsaved is there.
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

/// The kernel paths a repository diff changes (its `+++ b/` lines).
fn diff_targets(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .map(|p| p.trim_end().to_string())
        .collect()
}

/// `git diff` output in the repository's form: only `---`/`+++` headers and hunks, no
/// function context after the hunk ranges.
pub fn house_diff(git_diff: &str) -> String {
    let mut out = String::new();
    let mut in_file = false;
    for l in git_diff.lines() {
        if l.starts_with("diff --git ") {
            in_file = false;
            continue;
        }
        if l.starts_with("--- ") {
            in_file = true;
        }
        if !in_file {
            continue;
        }
        match l.strip_prefix("@@ ").and_then(|r| r.find(" @@")) {
            Some(i) => out.push_str(&l[..i + 6]),
            None => out.push_str(l),
        }
        out.push('\n');
    }
    out
}

/// Subject and changelog of a commit message as materialize wrote it for `p` (its trailers
/// and the series' taken off).
fn split_message(m: &Manifest, p: &crate::manifest::Patch, msg: &str) -> (String, String) {
    let msg = msg.trim_end();
    let (subject, rest) = msg.split_once('\n').unwrap_or((msg, ""));
    let mut body = rest.trim().to_string();
    for tr in p.trailers.iter().chain(&m.trailers).rev() {
        if let Some(b) = body.strip_suffix(tr.as_str()) {
            body = b.trim_end().to_string();
        }
    }
    (subject.trim().to_string(), body)
}

/// Replaces the one occurrence of `old` in `text` with `new`.
fn replace_once(text: &mut String, old: &str, new: &str, what: &str) -> Result<()> {
    let n = text.matches(old).count();
    if n != 1 {
        bail!("{what} occurs {n} times as written; edit it by hand");
    }
    *text = text.replacen(old, new, 1);
    Ok(())
}

/// Writes the commits of branch `series` back into the repository (files, diffs, subjects,
/// changelogs); returns how many repository files changed.
pub fn export(ctx: &Ctx, m: &Manifest) -> Result<usize> {
    let tree = ctx.tree();
    guard_tree(&tree, None).or_else(|e| {
        // Unexported commits are what export is for; anything else stops it.
        if e.0.contains("commits the repository does not hold") {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    let commits = series_commits(&tree)?;
    // The commits the repository held when the two last agreed: a subject or changelog edited
    // in the repository since is not overwritten by the branch's older copy.
    let synced: Vec<String> = match rev(&tree, SYNCED_REF)? {
        Some(_) => commits_of(&tree, SYNCED_REF).unwrap_or_default(),
        None => Vec::new(),
    };
    if commits.len() != m.patches.len() {
        bail!(
            "branch {BRANCH} has {} commits, the manifest {} patches: add or remove the patch in \
             its series file (series/<name>.toml) first (subject, changelog, files or diffs), \
             then export",
            commits.len(),
            m.patches.len()
        );
    }
    let mut changed = 0;
    // A subject or changelog of the repository's kept over the branch's: the branch gets it at
    // the next materialize.
    let mut kept = false;
    let write = |rel: &str, text: &[u8], changed: &mut usize| -> Result<()> {
        let path = ctx.repo.join(rel);
        if std::fs::read(&path).ok().as_deref() != Some(text) {
            std::fs::write(&path, text).context(|| format!("write {}", path.display()))?;
            println!("export: {rel}");
            *changed += 1;
        }
        Ok(())
    };
    // The text of each series file, by its path: subjects and changelogs are written there.
    let mut series_text: Vec<(String, String)> = Vec::new();
    for s in &m.series {
        let text = std::fs::read_to_string(ctx.repo.join(&s.file))
            .context(|| format!("read {}", s.file))?;
        series_text.push((s.file.clone(), text));
    }
    for (i, (c, p)) in commits.iter().zip(&m.patches).enumerate() {
        let n = m.label(i);
        let file = &m.series_of(i).file;
        let manifest_text = &mut series_text
            .iter_mut()
            .find(|(f, _)| f == file)
            .ok_or_else(|| err!("{file}: not read"))?
            .1;
        let mut carried: Vec<(String, Option<&String>)> =
            p.files.iter().map(|f| (f.clone(), None)).collect();
        for d in &p.diffs {
            match std::fs::read_to_string(ctx.repo.join(d)) {
                Ok(text) => {
                    for t in diff_targets(&text) {
                        carried.push((t, Some(d)));
                    }
                }
                // A diff new in the manifest: `<path>.<topic>.diff` names the file it changes.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let target = d
                        .strip_suffix(".diff")
                        .and_then(|t| t.rsplit_once('.'))
                        .map(|(path, _topic)| path.to_string())
                        .ok_or_else(|| err!("diff {d} is not named <path>.<topic>.diff"))?;
                    carried.push((target, Some(d)));
                }
                Err(e) => return Err(e).context(|| format!("read {d}")),
            }
        }
        let touched = output(git(&tree).args([
            "diff-tree",
            "--no-commit-id",
            "--name-only",
            "--no-renames",
            "-r",
            &format!("{c}^"),
            c,
        ]))?;
        for t in touched.lines() {
            if !carried.iter().any(|(k, _)| k == t) {
                bail!(
                    "patch {n} ({}) changes {t}, which it does not carry: list it in \
                     {file} (files for a new file, diffs for an upstream one; \
                     create the repository file) and export again",
                    p.subject
                );
            }
        }
        for f in &p.files {
            // The final version: what the last commit leaves (later patches' diffs of the file
            // are exported below as their own files).
            let last = commits.last().unwrap_or(c);
            let blob = Command::new("git")
                .current_dir(&tree)
                .args(["show", &format!("{last}:{f}")])
                .output()?;
            if !blob.status.success() {
                bail!("patch {n}: {f} is not in its commit any more");
            }
            write(f, &blob.stdout, &mut changed)?;
        }
        for d in &p.diffs {
            let targets: Vec<String> = carried
                .iter()
                .filter(|(_, by)| *by == Some(d))
                .map(|(k, _)| k.clone())
                .collect();
            let raw = output(
                git(&tree)
                    .args([
                        "diff",
                        "--no-color",
                        "--no-ext-diff",
                        "--no-renames",
                        "-U3",
                        &format!("{c}^"),
                        c,
                        "--",
                    ])
                    .args(&targets),
            )?;
            let text = house_diff(&raw);
            if text.is_empty() {
                bail!(
                    "patch {n}: {d} became empty (the patch no longer changes {}): remove it \
                     from series/manifest.toml and the repository",
                    targets.join(", ")
                );
            }
            write(d, text.as_bytes(), &mut changed)?;
        }
        let msg = output(git(&tree).args(["log", "-1", "--format=%B", c]))?;
        let (subject, body) = split_message(m, p, &msg);
        let (s_subject, s_body) = match synced.get(i).filter(|_| synced.len() == commits.len()) {
            Some(sc) => {
                let smsg = output(git(&tree).args(["log", "-1", "--format=%B", sc]))?;
                let (a, b) = split_message(m, p, &smsg);
                (Some(a), Some(b))
            }
            None => (None, None),
        };
        let Some(subject) = pick_text(&subject, &p.subject, s_subject.as_deref()) else {
            bail!(
                "patch {n}: its subject was changed in the branch and in {file} since they last \
                 agreed; make them agree by hand (reword the commit, or edit the file), then \
                 export"
            );
        };
        let Some(body) = pick_text(&body, p.body.trim(), s_body.as_deref()) else {
            bail!(
                "patch {n}: its changelog was changed in the branch and in {file} since they \
                 last agreed; make them agree by hand (reword the commit, or edit the file), \
                 then export"
            );
        };
        if subject != p.subject {
            println!("export: patch {n}: the subject from the branch");
        } else if s_subject.is_some() && subject != s_subject.as_deref().unwrap_or_default() {
            println!("export: patch {n}: the subject edited in {file} kept");
            kept = true;
        }
        if body == p.body.trim() && s_body.as_deref().is_some_and(|sb| sb != body) {
            println!("export: patch {n}: the changelog edited in {file} kept");
            kept = true;
        }
        let (subject, body) = (subject.to_string(), body.to_string());
        if subject != p.subject {
            replace_once(
                manifest_text,
                &format!("subject = {}", toml_string(&p.subject)),
                &format!("subject = {}", toml_string(&subject)),
                &format!("{file}: the subject of patch {n}"),
            )?;
        }
        if body != p.body.trim() {
            if body.contains("\"\"\"") || body.contains('\\') {
                bail!("patch {n}: the new changelog has \"\"\" or a backslash; edit the manifest by hand");
            }
            replace_once(
                manifest_text,
                p.body.trim(),
                &body,
                &format!("{file}: the changelog of patch {n}"),
            )?;
        }
    }
    for (file, text) in &series_text {
        write(file, text.as_bytes(), &mut changed)?;
    }
    // What the repository says now must materialize to the same series.
    let m2 = Manifest::load(&ctx.repo)?;
    let again = commit_series(ctx, &m2, &tree)?;
    let cur = rev(&tree, BRANCH)?.unwrap_or_default();
    let same = if kept {
        series_trees(&tree, &again)? == series_trees(&tree, &cur)?
    } else {
        series_content(&tree, &again)? == series_content(&tree, &cur)?
    };
    if !same {
        bail!(
            "export: the repository does not give back branch {BRANCH} (commit {} vs {}): a bug \
             in export; nothing was lost, the branch is unchanged",
            &again[..12],
            &cur[..12]
        );
    }
    run(git(&tree).args(["update-ref", SYNCED_REF, &cur]))?;
    if kept {
        println!(
            "export: {changed} file(s) written; the repository's newer subjects or changelogs \
             kept: `cargo xtask materialize` gives them to branch {BRANCH}"
        );
        return Ok(changed);
    }
    println!("export: {changed} file(s) written; branch {BRANCH} and the repository agree");
    Ok(changed)
}

/// A TOML basic string for `s`.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn house_diff_keeps_headers_and_hunks_only() {
        let g = "diff --git a/x.c b/x.c\nindex 1..2 100644\n--- a/x.c\n+++ b/x.c\n\
                 @@ -1,2 +1,3 @@ int main(void)\n a\n+b\n c\n\
                 diff --git a/y.c b/y.c\nindex 3..4 100644\n--- a/y.c\n+++ b/y.c\n@@ -5 +5 @@\n-d\n+e\n";
        assert_eq!(
            house_diff(g),
            "--- a/x.c\n+++ b/x.c\n@@ -1,2 +1,3 @@\n a\n+b\n c\n--- a/y.c\n+++ b/y.c\n@@ -5 +5 @@\n-d\n+e\n"
        );
        assert_eq!(diff_targets(&house_diff(g)), ["x.c", "y.c"]);
    }

    /// A scratch repository and cache tree, removed on drop.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn sh(dir: &Path, script: &str) {
        let st = Command::new("sh")
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@invalid")
            .env("GIT_SEQUENCE_EDITOR", "true")
            .env("GIT_EDITOR", "true")
            .args(["-ec", script])
            .status()
            .unwrap();
        assert!(st.success(), "{script}");
    }

    const MANIFEST: &str = r#"trailers = ["Assisted-by: LLM"]
series = ["one", "two"]
[base]
package = "p"
version = "1"
suite = "s"
kernel = "7.3.4"
"#;
    /// Two series of a patch each: the second patch's mail is a series of its own.
    const SERIES_ONE: &str = r#"prefix = "PATCH"
goes-to = "l"
[cover]
subject = "c"
body = "b"
[[patch]]
subject = "fs: add new.rs and change l2"
body = """
Why one.
"""
files = ["fs/new.rs", "fs/grown.rs"]
diffs = ["fs/a.c.one.diff"]
"#;
    const SERIES_TWO: &str = r#"prefix = "RFC PATCH"
goes-to = "l"
[cover]
subject = "c2"
body = "b2"
[[patch]]
subject = "fs: change l9"
body = """
Why two.
"""
diffs = ["fs/a.c.two.diff", "fs/grown.rs.two.diff"]
"#;

    const ONE: &str = "--- a/fs/a.c\n+++ b/fs/a.c\n@@ -1,5 +1,5 @@\n l1\n-l2\n+L2\n l3\n l4\n l5\n";
    const TWO: &str =
        "--- a/fs/a.c\n+++ b/fs/a.c\n@@ -6,5 +6,5 @@\n l6\n l7\n l8\n-l9\n+L9\n l10\n";
    /// Patch 2 changes the file patch 1 adds; the repository holds the final version.
    const GROWN_TWO: &str =
        "--- a/fs/grown.rs\n+++ b/fs/grown.rs\n@@ -1,3 +1,3 @@\n a\n b\n-c\n+C\n";
    const GROWN_FINAL: &str = "a\nb\nC\n";

    /// Materialize then export changes nothing; an edit made on the branch the kernel way
    /// (a fixup of the first patch, rebased under the second; a reworded subject) is written
    /// back by export, and materializing that gives the same series; the guard keeps
    /// uncommitted work.
    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("pmrs-roundtrip-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _scratch = Scratch(dir.clone());
        let (repo, cache) = (dir.join("repo"), dir.join("cache"));
        let ctx = Ctx {
            repo: repo.clone(),
            ccache: cache.join("ccache"),
            cache: cache.clone(),
            jobs: 1,
        };
        let tree = ctx.tree();
        std::fs::create_dir_all(tree.join("fs")).unwrap();
        std::fs::create_dir_all(repo.join("fs")).unwrap();
        std::fs::create_dir_all(repo.join("series")).unwrap();
        let base: String = (1..=10).map(|i| format!("l{i}\n")).collect();
        std::fs::write(tree.join("fs/a.c"), &base).unwrap();
        sh(
            &tree,
            &format!(
                "git init -q -b base . && git add -A && git commit -qm base && git tag {BASE_TAG}"
            ),
        );
        std::fs::write(repo.join("series/manifest.toml"), MANIFEST).unwrap();
        std::fs::write(repo.join("series/one.toml"), SERIES_ONE).unwrap();
        std::fs::write(repo.join("series/two.toml"), SERIES_TWO).unwrap();
        std::fs::write(repo.join("fs/new.rs"), "fn one() {}\n").unwrap();
        std::fs::write(repo.join("fs/a.c.one.diff"), ONE).unwrap();
        std::fs::write(repo.join("fs/a.c.two.diff"), TWO).unwrap();
        std::fs::write(repo.join("fs/grown.rs"), GROWN_FINAL).unwrap();
        std::fs::write(repo.join("fs/grown.rs.two.diff"), GROWN_TWO).unwrap();
        sh(&repo, "git init -q . && git add -A && git commit -qm repo");
        let read = |p: &str| std::fs::read_to_string(repo.join(p)).unwrap();

        let m = Manifest::load(&repo).unwrap();
        let head = materialize(&ctx, &m).unwrap();
        // The patch that adds a file later patches change carries its first version; the
        // repository holds the final one.
        let show = |r: &str| output(git(&tree).args(["show", r])).unwrap();
        assert_eq!(show(&format!("{head}~1:fs/grown.rs")), "a\nb\nc\n");
        assert_eq!(show(&format!("{head}:fs/grown.rs")), GROWN_FINAL);
        assert_eq!(
            export(&ctx, &m).unwrap(),
            0,
            "materialize then export is the identity"
        );
        assert_eq!(materialize(&ctx, &m).unwrap(), head);

        // An uncommitted edit is never thrown away.
        std::fs::write(tree.join("fs/new.rs"), "fn unsaved() {}\n").unwrap();
        let e = materialize(&ctx, &m).unwrap_err();
        assert!(e.0.contains("uncommitted"), "{e}");
        assert!(export(&ctx, &m).unwrap_err().0.contains("uncommitted"));
        assert_eq!(
            std::fs::read_to_string(tree.join("fs/new.rs")).unwrap(),
            "fn unsaved() {}\n"
        );

        // Commit it as a fixup of patch 1 with a change to a.c, rebase, reword patch 2.
        sh(
            &tree,
            &format!(
                "sed -i s/^l4$/L4/ fs/a.c && git commit -qa --fixup=HEAD~1 && \
                 git rebase -q -i --autosquash {BASE_TAG} && \
                 git commit -q --amend -m 'fs: change l9 to L9' -m 'Why two, reworded.' -m 'Assisted-by: LLM'"
            ),
        );
        // Unexported commits are kept too.
        let e = materialize(&ctx, &m).unwrap_err();
        assert!(e.0.contains("does not hold"), "{e}");

        assert_eq!(export(&ctx, &m).unwrap(), 3);
        assert_eq!(read("fs/new.rs"), "fn unsaved() {}\n");
        assert_eq!(
            read("fs/a.c.one.diff"),
            "--- a/fs/a.c\n+++ b/fs/a.c\n@@ -1,7 +1,7 @@\n l1\n-l2\n+L2\n l3\n-l4\n+L4\n l5\n l6\n l7\n"
        );
        assert_eq!(read("fs/a.c.two.diff"), TWO);
        assert_eq!(read("fs/grown.rs"), GROWN_FINAL);
        assert_eq!(read("fs/grown.rs.two.diff"), GROWN_TWO);
        let m2 = Manifest::load(&repo).unwrap();
        assert_eq!(m2.patches[1].subject, "fs: change l9 to L9");
        assert_eq!(m2.patches[1].body.trim(), "Why two, reworded.");
        assert_eq!(m2.patches[0].body.trim(), "Why one.");
        let edited = rev(&tree, BRANCH).unwrap().unwrap();
        // Export then materialize: the same commits (same trees and messages).
        let again = materialize(&ctx, &m2).unwrap();
        assert_eq!(
            series_content(&tree, &again).unwrap(),
            series_content(&tree, &edited).unwrap()
        );
        assert_eq!(export(&ctx, &m2).unwrap(), 0);

        // A changelog edited in the repository since is kept, not overwritten by the branch's
        // older copy; one changed in both places is refused.
        let one = read("series/one.toml");
        std::fs::write(
            repo.join("series/one.toml"),
            one.replace("Why one.", "Why one, edited."),
        )
        .unwrap();
        let m3 = Manifest::load(&repo).unwrap();
        export(&ctx, &m3).unwrap();
        assert!(read("series/one.toml").contains("Why one, edited."));
        let two = read("series/two.toml");
        std::fs::write(
            repo.join("series/two.toml"),
            two.replace("Why two, reworded.", "Why two, in the repository."),
        )
        .unwrap();
        sh(
            &tree,
            "git commit -q --amend -m 'fs: change l9 to L9' -m 'Why two, in the branch.' \
             -m 'Assisted-by: LLM'",
        );
        let m4 = Manifest::load(&repo).unwrap();
        let e = export(&ctx, &m4).unwrap_err();
        assert!(e.0.contains("changed in the branch and in"), "{e}");
        assert!(read("series/two.toml").contains("Why two, in the repository."));
        std::fs::write(repo.join("series/one.toml"), &one).unwrap();
        std::fs::write(repo.join("series/two.toml"), &two).unwrap();
        sh(
            &tree,
            "git commit -q --amend -m 'fs: change l9 to L9' -m 'Why two, reworded.' \
             -m 'Assisted-by: LLM'",
        );
        materialize(&ctx, &m2).unwrap();

        // A change to a file no patch carries is refused, not dropped.
        sh(
            &tree,
            "echo x > fs/stray.c && git add fs/stray.c && git commit -qm 'fs: stray'",
        );
        let e = export(&ctx, &m2).unwrap_err();
        assert!(e.0.contains("commits, the manifest"), "{e}");
        sh(
            &tree,
            "git reset -q --soft HEAD~1 && git commit -q --amend --no-edit",
        );
        let e = export(&ctx, &m2).unwrap_err();
        assert!(e.0.contains("does not carry"), "{e}");
    }
}
