// SPDX-License-Identifier: GPL-2.0
//! Regression checks for the bugs fixed in the C PAGEMAP_SCAN since 6.7, run against whichever
//! implementation /sys/kernel/debug/pagemap_scan/impl selects (the runner runs it once per
//! implementation). TAP output, one case per bug; a case that needs what the kernel lacks
//! fails rather than skips.
//!
//! Bugs covered here by behaviour (see ../shared notes and the series' cover letter for the
//! ones covered by construction or by other suites):
//! - WP_MATCHING marking VMAs not registered for async uffd-wp (2023);
//! - the exclusive write-protect fast path taken without WP_MATCHING (2023);
//! - the uffd-wp bit read from swap entries as from present ones;
//! - PFNZERO missing for the huge zero PMD (2025);
//! - NULL bounce buffer touched when backing out a huge page with vec_len == 0 (syzbot);
//! - hugetlb hole write-protection deadlocking on the hugetlb VMA lock (2026);
//! - the WRITTEN-only fast path and the generic path disagreeing on pte_none (2026);
//! - an anonymous THP range zapped to pmd_none neither reported nor re-armed (2026);
//! - a hugetlb page that cannot be write-protected whole (max_pages ends inside it) must stop
//!   the walk at its start, not be skipped (found here, fixed in this series);
//! - walk_end left where a full bounce buffer stopped an earlier walk when the last walk
//!   completed (found here, fixed in this series).

use pmrs_guest::*;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::process::ExitCode;

const MADV_PAGEOUT: i32 = 21;
/// Bit 57 of /proc/pid/pagemap: the page is uffd-wp write-protected.
const PM_UFFD_WP: u64 = 1 << 57;

type Check = Result<(), String>;
/// A named regression case.
type Case = (&'static str, fn(&Ctx) -> Check);

fn fail<T>(what: impl Into<String>) -> Result<T, String> {
    Err(what.into())
}

/// What a case that needs transparent hugepages returns in a kernel without them: counted as
/// a skip, not a failure.
const NO_THP: &str = "SKIP transparent hugepages are not available";

/// The same for cases that need hugetlb pages.
const NO_HUGETLB: &str = "SKIP hugetlb pages are not available";

/// Whether the kernel has transparent hugepages (CONFIG_TRANSPARENT_HUGEPAGE).
fn thp_built() -> bool {
    std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists()
}

fn os(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// An anonymous (or hugetlb) mapping at a 2 MiB boundary (`pmrs_guest::Map`).
fn new_map(len: usize, flags: i32) -> Result<Map, String> {
    Map::new(len, flags).or_else(|_| fail(os("mmap")))
}

/// What the cases do with their mappings.
trait CaseMap {
    fn write(&self, i: usize);
    fn read(&self, i: usize);
    fn madvise(&self, first: usize, pages: usize, advice: i32) -> Check;
}

impl CaseMap for Map {
    fn write(&self, i: usize) {
        // SAFETY: page `i` lies in the mapping, which is writable.
        unsafe { ((self.page(i)) as *mut u8).write_volatile(1) };
    }

    fn read(&self, i: usize) {
        // SAFETY: page `i` lies in the mapping, which is readable.
        let _ = unsafe { ((self.page(i)) as *const u8).read_volatile() };
    }

    fn madvise(&self, first: usize, pages: usize, advice: i32) -> Check {
        // SAFETY: the range lies in the mapping.
        if unsafe { libc::madvise(self.page(first) as *mut _, pages * PAGE, advice) } != 0 {
            // Without THP there are no huge pages to ask for or to keep away.
            return match advice {
                libc::MADV_NOHUGEPAGE if !thp_built() => Ok(()),
                libc::MADV_HUGEPAGE if !thp_built() => fail(NO_THP),
                _ => fail(os("madvise")),
            };
        }
        Ok(())
    }
}

struct Ctx {
    pagemap: File,
    uffd: i32,
}

impl Ctx {
    /// PAGEMAP_SCAN of `[start, end)` with the given flags, masks and output room.
    fn scan(
        &self,
        start: usize,
        end: usize,
        flags: u64,
        masks: (u64, u64, u64, u64),
        vec_len: usize,
        max_pages: u64,
    ) -> Result<(Vec<PageRegion>, u64), String> {
        let mut vec = vec![PageRegion::default(); vec_len.max(1)];
        let mut a = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            flags,
            start: start as u64,
            end: end as u64,
            vec: vec.as_mut_ptr() as u64,
            vec_len: vec_len as u64,
            max_pages,
            category_inverted: masks.0,
            category_mask: masks.1,
            category_anyof_mask: masks.2,
            return_mask: masks.3,
            ..Default::default()
        };
        let n = pagemap_scan(self.pagemap.as_raw_fd(), &mut a)
            .map_err(|e| format!("PAGEMAP_SCAN: {e}"))?;
        vec.truncate(n);
        Ok((vec, a.walk_end))
    }

    /// Write-protects every WRITTEN page of the range (Wine's GetWriteWatch reset).
    fn wp_written(&self, start: usize, end: usize) -> Check {
        let w = PAGE_IS_WRITTEN;
        self.scan(start, end, PM_SCAN_WP_MATCHING, (0, w, 0, w), 0, 0)
            .map(|_| ())
    }

    /// The pages of `[start, end)` reported WRITTEN, as page indexes from `start`.
    fn written(&self, start: usize, end: usize) -> Result<Vec<usize>, String> {
        let w = PAGE_IS_WRITTEN;
        let (v, _) = self.scan(start, end, 0, (0, w, 0, w), 4096, 0)?;
        Ok(pages_of(&v, start))
    }

    fn uffd_wp_bit(&self, addr: usize) -> Result<bool, String> {
        let mut f = File::open("/proc/self/pagemap").map_err(|e| e.to_string())?;
        f.seek(SeekFrom::Start((addr / PAGE * 8) as u64))
            .map_err(|e| e.to_string())?;
        let mut b = [0u8; 8];
        f.read_exact(&mut b).map_err(|e| e.to_string())?;
        Ok(u64::from_ne_bytes(b) & PM_UFFD_WP != 0)
    }
}

fn pages_of(v: &[PageRegion], start: usize) -> Vec<usize> {
    v.iter()
        .flat_map(|r| (r.start..r.end).step_by(PAGE))
        .map(|a| (a as usize - start) / PAGE)
        .collect()
}

fn registered(c: &Ctx, m: &Map) -> Check {
    uffd_register_wp(c.uffd, m.addr, m.len).map_err(|e| format!("UFFDIO_REGISTER: {e}"))
}

/// 2023: WP_MATCHING must not write-protect a VMA that is not registered for async uffd-wp.
fn wp_matching_skips_unregistered_vma(c: &Ctx) -> Check {
    let a = new_map(8 * PAGE, libc::MAP_PRIVATE)?;
    let b = new_map(8 * PAGE, libc::MAP_PRIVATE)?;
    registered(c, &a)?;
    for i in 0..8 {
        a.write(i);
        b.write(i);
    }
    // Exclusive write-protection (no output) and with output, over both VMAs.
    for vec_len in [0, 16] {
        for m in [&a, &b] {
            let all = PM_SCAN_CATEGORIES;
            c.scan(
                m.addr,
                m.addr + m.len,
                PM_SCAN_WP_MATCHING,
                (0, 0, 0, all),
                vec_len,
                0,
            )?;
        }
    }
    for i in 0..8 {
        if !c.uffd_wp_bit(a.page(i))? {
            return fail(format!(
                "page {i} of the registered VMA is not write-protected"
            ));
        }
        if c.uffd_wp_bit(b.page(i))? {
            return fail(format!(
                "page {i} of the unregistered VMA was write-protected"
            ));
        }
    }
    Ok(())
}

/// 2023: without WP_MATCHING, a call without output must not write-protect anything.
fn no_wp_without_wp_matching(c: &Ctx) -> Check {
    let a = new_map(8 * PAGE, libc::MAP_PRIVATE)?;
    registered(c, &a)?;
    for i in 0..8 {
        a.write(i);
    }
    c.scan(
        a.addr,
        a.addr + a.len,
        0,
        (0, 0, 0, PM_SCAN_CATEGORIES),
        0,
        0,
    )?;
    c.scan(
        a.addr,
        a.addr + a.len,
        0,
        (0, PAGE_IS_WRITTEN, 0, PAGE_IS_WRITTEN),
        0,
        0,
    )?;
    if c.written(a.addr, a.addr + a.len)? != (0..8).collect::<Vec<_>>() {
        return fail("written pages lost WRITTEN without WP_MATCHING");
    }
    Ok(())
}

/// The uffd-wp bit of a swapped-out page is read from the swap entry: protected pages stay
/// not WRITTEN after MADV_PAGEOUT, written ones stay WRITTEN.
fn uffd_wp_bit_of_swapped_pages(c: &Ctx) -> Check {
    let a = new_map(8 * PAGE, libc::MAP_PRIVATE)?;
    a.madvise(0, 8, libc::MADV_NOHUGEPAGE)?;
    registered(c, &a)?;
    for i in 0..8 {
        a.write(i);
    }
    c.wp_written(a.addr, a.addr + a.len)?;
    a.write(2);
    a.write(5);
    a.madvise(0, 8, MADV_PAGEOUT)?;
    let sw = PAGE_IS_SWAPPED;
    let (v, _) = c.scan(a.addr, a.addr + a.len, 0, (0, sw, 0, sw), 16, 0)?;
    if pages_of(&v, a.addr).len() != 8 {
        return fail(format!(
            "MADV_PAGEOUT swapped {} of 8 pages (no swap?)",
            pages_of(&v, a.addr).len()
        ));
    }
    let w = c.written(a.addr, a.addr + a.len)?;
    if w != vec![2, 5] {
        return fail(format!(
            "swapped pages reported WRITTEN: {w:?}, expected [2, 5]"
        ));
    }
    Ok(())
}

/// 2025: a read fault in a THP range maps the huge zero page: PFNZERO|HUGE|PRESENT.
fn pfnzero_on_huge_zero_pmd(c: &Ctx) -> Check {
    let a = new_map(HUGE, libc::MAP_PRIVATE)?;
    a.madvise(0, HUGE / PAGE, libc::MADV_HUGEPAGE)?;
    a.read(0);
    let (v, _) = c.scan(
        a.addr,
        a.addr + HUGE,
        0,
        (0, 0, 0, PM_SCAN_CATEGORIES),
        16,
        0,
    )?;
    let want = PAGE_IS_PRESENT | PAGE_IS_HUGE | PAGE_IS_PFNZERO;
    match v.as_slice() {
        [r] if r.start as usize == a.addr
            && r.end as usize == a.addr + HUGE
            && r.categories & want == want =>
        {
            Ok(())
        }
        _ => fail(format!("huge zero page reported as {v:x?}")),
    }
}

/// syzbot: backing out a partly write-protected THP with vec set but vec_len == 0 must not
/// touch the (absent) bounce buffer; the first half gets protected by PTEs, the rest not.
fn thp_backout_without_buffer(c: &Ctx) -> Check {
    let a = new_map(HUGE, libc::MAP_PRIVATE)?;
    a.madvise(0, HUGE / PAGE, libc::MADV_HUGEPAGE)?;
    registered(c, &a)?;
    for i in 0..HUGE / PAGE {
        a.write(i);
    }
    let (_, walk_end) = c.scan(
        a.addr,
        a.addr + HUGE / 2,
        PM_SCAN_WP_MATCHING,
        (0, 0, 0, PAGE_IS_WRITTEN),
        0,
        0,
    )?;
    if walk_end as usize != a.addr + HUGE / 2 {
        return fail(format!("walk_end {walk_end:#x}"));
    }
    let w = c.written(a.addr, a.addr + HUGE)?;
    if w != (HUGE / PAGE / 2..HUGE / PAGE).collect::<Vec<_>>() {
        return fail(format!(
            "after half a THP was protected, {} pages WRITTEN",
            w.len()
        ));
    }
    Ok(())
}

fn hugetlb_map(c: &Ctx, pages: usize, shared: bool) -> Result<Map, String> {
    if std::fs::write("/proc/sys/vm/nr_hugepages", "64").is_err()
        && !std::path::Path::new("/sys/kernel/mm/hugepages").exists()
    {
        // CONFIG_HUGETLBFS=n.
        return fail(NO_HUGETLB);
    }
    let kind = if shared {
        libc::MAP_SHARED
    } else {
        libc::MAP_PRIVATE
    };
    let m = new_map(pages * HUGE, kind | libc::MAP_HUGETLB)?;
    registered(c, &m)?;
    Ok(m)
}

/// 2026: write-protecting unpopulated hugetlb entries must not deadlock on the hugetlb VMA
/// lock the walk holds; afterwards a write is seen as WRITTEN, the untouched page is not.
fn hugetlb_hole_wp(c: &Ctx) -> Check {
    let h = hugetlb_map(c, 2, false)?;
    c.scan(
        h.addr,
        h.addr + h.len,
        PM_SCAN_WP_MATCHING,
        (0, 0, 0, PAGE_IS_WRITTEN),
        16,
        0,
    )?;
    h.write(0);
    let w = c.written(h.addr, h.addr + h.len)?;
    if w != (0..HUGE / PAGE).collect::<Vec<_>>() {
        return fail(format!(
            "{} pages WRITTEN, expected the first huge page",
            w.len()
        ));
    }
    Ok(())
}

/// 2026: the WRITTEN-only fast path and the generic path agree on empty PTEs in a uffd-wp VMA
/// (empty counts as written in both).
fn fast_and_generic_paths_agree_on_pte_none(c: &Ctx) -> Check {
    // A synchronous uffd-wp registration leaves unpopulated entries empty (no markers).
    let fd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP).map_err(|e| format!("userfaultfd: {e}"))?;
    let a = new_map(16 * PAGE, libc::MAP_PRIVATE)?;
    a.madvise(0, 16, libc::MADV_NOHUGEPAGE)?;
    uffd_register_wp(fd, a.addr, a.len).map_err(|e| format!("UFFDIO_REGISTER: {e}"))?;
    for i in [0, 3, 4] {
        a.write(i);
    }
    uffd_wp(fd, a.page(3), PAGE, true).map_err(|e| format!("UFFDIO_WRITEPROTECT: {e}"))?;
    let w = PAGE_IS_WRITTEN;
    let (fast, _) = c.scan(a.addr, a.addr + a.len, 0, (0, w, 0, w), 64, 0)?;
    let (generic, _) = c.scan(
        a.addr,
        a.addr + a.len,
        0,
        (0, w, 0, w | PAGE_IS_PRESENT),
        64,
        0,
    )?;
    // SAFETY: our own fd.
    unsafe { libc::close(fd) };
    let (f, g) = (pages_of(&fast, a.addr), pages_of(&generic, a.addr));
    let want: Vec<usize> = (0..16).filter(|&i| i != 3).collect();
    if f != want || g != want {
        return fail(format!(
            "fast path {f:?}, generic path {g:?}, expected {want:?}"
        ));
    }
    Ok(())
}

/// 2026: an anonymous THP range zapped to pmd_none in a uffd-wp VMA is reported WRITTEN and
/// re-armed by WP_MATCHING.
fn anon_thp_pmd_none_hole(c: &Ctx) -> Check {
    let a = new_map(HUGE, libc::MAP_PRIVATE)?;
    a.madvise(0, HUGE / PAGE, libc::MADV_HUGEPAGE)?;
    registered(c, &a)?;
    for i in 0..HUGE / PAGE {
        a.write(i);
    }
    c.wp_written(a.addr, a.addr + HUGE)?;
    a.madvise(0, HUGE / PAGE, libc::MADV_DONTNEED)?;
    let all: Vec<usize> = (0..HUGE / PAGE).collect();
    let w = c.written(a.addr, a.addr + HUGE)?;
    if w != all && !w.is_empty() {
        return fail(format!("after the zap {} of 512 pages WRITTEN", w.len()));
    }
    c.wp_written(a.addr, a.addr + HUGE)?;
    if !c.written(a.addr, a.addr + HUGE)?.is_empty() {
        return fail("WP_MATCHING did not re-arm the zapped range");
    }
    a.write(7);
    if c.written(a.addr, a.addr + HUGE)? != vec![7] {
        return fail("a write after re-arming is not seen");
    }
    Ok(())
}

/// Found here: when max_pages ends inside a written hugetlb page under WP_MATCHING, the page
/// cannot be protected whole; the walk must stop at its start (walk_end) with nothing of it
/// reported, not go on and leave walk_end past it.
fn hugetlb_partial_wp_stops_the_walk(c: &Ctx) -> Check {
    let h = hugetlb_map(c, 2, false)?;
    h.write(0);
    h.write(HUGE / PAGE);
    let w = PAGE_IS_WRITTEN;
    let (v, walk_end) = c.scan(
        h.addr,
        h.addr + h.len,
        PM_SCAN_WP_MATCHING,
        (0, w, 0, w),
        16,
        256,
    )?;
    if !v.is_empty() || walk_end as usize != h.addr {
        return fail(format!(
            "{} regions, walk_end {:#x} (start {:#x}): a huge page was skipped",
            v.len(),
            walk_end,
            h.addr
        ));
    }
    if c.written(h.addr, h.addr + h.len)?.len() != 2 * HUGE / PAGE {
        return fail("a huge page lost WRITTEN without being reported");
    }
    Ok(())
}

/// More regions than the bounce buffer holds (512), room for all in `vec`: the call reports
/// them all and walk_end must be end, not where the last full buffer stopped a walk (a
/// caller resuming there would get regions twice). Found here, fixed in this series.
fn walk_end_after_full_bounce_buffer(c: &Ctx) -> Check {
    let pages = 2048;
    let m = new_map(pages * PAGE, libc::MAP_PRIVATE)?;
    m.madvise(0, pages, libc::MADV_NOHUGEPAGE)?;
    for i in 0..pages {
        m.write(i);
    }
    // Every other page present: 1024 separate regions.
    m.madvise(0, pages, libc::MADV_DONTNEED)?;
    for i in (0..pages).step_by(2) {
        m.write(i);
    }
    let p = PAGE_IS_PRESENT;
    let end = m.addr + pages * PAGE;
    let (v, walk_end) = c.scan(m.addr, end, 0, (0, p, 0, p), 4096, 0)?;
    if v.len() != pages / 2 {
        return fail(format!("{} regions, {} expected", v.len(), pages / 2));
    }
    if walk_end as usize != end {
        return fail(format!(
            "walk_end {walk_end:#x}, end {end:#x}: a caller resuming there gets {} regions again",
            (end - walk_end as usize) / PAGE / 2
        ));
    }
    Ok(())
}

fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t with bit 0 set, for this process.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn main() -> ExitCode {
    // MADV_PAGEOUT drains this CPU's LRU batches only: fault and page out on one CPU.
    pin_to_cpu0();
    let Ok(pagemap) = File::open("/proc/self/pagemap") else {
        println!("Bail out! /proc/self/pagemap");
        return ExitCode::from(1);
    };
    let uffd = match uffd_open(UFFD_FEATURES_WP_ASYNC) {
        Ok(fd) => fd,
        // Every case needs uffd-wp: a kernel without it (riscv64 CPUs without Svrsw60t59b,
        // CONFIG_USERFAULTFD=n) skips them all, as pagemap_ioctl does.
        Err(e)
            if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOSYS) =>
        {
            println!("TAP version 13");
            println!("1..0 # SKIP userfaultfd with WP_ASYNC: {e}");
            return ExitCode::from(4);
        }
        Err(e) => {
            println!("Bail out! userfaultfd: {e}");
            return ExitCode::from(1);
        }
    };
    let c = Ctx { pagemap, uffd };
    let cases: &[Case] = &[
        (
            "wp_matching_skips_unregistered_vma",
            wp_matching_skips_unregistered_vma,
        ),
        ("no_wp_without_wp_matching", no_wp_without_wp_matching),
        ("uffd_wp_bit_of_swapped_pages", uffd_wp_bit_of_swapped_pages),
        ("pfnzero_on_huge_zero_pmd", pfnzero_on_huge_zero_pmd),
        ("thp_backout_without_buffer", thp_backout_without_buffer),
        ("hugetlb_hole_wp", hugetlb_hole_wp),
        (
            "fast_and_generic_paths_agree_on_pte_none",
            fast_and_generic_paths_agree_on_pte_none,
        ),
        ("anon_thp_pmd_none_hole", anon_thp_pmd_none_hole),
        (
            "hugetlb_partial_wp_stops_the_walk",
            hugetlb_partial_wp_stops_the_walk,
        ),
        (
            "walk_end_after_full_bounce_buffer",
            walk_end_after_full_bounce_buffer,
        ),
    ];
    println!("TAP version 13");
    println!("1..{}", cases.len());
    let mut failed = 0;
    for (i, (name, f)) in cases.iter().enumerate() {
        match f(&c) {
            Ok(()) => println!("ok {} {name}", i + 1),
            Err(e) if e == NO_THP || e == NO_HUGETLB => println!("ok {} {name} # {e}", i + 1),
            Err(e) => {
                failed += 1;
                println!("# {name}: {e}");
                println!("not ok {} {name}", i + 1);
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
