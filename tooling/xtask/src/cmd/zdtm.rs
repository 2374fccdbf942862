// SPDX-License-Identifier: GPL-2.0
//! CRIU's own test suite (zdtm) on the series' kernel: the released CRIU against the C and the
//! Rust PAGEMAP_SCAN, then CRIU with this project's patch (the get-and-clear) against both.

use crate::guest::{ZdtmRun, ZdtmTest, IMPL_C, IMPL_RUST, ZDTM_SUITE};
use crate::*;
use std::path::{Path, PathBuf};

/// The kernel variant zdtm runs on (`tooling/configs/variants.toml`).
pub(crate) const CRIU_VARIANT: &str = "criu";

/// The subset `cargo xtask test` runs: memory tests, each through two pre-dumps (soft-dirty
/// tracking and its clear between them) before the dump and the restore zdtm checks.
pub(crate) const CI_TESTS: &[ZdtmTest] = &[
    // Writes random pages of its area during the pre-dumps; the restored memory must match.
    ZdtmTest {
        name: "zdtm/static/mem-touch",
        opts: "--pre 2",
        timeout: 300,
    },
    // Every kind of mapping, checked by CRC after the restore.
    ZdtmTest {
        name: "zdtm/static/maps00",
        opts: "--pre 2",
        timeout: 300,
    },
    // madvise(): DONTFORK, HUGEPAGE (THP), MERGEABLE (KSM) and others.
    ZdtmTest {
        name: "zdtm/static/maps02",
        opts: "--pre 2",
        timeout: 300,
    },
    // Protections changed after the mappings were made.
    ZdtmTest {
        name: "zdtm/static/mprotect00",
        opts: "--pre 2",
        timeout: 300,
    },
    // Shared anonymous memory written while CRIU works (static/shm, SysV, runs only in the
    // namespace flavour: in the long subset).
    ZdtmTest {
        name: "zdtm/transition/shmem",
        opts: "--pre 2",
        timeout: 300,
    },
    // Random MAP_FIXED mappings and writes while CRIU works, parent and child compared.
    ZdtmTest {
        name: "zdtm/transition/maps007",
        opts: "--pre 2",
        timeout: 300,
    },
];

/// A test through two pre-dumps, as [`CI_TESTS`] runs each.
const fn pre2(name: &'static str) -> ZdtmTest {
    ZdtmTest {
        name,
        opts: "--pre 2",
        timeout: 300,
    }
}

/// The whole subset (`cargo xtask zdtm --long` and `cargo xtask long`): [`CI_TESTS`] and the
/// other tests of zdtm's memory that run in its host flavour, each through two pre-dumps.
/// [`NOT_IN_SUBSET`] has the memory tests left out, and why.
pub(crate) const LONG_TESTS: &[ZdtmTest] = &[
    pre2("zdtm/static/mem-touch"),
    pre2("zdtm/static/maps00"),
    pre2("zdtm/static/maps01"),
    pre2("zdtm/static/maps02"),
    pre2("zdtm/static/maps04"),
    pre2("zdtm/static/maps05"),
    pre2("zdtm/static/maps06"),
    pre2("zdtm/static/maps09"),
    pre2("zdtm/static/maps10"),
    pre2("zdtm/static/maps_file_prot"),
    pre2("zdtm/static/mprotect00"),
    pre2("zdtm/static/cow00"),
    pre2("zdtm/static/cow01"),
    pre2("zdtm/static/grow_map"),
    pre2("zdtm/static/memfd00"),
    pre2("zdtm/static/shmemfd"),
    pre2("zdtm/static/shmemfd-priv"),
    pre2("zdtm/static/thp_disable"),
    pre2("zdtm/static/mlock_setuid"),
    pre2("zdtm/static/unlink_mmap00"),
    pre2("zdtm/static/uffd-events"),
    pre2("zdtm/transition/maps007"),
    pre2("zdtm/transition/maps008"),
    pre2("zdtm/transition/shmem"),
    pre2("zdtm/transition/lazy-thp"),
];

/// zdtm's memory tests not in [`LONG_TESTS`], and why: each fails (or cannot run) the same way
/// with both implementations and both CRIUs, for a reason outside PAGEMAP_SCAN.
pub(crate) const NOT_IN_SUBSET: &[(&str, &str)] = &[
    (
        "static/shm, shm-mp, shm-unaligned, shm-hugetlb",
        "zdtm runs them only in the namespace flavours (`-f ns`/`uns`); tried with `-f ns`, \
         CRIU refused the guest's root (`The root task has another root than mntns`: the guest \
         chroots into the host's root over 9p) and network locking needs iptables-restore, \
         which the host does not have. transition/shmem covers shared anonymous memory here",
    ),
    (
        "static/mtime_mmap",
        "fails before any CRIU runs: the test checks that a write through a shared mapping \
         updates the file's mtime, which tmpfs (no page_mkwrite), where the guest keeps zdtm's \
         tree, does not do",
    ),
    (
        "static/maps03",
        "`noauto` in zdtm: a 10 GiB mapping, more than the guest's 2 GiB and swap",
    ),
    (
        "static/memfd02-hugetlb",
        "needs hugetlb pages reserved and the memfd_hugetlb feature, which the guest does not set up",
    ),
    (
        "guard regions",
        "CRIU 4.1.1 neither handles nor tests MADV_GUARD_INSTALL regions",
    ),
];

/// Where the whole subset's results go in docs/long-run.md: between these lines, so that the
/// long reliability run and `cargo xtask zdtm --long` each rewrite only their part.
const SECTION_BEGIN: &str =
    "<!-- zdtm: written by cargo xtask zdtm --long and cargo xtask long -->";
const SECTION_END: &str = "<!-- zdtm end -->";

/// `doc` with its zdtm section replaced by `section` (added at the end if it has none).
pub(crate) fn splice_section(doc: &str, section: &str) -> String {
    util::splice(doc, SECTION_BEGIN, SECTION_END, section)
}

/// The zdtm section of an earlier docs/long-run.md, to keep when only the reliability part is
/// written anew.
pub(crate) fn section_of(doc: &str) -> Option<String> {
    util::section_between(doc, SECTION_BEGIN, SECTION_END)
}

/// The write-up of a zdtm boot: per test, each run's result.
pub(crate) fn long_section(ctx: &Ctx, p: &ZdtmPlan, z: &ZdtmBoot) -> String {
    let lines = report::result_lines(&z.results);
    let mut md = format!(
        "## CRIU's test suite (zdtm)\n\n\
         {} of zdtm's memory tests of CRIU {} (Debian trixie's source), each with `--pre 2` \
         (two pre-dumps with memory tracking, then the dump, the restore and zdtm's checks), on \
         the `{CRIU_VARIANT}` kernel at commit {}, {:.0} min under TCG on 2 vCPUs: the released \
         CRIU (soft-dirty cleared by clear_refs) and CRIU with `tooling/criu/`'s patch \
         (`PM_SCAN_CLEAR_SOFT_DIRTY`), each against the C and the Rust PAGEMAP_SCAN. A test \
         passes when zdtm.py passes it and the dumps' logs show the clear this CRIU must use.\n\n",
        p.runs.first().map_or(0, |r| r.tests.len()),
        criu::VERSION,
        super::repo_commit(ctx).trim(),
        z.seconds / 60.0,
    );
    for s in &z.run.suites {
        md.push_str(&format!("    {}\n", s.line()));
    }
    md.push_str("\n| test |");
    for r in &p.runs {
        md.push_str(&format!(" {} |", r.label));
    }
    md.push_str("\n|---|");
    for _ in &p.runs {
        md.push_str("---|");
    }
    md.push('\n');
    let tests: Vec<String> = p
        .runs
        .first()
        .map(|r| {
            r.tests
                .iter()
                .map(|t| format!("{} {}", t.name, t.opts).trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    // Each run's TAP results.
    let results: Vec<Vec<ktap::Node>> = p
        .runs
        .iter()
        .map(|r| {
            report::suite_frame(&lines, ZDTM_SUITE, &r.label)
                .map(|(body, _)| ktap::parse(&body.join("\n")).roots)
                .unwrap_or_default()
        })
        .collect();
    for t in &tests {
        md.push_str(&format!("| {t} |"));
        for run in &results {
            let verdict = run.iter().find(|n| n.name == *t).map_or("not run", |n| {
                if n.ok {
                    "pass"
                } else {
                    "FAIL"
                }
            });
            md.push_str(&format!(" {verdict} |"));
        }
        md.push('\n');
    }
    md.push_str("\nzdtm's memory tests not in the subset, and why:\n\n");
    for (t, why) in NOT_IN_SUBSET {
        md.push_str(&format!("- {t}: {why}.\n"));
    }
    let fails: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("not ok "))
        .collect();
    if !fails.is_empty() {
        md.push_str("\nFailures (the console log has each one's output):\n\n```\n");
        for l in fails {
            md.push_str(l);
            md.push('\n');
        }
        md.push_str("```\n");
    }
    md
}

/// A zdtm boot, ready to start.
pub(crate) struct ZdtmPlan {
    kernel: PathBuf,
    initrd: PathBuf,
    runs: Vec<ZdtmRun>,
    bench: Option<guest::CriuBench>,
}

/// Builds both CRIUs and the guest's /init for `tests`: the released CRIU, then the patched
/// one, each against the C and the Rust implementation.
pub(crate) fn plan(ctx: &Ctx, kernel: &Path, tests: &[ZdtmTest]) -> Result<ZdtmPlan> {
    let released = criu::build(ctx, criu::Flavor::Released)?;
    let patched = criu::build(ctx, criu::Flavor::Patched)?;
    let mut runs = Vec::new();
    for (tree, clear_flag) in [(released, false), (patched, true)] {
        for imp in [IMPL_C, IMPL_RUST] {
            runs.push(ZdtmRun {
                label: if clear_flag {
                    format!("clear-flag {imp}")
                } else {
                    imp.to_string()
                },
                imp: imp.to_string(),
                tree: tree.clone(),
                clear_flag,
                tests: tests.to_vec(),
            });
        }
    }
    let initrd = guest::initramfs(
        ctx,
        CRIU_VARIANT,
        &Mode::Zdtm {
            runs: runs.clone(),
            bench: None,
            shell: None,
        },
    )?;
    Ok(ZdtmPlan {
        kernel: kernel.to_path_buf(),
        initrd,
        runs,
        bench: None,
    })
}

/// The CRIU pre-dump benchmark's target: 256 MiB (65536 pages), three timed pre-dumps per CRIU
/// and share written.
const BENCH_MIB: u32 = 256;
const BENCH_REPS: u32 = 3;
/// Guest seconds the benchmark may take (about 5 min of TCG here).
const BENCH_TIMEOUT: u64 = 1800;

/// Builds both CRIUs and the guest's /init for the pre-dump benchmark alone (no zdtm run),
/// to boot with the guest clock counting instructions.
pub(crate) fn bench_plan(ctx: &Ctx, kernel: &Path) -> Result<ZdtmPlan> {
    let bench = guest::CriuBench {
        released: criu::build(ctx, criu::Flavor::Released)?,
        patched: criu::build(ctx, criu::Flavor::Patched)?,
        mib: BENCH_MIB,
        reps: BENCH_REPS,
        icount: true,
    };
    let initrd = guest::initramfs(
        ctx,
        CRIU_VARIANT,
        &Mode::Zdtm {
            runs: Vec::new(),
            bench: Some(bench.clone()),
            shell: None,
        },
    )?;
    Ok(ZdtmPlan {
        kernel: kernel.to_path_buf(),
        initrd,
        runs: Vec::new(),
        bench: Some(bench),
    })
}

/// What a zdtm boot found, and its results channel.
pub(crate) struct ZdtmBoot {
    pub(crate) run: GuestRun,
    pub(crate) results: String,
    pub(crate) seconds: f64,
}

/// Boots the zdtm guest, with the host's root shared read-only over 9p, and collects a suite
/// per run.
pub(crate) fn boot(ctx: &Ctx, p: &ZdtmPlan) -> Result<ZdtmBoot> {
    let out = {
        let icount = p.bench.as_ref().is_some_and(|b| b.icount);
        let _s = Stage::new(if icount {
            "boot-criu-bench"
        } else {
            "boot-zdtm"
        });
        let secs: u64 = p.runs.iter().map(|r| u64::from(r.timeout())).sum::<u64>()
            + p.bench.as_ref().map_or(0, |_| BENCH_TIMEOUT);
        let logdir = ctx.logs().join(if icount {
            format!("bench-{CRIU_VARIANT}")
        } else {
            format!("test-{CRIU_VARIANT}")
        });
        // Instructions are counted on one vCPU (icount needs single-threaded TCG).
        let mut b = qemu::Boot::new(
            &p.kernel,
            &p.initrd,
            if icount { 1 } else { GUEST_CPUS },
            Duration::from_secs(180 + secs),
            &logdir,
        );
        b.icount = icount;
        b.extra_args = virtfs_args();
        qemu::boot(&b)?
    };
    println!(
        "zdtm guest ran {:.1}s (qemu {}); console {} results {}",
        out.seconds,
        out.status.map_or("killed".to_string(), |s| s.to_string()),
        out.console_path.display(),
        out.results_path.display()
    );
    let mut problems = Vec::new();
    if out.timed_out {
        problems.push("the zdtm guest timed out".to_string());
    }
    if !out
        .results
        .lines()
        .any(|l| l.trim_end() == pmrs_protocol::ALL_DONE)
    {
        problems.push("the zdtm guest did not finish its runs".to_string());
    }
    let mut expected: Vec<(String, String)> = p
        .runs
        .iter()
        .map(|r| (ZDTM_SUITE.to_string(), r.label.clone()))
        .collect();
    if p.bench.is_some() {
        expected.push((
            guest::CRIU_BENCH_SUITE.to_string(),
            guest::CRIU_BENCH_LABEL.to_string(),
        ));
    }
    Ok(ZdtmBoot {
        run: GuestRun {
            suites: report::guest_suites(&out.results, &expected),
            problems,
            splats: splat::scan(&out.console),
            // The pre-dump benchmark's lines.
            figure_lines: report::result_lines(&out.results)
                .into_iter()
                .filter(|l| {
                    l.starts_with("CRIU-PREDUMP ")
                        || (l.starts_with("BENCH") && l.contains(" criu-predump"))
                })
                .map(str::to_string)
                .collect(),
        },
        seconds: out.seconds,
        results: out.results,
    })
}

/// Builds (or finds built) the kernel zdtm runs on.
pub(crate) fn criu_kernel(ctx: &Ctx) -> Result<PathBuf> {
    let _s = Stage::new(&format!("build-{CRIU_VARIANT}"));
    kbuild::build(ctx, CRIU_VARIANT)
}

/// Builds the CRIU kernel and both CRIUs and boots zdtm with `tests`.
pub(crate) fn build_and_boot(ctx: &Ctx, tests: &[ZdtmTest]) -> Result<(ZdtmPlan, ZdtmBoot)> {
    let kernel = criu_kernel(ctx)?;
    let p = plan(ctx, &kernel, tests)?;
    let z = boot(ctx, &p)?;
    Ok((p, z))
}

/// Writes the zdtm section of docs/long-run.md.
pub(crate) fn write_long_doc(ctx: &Ctx, p: &ZdtmPlan, z: &ZdtmBoot) -> Result<()> {
    let path = ctx.repo.join("docs/long-run.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, splice_section(&doc, &long_section(ctx, p, z)))?;
    println!("wrote the zdtm section of {}", path.display());
    Ok(())
}

/// Where the pre-dump benchmark's write-up goes in docs/benchmarks.md.
const BENCH_BEGIN: &str = "<!-- criu-predump: written by cargo xtask bench -->";
const BENCH_END: &str = "<!-- criu-predump end -->";

/// Builds the CRIU kernel and both CRIUs and boots the pre-dump benchmark (instructions).
pub(crate) fn criu_bench(ctx: &Ctx) -> Result<ZdtmBoot> {
    let kernel = criu_kernel(ctx)?;
    boot(ctx, &bench_plan(ctx, &kernel)?)
}

/// The pre-dump benchmark's section of docs/benchmarks.md.
pub(crate) fn bench_section(ctx: &Ctx, z: &ZdtmBoot) -> String {
    let mut md = format!(
        "## CRIU's pre-dump iteration: clear_refs against the get-and-clear\n\n\
         What one iteration of CRIU's incremental pre-dump (`criu pre-dump --track-mem \
         --prev-images-dir`) costs the tracker, CRIU {} as released (it clears soft-dirty state \
         by writing 4 to clear_refs) against CRIU with `tooling/criu/`'s patch \
         (`PM_SCAN_CLEAR_SOFT_DIRTY`), at commit {}: `criu-predump-bench` in the `{CRIU_VARIANT}` \
         kernel's guest under `-icount shift=0` on one vCPU, so a time is instructions (kernel \
         and user, CRIU and its parasite). The target maps {BENCH_MIB} MiB of anonymous memory \
         (no THP) and writes it all; a first pre-dump (not counted) clears its state, the \
         target writes 1% or 10% of its pages, then the second pre-dump is counted; the \
         median of {BENCH_REPS}, the CRIUs taking turns, both logging at verbosity 4 as zdtm \
         runs CRIU. `criu-predump` is the whole iteration; `criu-predump-clear-step` the clear \
         alone, from CRIU's log timestamps (its `Reset N's dirty tracking` line to the next: \
         the clear_refs write, or the patch's ioctls over the VMAs the dump scanned). The \
         clear is a small part of an iteration (CRIU's start, the freeze, the parasite, \
         /proc parsing, the pagemap scan and the copy of the written pages into the images \
         are the rest), so what the flag saves there shows in the iteration diluted.\n\n```\n",
        criu::VERSION,
        super::repo_commit(ctx).trim()
    );
    for l in &z.run.figure_lines {
        md.push_str(l);
        md.push('\n');
    }
    md.push_str("```\n");
    md
}

/// Writes the pre-dump benchmark's section into `doc` (docs/benchmarks.md), or keeps the
/// section `old` had (an earlier write-up) when there is no new run.
pub(crate) fn splice_bench(doc: &str, old: &str, section: Option<String>) -> String {
    match section.or_else(|| util::section_between(old, BENCH_BEGIN, BENCH_END)) {
        Some(s) => util::splice(doc, BENCH_BEGIN, BENCH_END, &s),
        None => doc.to_string(),
    }
}

/// `cargo xtask zdtm --shell`: the zdtm guest with a shell on the terminal, chrooted into the
/// host's root, where both CRIUs and zdtm.py can be run by hand.
fn shell(ctx: &Ctx) -> Result<bool> {
    let kernel = criu_kernel(ctx)?;
    let trees = [
        criu::build(ctx, criu::Flavor::Released)?,
        criu::build(ctx, criu::Flavor::Patched)?,
    ];
    let initrd = guest::initramfs(
        ctx,
        CRIU_VARIANT,
        &Mode::Zdtm {
            runs: Vec::new(),
            bench: None,
            shell: Some(trees),
        },
    )?;
    let logdir = ctx.logs().join(format!("shell-{CRIU_VARIANT}"));
    let mut b = qemu::Boot::new(
        &kernel,
        &initrd,
        GUEST_CPUS,
        Duration::from_secs(24 * 3600),
        &logdir,
    );
    b.interactive = true;
    b.extra_args = virtfs_args();
    let out = qemu::boot(&b)?;
    let splats = splat::scan(&out.console);
    for l in &splats {
        println!("SPLAT: {l}");
    }
    Ok(splats.is_empty())
}

/// QEMU's arguments that share the host's root read-only with the guest over 9p.
fn virtfs_args() -> Vec<String> {
    vec![
        "-virtfs".into(),
        format!(
            "local,path=/,mount_tag={},security_model=none,readonly=on,multidevs=remap",
            guest::HOST_ROOT_TAG
        ),
    ]
}

/// `cargo xtask zdtm`: builds the CRIU kernel and both CRIUs, boots, runs [`CI_TESTS`] (or with
/// `--long` [`LONG_TESTS`], written up in docs/long-run.md) with each run and prints their
/// suites; with `--bench`, the pre-dump benchmark alone (its lines printed, nothing written).
pub(crate) fn cmd_zdtm(ctx: &Ctx, o: &Opts) -> Result<bool> {
    setup_and_materialize(ctx, o)?;
    if o.shell {
        return shell(ctx);
    }
    let g = if o.zdtm_bench {
        criu_bench(ctx)?.run
    } else {
        let (p, z) = build_and_boot(ctx, if o.zdtm_long { LONG_TESTS } else { CI_TESTS })?;
        if o.zdtm_long {
            write_long_doc(ctx, &p, &z)?;
        }
        z.run
    };
    // The pre-dump benchmark's figures, if it ran.
    for l in &g.figure_lines {
        println!("{l}");
    }
    let mut ok = g.problems.is_empty() && g.splats.is_empty();
    for s in &g.suites {
        println!("{}", s.line());
        for p in &s.problems {
            println!("  {}: {p}", s.name);
        }
        ok &= s.counts.failed == 0 && s.problems.is_empty();
    }
    for l in &g.splats {
        println!("  splat: {l}");
    }
    for p in &g.problems {
        println!("PROBLEM: {p}");
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_replaced_in_place_or_added() {
        let added = splice_section("# Long\n\ntext\n", "zdtm one");
        assert_eq!(section_of(&added).as_deref(), Some("zdtm one"));
        assert!(added.starts_with("# Long\n\ntext\n\n"));
        let again = splice_section(&format!("{added}tail\n"), "zdtm two");
        assert_eq!(section_of(&again).as_deref(), Some("zdtm two"));
        assert!(again.ends_with(&format!("{SECTION_END}\ntail\n")));
        assert!(!again.contains("zdtm one"));
        assert_eq!(section_of("no section"), None);
    }

    #[test]
    fn the_long_write_up_has_each_runs_verdict_per_test() {
        let t = |name| ZdtmTest {
            name,
            opts: "--pre 2",
            timeout: 300,
        };
        let run = |label: &str| ZdtmRun {
            label: label.to_string(),
            imp: "c".to_string(),
            tree: PathBuf::from("/criu"),
            clear_flag: false,
            tests: vec![t("zdtm/static/a"), t("zdtm/static/b")],
        };
        let p = ZdtmPlan {
            kernel: PathBuf::new(),
            initrd: PathBuf::new(),
            runs: vec![run("c"), run("rust")],
            bench: None,
        };
        let results = "@@SUITE-BEGIN zdtm c\nTAP version 13\nok 1 zdtm/static/a --pre 2\n\
                       not ok 2 zdtm/static/b --pre 2\n# ok 3 zdtm/static/a --pre 2\n1..2\n\
                       @@SUITE-END zdtm c rc=1 secs=9\n@@SUITE-BEGIN zdtm rust\n\
                       ok 1 zdtm/static/b --pre 2\n";
        let z = ZdtmBoot {
            run: GuestRun {
                suites: Vec::new(),
                problems: Vec::new(),
                splats: Vec::new(),
                figure_lines: Vec::new(),
            },
            results: results.to_string(),
            seconds: 60.0,
        };
        let ctx = Ctx::new();
        let md = long_section(&ctx, &p, &z);
        assert!(
            md.contains("| zdtm/static/a --pre 2 | pass | not run |"),
            "{md}"
        );
        assert!(
            md.contains("| zdtm/static/b --pre 2 | FAIL | pass |"),
            "{md}"
        );
        assert!(md.contains("not ok 2 zdtm/static/b --pre 2"), "{md}");
    }

    #[test]
    fn the_long_subset_holds_the_ci_one() {
        assert!(LONG_TESTS.len() >= 20);
        for t in CI_TESTS {
            assert!(LONG_TESTS
                .iter()
                .any(|l| l.name == t.name && l.opts == t.opts));
        }
    }
}
