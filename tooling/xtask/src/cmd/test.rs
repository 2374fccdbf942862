// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask test`: every test (what `.ci/run` runs): host unit tests, the series stage,
//! lint, the vm, debug and `CONFIG_RUST=n` boots with their suites, and CRIU's zdtm subset.

use crate::*;

pub(crate) fn host_unit_tests(ctx: &Ctx) -> Result<report::Suite> {
    let out = Command::new("cargo")
        .current_dir(&ctx.repo)
        .args(["test", "--quiet", "--workspace"])
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = report::cargo_test_counts(&text).unwrap_or_default();
    let mut problems = Vec::new();
    if !out.status.success() {
        print!("{text}");
        problems.push(format!("cargo test exited {}", out.status));
    }
    Ok(report::Suite {
        name: "host-unit".into(),
        imp: "tooling".into(),
        counts: ktap::Counts {
            failed: counts.failed.max(usize::from(!problems.is_empty())),
            ..counts
        },
        problems,
    })
}

/// The userland VMA tests of the tree (tools/testing/vma: mm/vma.c built against stubs, merge
/// and split cases), which the series' VMA changes must keep passing.
pub(crate) fn vma_userland_suite(ctx: &Ctx) -> Result<report::Suite> {
    let dir = ctx.tree().join("tools/testing/vma");
    let mut s = report::Suite::new("vma-userland", "series");
    let build = Command::new("make")
        .current_dir(&dir)
        .args(["-j2", "vma"])
        .output()?;
    if !build.status.success() {
        print!(
            "{}{}",
            String::from_utf8_lossy(&build.stdout),
            String::from_utf8_lossy(&build.stderr)
        );
        s.problems
            .push(format!("make -C tools/testing/vma exited {}", build.status));
        s.counts.failed = 1;
        return Ok(s);
    }
    let run = Command::new("./vma").current_dir(&dir).output()?;
    let text = String::from_utf8_lossy(&run.stdout).to_string()
        + String::from_utf8_lossy(&run.stderr).as_ref();
    // Its last line: "N tests run, P passed, F failed."
    let summary = text.lines().rev().find_map(|l| {
        let (run, rest) = l.split_once(" tests run, ")?;
        let (passed, rest) = rest.split_once(" passed, ")?;
        let failed = rest.strip_suffix(" failed.")?;
        Some((
            run.trim().parse::<usize>().ok()?,
            passed.parse::<usize>().ok()?,
            failed.parse::<usize>().ok()?,
        ))
    });
    match summary {
        Some((total, passed, failed)) if total == passed + failed => {
            s.counts.passed = passed;
            s.counts.failed = failed;
        }
        _ => {
            s.problems
                .push("no test summary from tools/testing/vma/vma".into());
            s.counts.failed = 1;
        }
    }
    if !run.status.success() || s.counts.failed > 0 {
        print!("{text}");
        if !run.status.success() {
            s.problems
                .push(format!("tools/testing/vma/vma exited {}", run.status));
        }
    }
    Ok(s)
}

/// Lint checks on the series' files: build (compiler and clippy) warnings, rustfmtcheck,
/// rustdoc warnings. One case each.
pub(crate) fn lint_suite(ctx: &Ctx, variant: &str, m: &Manifest) -> Result<report::Suite> {
    let paths = lint::series_paths(&ctx.repo, m);
    let mut s = report::Suite::new("lint", "series");
    let build_log = std::fs::read_to_string(ctx.logs().join(format!("build-{variant}.log")))
        .unwrap_or_default();
    let mut cases: Vec<(&str, Vec<String>)> = vec![(
        "build warnings (CLIPPY=1)",
        lint::findings(&build_log, &paths),
    )];
    let (ok, out) = lint::make_target(ctx, variant, "rustfmtcheck")?;
    let mut fmt = Vec::new();
    if !ok {
        fmt.extend(
            out.lines()
                .filter(|l| l.starts_with("Diff in"))
                .map(str::to_string),
        );
        if fmt.is_empty() {
            fmt.push("make rustfmtcheck failed".to_string());
        }
    }
    cases.push(("rustfmtcheck", fmt));
    let (ok, out) = lint::make_target(ctx, variant, "rustdoc")?;
    let mut doc = lint::findings(&out, &paths);
    if !ok {
        doc.push("make rustdoc failed".to_string());
    }
    cases.push(("rustdoc", doc));
    for (name, found) in cases {
        s.add_case(name, found.is_empty(), found);
    }
    Ok(s)
}

/// The debug variant, booted beside the vm one, and the differential and oracle calls run on
/// it (KASAN makes each about seven times slower under TCG). The debug boot is there for what
/// KASAN, lockdep and the VM checks see on every path; the volume is the vm boot's (and
/// `cargo xtask long`'s). pmscan-diff builds its twins anew every 4000 calls, each build under
/// the next shmem THP mode (always, advise, never): 4000 differential calls are one build
/// (always), 20000 oracle calls five (every mode; the vm boot's 100000 25). The oracle had
/// 8000 here while the two boots ran one after the other (a new machine's `.ci/run` must stay
/// under 60 min); side by side the debug boot is the longer one and sets the time.
pub(crate) const DEBUG: &str = "debug";
pub(crate) const DEBUG_DIFF_CALLS: u64 = 4_000;
pub(crate) const DEBUG_CLEAR_CALLS: u64 = 5_000;
pub(crate) const DEBUG_ORACLE_CALLS: u64 = 8_000;
/// CI-sized reliability runs (issue 8): fuzzed calls and checked writes, on the vm kernel and
/// on the debug kernel (there with slab and page-allocation fault injection).
pub(crate) const FUZZ_CALLS: u64 = 50_000;
pub(crate) const SOAK_WRITES: u64 = 1_000_000;
pub(crate) const DEBUG_FUZZ_CALLS: u64 = 20_000;
/// 150000 until the debug boot ran beside the vm one and the oracle went to 20000 calls there:
/// the debug boot is for what KASAN and lockdep see on each path (100000 writes go through
/// every memory type's fault and clear paths many times); the volume is the vm boot's 1000000
/// and the long run's.
pub(crate) const DEBUG_SOAK_WRITES: u64 = 100_000;

/// The variant built with CONFIG_RUST=n, and the label its (C only) suites run under.
pub(crate) const NORUST: &str = "norust";
pub(crate) const NORUST_IMPL: &str = "c-norust";

/// What one boot of the test guest found.
pub(crate) struct GuestRun {
    pub(crate) suites: Vec<report::Suite>,
    pub(crate) problems: Vec<String>,
    pub(crate) splats: Vec<String>,
    /// `FUZZ:` and `SOAK:` lines of the reliability runs, if any.
    pub(crate) figure_lines: Vec<String>,
}

/// One boot of the test guest, ready to start: its kernel, its initramfs (built) and what the
/// suites are.
pub(crate) struct GuestPlan {
    variant: String,
    kernel: std::path::PathBuf,
    initrd: std::path::PathBuf,
    impls: Vec<String>,
    differential: Option<Differential>,
    reliability: Option<guest::Reliability>,
    stage: String,
}

/// Builds the test initramfs of `variant` for a boot of `kernel` that runs KUnit (from the
/// console), each per-implementation suite once per entry of `impls`, and the differential
/// tester and the reliability runs if asked for.
pub(crate) fn guest_plan(
    ctx: &Ctx,
    variant: &str,
    kernel: &std::path::Path,
    impls: &[String],
    differential: Option<Differential>,
    reliability: Option<guest::Reliability>,
    stage: &str,
) -> Result<GuestPlan> {
    let initrd = {
        let _s = Stage::new(&format!("guest-userspace-{variant}"));
        guest::initramfs(
            ctx,
            variant,
            &Mode::Tests {
                impls: impls.to_vec(),
                differential,
                reliability,
            },
        )?
    };
    Ok(GuestPlan {
        variant: variant.to_string(),
        kernel: kernel.to_path_buf(),
        initrd,
        impls: impls.to_vec(),
        differential,
        reliability,
        stage: stage.to_string(),
    })
}

/// Boots a planned test guest and collects its suites. Safe to run beside another boot (its
/// own log directory; what it prints about the boot goes out in one piece).
pub(crate) fn guest_boot(ctx: &Ctx, p: &GuestPlan) -> Result<GuestRun> {
    let variant = p.variant.as_str();
    let out = {
        let _s = Stage::new(&p.stage);
        let per_impl: u64 = p
            .impls
            .iter()
            .flat_map(|_| guest::per_impl_suites())
            .chain(guest::once_suites())
            .map(|(_, t)| u64::from(t))
            .sum();
        let diff = p.differential.map_or(0, |_| u64::from(DIFF_TIMEOUT))
            + p.reliability
                .map_or(0, |_| u64::from(guest::FUZZ_TIMEOUT + guest::SOAK_TIMEOUT));
        qemu::boot(&qemu::Boot::new(
            &p.kernel,
            &p.initrd,
            GUEST_CPUS,
            Duration::from_secs(120 + per_impl + diff),
            &ctx.logs().join(format!("test-{variant}")),
        ))?
    };
    let mut said = format!(
        "{} guest ran {:.1}s (qemu {}); console {} results {}\n",
        variant,
        out.seconds,
        out.status.map_or("killed".to_string(), |s| s.to_string()),
        out.console_path.display(),
        out.results_path.display()
    );
    for l in report::suite_times(&out.results) {
        said.push_str(&format!("  {l}\n"));
    }
    print!("{said}");
    let mut problems = Vec::new();
    if out.timed_out {
        problems.push("the guest timed out".to_string());
    }
    match out
        .results
        .lines()
        .find(|l| l.starts_with(pmrs_protocol::GUEST_READY))
    {
        None => problems.push("the guest never reached /init".to_string()),
        Some(l) if !l.trim_end().ends_with(&format!("cpus={GUEST_CPUS}")) => {
            problems.push(format!(
                "the guest did not bring up {GUEST_CPUS} CPUs: {}",
                l.trim_end()
            ))
        }
        Some(_) => {}
    }
    if !out
        .results
        .lines()
        .any(|l| l.trim_end() == pmrs_protocol::ALL_DONE)
    {
        problems.push("the guest did not finish its suites".to_string());
    }
    let mut suites = report::kunit_suites(&out.console);
    for (opt, suite) in KUNIT_SUITES {
        if kbuild::config_has(ctx, variant, opt) && !suites.iter().any(|s| s.name == *suite) {
            problems.push(format!("{opt} is set but KUnit printed no {suite} suite"));
        }
    }
    // The walker documents its use by examples, which run as doctests: at least five of them.
    if kbuild::config_has(ctx, variant, "CONFIG_RUST_KERNEL_DOCTESTS") {
        let ran = suites
            .iter()
            .find(|s| s.name == "kunit/pagewalk-examples")
            .map_or(0, |s| s.counts.passed + s.counts.failed);
        if ran < 5 {
            problems.push(format!(
                "only {ran} of the walker's examples ran as doctests"
            ));
        }
    }
    let mut expected: Vec<(String, String)> = p
        .impls
        .iter()
        .flat_map(|i| guest::per_impl_suites().map(move |(n, _)| (n.to_string(), i.clone())))
        .chain(guest::once_suites().map(|(n, _)| (n.to_string(), guest::ONCE_IMPL.to_string())))
        .collect();
    if p.differential.is_some() {
        expected.push((DIFF_SUITE.to_string(), DIFF_IMPL.to_string()));
        expected.push((guest::DIFF_CLEAR_SUITE.to_string(), DIFF_IMPL.to_string()));
        for imp in [guest::IMPL_C, guest::IMPL_RUST] {
            expected.push((guest::ORACLE_SUITE.to_string(), imp.to_string()));
        }
    }
    if p.reliability.is_some() {
        for n in [guest::FUZZ_SUITE, guest::SOAK_SUITE] {
            expected.push((n.to_string(), guest::RELIABILITY_IMPL.to_string()));
        }
    }
    suites.extend(report::guest_suites(&out.results, &expected));
    Ok(GuestRun {
        suites,
        problems,
        splats: splat::scan(&out.console),
        figure_lines: out
            .results
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| l.starts_with("FUZZ: ") || l.starts_with("SOAK: "))
            .map(str::to_string)
            .collect(),
    })
}

pub(crate) fn cmd_test(ctx: &Ctx, o: &Opts) -> Result<bool> {
    let t0 = Instant::now();
    let mut suites = Vec::new();
    {
        let _s = Stage::new("host-unit-tests");
        suites.push(host_unit_tests(ctx)?);
    }
    let m = setup_and_materialize(ctx, o)?;
    // The series stage first: its per-patch builds run in this variant's build directory and
    // end at the series head, so the build below only recompiles the series' objects. (After
    // it, going back from the head to patch 1 rebuilt nearly everything: a full build more on
    // a cold machine.)
    let series = if o.skip_series {
        None
    } else {
        let _s = Stage::new("series");
        Some(series_suite(ctx, o, &m)?)
    };
    let kernel = build_variant(ctx, o, &m, true)?;
    // The debug kernel is built before any boot: its boot then runs beside the vm one (each
    // guest mostly keeps one host CPU busy; two of them use the machine's two).
    let debug = o.variant == "vm" && !o.no_debug;
    let dkernel = if debug {
        let _s = Stage::new(&format!("build-{DEBUG}"));
        Some(kbuild::build(ctx, DEBUG)?)
    } else {
        None
    };
    // CRIU's test suite runs on a kernel of its own (the vm one with what `criu check` needs),
    // also built before any boot; CRIU itself is built by the plan below.
    let ckernel = if o.variant == "vm" {
        Some(zdtm::criu_kernel(ctx)?)
    } else {
        None
    };
    {
        let _s = Stage::new("lint");
        suites.push(lint_suite(ctx, &o.variant, &m)?);
    }
    {
        let _s = Stage::new("vma-userland");
        suites.push(vma_userland_suite(ctx)?);
    }
    let built = built_impls(ctx, &o.variant);
    let impls: Vec<String> = match o.imp.as_deref() {
        None | Some("all") => built.clone(),
        Some(i) => vec![i.to_string()],
    };
    for i in &impls {
        if !built.contains(i) {
            bail!(
                "the `{}` kernel has no `{i}` implementation ({RUST_IMPL_OPTION} is not set)",
                o.variant
            );
        }
    }
    println!("implementations: {}", impls.join(" "));
    // The differential tester needs both implementations in the kernel.
    let both = built.len() == 2 && impls.len() == 2;
    let vm_plan = guest_plan(
        ctx,
        &o.variant,
        &kernel,
        &impls,
        both.then_some(o.diff),
        both.then_some(guest::Reliability {
            fuzz_calls: FUZZ_CALLS,
            soak_writes: SOAK_WRITES,
            clear_calls: 0,
            inject: false,
            seed: o.diff.seed,
        }),
        "boot-and-suites",
    )?;
    // The same suites on the debug kernel (KASAN, lockdep, DEBUG_VM, page-table check, Rust
    // debug assertions and overflow checks): any splat fails the run.
    let debug_plan = match &dkernel {
        Some(dk) => {
            let dimpls = built_impls(ctx, DEBUG);
            let diff = Differential {
                calls: DEBUG_DIFF_CALLS.min(o.diff.calls),
                clear_calls: DEBUG_CLEAR_CALLS.min(o.diff.clear_calls),
                oracle_calls: DEBUG_ORACLE_CALLS.min(o.diff.oracle_calls),
                oracle_per_build: o.diff.oracle_per_build,
                seed: o.diff.seed,
            };
            Some(guest_plan(
                ctx,
                DEBUG,
                dk,
                &dimpls,
                (dimpls.len() == 2).then_some(diff),
                (dimpls.len() == 2).then_some(guest::Reliability {
                    fuzz_calls: DEBUG_FUZZ_CALLS,
                    soak_writes: DEBUG_SOAK_WRITES,
                    clear_calls: 0,
                    inject: true,
                    seed: o.diff.seed,
                }),
                "boot-debug",
            )?)
        }
        None => None,
    };
    // zdtm's CI subset with the released and the patched CRIU, each against both
    // implementations.
    let zdtm_plan = match &ckernel {
        Some(ck) => Some(zdtm::plan(ctx, ck, zdtm::CI_TESTS)?),
        None => None,
    };
    // The debug boot in a thread of its own; the vm boot, the short benchmark (instruction
    // counts: the load beside it does not change them) and zdtm in this one.
    let (guest, bench, zguest, dguest) = std::thread::scope(|s| {
        let h = debug_plan
            .as_ref()
            .map(|p| s.spawn(move || guest_boot(ctx, p)));
        let guest = guest_boot(ctx, &vm_plan);
        // The short benchmark, in a boot of its own with the guest clock counting instructions.
        let bench = both.then(|| bench_boot(ctx, &o.variant, &kernel, true, true));
        let zguest = zdtm_plan
            .as_ref()
            .map(|p| zdtm::boot(ctx, p).map(|z| z.run));
        let dguest = h.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(util::Error("the debug boot's thread panicked".into())))
        });
        (guest, bench, zguest, dguest)
    });
    let guest = guest?;
    suites.extend(guest.suites);
    let mut figure_lines = guest.figure_lines;
    let mut problems = guest.problems;
    let mut splats = guest.splats;
    let mut bench_lines = Vec::new();
    if let Some(b) = bench {
        let b = b?;
        suites.extend(b.suites);
        problems.extend(b.problems);
        splats.extend(b.splats);
        bench_lines = b.bench_lines;
    }
    if let Some(z) = zguest {
        let z = z?;
        suites.extend(z.suites);
        problems.extend(
            z.problems
                .into_iter()
                .map(|p| format!("{}: {p}", zdtm::CRIU_VARIANT)),
        );
        splats.extend(z.splats);
    }
    if o.no_debug {
        problems.push("the debug-kernel boot was skipped (--no-debug)".to_string());
    }
    if let Some(g) = dguest {
        let g = g?;
        suites.extend(g.suites.into_iter().map(|mut s| {
            s.imp = format!("{}-{DEBUG}", s.imp);
            s
        }));
        problems.extend(g.problems.into_iter().map(|p| format!("{DEBUG}: {p}")));
        splats.extend(g.splats);
        figure_lines.extend(
            g.figure_lines
                .into_iter()
                .map(|l| format!("{l} ({DEBUG} kernel)")),
        );
    }
    if let Some(series) = series {
        suites.push(series);
        // The series stage built the CONFIG_RUST=n kernel: the C suites must pass on it too.
        let norust = ctx.build_dir(NORUST).join("arch/x86/boot/bzImage");
        if norust.exists() {
            let p = guest_plan(
                ctx,
                NORUST,
                &norust,
                &[NORUST_IMPL.to_string()],
                None,
                None,
                "boot-norust",
            )?;
            let g = guest_boot(ctx, &p)?;
            // A suite run once per boot says which kernel it ran on, as the others do.
            suites.extend(g.suites.into_iter().map(|mut s| {
                if s.imp == guest::ONCE_IMPL {
                    s.imp = format!("{}-{NORUST}", s.imp);
                }
                s
            }));
            problems.extend(g.problems.into_iter().map(|p| format!("{NORUST}: {p}")));
            splats.extend(g.splats);
        } else {
            problems.push("no CONFIG_RUST=n kernel to boot".to_string());
        }
    } else {
        // A development shortcut: such a run never passes.
        problems.push("the series stage was skipped (--skip-series)".to_string());
    }

    // Each fix shown on the code it fixes: the pristine base and the fixes alone, built C only
    // in worktrees of their own, booted side by side with the fixes' cases (`cargo xtask
    // fixes`, which also writes docs/fixes.md).
    let fix_lines = {
        let _s = Stage::new("fixes-proof");
        match fixes::run_proof(ctx, &m) {
            Ok(p) => {
                suites.push(p.suite());
                p.lines
            }
            Err(e) => {
                problems.push(format!("fixes proof: {e}"));
                Vec::new()
            }
        }
    };

    println!();
    for l in &fix_lines {
        println!("{l}");
    }
    for l in &figure_lines {
        println!("{l}");
    }
    for l in &bench_lines {
        println!("{l} (short run, 64 MiB; `cargo xtask bench` for the full one)");
    }
    let mut total = ktap::Counts::default();
    for s in &suites {
        println!("{}", s.line());
        for p in &s.problems {
            println!("  {}: {p}", s.name);
        }
        if s.counts.skipped > 0 {
            problems.push(format!(
                "{} {}: {} unexpected skip(s)",
                s.name, s.imp, s.counts.skipped
            ));
        }
        total.add(s.counts);
    }
    println!("SPLATS: {}", splats.len());
    for l in splats.iter().take(20) {
        println!("  splat: {l}");
    }
    for p in &problems {
        println!("PROBLEM: {p}");
    }
    let extra = splats.len() + problems.len();
    println!("test: {:.0}s wall", t0.elapsed().as_secs_f64());
    println!(
        "{} passed, {} failed, {} skipped",
        total.passed,
        total.failed + extra,
        total.skipped
    );
    Ok(total.failed == 0 && extra == 0)
}
