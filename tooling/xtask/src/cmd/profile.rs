// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask profile`: an instruction profile of the guest kernel, by function, of one
//! benchmark scenario run by the C and then the Rust `PAGEMAP_SCAN` in one boot (or of one
//! dirty-tracking method). QEMU runs the vm kernel under TCG on one vCPU with the plugin of
//! `tooling/profiler`, which counts the executions of every translated block of kernel text;
//! `pmscan-bench --marks` prints a mark before and after what it measures and waits on the third
//! serial port; on each mark this command has the plugin dump its counts (SIGUSR2), waits for
//! the dump, then lets the guest go on. The difference of the two dumps of a run, mapped to
//! symbols with `llvm-nm`, is the profile.

use crate::*;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// What to profile: the arguments of `pmscan-bench` after `--marks`, one run each, and their
/// column labels.
pub(crate) fn profile_runs(o: &Opts) -> Result<Vec<(String, String)>> {
    let size = if o.profile_full { "" } else { "--quick " };
    match (&o.profile_scenario, &o.profile_method) {
        (Some(s), None) => Ok([IMPL_C, IMPL_RUST]
            .iter()
            .map(|i| (format!("{size}--profile-scenario {s} {i}"), i.to_string()))
            .collect()),
        (None, Some((m, pct))) => Ok(vec![(
            format!("{size}--profile {m} {pct}"),
            format!("{m}@{pct}%"),
        )]),
        _ => bail!(
            "profile takes --scenario NAME (dense, sparse, thp, hugetlb, many-vmas, uffd-wp@10) \
             or --method NAME --pct P (a dirty-tracking method of pmscan-bench, 0.1|1|10|100)"
        ),
    }
}

/// Kernel text symbols (address, name), sorted, from `llvm-nm` of `vmlinux`.
fn symbols(vmlinux: &Path) -> Result<Vec<(u64, String)>> {
    let out = Command::new("llvm-nm-22")
        .args(["-n", "-C", "--defined-only"])
        .arg(vmlinux)
        .output()
        .context(|| "running llvm-nm-22")?;
    if !out.status.success() {
        bail!("llvm-nm-22 {} failed", vmlinux.display());
    }
    let mut v: Vec<(u64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ' ');
            let addr = u64::from_str_radix(f.next()?, 16).ok()?;
            let kind = f.next()?;
            let name = f.next()?;
            matches!(kind, "t" | "T" | "W" | "w").then(|| (addr, name.to_string()))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// A dump of the plugin: (block address, instructions) -> executions.
fn load_dump(path: &Path) -> Result<HashMap<(u64, u64), u64>> {
    let text = std::fs::read_to_string(path).context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let va = u64::from_str_radix(f.next()?, 16).ok()?;
            let insns = f.next()?.parse().ok()?;
            let runs = f.next()?.parse().ok()?;
            Some(((va, insns), runs))
        })
        .collect())
}

/// Instructions per function executed between dumps `a` and `b`.
fn by_function(
    syms: &[(u64, String)],
    a: &HashMap<(u64, u64), u64>,
    b: &HashMap<(u64, u64), u64>,
) -> HashMap<String, u64> {
    let mut f: HashMap<String, u64> = HashMap::new();
    for (&(va, insns), &runs) in b {
        let d = runs.saturating_sub(a.get(&(va, insns)).copied().unwrap_or(0));
        if d == 0 {
            continue;
        }
        let i = syms.partition_point(|s| s.0 <= va);
        let name = if i == 0 { "?" } else { syms[i - 1].1.as_str() };
        *f.entry(name.to_string()).or_default() += d * insns;
    }
    f
}

pub(crate) fn cmd_profile(ctx: &Ctx, o: &Opts) -> Result<bool> {
    let runs = profile_runs(o)?;
    let (_, kernel) = prepare(ctx, o)?;
    let plugin = {
        let _s = Stage::new("profiler-plugin");
        util::run_logged(
            Command::new("cargo").current_dir(&ctx.repo).args([
                "build",
                "--quiet",
                "--release",
                "-p",
                "pmrs-profiler",
            ]),
            &ctx.logs().join("profiler-cargo.log"),
        )
        .context(|| "building tooling/profiler")?;
        ctx.repo.join("target/release/libpmrs_profiler.so")
    };
    let initrd = {
        let _s = Stage::new("guest-userspace-profile");
        let args = runs.iter().map(|r| r.0.clone()).collect();
        guest::initramfs(ctx, &o.variant, &Mode::Profile { runs: args })?
    };
    let dir = ctx.logs().join(format!("profile-{}", o.variant));
    std::fs::create_dir_all(&dir)?;
    let prefix = dir.join("blocks");
    let fifo = dir.join("control");
    for p in std::fs::read_dir(&dir)?.flatten() {
        let name = p.file_name().to_string_lossy().into_owned();
        if name.starts_with("blocks.") || name.starts_with("control.") {
            std::fs::remove_file(p.path())?;
        }
    }
    for end in ["in", "out"] {
        util::run(Command::new("mkfifo").arg(dir.join(format!("control.{end}"))))?;
    }
    // On each mark: the plugin dumps (SIGUSR2 to the emulator), the dump appears, the guest
    // is told to go on.
    let marks = std::cell::Cell::new(0usize);
    let control: std::cell::RefCell<Option<std::fs::File>> = Default::default();
    let failed: std::cell::RefCell<Option<String>> = Default::default();
    let watch = |line: &str, pid: u32| {
        if !line.starts_with(pmrs_protocol::PROFILE_MARK) {
            return;
        }
        let k = marks.get();
        marks.set(k + 1);
        let dump = PathBuf::from(format!("{}.{k}", prefix.display()));
        let step = || -> Result<()> {
            util::run(Command::new("kill").args(["-USR2", &pid.to_string()]))?;
            let t = Instant::now();
            while !dump.exists() {
                if t.elapsed() > Duration::from_secs(120) {
                    bail!("the profiler plugin wrote no {}", dump.display());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let mut c = control.borrow_mut();
            if c.is_none() {
                *c = Some(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(dir.join("control.in"))?,
                );
            }
            if let Some(f) = c.as_mut() {
                f.write_all(b"go\n")?;
            }
            Ok(())
        };
        if let Err(e) = step() {
            failed.borrow_mut().get_or_insert(e.to_string());
        }
    };
    let out = {
        let _s = Stage::new("boot-profile");
        qemu::boot(&qemu::Boot {
            extra_args: vec![
                "-plugin".into(),
                format!("{},out={}", plugin.display(), prefix.display()),
                "-chardev".into(),
                format!("pipe,id=control,path={}", fifo.display()),
                "-serial".into(),
                "chardev:control".into(),
            ],
            watch: Some(&watch),
            ..qemu::Boot::new(&kernel, &initrd, 1, Duration::from_secs(3600), &dir)
        })?
    };
    if let Some(e) = failed.borrow().as_ref() {
        bail!("{e}");
    }
    let ends = out
        .results
        .lines()
        .filter(|l| l.starts_with(pmrs_protocol::SUITE_END))
        .collect::<Vec<_>>();
    if marks.get() != 2 * runs.len() || ends.iter().any(|l| !l.contains(" rc=0 ")) {
        print!("{}", out.results);
        bail!(
            "the guest made {} marks for {} runs (results: {})",
            marks.get(),
            runs.len(),
            out.results_path.display()
        );
    }
    let syms = symbols(&ctx.build_dir(&o.variant).join("vmlinux"))?;
    let mut cols = Vec::new();
    for i in 0..runs.len() {
        let a = load_dump(Path::new(&format!("{}.{}", prefix.display(), 2 * i)))?;
        let b = load_dump(Path::new(&format!("{}.{}", prefix.display(), 2 * i + 1)))?;
        cols.push(by_function(&syms, &a, &b));
    }
    let mut names: Vec<&String> = cols.iter().flat_map(|c| c.keys()).collect();
    names.sort();
    names.dedup();
    names.sort_by_key(|n| {
        std::cmp::Reverse(cols.iter().map(|c| c.get(*n).copied().unwrap_or(0)).max())
    });
    let mut table = String::new();
    let head: Vec<String> = runs.iter().map(|r| format!("{:>12}", r.1)).collect();
    let _ = writeln!(table, "{} function (M instructions)", head.join(" "));
    let totals: Vec<String> = cols
        .iter()
        .map(|c| format!("{:>12.3}", c.values().sum::<u64>() as f64 / 1e6))
        .collect();
    let _ = writeln!(table, "{} (all kernel text)", totals.join(" "));
    for n in names.iter().take(o.profile_top) {
        let row: Vec<String> = cols
            .iter()
            .map(|c| format!("{:>12.3}", c.get(*n).copied().unwrap_or(0) as f64 / 1e6))
            .collect();
        let _ = writeln!(table, "{} {n}", row.join(" "));
    }
    print!("{table}");
    std::fs::write(dir.join("profile.txt"), &table)?;
    println!("written to {}", dir.join("profile.txt").display());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_counted_by_function_between_dumps() {
        let syms = vec![(0x100, "f".to_string()), (0x200, "g".to_string())];
        let a = HashMap::from([((0x100, 4), 10), ((0x210, 3), 5)]);
        // f's block ran 2 more times (4 instructions), g's first block 1 time (3), a new block
        // of g 7 times (2); a block before every symbol counts as "?".
        let b = HashMap::from([
            ((0x100, 4), 12),
            ((0x210, 3), 6),
            ((0x250, 2), 7),
            ((0x10, 1), 1),
        ]);
        let f = by_function(&syms, &a, &b);
        assert_eq!(f.get("f"), Some(&8));
        assert_eq!(f.get("g"), Some(&(3 + 14)));
        assert_eq!(f.get("?"), Some(&1));
        assert_eq!(f.len(), 3);
    }
}
