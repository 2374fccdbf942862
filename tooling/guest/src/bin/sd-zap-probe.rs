// SPDX-License-Identifier: GPL-2.0
//! A reproducer of an upstream loss of soft-dirty state, not a suite: a page of a PMD-mapped
//! ext4 or shmem huge page written after `clear_refs` reads soft-dirty until something splits
//! the PMD (here an mprotect() of another part of the huge page): the split of a non-anonymous
//! PMD only zaps it (`__split_huge_pmd_locked()`), the page is no longer mapped, and nothing
//! keeps its bit. Anonymous THP keeps it. Run it in the guest (`cargo xtask run --shell`, then
//! `/bin/sd-zap-probe`); on 7.3 it prints `sd 1` after the write and `sd 0 present 0` after the
//! split for ext4 and shmem.
use pmrs_guest::{pagemap_entries, HUGE, PAGE};
use std::io::Write;

fn run(name: &str, fd: i32) {
    let len = 2 * HUGE;
    unsafe {
        libc::ftruncate(fd, (len + HUGE) as i64);
        let raw = libc::mmap(
            std::ptr::null_mut(),
            len + HUGE,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        let addr = (raw as usize + HUGE - 1) & !(HUGE - 1);
        let p = libc::mmap(
            addr as *mut _,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd,
            0,
        );
        assert!(p != libc::MAP_FAILED);
        libc::madvise(addr as *mut _, len, libc::MADV_HUGEPAGE);
        for i in 0..len / PAGE {
            *((addr + i * PAGE) as *mut u8) = 1;
        }
        let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
        let pmd: Vec<&str> = rollup.lines().filter(|l| l.contains("PmdMapped")).collect();
        std::fs::write("/proc/self/clear_refs", "4").unwrap();
        let pm = std::fs::File::open("/proc/self/pagemap").unwrap();
        let sd = |i: usize| pagemap_entries(&pm, addr + i * PAGE, 1).unwrap()[0] >> 55 & 1;
        let pr = |i: usize| pagemap_entries(&pm, addr + i * PAGE, 1).unwrap()[0] >> 63 & 1;
        println!(
            "{name}: {:?}; after clear_refs: page 5 sd {} present {}",
            pmd,
            sd(5),
            pr(5)
        );
        *((addr + 5 * PAGE) as *mut u8) = 2;
        println!(
            "{name}: after writing page 5: sd {} present {}",
            sd(5),
            pr(5)
        );
        libc::mprotect((addr + 256 * PAGE) as *mut _, 16 * PAGE, libc::PROT_READ);
        println!(
            "{name}: after mprotect of pages 256..272 (split of the PMD): page 5 sd {} present {}",
            sd(5),
            pr(5)
        );
        libc::munmap(addr as *mut _, len);
    }
    std::io::stdout().flush().ok();
}

fn main() {
    let _ = std::fs::write(
        "/sys/kernel/mm/transparent_hugepage/shmem_enabled",
        "always",
    );
    let path = b"/mnt/ext4/zap-probe\0";
    let fd = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
            0o600,
        )
    };
    run("ext4", fd);
    let fd = unsafe { libc::memfd_create(c"zap".as_ptr(), 0) };
    run("shmem", fd);
    // Anonymous THP, for comparison (a split keeps the bits there).
    unsafe {
        let len = 2 * HUGE;
        let raw = libc::mmap(
            std::ptr::null_mut(),
            len + HUGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        let addr = (raw as usize + HUGE - 1) & !(HUGE - 1);
        libc::madvise(addr as *mut _, len, libc::MADV_HUGEPAGE);
        for i in 0..len / PAGE {
            *((addr + i * PAGE) as *mut u8) = 1;
        }
        std::fs::write("/proc/self/clear_refs", "4").unwrap();
        *((addr + 5 * PAGE) as *mut u8) = 2;
        let pm = std::fs::File::open("/proc/self/pagemap").unwrap();
        let sd = |i: usize| pagemap_entries(&pm, addr + i * PAGE, 1).unwrap()[0] >> 55 & 1;
        println!("anon: after writing page 5: sd {}", sd(5));
        libc::mprotect((addr + 256 * PAGE) as *mut _, 16 * PAGE, libc::PROT_READ);
        println!("anon: after mprotect split: page 5 sd {}", sd(5));
    }
}
