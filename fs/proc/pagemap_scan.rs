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
//! And `PM_SCAN_CLEAR_SOFT_DIRTY`, which clears the soft-dirty state of the pages it reports,
//! atomically with the report, as `do_pagemap_scan()` does: the call takes the mmap lock for
//! writing (killable) and walks with `PGWALK_WRLOCK`, so no page fault, with the mmap lock or
//! only the VMA lock, runs meanwhile; it clears PTEs and huge PMDs as `clear_refs` does, splits
//! an anonymous transparent huge page it reports only in part (the huge mapping of a file, shmem
//! or the huge zero page reported in part stays as it is, soft-dirty), clears `VM_SOFTDIRTY`
//! only from a VMA every page of which it reported (no VMA is split for it), brackets the changes
//! with an `MMU_NOTIFY_SOFT_DIRTY` invalidation and flushes every cleared entry from the TLB
//! before the lock is dropped. Hugetlb pages are reported and never cleared.
//!
//! The walk runs on `kernel::mm::pagewalk`; every page-table access and change goes through it.

use core::marker::PhantomData;
use core::mem::{
    offset_of,
    size_of, //
};
use core::ops::ControlFlow;
use kernel::mm::pgtable::PMD_SIZE;
use kernel::{
    alloc::{
        flags::GFP_KERNEL,
        KVec, //
    },
    bindings,
    current,
    ffi::{
        c_long,
        c_ulong, //
    },
    mm::{
        pagewalk::{
            BuiltIn,
            ClearSoftDirty,
            Hole,
            HugePmdGuard,
            HugetlbEntry,
            Mode,
            PageWalk,
            PmdAction,
            PmdEntry,
            PteRun,
            PteSlot,
            PteTable,
            ReadOnly,
            UffdWp,
            VmaEnd,
            VmaFilter, //
        },
        pgtable::{
            self,
            Pte, //
        },
        virt::{
            flags as vm,
            VmaRef, //
        },
        Mm,
        MmWithUser, //
    },
    page::{
        PAGE_MASK,
        PAGE_SIZE, //
    },
    prelude::*,
    task::{
        self,
        PtraceMode,
        Task, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi, //
};

#[path = "pagemap_scan/mode.rs"]
mod mode;

use mode::ScanMode;

// The categories of include/uapi/linux/fs.h.
const WPALLOWED: u64 = uapi::PAGE_IS_WPALLOWED as u64;
const WRITTEN: u64 = uapi::PAGE_IS_WRITTEN as u64;
const FILE: u64 = uapi::PAGE_IS_FILE as u64;
const PRESENT: u64 = uapi::PAGE_IS_PRESENT as u64;
const SWAPPED: u64 = uapi::PAGE_IS_SWAPPED as u64;
const PFNZERO: u64 = uapi::PAGE_IS_PFNZERO as u64;
const HUGE: u64 = uapi::PAGE_IS_HUGE as u64;
const SOFT_DIRTY: u64 = uapi::PAGE_IS_SOFT_DIRTY as u64;
const GUARD: u64 = uapi::PAGE_IS_GUARD as u64;
const ACCESSED: u64 = uapi::PAGE_IS_ACCESSED as u64;

/// Every category userspace may name in a mask.
const CATEGORIES: u64 =
    WPALLOWED | WRITTEN | FILE | PRESENT | SWAPPED | PFNZERO | HUGE | SOFT_DIRTY | GUARD | ACCESSED;

// The flags of include/uapi/linux/fs.h.
const WP_MATCHING: u64 = uapi::PM_SCAN_WP_MATCHING as u64;
const CHECK_WPASYNC: u64 = uapi::PM_SCAN_CHECK_WPASYNC as u64;
const CLEAR_SOFT_DIRTY: u64 = uapi::PM_SCAN_CLEAR_SOFT_DIRTY as u64;

/// Every flag userspace may set; clearing soft-dirty state needs soft-dirty tracking.
const FLAGS: u64 = WP_MATCHING
    | CHECK_WPASYNC
    | if cfg!(CONFIG_MEM_SOFT_DIRTY) {
        CLEAR_SOFT_DIRTY
    } else {
        0
    };

/// `struct pm_scan_arg`, read as the `__u64` words it is made of (`Args::read()` takes them in
/// the order checked below).
const ARG_SIZE: usize = size_of::<uapi::pm_scan_arg>();
const ARG_WORDS: usize = ARG_SIZE / size_of::<u64>();
/// Offset of `walk_end` in `struct pm_scan_arg`, the only field written back.
const WALK_END_OFFSET: usize = offset_of!(uapi::pm_scan_arg, walk_end);
const _: () = {
    use uapi::pm_scan_arg as A;
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
const REGION_SIZE: usize = size_of::<uapi::page_region>();
const START: usize = offset_of!(uapi::page_region, start) / size_of::<u64>();
const END: usize = offset_of!(uapi::page_region, end) / size_of::<u64>();
const CATS: usize = offset_of!(uapi::page_region, categories) / size_of::<u64>();
const _: () = assert!(size_of::<Region>() == REGION_SIZE);

/// Regions buffered in the kernel between copies to userspace (`PAGEMAP_WALK_SIZE >>
/// PAGE_SHIFT`).
const BOUNCE_REGIONS: u64 = (PMD_SIZE / PAGE_SIZE) as u64;

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
        if flags & CLEAR_SOFT_DIRTY != 0 {
            // Clearing soft-dirty state is not write-protection, nor combined with a check that
            // may fail the call after pages were cleared; it needs soft-dirty tracking in this
            // machine's page tables (some riscv CPUs have none).
            if flags & (WP_MATCHING | CHECK_WPASYNC) != 0 || !pgtable::soft_dirty_supported() {
                return Err(EINVAL);
            }
            // It clears what it reports, so it must report soft-dirty pages only: a caller
            // would otherwise lose state it was never told of.
            if mask & SOFT_DIRTY == 0 || inv & SOFT_DIRTY != 0 {
                return Err(EINVAL);
            }
        }
        let untag = |a: u64| UserPtr::from_addr(a as usize).untagged().addr();
        let (start, end, vec) = (untag(start), untag(end), untag(vec));
        if start & !PAGE_MASK != 0 {
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
            end: end.wrapping_add(PAGE_SIZE - 1) & PAGE_MASK,
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

    fn clear(&self) -> bool {
        self.flags & CLEAR_SOFT_DIRTY != 0
    }
}

/// The loop [`Scan::pte_range`] runs over the entries of a PTE table.
#[derive(Clone, Copy)]
enum PteLoop {
    /// Write-protect every entry not yet protected (`PM_SCAN_WP_MATCHING` without output).
    WpAll,
    /// Report the entries not yet protected as written, and write-protect them.
    ///
    /// These are Wine's masks: `PM_SCAN_WP_MATCHING`, only `PAGE_IS_WRITTEN` asked for and
    /// returned, in a uffd-wp VMA.
    Written,
    /// Report and clear runs of soft-dirty entries.
    ///
    /// These are a dirty-memory tracker's masks: only `PAGE_IS_SOFT_DIRTY` asked for and returned,
    /// no `PM_SCAN_WP_MATCHING`, and the VMA is not soft-dirty as a whole.
    SoftDirtyRuns,
    /// The soft-dirty entries: the masks require `PAGE_IS_SOFT_DIRTY` (always with
    /// `PM_SCAN_CLEAR_SOFT_DIRTY`) and the VMA is not soft-dirty as a whole.
    SoftDirty,
    /// The entries that are not empty: an empty entry's categories do not match (CRIU's masks).
    NotEmpty,
    /// Every entry.
    All,
}

/// The [`PteLoop`] of each kind of VMA.
///
/// Which loop a VMA's tables get depends on the masks of the call and on three bits of the VMA:
/// whether it is registered for uffd-wp and whether its categories have `PAGE_IS_WPALLOWED` and
/// `PAGE_IS_SOFT_DIRTY`. The call works out all eight choices when it starts ([`Scan::pte_loop`]),
/// and a VMA looks its own up in [`PageWalk::test_walk`]: a walk of many small VMAs does not
/// compare masks for each.
struct PteLoops([PteLoop; 8]);

impl PteLoops {
    /// The VMA categories the entry `i` of the table is for.
    fn categories(i: usize) -> u64 {
        (if i & 2 != 0 { WPALLOWED } else { 0 }) | (if i & 4 != 0 { SOFT_DIRTY } else { 0 })
    }

    /// The loop of a VMA with the categories `vma_categories` (of `PAGE_IS_WPALLOWED` and
    /// `PAGE_IS_SOFT_DIRTY`), registered for uffd-wp if `uffd_wp`.
    #[inline(always)]
    fn get(&self, uffd_wp: bool, vma_categories: u64) -> PteLoop {
        let i = usize::from(uffd_wp)
            | (usize::from(vma_categories & WPALLOWED != 0) << 1)
            | (usize::from(vma_categories & SOFT_DIRTY != 0) << 2);
        self.0[i & 7]
    }
}

/// The state of one call (`struct pagemap_scan_private`).
struct Scan<M> {
    arg: Args,
    /// Categories any mask names: only these need computing when they cost something.
    masks_of_interest: u64,
    /// Categories of the VMA being walked.
    cur_vma_category: u64,
    /// The WRITTEN/ACCESSED categories an entry without uffd-wp state has in the VMA being
    /// walked ([`Scan::unprotected`]), looked up once per VMA rather than per entry.
    cur_vma_unprotected: u64,
    /// The loop of [`Scan::pte_range`] for each kind of VMA, worked out once per call.
    pte_loops: PteLoops,
    /// The loop of [`Scan::pte_range`] for the VMA being walked.
    cur_vma_loop: PteLoop,
    /// The bounce buffer: the regions found since the last copy-out.
    ///
    /// The last one is being extended; the buffer is empty when the call has no output vector. Room
    /// for `buf_len` regions is allocated up front; only what is used is written.
    buf: KVec<Region>,
    /// Regions of `buf` usable before the next copy-out.
    buf_len: usize,
    found_pages: u64,
    /// The walk stopped before a hugetlb page it could not write-protect whole.
    stopped_before_huge: bool,
    /// Where the next copied-out region goes.
    vec_out: usize,
    /// Clearing: what is reported in the VMA being walked is cleared (not in hugetlb VMAs, nor
    /// in a `VM_SOFTDIRTY` VMA that keeps its flag, where it would change nothing a reader sees).
    clear_entries: bool,
    /// Clearing: the VMA being walked has `VM_SOFTDIRTY` and lies whole in the walk; the flag
    /// goes if every page of it is reported ([`PageWalk::post_vma`]).
    clear_vma_flag: bool,
    /// Clearing: pages reported in the VMA being walked.
    vma_reported: u64,
    /// Clearing: a huge page of the VMA being walked was split and its PTEs went away before they
    /// could be cleared: the VMA gets `VM_SOFTDIRTY` ([`PageWalk::post_vma`]).
    mark_cur_vma: bool,
    /// What the walks may change ([`ScanMode`]).
    _mode: PhantomData<M>,
}

impl<M: ScanMode> Scan<M> {
    fn new(arg: Args) -> Result<Self> {
        let buf_len = arg.vec_len.min(BOUNCE_REGIONS) as usize;
        let buf = if buf_len == 0 {
            KVec::new()
        } else {
            let mut buf = KVec::with_capacity(buf_len, GFP_KERNEL)?;
            buf.push([0; 3], GFP_KERNEL)?;
            buf
        };
        let mut scan = Self {
            masks_of_interest: arg.category_mask | arg.category_anyof_mask | arg.return_mask,
            cur_vma_category: 0,
            cur_vma_unprotected: 0,
            pte_loops: PteLoops([PteLoop::All; 8]),
            cur_vma_loop: PteLoop::All,
            vec_out: arg.vec,
            arg,
            buf,
            buf_len,
            found_pages: 0,
            stopped_before_huge: false,
            clear_entries: false,
            clear_vma_flag: false,
            vma_reported: 0,
            mark_cur_vma: false,
            _mode: PhantomData,
        };
        scan.pte_loops = PteLoops(core::array::from_fn(|i| {
            scan.pte_loop(i & 1 != 0, PteLoops::categories(i))
        }));
        Ok(scan)
    }

    /// The loop of [`Scan::pte_range`] for the PTE tables of a VMA.
    ///
    /// For a VMA with the categories `vma_categories`, registered for uffd-wp if `uffd_wp`, it is
    /// the fastest loop that reports and changes what the entry-by-entry loop over every entry
    /// would.
    fn pte_loop(&self, uffd_wp: bool, vma_categories: u64) -> PteLoop {
        let a = &self.arg;
        let only = |c: u64| {
            a.category_anyof_mask == 0
                && a.category_inverted == 0
                && a.category_mask == c
                && a.return_mask == c
        };
        let soft_dirty_vma = vma_categories & SOFT_DIRTY != 0;
        let empty = vma_categories | Self::empty_category(uffd_wp);
        if a.wp() && !self.has_output() {
            PteLoop::WpAll
        } else if only(WRITTEN) && uffd_wp {
            PteLoop::Written
        } else if only(SOFT_DIRTY) && !a.wp() && !soft_dirty_vma {
            PteLoop::SoftDirtyRuns
        } else if a.category_mask & !a.category_inverted & SOFT_DIRTY != 0 && !soft_dirty_vma {
            PteLoop::SoftDirty
        } else if !self.is_interesting_page(empty) {
            PteLoop::NotEmpty
        } else {
            PteLoop::All
        }
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
        self.buf.len() < self.buf_len
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
        let n_pages = (end.wrapping_sub(addr) / PAGE_SIZE) as u64;
        let (total, overflow) = self.found_pages.overflowing_add(n_pages);
        if overflow || total > self.arg.max_pages {
            return self.output_past_max(categories, addr, end);
        }
        if !self.push_range(categories & self.arg.return_mask, addr, *end) {
            *end = addr;
            self.arg.walk_end = addr;
            return Err(ENOSPC);
        }
        self.found_pages = total;
        Ok(())
    }

    /// [`Scan::output`] of a range that goes past `max_pages`.
    ///
    /// What fits is reported, `*end` is cut there and the walk stops. Out of the common path, which
    /// it would only slow.
    #[cold]
    #[inline(never)]
    fn output_past_max(&mut self, categories: u64, addr: usize, end: &mut usize) -> Result {
        let mut n_pages = (end.wrapping_sub(addr) / PAGE_SIZE) as u64;
        let total = self.found_pages.wrapping_add(n_pages);
        let too_much = total.wrapping_sub(self.arg.max_pages);
        *end = end.wrapping_sub((too_much as usize).wrapping_mul(PAGE_SIZE));
        n_pages = n_pages.wrapping_sub(too_much);
        if !self.push_range(categories & self.arg.return_mask, addr, *end) {
            *end = addr;
            n_pages = 0;
        }
        self.found_pages = self.found_pages.wrapping_add(n_pages);
        self.arg.walk_end = *end;
        Err(ENOSPC)
    }

    /// Reports `addr..*end` as [`Scan::output`] does and, in a walk that clears, counts the
    /// pages reported in the VMA (its `VM_SOFTDIRTY` goes only when all of them were).
    #[inline(always)]
    fn report(&mut self, categories: u64, addr: usize, end: &mut usize) -> Result {
        let ret = self.output(categories, addr, end);
        if M::CLEARS {
            // `*end` is not below `addr`: no wrap.
            let n = (end.wrapping_sub(addr) / PAGE_SIZE) as u64;
            self.vma_reported = self.vma_reported.wrapping_add(n);
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

    /// Categories of an empty PTE of a VMA, registered for uffd-wp if `uffd_wp`: there an empty
    /// entry was zapped after registration, so written.
    #[inline(always)]
    fn empty_category(uffd_wp: bool) -> u64 {
        if uffd_wp {
            WRITTEN
        } else {
            0
        }
    }

    /// Categories of the PTE `pte` of the slot `e` (`pagemap_page_category()`); whether it maps
    /// a file page is asked only when a mask names `PAGE_IS_FILE`.
    #[inline(always)]
    fn page_category(&self, e: &PteSlot<'_, '_, M>, pte: Pte) -> u64 {
        let vma = e.vma();
        if pte.is_none() {
            return Self::empty_category(vma.userfaultfd_wp());
        }
        let want_file = self.masks_of_interest & FILE != 0;
        let mut c;
        if pte.is_present() {
            c = PRESENT;
            if !pte.is_uffd() {
                c |= self.cur_vma_unprotected;
            }
            if want_file && e.maps_file_page() {
                c |= FILE;
            }
            if pte.is_zero_pfn() {
                c |= PFNZERO;
            }
        } else {
            c = SWAPPED;
            if !pte.is_swp_uffd_any() {
                c |= self.cur_vma_unprotected;
            }
            if pte.is_guard_marker() {
                c |= GUARD;
            } else if want_file && e.maps_file_page() {
                c |= FILE;
            }
        }
        if pte.is_soft_dirty() {
            c |= SOFT_DIRTY;
        }
        c
    }

    /// Categories of a huge PMD (`pagemap_thp_category()`).
    fn thp_category(&self, h: &HugePmdGuard<'_, M>) -> u64 {
        let pmd = h.get();
        let mut c = HUGE;
        if pmd.is_none() {
            return c;
        }
        if pmd.is_present() {
            c |= PRESENT;
            if !pmd.is_uffd() {
                c |= self.cur_vma_unprotected;
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
                c |= self.cur_vma_unprotected;
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
    fn thp_entry(&mut self, pmd: &mut PmdEntry<'_, M>, start: usize, end: usize) -> Option<Result> {
        let vma = pmd.vma();
        let mut end = end;
        let mut huge = pmd.lock_huge()?;
        let categories = self.cur_vma_category | self.thp_category(&huge);
        if !self.is_interesting_page(categories) {
            return Some(Ok(()));
        }
        let ret = self.report(categories, start, &mut end);
        if start == end {
            return Some(ret);
        }
        if M::CLEARS && self.arg.clear() {
            if !self.clear_entries {
                return Some(ret);
            }
            if end != start + PMD_SIZE {
                // Reported in part. A VM_SOFTDIRTY VMA keeps its flag then: nothing to clear.
                // The split of a file, shmem or huge-zero PMD only zaps it, which would lose the
                // state of the part not reported: leave it soft-dirty (over-reporting). Split an
                // anonymous one, whose PTEs keep the bit, and clear the part reported.
                if self.cur_vma_category & SOFT_DIRTY != 0
                    || !vma.is_anonymous()
                    || categories & PFNZERO != 0
                {
                    return Some(ret);
                }
                drop(huge);
                pmd.split_huge();
                let cleared = pmd.with_ptes(|t| {
                    (start..end)
                        .step_by(PAGE_SIZE)
                        .try_for_each(|addr| M::clear_pte(t, addr))
                });
                let Some(cleared) = cleared else {
                    // The PTE table went away with the entries: lose nothing, over-report.
                    self.mark_cur_vma = true;
                    return Some(ret);
                };
                return Some(cleared.and(ret));
            }
            return Some(M::clear_huge(&mut huge).and(ret));
        }
        if !self.arg.wp() || categories & WRITTEN == 0 {
            return Some(ret);
        }
        if end != start + PMD_SIZE {
            // Only part of the huge page is write-protected: split it and report its PTEs.
            drop(huge);
            pmd.split_huge();
            self.backout_range(start, end);
            return None;
        }
        Some(M::wp_huge(&mut huge).and(ret))
    }

    /// One PTE of [`Scan::pte_range`]'s generic loop.
    ///
    /// It is reported if it matches, then write-protected (`PM_SCAN_WP_MATCHING`, written) or its
    /// soft-dirty state cleared (`PM_SCAN_CLEAR_SOFT_DIRTY`). `ret` is the result of the last
    /// report.
    #[inline(always)]
    fn pte_report(
        &mut self,
        e: &mut PteSlot<'_, '_, M>,
        pte: Pte,
        ret: &mut Result,
    ) -> ControlFlow<()> {
        let categories = self.cur_vma_category | self.page_category(e, pte);
        if !self.is_interesting_page(categories) {
            return ControlFlow::Continue(());
        }
        self.report_entry(e, categories, ret)
    }

    /// Reports the entry of `e` with `categories`, then changes it as the call asks.
    ///
    /// It is write-protected (`PM_SCAN_WP_MATCHING`, written) or its soft-dirty state cleared
    /// (`PM_SCAN_CLEAR_SOFT_DIRTY`); breaks when the report stops the walk. `ret` is the result of
    /// the report.
    #[inline(always)]
    fn report_entry(
        &mut self,
        e: &mut PteSlot<'_, '_, M>,
        categories: u64,
        ret: &mut Result,
    ) -> ControlFlow<()> {
        let addr = e.addr();
        // A page of the PTE table's range, below its end: no wrap.
        let mut next = addr.wrapping_add(PAGE_SIZE);
        *ret = self.report(categories, addr, &mut next);
        if next == addr {
            return ControlFlow::Break(());
        }
        if self.arg.wp() && categories & WRITTEN != 0 {
            M::wp_slot(e);
        } else if M::CLEARS && self.clear_entries {
            M::clear_slot(e);
        }
        ControlFlow::Continue(())
    }

    /// [`PteLoop::SoftDirtyRuns`]: each run of soft-dirty entries is reported as one range.
    ///
    /// The other loops would report it page by page (a run that does not fit is cut where they
    /// would stop); what was reported is cleared in one pass. A function of its own, so that the
    /// per-run work keeps its state in registers.
    #[inline(never)]
    fn soft_dirty_runs(&mut self, t: &mut PteTable<'_, M>) -> Result {
        let categories = self.cur_vma_category | SOFT_DIRTY;
        let mut ret = Ok(());
        t.for_each_run(Pte::is_soft_dirty, |run| {
            let mut next = run.end();
            ret = self.report(categories, run.start(), &mut next);
            M::clear_run(run, next);
            if next != run.end() {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        ret
    }

    /// The PTEs of the table, with the VMA's loop ([`PteLoop`]).
    ///
    /// The table's range is that of the `pmd_entry` call (the rest of `pagemap_scan_pmd_entry()`).
    /// Entries that cannot match are skipped on a bit or two, before any category is computed. Each
    /// loop has a closure of its own: called from one place, it is inlined into it.
    fn pte_range(&mut self, t: &mut PteTable<'_, M>) -> Result {
        // A present entry has the uffd-wp bit, a software entry the swap uffd-wp bit or a marker.
        let marked = |pte: Pte| {
            if pte.is_present() {
                pte.is_uffd()
            } else {
                pte.is_swp_uffd_any()
            }
        };
        let mut ret = Ok(());
        match self.cur_vma_loop {
            PteLoop::WpAll => t.for_each_entry(
                |pte| !marked(pte),
                |e, _| {
                    M::wp_slot(e);
                    ControlFlow::Continue(())
                },
            ),
            PteLoop::Written => {
                // No other category needs computing.
                let categories = self.cur_vma_category | WRITTEN;
                t.for_each_entry(
                    |pte| !marked(pte),
                    |e, _| self.report_entry(e, categories, &mut ret),
                );
            }
            PteLoop::SoftDirtyRuns => return self.soft_dirty_runs(t),
            PteLoop::SoftDirty => t.for_each_entry(Pte::is_soft_dirty, |e, pte| {
                self.pte_report(e, pte, &mut ret)
            }),
            PteLoop::NotEmpty => t.for_each_entry(
                |pte| !pte.is_none(),
                |e, pte| self.pte_report(e, pte, &mut ret),
            ),
            PteLoop::All => t.for_each_entry(|_| true, |e, pte| self.pte_report(e, pte, &mut ret)),
        }
        ret
    }
}

#[vtable]
impl<M: ScanMode> PageWalk for Scan<M> {
    type OwnerModule = BuiltIn;
    type Mode = M;
    // Only a walk that clears changes VMAs when it is done with them.
    const POST_VMA: bool = M::CLEARS;

    fn test_walk(&mut self, vma: &VmaRef, start: usize, end: usize) -> Result<VmaFilter> {
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
        self.cur_vma_unprotected = Self::unprotected(vma);
        self.cur_vma_loop = self.pte_loops.get(vma.userfaultfd_wp(), categories);
        if M::CLEARS {
            // Hugetlb page tables are not soft-dirty tracked: reported, never cleared.
            // VM_SOFTDIRTY, which makes every page of the VMA read soft-dirty, is cleared only
            // from a VMA that lies whole in this walk and has every page reported (post_vma);
            // no VMA is split for it. Entries of a VMA that keeps the flag are left alone:
            // clearing them would change nothing a reader can see.
            let hugetlb = vma.is_hugetlb();
            self.clear_vma_flag =
                soft_dirty_vma && !hugetlb && start == vma.start() && end == vma.end();
            self.clear_entries = !hugetlb && (!soft_dirty_vma || self.clear_vma_flag);
            self.vma_reported = 0;
            self.mark_cur_vma = false;
        }
        Ok(VmaFilter::Walk)
    }

    fn post_vma(&mut self, vma: &mut VmaEnd<'_, M>) {
        if !M::CLEARS {
            return;
        }
        if self.mark_cur_vma {
            M::mark_vma(vma);
        } else if self.clear_vma_flag {
            let v = vma.vma();
            // A VMA is not empty: no wrap.
            if self.vma_reported == (v.end().wrapping_sub(v.start()) / PAGE_SIZE) as u64 {
                M::clear_vma(vma);
            }
        }
    }

    fn pmd_entry(
        &mut self,
        pmd: &mut PmdEntry<'_, M>,
        start: usize,
        end: usize,
    ) -> Result<PmdAction> {
        if let Some(ret) = self.thp_entry(pmd, start, end) {
            return ret.map(|()| PmdAction::Next);
        }
        // The table is flushed (what was write-protected or cleared) and unlocked when the
        // closure returns.
        let Some(ret) = pmd.with_ptes(|t| self.pte_range(t)) else {
            // The PTE table went away under us: look at the PMD again.
            return Ok(PmdAction::Again);
        };
        task::cond_resched();
        ret.map(|()| PmdAction::Next)
    }

    fn pte_hole(
        &mut self,
        hole: &mut Hole<'_, M>,
        addr: usize,
        end: usize,
        _depth: i32,
    ) -> Result<ControlFlow<()>> {
        let Some(vma) = hole.vma() else {
            return Ok(ControlFlow::Continue(()));
        };
        let mut end = end;
        // In a uffd-wp VMA an unpopulated range was zapped after registration (which installs
        // markers): written. Not so for hugetlb, see hugetlb_category().
        let mut categories = self.cur_vma_category;
        if vma.userfaultfd_wp() && !vma.is_hugetlb() {
            categories |= WRITTEN;
        }
        if !self.is_interesting_page(categories) {
            return Ok(ControlFlow::Continue(()));
        }
        // Nothing is mapped: a walk that clears only counts the pages, for the VMA flag.
        let ret = self.report(categories, addr, &mut end);
        if addr == end || !self.arg.wp() {
            return ret.map(|()| ControlFlow::Continue(()));
        }
        M::wp_hole(hole, addr, end)?;
        ret.map(|()| ControlFlow::Continue(()))
    }

    fn hugetlb_entry(
        &mut self,
        entry: &mut HugetlbEntry<'_, M>,
        start: usize,
        end: usize,
    ) -> Result<ControlFlow<()>> {
        let vma = entry.vma();
        let mut end = end;
        if !self.arg.wp() {
            // Not write-protecting: no lock needed.
            let pte = entry.get();
            let categories =
                self.cur_vma_category | Self::hugetlb_category(vma, pte, || entry.maps_file_page());
            if !self.is_interesting_page(categories) {
                return Ok(ControlFlow::Continue(()));
            }
            return self
                .output(categories, start, &mut end)
                .map(|()| ControlFlow::Continue(()));
        }

        M::hugetlb_wp(self, entry, start, end)
    }
}

/// Whether the caller may clear the soft-dirty state of `mm`.
///
/// `task` is the task of its pagemap file while it still runs `mm`. Opening the file checked
/// `PTRACE_MODE_READ` only, and the descriptor may have been passed on or the caller's credentials
/// changed since: unless the caller scans itself, it must now be allowed to ptrace-attach to the
/// task (what `clear_refs` users such as CRIU hold), as `pagemap_scan_may_clear()` checks.
fn may_clear_soft_dirty(mm: &Mm, task: Option<&Task>) -> bool {
    let current = current!();
    if current.mm().is_some_and(|own| own.as_raw() == mm.as_raw()) {
        return true;
    }
    task.is_some_and(|t| t.ptrace_may_access(PtraceMode::AttachFsCreds))
}

/// `PAGEMAP_SCAN` on `mm` (`do_pagemap_scan()`).
///
/// The pagemap file belongs to `task` (while it runs `mm`); the user argument is at `uarg`. A call
/// that cleared soft-dirty state and then failed sets `remark` to the range whose VMAs must read
/// soft-dirty again.
fn pagemap_scan(
    mm: &Mm,
    task: Option<&Task>,
    uarg: usize,
    remark: &mut Option<(usize, usize)>,
) -> Result<usize> {
    let mm = mm.mmget_not_zero().ok_or(ESRCH)?;
    let arg = Args::read(uarg)?;
    // The flags, checked by Args::read(), decide what the walks may change: their mode.
    if arg.clear() {
        scan::<ClearSoftDirty>(&mm, task, uarg, arg, remark)
    } else if arg.wp() {
        scan::<UffdWp>(&mm, task, uarg, arg, remark)
    } else {
        scan::<ReadOnly>(&mm, task, uarg, arg, remark)
    }
}

/// [`pagemap_scan`] with walks of mode `M`.
fn scan<M: ScanMode>(
    mm: &MmWithUser,
    task: Option<&Task>,
    uarg: usize,
    arg: Args,
    remark: &mut Option<(usize, usize)>,
) -> Result<usize> {
    let mut p = Scan::<M>::new(arg)?;
    if p.arg.clear() && !may_clear_soft_dirty(mm, task) {
        return Err(EACCES);
    }
    let end = p.arg.end;
    let mut cleared = false;
    let mut n_ranges_out = 0usize;
    let mut ret = Ok(());
    let mut walk_start = p.arg.start;

    while walk_start < end {
        if current!().fatal_signal_pending() {
            ret = Err(EINTR);
            break;
        }
        // The lock is taken and dropped in there: the copy-out below may fault.
        match M::walk(mm, &mut p, walk_start, end) {
            Ok(walked) => {
                cleared |= M::CLEARS;
                ret = walked;
            }
            Err(e) => {
                ret = Err(e);
                break;
            }
        }

        // Copy out with the lock dropped: userspace memory may fault.
        match p.flush_buffer() {
            Ok(n) => n_ranges_out += n,
            Err(e) => ret = Err(e),
        }
        // ENOSPC is the walk stopping at a full buffer or at max_pages, or before a hugetlb
        // page that does not fit whole.
        if ret != Err(ENOSPC)
            || p.arg.vec_len == 0
            || p.found_pages == p.arg.max_pages
            || p.stopped_before_huge
        {
            break;
        }
        walk_start = p.arg.walk_end;
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
    let ret = UserSlice::new(
        UserPtr::from_addr(uarg).wrapping_byte_add(WALK_END_OFFSET),
        8,
    )
    .writer()
    .write(&walk_end)
    .map_err(|_| EFAULT)
    .and(ret);
    if cleared && ret.is_err() {
        // The caller gets an error instead of the report, so what was cleared must read
        // soft-dirty again: the VMAs of the range are marked (over-reporting, losing nothing),
        // by pagemap_scan_mark_soft_dirty() as for the C implementation.
        *remark = Some((p.arg.start, end));
    }
    ret
}

/// The `PAGEMAP_SCAN` ioctl of a pagemap file, called by `do_pagemap_cmd()`.
///
/// # Safety
///
/// `mm` is the `mm_struct` of the pagemap file (its `private_data`), on which the open file
/// holds an `mmgrab()` reference for the whole call; `task` is NULL or the task of the pagemap
/// file while it runs `mm`, referenced for the whole call; `remark` points to two writable
/// `unsigned long`s, which are set to the start and end of the range to mark soft-dirty again
/// (left alone when there is none).
#[no_mangle]
pub unsafe extern "C" fn rust_pagemap_scan(
    mm: *mut bindings::mm_struct,
    task: *mut bindings::task_struct,
    uarg: c_ulong,
    remark: *mut c_ulong,
) -> c_long {
    // SAFETY: By the function's safety requirements `mm` is valid and stays so for the call.
    let mm = unsafe { Mm::from_raw(mm) };
    // SAFETY: By the function's safety requirements `task` is NULL or a task the caller holds a
    // reference on for the whole call; `Task` is a transparent wrapper of `task_struct`.
    let task = unsafe { task.cast::<Task>().as_ref() };
    let mut range = None;
    let ret = match pagemap_scan(mm, task, uarg, &mut range) {
        Ok(n) => n as c_long,
        Err(e) => e.to_errno() as c_long,
    };
    if let Some((start, end)) = range {
        // SAFETY: By the function's safety requirements `remark` points to two writable
        // `unsigned long`s.
        unsafe {
            remark.write(start as c_ulong);
            remark.add(1).write(end as c_ulong);
        }
    }
    ret
}
