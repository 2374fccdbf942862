// SPDX-License-Identifier: GPL-2.0
//! PAGEMAP_SCAN fuzzer with chaos threads, run in the guest.
//!
//! A supervisor forks workers one after the other, each with its own seed. A worker maps an
//! arena of 2 MiB slots (anonymous, THP, memfd, hugetlb, shared anonymous, ext4 files) and scans
//! it, and another process that it forks and kills, with random `pm_scan_arg`s biased to edges
//! and hostile values (every row of the errno table: bad size, flags and masks, unaligned or
//! kernel addresses, end before start, unreadable arg, vec NULL/unmapped/read-only/overflowing,
//! max_pages edges), through either implementation. Meanwhile chaos threads munmap and MAP_FIXED slots (the scanned range
//! and `vec` both live there), mremap, madvise (DONTNEED, PAGEOUT, HUGEPAGE, COLLAPSE, guard
//! install/remove, MERGEABLE/UNMERGEABLE for ksmd), mprotect, register/unregister/write-protect
//! with userfaultfd, fork and exit, kill the other process mid-scan, compact memory (pages
//! migrate under the scans), and (with `--inject`, where the kernel has fault injection) make
//! slab and page allocations of the worker fail.
//!
//! Oracles: every errno is one the C version can return; one call in eight, chaos paused, no
//! fault injected and without the flags that change page state, runs through C and then Rust
//! with the same input and must get the same errno; every call returns (the supervisor kills a
//! worker that makes no progress for `HANG_SECS` and counts a hang, two if the worker does not
//! die, after printing what it was doing: the call and the chaos operations in flight, each
//! thread's system call, CPU time and kernel stacks, the arena's mappings and page tables); no
//! splat in the kernel log.
//!
//! Prints `FUZZ: calls <n>, chaos <n>, splats <n>, errno-mismatch <n>, hangs <n>, clear-calls
//! <n>, bad-output <n>` and TAP.

use pmrs_guest::*;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const ARENA: usize = 0x2000_0000_0000;
const SLOTS: usize = 12;
const HANG_SECS: u64 = 120;
const CALLS_PER_WORKER: u64 = 4000;
const MADV_PAGEOUT: i32 = 21;
const MADV_COLLAPSE: i32 = 25;
const MADV_GUARD_INSTALL: i32 = 102;
const MADV_GUARD_REMOVE: i32 = 103;
const KERNEL_ADDR: u64 = 0xffff_8000_0000_0000;

/// Counters shared by the supervisor and its workers (a MAP_SHARED page).
#[repr(C)]
struct Stats {
    calls: AtomicU64,
    chaos: AtomicU64,
    compared: AtomicU64,
    /// Successful calls with `PM_SCAN_CLEAR_SOFT_DIRTY`.
    clears: AtomicU64,
    /// Calls whose output broke what holds whatever the chaos threads do (see `check_output`).
    bad_output: AtomicU64,
    mismatch: AtomicU64,
    unexpected: AtomicU64,
    heartbeat: AtomicU64,
    errno: [AtomicU64; 64],
    /// Per chaos thread, the operation in flight: its index + 1 (0 between operations),
    /// address and length. Printed when a worker stalls.
    inflight: [[AtomicU64; 3]; CHAOS_THREADS],
    /// The PAGEMAP_SCAN call in flight: flags + 1 (0 between calls), start, end.
    scan: [AtomicU64; 3],
}

const CHAOS_THREADS: usize = 2;
const CHAOS_OPS: [&str; 15] = [
    "munmap",
    "mmap",
    "mmap",
    "mremap",
    "madvise",
    "madvise(GUARD_INSTALL)",
    "mprotect",
    "uffd register",
    "uffd unregister",
    "uffd writeprotect",
    "write",
    "fork",
    "kill other",
    "compact memory",
    "fault injection",
];

fn stats() -> &'static Stats {
    static PTR: AtomicU64 = AtomicU64::new(0);
    let p = PTR.load(Ordering::Relaxed);
    if p != 0 {
        // SAFETY: set once below to a zeroed shared page that is never unmapped.
        return unsafe { &*(p as *const Stats) };
    }
    // SAFETY: a fresh shared anonymous mapping, zero-filled; Stats is atomics only.
    let m = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            std::mem::size_of::<Stats>().next_multiple_of(PAGE),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert!(m != libc::MAP_FAILED, "mmap stats");
    PTR.store(m as u64, Ordering::Relaxed);
    // SAFETY: as above.
    unsafe { &*(m as *const Stats) }
}

fn slot(i: usize) -> usize {
    ARENA + i * HUGE
}

/// Errnos the C PAGEMAP_SCAN can return (shared notes' errno table), plus EACCES for the
/// soft-dirty clear on another process.
const ALLOWED: [i32; 7] = [
    libc::EINVAL,
    libc::EFAULT,
    libc::EPERM,
    libc::ESRCH,
    libc::EINTR,
    libc::ENOMEM,
    libc::EACCES,
];

struct Worker {
    uffd: i32,
    /// Slots ever registered with userfaultfd since last mapped: no guard install there
    /// (MADV_GUARD_INSTALL on uffd-wp markers livelocks; see the cover letter).
    registered: Mutex<[bool; SLOTS]>,
    /// Chaos holds it for reading per operation; a compared call takes it for writing.
    quiet: RwLock<()>,
    stop: AtomicBool,
    other: AtomicI32,
    inject: bool,
}

fn map_slot(w: &Worker, r: &mut Rng, i: usize) {
    let kind = r.below(6);
    let (flags, fd) = match kind {
        0 | 1 => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        2 => {
            // SAFETY: a NUL-terminated name.
            let fd = unsafe { libc::memfd_create(c"fz".as_ptr(), 0) };
            // SAFETY: sizing our memfd.
            unsafe { libc::ftruncate(fd, HUGE as i64) };
            (libc::MAP_SHARED, fd)
        }
        3 => (
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
            -1,
        ),
        4 => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
        _ => {
            // A file on ext4 (the page cache of a block filesystem), unlinked at once so that
            // workers leave nothing behind.
            let path = format!("/mnt/ext4/fz-{}-{i}\0", std::process::id());
            // SAFETY: a NUL-terminated path.
            let fd = unsafe {
                libc::open(
                    path.as_ptr().cast(),
                    libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
                    0o600,
                )
            };
            if fd < 0 {
                return;
            }
            // SAFETY: as above; sizing our own file.
            unsafe {
                libc::unlink(path.as_ptr().cast());
                libc::ftruncate(fd, HUGE as i64);
            }
            (libc::MAP_SHARED, fd)
        }
    };
    let prot = if r.chance(85) {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    let p = {
        // The new VMA and its flag change together (no registration in between).
        let mut reg = w.registered.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: MAP_FIXED inside our arena, which only this program uses.
        let p = unsafe {
            libc::mmap(
                slot(i) as *mut _,
                HUGE,
                prot,
                flags | libc::MAP_FIXED,
                fd,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            reg[i] = false;
        }
        p
    };
    if fd >= 0 {
        // SAFETY: the mapping keeps the file.
        unsafe { libc::close(fd) };
    }
    if p == libc::MAP_FAILED {
        return;
    }
    if kind == 1 || kind == 5 {
        // SAFETY: advice on our slot.
        unsafe { libc::madvise(p, HUGE, libc::MADV_HUGEPAGE) };
    }
    if prot & libc::PROT_WRITE != 0 {
        let n = r.below(64) as usize;
        for _ in 0..n {
            let off = r.below((HUGE / PAGE) as u64) as usize * PAGE;
            poke(slot(i) + off);
        }
    }
}

/// /dev/zero, read into arena pages to write them.
static ZERO: AtomicI32 = AtomicI32::new(-1);

/// Writes a byte at `addr` in the arena through read(2) from /dev/zero: the kernel takes the
/// write fault as the CPU would, but an unmapped, protected or guard page gives EFAULT instead
/// of a signal (a racing chaos operation may have changed the slot).
fn poke(addr: usize) {
    // SAFETY: the kernel writes one byte at `addr` or fails with EFAULT; nothing of ours lives
    // in the arena.
    unsafe { libc::read(ZERO.load(Ordering::Relaxed), addr as *mut _, 1) };
}

/// One chaos operation, by chaos thread `t`.
fn chaos(w: &Worker, r: &mut Rng, t: usize) {
    let _q = w.quiet.read();
    let i = r.below(SLOTS as u64) as usize;
    let a = slot(i) + r.below(512) as usize * PAGE;
    let len = (1 + r.below(512) as usize) * PAGE;
    let len = len.min(slot(i) + HUGE - a);
    let op = r.below(CHAOS_OPS.len() as u64);
    let inflight = &stats().inflight[t];
    inflight[1].store(a as u64, Ordering::Relaxed);
    inflight[2].store(len as u64, Ordering::Relaxed);
    inflight[0].store(op + 1, Ordering::Release);
    match op {
        0 => {
            // SAFETY: our arena.
            unsafe { libc::munmap(slot(i) as *mut _, HUGE) };
        }
        1 | 2 => map_slot(w, r, i),
        3 => {
            let j = r.below(SLOTS as u64) as usize;
            let mut reg = w.registered.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: our arena, MREMAP_FIXED onto another slot of it.
            let p = unsafe {
                libc::mremap(
                    slot(i) as *mut _,
                    HUGE,
                    HUGE,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    slot(j) as *mut libc::c_void,
                )
            };
            if p != libc::MAP_FAILED {
                reg[j] = reg[i];
            }
        }
        4 => {
            let adv = [
                libc::MADV_DONTNEED,
                MADV_PAGEOUT,
                libc::MADV_HUGEPAGE,
                libc::MADV_NOHUGEPAGE,
                MADV_COLLAPSE,
                MADV_GUARD_REMOVE,
                libc::MADV_MERGEABLE,
                libc::MADV_UNMERGEABLE,
            ][r.below(8) as usize];
            // SAFETY: advice on our arena.
            unsafe { libc::madvise(a as *mut _, len, adv) };
        }
        5 => {
            if let Ok(reg) = w.registered.lock() {
                if !reg[i] {
                    // SAFETY: advice on our arena, never registered with userfaultfd.
                    unsafe { libc::madvise(a as *mut _, len, MADV_GUARD_INSTALL) };
                }
            }
        }
        6 => {
            let prot = [
                libc::PROT_READ,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::PROT_NONE,
            ][r.below(3) as usize];
            // SAFETY: our arena.
            unsafe { libc::mprotect(a as *mut _, len, prot) };
        }
        7 => {
            if let Ok(mut reg) = w.registered.lock() {
                reg[i] = true;
                let _ = uffd_register_wp(w.uffd, slot(i), HUGE);
            }
        }
        8 => {
            let mut rr = [slot(i) as u64, HUGE as u64];
            // SAFETY: UFFDIO_UNREGISTER reads a struct uffdio_range.
            unsafe { libc::ioctl(w.uffd, 0x8010_aa01u64 as _, rr.as_mut_ptr()) };
        }
        9 => {
            let _ = uffd_wp(w.uffd, a, len, r.chance(70));
        }
        10 => {
            for _ in 0..r.below(32) {
                let off = r.below(len as u64 / PAGE as u64) as usize * PAGE;
                poke(a + off);
            }
        }
        11 => {
            // SAFETY: fork; the child only calls _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: async-signal-safe.
                unsafe { libc::_exit(0) };
            } else if pid > 0 {
                // SAFETY: reaping our child.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            }
        }
        12 => {
            let pid = w.other.swap(0, Ordering::SeqCst);
            if pid > 0 {
                // SAFETY: killing and reaping our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
        }
        13 => {
            // Pages migrate (migration entries in the scanned tables); one in ten, as a whole
            // compaction is slow under TCG.
            if r.chance(10) {
                let _ = std::fs::write("/proc/sys/vm/compact_memory", "1");
            }
        }
        _ => {
            if w.inject {
                set_make_it_fail(r.chance(50));
            }
        }
    }
    inflight[0].store(0, Ordering::Release);
    stats().chaos.fetch_add(1, Ordering::Relaxed);
}

std::thread_local! {
    /// This thread's /proc/self/task/<tid>/make-it-fail, opened while nothing fails (the open
    /// allocates; writing to the open file does not).
    static MAKE_IT_FAIL: std::cell::RefCell<Option<std::fs::File>> =
        const { std::cell::RefCell::new(None) };
}

/// Makes allocations of the calling thread fail at random (fault injection), or not.
fn set_make_it_fail(on: bool) {
    MAKE_IT_FAIL.with(|f| {
        let mut f = f.borrow_mut();
        if f.is_none() {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            *f = OpenOptions::new()
                .write(true)
                .open(format!("/proc/self/task/{tid}/make-it-fail"))
                .ok();
        }
        if let Some(f) = f.as_ref() {
            let v: &[u8] = if on { b"1" } else { b"0" };
            // SAFETY: writing our buffer to our descriptor at offset 0.
            unsafe { libc::pwrite(f.as_raw_fd(), v.as_ptr().cast(), 1, 0) };
        }
    });
}

fn inject_available() -> bool {
    let ok = std::path::Path::new("/sys/kernel/debug/failslab/probability").exists()
        && std::path::Path::new("/sys/kernel/debug/fail_page_alloc/probability").exists();
    if ok {
        // Sleeping slab allocations fail too (PAGEMAP_SCAN's own are GFP_KERNEL); page
        // allocations only when they cannot sleep (the default).
        let _ = std::fs::write("/sys/kernel/debug/failslab/ignore-gfp-wait", "N");
        for d in ["failslab", "fail_page_alloc"] {
            // The task filter first: until it is set, a fault would hit any task.
            for (k, v) in [
                ("task-filter", "Y"),
                ("verbose", "0"),
                ("interval", "1"),
                ("times", "-1"),
                ("probability", "5"),
            ] {
                let _ = std::fs::write(format!("/sys/kernel/debug/{d}/{k}"), v);
            }
        }
    }
    ok
}

/// A process with memory of its own, for scans of another mm that may exit under them.
fn spawn_other() -> i32 {
    // SAFETY: fork; the child maps and touches memory, then sleeps until killed.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: a child of a multithreaded process; it only uses mmap, a loop and pause.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                4 * HUGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p != libc::MAP_FAILED {
                for o in (0..4 * HUGE).step_by(PAGE * 3) {
                    std::ptr::write_volatile((p as usize + o) as *mut u8, 1);
                }
            }
            loop {
                libc::pause();
            }
        }
    }
    pid
}

/// The implementation switch, opened once (before any fault is injected; forked workers inherit
/// it).
static SWITCH: std::sync::OnceLock<Option<ImplSwitch>> = std::sync::OnceLock::new();

fn set_impl(rust: bool) -> bool {
    SWITCH
        .get_or_init(|| ImplSwitch::open().ok())
        .as_ref()
        .is_some_and(|s| s.set(if rust { IMPL_RUST } else { IMPL_C }).is_ok())
}

/// A random argument, biased to edges and hostile values.
fn gen_arg(r: &mut Rng, vec_room: u64) -> PmScanArg {
    let base = slot(r.below(SLOTS as u64) as usize) as u64;
    let mut start = base + r.below(512) * PAGE as u64;
    match r.below(20) {
        0 => start += 1 + r.below(PAGE as u64 - 1),
        1 => start = 0,
        2 => start = KERNEL_ADDR,
        3 => start |= 0x3f << 57, // tag bits
        _ => {}
    }
    let mut end = start + (1 + r.below(3 * 512)) * PAGE as u64;
    match r.below(20) {
        0 => end = start,
        1 => end = start.wrapping_sub(PAGE as u64),
        2 => end = start + 1 + r.below(PAGE as u64),
        3 => end = u64::MAX,
        4 => end = (ARENA + SLOTS * HUGE) as u64 + r.below(4) * HUGE as u64,
        _ => {}
    }
    let vslot = slot(r.below(SLOTS as u64) as usize) as u64 + r.below(256) * PAGE as u64;
    let (vec, vec_len) = match r.below(16) {
        0 => (0, 0),
        1 => (0, 1 + r.below(8)),
        2 => (vslot, 0),
        3 => (KERNEL_ADDR, 4),
        4 => (vslot, u64::MAX / 8),
        5 => (vslot + 1 + r.below(23), 1 + r.below(8)),
        6..=9 => (vslot, 1 + r.below(vec_room.min(64))),
        _ => (u64::MAX, u64::MAX), // replaced by the caller's own vec
    };
    let flags = match r.below(40) {
        0..=15 => 0,
        16..=25 => PM_SCAN_WP_MATCHING,
        26..=29 => PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
        30..=32 => PM_SCAN_CHECK_WPASYNC,
        33..=38 => PM_SCAN_CLEAR_SOFT_DIRTY,
        _ => 1 << r.below(64),
    };
    let mut mask = || match r.below(40) {
        0 => 1 << (10 + r.below(54)),
        1..=15 => 0,
        _ => 1 << r.below(10) | if r.chance(50) { r.below(1 << 10) } else { 0 },
    };
    let (mut inv, mut req, any, ret) = (mask(), mask(), mask(), mask());
    if flags == PM_SCAN_CLEAR_SOFT_DIRTY && r.chance(85) {
        // Mostly a mask the flag accepts: soft-dirty pages only.
        req |= PAGE_IS_SOFT_DIRTY;
        inv &= !PAGE_IS_SOFT_DIRTY;
    }
    PmScanArg {
        size: if r.chance(97) {
            96
        } else {
            [0, 88, 95, 97, 104, 1 << 40][r.below(6) as usize]
        },
        flags,
        start,
        end,
        walk_end: r.next(),
        vec,
        vec_len,
        max_pages: [0, 0, 1, 2, 511, 512, 513, r.below(4096), u64::MAX][r.below(9) as usize],
        category_inverted: inv,
        category_mask: req,
        category_anyof_mask: any,
        return_mask: if ret == 0 { PM_SCAN_CATEGORIES } else { ret },
    }
}

/// A region slot nothing wrote: the fill `check_output` looks for.
const UNWRITTEN: PageRegion = PageRegion {
    start: 0xa5a5_a5a5_a5a5_a5a5,
    end: 0xa5a5_a5a5_a5a5_a5a5,
    categories: 0xa5a5_a5a5_a5a5_a5a5,
};

/// What holds for a successful call's output whatever else the process does meanwhile: at most
/// `vec_len` regions, nothing written past them, each region non-empty, page-aligned, inside
/// `start..walk_end`, sorted and not overlapping, `walk_end` inside `start..=end`. `before` is
/// the argument as passed, `after` as the kernel left it. Returns what is wrong.
fn check_output(
    before: &PmScanArg,
    after: &PmScanArg,
    n: usize,
    vec: &[PageRegion],
) -> Option<String> {
    let page = PAGE as u64;
    let end = before
        .end
        .checked_next_multiple_of(page)
        .unwrap_or(u64::MAX);
    if n as u64 > before.vec_len {
        return Some(format!("{n} regions for vec_len {}", before.vec_len));
    }
    if let Some(i) = vec.iter().skip(n).position(|r| *r != UNWRITTEN) {
        return Some(format!(
            "region slot {} written past the {n} returned",
            n + i
        ));
    }
    if after.walk_end < before.start || after.walk_end > end {
        return Some(format!(
            "walk_end {:#x} outside {:#x}..={end:#x}",
            after.walk_end, before.start
        ));
    }
    let mut prev_end = before.start;
    for (i, r) in vec.iter().take(n).enumerate() {
        if r.start >= r.end || r.start % page != 0 || r.end % page != 0 {
            return Some(format!(
                "region {i} {:#x}..{:#x} empty or unaligned",
                r.start, r.end
            ));
        }
        if r.start < prev_end || r.end > after.walk_end {
            return Some(format!(
                "region {i} {:#x}..{:#x} overlaps, is out of order or past walk_end {:#x}",
                r.start, r.end, after.walk_end
            ));
        }
        prev_end = r.end;
    }
    None
}

/// Issues the ioctl with `arg` at `argp` (our copy, or a hostile pointer); returns -errno or
/// the result.
fn call(fd: i32, argp: u64, arg: &mut PmScanArg) -> i64 {
    let p = if argp == 0 {
        arg as *mut PmScanArg as u64
    } else {
        argp
    };
    let scan = &stats().scan;
    scan[1].store(arg.start, Ordering::Relaxed);
    scan[2].store(arg.end, Ordering::Relaxed);
    scan[0].store(arg.flags.wrapping_add(1), Ordering::Release);
    // SAFETY: PAGEMAP_SCAN reads and writes a pm_scan_arg at `p` and regions at `arg.vec`, all
    // in our own address space or invalid (then the kernel returns EFAULT).
    let r = unsafe { libc::ioctl(fd, PAGEMAP_SCAN as _, p as *mut PmScanArg) };
    scan[0].store(0, Ordering::Release);
    if r < 0 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64)
    } else {
        r as i64
    }
}

fn note_result(r: i64) {
    let s = stats();
    s.calls.fetch_add(1, Ordering::Relaxed);
    s.heartbeat.fetch_add(1, Ordering::Relaxed);
    if r < 0 {
        let e = (-r) as i32;
        s.errno[(e as usize).min(63)].fetch_add(1, Ordering::Relaxed);
        if !ALLOWED.contains(&e) {
            s.unexpected.fetch_add(1, Ordering::Relaxed);
            if s.unexpected.load(Ordering::Relaxed) <= 5 {
                println!("# unexpected errno {e}");
            }
        }
    }
}

fn worker(seed: u64, calls: u64, inject: bool) -> ! {
    let mut r = Rng::new(seed);
    // SAFETY: opening /dev/zero.
    ZERO.store(
        unsafe { libc::open(c"/dev/zero".as_ptr(), libc::O_RDONLY) },
        Ordering::Relaxed,
    );
    let w = Arc::new(Worker {
        uffd: uffd_open(UFFD_FEATURES_WP_ASYNC).unwrap_or(-1),
        registered: Mutex::new([false; SLOTS]),
        quiet: RwLock::new(()),
        stop: AtomicBool::new(false),
        other: AtomicI32::new(0),
        inject,
    });
    for i in 0..SLOTS {
        map_slot(&w, &mut r, i);
    }
    set_impl(true);
    set_make_it_fail(false);
    let chaos_threads: Vec<_> = (0..CHAOS_THREADS)
        .filter_map(|t| {
            let w = w.clone();
            let mut r = Rng::new(seed.wrapping_mul(31).wrapping_add(t as u64 + 7));
            std::thread::Builder::new()
                .spawn(move || {
                    set_make_it_fail(false);
                    while !w.stop.load(Ordering::Relaxed) {
                        chaos(&w, &mut r, t);
                        if r.chance(20) {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                    set_make_it_fail(false);
                })
                .ok()
        })
        .collect();
    let own = std::fs::File::open("/proc/self/pagemap").expect("pagemap");
    let mut vec = vec![PageRegion::default(); 64];
    let mut other_fd: Option<std::fs::File> = None;
    for n in 0..calls {
        if w.other.load(Ordering::SeqCst) == 0 || other_fd.is_none() || r.chance(2) {
            let pid = spawn_other();
            if pid > 0 {
                let old = w.other.swap(pid, Ordering::SeqCst);
                if old > 0 {
                    // SAFETY: our own child.
                    unsafe {
                        libc::kill(old, libc::SIGKILL);
                        libc::waitpid(old, std::ptr::null_mut(), 0);
                    }
                }
                other_fd = std::fs::File::open(format!("/proc/{pid}/pagemap")).ok();
            }
        }
        let mut arg = gen_arg(&mut r, vec.len() as u64);
        if arg.vec == u64::MAX {
            arg.vec = vec.as_mut_ptr() as u64;
            arg.vec_len = 1 + r.below(vec.len() as u64);
        }
        let argp = match r.below(40) {
            0 => 1, // unreadable: low address
            1 => KERNEL_ADDR,
            2 => slot(r.below(SLOTS as u64) as usize) as u64, // maybe unmapped
            _ => 0,
        };
        let compared = n % 8 == 0 && argp == 0;
        if compared {
            // The same input through C and then Rust, nothing else moving.
            let _q = w.quiet.write();
            // The first call must leave the state the second sees: no write-protection, no
            // soft-dirty clear. The differential tester compares those on twin processes.
            arg.flags &= !(PM_SCAN_CLEAR_SOFT_DIRTY | PM_SCAN_WP_MATCHING);
            let mut a1 = arg;
            let mut a2 = arg;
            if !set_impl(false) {
                continue;
            }
            let c = call(own.as_raw_fd(), 0, &mut a1);
            if !set_impl(true) {
                continue;
            }
            let rs = call(own.as_raw_fd(), 0, &mut a2);
            note_result(c);
            note_result(rs);
            let s = stats();
            s.compared.fetch_add(1, Ordering::Relaxed);
            if (c < 0 || rs < 0) && c != rs {
                let m = s.mismatch.fetch_add(1, Ordering::Relaxed);
                if m < 5 {
                    println!("# errno mismatch: C {c}, Rust {rs} for {arg:?}");
                }
            }
            continue;
        }
        if inject && r.chance(10) {
            set_make_it_fail(r.chance(50));
        }
        // Mostly the implementation under test.
        set_impl(r.chance(80));
        let fd = match (&other_fd, r.chance(15)) {
            (Some(f), true) => f.as_raw_fd(),
            _ => own.as_raw_fd(),
        };
        let checked = argp == 0 && arg.vec == vec.as_ptr() as u64;
        if checked {
            vec.fill(UNWRITTEN);
        }
        let before = arg;
        let res = call(fd, argp, &mut arg);
        note_result(res);
        if checked && res >= 0 {
            let s = stats();
            if before.flags & PM_SCAN_CLEAR_SOFT_DIRTY != 0 {
                s.clears.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(why) = check_output(&before, &arg, res as usize, &vec) {
                if s.bad_output.fetch_add(1, Ordering::Relaxed) < 5 {
                    println!("# bad output: {why} for {before:x?}");
                }
            }
        }
        if inject {
            set_make_it_fail(false);
        }
    }
    w.stop.store(true, Ordering::Relaxed);
    for t in chaos_threads {
        let _ = t.join();
    }
    let pid = w.other.swap(0, Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    // SAFETY: leaving the worker process.
    unsafe { libc::_exit(0) }
}

/// Prints what a stalled worker `pid` is doing: the PAGEMAP_SCAN call and the chaos operations
/// in flight; per thread its state, system call, wait channel, CPU time taken in user and in
/// kernel mode over two seconds, and the distinct kernel stacks of ten samples; then the arena's
/// mappings and the page-table state of the ranges the chaos operations in flight work on.
fn describe_stall(pid: i32) {
    let s = stats();
    let f = s.scan[0].load(Ordering::Acquire);
    if f == 0 {
        println!("#   no PAGEMAP_SCAN call in flight");
    } else {
        println!(
            "#   PAGEMAP_SCAN in flight: flags {:#x}, [{:#x}, {:#x})",
            f - 1,
            s.scan[1].load(Ordering::Relaxed),
            s.scan[2].load(Ordering::Relaxed)
        );
    }
    let mut ranges = Vec::new();
    for (t, inf) in s.inflight.iter().enumerate() {
        let op = inf[0].load(Ordering::Acquire) as usize;
        let (a, len) = (
            inf[1].load(Ordering::Relaxed),
            inf[2].load(Ordering::Relaxed),
        );
        match op.checked_sub(1).and_then(|o| CHAOS_OPS.get(o)) {
            None => println!("#   chaos thread {t}: between operations"),
            Some(name) => {
                println!("#   chaos thread {t}: {name} on [{a:#x}, {:#x})", a + len);
                ranges.push((a, len));
            }
        }
    }
    let tids: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let rd = |tid: &str, f: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/{f}"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    // utime and stime, fields 14 and 15 of stat (11 and 12 after the command's parenthesis).
    let times = |tid: &str| {
        let st = rd(tid, "stat");
        let v: Vec<u64> = st
            .rsplit_once(") ")
            .map(|(_, r)| r.split(' ').map(|x| x.parse().unwrap_or(0)).collect())
            .unwrap_or_default();
        (
            v.get(11).copied().unwrap_or(0),
            v.get(12).copied().unwrap_or(0),
        )
    };
    let before: Vec<(u64, u64)> = tids.iter().map(|t| times(t)).collect();
    let mut stacks: Vec<Vec<String>> = vec![Vec::new(); tids.len()];
    for _ in 0..10 {
        for (i, t) in tids.iter().enumerate() {
            let st = rd(t, "stack");
            if !st.is_empty() && !stacks[i].contains(&st) {
                stacks[i].push(st);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for (i, t) in tids.iter().enumerate() {
        let (u, k) = times(t);
        println!(
            "#   task {t}: state {} syscall [{}] wchan {}; in 2 s: user {} ticks, kernel {} ticks",
            rd(t, "stat")
                .rsplit_once(") ")
                .and_then(|(_, r)| r.split(' ').next().map(str::to_string))
                .unwrap_or_default(),
            rd(t, "syscall"),
            rd(t, "wchan"),
            u.saturating_sub(before[i].0),
            k.saturating_sub(before[i].1)
        );
        for st in stacks[i].iter().take(3) {
            println!("#     stack:");
            for l in st.lines().take(14) {
                println!("#       {l}");
            }
        }
    }
    // The mappings and page tables are read under the worker's mmap lock: in a thread, given
    // up after a few seconds if that lock is what the worker is stuck on.
    let (tx, rx) = std::sync::mpsc::channel();
    let _ = std::thread::Builder::new().spawn(move || {
        let _ = tx.send(mm_state(pid, &ranges));
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(text) => print!("{text}"),
        Err(_) => println!("#   maps and pagemap unreadable for 10 s (mmap lock held?)"),
    }
}

/// The arena's lines of /proc/`pid`/maps, and per range a count of its pagemap entries by kind.
fn mm_state(pid: i32, ranges: &[(u64, u64)]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let arena = ARENA as u64..(ARENA + SLOTS * HUGE) as u64;
    for l in std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
    {
        let Some((lo, hi)) = l.split(' ').next().and_then(|r| r.split_once('-')) else {
            continue;
        };
        let lo = u64::from_str_radix(lo, 16).unwrap_or(0);
        let hi = u64::from_str_radix(hi, 16).unwrap_or(0);
        if lo < arena.end && hi > arena.start {
            let _ = writeln!(out, "#   map {l}");
        }
    }
    let Ok(pm) = std::fs::File::open(format!("/proc/{pid}/pagemap")) else {
        return out;
    };
    for &(a, len) in ranges {
        let Ok(entries) = pagemap_entries(&pm, a as usize, len as usize / PAGE) else {
            let _ = writeln!(out, "#   pagemap of [{a:#x}, +{len:#x}) unreadable");
            continue;
        };
        let mut n = [0u32; 7];
        for e in entries {
            for (k, bit) in [63, 62, 61, 58, 57, 55].iter().enumerate() {
                n[k] += u32::from(e >> bit & 1 == 1);
            }
            n[6] += u32::from(e == 0);
        }
        let _ = writeln!(
            out,
            "#   pagemap [{a:#x}, +{len:#x}): present {}, swap {}, file {}, guard {}, uffd-wp {}, soft-dirty {}, none {}",
            n[0], n[1], n[2], n[3], n[4], n[5], n[6]
        );
    }
    out
}

fn main() -> ExitCode {
    let total = arg_u64("--calls", 20_000);
    let seed = arg_u64("--seed", 1);
    let inject = arg_flag("--inject") && inject_available();
    let s = stats();
    println!("TAP version 13\n1..4");
    println!("# pmscan-fuzz: {total} calls, seed {seed}, fault injection {inject}");
    // ksmd merges what the chaos threads mark MADV_MERGEABLE.
    const KSM_RUN: &str = "/sys/kernel/mm/ksm/run";
    let ksm_run = std::fs::read_to_string(KSM_RUN).ok();
    let _ = std::fs::write(KSM_RUN, "1");
    let t0 = Instant::now();
    let mut hangs = 0u64;
    let mut workers = 0u64;
    let mut bad_exit = 0u64;
    while s.calls.load(Ordering::Relaxed) < total {
        let left = total - s.calls.load(Ordering::Relaxed);
        let wseed = seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(workers);
        workers += 1;
        // SAFETY: fork; the child runs the worker and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            worker(wseed, left.min(CALLS_PER_WORKER), inject);
        }
        if pid < 0 {
            // Not injected here; retry a moment later.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let mut last = s.heartbeat.load(Ordering::Relaxed);
        let mut since = Instant::now();
        loop {
            let mut status = 0;
            // SAFETY: polling our child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                    bad_exit += 1;
                    println!("# worker {wseed:#x} ended with status {status:#x}");
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            let hb = s.heartbeat.load(Ordering::Relaxed);
            if hb != last {
                last = hb;
                since = Instant::now();
            } else if since.elapsed() > Duration::from_secs(HANG_SECS) {
                hangs += 1;
                println!("# worker {wseed:#x}: no call returned for {HANG_SECS} s, killing it");
                describe_stall(pid);
                // SAFETY: killing our child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let t = Instant::now();
                let mut dead = false;
                while t.elapsed() < Duration::from_secs(30) {
                    // SAFETY: polling our child.
                    if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                        dead = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                if !dead {
                    println!("Bail out! worker {wseed:#x} does not die after SIGKILL");
                    println!(
                        "FUZZ: calls {}, chaos {}, splats {}, errno-mismatch {}, hangs {}, \
                         clear-calls {}, bad-output {}",
                        s.calls.load(Ordering::Relaxed),
                        s.chaos.load(Ordering::Relaxed),
                        kmsg_splats(),
                        s.mismatch.load(Ordering::Relaxed) + s.unexpected.load(Ordering::Relaxed),
                        hangs + 1,
                        s.clears.load(Ordering::Relaxed),
                        s.bad_output.load(Ordering::Relaxed)
                    );
                    return ExitCode::FAILURE;
                }
                break;
            }
        }
    }
    let splats = kmsg_splats();
    let calls = s.calls.load(Ordering::Relaxed);
    let mismatch = s.mismatch.load(Ordering::Relaxed) + s.unexpected.load(Ordering::Relaxed);
    let mut hist = String::new();
    for (e, c) in s.errno.iter().enumerate() {
        let c = c.load(Ordering::Relaxed);
        if c > 0 {
            hist.push_str(&format!(" {e}:{c}"));
        }
    }
    println!(
        "# {workers} workers, {:.0} s, {} compared calls, errno counts{hist}",
        t0.elapsed().as_secs_f64(),
        s.compared.load(Ordering::Relaxed)
    );
    let ok1 = hangs == 0 && bad_exit == 0;
    println!(
        "{} 1 every call returned, workers exited cleanly",
        if ok1 { "ok" } else { "not ok" }
    );
    let ok2 = mismatch == 0;
    println!(
        "{} 2 errnos allowed and equal between C and Rust",
        if ok2 { "ok" } else { "not ok" }
    );
    let ok3 = splats == 0;
    println!(
        "{} 3 no splat in the kernel log",
        if ok3 { "ok" } else { "not ok" }
    );
    let (clears, bad) = (
        s.clears.load(Ordering::Relaxed),
        s.bad_output.load(Ordering::Relaxed),
    );
    let ok4 = bad == 0 && clears > 0;
    println!(
        "{} 4 every output vector within vec_len, sorted, inside start..walk_end, nothing \
         written past it ({clears} clearing calls among them)",
        if ok4 { "ok" } else { "not ok" }
    );
    println!(
        "FUZZ: calls {calls}, chaos {}, splats {splats}, errno-mismatch {mismatch}, hangs {hangs}, \
         clear-calls {clears}, bad-output {bad}",
        s.chaos.load(Ordering::Relaxed)
    );
    set_impl(true);
    if let Some(v) = ksm_run {
        let _ = std::fs::write(KSM_RUN, v.trim());
    }
    if ok1 && ok2 && ok3 && ok4 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
