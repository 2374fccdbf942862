// SPDX-License-Identifier: GPL-2.0
//! The guest's userspace: static selftests built from the materialized tree, the Rust guest
//! programs, busybox, a generated /init, packed as an initramfs.

use crate::ctx::Ctx;
use crate::util::{run, run_logged, Context, Result};
use crate::{bail, err};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pmrs_protocol::{ALL_DONE, GUEST_READY, NOTE, SUITE_BEGIN, SUITE_END};
/// Implementations of PAGEMAP_SCAN a suite can run against, and the test-only switch (added by
/// the series) that selects one for later calls.
pub use pmrs_protocol::{IMPL_C, IMPL_RUST, IMPL_SWITCH};
/// The label of a suite run once per boot, whatever implementation is selected.
pub const ONCE_IMPL: &str = "kernel";

/// Kconfig option that builds the Rust PAGEMAP_SCAN (added by the series).
pub const RUST_IMPL_OPTION: &str = "CONFIG_PROC_PAGEMAP_SCAN_RUST";

/// A selftest program run in the guest; its TAP output is parsed on the host.
pub struct Selftest {
    /// The suite's name, and the program's in the guest's /bin.
    pub name: &'static str,
    /// Arguments (a kselftest harness's `-r fixture.variant.test` filters).
    pub args: &'static [&'static str],
    /// Sources relative to tools/testing/selftests/mm.
    pub sources: &'static [&'static str],
    pub cflags: &'static [&'static str],
    /// Run once per PAGEMAP_SCAN implementation; otherwise once per boot, under the label
    /// [`ONCE_IMPL`] (a test that never calls PAGEMAP_SCAN gains nothing from a second run).
    pub per_impl: bool,
    /// Seconds before the guest kills it.
    pub timeout: u32,
}

pub const SELFTESTS: &[Selftest] = &[
    Selftest {
        name: "pagemap_ioctl",
        args: &[],
        sources: &["pagemap_ioctl.c", "vm_util.c", "hugepage_settings.c"],
        cflags: &[],
        per_impl: true,
        timeout: 900,
    },
    // soft-dirty.c reads /proc/PID/pagemap and writes clear_refs; it never calls PAGEMAP_SCAN,
    // so the implementation switch cannot change what it sees: once per boot.
    Selftest {
        name: "soft-dirty",
        args: &[],
        sources: &["soft-dirty.c", "vm_util.c", "hugepage_settings.c"],
        cflags: &["-D_GNU_SOURCE"],
        per_impl: false,
        timeout: 600,
    },
    Selftest {
        name: "soft-dirty-clear",
        args: &[],
        sources: &["soft-dirty-clear.c", "vm_util.c", "hugepage_settings.c"],
        cflags: &[],
        per_impl: true,
        timeout: 900,
    },
    HMM_TESTS,
    // The same program, its case of the soft-dirty get-and-clear.
    Selftest {
        name: "hmm-tests-clear",
        args: &[
            "-r",
            "hmm.hmm_device_private.pagemap_scan_clear_soft_dirty_device_private",
        ],
        sources: &["hmm-tests.c", "vm_util.c", "hugepage_settings.c"],
        cflags: &[],
        per_impl: true,
        timeout: 300,
    },
];

/// hmm-tests, its cases of pages in device private memory (lib/test_hmm.c) that clear_refs
/// and PAGEMAP_SCAN change: the rest of it tests HMM, not this work.
pub const HMM_TESTS: Selftest = Selftest {
    name: "hmm-tests",
    args: &[
        "-r",
        "hmm.hmm_device_private.soft_dirty_device_private",
        "-r",
        "hmm.hmm_device_private.uffd_wp_device_private",
    ],
    sources: &["hmm-tests.c", "vm_util.c", "hugepage_settings.c"],
    cflags: &[],
    per_impl: true,
    timeout: 300,
};

/// migration-race: clear_refs and PAGEMAP_SCAN against move_pages(2) between two NUMA nodes,
/// 5 s per case; the proof boots of `cargo xtask fixes` only (they have the nodes).
pub const MIGRATION_RACE: Selftest = Selftest {
    name: "migration-race",
    args: &["-t", "5"],
    sources: &["migration-race.c", "vm_util.c", "hugepage_settings.c"],
    cflags: &["-D_GNU_SOURCE"],
    per_impl: false,
    timeout: 300,
};

/// The command line of suite `name` in the guest: a selftest with its arguments, or a Rust
/// guest program.
fn suite_cmd(name: &str) -> String {
    match SELFTESTS.iter().find(|t| t.name == name) {
        Some(t) => selftest_cmd(t),
        None => format!("/bin/{name}"),
    }
}

/// The command line of selftest `t` in the guest.
pub fn selftest_cmd(t: &Selftest) -> String {
    let mut c = format!("/bin/{}", t.name);
    for a in t.args {
        c.push(' ');
        c.push_str(&sh_quote(a));
    }
    c
}

/// The differential tester: one suite comparing both implementations call by call.
pub const DIFF_SUITE: &str = "differential";
pub const DIFF_IMPL: &str = "c-vs-rust";
/// Seconds before the guest kills the differential tester.
pub const DIFF_TIMEOUT: u32 = 1500;

/// The differential tester's get-and-clear calls (`pmscan-diff --clear`): C on one twin, Rust on
/// the other, the state after each call compared.
pub const DIFF_CLEAR_SUITE: &str = "differential-clear";

/// The clear-flag oracle (`pmscan-diff --clear-oracle --impl c|rust`): the get-and-clear of one
/// implementation against the C report-only scan and the page state before and after; run once
/// per implementation, each with half the oracle calls.
pub const ORACLE_SUITE: &str = "sd-oracle";
pub const ORACLE_TIMEOUT: u32 = 1800;

/// The benchmark (Rust vs C in one boot, and dirty-tracking methods): one suite that switches
/// between the implementations itself.
pub const BENCH_SUITE: &str = "pmscan-bench";
pub const BENCH_IMPL: &str = "c-vs-rust";
/// Seconds before the guest kills the short benchmark run (`--quick`) of the test run.
pub const BENCH_QUICK_TIMEOUT: u32 = 900;
/// Seconds before the guest kills the full benchmark run of `cargo xtask bench`.
pub const BENCH_FULL_TIMEOUT: u32 = 5400;

/// The fuzzer with chaos threads and the no-lost-write soak (issue 8): suites that switch
/// between the implementations themselves.
pub const FUZZ_SUITE: &str = "pmscan-fuzz";
pub const SOAK_SUITE: &str = "pmscan-soak";
pub const RELIABILITY_IMPL: &str = "c-vs-rust";
pub const FUZZ_TIMEOUT: u32 = 900;
pub const SOAK_TIMEOUT: u32 = 900;

/// A CI-sized reliability run: fuzzed calls, checked writes, fault injection.
#[derive(Clone, Copy, Debug)]
pub struct Reliability {
    pub fuzz_calls: u64,
    pub soak_writes: u64,
    /// Differential get-and-clear calls (C against Rust) after the soak; 0 for none.
    pub clear_calls: u64,
    pub inject: bool,
    pub seed: u64,
}

/// A differential run and the clear-flag oracle's run: how many calls each, from which seed.
#[derive(Clone, Copy, Debug)]
pub struct Differential {
    pub calls: u64,
    /// Differential calls with `PM_SCAN_CLEAR_SOFT_DIRTY` (C get-and-clear against Rust).
    pub clear_calls: u64,
    pub oracle_calls: u64,
    /// Oracle calls between rebuilds of its address space (each rebuild under the next
    /// shmem_enabled mode).
    pub oracle_per_build: u64,
    pub seed: u64,
}

/// What the guest does after boot.
pub enum Mode {
    /// Run the PAGEMAP_SCAN demonstration, then (optionally) a shell on the console.
    Demo { shell: bool },
    /// Run the selftests for each implementation, then the differential tester and the
    /// reliability runs if both exist.
    Tests {
        impls: Vec<String>,
        differential: Option<Differential>,
        reliability: Option<Reliability>,
    },
    /// Run the benchmark only: the short one (`quick`, in the test run) or the full one; with
    /// `icount` the guest is told its clock counts instructions.
    Bench { quick: bool, icount: bool },
    /// The long reliability run: the fuzzer and the soak once per chunk, each chunk with its
    /// own seed, under the implementation label `seed-<seed>`; `timeout` seconds per suite.
    Long {
        chunks: Vec<Reliability>,
        timeout: u32,
    },
    /// `cargo xtask profile`: `pmscan-bench` once per argument list, each bracketing what it
    /// measures with marks on the control port.
    Profile { runs: Vec<String> },
    /// `cargo xtask fixes`: these selftests once each, under [`ONCE_IMPL`].
    Proof { tests: Vec<&'static Selftest> },
    /// CRIU's test suite: each run its tests in turn, from the host's root shared over 9p;
    /// then, if asked, the pre-dump benchmark of the released and the patched CRIU.
    Zdtm {
        runs: Vec<ZdtmRun>,
        bench: Option<CriuBench>,
        /// Then a shell on the console, chrooted into the host's root; these are the CRIU
        /// trees it names (released, patched).
        shell: Option<[PathBuf; 2]>,
    },
}

/// What CRIU logs when it clears soft-dirty state with `PM_SCAN_CLEAR_SOFT_DIRTY` (the patch of
/// `tooling/criu/`), and when it writes clear_refs (`criu/mem.c`); extended regexps.
const CRIU_RESET_SCAN: &str = "Reset [0-9]+'s dirty tracking with PAGEMAP_SCAN$";
const CRIU_RESET_CLEAR_REFS: &str = "Reset [0-9]+'s dirty tracking$";

/// `criu-predump-bench` in the zdtm guest: one pre-dump iteration of each CRIU (the released
/// one's tree, the patched one's), reported as suite [`CRIU_BENCH_SUITE`] `bench`.
#[derive(Clone, Debug)]
pub struct CriuBench {
    pub released: PathBuf,
    pub patched: PathBuf,
    /// The target's memory.
    pub mib: u32,
    /// Timed pre-dumps per CRIU and share written (the median is reported).
    pub reps: u32,
    /// The guest clock counts instructions.
    pub icount: bool,
}

/// The suite name of the CRIU pre-dump benchmark, and its label.
pub const CRIU_BENCH_SUITE: &str = "criu-predump";
pub const CRIU_BENCH_LABEL: &str = "bench";

/// The suite name of zdtm's runs.
pub const ZDTM_SUITE: &str = "zdtm";
/// The 9p mount tag of the host's root file system, which the zdtm guest runs CRIU from.
pub const HOST_ROOT_TAG: &str = "hostroot";

/// One zdtm test: its name and the options of `zdtm.py run` that go with it.
#[derive(Clone, Copy, Debug)]
pub struct ZdtmTest {
    pub name: &'static str,
    pub opts: &'static str,
    /// Guest seconds the test may take.
    pub timeout: u32,
}

/// zdtm's tests against one implementation with one CRIU: reported as suite [`ZDTM_SUITE`]
/// under `label`.
#[derive(Clone, Debug)]
pub struct ZdtmRun {
    /// `c`, `rust`, `clear-flag c`, `clear-flag rust`.
    pub label: String,
    /// The implementation the switch selects ([`IMPL_C`] or [`IMPL_RUST`]).
    pub imp: String,
    /// The CRIU source tree, built, on the host; the guest sees it at the same path.
    pub tree: PathBuf,
    /// Check first that CRIU clears with `PM_SCAN_CLEAR_SOFT_DIRTY` (the patched CRIU).
    pub clear_flag: bool,
    pub tests: Vec<ZdtmTest>,
}

impl ZdtmRun {
    /// Guest seconds the run may take.
    pub fn timeout(&self) -> u32 {
        60 + self.tests.iter().map(|t| t.timeout).sum::<u32>()
    }
}

/// The suite name of the runs of [`Mode::Profile`].
pub const PROFILE_SUITE: &str = "profile";

/// The label a chunk of the long run reports its suites under.
pub fn long_label(seed: u64) -> String {
    format!("seed-{seed}")
}

fn selftest_dir(ctx: &Ctx) -> PathBuf {
    ctx.tree().join("tools/testing/selftests/mm")
}

/// Builds one selftest statically against the built tree's uapi headers.
fn build_selftest(ctx: &Ctx, variant: &str, t: &Selftest, out: &Path) -> Result<()> {
    build_selftest_with(ctx, variant, t, out, "gcc")
}

/// `build_selftest` with the C compiler `cc` (a cross compiler for a foreign guest).
pub fn build_selftest_with(
    ctx: &Ctx,
    variant: &str,
    t: &Selftest,
    out: &Path,
    cc: &str,
) -> Result<()> {
    let dir = selftest_dir(ctx);
    let inc = ctx.build_dir(variant).join("usr/include");
    let mut c = Command::new(cc);
    c.current_dir(&dir)
        .args(["-static", "-O2", "-Wall", "-U_FORTIFY_SOURCE", "-no-pie"])
        .args(t.cflags)
        .arg("-I../../../..")
        .arg("-isystem")
        .arg(&inc)
        .arg("-I../../../../tools/include")
        .arg("-I..")
        .args(t.sources)
        .arg("-o")
        .arg(out)
        .args(["-lrt", "-lpthread", "-lm"]);
    let log = if variant.starts_with("m-") {
        format!("selftest-{variant}-{}.log", t.name)
    } else {
        format!("selftest-{}.log", t.name)
    };
    run_logged(&mut c, &ctx.logs().join(log)).context(|| format!("building selftest {}", t.name))
}

/// Builds the Rust guest programs (tooling/guest) as static binaries; returns their directory.
fn build_rust_guest(ctx: &Ctx) -> Result<PathBuf> {
    build_rust_guest_for(ctx, "x86_64-unknown-linux-gnu", None)
}

/// `build_rust_guest` for a Rust target, linked by `linker` (a cross compiler) if given.
pub fn build_rust_guest_for(ctx: &Ctx, target: &str, linker: Option<&str>) -> Result<PathBuf> {
    let target_dir = ctx.repo.join("target/guest");
    let var = format!("CARGO_TARGET_{}", target.to_uppercase().replace('-', "_"));
    let mut c = Command::new("cargo");
    c.current_dir(&ctx.repo)
        .args(["build", "--quiet", "--release", "-p", "pmrs-guest"])
        .args(["--target", target])
        .arg("--target-dir")
        .arg(&target_dir)
        .env(format!("{var}_RUSTFLAGS"), "-C target-feature=+crt-static");
    if let Some(l) = linker {
        c.env(format!("{var}_LINKER"), l);
    }
    let log = if linker.is_some() {
        format!("guest-cargo-{target}.log")
    } else {
        "guest-cargo.log".to_string()
    };
    run_logged(&mut c, &ctx.logs().join(log)).context(|| "building tooling/guest")?;
    Ok(target_dir.join(target).join("release"))
}

/// The Rust guest programs copied into the initramfs.
pub const RUST_GUEST_BINS: &[&str] = &[
    "pagemap-demo",
    "pmscan-diff",
    "pmscan-regress",
    "pmscan-bench",
    "pmscan-fuzz",
    "pmscan-soak",
    "sd-precision",
    "sd-zap-probe",
];

/// Rust guest programs run as TAP suites once per implementation: (name, timeout in seconds).
pub const RUST_SUITES: &[(&str, u32)] = &[("pmscan-regress", 300), ("sd-precision", 300)];

/// Every suite run for each implementation: (name, timeout in seconds).
pub fn per_impl_suites() -> impl Iterator<Item = (&'static str, u32)> {
    SELFTESTS
        .iter()
        .filter(|t| t.per_impl)
        .map(|t| (t.name, t.timeout))
        .chain(RUST_SUITES.iter().copied())
}

/// The selftests run once per boot (label [`ONCE_IMPL`]), with their time limits.
pub fn once_suites() -> impl Iterator<Item = (&'static str, u32)> {
    SELFTESTS
        .iter()
        .filter(|t| !t.per_impl)
        .map(|t| (t.name, t.timeout))
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The guest's /init (busybox sh). Markers on fd 3 (the results channel) frame each suite:
/// `@@SUITE-BEGIN <name> <impl>` ... `@@SUITE-END <name> <impl> rc=<n> secs=<guest seconds>`,
/// then `@@ALL-DONE`.
pub fn init_script(mode: &Mode) -> String {
    let mut s = String::new();
    s.push_str(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/shm /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug
"#,
    );
    // The results channel's markers (pmrs_protocol, which the host parses them with).
    let _ = writeln!(
        s,
        "READY={GUEST_READY} NOTE={NOTE} BEGIN={SUITE_BEGIN} END={SUITE_END} DONE={ALL_DONE}"
    );
    let interactive = matches!(mode, Mode::Demo { shell: true });
    if interactive {
        s.push_str("exec 3>/dev/console\n");
    } else {
        s.push_str("exec 3>/dev/ttyS1\n");
    }
    s.push_str(
        r#"echo "$READY $(uname -r) cpus=$(nproc)" >&3
# zram swap, for pages paged out with MADV_PAGEOUT.
if [ -e /sys/block/zram0/disksize ] && echo 256M > /sys/block/zram0/disksize &&
   mkswap /dev/zram0 >/dev/null && swapon /dev/zram0; then
	echo "$NOTE swap on zram0" >&3
else
	echo "$NOTE no swap" >&3
fi
# ext4 on a ram disk: the page cache of a block filesystem (a mke2fs file system, mounted by ext4).
mkdir -p /mnt/ext4
if [ -b /dev/ram0 ] && mke2fs -q /dev/ram0 >/dev/null 2>&1 &&
   mount -t ext4 /dev/ram0 /mnt/ext4; then
	echo "$NOTE ext4 on ram0 at /mnt/ext4" >&3
else
	echo "$NOTE no ext4" >&3
fi
"#,
    );
    let _ = writeln!(
        s,
        r#"select_impl() {{
	# Suites that compare the implementations switch between them themselves.
	case "$1" in {c}|{r}) ;; *) return 0 ;; esac
	if [ -e {sw} ]; then
		echo "$1" > {sw} && [ "$(cat {sw})" = "$1" ]
		return
	fi
	# Without the switch only the C implementation exists.
	[ "$1" = {c} ]
}}
run_suite() {{
	name=$1 impl=$2 limit=$3
	shift 3
	echo "$BEGIN $name $impl" >&3
	if ! select_impl "$impl"; then
		echo "$END $name $impl rc=125 (cannot select implementation)" >&3
		return
	fi
	t0=$(cut -d. -f1 /proc/uptime)
	(cd /tmp && timeout -s KILL "$limit" "$@") >&3 2>&1
	rc=$?
	echo "$END $name $impl rc=$rc secs=$(($(cut -d. -f1 /proc/uptime) - t0))" >&3
}}"#,
        sw = IMPL_SWITCH,
        c = IMPL_C,
        r = IMPL_RUST
    );
    match mode {
        Mode::Demo { shell } => {
            s.push_str("echo '@@DEMO-BEGIN' >&3\n/bin/pagemap-demo >&3 2>&1\necho \"@@DEMO-END rc=$?\" >&3\n");
            if *shell {
                s.push_str(
                    "echo 'Guest shell: PAGEMAP_SCAN demo is /bin/pagemap-demo, selftests are in /bin. exit to power off.'\n\
                     setsid cttyhack sh\n",
                );
            }
        }
        Mode::Bench { quick, icount } => {
            let timeout = if *quick {
                BENCH_QUICK_TIMEOUT
            } else {
                BENCH_FULL_TIMEOUT
            };
            let _ = writeln!(
                s,
                "run_suite {BENCH_SUITE} {BENCH_IMPL} {timeout} /bin/pmscan-bench{}{}",
                if *quick { " --quick" } else { "" },
                if *icount { " --icount" } else { "" }
            );
        }
        Mode::Profile { runs } => {
            for (i, args) in runs.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "run_suite {PROFILE_SUITE} run-{i} 3600 /bin/pmscan-bench --marks {} {args}",
                    pmrs_protocol::PROFILE_PORT
                );
            }
        }
        Mode::Proof { tests } => {
            for t in tests {
                let _ = writeln!(
                    s,
                    "run_suite {} {} {} {}",
                    sh_quote(t.name),
                    sh_quote(ONCE_IMPL),
                    t.timeout,
                    selftest_cmd(t)
                );
            }
        }
        Mode::Zdtm { runs, bench, shell } => {
            zdtm_script(&mut s, runs, bench.as_ref());
            if let Some([released, patched]) = shell {
                let _ = writeln!(
                    s,
                    "echo 'CRIU in the guest: a shell in the host root (read-only, over 9p; /tmp \
                     and /run are tmpfs of the guest). CRIU as released: {}/criu/criu, with the \
                     get-and-clear patch: {}/criu/criu; zdtm: cd to a copy of a tree in /tmp, then \
                     test/zdtm.py run -t zdtm/static/maps00 -f h --pre 2. exit to power off.'\n\
                     setsid cttyhack chroot $H /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
                     HOME=/root TERM=linux LANG=C.UTF-8 /bin/bash",
                    released.display(),
                    patched.display()
                );
            }
        }
        Mode::Long { chunks, timeout } => {
            for r in chunks {
                reliability_suites(&mut s, r, &long_label(r.seed), *timeout, *timeout);
            }
        }
        Mode::Tests {
            impls,
            differential,
            reliability,
        } => {
            for imp in impls {
                for (name, timeout) in per_impl_suites() {
                    let _ = writeln!(
                        s,
                        "run_suite {} {} {timeout} {}",
                        sh_quote(name),
                        sh_quote(imp),
                        suite_cmd(name)
                    );
                }
            }
            for (name, timeout) in once_suites() {
                let _ = writeln!(
                    s,
                    "run_suite {} {} {timeout} {}",
                    sh_quote(name),
                    sh_quote(ONCE_IMPL),
                    suite_cmd(name)
                );
            }
            if let Some(d) = differential {
                let _ = writeln!(
                    s,
                    "run_suite {DIFF_SUITE} {DIFF_IMPL} {DIFF_TIMEOUT} /bin/pmscan-diff --calls {} --seed {}",
                    d.calls, d.seed
                );
                let _ = writeln!(
                    s,
                    "run_suite {DIFF_CLEAR_SUITE} {DIFF_IMPL} {DIFF_TIMEOUT} /bin/pmscan-diff --clear --calls {} --seed {}",
                    d.clear_calls, d.seed
                );
                // The oracle once per implementation, each clearing with it, half the calls each.
                for imp in [IMPL_C, IMPL_RUST] {
                    let _ = writeln!(
                        s,
                        "run_suite {ORACLE_SUITE} {imp} {ORACLE_TIMEOUT} /bin/pmscan-diff --clear-oracle --impl {imp} --calls {} --calls-per-build {} --seed {}",
                        d.oracle_calls.div_ceil(2), d.oracle_per_build, d.seed
                    );
                }
            }
            if let Some(r) = reliability {
                reliability_suites(&mut s, r, RELIABILITY_IMPL, FUZZ_TIMEOUT, SOAK_TIMEOUT);
            }
        }
    }
    s.push_str("echo \"$DONE\" >&3\nsync\nreboot -f\n");
    s
}

/// The init script's zdtm part: the host's root over 9p (read-only), the guest's own proc, sys,
/// dev, tmp and run mounted inside it, then each run in a chroot there, one TAP case per test.
/// zdtm writes its images and logs into the CRIU tree, so each run gets a copy of it in tmpfs.
fn zdtm_script(s: &mut String, runs: &[ZdtmRun], bench: Option<&CriuBench>) {
    let _ = writeln!(
        s,
        r#"H=/host
mkdir -p $H
if mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose {HOST_ROOT_TAG} $H; then
	for m in "proc proc" "sysfs sys" "devtmpfs dev" "tmpfs tmp" "tmpfs run"; do
		set -- $m
		mount -t $1 $1 $H/$2
	done
	mount -t devpts devpts $H/dev/pts
	mount -t tmpfs tmpfs $H/dev/shm
	mount -t debugfs debugfs $H/sys/kernel/debug
	mount -t cgroup2 cgroup2 $H/sys/fs/cgroup
	echo "$NOTE host root on 9p at $H" >&3
	# CRIU's kernel probes bind to 127.0.0.1 (kerndat_tcp_repair).
	busybox ip link set lo up
else
	echo "$NOTE no 9p host root" >&3
fi
in_host() {{
	chroot $H /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 		/bin/sh -c "$1"
}}
zdtm_begin() {{
	label=$1 imp=$2 tree=$3
	echo "$BEGIN {ZDTM_SUITE} $label" >&3
	zt0=$(cut -d. -f1 /proc/uptime) zn=0 zrc=0
	echo "TAP version 13" >&3
	if ! select_impl "$imp"; then
		echo "Bail out! cannot select implementation $imp" >&3
		zrc=125
		return 1
	fi
	rm -rf $H/tmp/zdtm
	if ! cp -a $H$tree $H/tmp/zdtm; then
		echo "Bail out! cannot copy $tree" >&3
		zrc=1
		return 1
	fi
	# The kernel probes' cache of this CRIU: another build's is stale, and probing anew in a
	# test would log a clear_refs of CRIU's own pid among the dumps' lines zdtm-one checks.
	in_host 'cd /tmp/zdtm && ./criu/criu check --feature pagemap_scan' > /dev/null 2>&1
}}
# One zdtm test: it must pass (not be skipped for its flavour), and its dumps must have cleared
# soft-dirty state the way this CRIU does (the first regexp in some log, the second in none).
cat > $H/tmp/zdtm-one <<'EOF'
t=$1 name=$2 used=$3 unused=$4
shift 4
cd /tmp/zdtm/test || exit 1
SKIP_PREP=1 timeout -s KILL $t python3 zdtm.py run -t $name -f h --keep-img always "$@" \
	> /tmp/zdtm-run.log 2>&1
rc=$?
cat /tmp/zdtm-run.log
if [ $rc = 0 ] && ! grep -q "Test $name PASS" /tmp/zdtm-run.log; then
	echo "zdtm-one: zdtm.py printed no PASS for $name"
	rc=1
fi
if [ $rc = 0 ] && ! grep -rqE "$used" dump; then
	echo "zdtm-one: no log of the dumps has /$used/"
	rc=1
fi
if [ $rc = 0 ] && grep -rqE "$unused" dump; then
	echo "zdtm-one: a log of the dumps has /$unused/:"
	grep -rE "$unused" dump | head -n 3
	rc=1
fi
rm -rf dump
exit $rc
EOF
zdtm_case() {{
	zn=$((zn + 1))
	if in_host "$2" > $H/tmp/zdtm-case.log 2>&1; then
		echo "ok $zn $1" >&3
	else
		echo "not ok $zn $1" >&3
		tail -n 60 $H/tmp/zdtm-case.log | sed 's/^/# /' >&3
		zrc=1
	fi
}}
zdtm_end() {{
	echo "1..$zn" >&3
	echo "$END {ZDTM_SUITE} $label rc=$zrc secs=$(($(cut -d. -f1 /proc/uptime) - zt0))" >&3
}}"#
    );
    for r in runs {
        let _ = writeln!(
            s,
            "if zdtm_begin {} {} {}; then",
            sh_quote(&r.label),
            sh_quote(&r.imp),
            sh_quote(&r.tree.display().to_string())
        );
        if r.clear_flag {
            s.push_str(
                "\tzdtm_case 'criu check --feature pagemap_scan_clear_sd' \
                 'cd /tmp/zdtm && ./criu/criu check --feature pagemap_scan_clear_sd'\n",
            );
        }
        // Which clear of soft-dirty state the dumps took: the patched CRIU must have used the
        // PAGEMAP_SCAN flag and never clear_refs; the released one clear_refs (so the test did
        // track memory). The logs are in the images, kept for this and removed after.
        let (used, unused) = if r.clear_flag {
            (CRIU_RESET_SCAN, CRIU_RESET_CLEAR_REFS)
        } else {
            (CRIU_RESET_CLEAR_REFS, CRIU_RESET_SCAN)
        };
        // The patched CRIU's fallback, once: with its fault 139 it must clear with clear_refs.
        let fallback = r
            .clear_flag
            .then(|| r.tests.first())
            .flatten()
            .map(|t| (t, " --fault 139", CRIU_RESET_CLEAR_REFS, CRIU_RESET_SCAN));
        for (t, extra, used, unused) in r
            .tests
            .iter()
            .map(|t| (t, "", used, unused))
            .chain(fallback)
        {
            let cmd = format!(
                "sh /tmp/zdtm-one {} {} {} {} {}{extra}",
                t.timeout,
                t.name,
                sh_quote(used),
                sh_quote(unused),
                t.opts
            );
            let _ = writeln!(
                s,
                "\tzdtm_case {} {}",
                sh_quote(format!("{} {}{extra}", t.name, t.opts).trim()),
                sh_quote(&cmd)
            );
        }
        s.push_str("fi\nzdtm_end\n");
    }
    if let Some(b) = bench {
        let _ = writeln!(
            s,
            r#"echo "$BEGIN {CRIU_BENCH_SUITE} {CRIU_BENCH_LABEL}" >&3
echo "TAP version 13" >&3
t0=$(cut -d. -f1 /proc/uptime)
cp /bin/criu-predump-bench $H/tmp/criu-predump-bench
if in_host {} >&3 2>&1; then
	echo "ok 1 criu-predump-bench" >&3
	rc=0
else
	echo "not ok 1 criu-predump-bench" >&3
	rc=1
fi
echo "1..1" >&3
echo "$END {CRIU_BENCH_SUITE} {CRIU_BENCH_LABEL} rc=$rc secs=$(($(cut -d. -f1 /proc/uptime) - t0))" >&3"#,
            sh_quote(&format!(
                "/tmp/criu-predump-bench --released {}/criu/criu --patched {}/criu/criu \
                 --mib {} --reps {}{}",
                b.released.display(),
                b.patched.display(),
                b.mib,
                b.reps,
                if b.icount { " --icount" } else { "" }
            ))
        );
    }
}

/// The init script's lines for one reliability run: the fuzzer, then the soak, under `label`.
fn reliability_suites(s: &mut String, r: &Reliability, label: &str, fuzz_t: u32, soak_t: u32) {
    let _ = writeln!(
        s,
        "run_suite {FUZZ_SUITE} {label} {fuzz_t} /bin/pmscan-fuzz --calls {} --seed {}{}",
        r.fuzz_calls,
        r.seed,
        if r.inject { " --inject" } else { "" }
    );
    let _ = writeln!(
        s,
        "run_suite {SOAK_SUITE} {label} {soak_t} /bin/pmscan-soak --writes {} --seed {}",
        r.soak_writes, r.seed
    );
    if r.clear_calls > 0 {
        let _ = writeln!(
            s,
            "run_suite {DIFF_CLEAR_SUITE} {label} {soak_t} /bin/pmscan-diff --clear --calls {} --seed {}",
            r.clear_calls, r.seed
        );
    }
}

/// Builds the guest userspace and packs the initramfs; returns its path.
pub fn initramfs(ctx: &Ctx, variant: &str, mode: &Mode) -> Result<PathBuf> {
    let g = ctx.guest_dir(variant);
    let root = g.join("root");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "proc", "sys", "dev", "tmp", "root", "etc"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let bb = Path::new("/bin/busybox");
    if !bb.exists() {
        bail!("/bin/busybox is missing (package busybox-static; run `cargo xtask setup`)");
    }
    std::fs::copy(bb, root.join("bin/busybox")).context(|| "copy busybox")?;
    match mode {
        // Only busybox: CRIU, Python and zdtm's tests come from the host's root over 9p.
        Mode::Zdtm { bench, .. } => {
            if bench.is_some() {
                let b = "criu-predump-bench";
                std::fs::copy(build_rust_guest(ctx)?.join(b), root.join("bin").join(b))
                    .context(|| format!("copy guest program {b}"))?;
            }
        }
        // The tests of the fixes alone: the Rust guest programs test what the fixes do not add.
        Mode::Proof { tests } => {
            for t in tests {
                build_selftest(ctx, variant, t, &root.join("bin").join(t.name))?;
            }
        }
        _ => {
            for t in SELFTESTS {
                build_selftest(ctx, variant, t, &root.join("bin").join(t.name))?;
            }
            let rbin = build_rust_guest(ctx)?;
            for b in RUST_GUEST_BINS {
                std::fs::copy(rbin.join(b), root.join("bin").join(b))
                    .context(|| format!("copy guest program {b}"))?;
            }
        }
    }
    let init = root.join("init");
    std::fs::write(&init, init_script(mode))?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    pack(&root, &g.join("initramfs.cpio.gz"))
}

/// Packs the directory `root` as a gzipped newc initramfs at `out`; returns `out`.
pub fn pack(root: &Path, out: &Path) -> Result<PathBuf> {
    let cmd = format!(
        "cd {} && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 > {}",
        sh_quote(&root.to_string_lossy()),
        sh_quote(&out.to_string_lossy())
    );
    run(Command::new("sh").arg("-c").arg(&cmd)).map_err(|e| err!("packing initramfs: {e}"))?;
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_run_has_one_fuzz_and_one_soak_per_chunk() {
        let chunks: Vec<_> = (4..6)
            .map(|seed| Reliability {
                fuzz_calls: 10,
                soak_writes: 20,
                clear_calls: 30,
                inject: true,
                seed,
            })
            .collect();
        let s = init_script(&Mode::Long {
            chunks,
            timeout: 99,
        });
        for seed in [4, 5] {
            assert!(s.contains(&format!(
                "run_suite pmscan-fuzz seed-{seed} 99 /bin/pmscan-fuzz --calls 10 --seed {seed} --inject"
            )));
            assert!(s.contains(&format!(
                "run_suite pmscan-soak seed-{seed} 99 /bin/pmscan-soak --writes 20 --seed {seed}"
            )));
            assert!(s.contains(&format!(
                "run_suite differential-clear seed-{seed} 99 /bin/pmscan-diff --clear --calls 30 --seed {seed}"
            )));
        }
        assert_eq!(s.matches("\nrun_suite ").count(), 6);
        assert!(s.trim_end().ends_with("reboot -f"));
    }

    #[test]
    fn init_runs_each_suite_per_impl_then_finishes() {
        let s = init_script(&Mode::Tests {
            impls: vec!["c".into(), "rust".into()],
            differential: Some(Differential {
                calls: 7,
                clear_calls: 6,
                oracle_calls: 5,
                oracle_per_build: 4000,
                seed: 3,
            }),
            reliability: Some(Reliability {
                fuzz_calls: 5,
                soak_writes: 6,
                clear_calls: 0,
                inject: true,
                seed: 3,
            }),
        });
        assert!(s.contains(
            "run_suite pmscan-fuzz c-vs-rust 900 /bin/pmscan-fuzz --calls 5 --seed 3 --inject"
        ));
        assert!(
            s.contains("run_suite pmscan-soak c-vs-rust 900 /bin/pmscan-soak --writes 6 --seed 3")
        );
        assert!(!s.contains("pmscan-bench"));
        let b = init_script(&Mode::Bench {
            quick: true,
            icount: true,
        });
        assert!(
            b.contains("run_suite pmscan-bench c-vs-rust 900 /bin/pmscan-bench --quick --icount")
        );
        assert!(
            s.contains("run_suite differential c-vs-rust 1500 /bin/pmscan-diff --calls 7 --seed 3")
        );
        for imp in ["c", "rust"] {
            assert!(s.contains(&format!(
                "run_suite sd-oracle {imp} 1800 /bin/pmscan-diff --clear-oracle --impl {imp} --calls 3 --calls-per-build 4000 --seed 3"
            )));
        }
        for imp in ["c", "rust"] {
            for t in SELFTESTS.iter().filter(|t| t.per_impl) {
                assert!(
                    s.contains(&format!(
                        "run_suite '{}' '{imp}' {} {}",
                        t.name,
                        t.timeout,
                        selftest_cmd(t)
                    )),
                    "{s}"
                );
            }
        }
        // The C implementation has the get-and-clear too.
        assert!(s.contains("run_suite 'soft-dirty-clear' 'c'"), "{s}");
        assert!(s.contains(
            "run_suite differential-clear c-vs-rust 1500 /bin/pmscan-diff --clear --calls 6 --seed 3"
        ));
        // A selftest that never calls PAGEMAP_SCAN runs once, not per implementation.
        assert_eq!(s.matches("run_suite 'soft-dirty' ").count(), 1, "{s}");
        assert!(
            s.contains("run_suite 'soft-dirty' 'kernel' 600 /bin/soft-dirty"),
            "{s}"
        );
        assert!(s.contains("exec 3>/dev/ttyS1"));
        assert!(s.contains(" DONE=@@ALL-DONE\n"), "{s}");
        let done = s.find("echo \"$DONE\" >&3").unwrap();
        assert!(done > s.rfind("run_suite '").unwrap());
        assert!(s.trim_end().ends_with("reboot -f"));
    }

    #[test]
    fn interactive_demo_uses_console() {
        let s = init_script(&Mode::Demo { shell: true });
        assert!(s.contains("exec 3>/dev/console"));
        assert!(s.contains("cttyhack sh"));
        assert!(!s.contains("run_suite '"));
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a'b"), "'a'\\''b'");
    }
}
