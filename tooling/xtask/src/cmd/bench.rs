// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask bench`: the full benchmark boots (icount, then plain TCG) and their write-up;
//! the short icount boot of `cargo xtask test`.

use crate::*;

/// What one benchmark boot gave.
pub(crate) struct BenchRun {
    pub(crate) results: String,
    pub(crate) suites: Vec<report::Suite>,
    pub(crate) problems: Vec<String>,
    pub(crate) splats: Vec<String>,
    pub(crate) bench_lines: Vec<String>,
}

/// Boots `kernel` with only `pmscan-bench`: the short run (`quick`) or the full one; with
/// `icount`, on one vCPU whose clock counts instructions (QEMU `-icount shift=0`), else under
/// plain TCG with the test guest's vCPUs.
pub(crate) fn bench_boot(
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
            icount,
            ..qemu::Boot::new(
                kernel,
                &initrd,
                cpus,
                Duration::from_secs(120 + u64::from(timeout)),
                &ctx.logs().join(format!("bench-{variant}-{what}")),
            )
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
pub(crate) fn cmd_bench(ctx: &Ctx, o: &Opts) -> Result<bool> {
    let wall_log = ctx
        .logs()
        .join(format!("bench-{}-wall", o.variant))
        .join("results.log");
    let mut ok = true;
    let mut report_run = |suites: &[report::Suite], problems: &[String], splats: &[String]| {
        for s in suites {
            println!("{}", s.line());
            for p in &s.problems {
                println!("  {p}");
            }
            ok &= s.counts.failed == 0 && s.problems.is_empty();
        }
        for p in problems {
            println!("PROBLEM: {p}");
        }
        println!("SPLATS: {}", splats.len());
        ok &= splats.is_empty() && problems.is_empty();
    };
    // The CRIU pre-dump benchmark, with the vm kernel's full run (its own kernel and boot).
    let mut criu_section = None;
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
        report_run(&i.suites, &i.problems, &i.splats);
        if o.variant == "vm" {
            let z = zdtm::criu_bench(ctx)?;
            report_run(&z.run.suites, &z.run.problems, &z.run.splats);
            criu_section = Some(zdtm::bench_section(ctx, &z));
            for l in &z.run.figure_lines {
                println!("{l}");
            }
        }
        let w = if o.no_wall {
            None
        } else {
            let w = bench_boot(ctx, &o.variant, &kernel, false, false)?;
            report_run(&w.suites, &w.problems, &w.splats);
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
    let old = std::fs::read_to_string(docs.join(&md)).unwrap_or_default();
    let doc = bench::markdown(&ri, rw.as_ref(), commit.trim(), &machine, &config, &svg);
    let doc = if o.variant == "vm" {
        zdtm::splice_bench(&doc, &old, criu_section)
    } else {
        doc
    };
    std::fs::write(docs.join(&md), doc)?;
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
