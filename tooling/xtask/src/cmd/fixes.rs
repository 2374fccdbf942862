// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask fixes`: every fix of the fixes series shown on the code it fixes. The pristine
//! base and the fixes series alone are built in the same C-only configuration (variant
//! `proof`: norust with two NUMA nodes emulated on one), each in a git worktree and build
//! directory of its own in the cache (so neither disturbs the series' builds, and each rebuilds
//! only what changed), and booted with the same test programs, built from the fixes: the
//! selftests that carry the fixes' own cases. A fix is shown when one of its cases fails on
//! the pristine base and all of them pass with the fixes. Writes `docs/fixes.md`.

use crate::*;
use ktap::Node;
use std::path::{Path, PathBuf};

/// The kernel variant both proof kernels are built in.
pub(crate) const PROOF: &str = "proof";

/// The selftests the proof boots run: every suite a fix's `proof` can name.
const PROOF_TESTS: &[&guest::Selftest] = &[
    &guest::SELFTESTS[1], // soft-dirty
    &guest::SELFTESTS[0], // pagemap_ioctl
    &guest::HMM_TESTS,
    &guest::MIGRATION_RACE,
];

/// Kernel arguments of the proof boots: two NUMA nodes for migration-race.
const PROOF_KERNEL_ARGS: &str = "numa=fake=2";

/// A case's outcome on one kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pass,
    Fail,
    Skip,
    /// The suite or the case did not report.
    Missing,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
            Outcome::Missing => "MISSING",
        }
    }
}

/// A cache of its own for one proof kernel: the worktree `<cache>/proof-<name>/tree` at
/// `commit` and the build directory `<cache>/proof-<name>/build-proof`.
fn proof_ctx(ctx: &Ctx, name: &str, commit: &str) -> Result<Ctx> {
    let p = Ctx {
        repo: ctx.repo.clone(),
        cache: ctx.cache.join(format!("proof-{name}")),
        jobs: ctx.jobs,
        ccache: ctx.ccache.clone(),
    };
    let wt = p.tree();
    if !wt.join(".git").exists() {
        let _ = std::fs::remove_dir_all(&wt);
        std::fs::create_dir_all(&p.cache)?;
        util::run(setup::git(&ctx.tree()).args(["worktree", "prune"]))?;
        util::run(
            setup::git(&ctx.tree())
                .args(["worktree", "add", "-q", "--detach"])
                .arg(&wt)
                .arg(commit),
        )?;
    } else {
        // Only what differs is rewritten: the build stays incremental.
        util::run(setup::git(&wt).args(["checkout", "-q", "-f", "--detach", commit]))?;
        util::run(setup::git(&wt).args(["clean", "-q", "-f", "-d"]))?;
    }
    Ok(p)
}

/// What one proof boot reported: per suite, its TAP results.
struct ProofBoot {
    suites: Vec<(String, Vec<Node>)>,
    /// What migration-race says of each case: how many iterations hit the race.
    race_notes: Vec<String>,
    problems: Vec<String>,
    splats: Vec<String>,
    uname: String,
}

fn proof_boot(ctx: &Ctx, kernel: &Path, initrd: &Path, label: &str) -> Result<ProofBoot> {
    let _s = Stage::new(&format!("boot-proof-{label}"));
    let logdir = ctx.logs().join(format!("proof-{label}"));
    let timeout: u64 = 120
        + PROOF_TESTS
            .iter()
            .map(|t| u64::from(t.timeout))
            .sum::<u64>();
    let out = qemu::boot(&qemu::Boot {
        kernel_args: PROOF_KERNEL_ARGS,
        ..qemu::Boot::new(
            kernel,
            initrd,
            GUEST_CPUS,
            Duration::from_secs(timeout),
            &logdir,
        )
    })?;
    println!(
        "proof {label}: guest ran {:.1}s; console {} results {}",
        out.seconds,
        out.console_path.display(),
        out.results_path.display()
    );
    let mut problems = Vec::new();
    if out.timed_out {
        problems.push("the guest timed out".to_string());
    }
    let lines = report::result_lines(&out.results);
    let uname = lines
        .iter()
        .find_map(|l| l.strip_prefix(pmrs_protocol::GUEST_READY))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_default();
    if uname.is_empty() {
        problems.push("the guest never reached /init".to_string());
    }
    let race_notes = report::suite_frame(&lines, guest::MIGRATION_RACE.name, guest::ONCE_IMPL)
        .map(|(body, _)| {
            body.iter()
                .filter(|l| l.contains(" iterations, "))
                .map(|l| l.trim_start_matches(['#', ' ']).to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut suites = Vec::new();
    for t in PROOF_TESTS {
        let nodes = match report::suite_frame(&lines, t.name, guest::ONCE_IMPL) {
            Some((body, _)) => ktap::parse(&body.join("\n")).roots,
            None => {
                problems.push(format!("{} never started", t.name));
                Vec::new()
            }
        };
        suites.push((t.name.to_string(), nodes));
    }
    Ok(ProofBoot {
        suites,
        race_notes,
        problems,
        splats: splat::scan(&out.console),
        uname,
    })
}

/// Whether TAP result `name` is case `case`: the whole name, or its end after a separator
/// (`Test test_ksm_merge`, `hmm.hmm_device_private.uffd_wp_device_private`), without a skip's
/// reason.
fn is_case(name: &str, case: &str) -> bool {
    // A skip's reason follows the name (`# SKIP Test test_x: no THP`).
    let name = name.split(": ").next().unwrap_or(name);
    name == case
        || name.strip_suffix(case).is_some_and(|head| {
            head.ends_with(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        })
}

/// The outcome of proof case `suite:case` (the suite's first result that is the case).
fn outcome(b: &ProofBoot, proof: &str) -> Outcome {
    let Some((suite, case)) = proof.split_once(':') else {
        return Outcome::Missing;
    };
    let Some((_, nodes)) = b.suites.iter().find(|(n, _)| n == suite) else {
        return Outcome::Missing;
    };
    match nodes.iter().find(|n| is_case(&n.name, case)) {
        None => Outcome::Missing,
        Some(n) if n.skip => Outcome::Skip,
        Some(n) if n.ok => Outcome::Pass,
        Some(_) => Outcome::Fail,
    }
}

/// One fix's line: shown when a case fails on the pristine base and every case passes with
/// the fixes.
pub(crate) fn fix_line(n: usize, subject: &str, pristine: &[Outcome], fixed: &[Outcome]) -> String {
    let p = if pristine.contains(&Outcome::Fail) {
        "FAIL"
    } else if pristine.iter().all(|o| *o == Outcome::Pass) {
        "PASS"
    } else {
        "not run"
    };
    let f = if !fixed.is_empty() && fixed.iter().all(|o| *o == Outcome::Pass) {
        "PASS"
    } else if fixed.contains(&Outcome::Fail) {
        "FAIL"
    } else {
        "not run"
    };
    format!("FIX {n} {subject}: pristine {p}, fixed {f}")
}

/// What the proof found: a FIX line per fix, the table rows of its cases, both boots.
pub(crate) struct Proof {
    pub(crate) lines: Vec<String>,
    cases: Vec<String>,
    pristine: ProofBoot,
    fixed: ProofBoot,
    fixed_commit: String,
    /// Every fix shown (pristine FAIL, fixed PASS).
    pub(crate) ok: bool,
    /// Boots that failed, splats on the fixed kernel.
    pub(crate) problems: Vec<String>,
}

/// Builds both proof kernels, boots them side by side, and judges each fix.
pub(crate) fn run_proof(ctx: &Ctx, m: &Manifest) -> Result<Proof> {
    let Some(fs) = m.fixes() else {
        bail!("the manifest has no fixes series");
    };
    let commits = materialize::series_commits(&ctx.tree())?;
    let base = util::output(setup::git(&ctx.tree()).args(["rev-parse", "pmrs-base^{commit}"]))?;
    let fixed_commit = commits[fs.range.end - 1].clone();
    let pristine = proof_ctx(ctx, "pristine", base.trim())?;
    let fixed = proof_ctx(ctx, "fixed", &fixed_commit)?;
    let kp = {
        let _s = Stage::new("build-proof-pristine");
        kbuild::build(&pristine, PROOF)?
    };
    let kf = {
        let _s = Stage::new("build-proof-fixed");
        kbuild::build(&fixed, PROOF)?
    };
    // The test programs of the fixes, for both kernels (the fixes change no uapi header).
    let initrd = {
        let _s = Stage::new("guest-userspace-proof");
        guest::initramfs(
            &fixed,
            PROOF,
            &guest::Mode::Proof {
                tests: PROOF_TESTS.to_vec(),
            },
        )?
    };
    // A copy for the pristine boot: the two boots run side by side.
    let initrd_p = pristine.cache.join("initramfs-proof.cpio.gz");
    std::fs::copy(&initrd, &initrd_p)?;
    let (bp, bf) = std::thread::scope(|s| {
        let h = s.spawn(|| proof_boot(&pristine, &kp, &initrd_p, "pristine"));
        let bf = proof_boot(&fixed, &kf, &initrd, "fixed");
        let bp = h
            .join()
            .unwrap_or_else(|_| Err(util::Error("the pristine boot's thread panicked".into())));
        (bp, bf)
    });
    let (bp, bf) = (bp?, bf?);
    let mut lines = Vec::new();
    let mut cases = Vec::new();
    let mut ok = true;
    for (k, i) in fs.range.clone().enumerate() {
        let p = &m.patches[i];
        if p.proof.is_empty() {
            continue;
        }
        let n = k + 1;
        if let Some(why) = p.proof.iter().find_map(|x| x.strip_prefix("why:")) {
            lines.push(format!("FIX {n} {}: not shown by a test: {why}", p.subject));
            continue;
        }
        let po: Vec<Outcome> = p.proof.iter().map(|c| outcome(&bp, c)).collect();
        let fo: Vec<Outcome> = p.proof.iter().map(|c| outcome(&bf, c)).collect();
        let line = fix_line(n, &p.subject, &po, &fo);
        ok &= line.ends_with("pristine FAIL, fixed PASS");
        lines.push(line);
        for (c, (a, b)) in p.proof.iter().zip(po.iter().zip(&fo)) {
            cases.push(format!("| {n} | `{c}` | {} | {} |", a.word(), b.word()));
        }
    }
    let mut problems: Vec<String> = Vec::new();
    for (label, b) in [("pristine", &bp), ("fixed", &bf)] {
        problems.extend(b.problems.iter().map(|p| format!("{label}: {p}")));
    }
    // A splat on the fixed kernel is a failure; on the pristine one it may be the bug shown.
    problems.extend(bf.splats.iter().map(|s| format!("fixed: splat: {s}")));
    Ok(Proof {
        lines,
        cases,
        pristine: bp,
        fixed: bf,
        fixed_commit,
        ok,
        problems,
    })
}

impl Proof {
    /// The FIX lines, as a suite of `cargo xtask test` (one case per fix).
    pub(crate) fn suite(&self) -> report::Suite {
        let mut s = report::Suite::new("fixes", "pristine-vs-fixed");
        for l in &self.lines {
            s.add_case(l, l.ends_with("pristine FAIL, fixed PASS"), Vec::new());
        }
        for p in &self.problems {
            s.add_case(p, false, Vec::new());
        }
        s
    }
}

pub(crate) fn cmd_fixes(ctx: &Ctx, o: &Opts) -> Result<bool> {
    let m = setup_and_materialize(ctx, o)?;
    let p = run_proof(ctx, &m)?;
    for l in &p.lines {
        println!("{l}");
    }
    for x in &p.problems {
        println!("PROBLEM: {x}");
    }
    let Some(fs) = m.fixes() else {
        bail!("the manifest has no fixes series");
    };
    write_doc(ctx, &m, fs, &p)?;
    println!("fixes: wrote {}", ctx.repo.join("docs/fixes.md").display());
    Ok(p.ok && p.problems.is_empty())
}

fn write_doc(ctx: &Ctx, m: &Manifest, fs: &manifest::Series, p: &Proof) -> Result<()> {
    let (lines, cases, bp, bf) = (&p.lines, &p.cases, &p.pristine, &p.fixed);
    let fixed_commit = p.fixed_commit.as_str();
    let head = util::output(Command::new("git").current_dir(&ctx.repo).args([
        "log",
        "-1",
        "--format=%h %cs",
    ]))
    .unwrap_or_default();
    let mut d = String::new();
    d.push_str("# The fixes, shown on the code they fix\n\n");
    d.push_str(&format!(
        "Written by `cargo xtask fixes` at repository commit {} (the fixes series' head in the \
         cache tree: {}). Both kernels are Linux {} built in the same C-only configuration \
         (variant `proof`: `tooling/configs/variants.toml`, CONFIG_RUST=n, with two NUMA nodes \
         emulated on one, `{PROOF_KERNEL_ARGS}`): the pristine base, and the {} patches of \
         `{}` on it. Both boot the same test programs, built from the fixes (the selftests \
         with the fixes' own cases), on 2 vCPUs under QEMU TCG. A fix is shown when one of its \
         cases fails on the pristine base and all of them pass with the fixes.\n\n",
        head.trim(),
        &fixed_commit[..12],
        m.base.kernel,
        fs.range.len(),
        fs.file
    ));
    d.push_str("```\n");
    for l in lines {
        d.push_str(l);
        d.push('\n');
    }
    d.push_str("```\n\n| fix | case | pristine | fixed |\n|---|---|---|---|\n");
    for c in cases {
        d.push_str(c);
        d.push('\n');
    }
    d.push_str(&format!(
        "\nKernels: pristine `{}`, fixed `{}`. Suites run: {}.\n",
        bp.uname,
        bf.uname,
        PROOF_TESTS
            .iter()
            .map(|t| format!("`{}`", guest::selftest_cmd(t).trim_start_matches("/bin/")))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if !bp.race_notes.is_empty() {
        d.push_str(
            "\nmigration-race, case by case (soft-dirty PTE, soft-dirty THP, uffd-wp PTE, uffd-wp \
             THP, uffd-wp hugetlb; 5 s each): how often the race was hit.\n\n\
             | pristine | fixed |\n|---|---|\n",
        );
        for (a, b) in bp.race_notes.iter().zip(&bf.race_notes) {
            d.push_str(&format!("| {a} | {b} |\n"));
        }
        d.push_str(
            "\nThe THP cases cannot fail on x86: remove_migration_pmd() marks the PMD dirty, which \
             sets soft-dirty, and write-protects it again after setting the uffd-wp bit \
             (migration-race.c says so).\n",
        );
    }
    if !bp.splats.is_empty() {
        d.push_str("\nKernel warnings on the pristine base (the bugs' own, expected):\n\n");
        for s in bp.splats.iter().take(10) {
            d.push_str(&format!("- `{}`\n", s.replace('`', "'")));
        }
    }
    let path: PathBuf = ctx.repo.join("docs/fixes.md");
    std::fs::write(path, d)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fix_lines() {
        use Outcome::*;
        assert_eq!(
            fix_line(1, "a: b", &[Fail, Pass], &[Pass, Pass]),
            "FIX 1 a: b: pristine FAIL, fixed PASS"
        );
        assert_eq!(
            fix_line(2, "a: b", &[Pass], &[Pass]),
            "FIX 2 a: b: pristine PASS, fixed PASS"
        );
        assert_eq!(
            fix_line(3, "a: b", &[Fail], &[Fail]),
            "FIX 3 a: b: pristine FAIL, fixed FAIL"
        );
        assert_eq!(
            fix_line(4, "a: b", &[Skip], &[Pass, Skip]),
            "FIX 4 a: b: pristine not run, fixed not run"
        );
    }

    #[test]
    fn outcomes_by_case_name() {
        let p = ktap::parse(
            "TAP version 13\n1..3\nok 1 Test test_ksm_merge\n\
             ok 2 # SKIP Test test_collapse_shmem_khugepaged: no THP\n\
             not ok 3 Test test_collapse_shmem\n",
        );
        let b = ProofBoot {
            suites: vec![("soft-dirty".into(), p.roots)],
            race_notes: Vec::new(),
            problems: Vec::new(),
            splats: Vec::new(),
            uname: String::new(),
        };
        assert_eq!(outcome(&b, "soft-dirty:test_ksm_merge"), Outcome::Pass);
        assert_eq!(outcome(&b, "soft-dirty:test_collapse_shmem"), Outcome::Fail);
        assert_eq!(
            outcome(&b, "soft-dirty:test_collapse_shmem_khugepaged"),
            Outcome::Skip
        );
        assert_eq!(outcome(&b, "soft-dirty:nothing"), Outcome::Missing);
        assert_eq!(outcome(&b, "pagemap_ioctl:x"), Outcome::Missing);
    }
}
