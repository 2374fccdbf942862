// SPDX-License-Identifier: GPL-2.0
//! Emitting the series as mail: identity, `git format-patch` with the manifest's cover letter,
//! checkpatch, `git am` round trip, get_maintainer, and a `git send-email` dry run captured by
//! a local sendmail stand-in.

use crate::ctx::Ctx;
use crate::manifest::Manifest;
use crate::setup::{git, BASE_TAG};
use crate::util::{output, run, Context, Result};
use crate::{bail, err};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Who the patches are from. The manifest names nobody: this comes from git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub email: String,
    /// A placeholder for checks (CI): never to be sent.
    pub fake: bool,
}

impl Identity {
    pub fn mailbox(&self) -> String {
        format!("{} <{}>", self.name, self.email)
    }
}

/// The identity CI uses: obviously not a person, and not deliverable (RFC 2606 `.invalid`).
pub fn test_identity() -> Identity {
    Identity {
        name: "Series Check".into(),
        email: "series-check@example.invalid".into(),
        fake: true,
    }
}

/// The git identity of whoever runs the command; `test` (CI) always gets the test identity.
pub fn identity(repo: &Path, test: bool) -> Result<Identity> {
    if test {
        return Ok(test_identity());
    }
    let get = |k: &str| {
        output(Command::new("git").current_dir(repo).args(["config", k]))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let (name, email) = (get("user.name"), get("user.email"));
    if name.is_empty() || email.is_empty() {
        bail!(
            "no git identity (user.name/user.email): the patches' From: comes from it. Configure \
             yours, or pass --test-identity for a local check that is not for sending"
        );
    }
    Ok(Identity {
        name,
        email,
        fake: false,
    })
}

/// One emitted series: cover letter first, then the patches in order.
pub struct Emitted {
    pub dir: PathBuf,
    pub cover: PathBuf,
    pub patches: Vec<PathBuf>,
    /// The tree the series ends in (for the `git am` round trip).
    pub tree: String,
}

/// Re-commits the materialized series with `id` as author and committer (branch `emit`) and
/// writes each series with `git format-patch` into `dir/<name>/`, its cover letter filled from
/// its file, `base-commit:` the pristine base and, for a series on top of others, their patches
/// as `prerequisite-patch-id:` lines.
pub fn emit(ctx: &Ctx, m: &Manifest, id: &Identity, dir: &Path) -> Result<Vec<Emitted>> {
    let tree = ctx.tree();
    let commits = crate::materialize::series_commits(&tree)?;
    if commits.len() != m.patches.len() {
        bail!(
            "the cache tree holds {} commits, the manifest {} patches: materialize first",
            commits.len(),
            m.patches.len()
        );
    }
    let base = output(git(&tree).args(["rev-parse", &format!("{BASE_TAG}^{{commit}}")]))?;
    let base = base.trim().to_string();
    let mut parent = base.clone();
    let mut emitted = Vec::new();
    for c in &commits {
        let t = output(git(&tree).args(["rev-parse", &format!("{c}^{{tree}}")]))?;
        let msg = output(git(&tree).args(["log", "-1", "--format=%B", c]))?;
        let mut cmd = git(&tree);
        cmd.env("GIT_AUTHOR_NAME", &id.name)
            .env("GIT_AUTHOR_EMAIL", &id.email)
            .env("GIT_COMMITTER_NAME", &id.name)
            .env("GIT_COMMITTER_EMAIL", &id.email)
            .env_remove("GIT_AUTHOR_DATE")
            .env_remove("GIT_COMMITTER_DATE")
            .args(["commit-tree", t.trim(), "-p", &parent, "-m", msg.trim_end()]);
        parent = output(&mut cmd)?.trim().to_string();
        emitted.push(parent.clone());
    }
    run(git(&tree).args(["update-ref", "refs/heads/emit", &parent]))?;
    let _ = std::fs::remove_dir_all(dir);
    let mut out = Vec::new();
    for (k, s) in m.series.iter().enumerate() {
        let from = match s.range.start {
            0 => base.clone(),
            i => emitted[i - 1].clone(),
        };
        let to = &emitted[s.range.end - 1];
        let sdir = dir.join(&s.name);
        std::fs::create_dir_all(&sdir)?;
        run(git(&tree)
            .env("GIT_COMMITTER_NAME", &id.name)
            .env("GIT_COMMITTER_EMAIL", &id.email)
            .args([
                "format-patch",
                "-q",
                "--cover-letter",
                "--thread=shallow",
                "--subject-prefix",
                &s.prefix,
                "--base",
                &base,
                "-o",
            ])
            .arg(&sdir)
            .arg(format!("{from}..{to}")))?;
        let files = patch_files(&sdir)?;
        let Some((cover, patches)) = files.split_first() else {
            bail!("git format-patch wrote nothing to {}", sdir.display());
        };
        if patches.len() != s.range.len() {
            bail!(
                "format-patch wrote {} patches of series {}, {} expected",
                patches.len(),
                s.name,
                s.range.len()
            );
        }
        let text = std::fs::read_to_string(cover)?;
        let mut body = format!(
            "{}\n\nBased on Linux {} as packaged by Debian ({} {}); base-commit below is that\n\
             tree committed unchanged.\n",
            s.cover.body.trim(),
            m.base.kernel,
            m.base.package,
            m.base.version
        );
        if k > 0 {
            let before: Vec<String> = m.series[..k]
                .iter()
                .map(|p| format!("\"{}\" ({} patches)", p.cover.subject, p.range.len()))
                .collect();
            body.push_str(&format!(
                "It applies on top of {}, sent separately; their patches are the\n\
                 prerequisite-patch-id lines below.\n",
                before.join(" and ")
            ));
        }
        let filled = fill_cover(&text, &s.cover.subject, &body)?;
        std::fs::write(cover, filled)?;
        let tree_id = output(git(&tree).args(["rev-parse", &format!("{to}^{{tree}}")]))?;
        out.push(Emitted {
            dir: sdir,
            cover: cover.clone(),
            patches: patches.to_vec(),
            tree: tree_id.trim().to_string(),
        });
    }
    Ok(out)
}

/// The `.patch` files `git format-patch` wrote to `dir`, in order.
fn patch_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    files.sort();
    Ok(files)
}

/// Whether the emitted patch `patch` applies to the pristine base on its own.
pub fn applies_alone(ctx: &Ctx, patch: &Path) -> Result<bool> {
    let tree = ctx.tree();
    let index = tree.join(".git/pmrs-alone.index");
    let _ = std::fs::remove_file(&index);
    let g = || {
        let mut c = git(&tree);
        c.env("GIT_INDEX_FILE", &index);
        c
    };
    run(g().args(["read-tree", BASE_TAG]))?;
    let ok = g()
        .args(["apply", "--cached", "--check", "--whitespace=nowarn"])
        .arg(patch)
        .stderr(std::process::Stdio::null())
        .status()?
        .success();
    let _ = std::fs::remove_file(&index);
    Ok(ok)
}

/// Puts the subject and body into `git format-patch`'s cover-letter template.
pub fn fill_cover(template: &str, subject: &str, body: &str) -> Result<String> {
    if !template.contains("*** SUBJECT HERE ***") || !template.contains("*** BLURB HERE ***") {
        bail!("the cover letter template lacks its placeholders");
    }
    Ok(template
        .replacen("*** SUBJECT HERE ***", subject, 1)
        .replacen("*** BLURB HERE ***", body.trim_end(), 1))
}

/// checkpatch totals over the patches.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckpatchTotals {
    pub errors: usize,
    pub warnings: usize,
    pub checks: usize,
}

/// Parses checkpatch's `total: E errors, W warnings, C checks, L lines checked`.
pub fn parse_checkpatch_total(out: &str) -> Option<CheckpatchTotals> {
    let l = out.lines().find(|l| l.starts_with("total: "))?;
    let num = |what: &str| -> Option<usize> {
        let i = l.find(what)?;
        l[..i].split_whitespace().last()?.parse().ok()
    };
    Some(CheckpatchTotals {
        errors: num(" errors")?,
        warnings: num(" warnings")?,
        checks: num(" checks").unwrap_or(0),
    })
}

/// Runs `checkpatch.pl --strict` on each patch; sign-offs are the human submitter's to add, so
/// their absence is not reported (`--no-signoff`). The base is Debian's source package committed
/// as one commit, without upstream history, so no upstream commit a `Fixes:` tag names can be
/// found in it: checkpatch's UNKNOWN_COMMIT_ID is not reported (the manifest checks the tag's
/// form; the ids were checked against upstream when written). Returns the totals and the
/// report lines.
pub fn checkpatch(ctx: &Ctx, patches: &[PathBuf]) -> Result<(CheckpatchTotals, Vec<String>)> {
    let mut t = CheckpatchTotals::default();
    let mut lines = Vec::new();
    for p in patches {
        // scripts/spdxcheck.py runs under the `python3` on PATH: Debian's, which has the
        // modules it imports, not one a user's PATH puts first (pyenv, a virtualenv).
        let path = format!(
            "/usr/bin:/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("perl")
            .current_dir(ctx.tree())
            .env("PATH", path)
            .args([
                "scripts/checkpatch.pl",
                "--strict",
                "--no-signoff",
                "--ignore",
                "UNKNOWN_COMMIT_ID",
            ])
            .arg(p)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let one = parse_checkpatch_total(&text)
            .ok_or_else(|| err!("checkpatch printed no total for {}", p.display()))?;
        t.errors += one.errors;
        t.warnings += one.warnings;
        t.checks += one.checks;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        lines.extend(
            text.lines()
                .filter(|l| {
                    l.starts_with("ERROR:") || l.starts_with("WARNING:") || l.starts_with("CHECK:")
                })
                .map(|l| format!("{name}: {l}")),
        );
    }
    Ok((t, lines))
}

/// Applies the patches of the emitted series `chain` (in order: a series and those it applies
/// on) with `git am` onto the pristine base in a scratch worktree that checks out only the
/// files the series touch, and compares the resulting tree with the last one's.
pub fn am_roundtrip(ctx: &Ctx, chain: &[&Emitted], touched: &[String]) -> Result<bool> {
    let Some(last) = chain.last() else {
        bail!("am round trip of no series");
    };
    let tree = ctx.tree();
    let wt = ctx.cache.join("am-roundtrip");
    let _ = std::fs::remove_dir_all(&wt);
    let _ = git(&tree).args(["worktree", "prune"]).status();
    run(git(&tree)
        .args(["worktree", "add", "-q", "--no-checkout", "--detach"])
        .arg(&wt)
        .arg(BASE_TAG))?;
    let res = (|| -> Result<bool> {
        let mut sc = git(&wt);
        sc.args(["sparse-checkout", "set", "--no-cone"]);
        for p in touched {
            sc.arg(format!("/{p}"));
        }
        run(&mut sc)?;
        run(git(&wt).args(["checkout", "-q"]))?;
        let mut am = git(&wt);
        am.args(["am", "-q", "--no-3way"])
            .args(chain.iter().flat_map(|e| &e.patches));
        let ok = am.status()?.success();
        if !ok {
            let _ = git(&wt).args(["am", "--abort"]).status();
            return Ok(false);
        }
        let got = output(git(&wt).args(["rev-parse", "HEAD^{tree}"]))?;
        Ok(got.trim() == last.tree)
    })();
    let _ = run(git(&tree).args(["worktree", "remove", "--force"]).arg(&wt));
    res
}

/// To (lists) and Cc (people) from `scripts/get_maintainer.pl`; linux-mm always leads To.
pub fn recipients(ctx: &Ctx, patches: &[PathBuf]) -> Result<(Vec<String>, Vec<String>)> {
    let out = output(
        Command::new("perl")
            .current_dir(ctx.tree())
            .args([
                "scripts/get_maintainer.pl",
                "--no-rolestats",
                "--no-git",
                "--no-git-fallback",
            ])
            .args(patches),
    )?;
    Ok(split_recipients(&out))
}

/// Splits get_maintainer output into lists and people.
pub fn split_recipients(out: &str) -> (Vec<String>, Vec<String>) {
    let mut to = vec!["linux-mm@kvack.org".to_string()];
    let mut cc = Vec::new();
    for l in out.lines().map(str::trim).filter(|l| l.contains('@')) {
        let is_list = !l.contains('<');
        let v = if is_list { &mut to } else { &mut cc };
        if !v.iter().any(|x| x == l) {
            v.push(l.to_string());
        }
    }
    (to, cc)
}

/// One captured mail: its headers (unfolded) and the recipients sendmail was given.
#[derive(Debug, Default)]
pub struct Mail {
    pub headers: Vec<(String, String)>,
}

impl Mail {
    pub fn parse(text: &str) -> Self {
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        Mail { headers }
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Checks a captured thread: `[<prefix> 0/n]` first, then `k/n` in order, each patch a reply
/// to the cover letter, all from the address `from` and to linux-mm. Returns the problems found.
pub fn check_thread(mails: &[Mail], n: usize, from: &str, prefix: &str) -> Vec<String> {
    let mut p = Vec::new();
    if mails.len() != n + 1 {
        p.push(format!(
            "{} mails captured, {} expected",
            mails.len(),
            n + 1
        ));
        return p;
    }
    let cover_id = mails[0].get("message-id").unwrap_or("").to_string();
    if cover_id.is_empty() {
        p.push("the cover letter has no Message-ID".into());
    }
    for (k, mail) in mails.iter().enumerate() {
        let subj = mail.get("subject").unwrap_or("");
        // format-patch pads the number to the width of the total (01/10).
        let width = n.to_string().len();
        let tag = format!("[{prefix} {k:0width$}/{n}]");
        if !subj.starts_with(&tag) {
            p.push(format!(
                "mail {k}: subject `{subj}` does not start with {tag}"
            ));
        }
        if !mail
            .get("from")
            .is_some_and(|f| f.contains(&format!("<{from}>")))
        {
            p.push(format!(
                "mail {k}: From: {:?}, expected {from}",
                mail.get("from")
            ));
        }
        if !mail.get("to").unwrap_or("").contains("linux-mm@kvack.org") {
            p.push(format!("mail {k}: not addressed to linux-mm"));
        }
        if k > 0 {
            if mail.get("in-reply-to") != Some(cover_id.as_str()) {
                p.push(format!("mail {k}: In-Reply-To is not the cover letter"));
            }
            if !mail.get("references").unwrap_or("").contains(&cover_id) {
                p.push(format!("mail {k}: References lacks the cover letter"));
            }
        }
    }
    p
}

/// `git send-email` with a local sendmail stand-in that stores each mail in `mails/`;
/// returns the captured mails in sending order.
pub fn send_dry_run(e: &Emitted, id: &Identity, to: &[String], cc: &[String]) -> Result<Vec<Mail>> {
    let mails = e.dir.join("mails");
    let _ = std::fs::remove_dir_all(&mails);
    std::fs::create_dir_all(&mails)?;
    let script = e.dir.join("capture-sendmail.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n# sendmail stand-in: keep the mail, send nothing.\n\
             n=$(ls '{d}' | wc -l)\ncat > '{d}'/$(printf '%03d' \"$n\").eml\n",
            d = mails.display()
        ),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    let mut c = Command::new("git");
    c.current_dir(&e.dir)
        .args(["send-email", "--quiet", "--confirm=never", "--no-validate"])
        .arg(format!("--smtp-server={}", script.display()))
        .arg(format!("--from={}", id.mailbox()))
        .args([
            "--suppress-cc=all",
            "--thread",
            "--no-chain-reply-to",
            "--8bit-encoding=UTF-8",
        ]);
    for t in to {
        c.arg(format!("--to={t}"));
    }
    for x in cc {
        c.arg(format!("--cc={x}"));
    }
    c.arg(&e.cover).args(&e.patches);
    let out = c.output().context(|| "git send-email")?;
    if !out.status.success() {
        bail!(
            "git send-email --dry-run stand-in failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&mails)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| Ok(Mail::parse(&std::fs::read_to_string(f)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpatch_totals() {
        let t =
            "foo.patch:1: WARNING: x\ntotal: 1 errors, 2 warnings, 3 checks, 120 lines checked\n";
        assert_eq!(
            parse_checkpatch_total(t),
            Some(CheckpatchTotals {
                errors: 1,
                warnings: 2,
                checks: 3
            })
        );
        assert_eq!(
            parse_checkpatch_total("total: 0 errors, 0 warnings, 34 lines checked"),
            Some(CheckpatchTotals::default())
        );
        assert_eq!(parse_checkpatch_total("nothing"), None);
    }

    #[test]
    fn cover_template() {
        let t = "Subject: [PATCH 0/2] *** SUBJECT HERE ***\n\n*** BLURB HERE ***\n\nA (1):\n";
        let f = fill_cover(t, "rust: mm: walker", "Why.\n").unwrap();
        assert!(f.starts_with("Subject: [PATCH 0/2] rust: mm: walker\n\nWhy.\n"));
        assert!(fill_cover("no placeholders", "a", "b").is_err());
    }

    #[test]
    fn recipients_split() {
        let out = "Andrew Morton <akpm@linux-foundation.org>\nlinux-mm@kvack.org\nrust-for-linux@vger.kernel.org\n\
                   \"Liam R. Howlett\" <liam@infradead.org>\nlinux-kernel@vger.kernel.org\n";
        let (to, cc) = split_recipients(out);
        assert_eq!(
            to,
            [
                "linux-mm@kvack.org",
                "rust-for-linux@vger.kernel.org",
                "linux-kernel@vger.kernel.org"
            ]
        );
        assert_eq!(cc.len(), 2);
    }

    fn mail(subject: &str, id: &str, reply: Option<&str>) -> Mail {
        let mut t = format!(
            "From: A <a@example.invalid>\nTo: linux-mm@kvack.org\nSubject: {subject}\nMessage-ID: {id}\n"
        );
        if let Some(r) = reply {
            t.push_str(&format!("In-Reply-To: {r}\nReferences:\n {r}\n"));
        }
        t.push_str("\nbody\n");
        Mail::parse(&t)
    }

    #[test]
    fn thread_checks() {
        let from = "a@example.invalid";
        let good = vec![
            mail("[PATCH 0/2] cover", "<c@x>", None),
            mail("[PATCH 1/2] one", "<1@x>", Some("<c@x>")),
            mail("[PATCH 2/2] two", "<2@x>", Some("<c@x>")),
        ];
        assert!(
            check_thread(&good, 2, from, "PATCH").is_empty(),
            "{:?}",
            check_thread(&good, 2, from, "PATCH")
        );
        let chained = vec![
            mail("[PATCH 0/2] cover", "<c@x>", None),
            mail("[PATCH 1/2] one", "<1@x>", Some("<c@x>")),
            mail("[PATCH 2/2] two", "<2@x>", Some("<1@x>")),
        ];
        assert_eq!(check_thread(&chained, 2, from, "PATCH").len(), 2);
        let order = vec![
            mail("[PATCH 0/2] cover", "<c@x>", None),
            mail("[PATCH 2/2] two", "<2@x>", Some("<c@x>")),
            mail("[PATCH 1/2] one", "<1@x>", Some("<c@x>")),
        ];
        assert_eq!(check_thread(&order, 2, from, "PATCH").len(), 2);
        assert_eq!(check_thread(&good[..2], 2, from, "PATCH").len(), 1);
        // Ten or more patches: numbers are padded.
        let mut ten = vec![mail("[PATCH 00/10] cover", "<c@x>", None)];
        for k in 1..=10 {
            ten.push(mail(
                &format!("[PATCH {k:02}/10] p"),
                &format!("<{k}@x>"),
                Some("<c@x>"),
            ));
        }
        assert!(check_thread(&ten, 10, from, "PATCH").is_empty());
        let rfc = vec![
            mail("[RFC PATCH 0/1] cover", "<c@x>", None),
            mail("[RFC PATCH 1/1] one", "<1@x>", Some("<c@x>")),
        ];
        assert!(check_thread(&rfc, 1, from, "RFC PATCH").is_empty());
        assert_eq!(check_thread(&rfc, 1, from, "PATCH").len(), 2);
        ten[3] = mail("[PATCH 3/10] p", "<3@x>", Some("<c@x>"));
        assert_eq!(check_thread(&ten, 10, from, "PATCH").len(), 1);
    }
}
