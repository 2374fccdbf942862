// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask`: set up, materialize, build, boot and test the Rust page-walk/PAGEMAP_SCAN
//! series on Linux 7.3.
//!
//! The two commands that matter:
//! - `cargo xtask run`: set up, build the patched kernel, boot it and run a PAGEMAP_SCAN
//!   demonstration (`--shell` for an interactive guest shell);
//! - `cargo xtask test`: every test (what `.ci/run` runs).

mod bench;
mod ctx;
mod guest;
mod kbuild;
mod ktap;
mod lint;
mod manifest;
mod materialize;
mod matrix;
mod qemu;
mod report;
mod series;
mod setup;
mod splat;
mod util;

use ctx::Ctx;
use guest::{
    Differential, Mode, DIFF_IMPL, DIFF_SUITE, DIFF_TIMEOUT, IMPL_C, IMPL_RUST, RUST_IMPL_OPTION,
};
use manifest::Manifest;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use util::{Context as _, Result, Stage};

const USAGE: &str = "usage: cargo xtask <command> [options]

commands:
  run        set up, materialize, build, boot the patched kernel and run the PAGEMAP_SCAN demo
             --shell            then give an interactive shell on the guest console
  test       every test: host unit tests, build, boot, all guest suites (what .ci/run runs)
             --impl c|rust|all  implementations to run the suites against (default: all built)
             --diff-calls N     calls the differential tester compares (default 100000)
             --oracle-calls N   calls the clear-flag oracle checks (default 40000)
             --diff-seed S      its seed (default 1); a difference prints the seed to replay
             --skip-series      development shortcut: no series stage (the run then fails)
             --no-debug         development shortcut: no debug-kernel boot (the run then fails)
  bench      boot the vm kernel with the full benchmark (Rust vs C in one boot, dirty-tracking
             methods compared), first with the guest clock counting instructions (QEMU -icount,
             one vCPU; BENCH-ICOUNT lines), then under plain TCG (wall time, 2 vCPUs); writes
             docs/benchmarks.md and docs/benchmarks-dirty-tracking.svg
             --no-wall          the instruction-count boot only
             --from-results F   write them up from an earlier icount boot's results log (the
                                wall section from the last wall boot's log, if any)
  long       the long reliability run (issue 8): boots the debug kernel and runs the fuzzer
             and the no-lost-write soak in chunks of their own seed; prints each chunk's
             FUZZ/SOAK lines and their sums and writes docs/long-run.md
             --calls N          fuzzed calls in all (default 1000000)
             --writes N         checked writes in all (default 10000000)
             --chunks K         chunks (default 10), seeds --seed S (default 1) .. S+K-1
             --variant NAME     the kernel (default: debug; only its run writes the file)
             --from-results F   write up an earlier boot's results log instead
  matrix     build the series in the configurations of tooling/configs/matrix.toml (x86_64
             with one option off at a time, arm64, riscv64), boot those with suites under
             QEMU TCG, write docs/matrix.md; `cargo xtask matrix --help` for its options
  setup      install packages and bindgen, fetch and unpack the base (idempotent)
  materialize  base + series as commits on branch `series` in the cache tree (refuses to
             run over uncommitted changes or commits not exported)
  export     write branch `series` of the cache tree back into the repository (files, diffs,
             subjects, changelogs): edit the series there with git, then export
  configure  write and check the variant's .config only (after setup and materialize)
  build      configure and build the kernel
  check-series  build every patch of the series in turn (base + patches 1..i)
  series     emit the series (git format-patch + cover letter) into the cache's series-out/,
             check it (checkpatch --strict, per-patch builds, CONFIG_RUST=n build, git am
             round trip, get_maintainer, captured git send-email run); prints SERIES: lines
             --test-identity    use a placeholder From: (not for sending); CI always does

common options:
  --variant NAME   kernel variant from tooling/configs/variants.toml (default: vm)
  --no-setup       skip the setup stage (packages, bindgen, base)
  --no-materialize build the cache tree as it is (to try a change made there by hand)

environment: PMRS_CACHE (default ~/.cache/pmrs) holds the base tree, builds and logs.";

/// KUnit suites that must show up on the console when their option is set.
const KUNIT_SUITES: &[(&str, &str)] = &[
    ("CONFIG_RUST_KERNEL_DOCTESTS", "kunit/rust_doctests_kernel"),
    ("CONFIG_RUST_PAGEWALK_KUNIT_TEST", "kunit/rust_mm_pagewalk"),
];

/// vCPUs of the guest: races in the suites need two really running CPUs.
const GUEST_CPUS: u32 = 2;

struct Opts {
    variant: String,
    shell: bool,
    no_setup: bool,
    no_materialize: bool,
    test_identity: bool,
    imp: Option<String>,
    diff: Differential,
    skip_series: bool,
    no_debug: bool,
    /// `bench --no-wall`: no plain-TCG boot after the instruction-count one.
    no_wall: bool,
    /// `bench --from-results`: a results log of an earlier benchmark boot to write up.
    from_results: Option<std::path::PathBuf>,
    /// Whether `--variant` was given (`long` defaults to the debug kernel).
    variant_set: bool,
    /// `long`: fuzzed calls, checked writes, chunks and first seed.
    long_calls: u64,
    long_writes: u64,
    chunks: u64,
    seed: u64,
}

fn parse_opts(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        variant: "vm".into(),
        shell: false,
        no_setup: false,
        no_materialize: false,
        test_identity: false,
        imp: None,
        diff: Differential {
            calls: 100_000,
            oracle_calls: 40_000,
            seed: 1,
        },
        skip_series: false,
        no_debug: false,
        no_wall: false,
        from_results: None,
        variant_set: false,
        long_calls: 1_000_000,
        long_writes: 10_000_000,
        chunks: 10,
        seed: 1,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--variant" => {
                o.variant = it
                    .next()
                    .ok_or_else(|| err!("--variant needs a name"))?
                    .clone();
                o.variant_set = true;
            }
            "--calls" | "--writes" | "--chunks" | "--seed" => {
                let v: u64 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| err!("{a} needs a number"))?;
                match a.as_str() {
                    "--calls" => o.long_calls = v,
                    "--writes" => o.long_writes = v,
                    "--chunks" if v > 0 => o.chunks = v,
                    "--chunks" => bail!("--chunks needs at least 1"),
                    _ => o.seed = v,
                }
            }
            "--shell" => o.shell = true,
            "--no-setup" => o.no_setup = true,
            "--no-materialize" => o.no_materialize = true,
            "--test-identity" => o.test_identity = true,
            "--skip-series" => o.skip_series = true,
            "--no-debug" => o.no_debug = true,
            "--no-wall" => o.no_wall = true,
            "--from-results" => {
                o.from_results = Some(
                    it.next()
                        .ok_or_else(|| err!("--from-results needs a path"))?
                        .into(),
                )
            }
            "--impl" => {
                let v = it
                    .next()
                    .ok_or_else(|| err!("--impl needs c, rust or all"))?;
                if ![IMPL_C, IMPL_RUST, "all"].contains(&v.as_str()) {
                    bail!("--impl takes c, rust or all, not `{v}`");
                }
                o.imp = Some(v.clone());
            }
            "--diff-calls" | "--oracle-calls" | "--diff-seed" => {
                let v: u64 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| err!("{a} needs a number"))?;
                match a.as_str() {
                    "--diff-calls" => o.diff.calls = v,
                    "--oracle-calls" => o.diff.oracle_calls = v,
                    _ => o.diff.seed = v,
                }
            }
            _ => bail!("unknown option `{a}`\n\n{USAGE}"),
        }
    }
    Ok(o)
}

fn prepare(ctx: &Ctx, o: &Opts) -> Result<(Manifest, std::path::PathBuf)> {
    prepare_with(ctx, o, false)
}

/// Loads the manifest, runs setup (unless `--no-setup`) and materializes the series (unless
/// `--no-materialize`).
fn setup_and_materialize(ctx: &Ctx, o: &Opts) -> Result<Manifest> {
    let m = Manifest::load(&ctx.repo)?;
    if !o.no_setup {
        let _s = Stage::new("setup");
        setup::setup(ctx, &m)?;
    }
    if !o.no_materialize {
        let _s = Stage::new("materialize");
        materialize::materialize(ctx, &m)?;
    }
    Ok(m)
}

/// Setup, materialize and build; with `relint`, the series' objects are rebuilt so that the
/// build log holds every warning about them.
fn prepare_with(ctx: &Ctx, o: &Opts, relint: bool) -> Result<(Manifest, std::path::PathBuf)> {
    let m = setup_and_materialize(ctx, o)?;
    let kernel = build_variant(ctx, o, &m, relint)?;
    Ok((m, kernel))
}

/// Builds `o.variant` from the materialized tree; with `relint`, the series' objects are
/// rebuilt so that the build log holds every warning about them.
fn build_variant(ctx: &Ctx, o: &Opts, m: &Manifest, relint: bool) -> Result<std::path::PathBuf> {
    if relint {
        for obj in lint::objects_for(&lint::series_paths(&ctx.repo, m)) {
            let _ = std::fs::remove_file(ctx.build_dir(&o.variant).join(obj));
        }
    }
    let _s = Stage::new(&format!("build-{}", o.variant));
    kbuild::build(ctx, &o.variant)
}

fn cmd_run(ctx: &Ctx, o: &Opts) -> Result<bool> {
    let (_, kernel) = prepare(ctx, o)?;
    let initrd = {
        let _s = Stage::new("guest-userspace");
        guest::initramfs(ctx, &o.variant, &Mode::Demo { shell: o.shell })?
    };
    let _s = Stage::new("boot");
    let out = qemu::boot(&qemu::Boot {
        machine: &qemu::X86_64,
        init_args: "",
        kernel: &kernel,
        initrd: &initrd,
        mem: "2G",
        smp: GUEST_CPUS,
        timeout: Duration::from_secs(if o.shell { 24 * 3600 } else { 300 }),
        interactive: o.shell,
        logdir: &ctx.logs().join(format!("run-{}", o.variant)),
        echo_results: !o.shell,
        icount: false,
    })?;
    let splats = splat::scan(&out.console);
    for l in &splats {
        println!("SPLAT: {l}");
    }
    let demo_ok = out
        .results
        .lines()
        .any(|l| l.trim_end() == "@@DEMO-END rc=0");
    if !o.shell {
        println!(
            "guest ran {:.1}s; console log {}",
            out.seconds,
            out.console_path.display()
        );
        if out.timed_out {
            println!("guest timed out");
        }
        if !demo_ok {
            println!("the demo did not finish successfully");
        }
    }
    Ok(splats.is_empty() && !out.timed_out && (o.shell || demo_ok))
}

/// Implementations the built kernel offers.
fn built_impls(ctx: &Ctx, variant: &str) -> Vec<String> {
    let mut v = vec![IMPL_C.to_string()];
    if kbuild::config_has(ctx, variant, RUST_IMPL_OPTION) {
        v.push(IMPL_RUST.to_string());
    }
    v
}

fn host_unit_tests(ctx: &Ctx) -> Result<report::Suite> {
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

/// Lint checks on the series' files: build (compiler and clippy) warnings, rustfmtcheck,
/// rustdoc warnings. One case each.
fn lint_suite(ctx: &Ctx, variant: &str, m: &Manifest) -> Result<report::Suite> {
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

/// The debug variant, booted after the vm one, and the differential and oracle calls run on
/// it (KASAN makes each about seven times slower under TCG). The debug boot is there for what
/// KASAN, lockdep and the VM checks see on every path; the volume is the vm boot's (and
/// `cargo xtask long`'s). pmscan-diff builds its twins anew every 4000 calls, each build under
/// the next shmem THP mode (always, advise, never): 4000 differential calls are one build
/// (always), 12000 oracle calls one build per mode.
const DEBUG: &str = "debug";
const DEBUG_DIFF_CALLS: u64 = 4_000;
const DEBUG_ORACLE_CALLS: u64 = 12_000;

/// CI-sized reliability runs (issue 8): fuzzed calls and checked writes, on the vm kernel and
/// on the debug kernel (there with slab and page-allocation fault injection).
const FUZZ_CALLS: u64 = 50_000;
const SOAK_WRITES: u64 = 1_000_000;
const DEBUG_FUZZ_CALLS: u64 = 20_000;
const DEBUG_SOAK_WRITES: u64 = 150_000;

/// The variant built with CONFIG_RUST=n, and the label its (C only) suites run under.
const NORUST: &str = "norust";
const NORUST_IMPL: &str = "c-norust";

/// What one boot of the test guest found.
struct GuestRun {
    suites: Vec<report::Suite>,
    problems: Vec<String>,
    splats: Vec<String>,
    /// `FUZZ:` and `SOAK:` lines of the reliability runs, if any.
    figure_lines: Vec<String>,
}

/// Boots `kernel` with the test initramfs of `variant` and collects its suites: KUnit from the
/// console, each per-implementation suite once per entry of `impls`, and the differential
/// tester and the reliability runs if asked for.
// One boot's plan is these arguments; a struct for it would only be unpacked here.
#[allow(clippy::too_many_arguments)]
fn guest_suites(
    ctx: &Ctx,
    variant: &str,
    kernel: &std::path::Path,
    impls: &[String],
    differential: Option<Differential>,
    reliability: Option<guest::Reliability>,
    stage: &str,
) -> Result<GuestRun> {
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
    let out = {
        let _s = Stage::new(stage);
        let per_impl: u64 = impls
            .iter()
            .flat_map(|i| guest::per_impl_suites(i))
            .chain(guest::once_suites())
            .map(|(_, t)| u64::from(t))
            .sum();
        let diff = differential.map_or(0, |_| u64::from(DIFF_TIMEOUT))
            + reliability.map_or(0, |_| u64::from(guest::FUZZ_TIMEOUT + guest::SOAK_TIMEOUT));
        qemu::boot(&qemu::Boot {
            machine: &qemu::X86_64,
            init_args: "",
            kernel,
            initrd: &initrd,
            mem: "2G",
            smp: GUEST_CPUS,
            timeout: Duration::from_secs(120 + per_impl + diff),
            interactive: false,
            logdir: &ctx.logs().join(format!("test-{variant}")),
            echo_results: false,
            icount: false,
        })?
    };
    println!(
        "guest ran {:.1}s (qemu {}); console {} results {}",
        out.seconds,
        out.status.map_or("killed".to_string(), |s| s.to_string()),
        out.console_path.display(),
        out.results_path.display()
    );
    for l in report::suite_times(&out.results) {
        println!("  {l}");
    }
    let mut problems = Vec::new();
    if out.timed_out {
        problems.push("the guest timed out".to_string());
    }
    match out.results.lines().find(|l| l.starts_with("@@GUEST-READY")) {
        None => problems.push("the guest never reached /init".to_string()),
        Some(l) if !l.trim_end().ends_with(&format!("cpus={GUEST_CPUS}")) => {
            problems.push(format!(
                "the guest did not bring up {GUEST_CPUS} CPUs: {}",
                l.trim_end()
            ))
        }
        Some(_) => {}
    }
    if !out.results.lines().any(|l| l.trim_end() == "@@ALL-DONE") {
        problems.push("the guest did not finish its suites".to_string());
    }
    let mut suites = report::kunit_suites(&out.console);
    for (opt, suite) in KUNIT_SUITES {
        if kbuild::config_has(ctx, variant, opt) && !suites.iter().any(|s| s.name == *suite) {
            problems.push(format!("{opt} is set but KUnit printed no {suite} suite"));
        }
    }
    let mut expected: Vec<(String, String)> = impls
        .iter()
        .flat_map(|i| guest::per_impl_suites(i).map(move |(n, _)| (n.to_string(), i.clone())))
        .chain(guest::once_suites().map(|(n, _)| (n.to_string(), guest::ONCE_IMPL.to_string())))
        .collect();
    if differential.is_some() {
        expected.push((DIFF_SUITE.to_string(), DIFF_IMPL.to_string()));
        expected.push((guest::ORACLE_SUITE.to_string(), DIFF_IMPL.to_string()));
    }
    if reliability.is_some() {
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

fn cmd_test(ctx: &Ctx, o: &Opts) -> Result<bool> {
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
    {
        let _s = Stage::new("lint");
        suites.push(lint_suite(ctx, &o.variant, &m)?);
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
    let guest = guest_suites(
        ctx,
        &o.variant,
        &kernel,
        &impls,
        both.then_some(o.diff),
        both.then_some(guest::Reliability {
            fuzz_calls: FUZZ_CALLS,
            soak_writes: SOAK_WRITES,
            inject: false,
            seed: o.diff.seed,
        }),
        "boot-and-suites",
    )?;
    suites.extend(guest.suites);
    let mut figure_lines = guest.figure_lines;
    let mut problems = guest.problems;
    let mut splats = guest.splats;
    // The short benchmark, in a boot of its own with the guest clock counting instructions.
    let mut bench_lines = Vec::new();
    if both {
        let b = bench_boot(ctx, &o.variant, &kernel, true, true)?;
        suites.extend(b.suites);
        problems.extend(b.problems);
        splats.extend(b.splats);
        bench_lines = b.bench_lines;
    }
    if o.no_debug {
        problems.push("the debug-kernel boot was skipped (--no-debug)".to_string());
    }
    if o.variant == "vm" && !o.no_debug {
        // The same suites on the debug kernel (KASAN, lockdep, DEBUG_VM, page-table check,
        // Rust debug assertions and overflow checks): any splat fails the run.
        let dkernel = {
            let _s = Stage::new(&format!("build-{DEBUG}"));
            kbuild::build(ctx, DEBUG)?
        };
        let dimpls = built_impls(ctx, DEBUG);
        let diff = Differential {
            calls: DEBUG_DIFF_CALLS.min(o.diff.calls),
            oracle_calls: DEBUG_ORACLE_CALLS.min(o.diff.oracle_calls),
            seed: o.diff.seed,
        };
        let g = guest_suites(
            ctx,
            DEBUG,
            &dkernel,
            &dimpls,
            (dimpls.len() == 2).then_some(diff),
            (dimpls.len() == 2).then_some(guest::Reliability {
                fuzz_calls: DEBUG_FUZZ_CALLS,
                soak_writes: DEBUG_SOAK_WRITES,
                inject: true,
                seed: o.diff.seed,
            }),
            "boot-debug",
        )?;
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
            let g = guest_suites(
                ctx,
                NORUST,
                &norust,
                &[NORUST_IMPL.to_string()],
                None,
                None,
                "boot-norust",
            )?;
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

    println!();
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

/// What one benchmark boot gave.
struct BenchRun {
    results: String,
    suites: Vec<report::Suite>,
    problems: Vec<String>,
    splats: Vec<String>,
    bench_lines: Vec<String>,
}

/// Boots `kernel` with only `pmscan-bench`: the short run (`quick`) or the full one; with
/// `icount`, on one vCPU whose clock counts instructions (QEMU `-icount shift=0`), else under
/// plain TCG with the test guest's vCPUs.
fn bench_boot(
    ctx: &Ctx,
    variant: &str,
    kernel: &std::path::Path,
    quick: bool,
    icount: bool,
) -> Result<BenchRun> {
    let what = if icount { "icount" } else { "wall" };
    let initrd = {
        let _s = Stage::new(&format!("guest-userspace-bench-{what}"));
        guest::initramfs(ctx, variant, &Mode::Bench { quick, icount })?
    };
    let cpus = if icount { 1 } else { GUEST_CPUS };
    let timeout = if quick {
        guest::BENCH_QUICK_TIMEOUT
    } else {
        guest::BENCH_FULL_TIMEOUT
    };
    let out = {
        let _s = Stage::new(&format!("boot-bench-{what}"));
        qemu::boot(&qemu::Boot {
            machine: &qemu::X86_64,
            init_args: "",
            kernel,
            initrd: &initrd,
            mem: "2G",
            smp: cpus,
            timeout: Duration::from_secs(120 + u64::from(timeout)),
            interactive: false,
            logdir: &ctx.logs().join(format!("bench-{variant}-{what}")),
            echo_results: false,
            icount,
        })?
    };
    let mut problems = Vec::new();
    if out.timed_out {
        problems.push(format!("the {what} benchmark guest timed out"));
    }
    match out.results.lines().find(|l| l.starts_with("@@GUEST-READY")) {
        None => problems.push(format!("the {what} benchmark guest never reached /init")),
        Some(l) if !l.trim_end().ends_with(&format!("cpus={cpus}")) => problems.push(format!(
            "the {what} benchmark guest did not bring up {cpus} CPU(s): {}",
            l.trim_end()
        )),
        Some(_) => {}
    }
    let expected = [(
        guest::BENCH_SUITE.to_string(),
        guest::BENCH_IMPL.to_string(),
    )];
    Ok(BenchRun {
        suites: report::guest_suites(&out.results, &expected),
        problems,
        splats: splat::scan(&out.console),
        bench_lines: bench::parse(&out.results).bench_lines,
        results: out.results,
    })
}

/// The full benchmark: boots the vm kernel with only `pmscan-bench`, first counting
/// instructions, then (unless `--no-wall`) under plain TCG; prints the `BENCH-ICOUNT` and
/// `BENCH` lines and writes docs/benchmarks.md and docs/benchmarks-dirty-tracking.svg.
fn cmd_bench(ctx: &Ctx, o: &Opts) -> Result<bool> {
    let wall_log = ctx
        .logs()
        .join(format!("bench-{}-wall", o.variant))
        .join("results.log");
    let mut ok = true;
    let mut report_run = |r: &BenchRun| {
        for s in &r.suites {
            println!("{}", s.line());
            for p in &s.problems {
                println!("  {p}");
            }
            ok &= s.counts.failed == 0 && s.problems.is_empty();
        }
        for p in &r.problems {
            println!("PROBLEM: {p}");
        }
        println!("SPLATS: {}", r.splats.len());
        ok &= r.splats.is_empty() && r.problems.is_empty();
    };
    let (icount, wall) = if let Some(path) = &o.from_results {
        // An earlier icount boot's results channel; the wall section from the last wall boot.
        let results =
            std::fs::read_to_string(path).context(|| format!("reading {}", path.display()))?;
        let wall = std::fs::read_to_string(&wall_log).ok();
        (results, wall)
    } else {
        let (_, kernel) = prepare(ctx, o)?;
        if built_impls(ctx, &o.variant).len() != 2 {
            bail!("the `{}` kernel has only the C implementation", o.variant);
        }
        let i = bench_boot(ctx, &o.variant, &kernel, false, true)?;
        report_run(&i);
        let w = if o.no_wall {
            None
        } else {
            let w = bench_boot(ctx, &o.variant, &kernel, false, false)?;
            report_run(&w);
            Some(w.results)
        };
        (i.results, w)
    };
    let ri = bench::parse(&icount);
    let rw = wall.as_deref().map(bench::parse);
    let commit = repo_commit(ctx);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, v)| v.trim().to_string());
    let machine = format!(
        "host {cpu}, {} cores; QEMU {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        util::output(Command::new("qemu-system-x86_64").arg("--version"))
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or("")
            .trim()
    );
    let inline = if kbuild::config_has(ctx, &o.variant, "CONFIG_RUST_INLINE_HELPERS") {
        "CONFIG_RUST_INLINE_HELPERS=y"
    } else {
        "CONFIG_RUST_INLINE_HELPERS not set (every C helper a call)"
    };
    let config = format!(
        "Linux 7.3.4 + this series, clang/rustc LLVM 22, -O2 \
         (CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE), {inline}, no debug options (variant {})",
        o.variant
    );
    let docs = ctx.repo.join("docs");
    std::fs::create_dir_all(&docs)?;
    // The vm kernel's figures are the series' own; another variant's go beside them.
    let (md, svg) = if o.variant == "vm" {
        (
            "benchmarks.md".to_string(),
            "benchmarks-dirty-tracking.svg".to_string(),
        )
    } else {
        (
            format!("benchmarks-{}.md", o.variant),
            format!("benchmarks-{}-dirty-tracking.svg", o.variant),
        )
    };
    std::fs::write(
        docs.join(&md),
        bench::markdown(&ri, rw.as_ref(), commit.trim(), &machine, &config, &svg),
    )?;
    std::fs::write(docs.join(&svg), bench::svg(&ri))?;
    println!();
    for l in ri
        .bench_lines
        .iter()
        .chain(rw.iter().flat_map(|r| &r.bench_lines))
    {
        println!("{l}");
    }
    println!(
        "wrote docs/benchmarks.md and docs/benchmarks-dirty-tracking.svg (commit {})",
        commit.trim()
    );
    Ok(ok)
}

/// Seconds before the guest kills one suite of one chunk of the long run.
const LONG_SUITE_TIMEOUT: u32 = 2400;

/// Adds up `key <n>` figures of `FUZZ:`/`SOAK:` lines (`calls 5, chaos 7, ...`) into `sums`,
/// keeping the order keys first appear in.
fn add_figures(line: &str, sums: &mut Vec<(String, u64)>) {
    let Some((_, body)) = line.split_once(": ") else {
        return;
    };
    for part in body.split(", ") {
        let Some((k, v)) = part.trim().rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = v.parse::<u64>() else {
            continue;
        };
        match sums.iter_mut().find(|(key, _)| key == k) {
            Some((_, n)) => *n += v,
            None => sums.push((k.to_string(), v)),
        }
    }
}

fn figures_line(prefix: &str, sums: &[(String, u64)]) -> String {
    let body: Vec<String> = sums.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!("{prefix}: {}", body.join(", "))
}

/// The repository's commit, `-dirty` with uncommitted changes, for write-ups of a run.
fn repo_commit(ctx: &Ctx) -> String {
    util::output(Command::new("git").current_dir(&ctx.repo).args([
        "describe",
        "--always",
        "--dirty",
        "--abbrev=12",
    ]))
    .unwrap_or_default()
}

/// The last `[ seconds]` kernel timestamp of a console log: how long the guest ran.
fn last_timestamp(console: &str) -> Option<f64> {
    console.lines().rev().find_map(|l| {
        let (t, _) = l.strip_prefix('[')?.split_once(']')?;
        t.trim().parse().ok()
    })
}

/// The long reliability run (issue 8): the fuzzer (with fault injection) and the soak in
/// chunks on the debug kernel, in one boot; sums their figures and writes docs/long-run.md.
fn cmd_long(ctx: &Ctx, o: &Opts) -> Result<bool> {
    let variant = if o.variant_set {
        o.variant.as_str()
    } else {
        DEBUG
    };
    let chunks: Vec<guest::Reliability> = (0..o.chunks)
        .map(|i| guest::Reliability {
            fuzz_calls: o.long_calls.div_ceil(o.chunks),
            soak_writes: o.long_writes.div_ceil(o.chunks),
            inject: true,
            seed: o.seed + i,
        })
        .collect();
    let (results, console, minutes, timed_out) = if let Some(path) = &o.from_results {
        // An earlier boot's results channel, its console next to it.
        let console = path.with_file_name("console.log");
        let console = std::fs::read_to_string(&console)
            .context(|| format!("reading {}", console.display()))?;
        let minutes = last_timestamp(&console).map(|s| s / 60.0);
        (
            std::fs::read_to_string(path).context(|| format!("reading {}", path.display()))?,
            console,
            minutes,
            false,
        )
    } else {
        setup_and_materialize(ctx, o)?;
        let kernel = {
            let _s = Stage::new(&format!("build-{variant}"));
            kbuild::build(ctx, variant)?
        };
        if built_impls(ctx, variant).len() != 2 {
            bail!("the `{variant}` kernel has only the C implementation");
        }
        let initrd = {
            let _s = Stage::new("guest-userspace");
            guest::initramfs(
                ctx,
                variant,
                &Mode::Long {
                    chunks: chunks.clone(),
                    timeout: LONG_SUITE_TIMEOUT,
                },
            )?
        };
        let t0 = Instant::now();
        let out = {
            let _s = Stage::new("boot-long");
            qemu::boot(&qemu::Boot {
                machine: &qemu::X86_64,
                init_args: "",
                kernel: &kernel,
                initrd: &initrd,
                mem: "2G",
                smp: GUEST_CPUS,
                timeout: Duration::from_secs(120 + 2 * o.chunks * u64::from(LONG_SUITE_TIMEOUT)),
                interactive: false,
                logdir: &ctx.logs().join(format!("long-{variant}")),
                echo_results: false,
                icount: false,
            })?
        };
        (
            out.results,
            out.console,
            Some(t0.elapsed().as_secs_f64() / 60.0),
            out.timed_out,
        )
    };
    let expected: Vec<(String, String)> = chunks
        .iter()
        .flat_map(|c| {
            [guest::FUZZ_SUITE, guest::SOAK_SUITE]
                .map(|n| (n.to_string(), guest::long_label(c.seed)))
        })
        .collect();
    let suites = report::guest_suites(&results, &expected);
    let splats = splat::scan(&console);
    let lines = report::result_lines(&results);
    let mut rows = Vec::new();
    let (mut fuzz, mut soak) = (Vec::new(), Vec::new());
    for c in &chunks {
        let label = guest::long_label(c.seed);
        let figure = |n: &str, p: &str| {
            report::suite_frame(&lines, n, &label)
                .and_then(|(body, _)| body.iter().rev().find(|l| l.starts_with(p)))
                .map_or(format!("{p} (none printed)"), |l| l.to_string())
        };
        let (f, s) = (
            figure(guest::FUZZ_SUITE, "FUZZ:"),
            figure(guest::SOAK_SUITE, "SOAK:"),
        );
        add_figures(&f, &mut fuzz);
        add_figures(&s, &mut soak);
        rows.push((c.seed, f, s));
    }
    let (fuzz, soak) = (figures_line("FUZZ", &fuzz), figures_line("SOAK", &soak));
    let stalls: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("# worker ") || l.starts_with("#   "))
        .collect();
    let commit = repo_commit(ctx);
    let mut md = format!(
        "# The long reliability run\n\n\
         Written by `cargo xtask long`{} (commit {}, kernel variant `{variant}`, {} chunks, \
         {} under TCG on 2 vCPUs). Each chunk runs `pmscan-fuzz --inject` and \
         `pmscan-soak` with its own seed; the kernel has KASAN, lockdep, DEBUG_VM, page-table \
         check, Rust debug assertions and overflow checks, and boots with `panic_on_warn=1`.\n\n\
         ```\n{fuzz}\n{soak}\nconsole splats: {}\n```\n\n\
         | seed | fuzzer | soak |\n|---|---|---|\n",
        if o.from_results.is_some() {
            " from the logs of an earlier boot (`--from-results`)"
        } else {
            ""
        },
        commit.trim(),
        o.chunks,
        minutes.map_or("an earlier boot".to_string(), |m| format!("{m:.0} min")),
        splats.len()
    );
    for (seed, f, s) in &rows {
        md.push_str(&format!("| {seed} | `{f}` | `{s}` |\n"));
    }
    if !stalls.is_empty() {
        md.push_str("\nWhat the fuzzer printed about stalled workers:\n\n```\n");
        for l in &stalls {
            md.push_str(l);
            md.push('\n');
        }
        md.push_str("```\n");
    }
    // Only the debug kernel's run is the documented one.
    if variant == DEBUG {
        let docs = ctx.repo.join("docs");
        std::fs::create_dir_all(&docs)?;
        std::fs::write(docs.join("long-run.md"), md)?;
    }
    println!();
    for (seed, f, s) in &rows {
        println!("seed {seed}: {f}; {s}");
    }
    for l in &stalls {
        println!("{l}");
    }
    for s in &suites {
        println!("{}", s.line());
        for p in &s.problems {
            println!("  {p}");
        }
    }
    println!("{fuzz} ({variant} kernel, {} chunks)", o.chunks);
    println!("{soak} ({variant} kernel, {} chunks)", o.chunks);
    println!("SPLATS: {}", splats.len());
    for l in splats.iter().take(20) {
        println!("  splat: {l}");
    }
    if let Some(m) = minutes {
        println!("long: {m:.0} min");
    }
    if variant == DEBUG {
        println!("wrote docs/long-run.md");
    }
    Ok(!timed_out
        && splats.is_empty()
        && suites
            .iter()
            .all(|s| s.counts.failed == 0 && s.problems.is_empty()))
}

/// Builds base + patches 1..=i for each i in the same build directory, then returns the tree
/// to the series head. Prints `PATCH i/n: ok|FAILED <subject>`; returns whether each built.
fn per_patch_builds(ctx: &Ctx, o: &Opts, m: &Manifest) -> Result<Vec<bool>> {
    let commits = materialize::series_commits(&ctx.tree())?;
    let n = commits.len();
    let mut ok = Vec::new();
    // The builds check out each commit: nothing unsaved may be in the tree.
    materialize::guard_tree(&ctx.tree(), None)?;
    // A tree that built before with the same configuration and toolchain builds again: its
    // success is recorded by content (the tree's hash and `build_key`), as ccache would.
    let key = kbuild::build_key(ctx, &o.variant)?;
    let done = ctx.cache.join("per-patch-built");
    std::fs::create_dir_all(&done)?;
    for (i, c) in commits.iter().enumerate() {
        let subject = m.patches.get(i).map_or("", |p| p.subject.as_str());
        let t =
            util::output(setup::git(&ctx.tree()).args(["rev-parse", &format!("{c}^{{tree}}")]))?;
        let stamp = done.join(util::fnv64(&[key.as_bytes(), t.trim().as_bytes()]));
        if stamp.exists() {
            ok.push(true);
            println!(
                "PATCH {}/{n}: ok (this tree built before, same config and toolchain) {subject}",
                i + 1
            );
            continue;
        }
        util::run(setup::git(&ctx.tree()).args(["checkout", "-q", "-f", c]))?;
        let log = ctx.logs().join(format!("build-patch-{}.log", i + 1));
        let built = kbuild::build_as_is(ctx, &o.variant, &log)?;
        if built {
            std::fs::write(&stamp, format!("{} {subject}\n", t.trim()))?;
        }
        ok.push(built);
        println!(
            "PATCH {}/{n}: {} {subject}",
            i + 1,
            if built { "ok" } else { "FAILED" },
        );
    }
    util::run(setup::git(&ctx.tree()).args(["checkout", "-q", "-f", materialize::BRANCH]))?;
    Ok(ok)
}

/// Builds every patch of the series in turn; prints `builds <ok>/<n>`.
fn cmd_check_series(ctx: &Ctx, o: &Opts) -> Result<bool> {
    let m = setup_and_materialize(ctx, o)?;
    let _s = Stage::new("per-patch-builds");
    let built = per_patch_builds(ctx, o, &m)?;
    let ok = built.iter().filter(|b| **b).count();
    println!("builds {ok}/{}", built.len());
    Ok(ok == built.len())
}

/// Emits the series and checks it: checkpatch --strict, every patch builds (CONFIG_RUST=y), the
/// series builds with CONFIG_RUST=n, `git am` round trip, get_maintainer, and a captured
/// `git send-email` run. Prints the `SERIES:` line; returns the checks as a suite.
fn series_suite(ctx: &Ctx, o: &Opts, m: &Manifest) -> Result<report::Suite> {
    let id = series::identity(
        &ctx.repo,
        o.test_identity || std::env::var_os("CI").is_some(),
    )?;
    let dir = ctx.cache.join("series-out");
    let e = series::emit(ctx, m, &id, &dir)?;
    let (ck, ck_lines) = series::checkpatch(ctx, &e.patches)?;
    let per_patch = per_patch_builds(ctx, o, m)?;
    let (built, n) = (per_patch.iter().filter(|b| **b).count(), per_patch.len());
    let norust = match kbuild::build(ctx, "norust") {
        Ok(_) => true,
        Err(err) => {
            println!("  CONFIG_RUST=n build: {err}");
            false
        }
    };
    let touched = lint::series_paths(&ctx.repo, m);
    let am = series::am_roundtrip(ctx, &e, &touched)?;
    // The fixes at the front, on their own: checkpatch, builds, and `git am` onto the base.
    let k = m.patches.iter().take_while(|p| p.is_fix()).count();
    let fixes_ok = if k > 0 {
        let f = series::emit_prefix(ctx, k, e.patches.len(), &ctx.cache.join("series-out-fixes"))?;
        let (fck, _) = series::checkpatch(ctx, &f.patches)?;
        let fbuilt = per_patch.iter().take(k).filter(|b| **b).count();
        let fam = series::am_roundtrip(ctx, &f, &touched)?;
        println!(
            "FIXES: {k} patches, checkpatch {} errors {} warnings, builds {fbuilt}/{k}, am-roundtrip {}",
            fck.errors,
            fck.warnings + fck.checks,
            if fam { "ok" } else { "FAILED" }
        );
        fck.errors + fck.warnings + fck.checks == 0 && fbuilt == k && fam
    } else {
        println!("FIXES: none at the front of the series");
        true
    };
    let (to, cc) = series::recipients(ctx, &e.patches)?;
    let mails = series::send_dry_run(&e, &id, &to, &cc)?;
    let thread = series::check_thread(&mails, e.patches.len(), &id.email);
    let warnings = ck.warnings + ck.checks;
    println!(
        "SERIES: {} patches, checkpatch {} errors {} warnings, builds {built}/{n}, am-roundtrip {}",
        e.patches.len(),
        ck.errors,
        warnings,
        if am { "ok" } else { "FAILED" }
    );
    println!(
        "SERIES: CONFIG_RUST=n build {}; send-email dry run: {} mails, threading {}; To: {}; Cc: {} people",
        if norust { "ok" } else { "FAILED" },
        mails.len(),
        if thread.is_empty() { "ok" } else { "FAILED" },
        to.join(", "),
        cc.len()
    );
    println!(
        "SERIES: written to {} as {}{}",
        e.dir.display(),
        id.mailbox(),
        if id.fake {
            " (test identity: not for sending)"
        } else {
            ""
        }
    );
    let mut s = report::Suite::new("series", "emit");
    let cases: [(&str, bool, Vec<String>); 6] = [
        ("checkpatch --strict", ck.errors + warnings == 0, ck_lines),
        ("every patch builds", built == n, Vec::new()),
        ("CONFIG_RUST=n build", norust, Vec::new()),
        ("git am round trip", am, Vec::new()),
        ("send-email threading", thread.is_empty(), thread),
        ("the fixes at the front stand alone", fixes_ok, Vec::new()),
    ];
    for (name, ok, details) in cases {
        s.add_case(name, ok, details);
    }
    Ok(s)
}

fn cmd_series(ctx: &Ctx, o: &Opts) -> Result<bool> {
    let m = setup_and_materialize(ctx, o)?;
    let _s = Stage::new("series");
    let s = series_suite(ctx, o, &m)?;
    println!("{}", s.line());
    for p in &s.problems {
        println!("  {p}");
    }
    Ok(s.counts.failed == 0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        println!("{USAGE}");
        return ExitCode::from(2);
    };
    let ctx = Ctx::new();
    if cmd == "matrix" {
        // Its own options (tooling by command).
        return match matrix::cmd(&ctx, &args[1..]) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("xtask: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let res = parse_opts(&args[1..]).and_then(|o| match cmd.as_str() {
        "run" => cmd_run(&ctx, &o),
        "test" => cmd_test(&ctx, &o),
        "bench" => cmd_bench(&ctx, &o),
        "long" => cmd_long(&ctx, &o),
        "setup" => {
            let m = Manifest::load(&ctx.repo)?;
            setup::setup(&ctx, &m).map(|()| true)
        }
        "materialize" => {
            let m = Manifest::load(&ctx.repo)?;
            materialize::materialize(&ctx, &m).map(|_| true)
        }
        "export" => {
            let m = Manifest::load(&ctx.repo)?;
            materialize::export(&ctx, &m).map(|_| true)
        }
        "configure" => kbuild::configure(&ctx, &o.variant).map(|_| true),
        "check-series" => cmd_check_series(&ctx, &o),
        "series" => cmd_series(&ctx, &o),
        "build" => prepare(&ctx, &o).map(|(_, k)| {
            println!("kernel: {}", k.display());
            true
        }),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(true)
        }
        _ => Err(err!("unknown command `{cmd}`\n\n{USAGE}")),
    });
    match res {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_add_up_by_key() {
        let mut sums = Vec::new();
        add_figures(
            "FUZZ: calls 10, chaos 3, splats 0, errno-mismatch 0, hangs 1",
            &mut sums,
        );
        add_figures(
            "FUZZ: calls 5, chaos 4, splats 0, errno-mismatch 2, hangs 0",
            &mut sums,
        );
        assert_eq!(
            figures_line("FUZZ", &sums),
            "FUZZ: calls 15, chaos 7, splats 0, errno-mismatch 2, hangs 1"
        );
        add_figures("FUZZ: (none printed)", &mut sums);
        assert_eq!(sums.len(), 5);
    }

    #[test]
    fn guest_time_is_the_last_kernel_timestamp() {
        let log = "[    0.000000] Linux\n[ 5042.125000] reboot: Restarting\nqemu: done\n";
        assert_eq!(last_timestamp(log), Some(5042.125));
        assert_eq!(last_timestamp("no kernel here"), None);
    }
}
