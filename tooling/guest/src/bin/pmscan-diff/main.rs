// SPDX-License-Identifier: GPL-2.0
//! Differential tester of the two PAGEMAP_SCAN implementations (C and Rust) in one kernel.
//!
//! Two twin processes build the same random address space at the same addresses (anonymous,
//! THP, hugetlb, private and shared tmpfs and ext4 files, memfd, SysV shm, zero pages, guard
//! regions, uffd-wp async registrations, mprotect'ed, mremap'ed and swapped-out pieces) and
//! change it in lockstep. For each random `pm_scan_arg` (biased to edges and hostile values) the tester scans
//! twin A with the C implementation and twin B with the Rust one, through their
//! /proc/<pid>/pagemap, and compares return value, errno, the output vector, the argument
//! struct afterwards (`walk_end`), and the state each scan left behind (a report-only scan of
//! the whole arena, by one implementation for both twins). Twins whose states drift apart
//! through the environment (not through a scan) are rebuilt and counted as resyncs.
//!
//! Usage: pmscan-diff [--calls N] [--calls-per-build N] [--seed S] [--clear-oracle]. Prints
//! `@@COUNTS passed=<calls that agreed> failed=<calls that differed> skipped=0` for the test
//! runner, and for every difference the seed and call number to replay it. With `--clear-oracle` it checks
//! `PM_SCAN_CLEAR_SOFT_DIRTY` instead (see `oracle.rs`).
//!
//! Each rebuild of the twins sets shmem_enabled to the next of always, advise, never, so memfd,
//! SysV shm and tmpfs files (one tmpfs mounted huge=always) get shmem THPs or not.

mod oracle;

use pmrs_guest::*;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::ExitCode;

/// Slots of the arena, each a 2 MiB aligned piece holding one kind of mapping.
const NSLOTS: usize = 10;
const BASE: usize = 0x1000_0000_0000;
const ARENA_END: usize = BASE + NSLOTS * HUGE;
/// An address nothing maps in the tester.
const UNMAPPED: usize = 0x2000_0000_0000;
/// Calls between rebuilds of the twins (`--calls-per-build`).
const CALLS_PER_BUILD: u64 = 4000;
const VEC_REGIONS: usize = 1024;

const MADV_PAGEOUT: i32 = 21;
const MADV_COLLAPSE: i32 = 25;
const MADV_GUARD_INSTALL: i32 = 102;
const MADV_GUARD_REMOVE: i32 = 103;

/// Kinds of slot mappings.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(u64)]
enum Kind {
    Unmapped = 0,
    Anon,
    AnonThp,
    Hugetlb,
    HugetlbShared,
    FilePrivate,
    FileShared,
    Memfd,
    Shm,
    /// memfd with MADV_HUGEPAGE: shmem THP under shmem_enabled "advise" (or "always").
    MemfdThp,
    /// A file on a tmpfs mounted huge=always (`HUGE_TMPFS`).
    TmpfsHuge,
    /// A file on ext4 (`EXT4`: the page cache of a block filesystem), shared, MADV_HUGEPAGE.
    Ext4Shared,
    /// The same, mapped private.
    Ext4Private,
}

/// Where the tmpfs mounted with huge=always is (mounted by `main`; /tmp if that failed).
const HUGE_TMPFS: &str = "/tmp/pmscan-huge";
/// Where the guest's /init mounts ext4 (on a ram disk).
const EXT4: &str = "/mnt/ext4";

const KINDS: [Kind; 13] = [
    Kind::Unmapped,
    Kind::Anon,
    Kind::AnonThp,
    Kind::Hugetlb,
    Kind::HugetlbShared,
    Kind::FilePrivate,
    Kind::FileShared,
    Kind::Memfd,
    Kind::Shm,
    Kind::MemfdThp,
    Kind::TmpfsHuge,
    Kind::Ext4Shared,
    Kind::Ext4Private,
];

// Twin operations: [op, a, b, c, d, e].
const OP_MAP: u64 = 1; // slot, kind, uffd, slots (one mapping over that many slots, 0 = 1)
const OP_WRITE: u64 = 2; // addr, pages
const OP_READ: u64 = 3; // addr, pages
const OP_MADVISE: u64 = 4; // addr, len, advice
const OP_MPROTECT: u64 = 5; // addr, len, prot
const OP_UFFD_WP: u64 = 6; // addr, len, on
const OP_UFFD_RWP: u64 = 9; // addr, len, on
const OP_MREMAP: u64 = 7; // src, len, dst
const OP_CLEAR_REFS: u64 = 8;
const OP_CHOP: u64 = 10; // slot address, pages: a fresh anonymous slot cut into one-page VMAs

fn errno() -> i64 {
    -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// The twin's side: serve operations on its own address space until the pipe closes.
fn twin(name: &str, mut cmds: File, mut acks: File) -> ! {
    // Async read-write protection too (PAGE_IS_ACCESSED) where the kernel has it.
    let uffd = uffd_open(UFFD_FEATURES_WP_ASYNC | UFFD_FEATURE_RWP | UFFD_FEATURE_RWP_ASYNC)
        .or_else(|_| uffd_open(UFFD_FEATURES_WP_ASYNC))
        .unwrap_or(-1);
    // Slots registered with the userfaultfd at mapping time.
    let mut registered = [false; NSLOTS];
    let mut buf = [0u8; 48];
    while cmds.read_exact(&mut buf).is_ok() {
        // No heap allocation in this loop: a twin must not write its own memory after its
        // ack, while the tester may already be scanning it (the soft-dirty bits of the heap
        // would depend on scheduling).
        let mut w = [0u64; 6];
        for (x, c) in w.iter_mut().zip(buf.chunks(8)) {
            *x = u64::from_ne_bytes(c.try_into().unwrap());
        }
        let slot = ((w[1] as usize).wrapping_sub(BASE) / HUGE).min(NSLOTS - 1);
        if w[0] == OP_MAP {
            let first = w[1] as usize % NSLOTS;
            for r in registered.iter_mut().skip(first).take(span_of(w[1], w[4])) {
                *r = w[3] != 0;
            }
        }
        // MADV_GUARD_INSTALL livelocks on a range registered for uffd-wp with markers: the zap
        // it retries with leaves uffd-wp markers, which it takes for populated entries, and it
        // restarts the system call forever. Not what is under test here: leave it out.
        if w[0] == OP_MADVISE && w[3] == MADV_GUARD_INSTALL as u64 && registered[slot] {
            if acks.write_all(&(-1000i64).to_ne_bytes()).is_err() {
                break;
            }
            continue;
        }
        let r = twin_op(name, uffd, &w);
        if acks.write_all(&r.to_ne_bytes()).is_err() {
            break;
        }
    }
    std::process::exit(0)
}

/// How many slots a mapping from `slot` that asks for `slots` covers: at least one, and none
/// past the arena.
fn span_of(slot: u64, slots: u64) -> usize {
    (slots.max(1) as usize).min(NSLOTS.saturating_sub(slot as usize % NSLOTS).max(1))
}

fn slot_addr(slot: u64) -> usize {
    BASE + slot as usize * HUGE
}

/// Maps `kind` over `slots` slots from `slot` (one VMA, one file: a shmem or file mapping of
/// several huge pages), registered with the userfaultfd as `reg` says.
fn twin_map(name: &str, uffd: i32, slot: u64, kind: u64, reg: u64, slots: u64) -> i64 {
    let slot = slot % NSLOTS as u64;
    let addr = slot_addr(slot) as *mut libc::c_void;
    let len = span_of(slot, slots) * HUGE;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: all calls below act on the twin's own arena, which nothing else uses.
    unsafe {
        libc::munmap(addr, len);
        let fixed = libc::MAP_FIXED;
        let (flags, fd) = match KINDS[kind as usize % KINDS.len()] {
            Kind::Unmapped => return 0,
            Kind::Anon | Kind::AnonThp => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
            Kind::Hugetlb => (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
                -1,
            ),
            Kind::HugetlbShared => (
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
                -1,
            ),
            Kind::FilePrivate
            | Kind::FileShared
            | Kind::TmpfsHuge
            | Kind::Ext4Shared
            | Kind::Ext4Private => {
                let dir = match KINDS[kind as usize] {
                    Kind::TmpfsHuge => HUGE_TMPFS,
                    Kind::Ext4Shared | Kind::Ext4Private => EXT4,
                    _ => "/tmp",
                };
                let path = format!("{dir}/pmscan-diff-{name}-{slot}\0");
                let fd = libc::open(
                    path.as_ptr().cast(),
                    libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
                    0o600,
                );
                if fd < 0 || libc::ftruncate(fd, len as i64) != 0 {
                    return errno();
                }
                let shared = !matches!(KINDS[kind as usize], Kind::FilePrivate | Kind::Ext4Private);
                (
                    if shared {
                        libc::MAP_SHARED
                    } else {
                        libc::MAP_PRIVATE
                    },
                    fd,
                )
            }
            Kind::Memfd | Kind::MemfdThp => {
                let fd = libc::memfd_create(c"pmscan-diff".as_ptr(), 0);
                if fd < 0 || libc::ftruncate(fd, len as i64) != 0 {
                    return errno();
                }
                (libc::MAP_SHARED, fd)
            }
            Kind::Shm => {
                let id = libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600);
                if id < 0 {
                    return errno();
                }
                let p = libc::shmat(id, addr, 0);
                libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                if p as isize == -1 {
                    return errno();
                }
                return twin_register(uffd, addr as usize, len, reg);
            }
        };
        let p = libc::mmap(addr, len, rw, flags | fixed, fd, 0);
        if fd >= 0 {
            libc::close(fd);
        }
        if p == libc::MAP_FAILED {
            return errno();
        }
        if matches!(
            KINDS[kind as usize],
            Kind::AnonThp | Kind::MemfdThp | Kind::Ext4Shared
        ) {
            libc::madvise(addr, len, libc::MADV_HUGEPAGE);
        } else if matches!(KINDS[kind as usize], Kind::Anon) {
            libc::madvise(addr, len, libc::MADV_NOHUGEPAGE);
        }
    }
    twin_register(uffd, addr as usize, len, reg)
}

fn twin_register(uffd: i32, addr: usize, len: usize, reg: u64) -> i64 {
    if reg == 0 || uffd < 0 {
        return 0;
    }
    // reg: bit 0 write-protection, bit 1 read-write protection.
    let mut mode = 0;
    if reg & 1 != 0 {
        mode |= UFFDIO_REGISTER_MODE_WP;
    }
    if reg & 2 != 0 {
        mode |= UFFDIO_REGISTER_MODE_RWP;
    }
    match uffd_register(uffd, addr, len, mode) {
        Ok(()) => 0,
        Err(e) => -i64::from(e.raw_os_error().unwrap_or(0)),
    }
}

fn twin_op(name: &str, uffd: i32, w: &[u64]) -> i64 {
    let (a, b, c) = (w[1] as usize, w[2] as usize, w[3]);
    let mut byte = [0x5au8; 1];
    let ok = |r: i32| if r == 0 { 0 } else { errno() };
    match w[0] {
        OP_MAP => twin_map(name, uffd, w[1], w[2], w[3], w[4]),
        OP_WRITE | OP_READ => {
            // Through process_vm_writev/readv on ourselves: a protected page fails with EFAULT
            // instead of a signal, and the access faults exactly as a plain one would.
            let mut done = 0i64;
            for i in 0..b {
                let local = libc::iovec {
                    iov_base: byte.as_mut_ptr().cast(),
                    iov_len: 1,
                };
                let remote = libc::iovec {
                    iov_base: (a + i * PAGE + (i * 7) % PAGE) as *mut libc::c_void,
                    iov_len: 1,
                };
                // SAFETY: the local iovec points at `byte`; the remote one is checked by the
                // kernel against our own address space.
                let r = unsafe {
                    if w[0] == OP_WRITE {
                        libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0)
                    } else {
                        libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0)
                    }
                };
                done = (done << 1) | i64::from(r == 1);
                done &= 0xffff_ffff;
            }
            done
        }
        // SAFETY (the arms below): the ranges lie in the twin's own arena.
        OP_MADVISE => ok(unsafe { libc::madvise(a as *mut _, b, c as i32) }),
        OP_MPROTECT => ok(unsafe { libc::mprotect(a as *mut _, b, c as i32) }),
        OP_UFFD_WP => match uffd_wp(uffd, a, b, c != 0) {
            Ok(()) => 0,
            Err(e) => -i64::from(e.raw_os_error().unwrap_or(0)),
        },
        OP_UFFD_RWP => match uffd_rwp(uffd, a, b, c != 0) {
            Ok(()) => 0,
            Err(e) => -i64::from(e.raw_os_error().unwrap_or(0)),
        },
        OP_MREMAP => {
            let p = unsafe {
                libc::mremap(
                    a as *mut _,
                    b,
                    b,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    c as usize as *mut libc::c_void,
                )
            };
            if p == libc::MAP_FAILED {
                errno()
            } else {
                0
            }
        }
        OP_CHOP => {
            // SAFETY: the slot lies in the twin's own arena.
            unsafe {
                let p = libc::mmap(
                    a as *mut libc::c_void,
                    HUGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED {
                    return errno();
                }
                for i in 0..b.min(HUGE / PAGE / 2) {
                    libc::munmap((a + (2 * i + 1) * PAGE) as *mut libc::c_void, PAGE);
                }
            }
            0
        }
        OP_CLEAR_REFS => match OpenOptions::new().write(true).open("/proc/self/clear_refs") {
            Ok(mut f) => f.write_all(b"4").map_or(-1, |_| 0),
            Err(_) => -1,
        },
        _ => -22,
    }
}

/// A twin seen from the tester.
struct Twin {
    pid: i32,
    cmds: File,
    acks: File,
    pagemap: File,
}

impl Twin {
    fn spawn(name: &str) -> Twin {
        // This program is single-threaded.
        let c = pmrs_guest::fork_child(|cr, aw| twin(name, cr, aw)).expect("fork a twin");
        let pagemap = File::open(format!("/proc/{}/pagemap", c.pid)).expect("open pagemap");
        Twin {
            pid: c.pid,
            cmds: c.cmd,
            acks: c.ack,
            pagemap,
        }
    }

    fn op(&mut self, w: [u64; 6]) -> i64 {
        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_ne_bytes()).collect();
        if self.cmds.write_all(&bytes).is_err() {
            return i64::MIN;
        }
        let mut r = [0u8; 8];
        if self.acks.read_exact(&mut r).is_err() {
            return i64::MIN;
        }
        i64::from_ne_bytes(r)
    }
}

impl Drop for Twin {
    fn drop(&mut self) {
        // SAFETY: our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// A page-aligned anonymous buffer in the tester, optionally followed by a PROT_NONE page.
struct Buf {
    ptr: *mut u8,
    len: usize,
}

impl Buf {
    fn new(len: usize, guard_after: bool) -> Buf {
        let total = len + if guard_after { PAGE } else { 0 };
        // SAFETY: a fresh private mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED);
        if guard_after {
            // SAFETY: the last page of the mapping above.
            unsafe { libc::mprotect(p.cast::<u8>().add(len).cast(), PAGE, libc::PROT_NONE) };
        }
        Buf { ptr: p.cast(), len }
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` readable bytes from `ptr`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    fn fill(&mut self, b: u8) {
        // SAFETY: `len` writable bytes from `ptr` (callers restore protection first).
        unsafe { std::ptr::write_bytes(self.ptr, b, self.len) };
    }
    fn addr(&self) -> u64 {
        self.ptr as u64
    }
    fn protect(&self, prot: i32) {
        // SAFETY: our own mapping.
        unsafe { libc::mprotect(self.ptr.cast(), self.len, prot) };
    }
}

/// Per-twin output areas, kept identical before each call.
struct Out {
    vec: Buf,
    edge: Buf,
    ro: Buf,
    arg_ro: Buf,
}

impl Out {
    fn new() -> Out {
        Out {
            vec: Buf::new(VEC_REGIONS * 24, false),
            edge: Buf::new(PAGE, true),
            ro: Buf::new(PAGE, false),
            arg_ro: Buf::new(PAGE, false),
        }
    }
    fn reset(&mut self) {
        self.vec.fill(0xa5);
        self.edge.fill(0xa5);
        self.ro.protect(libc::PROT_READ | libc::PROT_WRITE);
        self.ro.fill(0xa5);
        self.ro.protect(libc::PROT_READ);
        self.arg_ro.protect(libc::PROT_READ | libc::PROT_WRITE);
        self.arg_ro.fill(0);
    }
}

/// Where a call's argument struct lives.
#[derive(Clone, Copy, Debug)]
enum ArgAt {
    Normal,
    ReadOnly,
    Null,
    Unmapped,
    Kernel,
}

/// Where a call's vec points.
#[derive(Clone, Copy, Debug)]
enum VecAt {
    Own,
    Edge(u64),
    ReadOnly,
    Unmapped,
    Raw(u64),
}

#[derive(Clone, Copy, Debug)]
struct Case {
    arg: PmScanArg,
    arg_at: ArgAt,
    vec_at: VecAt,
}

fn gen_addr(r: &mut Rng) -> u64 {
    let pages = (ARENA_END - BASE) / PAGE;
    match r.below(60) {
        0 => 0,
        1 => u64::MAX,
        2 => 0xffff_8000_0000_0000 + r.below(1 << 20) * PAGE as u64,
        3 => (1u64 << 47) - PAGE as u64 * r.below(3),
        4 => {
            (BASE + r.below(pages as u64 + 8) as usize * PAGE) as u64 + 1 + r.below(PAGE as u64 - 1)
        }
        5 => (BASE + r.below(NSLOTS as u64 + 1) as usize * HUGE) as u64,
        _ => (BASE - 4 * PAGE + r.below(pages as u64 + 8) as usize * PAGE) as u64,
    }
}

fn gen_mask(r: &mut Rng) -> u64 {
    match r.below(60) {
        0 => 1 << (10 + r.below(54)),
        1..=5 => 0,
        6..=10 => PM_SCAN_CATEGORIES,
        11..=20 => PAGE_IS_WRITTEN,
        21..=30 => r.next() & PM_SCAN_CATEGORIES,
        31..=40 => 1 << r.below(10),
        _ => (1 << r.below(10)) | (1 << r.below(10)),
    }
}

fn gen_case(r: &mut Rng) -> Case {
    let start = gen_addr(r);
    let end = match r.below(8) {
        0 => gen_addr(r),
        1 => start,
        2 => start.wrapping_add(1 + r.below(PAGE as u64)),
        3 => start.wrapping_add(HUGE as u64 * (1 + r.below(3))),
        _ => start.wrapping_add(PAGE as u64 * (1 + r.below(3 * 512))),
    };
    let vec_len = match r.below(40) {
        0..=3 => 0,
        4..=7 => 1,
        8..=11 => 2 + r.below(3),
        12 => 1 << 61,
        13..=15 => 511 + r.below(3),
        _ => 1 + r.below(VEC_REGIONS as u64),
    };
    let vec_at = match r.below(40) {
        0..=3 => VecAt::Raw(0),
        4..=6 => VecAt::Edge(1 + r.below(8)),
        7 => VecAt::ReadOnly,
        8 => VecAt::Unmapped,
        9 => VecAt::Raw(0xffff_8000_0000_0000),
        _ => VecAt::Own,
    };
    let flags = match r.below(40) {
        0..=17 => 0,
        18..=29 => PM_SCAN_WP_MATCHING,
        30..=34 => PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
        35..=38 => PM_SCAN_CHECK_WPASYNC,
        // An unknown flag. Bit 2 (PM_SCAN_CLEAR_SOFT_DIRTY) changes the state the twins are
        // compared on afterwards: the --clear mode compares it.
        _ => 1 << (3 + r.below(61)),
    };
    let arg = PmScanArg {
        size: if r.chance(99) {
            96
        } else {
            r.pick(&[0, 88, 95, 97, 104, 1 << 40])
        },
        flags,
        start,
        end,
        walk_end: r.next(),
        vec: 0,
        vec_len,
        max_pages: match r.below(8) {
            0 => 1,
            1 => 1 + r.below(4),
            2 => 1 + r.below(600),
            3 => u64::MAX,
            _ => 0,
        },
        category_inverted: if r.chance(25) { gen_mask(r) } else { 0 },
        category_mask: if r.chance(60) { gen_mask(r) } else { 0 },
        category_anyof_mask: if r.chance(30) { gen_mask(r) } else { 0 },
        return_mask: if r.chance(90) { gen_mask(r) } else { 0 },
    };
    // Half the calls use the masks real users pass.
    let mut arg = arg;
    match r.below(8) {
        0 => {
            // "everything": each page with all its categories
            arg.category_inverted = 0;
            arg.category_mask = 0;
            arg.category_anyof_mask = 0;
            arg.return_mask = PM_SCAN_CATEGORIES;
        }
        1 => {
            // Wine's GetWriteWatch / transact loop: written pages, optionally re-armed
            arg.category_inverted = 0;
            arg.category_mask = PAGE_IS_WRITTEN;
            arg.category_anyof_mask = 0;
            arg.return_mask = PAGE_IS_WRITTEN;
        }
        2 => {
            // CRIU: present or swapped, with soft-dirty and file
            arg.category_inverted = 0;
            arg.category_mask = 0;
            arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
            arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_SOFT_DIRTY | PAGE_IS_FILE;
        }
        3 => {
            // not the zero page, not a file, but populated
            arg.category_inverted = PAGE_IS_PFNZERO | PAGE_IS_FILE;
            arg.category_mask = PAGE_IS_PFNZERO | PAGE_IS_FILE;
            arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
            arg.return_mask = PM_SCAN_CATEGORIES;
        }
        _ => {}
    }
    let arg_at = match r.below(40) {
        0 => ArgAt::ReadOnly,
        1 => ArgAt::Null,
        2 => ArgAt::Unmapped,
        3 => ArgAt::Kernel,
        _ => ArgAt::Normal,
    };
    Case {
        arg,
        arg_at,
        vec_at,
    }
}

/// What one call did, in a form that can be compared between the twins.
#[derive(Debug, PartialEq)]
struct Outcome {
    ret: Result<usize, i32>,
    arg_after: Option<PmScanArg>,
    vec: Vec<u8>,
}

fn call(t: &Twin, out: &mut Out, c: &Case) -> Outcome {
    out.reset();
    let mut arg = c.arg;
    arg.vec = match c.vec_at {
        VecAt::Own => out.vec.addr(),
        VecAt::Edge(k) => out.edge.addr() + PAGE as u64 - 24 * k - (k % 3),
        VecAt::ReadOnly => out.ro.addr(),
        VecAt::Unmapped => UNMAPPED as u64,
        VecAt::Raw(v) => v,
    };
    if let VecAt::Own = c.vec_at {
        arg.vec_len = arg.vec_len.min(VEC_REGIONS as u64);
    }
    let mut local = arg;
    let argp: *mut PmScanArg = match c.arg_at {
        ArgAt::Normal => &mut local,
        ArgAt::ReadOnly => {
            // SAFETY: arg_ro is a writable page at this point (reset), large enough.
            unsafe { out.arg_ro.ptr.cast::<PmScanArg>().write(arg) };
            out.arg_ro.protect(libc::PROT_READ);
            out.arg_ro.ptr.cast()
        }
        ArgAt::Null => std::ptr::null_mut(),
        ArgAt::Unmapped => UNMAPPED as *mut PmScanArg,
        ArgAt::Kernel => 0xffff_8880_0000_0000u64 as *mut PmScanArg,
    };
    // SAFETY: PAGEMAP_SCAN on a pagemap fd; hostile pointers are the point, the kernel checks them.
    let r = unsafe { libc::ioctl(t.pagemap.as_raw_fd(), PAGEMAP_SCAN as _, argp) };
    let ret = if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r as usize)
    };
    let arg_after = match c.arg_at {
        ArgAt::Normal => Some(local),
        // SAFETY: still mapped, readable.
        ArgAt::ReadOnly => Some(unsafe { out.arg_ro.ptr.cast::<PmScanArg>().read() }),
        _ => None,
    }
    // `vec` points into this twin's own output area: compare everything else.
    .map(|a| PmScanArg {
        vec: c.arg.vec,
        ..a
    });
    let mut vec = Vec::new();
    match c.vec_at {
        VecAt::Own => vec.extend_from_slice(out.vec.bytes()),
        VecAt::Edge(_) => vec.extend_from_slice(out.edge.bytes()),
        VecAt::ReadOnly => vec.extend_from_slice(out.ro.bytes()),
        _ => {}
    }
    Outcome {
        ret,
        arg_after,
        vec,
    }
}

/// The page state of a twin's arena: every category of every page, by the C implementation.
fn state(t: &Twin, sw: &ImplSwitch) -> std::io::Result<Vec<PageRegion>> {
    sw.select("c");
    scan_all(
        t.pagemap.as_raw_fd(),
        (BASE - HUGE) as u64,
        (ARENA_END + HUGE) as u64,
        (0, 0, 0, PM_SCAN_CATEGORIES),
        VEC_REGIONS,
    )
}

/// The index of the first `struct page_region` that differs between two output vectors.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.chunks_exact(24)
        .zip(b.chunks_exact(24))
        .position(|(x, y)| x != y)
        .unwrap_or(0)
}

/// The page state of the parts of a call's range outside the arena (by the C implementation):
/// there the twins' own mappings are, which the tester does not control.
fn outside_state(t: &Twin, sw: &ImplSwitch, c: &Case) -> Vec<PageRegion> {
    let (lo, hi) = ((BASE - HUGE) as u64, (ARENA_END + HUGE) as u64);
    let (start, end) = (c.arg.start & !(PAGE as u64 - 1), c.arg.end.min(1 << 47));
    let mut v = Vec::new();
    sw.select("c");
    for (s, e) in [(start, end.min(lo)), (start.max(hi), end)] {
        if s < e {
            let all = (0, 0, 0, PM_SCAN_CATEGORIES);
            v.extend(scan_all(t.pagemap.as_raw_fd(), s, e, all, VEC_REGIONS).unwrap_or_default());
        }
    }
    v
}

/// A random change to both twins' address spaces.
fn gen_op(r: &mut Rng) -> [u64; 6] {
    let slot = r.below(NSLOTS as u64);
    let pages = (HUGE / PAGE) as u64;
    let first = r.below(pages);
    let span = if r.chance(20) { pages } else { 16 };
    let n = 1 + r.below(span);
    let n = n.min(pages - first);
    let addr = (slot_addr(slot) + first as usize * PAGE) as u64;
    let len = n * PAGE as u64;
    match r.below(20) {
        0 => [
            OP_MAP,
            slot,
            r.below(KINDS.len() as u64),
            r.pick(&[0, 0, 1, 1, 1, 2, 3]),
            r.pick(&[1, 1, 1, 2, 4]),
            0,
        ],
        1..=5 => [OP_WRITE, addr, n, 0, 0, 0],
        6 | 7 => [OP_READ, addr, n, 0, 0, 0],
        8 => [OP_MADVISE, addr, len, libc::MADV_DONTNEED as u64, 0, 0],
        9 => [OP_MADVISE, addr, len, MADV_PAGEOUT as u64, 0, 0],
        10 => [OP_MADVISE, addr, len, MADV_GUARD_INSTALL as u64, 0, 0],
        11 => [OP_MADVISE, addr, len, MADV_GUARD_REMOVE as u64, 0, 0],
        12 => [
            OP_MADVISE,
            slot_addr(slot) as u64,
            HUGE as u64,
            MADV_COLLAPSE as u64,
            0,
            0,
        ],
        13 => {
            let prot = r.pick(&[
                libc::PROT_NONE,
                libc::PROT_READ,
                libc::PROT_READ | libc::PROT_WRITE,
            ]);
            [OP_MPROTECT, addr, len, prot as u64, 0, 0]
        }
        14 => [OP_UFFD_WP, addr, len, u64::from(r.chance(70)), 0, 0],
        15 => [OP_UFFD_RWP, addr, len, u64::from(r.chance(70)), 0, 0],
        16 => {
            let dst =
                (slot_addr(r.below(NSLOTS as u64)) + r.below(pages - n + 1) as usize * PAGE) as u64;
            [OP_MREMAP, addr, len, dst, 0, 0]
        }
        17 => [OP_CLEAR_REFS, 0, 0, 0, 0, 0],
        18 if r.chance(25) => [
            OP_CHOP,
            slot_addr(slot) as u64,
            r.pick(&[1, 2, 63, 64, 65, 66, 127, 128, 129, 200, 255, 256]),
            0,
            0,
            0,
        ],
        _ => [OP_WRITE, slot_addr(slot) as u64, pages, 0, 0, 0],
    }
}

fn build(r: &mut Rng) -> (Twin, Twin) {
    let mut a = Twin::spawn("a");
    let mut b = Twin::spawn("b");
    build_ops(r, |op| {
        a.op(op);
        b.op(op);
    });
    (a, b)
}

/// One twin built as [`build`] builds each of two, from the same draws of `r` (the clear-flag
/// oracle needs one).
fn build_one(r: &mut Rng) -> Twin {
    let mut a = Twin::spawn("a");
    build_ops(r, |op| {
        a.op(op);
    });
    a
}

/// The ops that build a twin: every slot mapped (some mappings over several slots: a file or
/// shmem VMA of several huge pages), then 40 random ops.
fn build_ops(r: &mut Rng, mut apply: impl FnMut([u64; 6])) {
    let mut slot = 0;
    while slot < NSLOTS as u64 {
        let span = span_of(slot, r.pick(&[1, 1, 1, 1, 2, 4])) as u64;
        let op = [
            OP_MAP,
            slot,
            r.below(KINDS.len() as u64),
            r.pick(&[0, 0, 1, 1, 1, 2, 3]),
            span,
            0,
        ];
        apply(op);
        slot += span;
    }
    for _ in 0..40 {
        let op = gen_op(r);
        apply(op);
    }
}

fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t with bit 0 set, for this process.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Stops khugepaged from collapsing the twins' THP slots at its own pace, which would make the
/// twins differ by timing; returns the setting to restore.
fn pause_khugepaged() -> Option<String> {
    let p = "/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs";
    let old = std::fs::read_to_string(p).ok()?;
    std::fs::write(p, "4000000000").ok()?;
    Some(old)
}

fn resume_khugepaged(old: Option<String>) {
    if let Some(v) = old {
        let p = "/sys/kernel/mm/transparent_hugepage/khugepaged/scan_sleep_millisecs";
        let _ = std::fs::write(p, v.trim());
    }
}

/// Sets the shmem THP policy (users such as QEMU guest RAM and tmpfs turn it on) for the
/// `build`-th build of the twins: `always`, `advise`, `never` in turn, so that a short run (three
/// builds, as on the debug kernel) has each mode once.
fn set_shmem_thp(build: u64) {
    let modes = ["always", "advise", "never"];
    let _ = std::fs::write(SHMEM_ENABLED, modes[(build % 3) as usize]);
}

fn ensure_hugepages(n: u64) {
    let p = "/proc/sys/vm/nr_hugepages";
    let cur: u64 = std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if cur < n {
        let _ = std::fs::write(p, n.to_string());
    }
}

fn main() -> ExitCode {
    let mut calls: u64 = 100_000;
    let mut seed: u64 = 1;
    let mut calls_per_build = CALLS_PER_BUILD;
    // Print each operation and case from this call on (to find what a hang was doing).
    let mut trace_from: u64 = u64::MAX;
    let mut clear_oracle = false;
    // Differential calls with PM_SCAN_CLEAR_SOFT_DIRTY (the clear-flag oracle's cases): the C
    // get-and-clear on one twin, the Rust one on the other.
    let mut clear = false;
    // The implementation the oracle's clears go through (both in turn without --impl).
    let mut only: Option<&'static str> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--impl" {
            only = match args.next().as_deref() {
                Some("c") => Some("c"),
                Some("rust") => Some("rust"),
                _ => {
                    eprintln!("pmscan-diff: --impl c|rust");
                    return ExitCode::from(2);
                }
            };
            continue;
        }
        if a == "--clear-oracle" {
            clear_oracle = true;
            continue;
        }
        if a == "--clear" {
            clear = true;
            continue;
        }
        let v = args.next().and_then(|v| v.parse().ok());
        match (a.as_str(), v) {
            ("--calls", Some(v)) => calls = v,
            ("--calls-per-build", Some(v)) if v > 0 => calls_per_build = v,
            ("--seed", Some(v)) => seed = v,
            ("--trace-from", Some(v)) => trace_from = v,
            _ => {
                eprintln!(
                    "usage: pmscan-diff [--calls N] [--calls-per-build N] [--seed S] [--trace-from N] \
                     [--clear-oracle | --clear]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let Ok(sw) = ImplSwitch::open() else {
        println!("pmscan-diff: {IMPL_SWITCH} missing: the kernel cannot run both implementations");
        println!("@@COUNTS passed=0 failed=1 skipped=0");
        return ExitCode::from(1);
    };
    // Leave the switch as it was found: later programs may rely on it.
    let impl_before = sw.get().unwrap_or_default();
    // The twins fault pages in with process_vm_writev: without it nothing would be populated
    // and the comparison would cover empty address spaces only.
    let mut probe = [0u8; 1];
    let src = [1u8; 1];
    let local = libc::iovec {
        iov_base: src.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let remote = libc::iovec {
        iov_base: probe.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: both iovecs point at live one-byte buffers of this process.
    if unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) } != 1 {
        println!(
            "pmscan-diff: process_vm_writev: {} (CONFIG_CROSS_MEMORY_ATTACH?)",
            std::io::Error::last_os_error()
        );
        println!("@@COUNTS passed=0 failed=1 skipped=0");
        return ExitCode::from(1);
    }
    pin_to_cpu0();
    ensure_hugepages(2 * NSLOTS as u64 + 8);
    let khugepaged = pause_khugepaged();
    if !mount_huge_tmpfs(HUGE_TMPFS) {
        println!(
            "pmscan-diff: cannot mount a huge=always tmpfs at {HUGE_TMPFS}: plain tmpfs there"
        );
    }
    let _ = std::fs::create_dir_all(EXT4);
    if !std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .contains(&format!(" {EXT4} ext4 "))
    {
        println!("pmscan-diff: no ext4 at {EXT4}: its files are on the root file system");
    }
    let shmem_thp = sysfs_choice(SHMEM_ENABLED);
    if clear_oracle {
        let ok = oracle::run(calls, calls_per_build, seed, &sw, only);
        sw.select(impl_before.trim());
        resume_khugepaged(khugepaged);
        if let Some(v) = shmem_thp {
            let _ = std::fs::write(SHMEM_ENABLED, v);
        }
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
    let t0 = std::time::Instant::now();
    let mut r = Rng::new(seed);
    let (mut agreed, mut differed, mut resyncs, mut changes) = (0u64, 0u64, 0u64, 0u64);
    // Calls left out because the twins differed outside the arena.
    let mut env = 0u64;
    let (mut out_a, mut out_b) = (Out::new(), Out::new());
    let mut n = 0u64;
    let mut by_errno = std::collections::BTreeMap::<String, u64>::new();
    // Calls after which the page state differed from before (write-protection at work), and
    // regions reported: evidence that the compared calls do something.
    let (mut changed_state, mut regions) = (0u64, 0u64);
    let mut prev_state: Option<Vec<PageRegion>> = None;
    // Pages seen per category in the states after each call: what the address spaces covered.
    let mut seen_pages = [0u64; CATEGORY_NAMES.len()];
    let mut builds = 0u64;
    'outer: while n < calls {
        set_shmem_thp(builds);
        builds += 1;
        let (mut a, mut b) = build(&mut r);
        let mut need_check = true;
        for _ in 0..calls_per_build {
            if n >= calls {
                break 'outer;
            }
            if r.chance(30) {
                let op = gen_op(&mut r);
                if n >= trace_from {
                    println!("op {op:x?}");
                }
                let (ra, rb) = (a.op(op), b.op(op));
                changes += 1;
                if ra != rb {
                    resyncs += 1;
                    if resyncs > calls / 20 + 50 {
                        break 'outer;
                    }
                    continue 'outer;
                }
                need_check = true;
            }
            if need_check {
                let (sa, sb) = (state(&a, &sw), state(&b, &sw));
                prev_state = sa.as_ref().ok().cloned();
                if sa.is_err() || sa.ok() != sb.ok() {
                    resyncs += 1;
                    if resyncs > calls / 20 + 50 {
                        break 'outer;
                    }
                    continue 'outer;
                }
            }
            let case = if clear {
                oracle::gen_clear_case(&mut r, &a, &sw)
            } else {
                gen_case(&mut r)
            };
            n += 1;
            if n >= trace_from {
                println!("call {n}: {case:x?}");
            }
            sw.select("c");
            let oa = call(&a, &mut out_a, &case);
            sw.select("rust");
            let ob = call(&b, &mut out_b, &case);
            let (sa, sb) = (state(&a, &sw), state(&b, &sw));
            let same_state = sa.is_ok() && sa.as_ref().ok() == sb.as_ref().ok();
            if let Ok(after) = &sa {
                if prev_state.as_ref() != Some(after) {
                    changed_state += 1;
                }
                for reg in after {
                    let pages = (reg.end - reg.start) / PAGE as u64;
                    for (bit, seen) in seen_pages.iter_mut().enumerate() {
                        if reg.categories & (1 << bit) != 0 {
                            *seen += pages;
                        }
                    }
                }
            }
            if let Ok(k) = oa.ret {
                regions += k as u64;
            }
            prev_state = sa.ok();
            *by_errno
                .entry(match oa.ret {
                    Ok(_) => "ok".to_string(),
                    Err(e) => format!("errno {e}"),
                })
                .or_default() += 1;
            if oa == ob && same_state {
                agreed += 1;
                need_check = false;
                continue;
            }
            if same_state && outside_state(&a, &sw, &case) != outside_state(&b, &sw, &case) {
                // The twins differ where the tester does not control them (their own heap,
                // stack, libc: reclaim or THP treat the two processes differently): not a
                // difference between the implementations. Rebuild and draw another call.
                println!("ENV seed {seed} call {n}: the twins differ outside the arena; rebuilt");
                env += 1;
                n -= 1;
                if env > calls / 100 + 20 {
                    break 'outer;
                }
                continue 'outer;
            }
            differed += 1;
            println!("DIFF seed {seed} call {n}: {case:?}");
            if oa.ret != ob.ret || oa.arg_after != ob.arg_after {
                println!(
                    "  c:    {:?} {:?}",
                    oa.ret,
                    oa.arg_after.map(|x| x.walk_end)
                );
                println!(
                    "  rust: {:?} {:?}",
                    ob.ret,
                    ob.arg_after.map(|x| x.walk_end)
                );
            }
            if oa.vec != ob.vec {
                // From a little before the first region that differs.
                let first = first_difference(&oa.vec, &ob.vec);
                let regions = |v: &[u8]| -> Vec<(u64, u64, String)> {
                    v.chunks_exact(24)
                        .skip(first.saturating_sub(2))
                        .take(6)
                        .map(|c| {
                            let w = |i: usize| u64::from_ne_bytes(c[i..i + 8].try_into().unwrap());
                            (w(0), w(8), category_names(w(16)))
                        })
                        .collect()
                };
                println!("  from region {}:", first.saturating_sub(2));
                println!("  vec c:    {:x?}", regions(&oa.vec));
                println!("  vec rust: {:x?}", regions(&ob.vec));
            }
            if !same_state {
                println!("  the state left behind differs");
            }
            if case.arg.flags & (PM_SCAN_WP_MATCHING | PM_SCAN_CLEAR_SOFT_DIRTY) == 0 {
                // A report-only call leaves the state as it was: the C version on the Rust twin
                // tells whether the twins or the implementations differ.
                sw.select("c");
                let oc = call(&b, &mut out_b, &case);
                let verdict = if oc == ob {
                    "same as rust: the twins differ"
                } else if oc == oa {
                    "same as c: the implementations differ"
                } else {
                    "neither"
                };
                println!("  control, c on the rust twin: {verdict}");
                sw.select("rust");
                let or = call(&b, &mut out_b, &case);
                println!(
                    "  control, rust again on the rust twin: {}",
                    if or == oc {
                        "same as c now"
                    } else if or == ob {
                        "same as before"
                    } else {
                        "neither"
                    }
                );
                if oc.vec != ob.vec {
                    let first = first_difference(&oc.vec, &ob.vec);
                    println!("  control differs from rust from region {first}");
                }
            }
            continue 'outer;
        }
    }
    println!(
        "pmscan-diff{}: seed {seed}: {n} calls compared, {agreed} agreed, {differed} differed; \
         {changes} address-space changes, {resyncs} resyncs, {env} calls redrawn (twins \
         differing outside the arena), {:.1}s",
        if clear { " --clear" } else { "" },
        t0.elapsed().as_secs_f64()
    );
    println!("  calls that changed the page state: {changed_state}; regions reported: {regions}");
    let seen: Vec<String> = CATEGORY_NAMES
        .iter()
        .zip(seen_pages)
        .map(|(n, p)| format!("{n} {p}"))
        .collect();
    println!("  page-states seen per category: {}", seen.join(", "));
    for (k, v) in &by_errno {
        println!("  outcome {k}: {v}");
    }
    resume_khugepaged(khugepaged);
    if let Some(v) = shmem_thp {
        let _ = std::fs::write(SHMEM_ENABLED, v);
    }
    sw.select(impl_before.trim());
    // One line of figures for the long run's write-up.
    println!(
        "{}: calls {n}, agreed {agreed}, differed {differed}, resyncs {resyncs}, changed-state {changed_state}",
        if clear { "DIFF-CLEAR" } else { "DIFF" }
    );
    println!("@@COUNTS passed={agreed} failed={differed} skipped=0");
    if differed == 0 && agreed == calls {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
