// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask long`: the long reliability run (the vm kernel's volume, or the debug kernel's),
//! and on the vm side CRIU's whole zdtm subset.

use crate::*;

/// Seconds before the guest kills one suite of one chunk of the long run.
pub(crate) const LONG_SUITE_TIMEOUT: u32 = 2400;

/// Adds up `key <n>` figures of `FUZZ:`/`SOAK:` lines (`calls 5, chaos 7, ...`) into `sums`,
/// keeping the order keys first appear in.
pub(crate) fn add_figures(line: &str, sums: &mut Vec<(String, u64)>) {
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

pub(crate) fn figures_line(prefix: &str, sums: &[(String, u64)]) -> String {
    let body: Vec<String> = sums.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!("{prefix}: {}", body.join(", "))
}

/// The repository's commit, `-dirty` with uncommitted changes, for write-ups of a run.
pub(crate) fn repo_commit(ctx: &Ctx) -> String {
    util::output(Command::new("git").current_dir(&ctx.repo).args([
        "describe",
        "--always",
        "--dirty",
        "--abbrev=12",
    ]))
    .unwrap_or_default()
}

/// The last `[ seconds]` kernel timestamp of a console log: how long the guest ran.
pub(crate) fn last_timestamp(console: &str) -> Option<f64> {
    console.lines().rev().find_map(|l| {
        let (t, _) = l.strip_prefix('[')?.split_once(']')?;
        t.trim().parse().ok()
    })
}

/// The write-up of a long run: the vm kernel's, the volume, is the long run; the debug kernel's
/// has its own file.
fn long_run_doc(variant: &str) -> String {
    if variant == DEBUG {
        "long-run-debug.md".to_string()
    } else {
        "long-run.md".to_string()
    }
}

/// The long reliability run (issue 8): the fuzzer (with fault injection) and the soak in
/// chunks in one boot (the vm kernel unless `--variant` says otherwise); sums their figures
/// and writes docs/long-run.md (vm kernel) or docs/long-run-debug.md.
pub(crate) fn cmd_long(ctx: &Ctx, o: &Opts) -> Result<bool> {
    // The vm kernel unless `--variant` says otherwise.
    let variant = o.variant.as_str();
    let chunks: Vec<guest::Reliability> = (0..o.chunks)
        .map(|i| guest::Reliability {
            fuzz_calls: o.long_calls.div_ceil(o.chunks),
            soak_writes: o.long_writes.div_ceil(o.chunks),
            clear_calls: o.long_clear_calls.div_ceil(o.chunks),
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
            qemu::boot(&qemu::Boot::new(
                &kernel,
                &initrd,
                GUEST_CPUS,
                Duration::from_secs(120 + 2 * o.chunks * u64::from(LONG_SUITE_TIMEOUT)),
                &ctx.logs().join(format!("long-{variant}")),
            ))?
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
            [
                guest::FUZZ_SUITE,
                guest::SOAK_SUITE,
                guest::DIFF_CLEAR_SUITE,
            ]
            .into_iter()
            .filter(|n| *n != guest::DIFF_CLEAR_SUITE || c.clear_calls > 0)
            .map(|n| (n.to_string(), guest::long_label(c.seed)))
        })
        .collect();
    let suites = report::guest_suites(&results, &expected);
    let splats = splat::scan(&console);
    let lines = report::result_lines(&results);
    let mut rows = Vec::new();
    let (mut fuzz, mut soak, mut clear) = (Vec::new(), Vec::new(), Vec::new());
    for c in &chunks {
        let label = guest::long_label(c.seed);
        let figure = |n: &str, p: &str| {
            report::suite_frame(&lines, n, &label)
                .and_then(|(body, _)| body.iter().rev().find(|l| l.starts_with(p)))
                .map_or(format!("{p} (none printed)"), |l| l.to_string())
        };
        let (f, s, d) = (
            figure(guest::FUZZ_SUITE, "FUZZ:"),
            figure(guest::SOAK_SUITE, "SOAK:"),
            figure(guest::DIFF_CLEAR_SUITE, "DIFF-CLEAR:"),
        );
        add_figures(&f, &mut fuzz);
        add_figures(&s, &mut soak);
        add_figures(&d, &mut clear);
        rows.push((c.seed, f, s, d));
    }
    let (fuzz, soak, clear) = (
        figures_line("FUZZ", &fuzz),
        figures_line("SOAK", &soak),
        figures_line("DIFF-CLEAR", &clear),
    );
    let stalls: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("# worker ") || l.starts_with("#   "))
        .collect();
    let commit = repo_commit(ctx);
    let kernel = if variant == DEBUG {
        "the kernel has KASAN, lockdep, DEBUG_VM, page-table check, Rust debug assertions and \
         overflow checks and slab and page-allocation fault injection, and boots with \
         `panic_on_warn=1`"
    } else {
        "the kernel is the configuration the series recommends (no debug options, no fault \
         injection: the fuzzer's `--inject` does nothing there), which runs the suites about ten \
         times faster than the debug kernel: the volume, while every `cargo xtask test` runs \
         the same programs on the debug kernel at CI size"
    };
    let mut md = format!(
        "# The long reliability run\n\n\
         Written by `cargo xtask long`{} (commit {}, kernel variant `{variant}`, {} chunks, \
         {} under TCG on 2 vCPUs). Each chunk runs `pmscan-fuzz --inject`, `pmscan-soak` and \
         the differential tester's get-and-clear comparison (`pmscan-diff --clear`: twin \
         processes, C get-and-clear on one, Rust on the other, return value, errno, regions, \
         walk_end and the soft-dirty state after each call compared) with its own seed; \
         {kernel}.\n\n\
         ```\n{fuzz}\n{soak}\n{clear}\nconsole splats: {}\n```\n\n\
         | seed | fuzzer | soak | get-and-clear, C against Rust |\n|---|---|---|---|\n",
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
    for (seed, f, s, d) in &rows {
        md.push_str(&format!("| {seed} | `{f}` | `{s}` | `{d}` |\n"));
    }
    if !stalls.is_empty() {
        md.push_str("\nWhat the fuzzer printed about stalled workers:\n\n```\n");
        for l in &stalls {
            md.push_str(l);
            md.push('\n');
        }
        md.push_str("```\n");
    }
    // Beside the vm kernel's volume, CRIU's whole zdtm subset on the CRIU kernel (a boot of
    // its own); an earlier boot's write-up keeps the zdtm section it had.
    let zdtm = if variant == "vm" && o.from_results.is_none() {
        Some(zdtm::build_and_boot(ctx, zdtm::LONG_TESTS)?)
    } else {
        None
    };
    // The runs of the two kernels the tests boot are documented (the matrix's are not).
    let documented = variant == DEBUG || variant == "vm";
    if documented {
        let docs = ctx.repo.join("docs");
        std::fs::create_dir_all(&docs)?;
        let path = docs.join(long_run_doc(variant));
        let section = match &zdtm {
            Some((p, z)) => Some(zdtm::long_section(ctx, p, z)),
            None => zdtm::section_of(&std::fs::read_to_string(&path).unwrap_or_default()),
        };
        if let Some(section) = section {
            md = zdtm::splice_section(&md, &section);
        }
        std::fs::write(path, md)?;
    }
    println!();
    for (seed, f, s, d) in &rows {
        println!("seed {seed}: {f}; {s}; {d}");
    }
    for l in &stalls {
        println!("{l}");
    }
    let mut zdtm_ok = true;
    if let Some((_, z)) = &zdtm {
        for p in &z.run.problems {
            println!("PROBLEM: zdtm: {p}");
        }
        for l in &z.run.splats {
            println!("  zdtm splat: {l}");
        }
        zdtm_ok = z.run.problems.is_empty() && z.run.splats.is_empty();
    }
    for s in suites
        .iter()
        .chain(zdtm.iter().flat_map(|(_, z)| &z.run.suites))
    {
        println!("{}", s.line());
        for p in &s.problems {
            println!("  {p}");
        }
        zdtm_ok &= s.counts.failed == 0 && s.problems.is_empty();
    }
    println!("{fuzz} ({variant} kernel, {} chunks)", o.chunks);
    println!("{soak} ({variant} kernel, {} chunks)", o.chunks);
    println!("{clear} ({variant} kernel, {} chunks)", o.chunks);
    println!("SPLATS: {}", splats.len());
    for l in splats.iter().take(20) {
        println!("  splat: {l}");
    }
    if let Some(m) = minutes {
        println!("long: {m:.0} min");
    }
    if documented {
        println!("wrote docs/{}", long_run_doc(variant));
    }
    Ok(!timed_out
        && zdtm_ok
        && splats.is_empty()
        && suites
            .iter()
            .all(|s| s.counts.failed == 0 && s.problems.is_empty()))
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
