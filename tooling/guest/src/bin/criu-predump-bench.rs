// SPDX-License-Identifier: GPL-2.0
//! One iteration of CRIU's incremental pre-dump, timed by the guest clock: the released CRIU,
//! which clears soft-dirty state by writing "4" to /proc/PID/clear_refs, against CRIU with this
//! project's patch, which clears it with `PM_SCAN_CLEAR_SOFT_DIRTY`. Under `-icount shift=0`
//! on one vCPU the guest clock counts instructions, so a time is what the tracker cost, kernel
//! and user (CRIU's own process, its parasite in the target, the kernel's work for both).
//!
//! A target process maps `--mib` MiB of anonymous memory (no THP: soft-dirty state per 4 KiB
//! page) and writes all of it. For each share written (1% and 10% of its pages) and each CRIU,
//! `--reps` times in turn: a first pre-dump with memory tracking (not timed; its log must
//! show the clear this CRIU makes), the target writes the share, then the timed second
//! pre-dump against the first one's images (`--prev-images-dir`). Both log at verbosity 4, as
//! zdtm runs CRIU; the clear step's own time comes from the second one's log timestamps.
//! Prints `CRIU-PREDUMP <criu>@<pct>%: <median> ns, of which the clear <median> ns (...)` per
//! pair, `BENCH-ICOUNT criu-predump clear-flag/clear_refs@<pct>%: <ratio>` (the iteration) and
//! `BENCH-ICOUNT criu-predump-clear-step ...` (the clear alone); `BENCH` without `--icount`.
//!
//! Runs in the zdtm guest's chroot (the host's root over 9p): `criu-predump-bench --released
//! <criu> --patched <criu> [--mib 256] [--reps 3] [--icount]`.
use pmrs_guest::{arg_flag, arg_u64, PAGE};
use std::fs::File;
use std::io::{Read, Write};
use std::process::Command;

/// The shares of the target's pages written between the two pre-dumps, in percent.
const PCTS: [u64; 2] = [1, 10];
/// What each CRIU logs when it clears the soft-dirty state of task `pid` (`criu/mem.c`; the
/// patch). CRIU logs the first for its own pid too when it probes the kernel (kerndat).
fn reset_line(pid: i32, scan: bool) -> String {
    let how = if scan { " with PAGEMAP_SCAN" } else { "" };
    format!("Reset {pid}'s dirty tracking{how}\n")
}
/// Where the images go (the guest's tmpfs).
const WORK: &str = "/tmp/criu-predump-images";

/// The value after `--name`, if any.
fn arg_str(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

/// The guest clock (CLOCK_MONOTONIC) in ns.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The process CRIU pre-dumps, and the pipes that tell it what to write.
struct Target {
    pid: i32,
    cmd: File,
    ack: File,
}

impl Target {
    /// Forks the target: in a session of its own, `pages` pages mapped and written; returns
    /// once it is ready.
    fn spawn(pages: usize) -> Target {
        // This program is single-threaded.
        let c =
            pmrs_guest::fork_child(|cmd, ack| target(pages, cmd, ack)).expect("fork the target");
        let mut t = Target {
            pid: c.pid,
            cmd: c.cmd,
            ack: c.ack,
        };
        t.wait_ack();
        t
    }

    fn wait_ack(&mut self) {
        let mut b = [0u8; 1];
        if self.ack.read_exact(&mut b).is_err() {
            panic!("the target (pid {}) died", self.pid);
        }
    }

    /// Has the target write `pct`% of its pages, and waits until it has.
    fn write(&mut self, pct: u64) {
        self.cmd
            .write_all(&[pct as u8])
            .expect("write to the target");
        self.wait_ack();
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // SAFETY: signalling and reaping this program's own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// The target's body: maps and writes its memory, then on each byte `pct` read from `cmd`
/// writes every (100 / pct)-th page and answers on `ack`. Never returns.
fn target(pages: usize, mut cmd: File, mut ack: File) -> ! {
    // SAFETY: a new session for the child; its memory is a fresh private anonymous mapping
    // it alone writes, inside its bounds.
    unsafe {
        libc::setsid();
        let p = libc::mmap(
            std::ptr::null_mut(),
            pages * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            libc::_exit(1);
        }
        libc::madvise(p, pages * PAGE, libc::MADV_NOHUGEPAGE);
        let mem = p as *mut u8;
        for i in 0..pages {
            *mem.add(i * PAGE) = 1;
        }
        let _ = ack.write_all(b"r");
        let mut b = [0u8; 1];
        while cmd.read_exact(&mut b).is_ok() {
            let step = 100 / usize::from(b[0].max(1));
            for i in (0..pages).step_by(step) {
                let q = mem.add(i * PAGE);
                *q = (*q).wrapping_add(1);
            }
            let _ = ack.write_all(b"w");
        }
        libc::_exit(0);
    }
}

/// Runs `criu pre-dump` of `pid` into `dir` with memory tracking (against `../1` if `prev`);
/// returns the guest time it took.
fn pre_dump(criu: &str, pid: i32, dir: &str, prev: bool, verbose: bool) -> u64 {
    std::fs::create_dir_all(dir).expect("image directory");
    let mut c = Command::new(criu);
    c.args(["pre-dump", "-t", &pid.to_string(), "-D", dir, "--track-mem"]);
    c.args(["-o", "pre-dump.log"]);
    if prev {
        c.args(["--prev-images-dir", "../1"]);
    }
    if verbose {
        c.arg("-v4");
    }
    let t0 = now_ns();
    let st = c.status().expect("run criu");
    let t = now_ns() - t0;
    if !st.success() {
        let log = std::fs::read_to_string(format!("{dir}/pre-dump.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        for l in tail.iter().rev() {
            println!("# {l}");
        }
        panic!("{criu} pre-dump exited {st}");
    }
    t
}

/// The guest time CRIU's clear of `pid`'s soft-dirty state took in the pre-dump log `log`
/// (verbosity 4): from its `Reset` line to the next line, by the log's timestamps (`(ss.uuuuuu)`,
/// microseconds), in ns.
fn clear_step(log: &str, pid: i32, scan: bool) -> Option<u64> {
    let stamp = |l: &str| -> Option<u64> {
        let t = l.strip_prefix('(')?.split_once(')')?.0.trim();
        let (s, us) = t.split_once('.')?;
        Some(s.parse::<u64>().ok()? * 1_000_000_000 + us.parse::<u64>().ok()? * 1000)
    };
    let want = reset_line(pid, scan);
    let want = want.trim_end();
    let mut lines = log.lines();
    let start = lines.by_ref().find(|l| l.ends_with(want))?;
    let t0 = stamp(start)?;
    let t1 = lines.find_map(stamp)?;
    Some(t1.saturating_sub(t0))
}

/// The median of `v` (which is not empty).
fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let (Some(released), Some(patched)) = (arg_str("--released"), arg_str("--patched")) else {
        eprintln!("usage: criu-predump-bench --released CRIU --patched CRIU [--mib N] [--reps N] [--icount]");
        std::process::exit(2);
    };
    let pages = arg_u64("--mib", 256) as usize * (1 << 20) / PAGE;
    let reps = arg_u64("--reps", 3).max(1);
    let label = if arg_flag("--icount") {
        "BENCH-ICOUNT"
    } else {
        "BENCH"
    };
    let crius = [
        ("clear_refs", released.as_str(), false),
        ("clear-flag", patched.as_str(), true),
    ];
    let mut summary = Vec::new();
    for pct in PCTS {
        let mut times: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        let mut clears: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..reps {
            for (k, (name, criu, scan)) in crius.iter().enumerate() {
                let _ = std::fs::remove_dir_all(WORK);
                let mut t = Target::spawn(pages);
                pre_dump(criu, t.pid, &format!("{WORK}/1"), false, true);
                let log =
                    std::fs::read_to_string(format!("{WORK}/1/pre-dump.log")).unwrap_or_default();
                if !log.contains(&reset_line(t.pid, *scan))
                    || log.contains(&reset_line(t.pid, !scan))
                {
                    for l in log.lines().filter(|l| {
                        l.contains("dirty") || l.contains("PAGEMAP") || l.contains("kdat")
                    }) {
                        println!("# {l}");
                    }
                    panic!("{name}: the first pre-dump's log does not show the clear it must make");
                }
                t.write(pct);
                times[k].push(pre_dump(criu, t.pid, &format!("{WORK}/2"), true, true));
                let log =
                    std::fs::read_to_string(format!("{WORK}/2/pre-dump.log")).unwrap_or_default();
                match clear_step(&log, t.pid, *scan) {
                    Some(c) => clears[k].push(c),
                    None => panic!("{name}: no clear of {} in the second pre-dump's log", t.pid),
                }
            }
        }
        let (mut med, mut cmed) = ([0u64; 2], [0u64; 2]);
        for (k, (name, ..)) in crius.iter().enumerate() {
            med[k] = median(&times[k]);
            cmed[k] = median(&clears[k]);
            let runs: Vec<String> = times[k].iter().map(u64::to_string).collect();
            let cruns: Vec<String> = clears[k].iter().map(u64::to_string).collect();
            println!(
                "CRIU-PREDUMP {name}@{pct}%: {} ns, of which the clear {} ns (medians of {}: {}; clear {})",
                med[k],
                cmed[k],
                times[k].len(),
                runs.join(" "),
                cruns.join(" ")
            );
        }
        summary.push(format!(
            "{label} criu-predump clear-flag/clear_refs@{pct}%: {:.3}",
            med[1] as f64 / med[0] as f64
        ));
        summary.push(format!(
            "{label} criu-predump-clear-step clear-flag/clear_refs@{pct}%: {:.3}",
            cmed[1] as f64 / cmed[0].max(1) as f64
        ));
    }
    let _ = std::fs::remove_dir_all(WORK);
    for l in summary {
        println!("{l}");
    }
}
