// SPDX-License-Identifier: GPL-2.0
//! A reproducer of an upstream loss of soft-dirty state, not a suite: a page of a PMD-mapped
//! ext4 or shmem huge page written after `clear_refs` reads soft-dirty until something splits
//! the PMD (here an mprotect() of another part of the huge page): the split of a non-anonymous
//! PMD only zaps it (`__split_huge_pmd_locked()`), the page is no longer mapped, and nothing
//! keeps its bit. Anonymous THP keeps it. Run it in the guest (`cargo xtask run --shell`, then
//! `/bin/sd-zap-probe`); on 7.3 it prints `sd 1` after the write and `sd 0 present 0` after the
//! split for ext4 and shmem. Two more cases: a writeback (msync) then a write to another page
//! (7.3 does not split the ext4 PMD there: the bit stays), and a `MADV_COLLAPSE` of a
//! PTE-mapped PMD-size folio (`sd 0` after it on 7.3, `sd 1` with the khugepaged patch of this
//! series).
use pmrs_guest::{pagemap_entries, HUGE, PAGE};
use std::io::Write;

/// What zaps the PMD in [`run`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zap {
    /// An mprotect() of another part of the huge page splits the PMD.
    Mprotect,
    /// Writeback write-protects the PMD (`folio_mkclean()`), then a write to another page of
    /// it faults, and `wp_huge_pmd()` splits the PMD of a file without `huge_fault`.
    WritebackThenWrite,
}

/// The process's PMD-mapped file and shmem memory, in kB (smaps_rollup).
fn pmd_mapped() -> String {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let kb = |key: &str| {
        rollup
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    format!(
        "(PMD-mapped kB: file {}, shmem {})",
        kb("FilePmdMapped:"),
        kb("ShmemPmdMapped:")
    )
}

/// Maps `len` bytes of `fd` shared at a huge page boundary, with MADV_HUGEPAGE, and writes every
/// page; returns the address.
fn map_written(fd: i32, len: usize) -> usize {
    // SAFETY: sizing the probe's own file, then a fresh reservation with the file mapped over
    // its aligned part, written only inside it.
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
        addr
    }
}

fn run(name: &str, fd: i32, zap: Zap) {
    let len = 2 * HUGE;
    let addr = map_written(fd, len);
    unsafe {
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
            "{name}: after writing page 5: sd {} present {} {}",
            sd(5),
            pr(5),
            pmd_mapped()
        );
        if zap == Zap::Mprotect {
            libc::mprotect((addr + 256 * PAGE) as *mut _, 16 * PAGE, libc::PROT_READ);
            println!(
                "{name}: after mprotect of pages 256..272 (split of the PMD): page 5 sd {} \
                 present {}",
                sd(5),
                pr(5)
            );
        } else {
            libc::msync(addr as *mut _, len, libc::MS_SYNC);
            println!(
                "{name}: after msync (writeback write-protects the PMD): page 5 sd {} present {} {}",
                sd(5),
                pr(5),
                pmd_mapped()
            );
            *((addr + 300 * PAGE) as *mut u8) = 2;
            println!(
                "{name}: after writing page 300 (a write fault splits the PMD): page 5 sd {} \
                 present {}, page 300 sd {} {}",
                sd(5),
                pr(5),
                sd(300),
                pmd_mapped()
            );
        }
        libc::munmap(addr as *mut _, len);
    }
    std::io::stdout().flush().ok();
}

/// A PMD-size file or shmem folio mapped by PTEs (the VMA was split inside it while the pages
/// were faulted in, then merged again), a page written after `clear_refs`, then
/// `MADV_COLLAPSE`: `try_collapse_pte_mapped_thp()` clears the PTEs and maps the folio by a PMD
/// made from `vm_page_prot`, without the PTEs' soft-dirty bits (khugepaged does the same and
/// leaves the range unmapped).
fn collapse(name: &str, fd: i32) {
    let len = 2 * HUGE;
    let addr = map_written(fd, len);
    unsafe {
        let pm = std::fs::File::open("/proc/self/pagemap").unwrap();
        let sd = |i: usize| pagemap_entries(&pm, addr + i * PAGE, 1).unwrap()[0] >> 55 & 1;
        let pr = |i: usize| pagemap_entries(&pm, addr + i * PAGE, 1).unwrap()[0] >> 63 & 1;
        println!("{name} collapse: written {}", pmd_mapped());
        // Split the VMA inside the huge page (zaps the PMD), fault every page in by PTEs,
        // merge the VMA again.
        libc::mprotect((addr + 256 * PAGE) as *mut _, 16 * PAGE, libc::PROT_READ);
        for i in 0..512 {
            std::ptr::read_volatile((addr + i * PAGE) as *const u8);
        }
        libc::mprotect(
            (addr + 256 * PAGE) as *mut _,
            16 * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
        );
        std::fs::write("/proc/self/clear_refs", "4").unwrap();
        *((addr + 5 * PAGE) as *mut u8) = 2;
        println!(
            "{name} collapse: PTE-mapped, page 5 written after clear_refs: sd {} present {} {}",
            sd(5),
            pr(5),
            pmd_mapped()
        );
        let r = libc::madvise(addr as *mut _, HUGE, libc::MADV_COLLAPSE);
        println!(
            "{name} collapse: after MADV_COLLAPSE (rc {r}): page 5 sd {} present {} {}",
            sd(5),
            pr(5),
            pmd_mapped()
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
    run("ext4", fd, Zap::Mprotect);
    run("ext4", fd, Zap::WritebackThenWrite);
    let fd = unsafe { libc::memfd_create(c"zap".as_ptr(), 0) };
    run("shmem", fd, Zap::Mprotect);
    let path = b"/mnt/ext4/zap-probe-collapse\0";
    // SAFETY: a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
            0o600,
        )
    };
    collapse("ext4", fd);
    let fd = unsafe { libc::memfd_create(c"zap-collapse".as_ptr(), 0) };
    collapse("shmem", fd);
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
