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
    // SysV shared memory.
    ZdtmTest {
        name: "zdtm/static/shm",
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

/// A zdtm boot, ready to start.
pub(crate) struct ZdtmPlan {
    kernel: PathBuf,
    initrd: PathBuf,
    runs: Vec<ZdtmRun>,
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
    let initrd = guest::initramfs(ctx, CRIU_VARIANT, &Mode::Zdtm { runs: runs.clone() })?;
    Ok(ZdtmPlan {
        kernel: kernel.to_path_buf(),
        initrd,
        runs,
    })
}

/// Boots the zdtm guest, with the host's root shared read-only over 9p, and collects a suite
/// per run.
pub(crate) fn boot(ctx: &Ctx, p: &ZdtmPlan) -> Result<GuestRun> {
    let out = {
        let _s = Stage::new("boot-zdtm");
        let secs: u64 = p.runs.iter().map(|r| u64::from(r.timeout())).sum();
        let logdir = ctx.logs().join(format!("test-{CRIU_VARIANT}"));
        let mut b = qemu::Boot::new(
            &p.kernel,
            &p.initrd,
            GUEST_CPUS,
            Duration::from_secs(180 + secs),
            &logdir,
        );
        b.extra_args = vec![
            "-virtfs".into(),
            format!(
                "local,path=/,mount_tag={},security_model=none,readonly=on,multidevs=remap",
                guest::HOST_ROOT_TAG
            ),
        ];
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
    let expected: Vec<(String, String)> = p
        .runs
        .iter()
        .map(|r| (ZDTM_SUITE.to_string(), r.label.clone()))
        .collect();
    Ok(GuestRun {
        suites: report::guest_suites(&out.results, &expected),
        problems,
        splats: splat::scan(&out.console),
        figure_lines: Vec::new(),
    })
}

/// `cargo xtask zdtm`: builds the CRIU kernel and both CRIUs, boots, runs [`CI_TESTS`] with each
/// run and prints their suites.
pub(crate) fn cmd_zdtm(ctx: &Ctx, o: &Opts) -> Result<bool> {
    setup_and_materialize(ctx, o)?;
    let kernel = {
        let _s = Stage::new(&format!("build-{CRIU_VARIANT}"));
        kbuild::build(ctx, CRIU_VARIANT)?
    };
    let p = plan(ctx, &kernel, CI_TESTS)?;
    let g = boot(ctx, &p)?;
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
