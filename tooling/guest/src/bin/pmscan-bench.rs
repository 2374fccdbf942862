// SPDX-License-Identifier: GPL-2.0
//! PAGEMAP_SCAN benchmarks, run in the guest: the Rust implementation against the C one in the
//! same boot (calls interleaved, the order alternating, switched through
//! /sys/kernel/debug/pagemap_scan/impl), and the soft-dirty get-and-clear against what dirty
//! trackers do today. Only ratios taken in one run mean something (the guest runs under TCG).
//!
//! Output: a TAP line per scenario, `BENCH <scenario>: rust/c <ratio>` lines, and `@@ROW`,
//! `@@DT` and `@@SCALE` lines that `cargo xtask bench` turns into docs/benchmarks.md and the
//! plot. `--quick` shrinks every size (64 MiB instead of 1 GiB) and the repetitions, for CI.
//! `--icount` says the guest clock counts instructions (QEMU `-icount shift=0`, one vCPU): the
//! summary lines are then `BENCH-ICOUNT ...` and every "ms" is a million instructions.
//! `--profile METHOD PCT` runs only the dirty-tracking rounds of one method (a name of the
//! `@@DT` lines) at one written percentage, for an instruction profile of the guest kernel
//! taken by the emulator; `--profile-scenario NAME c|rust` one scenario's scan by one
//! implementation, for the same; with `--marks DEV` each of them brackets what it measures with
//! `@@PROFILE-MARK` lines and waits for the host (`cargo xtask profile`) on `DEV`.

use pmrs_guest::*;
use pmrs_protocol::PROFILE_MARK;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const MIB: usize = 1 << 20;
const MADV_POPULATE_WRITE: i32 = 23;

/// CRIU's report-only masks (criu/pagemap-cache.c).
const CRIU_INV: u64 = PAGE_IS_PFNZERO | PAGE_IS_FILE;
const CRIU_MASK: u64 = PAGE_IS_PFNZERO | PAGE_IS_FILE;
const CRIU_ANYOF: u64 = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
const CRIU_RET: u64 = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_SOFT_DIRTY | PAGE_IS_GUARD;
const CRIU_REGIONS: usize = 32768;

type Res<T> = Result<T, String>;

fn os(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    C,
    Rust,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::C => IMPL_C,
            Impl::Rust => IMPL_RUST,
        }
    }
}

fn switch(i: Impl) -> Res<()> {
    ImplSwitch::open()
        .and_then(|s| s.set(i.name()))
        .map_err(|e| format!("{IMPL_SWITCH}: selecting {}: {e}", i.name()))
}

/// An anonymous private mapping (`MAP_NORESERVE`, plus `extra`) at a 2 MiB boundary.
fn new_map(len: usize, extra: i32) -> Res<Map> {
    Map::new(len, libc::MAP_PRIVATE | libc::MAP_NORESERVE | extra).map_err(|e| format!("mmap: {e}"))
}

/// What the benchmark does with its mappings.
trait BenchMap {
    fn madvise(&self, advice: i32) -> Res<()>;
    fn populate(&self) -> Res<()>;
    fn write_every(&self, stride: usize, first: usize);
}

impl BenchMap for Map {
    fn madvise(&self, advice: i32) -> Res<()> {
        // SAFETY: advice on our own mapping.
        if unsafe { libc::madvise(self.addr as *mut _, self.len, advice) } != 0 {
            return Err(os(&format!("madvise {advice}")));
        }
        Ok(())
    }

    fn populate(&self) -> Res<()> {
        if self.madvise(MADV_POPULATE_WRITE).is_err() {
            self.write_every(1, 0);
        }
        Ok(())
    }

    /// Writes one byte into every `stride`-th page, starting at page `first`.
    fn write_every(&self, stride: usize, first: usize) {
        let mut i = first;
        while i < self.pages() {
            // SAFETY: inside our read-write mapping.
            unsafe { std::ptr::write_volatile((self.addr + i * PAGE) as *mut u8, i as u8 | 1) };
            i += stride.max(1);
        }
    }
}

fn now() -> Instant {
    Instant::now()
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Median and quartiles of `v` (sorted in place).
fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    (q(0.5), q(0.25), q(0.75))
}

/// A PAGEMAP_SCAN over `start..end`, resumed at walk_end until done; returns regions seen.
fn scan_range(
    fd: i32,
    start: u64,
    end: u64,
    flags: u64,
    m: (u64, u64, u64, u64),
    vec: &mut [PageRegion],
) -> Res<usize> {
    let mut at = start;
    let mut n = 0;
    while at < end {
        let mut a = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            flags,
            start: at,
            end,
            vec: vec.as_mut_ptr() as u64,
            vec_len: vec.len() as u64,
            category_inverted: m.0,
            category_mask: m.1,
            category_anyof_mask: m.2,
            return_mask: m.3,
            ..Default::default()
        };
        n += pagemap_scan(fd, &mut a).map_err(|e| format!("PAGEMAP_SCAN: {e}"))?;
        if a.walk_end <= at {
            break;
        }
        at = a.walk_end;
    }
    Ok(n)
}

/// Wine's memory for the uffd-wp scenarios: `len` bytes, small pages, registered for
/// asynchronous uffd-wp and populated; returns it and the userfaultfd.
fn uffd_wp_map(len: usize) -> Res<(Map, i32)> {
    let m = new_map(len, 0)?;
    m.madvise(libc::MADV_NOHUGEPAGE)?;
    let uffd = uffd_open(UFFD_FEATURES_WP_ASYNC).map_err(|e| format!("userfaultfd: {e}"))?;
    uffd_register_wp(uffd, m.addr, m.len).map_err(|e| format!("UFFDIO_REGISTER: {e}"))?;
    m.populate()?;
    Ok((m, uffd))
}

/// `n` populated pages, every other one read-only: `n` VMAs.
fn many_vmas_map(n: usize) -> Res<Map> {
    let m = new_map(n * PAGE, 0)?;
    m.madvise(libc::MADV_NOHUGEPAGE)?;
    m.populate()?;
    for i in (1..n).step_by(2) {
        // SAFETY: a page of our own mapping.
        if unsafe { libc::mprotect((m.addr + i * PAGE) as *mut _, PAGE, libc::PROT_READ) } != 0 {
            return Err(os("mprotect"));
        }
    }
    Ok(m)
}

struct Bench {
    fd: i32,
    reps: usize,
    quick: bool,
    /// `BENCH`, or `BENCH-ICOUNT` when the guest clock counts instructions.
    label: &'static str,
    /// The size the issue calls 1 GiB.
    big: usize,
    vec: Vec<PageRegion>,
    tap: usize,
    failed: usize,
}

impl Bench {
    fn ok(&mut self, name: &str, r: Res<()>) {
        self.tap += 1;
        match r {
            Ok(()) => println!("ok {} {name}", self.tap),
            Err(e) => {
                self.failed += 1;
                println!("not ok {} {name}\n# {e}", self.tap);
            }
        }
    }

    /// Times `call` for C and Rust, `reps` times each, interleaved with the order alternating;
    /// `prep` runs untimed before each call. Prints the row and the BENCH line.
    fn pair(
        &mut self,
        name: &str,
        pages: usize,
        prep: &mut dyn FnMut() -> Res<()>,
        call: &mut dyn FnMut(&mut Self) -> Res<usize>,
    ) -> Res<()> {
        let mut t = [Vec::new(), Vec::new()];
        let mut regions = [0usize; 2];
        for rep in 0..self.reps {
            let order = if rep % 2 == 0 {
                [Impl::C, Impl::Rust]
            } else {
                [Impl::Rust, Impl::C]
            };
            for i in order {
                prep()?;
                switch(i)?;
                let t0 = now();
                let n = call(self)?;
                t[(i == Impl::Rust) as usize].push(ms(t0));
                regions[(i == Impl::Rust) as usize] = n;
            }
        }
        if regions[0] != regions[1] {
            return Err(format!(
                "{name}: C reported {} regions, Rust {}",
                regions[0], regions[1]
            ));
        }
        let (cm, c25, c75) = stats(&mut t[0]);
        let (rm, r25, r75) = stats(&mut t[1]);
        let ratio = rm / cm;
        println!(
            "@@ROW scenario={name} pages={pages} regions={} c_med={cm:.4} c_p25={c25:.4} c_p75={c75:.4} rust_med={rm:.4} rust_p25={r25:.4} rust_p75={r75:.4} reps={}",
            regions[1], self.reps
        );
        println!("{} {name}: rust/c {ratio:.3}", self.label);
        Ok(())
    }

    fn criu_scan(&mut self, m: &Map) -> Res<usize> {
        let fd = self.fd;
        scan_range(
            fd,
            m.addr as u64,
            m.end(),
            0,
            (CRIU_INV, CRIU_MASK, CRIU_ANYOF, CRIU_RET),
            &mut self.vec,
        )
    }

    fn sparse(&mut self) -> Res<()> {
        let m = new_map(self.big, 0)?;
        m.madvise(libc::MADV_NOHUGEPAGE)?;
        m.write_every(100, 0);
        self.pair("sparse", m.pages(), &mut || Ok(()), &mut |b| {
            b.criu_scan(&m)
        })
    }

    fn dense(&mut self) -> Res<()> {
        let m = new_map(self.big, 0)?;
        m.madvise(libc::MADV_NOHUGEPAGE)?;
        m.populate()?;
        self.pair("dense", m.pages(), &mut || Ok(()), &mut |b| b.criu_scan(&m))
    }

    fn thp(&mut self) -> Res<()> {
        let m = new_map(self.big, 0)?;
        m.madvise(libc::MADV_HUGEPAGE)?;
        m.populate()?;
        let huge = scan_range(
            self.fd,
            m.addr as u64,
            m.end(),
            0,
            (0, PAGE_IS_HUGE, 0, PAGE_IS_HUGE),
            &mut self.vec,
        )?;
        if huge == 0 {
            return Err("no THP was mapped".into());
        }
        self.pair("thp", m.pages(), &mut || Ok(()), &mut |b| b.criu_scan(&m))
    }

    fn hugetlb(&mut self) -> Res<()> {
        let got = reserve_hugetlb(self.big / HUGE)?;
        let r = (|| {
            let m = new_map(got * HUGE, libc::MAP_HUGETLB)?;
            m.populate()?;
            println!("# hugetlb: {got} pages of 2 MiB");
            self.pair("hugetlb", m.pages(), &mut || Ok(()), &mut |b| {
                b.criu_scan(&m)
            })
        })();
        let _ = std::fs::write(NR_HUGEPAGES, "0\n");
        r
    }

    /// Wine's GetWriteWatch loop: written pages reported and write-protected again.
    fn uffd_wp(&mut self) -> Res<()> {
        let (m, uffd) = uffd_wp_map(self.big / 4)?;
        let wp = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
        let written = (0, PAGE_IS_WRITTEN, 0, PAGE_IS_WRITTEN);
        let mut none: [PageRegion; 0] = [];
        scan_range(self.fd, m.addr as u64, m.end(), wp, written, &mut none)?;
        let mut r = Ok(());
        for (pct, stride) in [("1%", 100), ("10%", 10), ("100%", 1)] {
            let name = format!("uffd-wp@{pct}");
            let fd = self.fd;
            r = r.and(self.pair(
                &name,
                m.pages(),
                &mut || {
                    m.write_every(stride, 0);
                    Ok(())
                },
                &mut |b| scan_range(fd, m.addr as u64, m.end(), wp, written, &mut b.vec[..256]),
            ));
        }
        // SAFETY: closing our descriptor.
        unsafe { libc::close(uffd) };
        r
    }

    fn many_vmas(&mut self) -> Res<()> {
        let m = many_vmas_map(if self.quick { 2000 } else { 10000 })?;
        self.pair("many-vmas", m.pages(), &mut || Ok(()), &mut |b| {
            b.criu_scan(&m)
        })
    }

    /// Scan cost against virtual size (1% populated) and against populated fraction.
    fn scaling(&mut self) -> Res<()> {
        let sizes: &[usize] = if self.quick {
            &[16, 64]
        } else {
            &[64, 256, 1024, 4096]
        };
        for &mib in sizes {
            let m = new_map(mib * MIB, 0)?;
            m.madvise(libc::MADV_NOHUGEPAGE)?;
            m.write_every(100, 0);
            let (c, r) = self.time_both(&m)?;
            println!("@@SCALE kind=size x={mib} c={c:.4} rust={r:.4}");
        }
        for (pct, stride) in [(0.0, 0), (1.0, 100), (10.0, 10), (100.0, 1)] {
            let m = new_map(self.big, 0)?;
            m.madvise(libc::MADV_NOHUGEPAGE)?;
            if stride > 0 {
                m.write_every(stride, 0);
            }
            let (c, r) = self.time_both(&m)?;
            println!("@@SCALE kind=populated x={pct} c={c:.4} rust={r:.4}");
        }
        Ok(())
    }

    fn time_both(&mut self, m: &Map) -> Res<(f64, f64)> {
        let mut t = [Vec::new(), Vec::new()];
        for rep in 0..self.reps.min(5) {
            let order = if rep % 2 == 0 {
                [Impl::C, Impl::Rust]
            } else {
                [Impl::Rust, Impl::C]
            };
            for i in order {
                switch(i)?;
                let t0 = now();
                self.criu_scan(m)?;
                t[(i == Impl::Rust) as usize].push(ms(t0));
            }
        }
        Ok((stats(&mut t[0]).0, stats(&mut t[1]).0))
    }
}

/// The pages a SIGSEGV-based tracker saw written (mprotect + SIGSEGV, method e).
static SEGV_BASE: AtomicUsize = AtomicUsize::new(0);
static SEGV_LEN: AtomicUsize = AtomicUsize::new(0);
static SEGV_N: AtomicUsize = AtomicUsize::new(0);
static mut SEGV_LOG: [usize; 1 << 18] = [0; 1 << 18];

extern "C" fn on_segv(_sig: i32, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV.
    let addr = unsafe { (*info).si_addr() } as usize;
    let base = SEGV_BASE.load(Ordering::Relaxed);
    if addr < base || addr >= base + SEGV_LEN.load(Ordering::Relaxed) {
        // Not ours: die as the fault would have.
        // SAFETY: async-signal-safe calls.
        unsafe {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        }
        return;
    }
    let page = addr & !(PAGE - 1);
    let i = SEGV_N.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the log is only written here, one slot per index; read after the writes stop.
    unsafe {
        let log = &raw mut SEGV_LOG;
        if i < (*log).len() {
            (*log)[i] = page;
        }
        libc::mprotect(page as *mut _, PAGE, libc::PROT_READ | libc::PROT_WRITE);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    SdClear(Impl),
    PagemapClearRefs,
    ScanClearRefs(Impl),
    UffdWp(Impl),
    Mprotect,
}

impl Method {
    fn name(self) -> String {
        match self {
            Method::SdClear(i) => format!("sd-get-and-clear-{}", i.name()),
            Method::PagemapClearRefs => "pagemap+clear_refs".into(),
            Method::ScanClearRefs(i) => format!("scan-{}+clear_refs", i.name()),
            Method::UffdWp(i) => format!("uffd-wp-{}", i.name()),
            Method::Mprotect => "mprotect+sigsegv".into(),
        }
    }
}

fn clear_refs() -> Res<()> {
    std::fs::write("/proc/self/clear_refs", "4").map_err(|e| format!("clear_refs: {e}"))
}

/// One dirty-tracking method on a fully populated region: `rounds` times, write `stride`-spread
/// pages (timed separately), then collect and re-arm (timed). Returns (collect, write) medians
/// in ms and the pages found in the last round.
/// `marks` (`cargo xtask profile`): marks after the first collect, which arms the tracking over
/// a freshly populated mapping, and after the rounds; the profile is of the rounds alone.
fn track(
    b: &mut Bench,
    method: Method,
    stride: usize,
    rounds: usize,
    marks: Option<&str>,
) -> Res<(f64, f64, usize)> {
    let m = new_map(b.big, 0)?;
    m.madvise(libc::MADV_NOHUGEPAGE)?;
    let mut uffd = -1;
    if let Method::UffdWp(_) = method {
        uffd = uffd_open(UFFD_FEATURES_WP_ASYNC).map_err(|e| format!("userfaultfd: {e}"))?;
        uffd_register_wp(uffd, m.addr, m.len).map_err(|e| format!("UFFDIO_REGISTER: {e}"))?;
    }
    m.populate()?;
    let imp = match method {
        Method::SdClear(i) | Method::ScanClearRefs(i) | Method::UffdWp(i) => i,
        _ => Impl::C,
    };
    switch(imp)?;
    let sd = (0, PAGE_IS_SOFT_DIRTY, 0, PAGE_IS_SOFT_DIRTY);
    let written = (0, PAGE_IS_WRITTEN, 0, PAGE_IS_WRITTEN);
    let wp = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
    let fd = b.fd;
    let mut pagemap =
        std::fs::File::open("/proc/self/pagemap").map_err(|e| format!("pagemap: {e}"))?;
    let mut entries = vec![0u8; m.pages() * 8];
    // Collect-and-re-arm; returns the dirty pages found.
    let mut collect = |b: &mut Bench| -> Res<usize> {
        match method {
            Method::SdClear(_) => {
                let n = scan_range(
                    fd,
                    m.addr as u64,
                    m.end(),
                    PM_SCAN_CLEAR_SOFT_DIRTY,
                    sd,
                    &mut b.vec,
                )?;
                Ok(n)
            }
            Method::PagemapClearRefs => {
                pagemap
                    .seek(SeekFrom::Start((m.addr / PAGE * 8) as u64))
                    .map_err(|e| format!("pagemap seek: {e}"))?;
                pagemap
                    .read_exact(&mut entries)
                    .map_err(|e| format!("pagemap read: {e}"))?;
                let n = entries
                    .chunks_exact(8)
                    .filter(|e| {
                        u64::from_ne_bytes((*e).try_into().unwrap_or([0; 8])) & (1 << 55) != 0
                    })
                    .count();
                clear_refs()?;
                Ok(n)
            }
            Method::ScanClearRefs(_) => {
                let n = scan_range(fd, m.addr as u64, m.end(), 0, sd, &mut b.vec)?;
                clear_refs()?;
                Ok(n)
            }
            Method::UffdWp(_) => scan_range(fd, m.addr as u64, m.end(), wp, written, &mut b.vec),
            Method::Mprotect => {
                let n = SEGV_N.swap(0, Ordering::Relaxed);
                // SAFETY: our own mapping.
                if unsafe { libc::mprotect(m.addr as *mut _, m.len, libc::PROT_READ) } != 0 {
                    return Err(os("mprotect"));
                }
                Ok(n)
            }
        }
    };
    if method == Method::Mprotect {
        SEGV_BASE.store(m.addr, Ordering::Relaxed);
        SEGV_LEN.store(m.len, Ordering::Relaxed);
        // SAFETY: installing a handler that only touches atomics, a static log and mprotect.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_segv as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut());
        }
    }
    // Arm once.
    collect(b)?;
    mark(marks)?;
    let (mut tc, mut tw) = (Vec::new(), Vec::new());
    let mut found = 0;
    for _ in 0..rounds {
        let t0 = now();
        m.write_every(stride, 0);
        tw.push(ms(t0));
        let t0 = now();
        found = collect(b)?;
        tc.push(ms(t0));
    }
    mark(marks)?;
    if uffd >= 0 {
        // SAFETY: closing our descriptor.
        unsafe { libc::close(uffd) };
    }
    if method == Method::Mprotect {
        // SAFETY: restoring the default action.
        unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
    }
    Ok((stats(&mut tc).0, stats(&mut tw).0, found))
}

fn dirty_tracking(b: &mut Bench) -> Res<()> {
    let rounds = if b.quick { 3 } else { 7 };
    let methods = [
        Method::SdClear(Impl::C),
        Method::SdClear(Impl::Rust),
        Method::PagemapClearRefs,
        Method::ScanClearRefs(Impl::C),
        Method::UffdWp(Impl::C),
        Method::UffdWp(Impl::Rust),
        Method::Mprotect,
    ];
    let mut at1 = [0.0f64; 2];
    // The soft-dirty get-and-clear against the C uffd-wp get+WP walk, per written fraction.
    let mut vs_uffd = Vec::new();
    for (pct, stride) in [(0.1, 1000), (1.0, 100), (10.0, 10), (100.0, 1)] {
        // C get-and-clear, C uffd-wp, Rust get-and-clear.
        let mut sd_uffd = [0.0f64; 3];
        let expect = (b.big / PAGE).div_ceil(stride);
        for method in methods {
            let (collect, write, found) = track(b, method, stride, rounds, None)?;
            // Regions for the scans, pages for the others: with a stride > 1 they are equal.
            if stride > 1 && found != expect {
                return Err(format!(
                    "{} at {pct}%: found {found} dirty, {expect} written",
                    method.name()
                ));
            }
            println!(
                "@@DT method={} pct={pct} collect_med={collect:.4} write_med={write:.4} found={found}",
                method.name()
            );
            if method == Method::SdClear(Impl::C) {
                sd_uffd[0] = collect;
            }
            if method == Method::UffdWp(Impl::C) {
                sd_uffd[1] = collect;
            }
            if method == Method::SdClear(Impl::Rust) {
                sd_uffd[2] = collect;
            }
            if pct == 1.0 && method == Method::SdClear(Impl::C) {
                at1[0] = collect;
            }
            if pct == 1.0 && method == Method::PagemapClearRefs {
                at1[1] = collect;
            }
        }
        vs_uffd.push((pct, sd_uffd[0], sd_uffd[1], sd_uffd[2]));
    }
    // Rust and C get-and-clear against the C uffd-wp get+WP walk; Rust against C, per written
    // fraction and at the worst one.
    let mut worst = 0.0f64;
    for (pct, c, uffd, rust) in vs_uffd {
        println!("{} sd-vs-uffd-wp-c@{pct}%: {:.3}", b.label, rust / uffd);
        println!("{} sd-c-vs-uffd-wp-c@{pct}%: {:.3}", b.label, c / uffd);
        println!(
            "{} sd-get-and-clear@{pct}%: rust/c {:.3}",
            b.label,
            rust / c
        );
        worst = worst.max(rust / c);
    }
    println!("{} sd-get-and-clear: rust/c {worst:.3}", b.label);
    println!(
        "{} sd-vs-pagemap-clear_refs@1%: {:.1}x",
        b.label,
        at1[1] / at1[0]
    );
    Ok(())
}

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// Reserves `want` hugetlb pages of 2 MiB; returns how many the kernel gave, at least one.
fn reserve_hugetlb(want: usize) -> Res<usize> {
    let path = NR_HUGEPAGES;
    std::fs::write(path, format!("{want}\n")).map_err(|e| format!("{path}: {e}"))?;
    let got: usize = std::fs::read_to_string(path)
        .map_err(|e| format!("{path}: {e}"))?
        .trim()
        .parse()
        .unwrap_or(0);
    if got == 0 {
        return Err("no hugetlb page could be reserved".into());
    }
    Ok(got)
}

/// With `--marks DEV` (`cargo xtask profile`): prints `@@PROFILE-MARK` and waits for a line on
/// `DEV`, which the host writes once the emulator has dumped its block counts.
fn mark(dev: Option<&str>) -> Res<()> {
    let Some(dev) = dev else {
        return Ok(());
    };
    println!("{PROFILE_MARK}");
    let f = std::fs::File::open(dev).map_err(|e| format!("{dev}: {e}"))?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(f), &mut line)
        .map_err(|e| format!("{dev}: {e}"))?;
    Ok(())
}

/// `--profile METHOD PCT`: the dirty-tracking rounds of one method at one written percentage
/// (the writes and the collects; not the setup nor the first collect).
fn profile(
    b: &mut Bench,
    method: Option<&String>,
    pct: Option<&String>,
    marks: Option<&str>,
) -> ExitCode {
    let methods = [
        Method::SdClear(Impl::C),
        Method::SdClear(Impl::Rust),
        Method::PagemapClearRefs,
        Method::ScanClearRefs(Impl::C),
        Method::ScanClearRefs(Impl::Rust),
        Method::UffdWp(Impl::C),
        Method::UffdWp(Impl::Rust),
        Method::Mprotect,
    ];
    let m = methods.into_iter().find(|m| Some(&m.name()) == method);
    let stride = match pct.map(String::as_str) {
        Some("0.1") => 1000,
        Some("1") => 100,
        Some("10") => 10,
        Some("100") => 1,
        _ => 0,
    };
    let Some(m) = m.filter(|_| stride > 0) else {
        println!("usage: pmscan-bench [--quick] --profile METHOD 0.1|1|10|100");
        return ExitCode::from(2);
    };
    let rounds = if b.quick { 3 } else { 7 };
    match track(b, m, stride, rounds, marks) {
        Ok((collect, write, found)) => {
            println!(
                "@@DT method={} stride={stride} collect_med={collect:.4} write_med={write:.4} \
                 found={found}",
                m.name()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("pmscan-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--profile-scenario NAME c|rust`: one scenario's scan (dense, sparse, thp, hugetlb or
/// many-vmas, CRIU's masks; uffd-wp@10, Wine's get+WP after writing every tenth page) by one
/// implementation, `reps` times, for an instruction profile of the guest kernel beside the
/// other one's. hugetlb leaves its pages reserved: the boot ends after the profile.
fn profile_scenario(
    b: &mut Bench,
    name: Option<&String>,
    imp: Option<&String>,
    marks: Option<&str>,
) -> ExitCode {
    let imp = match imp.map(String::as_str) {
        Some("c") => Impl::C,
        Some("rust") => Impl::Rust,
        _ => {
            println!("usage: pmscan-bench [--quick] --profile-scenario NAME c|rust");
            return ExitCode::from(2);
        }
    };
    let r = (|| -> Res<usize> {
        let m = match name.map(String::as_str) {
            Some("many-vmas") => many_vmas_map(if b.quick { 2000 } else { 10000 })?,
            Some("uffd-wp@10") => {
                let (m, _uffd) = uffd_wp_map(b.big / 4)?;
                let wp = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
                let written = (0, PAGE_IS_WRITTEN, 0, PAGE_IS_WRITTEN);
                switch(imp)?;
                mark(marks)?;
                let mut n = 0;
                for _ in 0..b.reps {
                    m.write_every(10, 0);
                    n += scan_range(b.fd, m.addr as u64, m.end(), wp, written, &mut b.vec[..256])?;
                }
                mark(marks)?;
                return Ok(n);
            }
            Some(s @ ("dense" | "sparse" | "thp")) => {
                let m = new_map(b.big, 0)?;
                m.madvise(if s == "thp" {
                    libc::MADV_HUGEPAGE
                } else {
                    libc::MADV_NOHUGEPAGE
                })?;
                if s == "sparse" {
                    m.write_every(100, 0);
                } else {
                    m.populate()?;
                }
                m
            }
            Some("hugetlb") => {
                let got = reserve_hugetlb(b.big / HUGE)?;
                let m = new_map(got * HUGE, libc::MAP_HUGETLB)?;
                m.populate()?;
                m
            }
            _ => {
                return Err("scenarios: dense, sparse, thp, hugetlb, many-vmas, uffd-wp@10".into())
            }
        };
        switch(imp)?;
        mark(marks)?;
        let mut n = 0;
        for _ in 0..b.reps {
            n += b.criu_scan(&m)?;
        }
        mark(marks)?;
        Ok(n)
    })();
    match r {
        Ok(n) => {
            println!("@@PROFILE-SCENARIO regions={n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("pmscan-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let icount = args.iter().any(|a| a == "--icount");
    let big = if quick { 64 * MIB } else { 1024 * MIB };
    let Ok(pm) = std::fs::File::open("/proc/self/pagemap") else {
        println!("Bail out! /proc/self/pagemap");
        return ExitCode::FAILURE;
    };
    let mut b = Bench {
        fd: pm.as_raw_fd(),
        reps: if quick { 5 } else { 15 },
        quick,
        label: if icount { "BENCH-ICOUNT" } else { "BENCH" },
        big,
        vec: vec![PageRegion::default(); CRIU_REGIONS],
        tap: 0,
        failed: 0,
    };
    let marks = args
        .iter()
        .position(|a| a == "--marks")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    if let Some(i) = args.iter().position(|a| a == "--profile-scenario") {
        return profile_scenario(&mut b, args.get(i + 1), args.get(i + 2), marks);
    }
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        return profile(&mut b, args.get(i + 1), args.get(i + 2), marks);
    }
    println!("TAP version 13");
    println!("1..9");
    println!(
        "# pmscan-bench: {} MiB as the big size, {} repetitions, TCG guest{}",
        big / MIB,
        b.reps,
        if icount {
            ", clock counting instructions (ms = millions of instructions)"
        } else {
            ""
        }
    );
    let r = b.sparse();
    b.ok("sparse", r);
    let r = b.dense();
    b.ok("dense", r);
    let r = b.thp();
    b.ok("thp", r);
    let r = b.hugetlb();
    b.ok("hugetlb", r);
    let r = b.uffd_wp();
    b.ok("uffd-wp", r);
    let r = b.many_vmas();
    b.ok("many-vmas", r);
    let r = b.scaling();
    b.ok("scaling", r);
    let r = dirty_tracking(&mut b);
    b.ok("dirty-tracking", r);
    let r = switch(Impl::Rust);
    b.ok("restore-impl", r);
    drop(pm);
    if b.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
