// SPDX-License-Identifier: GPL-2.0
//! Userspace side of `PAGEMAP_SCAN` (include/uapi/linux/fs.h) for the programs run in the
//! test guest, and small mm helpers they share.

use std::io;

pub const PAGE_IS_WPALLOWED: u64 = 1 << 0;
pub const PAGE_IS_WRITTEN: u64 = 1 << 1;
pub const PAGE_IS_FILE: u64 = 1 << 2;
pub const PAGE_IS_PRESENT: u64 = 1 << 3;
pub const PAGE_IS_SWAPPED: u64 = 1 << 4;
pub const PAGE_IS_PFNZERO: u64 = 1 << 5;
pub const PAGE_IS_HUGE: u64 = 1 << 6;
pub const PAGE_IS_SOFT_DIRTY: u64 = 1 << 7;
pub const PAGE_IS_GUARD: u64 = 1 << 8;
pub const PAGE_IS_ACCESSED: u64 = 1 << 9;
/// Every category the 7.3 ABI knows.
pub const PM_SCAN_CATEGORIES: u64 = (1 << 10) - 1;

pub const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
pub const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
/// Clears the soft-dirty state of the pages reported (this series; Rust implementation only).
pub const PM_SCAN_CLEAR_SOFT_DIRTY: u64 = 1 << 2;

/// Category names, bit by bit.
pub const CATEGORY_NAMES: [&str; 10] = [
    "WPALLOWED",
    "WRITTEN",
    "FILE",
    "PRESENT",
    "SWAPPED",
    "PFNZERO",
    "HUGE",
    "SOFT_DIRTY",
    "GUARD",
    "ACCESSED",
];

/// `struct page_region`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PageRegion {
    pub start: u64,
    pub end: u64,
    pub categories: u64,
}

/// `struct pm_scan_arg`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PmScanArg {
    pub size: u64,
    pub flags: u64,
    pub start: u64,
    pub end: u64,
    pub walk_end: u64,
    pub vec: u64,
    pub vec_len: u64,
    pub max_pages: u64,
    pub category_inverted: u64,
    pub category_mask: u64,
    pub category_anyof_mask: u64,
    pub return_mask: u64,
}

const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

/// `_IOWR('f', 16, struct pm_scan_arg)`.
pub const PAGEMAP_SCAN: u64 = ((IOC_READ | IOC_WRITE) << 30)
    | ((std::mem::size_of::<PmScanArg>() as u64) << 16)
    | ((b'f' as u64) << 8)
    | 16;

/// Names of the categories set in `cats`, `|`-joined.
pub fn category_names(cats: u64) -> String {
    let v: Vec<&str> = (0..CATEGORY_NAMES.len())
        .filter(|b| cats & (1 << b) != 0)
        .map(|b| CATEGORY_NAMES[b])
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join("|")
    }
}

/// Issues `PAGEMAP_SCAN` on a pagemap fd; returns the ioctl's result (regions written).
pub fn pagemap_scan(fd: i32, arg: &mut PmScanArg) -> io::Result<usize> {
    // SAFETY: `arg` is a valid, exclusively borrowed pm_scan_arg for the duration of the call;
    // the kernel writes through `arg.vec`, which the caller set to a buffer of `vec_len` regions.
    let r = unsafe { libc::ioctl(fd, PAGEMAP_SCAN as _, arg as *mut PmScanArg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Scans `[start, end)` reporting `return_mask`, paging through `walk_end` with a vec of
/// `chunk` regions; returns every region.
pub fn scan_all(
    fd: i32,
    start: u64,
    end: u64,
    mask: (u64, u64, u64, u64),
    chunk: usize,
) -> io::Result<Vec<PageRegion>> {
    let (inverted, required, anyof, ret) = mask;
    let mut out = Vec::new();
    let mut vec = vec![PageRegion::default(); chunk.max(1)];
    let mut at = start;
    while at < end {
        let mut a = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            start: at,
            end,
            vec: vec.as_mut_ptr() as u64,
            vec_len: vec.len() as u64,
            category_inverted: inverted,
            category_mask: required,
            category_anyof_mask: anyof,
            return_mask: ret,
            ..Default::default()
        };
        let n = pagemap_scan(fd, &mut a)?;
        out.extend_from_slice(&vec[..n]);
        if a.walk_end <= at {
            break;
        }
        at = a.walk_end;
    }
    Ok(out)
}

// userfaultfd (include/uapi/linux/userfaultfd.h)
const UFFD_API: u64 = 0xAA;
const UFFDIO_API: u64 = 0xC018_AA3F;
const UFFDIO_REGISTER: u64 = 0xC020_AA00;
const UFFDIO_WRITEPROTECT: u64 = 0xC018_AA06;
const UFFDIO_RWPROTECT: u64 = 0xC018_AA09;
pub const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
pub const UFFDIO_REGISTER_MODE_RWP: u64 = 1 << 3;
const UFFDIO_RWPROTECT_MODE_RWP: u64 = 1 << 0;
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;
pub const UFFD_FEATURE_PAGEFAULT_FLAG_WP: u64 = 1 << 0;
pub const UFFD_FEATURE_WP_HUGETLBFS_SHMEM: u64 = 1 << 12;
pub const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
pub const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
pub const UFFD_FEATURE_RWP: u64 = 1 << 17;
pub const UFFD_FEATURE_RWP_ASYNC: u64 = 1 << 18;
/// What PAGEMAP_SCAN's write-protection needs: asynchronous uffd-wp with markers, for
/// anonymous, shmem and hugetlb memory.
pub const UFFD_FEATURES_WP_ASYNC: u64 =
    UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;

fn check(r: i32) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Opens a userfaultfd and negotiates `features`; returns its fd.
pub fn uffd_open(features: u64) -> io::Result<i32> {
    // SAFETY: userfaultfd(2) with flags only.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = fd as i32;
    let mut api = [UFFD_API, features, 0u64];
    // SAFETY: UFFDIO_API reads and writes a struct uffdio_api (3 x u64).
    check(unsafe { libc::ioctl(fd, UFFDIO_API as _, api.as_mut_ptr()) })?;
    Ok(fd)
}

/// Registers `[addr, addr + len)` with the userfaultfd `fd` in `mode` (UFFDIO_REGISTER_MODE_*).
pub fn uffd_register(fd: i32, addr: usize, len: usize, mode: u64) -> io::Result<()> {
    let mut r = [addr as u64, len as u64, mode, 0];
    // SAFETY: UFFDIO_REGISTER reads and writes a struct uffdio_register (4 x u64).
    check(unsafe { libc::ioctl(fd, UFFDIO_REGISTER as _, r.as_mut_ptr()) })
}

/// Registers `[addr, addr + len)` for write-protection with the userfaultfd `fd`.
pub fn uffd_register_wp(fd: i32, addr: usize, len: usize) -> io::Result<()> {
    uffd_register(fd, addr, len, UFFDIO_REGISTER_MODE_WP)
}

/// Read-write protects (`on`) or unprotects `[addr, addr + len)` through the userfaultfd `fd`
/// (a range registered with UFFDIO_REGISTER_MODE_RWP).
pub fn uffd_rwp(fd: i32, addr: usize, len: usize, on: bool) -> io::Result<()> {
    let mode = if on { UFFDIO_RWPROTECT_MODE_RWP } else { 0 };
    let mut r = [addr as u64, len as u64, mode];
    // SAFETY: UFFDIO_RWPROTECT reads a struct uffdio_rwprotect (3 x u64).
    check(unsafe { libc::ioctl(fd, UFFDIO_RWPROTECT as _, r.as_mut_ptr()) })
}

/// Write-protects (`on`) or unprotects `[addr, addr + len)` through the userfaultfd `fd`.
pub fn uffd_wp(fd: i32, addr: usize, len: usize, on: bool) -> io::Result<()> {
    let mode = if on { UFFDIO_WRITEPROTECT_MODE_WP } else { 0 };
    let mut r = [addr as u64, len as u64, mode];
    // SAFETY: UFFDIO_WRITEPROTECT reads a struct uffdio_writeprotect (3 x u64).
    check(unsafe { libc::ioctl(fd, UFFDIO_WRITEPROTECT as _, r.as_mut_ptr()) })
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Kernel log lines (from /dev/kmsg, since boot) that start a splat (a warning, a bug, a KASAN,
/// UBSAN or lockdep report, a hung task: `pmrs_protocol::SPLAT_PATTERNS`, which the host
/// checks the console with too); prints the first five. For guest programs that
/// report `splats` in their summary line.
pub fn kmsg_splats() -> u64 {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    else {
        return 0;
    };
    let mut n = 0;
    let mut buf = vec![0u8; 8192];
    while let Ok(len) = f.read(&mut buf) {
        if len == 0 {
            break;
        }
        let l = String::from_utf8_lossy(&buf[..len]);
        let msg = l.split_once(';').map_or(&*l, |(_, m)| m);
        if pmrs_protocol::is_splat(msg) {
            n += 1;
            if n <= 5 {
                println!("# kernel: {}", msg.trim_end());
            }
        }
    }
    n
}

/// The shmem THP policy (`always`, `advise`, `never`, ...).
pub const SHMEM_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";

/// The bracketed (current) word of a sysfs choice file such as [`SHMEM_ENABLED`].
pub fn sysfs_choice(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let a = s.find('[')?;
    let b = s[a..].find(']')?;
    Some(s[a + 1..a + b].to_string())
}

/// Mounts a tmpfs with `huge=always` at `dir` (created if missing): files there get shmem THPs
/// whatever [`SHMEM_ENABLED`] says. Returns whether the mount worked.
pub fn mount_huge_tmpfs(dir: &str) -> bool {
    let _ = std::fs::create_dir_all(dir);
    let Ok(target) = std::ffi::CString::new(dir) else {
        return false;
    };
    // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
    unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"huge=always".as_ptr().cast(),
        ) == 0
    }
}

pub use pmrs_protocol::{IMPL_C, IMPL_RUST, IMPL_SWITCH};

/// The page size the programs assume (x86_64, arm64 and riscv64 as configured here).
pub const PAGE: usize = 4096;
/// A PMD-sized huge page.
pub const HUGE: usize = 2 << 20;

/// xorshift64*: small, seedable, good enough to pick test cases; the same stream for a seed in
/// every program.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// The debugfs switch between the C and the Rust `PAGEMAP_SCAN` ([`IMPL_SWITCH`]), kept open.
pub struct ImplSwitch(std::fs::File);

impl ImplSwitch {
    /// Fails where the kernel has no switch (only one implementation, or no debugfs).
    pub fn open() -> io::Result<Self> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(IMPL_SWITCH)
            .map(ImplSwitch)
    }
    /// Selects [`IMPL_C`] or [`IMPL_RUST`] for the calls that follow, in every process.
    pub fn set(&self, imp: &str) -> io::Result<()> {
        use std::io::Write;
        (&self.0).write_all(imp.as_bytes())
    }
    /// [`ImplSwitch::set`], for programs that cannot go on without it: panics if the switch
    /// refuses.
    pub fn select(&self, imp: &str) {
        if let Err(e) = self.set(imp) {
            panic!("{IMPL_SWITCH}: selecting {imp}: {e}");
        }
    }
    /// What is selected now.
    pub fn get(&self) -> io::Result<String> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 16];
        let n = self.0.read_at(&mut buf, 0)?;
        Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    }
}

/// The value after `--name` on the command line, if it is a number; `default` otherwise.
pub fn arg_u64(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether `--name` is on the command line.
pub fn arg_flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The 64-bit /proc/PID/pagemap entries of the `pages` pages from `addr`, read from an open
/// pagemap file (`pread`, so the file can be shared).
pub fn pagemap_entries(pagemap: &std::fs::File, addr: usize, pages: usize) -> io::Result<Vec<u64>> {
    use std::os::unix::fs::FileExt;
    let mut raw = vec![0u8; pages * 8];
    pagemap.read_exact_at(&mut raw, (addr / PAGE * 8) as u64)?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
        .collect())
}

/// An anonymous (or hugetlb) mapping of `len` bytes at a [`HUGE`] boundary, unmapped on drop.
pub struct Map {
    pub addr: usize,
    pub len: usize,
    raw: usize,
    raw_len: usize,
}

impl Map {
    /// `flags` are added to `MAP_ANONYMOUS` (`MAP_PRIVATE` or `MAP_SHARED`, `MAP_HUGETLB`,
    /// `MAP_NORESERVE`, ...). A hugetlb mapping is aligned by the kernel; any other is placed in
    /// an over-sized reservation.
    pub fn new(len: usize, flags: i32) -> io::Result<Map> {
        let hugetlb = flags & libc::MAP_HUGETLB != 0;
        let raw_len = if hugetlb { len } else { len + HUGE };
        // SAFETY: a fresh mapping chosen by the kernel.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                raw_len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let raw = p as usize;
        let addr = if hugetlb {
            raw
        } else {
            (raw + HUGE - 1) & !(HUGE - 1)
        };
        Ok(Map {
            addr,
            len,
            raw,
            raw_len,
        })
    }

    /// The address of page `i`.
    pub fn page(&self, i: usize) -> usize {
        self.addr + i * PAGE
    }

    pub fn pages(&self) -> usize {
        self.len / PAGE
    }

    pub fn end(&self) -> u64 {
        (self.addr + self.len) as u64
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.raw as *mut _, self.raw_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_sizes_and_ioctl_number() {
        assert_eq!(std::mem::size_of::<PmScanArg>(), 96);
        assert_eq!(std::mem::size_of::<PageRegion>(), 24);
        // _IOWR('f', 16, 96 bytes) as computed by the C headers.
        assert_eq!(PAGEMAP_SCAN, 0xc060_6610);
    }

    #[test]
    fn names() {
        assert_eq!(
            category_names(PAGE_IS_PRESENT | PAGE_IS_HUGE),
            "PRESENT|HUGE"
        );
        assert_eq!(category_names(0), "-");
        assert_eq!(category_names(PM_SCAN_CATEGORIES).matches('|').count(), 9);
    }

    #[test]
    fn pagemap_entries_of_a_written_page() {
        let m = Map::new(2 * PAGE, libc::MAP_PRIVATE).unwrap();
        // SAFETY: the first page of our own mapping.
        unsafe { (m.addr as *mut u8).write_volatile(1) };
        let f = std::fs::File::open("/proc/self/pagemap").unwrap();
        let e = pagemap_entries(&f, m.addr, 2).unwrap();
        assert_eq!(e.len(), 2);
        assert_ne!(e[0] & (1 << 63), 0, "written page present");
    }

    #[test]
    fn rng_is_seeded() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let x: Vec<u64> = (0..8).map(|_| a.next()).collect();
        assert_eq!(x, (0..8).map(|_| b.next()).collect::<Vec<_>>());
        assert_ne!(x[0], Rng::new(8).next());
        assert!((0..1000).all(|_| a.below(10) < 10));
        assert_eq!(a.below(0), 0);
    }
}

/// A pipe's read and write ends, closed on exec.
fn cloexec_pipe() -> io::Result<(std::fs::File, std::fs::File)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two new descriptors, which the Files then own alone.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        ))
    }
}

/// A child driven over two pipes: it reads commands from one and answers on the other.
pub struct Child {
    pub pid: i32,
    /// Where the parent writes the child's commands.
    pub cmd: std::fs::File,
    /// Where the parent reads the child's answers.
    pub ack: std::fs::File,
}

/// Forks a child that runs `body` with the read end of its command pipe and the write end of
/// its answer pipe (the parent's ends closed in it), then exits. Call it from a
/// single-threaded program only.
pub fn fork_child(body: impl FnOnce(std::fs::File, std::fs::File)) -> io::Result<Child> {
    let (cmd_r, cmd_w) = cloexec_pipe()?;
    let (ack_r, ack_w) = cloexec_pipe()?;
    // SAFETY: the callers are single-threaded; the child runs `body` alone and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        drop(cmd_w);
        drop(ack_r);
        body(cmd_r, ack_w);
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    Ok(Child {
        pid,
        cmd: cmd_w,
        ack: ack_r,
    })
}
