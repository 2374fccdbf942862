// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask`: set up, materialize, build, boot and test the Rust page-walk/PAGEMAP_SCAN
//! series on Linux 7.3.
//!
//! The two commands that matter:
//! - `cargo xtask run`: set up, build the patched kernel, boot it and run a PAGEMAP_SCAN
//!   demonstration (`--shell` for an interactive guest shell);
//! - `cargo xtask test`: every test (what `.ci/run` runs).

mod bench;
mod cmd;
mod criu;
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

use cmd::*;
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
  test       every test: host unit tests, build, boot, all guest suites, zdtm's CI subset
             (what .ci/run runs)
             --impl c|rust|all  implementations to run the suites against (default: all built)
             --diff-calls N     calls the differential tester compares (default 100000)
             --clear-calls N    get-and-clear calls the differential tester compares (20000)
             --oracle-calls N   calls the clear-flag oracle checks (default 100000)
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
  long       the long reliability run (issue 8): boots the vm kernel (or --variant debug)
             and runs the fuzzer and the no-lost-write soak in chunks of their own seed;
             prints each chunk's FUZZ/SOAK lines and their sums and writes
             docs/long-run.md (vm) or
             docs/long-run-debug.md; with the vm kernel, also zdtm's whole subset (the
             zdtm section of docs/long-run.md, as `cargo xtask zdtm --long`)
             --calls N          fuzzed calls in all (default 1000000)
             --writes N         checked writes in all (default 10000000)
             --chunks K         chunks (default 10), seeds --seed S (default 1) .. S+K-1
             --variant NAME     the kernel (default: vm; `debug` writes the second file)
             --from-results F   write up an earlier boot's results log instead
  profile    an instruction profile of the guest kernel by function (QEMU TCG plugin of
             tooling/profiler, one vCPU): a scenario's scan by C, then by Rust, in one boot, or
             one dirty-tracking method; prints the table, writes it to the logs
             --scenario NAME    dense, sparse, many-vmas or uffd-wp@10 (CRIU's and Wine's
                                masks; 64 MiB unless --full)
             --method NAME --pct P  a dirty-tracking method of pmscan-bench (sd-get-and-clear-c,
                                uffd-wp-c, ...) at 0.1, 1, 10 or 100% written
             --full             1 GiB sizes      --top N  rows (default 40)
  zdtm       CRIU's own test suite: build the `criu` kernel variant and CRIU 4.1.1 (Debian's
             source, as released and with tooling/criu/*.patch), boot with the host's root
             shared over 9p, run zdtm's memory subset with --pre 2 against the C and the Rust
             PAGEMAP_SCAN, with each CRIU (SUITE zdtm <impl> and zdtm clear-flag <impl>)
             --long             the whole subset (25 tests), written up in docs/long-run.md
             --bench            only the pre-dump benchmark (released CRIU against the
                                patched one, instructions; `cargo xtask bench` writes it up)
             --shell            a shell in that guest, to run CRIU and zdtm by hand
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
  fixes      build the pristine base and the fixes series alone (C only, worktrees of their
             own), boot both with the fixes' test cases, print a FIX line per fix (pristine
             FAIL, fixed PASS) and write docs/fixes.md
  series     emit each series (git format-patch + its cover letter) into the cache's series-out/,
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
    /// `long`: fuzzed calls, checked writes, chunks and first seed.
    long_calls: u64,
    long_writes: u64,
    /// `long`: differential get-and-clear calls (C against Rust), over all chunks.
    long_clear_calls: u64,
    chunks: u64,
    seed: u64,
    /// `profile`: the scenario, or the dirty-tracking method and written percentage; full
    /// sizes; rows shown.
    profile_scenario: Option<String>,
    profile_method: Option<(String, String)>,
    profile_full: bool,
    profile_top: usize,
    /// `zdtm --long`: the whole subset, written up in docs/long-run.md.
    zdtm_long: bool,
    /// `zdtm --bench`: the CRIU pre-dump benchmark alone.
    zdtm_bench: bool,
}

/// The options of the commands that build a kernel (all but setup, materialize and export).
const BUILD_OPTIONS: &[&str] = &["--variant", "--no-setup", "--no-materialize"];

/// The options each command takes besides [`BUILD_OPTIONS`], and whether it takes those; an
/// option meant for another command is refused, not ignored.
fn command_options(cmd: &str) -> (bool, &'static [&'static str]) {
    match cmd {
        "run" => (true, &["--shell"]),
        "test" => (
            true,
            &[
                "--impl",
                "--diff-calls",
                "--clear-calls",
                "--oracle-calls",
                "--diff-seed",
                "--skip-series",
                "--no-debug",
                "--test-identity",
            ],
        ),
        "bench" => (true, &["--no-wall", "--from-results"]),
        "long" => (
            true,
            &[
                "--calls",
                "--writes",
                "--clear-calls",
                "--chunks",
                "--seed",
                "--from-results",
            ],
        ),
        "series" => (true, &["--test-identity"]),
        "profile" => (
            true,
            &["--scenario", "--method", "--pct", "--full", "--top"],
        ),
        "zdtm" => (true, &["--long", "--bench", "--shell"]),
        "configure" | "build" | "check-series" | "fixes" => (true, &[]),
        _ => (false, &[]),
    }
}

fn parse_opts(cmd: &str, args: &[String]) -> Result<Opts> {
    let (build, own) = command_options(cmd);
    let allowed: Vec<&str> = if build { BUILD_OPTIONS } else { &[] }
        .iter()
        .chain(own)
        .copied()
        .collect();
    if let Some(a) = args
        .iter()
        .find(|a| a.starts_with("--") && !allowed.contains(&a.as_str()))
    {
        if allowed.is_empty() {
            bail!("`{cmd}` takes no options (`{a}` given)\n\n{USAGE}");
        }
        bail!(
            "`{a}` is not an option of `{cmd}`, which takes {}\n\n{USAGE}",
            allowed.join(", ")
        );
    }
    let mut o = Opts {
        variant: "vm".into(),
        shell: false,
        no_setup: false,
        no_materialize: false,
        test_identity: false,
        imp: None,
        diff: Differential {
            calls: 100_000,
            clear_calls: 20_000,
            oracle_calls: 40_000,
            oracle_per_build: 4_000,
            seed: 1,
        },
        skip_series: false,
        no_debug: false,
        no_wall: false,
        from_results: None,
        long_calls: 1_000_000,
        long_writes: 10_000_000,
        long_clear_calls: 1_000_000,
        chunks: 10,
        seed: 1,
        profile_scenario: None,
        profile_method: None,
        profile_full: false,
        profile_top: 40,
        zdtm_long: false,
        zdtm_bench: false,
    };
    let mut pct: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--variant" => {
                o.variant = it
                    .next()
                    .ok_or_else(|| err!("--variant needs a name"))?
                    .clone();
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
            "--long" => o.zdtm_long = true,
            "--bench" => o.zdtm_bench = true,
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
            "--diff-calls" | "--clear-calls" | "--oracle-calls" | "--diff-seed" => {
                let v: u64 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| err!("{a} needs a number"))?;
                match a.as_str() {
                    "--diff-calls" => o.diff.calls = v,
                    "--clear-calls" => {
                        o.diff.clear_calls = v;
                        o.long_clear_calls = v;
                    }
                    "--oracle-calls" => o.diff.oracle_calls = v,
                    _ => o.diff.seed = v,
                }
            }
            "--scenario" | "--method" | "--pct" => {
                let v = it.next().ok_or_else(|| err!("{a} needs a value"))?.clone();
                match a.as_str() {
                    "--scenario" => o.profile_scenario = Some(v),
                    "--method" => o.profile_method = Some((v, String::new())),
                    _ => pct = Some(v),
                }
            }
            "--full" => o.profile_full = true,
            "--top" => {
                o.profile_top = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| err!("--top needs a number"))?;
            }
            _ => bail!("unknown option `{a}`\n\n{USAGE}"),
        }
    }
    match (&mut o.profile_method, pct) {
        (Some(m), Some(p)) => m.1 = p,
        (None, None) => {}
        _ => bail!("--method and --pct go together"),
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

/// Implementations the built kernel offers.
fn built_impls(ctx: &Ctx, variant: &str) -> Vec<String> {
    let mut v = vec![IMPL_C.to_string()];
    if kbuild::config_has(ctx, variant, RUST_IMPL_OPTION) {
        v.push(IMPL_RUST.to_string());
    }
    v
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
    let res = parse_opts(cmd, &args[1..]).and_then(|o| match cmd.as_str() {
        "run" => cmd_run(&ctx, &o),
        "test" => cmd_test(&ctx, &o),
        "bench" => cmd_bench(&ctx, &o),
        "long" => cmd_long(&ctx, &o),
        "profile" => cmd_profile(&ctx, &o),
        "zdtm" => zdtm::cmd_zdtm(&ctx, &o),
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
        "fixes" => cmd_fixes(&ctx, &o),
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

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_belong_to_their_command() {
        let o = parse_opts("test", &args(&["--oracle-calls", "7", "--diff-calls", "9"])).unwrap();
        assert_eq!((o.diff.calls, o.diff.oracle_calls), (9, 7));
        assert!(parse_opts("long", &args(&["--calls", "5", "--variant", "vm"])).is_ok());
        // An option of another command is refused, not silently ignored.
        let Err(e) = parse_opts("test", &args(&["--shell"])) else {
            panic!("--shell accepted by test");
        };
        let e = e.to_string();
        assert!(e.contains("`--shell` is not an option of `test`"), "{e}");
        assert!(parse_opts("run", &args(&["--diff-calls", "3"])).is_err());
        assert!(parse_opts("bench", &args(&["--calls", "3"])).is_err());
        assert!(parse_opts("export", &args(&["--variant", "vm"])).is_err());
        assert!(parse_opts("export", &[]).is_ok());
    }
}
