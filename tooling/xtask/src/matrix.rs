// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask matrix`: the series at its head built in the configurations the kernel test
//! robot tries first (x86_64 with one option turned off at a time, arm64, riscv64), one at a
//! time, each in its own reused build directory; the configurations that name suites are
//! booted under QEMU TCG and run them. Writes docs/matrix.md.
//!
//! A configuration's result is kept by content (the tree's hash, its .config, the make
//! variables and the toolchain): a second run rebuilds and reboots only what changed.

use crate::ctx::Ctx;
use crate::kbuild::{self, Variant};
use crate::manifest::Manifest;
use crate::report::{self, Suite};
use crate::util::{fnv64, output, run_logged, Context, Result, Stage};
use crate::{bail, err, guest, lint, materialize, qemu, setup, splat};
use serde::Deserialize;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask matrix [--only NAME[,NAME...]] [--no-boot] [--no-setup] [--no-materialize]
  Builds every configuration of tooling/configs/matrix.toml (or those named), boots those that
  name suites, prints `MATRIX: <n> configs, builds <ok>/<n>, boots <ok>/<m>` and writes
  docs/matrix.md (only for a run of every configuration).";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    config: Vec<Config>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    name: String,
    why: String,
    #[serde(default)]
    arch: Option<String>,
    fragments: Vec<String>,
    #[serde(default)]
    options: Vec<String>,
    #[serde(default)]
    required: Vec<String>,
    #[serde(default)]
    unset: Vec<String>,
    /// Suites the guest runs, `suite:impl`.
    #[serde(default)]
    boot: Vec<String>,
    /// What PM_SCAN_CLEAR_SOFT_DIRTY must do: `works` or `einval`.
    #[serde(default)]
    clear_flag: Option<String>,
    /// Suites that may skip whole there (`1..0 # SKIP`), with the reason in `why`.
    #[serde(default)]
    skip_whole: Vec<String>,
}

impl Config {
    fn variant(&self) -> Variant {
        Variant {
            fragments: self.fragments.clone(),
            required: self.required.clone(),
            arch: self.arch.clone(),
            options: self.options.clone(),
            unset: self.unset.clone(),
        }
    }

    /// The build (and guest) directory name in the cache.
    fn dir(&self) -> String {
        format!("m-{}", self.name)
    }

    fn arch(&self) -> &str {
        self.arch.as_deref().unwrap_or("x86_64")
    }

    /// The suites to run, as (name, impl).
    fn suites(&self) -> Result<Vec<(String, String)>> {
        self.boot
            .iter()
            .map(|s| {
                let (n, i) = s
                    .split_once(':')
                    .ok_or_else(|| err!("{}: boot entry `{s}` is not suite:impl", self.name))?;
                if program(n).is_none() {
                    bail!("{}: `{n}` is not a program the matrix guest has", self.name);
                }
                Ok((n.to_string(), i.to_string()))
            })
            .collect()
    }
}

/// A program a matrix guest can run as a suite: a selftest of guest::SELFTESTS (built by the
/// arch's C compiler) or a Rust guest program (built for the arch's Rust target), with its
/// arguments and the guest's time limit.
struct Program {
    suite: &'static str,
    bin: &'static str,
    args: &'static [&'static str],
    timeout: u32,
    rust: bool,
}

const PROGRAMS: &[Program] = &[
    Program {
        suite: "pagemap_ioctl",
        bin: "pagemap_ioctl",
        args: &[],
        timeout: 900,
        rust: false,
    },
    Program {
        suite: "soft-dirty",
        bin: "soft-dirty",
        args: &[],
        timeout: 600,
        rust: false,
    },
    Program {
        suite: "soft-dirty-clear",
        bin: "soft-dirty-clear",
        args: &[],
        timeout: 900,
        rust: false,
    },
    // The differential tester: C and Rust call by call on twin processes, every memory kind
    // the guest has; fewer calls than in `cargo xtask test` (TCG of a foreign ISA is slower).
    Program {
        suite: "differential",
        bin: "pmscan-diff",
        args: &["--calls", "10000", "--seed", "1"],
        timeout: 1500,
        rust: true,
    },
    Program {
        suite: "pmscan-regress",
        bin: "pmscan-regress",
        args: &[],
        timeout: 300,
        rust: true,
    },
];

fn program(suite: &str) -> Option<&'static Program> {
    PROGRAMS.iter().find(|p| p.suite == suite)
}

/// How a foreign architecture's guest is built and booted.
struct Arch {
    cc: &'static str,
    rust_target: &'static str,
    machine: qemu::Machine,
}

fn arch(name: &str) -> Result<Arch> {
    Ok(match name {
        "x86_64" => Arch {
            cc: "gcc",
            rust_target: "x86_64-unknown-linux-gnu",
            machine: qemu::X86_64,
        },
        "arm64" => Arch {
            cc: "aarch64-linux-gnu-gcc",
            rust_target: "aarch64-unknown-linux-gnu",
            machine: qemu::Machine {
                qemu: "qemu-system-aarch64",
                args: &["-M", "virt", "-cpu", "cortex-a72"],
                console: "ttyAMA0",
                virtio_results: true,
            },
        },
        "riscv" => Arch {
            cc: "riscv64-linux-gnu-gcc",
            rust_target: "riscv64gc-unknown-linux-gnu",
            machine: qemu::Machine {
                qemu: "qemu-system-riscv64",
                args: &["-M", "virt", "-bios", "default"],
                console: "ttyS0",
                virtio_results: true,
            },
        },
        a => bail!("no matrix support for ARCH={a}"),
    })
}

struct Opts {
    only: Vec<String>,
    boot: bool,
    setup: bool,
    materialize: bool,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        only: Vec::new(),
        boot: true,
        setup: true,
        materialize: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--only" => {
                let v = it
                    .next()
                    .ok_or_else(|| err!("--only needs a value\n\n{USAGE}"))?;
                o.only.extend(v.split(',').map(str::to_string));
            }
            "--no-boot" => o.boot = false,
            "--no-setup" => o.setup = false,
            "--no-materialize" => o.materialize = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => bail!("unknown option `{a}`\n\n{USAGE}"),
        }
    }
    Ok(o)
}

fn load(ctx: &Ctx) -> Result<Vec<Config>> {
    let p = ctx.configs().join("matrix.toml");
    let t = std::fs::read_to_string(&p).context(|| format!("read {}", p.display()))?;
    let f: File = toml::from_str(&t).map_err(|e| err!("{}: {e}", p.display()))?;
    Ok(f.config)
}

/// One configuration's outcome.
#[derive(Default)]
struct Outcome {
    built: bool,
    build_note: String,
    build_secs: u64,
    /// None: not booted.
    booted: Option<bool>,
    boot_note: String,
    boot_secs: u64,
    suites: Vec<String>,
}

impl Outcome {
    fn to_text(&self) -> String {
        let mut s = format!(
            "built={}\nbuild_secs={}\nbuild_note={}\nbooted={}\nboot_secs={}\nboot_note={}\n",
            self.built,
            self.build_secs,
            self.build_note,
            match self.booted {
                None => "-",
                Some(true) => "true",
                Some(false) => "false",
            },
            self.boot_secs,
            self.boot_note
        );
        for l in &self.suites {
            let _ = writeln!(s, "suite={l}");
        }
        s
    }

    fn from_text(t: &str) -> Option<Outcome> {
        let mut o = Outcome::default();
        for l in t.lines() {
            let (k, v) = l.split_once('=')?;
            match k {
                "built" => o.built = v == "true",
                "build_secs" => o.build_secs = v.parse().ok()?,
                "build_note" => o.build_note = v.into(),
                "booted" => {
                    o.booted = match v {
                        "true" => Some(true),
                        "false" => Some(false),
                        _ => None,
                    }
                }
                "boot_secs" => o.boot_secs = v.parse().ok()?,
                "boot_note" => o.boot_note = v.into(),
                "suite" => o.suites.push(v.into()),
                _ => return None,
            }
        }
        Some(o)
    }
}

pub fn cmd(ctx: &Ctx, args: &[String]) -> Result<bool> {
    let o = parse(args)?;
    let all = load(ctx)?;
    for n in &o.only {
        if !all.iter().any(|c| &c.name == n) {
            bail!("no configuration `{n}` in tooling/configs/matrix.toml");
        }
    }
    let m = Manifest::load(&ctx.repo)?;
    if o.setup {
        let _s = Stage::new("setup");
        setup::setup(ctx, &m)?;
        setup::matrix_packages(ctx, &m)?;
    }
    if o.materialize {
        let _s = Stage::new("materialize");
        materialize::materialize(ctx, &m)?;
    }
    let tree_hash = output(
        setup::git(&ctx.tree())
            .args(["rev-parse", "HEAD^{tree}"])
            .current_dir(ctx.tree()),
    )?;
    let paths = lint::series_paths(&ctx.repo, &m);
    let chosen: Vec<&Config> = all
        .iter()
        .filter(|c| o.only.is_empty() || o.only.contains(&c.name))
        .collect();
    let mut rows = Vec::new();
    for c in &chosen {
        let _s = Stage::new(&format!("matrix-{}", c.name));
        let out = one(ctx, c, tree_hash.trim(), &paths, o.boot)?;
        println!(
            "MATRIX-CONFIG {}: build {}{}, boot {}",
            c.name,
            if out.built { "ok" } else { "FAILED" },
            if out.build_note.is_empty() {
                String::new()
            } else {
                format!(" ({})", out.build_note)
            },
            match out.booted {
                None => "-".to_string(),
                Some(true) => "ok".to_string(),
                Some(false) => format!("FAILED ({})", out.boot_note),
            }
        );
        for s in &out.suites {
            println!("  {s}");
        }
        rows.push(out);
    }
    let n = rows.len();
    let built = rows.iter().filter(|r| r.built).count();
    let booting = rows.iter().filter(|r| r.booted.is_some()).count();
    let booted = rows.iter().filter(|r| r.booted == Some(true)).count();
    let line = format!("MATRIX: {n} configs, builds {built}/{n}, boots {booted}/{booting}");
    println!("{line}");
    if o.only.is_empty() && o.boot {
        let doc = document(ctx, &chosen, &rows, &line)?;
        println!("matrix: wrote {}", doc.display());
    }
    Ok(built == n && booted == booting)
}

/// Builds (and boots) one configuration, or takes its outcome from the cache when nothing it
/// depends on changed.
fn one(ctx: &Ctx, c: &Config, tree_hash: &str, paths: &[String], boot: bool) -> Result<Outcome> {
    let v = c.variant();
    let dir = c.dir();
    let a = arch(c.arch())?;
    let build_dir = ctx.build_dir(&dir);
    let configured = kbuild::configure_as(ctx, &dir, &v);
    let config_text = std::fs::read(build_dir.join(".config")).unwrap_or_default();
    let mut toolchain = Vec::new();
    for tool in [
        "/usr/bin/rustc",
        "clang-22",
        "ld.lld-22",
        a.cc,
        a.machine.qemu,
    ] {
        let out = Command::new(tool).arg("--version").output();
        toolchain.extend(out.map(|o| o.stdout).unwrap_or_default());
    }
    // What the guest runs besides the tree's selftests: /init and the Rust guest programs.
    let mut init_src = std::fs::read(init_source(ctx)).unwrap_or_default();
    init_src.extend(sources_of(&ctx.repo.join("tooling/guest")));
    let key = fnv64(&[
        tree_hash.as_bytes(),
        &config_text,
        ctx.make_vars().join(" ").as_bytes(),
        &toolchain,
        c.boot.join(" ").as_bytes(),
        c.clear_flag.as_deref().unwrap_or("").as_bytes(),
        &init_src,
        if boot { b"boot" } else { b"no-boot" },
    ]);
    let stamp = build_dir.join(".pmrs-matrix");
    if let Ok(t) = std::fs::read_to_string(&stamp) {
        if let Some(rest) = t.strip_prefix(&format!("{key}\n")) {
            if let Some(o) = Outcome::from_text(rest) {
                println!("matrix: {}: unchanged since its last run (kept)", c.name);
                return Ok(o);
            }
        }
    }
    let _ = std::fs::remove_file(&stamp);
    let mut out = Outcome::default();
    let start = Instant::now();
    let log = ctx.logs().join(format!("build-{dir}.log"));
    if let Err(e) = configured {
        out.build_note = format!("configure: {e}");
        out.build_secs = start.elapsed().as_secs();
        return Ok(out);
    }
    // Recompile the series' objects so that the log holds every warning about them.
    for obj in lint::objects_for(paths) {
        let _ = std::fs::remove_file(build_dir.join(obj));
    }
    let (target, image) = v.image();
    println!(
        "build: make ARCH={} -j{} {target} headers_install (O={})",
        c.arch(),
        ctx.jobs,
        build_dir.display()
    );
    let built = kbuild::run_make(
        &build_dir,
        kbuild::make_arch(ctx, &dir, c.arch.as_deref())
            .arg(format!("-j{}", ctx.jobs))
            .args([target, "headers_install"]),
        &log,
    );
    out.build_secs = start.elapsed().as_secs();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let findings = lint::findings(&log_text, paths);
    match built {
        Err(e) => {
            out.build_note = first_error(&log_text).unwrap_or_else(|| e.to_string());
            return Ok(out);
        }
        Ok(()) if !findings.is_empty() => {
            for f in &findings {
                println!("  warning in the series: {f}");
            }
            out.build_note = format!("{} warning(s) in the series' files", findings.len());
            return Ok(out);
        }
        Ok(()) => out.built = true,
    }
    if boot && !c.boot.is_empty() {
        let t = Instant::now();
        let (ok, note, lines) = boot_one(ctx, c, &a, &build_dir.join(image))?;
        out.booted = Some(ok);
        out.boot_note = note;
        out.suites = lines;
        out.boot_secs = t.elapsed().as_secs();
    }
    std::fs::write(&stamp, format!("{key}\n{}", out.to_text()))?;
    Ok(out)
}

/// The contents of every file under `dir`, in path order (for a cache key).
fn sources_of(dir: &Path) -> Vec<u8> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(f.to_string_lossy().as_bytes());
        out.extend(std::fs::read(&f).unwrap_or_default());
    }
    out
}

/// The first compiler or linker error of a build log.
fn first_error(log: &str) -> Option<String> {
    log.lines()
        .find(|l| l.contains("error:") || l.contains("undefined symbol") || l.contains("Error "))
        .map(|l| l.trim().chars().take(200).collect())
}

fn init_source(ctx: &Ctx) -> PathBuf {
    ctx.repo.join("tooling/matrix/init.c")
}

/// The guest: /init (tooling/matrix/init.c) and the selftests, static, for the arch.
fn initramfs(ctx: &Ctx, c: &Config, a: &Arch) -> Result<PathBuf> {
    let dir = c.dir();
    let g = ctx.guest_dir(&dir);
    let root = g.join("root");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let init = root.join("init");
    run_logged(
        Command::new(a.cc)
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(&init)
            .arg(init_source(ctx)),
        &ctx.logs().join(format!("init-{dir}.log")),
    )
    .context(|| format!("building the matrix /init with {}", a.cc))?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    let mut rust_bins = None;
    for (n, _) in c.suites()? {
        let p = program(&n).ok_or_else(|| err!("no program {n}"))?;
        let dst = root.join("bin").join(p.bin);
        if dst.exists() {
            continue;
        }
        if p.rust {
            if rust_bins.is_none() {
                let linker = (a.cc != "gcc").then_some(a.cc);
                rust_bins = Some(guest::build_rust_guest_for(ctx, a.rust_target, linker)?);
            }
            if let Some(dir) = &rust_bins {
                std::fs::copy(dir.join(p.bin), &dst)
                    .context(|| format!("copy guest program {}", p.bin))?;
            }
        } else {
            let t = guest::SELFTESTS
                .iter()
                .find(|t| t.name == p.bin)
                .ok_or_else(|| err!("no selftest {}", p.bin))?;
            guest::build_selftest_with(ctx, &dir, t, &dst, a.cc)?;
        }
    }
    guest::pack(&root, &g.join("initramfs.cpio.gz"))
}

/// Boots a configuration's kernel and checks its suites; returns (ok, why not, suite lines).
fn boot_one(ctx: &Ctx, c: &Config, a: &Arch, kernel: &Path) -> Result<(bool, String, Vec<String>)> {
    let initrd = initramfs(ctx, c, a)?;
    let expected = c.suites()?;
    let mut timeout = 0u32;
    let mut init_args = Vec::new();
    for (n, i) in &expected {
        let p = program(n).ok_or_else(|| err!("no program {n}"))?;
        timeout += p.timeout;
        // /init's argument: suite:impl:limit:binary[,argument...] (no spaces on the kernel's
        // command line).
        let mut cmd = vec![p.bin];
        cmd.extend(p.args);
        init_args.push(format!("{n}:{i}:{}:{}", p.timeout, cmd.join(",")));
    }
    let res = qemu::boot(&qemu::Boot {
        machine: &a.machine,
        init_args: &init_args.join(" "),
        ..qemu::Boot::new(
            kernel,
            &initrd,
            2,
            Duration::from_secs(u64::from(timeout) + 300),
            &ctx.logs().join(format!("boot-{}", c.dir())),
        )
    })?;
    let mut problems = Vec::new();
    if res.timed_out {
        problems.push("timed out".to_string());
    }
    if !res
        .results
        .lines()
        .any(|l| l.trim_end() == pmrs_protocol::ALL_DONE)
    {
        problems.push("never reached @@ALL-DONE".to_string());
    }
    let splats = splat::scan(&res.console);
    if !splats.is_empty() {
        problems.push(format!("{} splat(s): {}", splats.len(), splats[0]));
    }
    let mut lines = Vec::new();
    let lines_of = report::result_lines(&res.results);
    for s in report::guest_suites(&res.results, &expected) {
        let mut s = s;
        if s.name == "soft-dirty-clear" {
            check_clear_flag(c, &lines_of, &mut s);
        }
        if c.skip_whole.contains(&s.name) {
            allow_whole_skip(&lines_of, &mut s);
        }
        lines.push(s.line());
        for p in &s.problems {
            lines.push(format!("  {p}"));
        }
        if s.counts.failed > 0 {
            problems.push(format!("{} {} failed", s.name, s.imp));
        }
    }
    if problems.is_empty() && res.status.is_some_and(|st| !st.success()) {
        problems.push(format!("qemu exited with {:?}", res.status));
    }
    Ok((problems.is_empty(), problems.join("; "), lines))
}

/// A suite that skipped whole (`1..0 # SKIP <why>`, exit status 4) where the configuration says
/// it may: counted as one skip, with its reason, not as a failure.
fn allow_whole_skip(lines: &[&str], s: &mut Suite) {
    let Some((body, Some(end))) = report::suite_frame(lines, &s.name, &s.imp) else {
        return;
    };
    let Some(why) = body
        .iter()
        .find_map(|l| l.trim().strip_prefix("1..0 # SKIP "))
    else {
        return;
    };
    if end.starts_with("4") && s.counts.passed == 0 && s.problems.len() == 1 {
        s.counts.failed = 0;
        s.counts.skipped = 1;
        s.problems = vec![format!(
            "skipped whole, as this configuration expects: {why}"
        )];
    }
}

/// The reason soft-dirty-clear gives when the kernel refuses the flag with EINVAL.
const UNSUPPORTED: &str = "PM_SCAN_CLEAR_SOFT_DIRTY is not supported";

/// Holds soft-dirty-clear to the configuration's `clear_flag`: `works`, every case ran and none
/// skipped on the EINVAL probe; `einval`, every case skipped on it (a clean refusal).
fn check_clear_flag(c: &Config, lines: &[&str], s: &mut Suite) {
    let Some((body, _)) = report::suite_frame(lines, &s.name, &s.imp) else {
        return;
    };
    let refused = body
        .iter()
        .filter(|l| l.starts_with("ok ") && l.contains(UNSUPPORTED))
        .count();
    match c.clear_flag.as_deref() {
        Some("works") if refused > 0 => s.add_case(
            "clear_flag",
            false,
            vec![format!(
                "{refused} case(s) refused the flag where it must work"
            )],
        ),
        Some("einval") if s.counts.passed > 0 || s.counts.skipped == 0 => s.add_case(
            "clear_flag",
            false,
            vec![format!(
                "{} case(s) ran where the flag must be refused with EINVAL",
                s.counts.passed
            )],
        ),
        Some("einval") if refused < s.counts.skipped => s.add_case(
            "clear_flag",
            false,
            vec!["a case skipped for another reason than the EINVAL probe".into()],
        ),
        _ => {}
    }
}

/// docs/matrix.md: one row per configuration.
fn document(ctx: &Ctx, cs: &[&Config], rows: &[Outcome], line: &str) -> Result<PathBuf> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Build and boot matrix\n\n\
         Written by `cargo xtask matrix` at the repository commit below; the series at its head, \
         each configuration built with `CLIPPY=1` (a warning in a file the series touches fails \
         the build here) in its own build directory, one at a time on this machine's {} cores. \
         Configurations with suites boot under QEMU TCG (2 vCPUs) with a small static /init \
         (`tooling/matrix/init.c`) and run them; `clear_flag` is what `PM_SCAN_CLEAR_SOFT_DIRTY` \
         must do there. A configuration whose tree, configuration and guest did not change since \
         an earlier run keeps that run's result and times.\n\n\
         ```\n{line}\n```\n\n\
         Commit: `{}`\n\n\
         | configuration | ARCH | why | build | time | boot | time | suites |\n\
         |---|---|---|---|---|---|---|---|",
        ctx.jobs - 1,
        repo_commit(ctx)
    );
    for (c, r) in cs.iter().zip(rows) {
        let suites: Vec<&str> = r
            .suites
            .iter()
            .filter(|l| l.starts_with("SUITE "))
            .map(|l| l.trim_start_matches("SUITE "))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {}{} | {} | {} s | {} | {} | {} |",
            c.name,
            c.arch(),
            c.why,
            c.clear_flag
                .as_deref()
                .map(|f| format!(" (clear_flag: {f})"))
                .unwrap_or_default(),
            if r.built {
                "ok".to_string()
            } else {
                format!("FAILED: {}", r.build_note.replace('|', "\\|"))
            },
            r.build_secs,
            match r.booted {
                None => "-".to_string(),
                Some(true) => "ok".to_string(),
                Some(false) => format!("FAILED: {}", r.boot_note.replace('|', "\\|")),
            },
            if r.booted.is_some() {
                format!("{} s", r.boot_secs)
            } else {
                "-".into()
            },
            if suites.is_empty() {
                "-".to_string()
            } else {
                suites.join("<br>")
            },
        );
    }
    let p = ctx.repo.join("docs/matrix.md");
    std::fs::write(&p, s)?;
    Ok(p)
}

fn repo_commit(ctx: &Ctx) -> String {
    output(
        Command::new("git")
            .current_dir(&ctx.repo)
            .args(["rev-parse", "--short", "HEAD"]),
    )
    .map(|s| s.trim().to_string())
    .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_file_parses_and_covers_the_robot_configurations() {
        let ctx = Ctx::new();
        let cs = load(&ctx).unwrap();
        assert!(cs.len() >= 9);
        assert!(cs.iter().any(|c| c.arch() == "arm64" && !c.boot.is_empty()));
        for c in &cs {
            assert!(arch(c.arch()).is_ok(), "{}", c.name);
            c.suites().unwrap();
            for f in &c.fragments {
                assert!(ctx.configs().join(f).exists(), "{}: {f}", c.name);
            }
            if c.boot.iter().any(|b| b.starts_with("soft-dirty-clear")) {
                assert!(c.clear_flag.is_some(), "{}", c.name);
            }
        }
    }

    #[test]
    fn a_whole_skip_counts_only_where_allowed() {
        let r = "@@SUITE-BEGIN pagemap_ioctl c\nTAP version 13\n\
                 1..0 # SKIP Failed to initialize userfaultfd\n\
                 @@SUITE-END pagemap_ioctl c rc=4 secs=1\n";
        let exp = vec![("pagemap_ioctl".to_string(), "c".to_string())];
        let mut s = report::guest_suites(r, &exp).remove(0);
        assert_eq!(s.counts.failed, 1);
        allow_whole_skip(&report::result_lines(r), &mut s);
        assert_eq!((s.counts.failed, s.counts.skipped), (0, 1));
        let bad = "@@SUITE-BEGIN pagemap_ioctl c\nnot ok 1 x\n@@SUITE-END pagemap_ioctl c rc=1\n";
        let mut s = report::guest_suites(bad, &exp).remove(0);
        allow_whole_skip(&report::result_lines(bad), &mut s);
        assert_eq!(s.counts.failed, 1);
    }

    #[test]
    fn outcome_round_trips() {
        let o = Outcome {
            built: true,
            build_secs: 12,
            booted: Some(false),
            boot_note: "timed out".into(),
            suites: vec!["SUITE a c: 1 passed, 0 failed, 0 skipped".into()],
            ..Outcome::default()
        };
        let back = Outcome::from_text(&o.to_text()).unwrap();
        assert_eq!(back.to_text(), o.to_text());
    }

    #[test]
    fn einval_flag_needs_every_case_refused() {
        let c = Config {
            name: "t".into(),
            why: String::new(),
            arch: None,
            fragments: vec![],
            options: vec![],
            required: vec![],
            unset: vec![],
            boot: vec![],
            clear_flag: Some("einval".into()),
            skip_whole: vec![],
        };
        let results = "@@SUITE-BEGIN soft-dirty-clear rust\n\
                       ok 1 sd.a # SKIP PM_SCAN_CLEAR_SOFT_DIRTY is not supported\n\
                       ok 2 sd.b\n\
                       @@SUITE-END soft-dirty-clear rust rc=0\n";
        let lines = report::result_lines(results);
        let mut s = Suite::new("soft-dirty-clear", "rust");
        s.counts.passed = 1;
        s.counts.skipped = 1;
        check_clear_flag(&c, &lines, &mut s);
        assert_eq!(s.counts.failed, 1);
        let mut ok = Suite::new("soft-dirty-clear", "rust");
        ok.counts.skipped = 1;
        let one = "@@SUITE-BEGIN soft-dirty-clear rust\n\
                   ok 1 sd.a # SKIP PM_SCAN_CLEAR_SOFT_DIRTY is not supported\n\
                   @@SUITE-END soft-dirty-clear rust rc=0\n";
        check_clear_flag(&c, &report::result_lines(one), &mut ok);
        assert_eq!(ok.counts.failed, 0);
    }
}
