// SPDX-License-Identifier: GPL-2.0

//! `PAGEMAP_SCAN` of `/proc/<pid>/pagemap`, in Rust.
//!
//! The same ioctl as `do_pagemap_scan()` in `fs/proc/task_mmu.c`, with the same ABI and
//! behaviour (Documentation/admin-guide/mm/pagemap.rst): the argument checks and their errnos,
//! the ten page categories and the four masks, region merging, `max_pages`, `walk_end`, the
//! bounce buffer copied out after each hold of the mmap read lock, and write-protection of
//! written pages in VMAs registered for asynchronous uffd-wp (`PM_SCAN_WP_MATCHING`,
//! `PM_SCAN_CHECK_WPASYNC`), for PTEs, transparent huge pages, hugetlb pages and holes.
//!
//! The walk runs on `kernel::mm::pagewalk`; every page-table access and change goes through it.

use core::mem::{offset_of, size_of};
use kernel::{
    alloc::{flags::GFP_KERNEL, KVec},
    bindings, current,
    ffi::{c_long, c_ulong},
    mm::{
        mmu_notifier::Event,
        pagewalk::{
            BuiltIn, Flow, Hole, HugePmdGuard, HugetlbEntry, PageWalk, PmdAction, PmdEntry,
            PteTable, VmaFilter,
        },
        pgtable::Pte,
        virt::{flags as vm, VmaRef},
        Mm,
    },
    page::PAGE_SIZE,
    prelude::*,
    task,
    uaccess::{UserPtr, UserSlice},
};

// The categories of include/uapi/linux/fs.h.
const WPALLOWED: u64 = bindings::PAGE_IS_WPALLOWED as u64;
const WRITTEN: u64 = bindings::PAGE_IS_WRITTEN as u64;
const FILE: u64 = bindings::PAGE_IS_FILE as u64;
const PRESENT: u64 = bindings::PAGE_IS_PRESENT as u64;
const SWAPPED: u64 = bindings::PAGE_IS_SWAPPED as u64;
const PFNZERO: u64 = bindings::PAGE_IS_PFNZERO as u64;
const HUGE: u64 = bindings::PAGE_IS_HUGE as u64;
const SOFT_DIRTY: u64 = bindings::PAGE_IS_SOFT_DIRTY as u64;
const GUARD: u64 = bindings::PAGE_IS_GUARD as u64;
const ACCESSED: u64 = bindings::PAGE_IS_ACCESSED as u64;

/// Every category userspace may name in a mask.
const CATEGORIES: u64 =
    WPALLOWED | WRITTEN | FILE | PRESENT | SWAPPED | PFNZERO | HUGE | SOFT_DIRTY | GUARD | ACCESSED;

// The flags of include/uapi/linux/fs.h.
const WP_MATCHING: u64 = bindings::PM_SCAN_WP_MATCHING as u64;
const CHECK_WPASYNC: u64 = bindings::PM_SCAN_CHECK_WPASYNC as u64;

/// Every flag userspace may set.
const FLAGS: u64 = WP_MATCHING | CHECK_WPASYNC;

/// `struct pm_scan_arg`, read as the `__u64` words it is made of (`Args::read()` takes them in
/// the order checked below).
const ARG_SIZE: usize = size_of::<bindings::pm_scan_arg>();
const ARG_WORDS: usize = ARG_SIZE / size_of::<u64>();
/// Offset of `walk_end` in `struct pm_scan_arg`, the only field written back.
const WALK_END_OFFSET: usize = offset_of!(bindings::pm_scan_arg, walk_end);
const _: () = {
    use bindings::pm_scan_arg as A;
    let fields = [
        offset_of!(A, size),
        offset_of!(A, flags),
        offset_of!(A, start),
        offset_of!(A, end),
        offset_of!(A, walk_end),
        offset_of!(A, vec),
        offset_of!(A, vec_len),
        offset_of!(A, max_pages),
        offset_of!(A, category_inverted),
        offset_of!(A, category_mask),
        offset_of!(A, category_anyof_mask),
        offset_of!(A, return_mask),
    ];
    assert!(fields.len() * size_of::<u64>() == ARG_SIZE);
    let mut i = 0;
    while i < fields.len() {
        assert!(fields[i] == i * size_of::<u64>());
        i += 1;
    }
};

/// `struct page_region`, kept as the three `__u64` it is made of.
type Region = [u64; 3];
const REGION_SIZE: usize = size_of::<bindings::page_region>();
const START: usize = offset_of!(bindings::page_region, start) / size_of::<u64>();
const END: usize = offset_of!(bindings::page_region, end) / size_of::<u64>();
const CATS: usize = offset_of!(bindings::page_region, categories) / size_of::<u64>();
const _: () = assert!(size_of::<Region>() == REGION_SIZE);

/// Regions buffered in the kernel between copies to userspace (`PAGEMAP_WALK_SIZE >>
/// PAGE_SHIFT`).
const BOUNCE_REGIONS: u64 = (bindings::PMD_SIZE / PAGE_SIZE) as u64;

/// The checked arguments of a call.
struct Args {
    flags: u64,
    start: usize,
    end: usize,
    walk_end: usize,
    vec: usize,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

impl Args {
    /// Reads and checks the arguments at `uarg` (`pagemap_scan_get_args()`).
    fn read(uarg: usize) -> Result<Self> {
        let raw: [u64; ARG_WORDS] = UserSlice::new(UserPtr::from_addr(uarg), ARG_SIZE)
            .reader()
            .read()?;
        let [size, flags, start, end, _, vec, vec_len, max_pages, inv, mask, anyof, ret] = raw;
        if size != ARG_SIZE as u64 {
            return Err(EINVAL);
        }
        if flags & !FLAGS != 0 || (inv | mask | anyof | ret) & !CATEGORIES != 0 {
            return Err(EINVAL);
        }
        let untag = |a: u64| UserPtr::from_addr(a as usize).untagged().addr();
        let (start, end, vec) = (untag(start), untag(end), untag(vec));
        if start % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        if !UserPtr::from_addr(start).access_ok(end.wrapping_sub(start)) {
            return Err(EFAULT);
        }
        if vec == 0 && vec_len != 0 {
            return Err(EINVAL);
        }
        // On 32-bit, C's `vec_len > SIZE_MAX` check.
        let Ok(vec_len_usize) = usize::try_from(vec_len) else {
            return Err(EINVAL);
        };
        let vec_bytes = vec_len_usize.saturating_mul(REGION_SIZE);
        if vec != 0 && !UserPtr::from_addr(vec).access_ok(vec_bytes) {
            return Err(EFAULT);
        }
        Ok(Self {
            flags,
            start,
            // `access_ok()` above keeps this below the top of the user address space.
            end: end.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1),
            walk_end: 0,
            vec,
            vec_len,
            max_pages: if max_pages == 0 {
                c_ulong::MAX as u64
            } else {
                max_pages
            },
            category_inverted: inv,
            category_mask: mask,
            category_anyof_mask: anyof,
            return_mask: ret,
        })
    }

    fn wp(&self) -> bool {
        self.flags & WP_MATCHING != 0
    }
}

/// The state of one call (`struct pagemap_scan_private`).
struct Scan {
    arg: Args,
    /// Categories any mask names: only these need computing when they cost something.
    masks_of_interest: u64,
    /// Categories of the VMA being walked.
    cur_vma_category: u64,
    /// The bounce buffer: the regions found since the last copy-out, the last one being
    /// extended; empty when the call has no output vector. Room for `buf_len` regions is
    /// allocated up front; only what is used is written.
    buf: KVec<Region>,
    /// Regions of `buf` usable before the next copy-out.
    buf_len: usize,
    found_pages: u64,
    /// Where the next copied-out region goes.
    vec_out: usize,
}

impl Scan {
    fn new(arg: Args) -> Result<Self> {
        let buf_len = arg.vec_len.min(BOUNCE_REGIONS) as usize;
        let buf = if buf_len == 0 {
            KVec::new()
        } else {
            let mut buf = KVec::with_capacity(buf_len, GFP_KERNEL)?;
            buf.push([0; 3], GFP_KERNEL)?;
            buf
        };
        Ok(Self {
            masks_of_interest: arg.category_mask | arg.category_anyof_mask | arg.return_mask,
            cur_vma_category: 0,
            vec_out: arg.vec,
            arg,
            buf,
            buf_len,
            found_pages: 0,
        })
    }

    fn has_output(&self) -> bool {
        !self.buf.is_empty()
    }

    #[inline]
    fn is_interesting_page(&self, categories: u64) -> bool {
        let c = categories ^ self.arg.category_inverted;
        let a = &self.arg;
        c & a.category_mask == a.category_mask
            && (a.category_anyof_mask == 0 || c & a.category_anyof_mask != 0)
    }

    fn is_interesting_vma(&self, categories: u64) -> bool {
        let required = self.arg.category_mask & WPALLOWED;
        (categories ^ self.arg.category_inverted) & required == required
    }

    /// Extends the current region with `addr..end` or starts a new one; false when the buffer
    /// is full.
    #[inline(always)]
    fn push_range(&mut self, categories: u64, addr: usize, end: usize) -> bool {
        let full = self.buf.len() >= self.buf_len;
        let Some(cur) = self.buf.last_mut() else {
            return false;
        };
        if addr as u64 == cur[END] && categories == cur[CATS] {
            cur[END] = end as u64;
            return true;
        }
        if cur[END] == 0 {
            // The first region after a copy-out: there is none left to fill once the user's
            // vector is full.
            if self.buf_len == 0 {
                return false;
            }
            *cur = [addr as u64, end as u64, categories];
            return true;
        }
        // Room for `buf_len` regions was allocated.
        !full
            && self
                .buf
                .push_within_capacity([addr as u64, end as u64, categories])
                .is_ok()
    }

    /// Reports `addr..*end` with `categories`; on `ENOSPC` (buffer full or `max_pages` reached)
    /// `*end` is cut to what was reported and the walk stops there.
    #[inline(always)]
    fn output(&mut self, categories: u64, addr: usize, end: &mut usize) -> Result {
        if !self.has_output() {
            return Ok(());
        }
        let categories = categories & self.arg.return_mask;
        let mut n_pages = (end.wrapping_sub(addr) / PAGE_SIZE) as u64;
        let mut ret = Ok(());
        let (total, overflow) = self.found_pages.overflowing_add(n_pages);
        if overflow || total > self.arg.max_pages {
            let too_much = total.wrapping_sub(self.arg.max_pages);
            *end = end.wrapping_sub((too_much as usize).wrapping_mul(PAGE_SIZE));
            n_pages = n_pages.wrapping_sub(too_much);
            ret = Err(ENOSPC);
        }
        if !self.push_range(categories, addr, *end) {
            *end = addr;
            n_pages = 0;
            ret = Err(ENOSPC);
        }
        self.found_pages = self.found_pages.wrapping_add(n_pages);
        if ret.is_err() {
            self.arg.walk_end = *end;
        }
        ret
    }

    /// Takes back the report of `addr..end`, the tail of the current region (a huge page that
    /// is reported page by page instead, or not at all).
    fn backout_range(&mut self, addr: usize, end: usize) {
        let Some(cur) = self.buf.last_mut() else {
            return;
        };
        if cur[START] != addr as u64 {
            cur[END] = addr as u64;
        } else {
            cur[START] = 0;
            cur[END] = 0;
        }
        self.found_pages = self
            .found_pages
            .wrapping_sub((end.wrapping_sub(addr) / PAGE_SIZE) as u64);
    }

    /// Copies the buffered regions to userspace; returns how many.
    fn flush_buffer(&mut self) -> Result<usize> {
        let Some(last) = self.buf.last() else {
            return Ok(0);
        };
        let n = self.buf.len() - 1 + usize::from(last[END] != last[START]);
        if n == 0 {
            return Ok(0);
        }
        let regions = self.buf.get(..n).ok_or(EINVAL)?;
        let bytes = regions.as_bytes();
        UserSlice::new(UserPtr::from_addr(self.vec_out), bytes.len())
            .writer()
            .write_slice(bytes)?;
        self.arg.vec_len = self.arg.vec_len.wrapping_sub(n as u64);
        self.vec_out = self.vec_out.wrapping_add(bytes.len());
        self.buf.truncate(1);
        self.buf_len = self.buf_len.min(self.arg.vec_len as usize);
        if let Some(first) = self.buf.first_mut() {
            first[START] = 0;
            first[END] = 0;
        }
        Ok(n)
    }

    /// The WRITTEN/ACCESSED categories of an entry without uffd-wp state in `vma`.
    fn unprotected(vma: &VmaRef) -> u64 {
        let mut c = 0;
        if vma.userfaultfd_wp() {
            c |= WRITTEN;
        }
        if vma.userfaultfd_rwp() {
            c |= ACCESSED;
        }
        c
    }

    /// Categories of the PTE `pte` of `addr` (`pagemap_page_category()`).
    fn page_category(&self, t: &PteTable<'_>, addr: usize, pte: Pte) -> u64 {
        let vma = t.vma();
        if pte.is_none() {
            // In a uffd-wp VMA an empty entry was zapped after registration: written.
            return if vma.userfaultfd_wp() { WRITTEN } else { 0 };
        }
        let want_file = self.masks_of_interest & FILE != 0;
        let mut c;
        if pte.is_present() {
            c = PRESENT;
            if !pte.is_uffd() {
                c |= Self::unprotected(vma);
            }
            if want_file && t.maps_file_page(addr) {
                c |= FILE;
            }
            if pte.is_zero_pfn() {
                c |= PFNZERO;
            }
        } else {
            c = SWAPPED;
            if !pte.is_swp_uffd_any() {
                c |= Self::unprotected(vma);
            }
            if pte.is_guard_marker() {
                c |= GUARD;
            } else if want_file && t.maps_file_page(addr) {
                c |= FILE;
            }
        }
        if pte.is_soft_dirty() {
            c |= SOFT_DIRTY;
        }
        c
    }

    /// Categories of a huge PMD (`pagemap_thp_category()`).
    fn thp_category(&self, h: &HugePmdGuard<'_>, vma: &VmaRef) -> u64 {
        let pmd = h.get();
        let mut c = HUGE;
        if pmd.is_none() {
            return c;
        }
        if pmd.is_present() {
            c |= PRESENT;
            if !pmd.is_uffd() {
                c |= Self::unprotected(vma);
            }
            if pmd.is_huge_zero() {
                c |= PFNZERO;
            }
            if pmd.is_soft_dirty() {
                c |= SOFT_DIRTY;
            }
        } else {
            c |= SWAPPED;
            if !pmd.is_swp_uffd() {
                c |= Self::unprotected(vma);
            }
            if pmd.is_swp_soft_dirty() {
                c |= SOFT_DIRTY;
            }
        }
        // A present page or a migration entry's folio.
        if self.masks_of_interest & FILE != 0 && h.maps_file_page() {
            c |= FILE;
        }
        c
    }

    /// Categories of a hugetlb entry (`pagemap_hugetlb_category()`); `file` says whether a
    /// present entry maps a non-anonymous page.
    fn hugetlb_category(vma: &VmaRef, pte: Pte, file: impl FnOnce() -> bool) -> u64 {
        let mut c = HUGE;
        if pte.is_none() {
            return c;
        }
        // File-backed hugetlb pages are never swapped: FILE is only looked for when present.
        if pte.is_present() {
            c |= PRESENT;
            if !pte.is_huge_uffd() {
                c |= Self::unprotected(vma);
            }
            if file() {
                c |= FILE;
            }
            if pte.is_zero_pfn() {
                c |= PFNZERO;
            }
        } else {
            c |= SWAPPED;
            if !pte.is_swp_uffd_any() {
                c |= Self::unprotected(vma);
            }
        }
        if pte.is_soft_dirty() {
            c |= SOFT_DIRTY;
        }
        c
    }

    /// A huge PMD (`pagemap_scan_thp_entry()`): `None` when the PMD is not huge, or was split
    /// to write-protect part of it, and its PTEs are to be scanned instead.
    fn thp_entry(&mut self, pmd: &mut PmdEntry<'_>, start: usize, end: usize) -> Option<Result> {
        let vma = pmd.vma();
        let mut end = end;
        let mut huge = pmd.lock_huge()?;
        let categories = self.cur_vma_category | self.thp_category(&huge, vma);
        if !self.is_interesting_page(categories) {
            return Some(Ok(()));
        }
        let ret = self.output(categories, start, &mut end);
        if start == end || !self.arg.wp() || categories & WRITTEN == 0 {
            return Some(ret);
        }
        if end != start + bindings::PMD_SIZE {
            // Only part of the huge page is write-protected: split it and report its PTEs.
            drop(huge);
            pmd.split_huge();
            self.backout_range(start, end);
            return None;
        }
        huge.make_uffd_wp();
        Some(ret)
    }

    /// The PTEs of `start..end` (the rest of `pagemap_scan_pmd_entry()`).
    fn pte_range(&mut self, t: &mut PteTable<'_>, start: usize, end: usize) -> Result {
        let vma = t.vma();
        let wp = self.arg.wp();
        let marked = |pte: Pte| (pte.is_present() && pte.is_uffd()) || pte.is_swp_uffd_any();
        let pages = (start..end).step_by(PAGE_SIZE);

        if wp && !self.has_output() {
            // Write-protect everything not yet protected, whatever the masks say.
            for addr in pages {
                if t.get(addr).is_some_and(|pte| !marked(pte)) {
                    t.make_uffd_wp(addr);
                }
            }
            return Ok(());
        }

        let a = &self.arg;
        let mut ret = Ok(());
        if vma.userfaultfd_wp()
            && a.category_anyof_mask == 0
            && a.category_inverted == 0
            && a.category_mask == WRITTEN
            && a.return_mask == WRITTEN
        {
            // Only WRITTEN is asked for: no other category needs computing.
            for addr in pages {
                let Some(pte) = t.get(addr) else { break };
                if marked(pte) {
                    continue;
                }
                let mut next = addr + PAGE_SIZE;
                ret = self.output(self.cur_vma_category | WRITTEN, addr, &mut next);
                if next == addr {
                    break;
                }
                if wp {
                    t.make_uffd_wp(addr);
                }
            }
            return ret;
        }

        for addr in pages {
            let Some(pte) = t.get(addr) else { break };
            let categories = self.cur_vma_category | self.page_category(t, addr, pte);
            if !self.is_interesting_page(categories) {
                continue;
            }
            let mut next = addr + PAGE_SIZE;
            ret = self.output(categories, addr, &mut next);
            if next == addr {
                break;
            }
            if wp && categories & WRITTEN != 0 {
                t.make_uffd_wp(addr);
            }
        }
        ret
    }
}

#[vtable]
impl PageWalk for Scan {
    type OwnerModule = BuiltIn;

    fn test_walk(&mut self, vma: &VmaRef, _start: usize, _end: usize) -> Result<VmaFilter> {
        let wp_allowed = vma.userfaultfd_wp_async() && vma.userfaultfd_wp_use_markers();
        if !wp_allowed {
            // The caller asked for failure on VMAs that cannot be write-protected...
            if self.arg.flags & CHECK_WPASYNC != 0 {
                return Err(EPERM);
            }
            // ... or to write-protect, skipping them silently.
            if self.arg.wp() {
                return Ok(VmaFilter::Skip);
            }
        }
        if vma.flags() & vm::PFNMAP != 0 {
            return Ok(VmaFilter::Skip);
        }
        let mut categories = 0;
        if wp_allowed {
            categories |= WPALLOWED;
        }
        // VM_SOFTDIRTY is 0 without CONFIG_MEM_SOFT_DIRTY.
        #[allow(clippy::bad_bit_mask)]
        let soft_dirty_vma = vma.flags() & vm::SOFTDIRTY != 0;
        if soft_dirty_vma {
            categories |= SOFT_DIRTY;
        }
        if !self.is_interesting_vma(categories) {
            return Ok(VmaFilter::Skip);
        }
        self.cur_vma_category = categories;
        Ok(VmaFilter::Walk)
    }

    fn pmd_entry(&mut self, pmd: &mut PmdEntry<'_>, start: usize, end: usize) -> Result<PmdAction> {
        if let Some(ret) = self.thp_entry(pmd, start, end) {
            return ret.map(|()| PmdAction::Next);
        }
        let Some(mut t) = pmd.map_ptes() else {
            // The PTE table went away under us: look at the PMD again.
            return Ok(PmdAction::Again);
        };
        let ret = self.pte_range(&mut t, start, end);
        // Dropping the table flushes what was write-protected, then unlocks it.
        drop(t);
        task::cond_resched();
        ret.map(|()| PmdAction::Next)
    }

    fn pte_hole(
        &mut self,
        hole: &mut Hole<'_>,
        addr: usize,
        end: usize,
        _depth: i32,
    ) -> Result<Flow> {
        let Some(vma) = hole.vma() else {
            return Ok(Flow::Continue);
        };
        let mut end = end;
        // In a uffd-wp VMA an unpopulated range was zapped after registration (which installs
        // markers): written. Not so for hugetlb, see hugetlb_category().
        let mut categories = self.cur_vma_category;
        if vma.userfaultfd_wp() && !vma.is_hugetlb() {
            categories |= WRITTEN;
        }
        if !self.is_interesting_page(categories) {
            return Ok(Flow::Continue);
        }
        let ret = self.output(categories, addr, &mut end);
        if addr == end || !self.arg.wp() {
            return ret.map(|()| Flow::Continue);
        }
        hole.make_uffd_wp(addr, end)?;
        ret.map(|()| Flow::Continue)
    }

    fn hugetlb_entry(
        &mut self,
        entry: &mut HugetlbEntry<'_>,
        start: usize,
        end: usize,
    ) -> Result<Flow> {
        let vma = entry.vma();
        let mut end = end;
        if !self.arg.wp() {
            // Not write-protecting: no lock needed.
            let pte = entry.get();
            let categories =
                self.cur_vma_category | Self::hugetlb_category(vma, pte, || entry.maps_file_page());
            if !self.is_interesting_page(categories) {
                return Ok(Flow::Continue);
            }
            return self
                .output(categories, start, &mut end)
                .map(|()| Flow::Continue);
        }

        let size = entry.size();
        let mut g = entry.lock().ok_or(EINVAL)?;
        let pte = g.get();
        let categories =
            self.cur_vma_category | Self::hugetlb_category(vma, pte, || g.maps_file_page());
        if !self.is_interesting_page(categories) {
            return Ok(Flow::Continue);
        }
        let ret = self.output(categories, start, &mut end);
        if start == end || categories & WRITTEN == 0 {
            return ret.map(|()| Flow::Continue);
        }
        if end != start + size {
            // A hugetlb page cannot be write-protected in part: take back its report and stop
            // the walk before it.
            self.backout_range(start, end);
            self.arg.walk_end = start;
            return Err(ENOSPC);
        }
        g.make_uffd_wp();
        ret.map(|()| Flow::Continue)
    }
}

/// `PAGEMAP_SCAN` on `mm` with the user argument at `uarg` (`do_pagemap_scan()`).
fn pagemap_scan(mm: &Mm, uarg: usize) -> Result<usize> {
    let mm = mm.mmget_not_zero().ok_or(ESRCH)?;
    let mut p = Scan::new(Args::read(uarg)?)?;
    let end = p.arg.end;
    let mut n_ranges_out = 0usize;
    let mut ret = Ok(());
    let mut walk_start = p.arg.start;

    while walk_start < end {
        if current!().fatal_signal_pending() {
            ret = Err(EINTR);
            break;
        }
        let guard = match mm.mmap_read_lock_killable() {
            Ok(guard) => guard,
            Err(e) => {
                ret = Err(e);
                break;
            }
        };
        let walked = if p.arg.wp() {
            // Protection changes for the range happen under the lock.
            guard.invalidate_range(Event::ProtectionVma, walk_start, end, || {
                guard.walk_page_range(walk_start, end, &mut p)
            })
        } else {
            guard.walk_page_range(walk_start, end, &mut p)
        };
        drop(guard);
        ret = walked.map(|_| ());

        // Copy out with the lock dropped: userspace memory may fault.
        match p.flush_buffer() {
            Ok(n) => n_ranges_out += n,
            Err(e) => ret = Err(e),
        }
        // ENOSPC is the walk stopping at a full buffer or at max_pages, or before a page that
        // does not fit whole (then it stopped where it began).
        if ret != Err(ENOSPC)
            || p.arg.vec_len == 0
            || p.found_pages == p.arg.max_pages
            || p.arg.walk_end == walk_start
        {
            break;
        }
        walk_start = p.arg.walk_end;
    }

    // The last walk went to the end: walk_end may still hold where an earlier walk stopped on
    // a full bounce buffer.
    if ret.is_ok() {
        p.arg.walk_end = end;
    }
    let ret = match ret {
        Ok(()) => Ok(n_ranges_out),
        Err(e) if e == ENOSPC => Ok(n_ranges_out),
        Err(e) => Err(e),
    };
    if p.arg.walk_end == 0 {
        p.arg.walk_end = end;
    }
    let walk_end = p.arg.walk_end as u64;
    UserSlice::new(
        UserPtr::from_addr(uarg).wrapping_byte_add(WALK_END_OFFSET),
        8,
    )
    .writer()
    .write(&walk_end)
    .map_err(|_| EFAULT)?;
    ret
}

/// The `PAGEMAP_SCAN` ioctl of a pagemap file, called by `do_pagemap_cmd()`.
///
/// # Safety
///
/// `mm` is the `mm_struct` of the pagemap file (its `private_data`), on which the open file
/// holds an `mmgrab()` reference for the whole call.
#[no_mangle]
pub unsafe extern "C" fn rust_pagemap_scan(mm: *mut bindings::mm_struct, uarg: c_ulong) -> c_long {
    // SAFETY: By the function's safety requirements `mm` is valid and stays so for the call.
    let mm = unsafe { Mm::from_raw(mm) };
    match pagemap_scan(mm, uarg) {
        Ok(n) => n as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}
