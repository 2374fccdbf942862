// SPDX-License-Identifier: GPL-2.0

//! Page-table walks of userspace address spaces.
//!
//! A walk is a type that implements [`PageWalk`]; [`MmapReadGuard::walk_page_range`] and
//! [`MmapWriteGuard::walk_page_range`] run `walk_page_range()` over an address range with that
//! value as the walk's private state, calling back the methods it implements. Which lock the walk
//! runs under is the type of the guard it is started from: `PGWALK_RDLOCK` under the mmap read
//! lock, `PGWALK_WRLOCK` (each VMA write-locked as it is reached, so page faults under per-VMA
//! locks are excluded too) under the mmap write lock.
//!
//! Callbacks receive handles whose lifetime ends with the callback: a [`PmdEntry`] that can be
//! read by value, locked as a huge PMD ([`HugePmdGuard`]) or mapped and locked as a PTE table
//! ([`PteTable`]); a [`PteEntry`] at the lowest level; a [`HugetlbEntry`] for hugetlb VMAs.
//! Entries are only ever read by value ([`Pte`], [`Pmd`]); the changes a walk may make are methods
//! of the handles that hold the lock the change needs, and every changed entry is flushed from the
//! TLB before its lock is dropped.
//!
//! What a walk may change is its [`Mode`], fixed by the function that starts it: the handles
//! of a [`ReadOnly`] walk change nothing;
//! [`MmapReadGuard::walk_page_range_uffd_wp`] runs a [`UffdWp`] walk inside an MMU notifier
//! invalidation of exactly its range, whose handles may write-protect entries for userfaultfd;
//! [`MmapWriteGuard::walk_page_range_clear_soft_dirty`] runs a [`ClearSoftDirty`] walk under the
//! mmap write lock, inside an invalidation of exactly its range with a TLB flush pending, whose
//! handles may clear soft-dirty state.
//!
//! `mm/pagewalk.c` exports nothing, so this abstraction is usable by built-in code only.
//!
//! C header: [`include/linux/pagewalk.h`](srctree/include/linux/pagewalk.h)

use crate::{
    bindings,
    error::{code::*, Error, Result, VTABLE_DEFAULT_ERROR},
    ffi::{c_int, c_ulong},
    mm::{
        mmu_notifier::Event,
        pgtable::{self, Pmd, Pte},
        virt::{flags as vm, VmaRef},
        MmWithUser, MmapReadGuard, MmapWriteGuard,
    },
    page::PAGE_SIZE,
    str::CStr,
    types::NotThreadSafe,
    ModuleMetadata, ThisModule,
};
use core::{marker::PhantomData, ops::ControlFlow, ptr::NonNull};
use macros::vtable;

/// What the walk does after a [`PageWalk::pmd_entry`] callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmdAction {
    /// Go down to the PTEs of this PMD (`ACTION_SUBTREE`): the walker splits a huge PMD and calls
    /// [`PageWalk::pte_entry`] for each PTE. Without a `pte_entry` this is the same as
    /// [`PmdAction::Next`].
    Descend,
    /// Go on with the next PMD, skipping the PTEs of this one (`ACTION_CONTINUE`).
    Next,
    /// Call [`PageWalk::pmd_entry`] again for this PMD (`ACTION_AGAIN`), e.g. when the PTE table
    /// went away under the walk ([`PmdEntry::with_ptes`] returned `None`).
    Again,
    /// Stop the walk: [`walk_page_range`](MmapReadGuard::walk_page_range) returns
    /// [`WalkOutcome::Stopped`].
    Stop,
}

/// What the walk does after a callback that has no subtree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop the walk: [`walk_page_range`](MmapReadGuard::walk_page_range) returns
    /// [`WalkOutcome::Stopped`].
    Stop,
}

/// The answer of [`PageWalk::test_walk`] for a VMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaFilter {
    /// Walk the page tables of this VMA.
    Walk,
    /// Skip this VMA entirely (no callback sees it, not even [`PageWalk::pte_hole`]).
    Skip,
}

/// How a walk ended without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkOutcome {
    /// The whole range was walked.
    Completed,
    /// A callback returned [`Flow::Stop`] or [`PmdAction::Stop`].
    Stopped,
}

mod private {
    pub trait Sealed {}
}

/// What a walk may change in the entries it visits: the type parameter of the handles its
/// callbacks receive, fixed by the function that starts it ([`PageWalk::Mode`]). A handle offers a
/// change only in the mode whose walk holds what that change needs, so a change cannot be made
/// under the wrong lock, outside the MMU notifier invalidation of the walked range or without the
/// TLB flush it needs.
///
/// The trait is sealed; its implementations are the modes below.
pub trait Mode: private::Sealed {}

/// The mode of a walk that changes no entry ([`MmapReadGuard::walk_page_range`],
/// [`MmapWriteGuard::walk_page_range`]).
pub enum ReadOnly {}

impl private::Sealed for ReadOnly {}
impl Mode for ReadOnly {}

/// The mode of a walk that may write-protect entries for userfaultfd
/// ([`MmapReadGuard::walk_page_range_uffd_wp`]): it runs inside an `MMU_NOTIFY_PROTECTION_VMA`
/// invalidation of exactly its range, as `PAGEMAP_SCAN` does.
pub enum UffdWp {}

impl private::Sealed for UffdWp {}
impl Mode for UffdWp {}

/// The mode of a walk that may clear soft-dirty state
/// ([`MmapWriteGuard::walk_page_range_clear_soft_dirty`]): it runs under the mmap write lock with
/// each VMA write-locked, inside an `MMU_NOTIFY_SOFT_DIRTY` invalidation of exactly its range,
/// with a TLB flush pending, as `clear_refs` does.
pub enum ClearSoftDirty {}

impl private::Sealed for ClearSoftDirty {}
impl Mode for ClearSoftDirty {}

/// The owner of [`PageWalk`] implementations outside modules.
///
/// `#[vtable]` names the module that owns an implementation (`type OwnerModule`), by default
/// `crate::LocalModule`, which only crates built with `module!` have. A walk has no owner: `struct
/// mm_walk_ops` has no `owner` field and `mm/pagewalk.c` exports nothing, so every walker is
/// built-in code. Built-in implementations outside the kernel crate write
/// `type OwnerModule = kernel::mm::pagewalk::BuiltIn;` in their `#[vtable] impl`.
pub struct BuiltIn;

impl ModuleMetadata for BuiltIn {
    const NAME: &'static CStr = c"built-in";

    // SAFETY: Built-in code has no module: its `THIS_MODULE` is NULL.
    const THIS_MODULE: ThisModule = unsafe { ThisModule::from_ptr(core::ptr::null_mut()) };
}

/// The value `walk_page_range()` passes back when a callback stops the walk.
const STOP: c_int = 1;

/// What [`PageWalk::pte_hole`] returns to stop the walk when it is called for a `VM_PFNMAP` VMA
/// from `walk_page_test()`, which takes every positive value for "skip this VMA": a negative
/// value no errno has, which `walk_page_range()` returns as it is and [`walk`] turns back into
/// [`WalkOutcome::Stopped`].
const STOP_FROM_TEST: c_int = -(bindings::MAX_ERRNO as c_int) - 1;

/// A page-table walk: the callbacks of a `struct mm_walk_ops`, with `self` as the private state.
///
/// Only the methods an implementation defines fill their slot of the ops table, and an empty
/// slot changes what the C walker does:
///
/// - without [`test_walk`](PageWalk::test_walk), every VMA is walked except `VM_PFNMAP` ones, whose
///   range goes to [`pte_hole`](PageWalk::pte_hole) instead;
/// - without [`pte_entry`](PageWalk::pte_entry), the walker never goes below the PMD level (and so
///   never splits a huge PMD); with it, every huge PMD whose [`pmd_entry`](PageWalk::pmd_entry)
///   answers [`PmdAction::Descend`] (or that has no `pmd_entry`) is split;
/// - without [`hugetlb_entry`](PageWalk::hugetlb_entry), hugetlb VMAs are skipped silently;
/// - without [`pte_hole`](PageWalk::pte_hole), unpopulated ranges and gaps between VMAs are
///   passed over silently.
///
/// Context: [`pmd_entry`](PageWalk::pmd_entry), [`pte_hole`](PageWalk::pte_hole),
/// [`test_walk`](PageWalk::test_walk), [`pre_vma`](PageWalk::pre_vma) and
/// [`post_vma`](PageWalk::post_vma) run with the mmap lock held and no page-table lock, and may
/// sleep; [`pte_entry`](PageWalk::pte_entry) runs under the PTE table spinlock (atomic context);
/// [`hugetlb_entry`](PageWalk::hugetlb_entry) runs under the hugetlb VMA read lock.
///
/// # Examples
///
/// Counting the present pages of a range. The walk looks at each PMD itself: a huge one counts
/// as the pages it maps, under its lock, and is left whole (a walk with a
/// [`pte_entry`](PageWalk::pte_entry) gets every huge PMD split for it, see above).
///
/// ```
/// use kernel::mm::pagewalk::{PageWalk, PmdAction, PmdEntry, PteTable, ReadOnly};
/// use kernel::mm::MmWithUser;
/// use kernel::page::PAGE_SIZE;
/// use kernel::prelude::*;
///
/// struct CountPresent(usize);
///
/// #[vtable]
/// impl PageWalk for CountPresent {
///     type Mode = ReadOnly;
///
///     fn pmd_entry(
///         &mut self,
///         pmd: &mut PmdEntry<'_>,
///         addr: usize,
///         next: usize,
///     ) -> Result<PmdAction> {
///         if let Some(huge) = pmd.lock_huge() {
///             if huge.get().is_present() {
///                 self.0 += (next - addr) / PAGE_SIZE;
///             }
///             return Ok(PmdAction::Next);
///         }
///         let count = |t: &mut PteTable<'_>| t.iter().filter(|(_, p)| p.is_present()).count();
///         // The table went away (collapsed, emptied) since the walker looked: look again.
///         let Some(n) = pmd.with_ptes(count) else {
///             return Ok(PmdAction::Again);
///         };
///         self.0 += n;
///         Ok(PmdAction::Next)
///     }
/// }
///
/// fn present_pages(mm: &MmWithUser, start: usize, end: usize) -> Result<usize> {
///     let mut walk = CountPresent(0);
///     mm.mmap_read_lock_killable()?.walk_page_range(start, end, &mut walk)?;
///     Ok(walk.0)
/// }
/// ```
#[vtable]
pub trait PageWalk: Sized {
    /// What the walk may change: [`ReadOnly`] for a walk that only reads. It decides which
    /// function starts the walk and which changes the callbacks' handles offer.
    type Mode: Mode;

    /// Decides whether the VMA is walked; `start..end` is the part of it inside the walk's range.
    fn test_walk(&mut self, _vma: &VmaRef, _start: usize, _end: usize) -> Result<VmaFilter> {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Called before the page tables of a VMA are walked.
    fn pre_vma(&mut self, _vma: &VmaRef, _start: usize, _end: usize) -> Result<Flow> {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Called after a VMA was walked, whether or not its walk ended in an error; its handle
    /// offers what a walk of this mode may change in the VMA.
    fn post_vma(&mut self, _vma: &mut VmaEnd<'_, Self::Mode>) {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Whether the walker calls [`PageWalk::post_vma`], when it is implemented: a type that
    /// walks in several modes may need it in some of them only (a call per VMA in the others
    /// costs them for nothing).
    const POST_VMA: bool = true;

    /// Called for each non-empty PMD covering `addr..next`, which may be a huge PMD.
    fn pmd_entry(
        &mut self,
        _pmd: &mut PmdEntry<'_, Self::Mode>,
        _addr: usize,
        _next: usize,
    ) -> Result<PmdAction> {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Called for each PTE, empty ones included, with the PTE table lock held.
    fn pte_entry(
        &mut self,
        _pte: &mut PteEntry<'_, Self::Mode>,
        _addr: usize,
        _next: usize,
    ) -> Result<Flow> {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Called for `addr..next` when it has no page table at some level, or lies outside any VMA
    /// (then [`Hole::vma`] is `None`). `depth` is 0 (PGD) to 3 (PMD), or -1 when unknown
    /// (outside VMAs). In a hugetlb VMA it is called for each huge page without an entry.
    fn pte_hole(
        &mut self,
        _hole: &mut Hole<'_, Self::Mode>,
        _addr: usize,
        _next: usize,
        _depth: i32,
    ) -> Result<Flow> {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Called for each hugetlb entry covering `addr..next`, under the hugetlb VMA read lock.
    fn hugetlb_entry(
        &mut self,
        _entry: &mut HugetlbEntry<'_, Self::Mode>,
        _addr: usize,
        _next: usize,
    ) -> Result<Flow> {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// A PMD slot of the walked range, valid for one [`PageWalk::pmd_entry`] call.
///
/// # Invariants
///
/// `pmd` points at the PMD entry covering `addr..end` of `vma`'s page tables, and stays valid
/// for `'a`: the walker holds the mmap lock (and the VMA lock of a write walk) for the callback.
pub struct PmdEntry<'a, M = ReadOnly> {
    pmd: NonNull<bindings::pmd_t>,
    vma: &'a VmaRef,
    addr: usize,
    end: usize,
    _invariant: PhantomData<*mut &'a ()>,
    _mode: PhantomData<M>,
}

impl<'a, M> PmdEntry<'a, M> {
    /// The VMA being walked.
    #[inline]
    pub fn vma(&self) -> &'a VmaRef {
        self.vma
    }

    /// Reads the entry without its lock (`pmdp_get_lockless()`); it may change at any time.
    #[inline]
    pub fn get(&self) -> Pmd {
        // SAFETY: By the type invariants `pmd` is a valid PMD entry pointer.
        Pmd::from_raw(unsafe { bindings::pmdp_get_lockless(self.pmd.as_ptr()) })
    }

    /// Locks the entry if it is a huge PMD (`pmd_trans_huge_lock()`): `None` when it is not (or
    /// no longer) huge, and then its PTEs may be walked with [`PmdEntry::with_ptes`].
    #[inline]
    pub fn lock_huge(&mut self) -> Option<HugePmdGuard<'_, M>> {
        if !cfg!(CONFIG_TRANSPARENT_HUGEPAGE) {
            // No PMD is huge without THP (`pmd_trans_huge_lock()` is then NULL). Said here, the
            // compiler drops what a guard calls (`pmdp_invalidate()` and others THP alone
            // builds) even when the C helpers are not inlined into the Rust code.
            return None;
        }
        let ptl = self.trans_huge_lock();
        // INVARIANT: A non-NULL return is the PMD lock, now held.
        Some(HugePmdGuard {
            pmd: self.pmd,
            ptl: NonNull::new(ptl)?,
            vma: self.vma,
            addr: self.addr,
            end: self.end,
            _nts: NotThreadSafe,
            _mode: PhantomData,
        })
    }

    /// `pmd_trans_huge_lock()`: the PMD lock, held, if the entry is huge; NULL if it is not.
    ///
    /// With the C helpers inlined into the Rust code, the entry is looked at here, as the inline C
    /// function does, and a PMD that is not huge costs no call.
    #[cfg(all(CONFIG_TRANSPARENT_HUGEPAGE, CONFIG_RUST_INLINE_HELPERS))]
    #[inline(always)]
    fn trans_huge_lock(&self) -> *mut bindings::spinlock_t {
        // SAFETY: By the type invariants `pmd` is a valid PMD entry; it is read once, by value.
        let pmd = unsafe { bindings::pmdp_get(self.pmd.as_ptr()) };
        // SAFETY: Only looks at the value.
        if !unsafe { bindings::pmd_is_huge(pmd) } {
            return core::ptr::null_mut();
        }
        // SAFETY: By the type invariants `pmd` and `vma` are valid and the mmap lock is held.
        unsafe { bindings::__pmd_trans_huge_lock(self.pmd.as_ptr(), self.vma.as_ptr()) }
    }

    /// `pmd_trans_huge_lock()`: the PMD lock, held, if the entry is huge; NULL if it is not.
    #[cfg(not(all(CONFIG_TRANSPARENT_HUGEPAGE, CONFIG_RUST_INLINE_HELPERS)))]
    #[inline(always)]
    fn trans_huge_lock(&self) -> *mut bindings::spinlock_t {
        // SAFETY: By the type invariants `pmd` and `vma` are valid and the mmap lock is held.
        unsafe { bindings::pagewalk_pmd_trans_huge_lock(self.pmd.as_ptr(), self.vma.as_ptr()) }
    }

    /// Maps the PTE table of this PMD and locks it (`pte_offset_map_lock()`), for the range of
    /// this callback, and runs `f` on it; then flushes from the TLB what `f` changed through it
    /// and unlocks it. The table exists only inside `f`, so neither the flush nor the unlock can be
    /// skipped (as they could be by leaking a table with `mem::forget()`).
    ///
    /// `None`, without running `f`, means there is no PTE table any more (a huge PMD, a PMD that
    /// was emptied or collapsed concurrently; this can happen even under the mmap write lock):
    /// answer [`PmdAction::Again`] to look at the entry anew.
    #[inline]
    pub fn with_ptes<R>(&mut self, f: impl FnOnce(&mut PteTable<'_, M>) -> R) -> Option<R> {
        let mut ptl: *mut bindings::spinlock_t = core::ptr::null_mut();
        // SAFETY: By the type invariants `pmd` is valid for the VMA's mm, `addr` lies in the
        // range it covers and the mmap lock is held.
        let first = unsafe {
            bindings::pte_offset_map_lock(
                self.vma.mm().as_raw(),
                self.pmd.as_ptr(),
                self.addr,
                &mut ptl,
            )
        };
        let first = NonNull::new(first)?;
        // INVARIANT: `pte_offset_map_lock()` succeeded: the table is mapped and `ptl` is held.
        let mut table = PteTable {
            first,
            ptl: NonNull::new(ptl)?,
            vma: self.vma,
            start: self.addr,
            end: self.end,
            flush: None,
            uffd_wp: self.vma.userfaultfd_wp(),
            _nts: NotThreadSafe,
            _mode: PhantomData,
        };
        let r = f(&mut table);
        table.unlock();
        Some(r)
    }

    /// Splits a huge PMD into a PTE table (`split_huge_pmd()`); does nothing to other entries.
    #[inline]
    pub fn split_huge(&mut self) {
        // SAFETY: By the type invariants the pointers are valid and the mmap lock is held; no
        // page-table lock is held (the guards that hold one borrow `self` mutably).
        unsafe {
            bindings::pagewalk_split_huge_pmd(self.vma.as_ptr(), self.pmd.as_ptr(), self.addr)
        };
    }
}

/// Records the range of changed entries so it is flushed from the TLB before the lock is dropped.
#[inline]
fn note_change(flush: &mut Option<(usize, usize)>, addr: usize, end: usize) {
    *flush = Some(match *flush {
        Some((s, e)) => (s.min(addr), e.max(end)),
        None => (addr, end),
    });
}

/// Flushes `range` of `vma` from the TLB (`flush_tlb_range()`).
#[inline]
fn flush_tlb(vma: &VmaRef, range: Option<(usize, usize)>) {
    if let Some((start, end)) = range {
        // SAFETY: `vma` is valid and the caller holds the lock that covers the changed entries.
        unsafe { bindings::pagewalk_flush_tlb_range(vma.as_ptr(), start, end) };
    }
}

/// Whether `vma` is a COW mapping of an mm that has had pages DMA-pinned (`MMF_HAS_PINNED`), so
/// that a present, writable PTE of it may map a pinned page ([`pte_maps_pinned_folio`]):
/// write-protecting that would break the pin's COW semantics, so `clear_refs` leaves it alone
/// (`pte_is_pinned()` of fs/proc/task_mmu.c; it stays soft-dirty: a false positive, never a lost
/// write). A pin that starts after this was read is no different from one that starts after the
/// entry was changed: GUP-fast checks the entry again after pinning and backs off if it changed.
#[inline]
fn may_pin_cow(vma: &VmaRef) -> bool {
    // SAFETY: `vma` is valid under the walk's lock; the helper only reads its flags.
    let cow = unsafe { bindings::vma_is_cow_mapping(vma.as_ptr()) };
    // SAFETY: The VMA's mm is valid; the helper only reads its flags.
    cow && unsafe { bindings::mm_has_pinned(vma.mm().as_raw()) }
}

/// Whether the present entry `pte` of `addr` in `vma` maps a folio that may be DMA-pinned (the
/// folio test of `pte_is_pinned()`, made where [`may_pin_cow`] holds). Out of line and cold:
/// the walks that clear call it in their loops, for the rare VMA with pinned pages.
#[cold]
#[inline(never)]
fn pte_maps_pinned_folio(vma: &VmaRef, addr: usize, pte: Pte) -> bool {
    // SAFETY: `pte` is a present entry of `addr` in `vma`, read under its table lock.
    let folio = unsafe { bindings::vm_normal_folio(vma.as_ptr(), addr, pte.as_raw()) };
    // SAFETY: A non-NULL folio mapped by a locked PTE is valid while the lock is held.
    !folio.is_null() && unsafe { bindings::folio_maybe_dma_pinned(folio) }
}

/// Clears the soft-dirty state of the PTE at `ptep` as `clear_refs` does (`clear_soft_dirty()`):
/// a present entry is write-protected and loses its soft-dirty bit, so the next write faults and
/// sets it again; a software entry loses its swap soft-dirty bit. A present entry that may be
/// DMA-pinned is not write-protected (that would break the pin's COW semantics) and keeps, or
/// gets, its soft-dirty bit: a device may write the page without the page tables seeing it, so it
/// must keep reading soft-dirty even once `VM_SOFTDIRTY` is cleared. A writable migration entry
/// is made readable as well (as `mprotect()` does), or the page would come back writable and
/// clean and its writes would go unseen. Without soft-dirty tracking in the page tables nothing is
/// changed. Returns whether the bit was set.
///
/// # Safety
///
/// `ptep` is the PTE of `addr` in `vma`'s page tables and its PTE table lock is held.
#[inline]
unsafe fn pte_clear_soft_dirty(vma: &VmaRef, addr: usize, ptep: *mut bindings::pte_t) -> bool {
    if !pgtable::soft_dirty_supported() {
        return false;
    }
    // SAFETY: By the function's safety requirements.
    unsafe { pte_clear_soft_dirty_with(vma, addr, ptep, may_pin_cow(vma)) }
}

/// [`pte_clear_soft_dirty`] once the checks that do not depend on the entry are made: soft-dirty
/// tracking in the page tables, and `may_pin` ([`may_pin_cow`] of `vma`).
///
/// # Safety
///
/// `ptep` is the PTE of `addr` in `vma`'s page tables and its PTE table lock is held;
/// `pgtable::soft_dirty_supported()` holds.
#[inline(always)]
unsafe fn pte_clear_soft_dirty_with(
    vma: &VmaRef,
    addr: usize,
    ptep: *mut bindings::pte_t,
    may_pin: bool,
) -> bool {
    // SAFETY: By the function's safety requirements `ptep` is valid and locked.
    let pte = Pte::from_raw(unsafe { bindings::ptep_get(ptep) });
    let was = pte.is_soft_dirty();
    if pte.is_present() {
        if may_pin && pte.is_writable() && pte_maps_pinned_folio(vma, addr, pte) {
            if !was {
                // SAFETY: By the function's safety requirements `ptep` is valid and locked;
                // start/commit keep concurrent hardware accessed/dirty updates. Only the
                // soft-dirty bit changes, so no flush is needed.
                unsafe {
                    let old = bindings::ptep_modify_prot_start(vma.as_ptr(), addr, ptep);
                    let new = bindings::pte_mksoft_dirty(old);
                    bindings::ptep_modify_prot_commit(vma.as_ptr(), addr, ptep, old, new);
                }
            }
            return was;
        }
        // SAFETY: As above; start/commit bracket the change so that concurrent hardware
        // updates of the accessed/dirty bits are not lost.
        unsafe {
            let old = bindings::ptep_modify_prot_start(vma.as_ptr(), addr, ptep);
            let new = bindings::pte_clear_soft_dirty(bindings::pte_wrprotect(old));
            bindings::ptep_modify_prot_commit(vma.as_ptr(), addr, ptep, old, new);
        }
    } else if pte.is_softleaf() {
        // SAFETY: As above; a non-present entry is not cached by the TLB and not changed by
        // hardware, so it may be rewritten under the lock.
        unsafe {
            let readable = bindings::pte_softleaf_wrprotect(pte.as_raw());
            let new = bindings::pte_swp_clear_soft_dirty(readable);
            bindings::set_pte_at(vma.mm().as_raw(), addr, ptep, new);
        }
    }
    was
}

/// Whether a software entry refers to a folio that is not anonymous (a migration or device entry
/// of a page-cache folio).
///
/// # Safety
///
/// `entry` was read from a page-table entry whose lock is held.
#[inline]
unsafe fn softleaf_maps_file_page(entry: bindings::softleaf_t) -> bool {
    // SAFETY: By the function's safety requirements the entry is stable, so the folio it refers
    // to (if it has a pfn) is valid while the lock is held.
    unsafe {
        bindings::softleaf_has_pfn(entry)
            && !bindings::folio_test_anon(bindings::softleaf_to_folio(entry))
    }
}

/// Whether `pte`, the entry of `addr` in `vma`, maps a page that is not anonymous: a present
/// entry with a normal page (`vm_normal_page()`: not the zero page, not a PFN map) outside anon
/// memory, or a migration or device entry of such a folio.
///
/// # Safety
///
/// `pte` was read from the entry of `addr` in `vma` with its PTE table lock, which is still held.
#[inline]
unsafe fn pte_maps_file_page(vma: &VmaRef, addr: usize, pte: Pte) -> bool {
    if pte.is_present() {
        // SAFETY: By the function's safety requirements `pte` is a locked present entry of `addr`.
        let page = unsafe { bindings::vm_normal_page(vma.as_ptr(), addr, pte.as_raw()) };
        // SAFETY: A non-NULL page mapped by a locked entry is valid while the lock is held.
        !page.is_null() && !unsafe { bindings::PageAnon(page) }
    } else if pte.is_softleaf() {
        // SAFETY: By the function's safety requirements the entry is locked.
        unsafe { softleaf_maps_file_page(bindings::softleaf_from_pte(pte.as_raw())) }
    } else {
        false
    }
}

/// Marks the PTE at `ptep` write-protected for userfaultfd, as `make_uffd_wp_pte()` of
/// `PAGEMAP_SCAN` does: a present entry gets the uffd-wp bit (keeping the accessed and dirty
/// bits hardware may set meanwhile), an empty one a uffd-wp marker, a swap or migration entry its
/// uffd-wp bit.
///
/// # Safety
///
/// `ptep` is the PTE of `addr` in `vma`'s page tables and its PTE table lock is held.
#[inline]
unsafe fn pte_make_uffd_wp(vma: &VmaRef, addr: usize, ptep: *mut bindings::pte_t) {
    // SAFETY: By the function's safety requirements `ptep` is valid and locked.
    let pte = Pte::from_raw(unsafe { bindings::ptep_get(ptep) });
    let mm = vma.mm().as_raw();
    if pte.is_present() {
        // SAFETY: As above; start/commit bracket the change so that concurrent hardware
        // updates of the accessed/dirty bits are not lost.
        unsafe {
            let old = bindings::ptep_modify_prot_start(vma.as_ptr(), addr, ptep);
            bindings::ptep_modify_prot_commit(
                vma.as_ptr(),
                addr,
                ptep,
                old,
                bindings::pte_mkuffd(old),
            );
        }
    } else if pte.is_none() {
        // SAFETY: As above; an empty entry is not cached by the TLB.
        unsafe { bindings::set_pte_at(mm, addr, ptep, bindings::make_pte_marker_uffd_wp()) };
    } else {
        // SAFETY: As above; a non-present entry is not cached by the TLB. A writable migration
        // entry is made readable first: `remove_migration_pte()` would restore it writable and
        // without the uffd-wp bit.
        unsafe {
            let readable = bindings::pte_softleaf_wrprotect(pte.as_raw());
            bindings::set_pte_at(mm, addr, ptep, bindings::pte_swp_mkuffd(readable));
        }
    }
}

/// A mapped and locked PTE table, for the range of one [`PageWalk::pmd_entry`] call.
///
/// It exists only inside the closure of [`PmdEntry::with_ptes`], which flushes the entries changed
/// through it from the TLB before it releases the lock.
///
/// # Invariants
///
/// `first` is the mapped PTE of `start`, the entries of `start..end` follow it in the same table,
/// and the table lock `ptl` is held while it exists.
pub struct PteTable<'a, M = ReadOnly> {
    first: NonNull<bindings::pte_t>,
    ptl: NonNull<bindings::spinlock_t>,
    vma: &'a VmaRef,
    start: usize,
    end: usize,
    flush: Option<(usize, usize)>,
    /// Whether the VMA is registered for uffd-wp (read once, for the per-entry write-protection).
    uffd_wp: bool,
    _nts: NotThreadSafe,
    _mode: PhantomData<M>,
}

impl<'a, M> PteTable<'a, M> {
    /// The first address covered.
    #[inline]
    pub fn start(&self) -> usize {
        self.start
    }

    /// The end of the covered range.
    #[inline]
    pub fn end(&self) -> usize {
        self.end
    }

    /// The VMA being walked.
    #[inline]
    pub fn vma(&self) -> &'a VmaRef {
        self.vma
    }

    #[inline]
    fn ptep(&self, addr: usize) -> Option<*mut bindings::pte_t> {
        if addr < self.start || addr >= self.end || addr % PAGE_SIZE != 0 {
            return None;
        }
        // SAFETY: By the type invariants the entries of `start..end` are contiguous from `first`,
        // and `addr` is a page address in that range.
        Some(unsafe { self.first.as_ptr().add((addr - self.start) / PAGE_SIZE) })
    }

    /// Reads the entry of `addr` (`ptep_get()`); `None` if `addr` is not a page of the table's
    /// range.
    #[inline]
    pub fn get(&self, addr: usize) -> Option<Pte> {
        let ptep = self.ptep(addr)?;
        // SAFETY: `ptep` is a valid entry of the locked table.
        Some(Pte::from_raw(unsafe { bindings::ptep_get(ptep) }))
    }

    /// The entry of the table's first page and the end of its entries: the entries of the
    /// table's range are those from the first up to, not including, the end.
    #[inline(always)]
    fn entries(&self) -> (*mut bindings::pte_t, *mut bindings::pte_t) {
        let n = self.end.saturating_sub(self.start) / PAGE_SIZE;
        let p = self.first.as_ptr();
        // SAFETY: By the type invariants the entries of the `n` pages of `self.start..self.end`
        // follow `first` in the table, so the end is in the table or one past its last entry.
        (p, unsafe { p.add(n) })
    }

    /// Calls `f` with each entry of the table's range (that of the [`PageWalk::pmd_entry`] call)
    /// for which `select` holds, in address order, until `f` returns [`ControlFlow::Break`]: the
    /// entry's value as read, and a [`PteSlot`] through which `f` may change that entry. The
    /// range is the table's own, so there is nothing to clamp and the loop does no per-entry
    /// bounds check, and entries `select` refuses cost only the test (a walker that looks for the
    /// few entries with some bit set skips the others in a few instructions each).
    #[inline(always)]
    pub fn for_each_entry(
        &mut self,
        select: impl Fn(Pte) -> bool,
        mut f: impl FnMut(&mut PteSlot<'_, 'a, M>, Pte) -> ControlFlow<()>,
    ) {
        let (mut ptep, stop) = self.entries();
        let mut addr = self.start;
        while ptep != stop {
            // SAFETY: `ptep` is below `stop`: a valid entry of the locked table.
            let pte = Pte::from_raw(unsafe { bindings::ptep_get(ptep) });
            if select(pte) {
                // INVARIANT: `ptep` is the entry of `addr`, `pte` its value read just now.
                let mut slot = PteSlot {
                    ptep,
                    pte,
                    addr,
                    vma: self.vma,
                    uffd_wp: self.uffd_wp,
                    flush: &mut self.flush,
                    _mode: PhantomData,
                };
                if f(&mut slot, pte).is_break() {
                    break;
                }
            }
            // SAFETY: `ptep` is below `stop`, so one entry further is at most `stop`.
            ptep = unsafe { ptep.add(1) };
            // At most `self.end`: no wrap.
            addr = addr.wrapping_add(PAGE_SIZE);
        }
    }

    /// Calls `f` with each run of consecutive entries for which `select` holds in the table's
    /// range (as [`PteTable::for_each_entry`]), in address order, until `f` returns
    /// [`ControlFlow::Break`]: a [`PteRun`] that gives the run's range and through which `f` may
    /// change its entries. Entries are read by value and tested with `select` only, so a walker
    /// that reports the entries with some bit set skips the others in a few instructions each and
    /// can report and change each batch of them as one range.
    #[inline(always)]
    pub fn for_each_run(
        &mut self,
        select: impl Fn(Pte) -> bool,
        mut f: impl FnMut(&mut PteRun<'_, 'a, M>) -> ControlFlow<()>,
    ) {
        let start = self.start;
        let (base, stop) = self.entries();
        let selected = |p: *mut bindings::pte_t| {
            // SAFETY: Only called with a pointer below `stop`: a valid entry of the locked table.
            let pte = unsafe { bindings::ptep_get(p) };
            select(Pte::from_raw(pte))
        };
        // The address of the page of an entry from `base` to `stop`: no wrap.
        let at = |p: *mut bindings::pte_t| {
            let i =
                (p as usize).wrapping_sub(base as usize) / core::mem::size_of::<bindings::pte_t>();
            start.wrapping_add(i.wrapping_mul(PAGE_SIZE))
        };
        // Runs come in address order, so what they change is one span, `changed.0..changed.1`
        // (`changed.1 == 0`: nothing yet), added to the table's record once. Whether the VMA may
        // have DMA-pinned COW pages is looked up once, for all runs.
        let mut changed = (0usize, 0usize);
        let may_pin = may_pin_cow(self.vma);
        let mut p = base;
        while p != stop {
            if !selected(p) {
                // SAFETY: `p` is below `stop`, so one entry further is at most `stop`.
                p = unsafe { p.add(1) };
                continue;
            }
            let run = p;
            // The run's end, and where the search goes on after it: past the entry that ended
            // the run, which was tested and is not selected.
            // SAFETY: As above, each step from below `stop`.
            let mut end = unsafe { p.add(1) };
            let next = loop {
                if end == stop {
                    break end;
                }
                if !selected(end) {
                    // SAFETY: `end` is below `stop`, so one entry further is at most `stop`.
                    break unsafe { end.add(1) };
                }
                // SAFETY: As above.
                end = unsafe { end.add(1) };
            };
            // INVARIANT: `run..end` are the entries of `at(run)..at(end)`, in the locked table.
            let mut r = PteRun {
                first: run,
                start: at(run),
                end: at(end),
                vma: self.vma,
                changed: &mut changed,
                may_pin,
                _mode: PhantomData,
            };
            if f(&mut r).is_break() {
                break;
            }
            p = next;
        }
        if changed.1 != 0 {
            note_change(&mut self.flush, changed.0, changed.1);
        }
    }

    /// Iterates over `(address, entry)` for each page of the range.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (usize, Pte)> + '_ {
        (self.start..self.end)
            .step_by(PAGE_SIZE)
            .filter_map(move |a| Some((a, self.get(a)?)))
    }

    /// Whether the entry of `addr` maps a page that is not anonymous: a normal page
    /// (`vm_normal_page()`, so not the zero page) of a file or shmem, or a migration or device
    /// entry of one.
    #[inline]
    pub fn maps_file_page(&self, addr: usize) -> bool {
        let Some(pte) = self.get(addr) else {
            return false;
        };
        // SAFETY: `pte` was just read from the entry of `addr` in the locked table.
        unsafe { pte_maps_file_page(self.vma, addr, pte) }
    }
}

impl PteTable<'_, ClearSoftDirty> {
    /// Clears the soft-dirty state of the entry of `addr` as `clear_refs` does (a present entry
    /// is write-protected, unless it may be DMA-pinned); returns whether the bit was set. The
    /// entry is flushed from the TLB before the table is unlocked.
    #[inline]
    pub fn clear_soft_dirty(&mut self, addr: usize) -> bool {
        let Some(ptep) = self.ptep(addr) else {
            return false;
        };
        // SAFETY: `ptep` is the entry of `addr` in the locked table.
        let was = unsafe { pte_clear_soft_dirty(self.vma, addr, ptep) };
        note_change(&mut self.flush, addr, addr + PAGE_SIZE);
        was
    }
}

impl PteTable<'_, UffdWp> {
    /// Write-protects the entry of `addr` for userfaultfd, as `PAGEMAP_SCAN` does in a VMA
    /// registered for asynchronous uffd-wp with markers: a present entry gets the uffd-wp bit,
    /// an empty one a uffd-wp marker, a swap or migration entry its uffd-wp bit (a writable
    /// migration entry is made readable first). The entry is flushed from the TLB before the
    /// table is unlocked. Does nothing in a VMA not registered
    /// for uffd-wp: a write fault there would make the entry writable with the bit still set.
    #[inline]
    pub fn make_uffd_wp(&mut self, addr: usize) {
        if !self.uffd_wp {
            return;
        }
        let Some(ptep) = self.ptep(addr) else {
            return;
        };
        // SAFETY: `ptep` is the entry of `addr` in the locked table.
        unsafe { pte_make_uffd_wp(self.vma, addr, ptep) };
        note_change(&mut self.flush, addr, addr + PAGE_SIZE);
    }
}

/// One entry of a locked PTE table, handed to the closure of [`PteTable::for_each_entry`].
///
/// # Invariants
///
/// `ptep` is the entry of `addr` in a table of `vma` whose lock is held while the slot exists,
/// `pte` the value read from it under that lock (what the slot changes since leaves the page the
/// entry maps as it was); `flush` is that table's record of changed entries.
pub struct PteSlot<'s, 'a, M = ReadOnly> {
    ptep: *mut bindings::pte_t,
    pte: Pte,
    addr: usize,
    vma: &'a VmaRef,
    uffd_wp: bool,
    flush: &'s mut Option<(usize, usize)>,
    _mode: PhantomData<M>,
}

impl<M> PteSlot<'_, '_, M> {
    /// The address the entry maps.
    #[inline(always)]
    pub fn addr(&self) -> usize {
        self.addr
    }

    /// The VMA the entry belongs to.
    #[inline(always)]
    pub fn vma(&self) -> &VmaRef {
        self.vma
    }

    /// [`PteTable::maps_file_page`] for this entry, from the value read for the slot (what the
    /// slot changes does not change the page mapped).
    #[inline(always)]
    pub fn maps_file_page(&self) -> bool {
        // SAFETY: By the type invariants `pte` was read from the entry of `addr` in the table,
        // whose lock is still held, and the entry maps the same page as then: the slot's changes
        // only set or clear its uffd-wp, soft-dirty or write bit, or make an empty entry a
        // uffd-wp marker, which maps no page either way.
        unsafe { pte_maps_file_page(self.vma, self.addr, self.pte) }
    }
}

impl PteSlot<'_, '_, ClearSoftDirty> {
    /// [`PteTable::clear_soft_dirty`] for this entry.
    #[inline(always)]
    pub fn clear_soft_dirty(&mut self) -> bool {
        // SAFETY: By the type invariants `ptep` is the entry of `addr` in the locked table.
        let was = unsafe { pte_clear_soft_dirty(self.vma, self.addr, self.ptep) };
        // A page of the table's range, below its end: no wrap.
        let end = self.addr.wrapping_add(PAGE_SIZE);
        note_change(&mut *self.flush, self.addr, end);
        was
    }
}

/// A run of consecutive entries of a locked PTE table, handed to the closure of
/// [`PteTable::for_each_run`].
///
/// # Invariants
///
/// `first` is the entry of `start` in a table of `vma` whose lock is held while the run exists,
/// the entries of the pages of `start..end` follow it in that table, and `changed` is the span of
/// that table's entries changed by the runs before it (`changed.1 == 0`: none; else
/// `changed.1 <= start`), which the table adds to its record of changed entries before it is
/// unlocked; `may_pin` is `may_pin_cow()` of `vma`.
pub struct PteRun<'s, 'a, M = ReadOnly> {
    first: *mut bindings::pte_t,
    start: usize,
    end: usize,
    vma: &'a VmaRef,
    changed: &'s mut (usize, usize),
    may_pin: bool,
    _mode: PhantomData<M>,
}

impl<M> PteRun<'_, '_, M> {
    /// The address of the run's first page.
    #[inline(always)]
    pub fn start(&self) -> usize {
        self.start
    }

    /// The end of the run's last page.
    #[inline(always)]
    pub fn end(&self) -> usize {
        self.end
    }
}

impl PteRun<'_, '_, ClearSoftDirty> {
    /// Clears the soft-dirty state of the entries of the run's pages that end at or below `end`
    /// (all of them when `end` is at or past the run's end, none when it is at or below its
    /// start), each as [`PteTable::clear_soft_dirty`] does; they are flushed from the TLB before
    /// the table is unlocked. What does not depend on the entry is looked at once: soft-dirty
    /// tracking in the page tables for the run, whether the VMA may have DMA-pinned COW pages for
    /// the runs of the table.
    #[inline(always)]
    pub fn clear_soft_dirty(&mut self, end: usize) {
        if !pgtable::soft_dirty_supported() {
            return;
        }
        // The end of the last whole page of the run below `end`.
        let stop = end.min(self.end) & !(PAGE_SIZE - 1);
        if stop <= self.start {
            return;
        }
        let mut addr = self.start;
        let mut ptep = self.first;
        while addr != stop {
            // SAFETY: By the type invariants `ptep` is the entry of `addr`, a page of the run
            // (`addr < stop <= end`), in the locked table; soft-dirty tracking is supported.
            unsafe { pte_clear_soft_dirty_with(self.vma, addr, ptep, self.may_pin) };
            // SAFETY: The entry of a page of the run, so one entry further is at most the
            // entry of the run's end, in the table.
            ptep = unsafe { ptep.add(1) };
            // Pages of the run: no wrap.
            addr = addr.wrapping_add(PAGE_SIZE);
        }
        // INVARIANT: The span grows at its end only, to the end of this run's pages cleared.
        if self.changed.1 == 0 {
            self.changed.0 = self.start;
        }
        self.changed.1 = addr;
    }
}

impl PteSlot<'_, '_, UffdWp> {
    /// [`PteTable::make_uffd_wp`] for this entry.
    #[inline(always)]
    pub fn make_uffd_wp(&mut self) {
        if !self.uffd_wp {
            return;
        }
        // SAFETY: By the type invariants `ptep` is the entry of `addr` in the locked table.
        unsafe { pte_make_uffd_wp(self.vma, self.addr, self.ptep) };
        // A page of the table's range, below its end: no wrap.
        let end = self.addr.wrapping_add(PAGE_SIZE);
        note_change(&mut *self.flush, self.addr, end);
    }
}

impl<M> PteTable<'_, M> {
    /// Flushes what was changed through the table and unlocks it, at the end of
    /// [`PmdEntry::with_ptes`].
    #[inline]
    fn unlock(self) {
        flush_tlb(self.vma, self.flush);
        // SAFETY: By the type invariants the table is mapped at `first` and `ptl` is held.
        unsafe { bindings::pte_unmap_unlock(self.first.as_ptr(), self.ptl.as_ptr()) };
    }
}

/// A huge PMD with its lock held (from [`PmdEntry::lock_huge`]).
///
/// The entry is a transparent huge page mapping, or a non-present huge entry (migration).
///
/// # Invariants
///
/// `pmd` is a huge PMD entry of `vma` covering `addr..end` and its lock `ptl` is held until drop.
pub struct HugePmdGuard<'a, M = ReadOnly> {
    pmd: NonNull<bindings::pmd_t>,
    ptl: NonNull<bindings::spinlock_t>,
    vma: &'a VmaRef,
    addr: usize,
    end: usize,
    _nts: NotThreadSafe,
    _mode: PhantomData<M>,
}

impl<M> HugePmdGuard<'_, M> {
    /// Reads the entry (`pmdp_get()`).
    #[inline]
    pub fn get(&self) -> Pmd {
        // SAFETY: By the type invariants `pmd` is valid and locked.
        Pmd::from_raw(unsafe { bindings::pmdp_get(self.pmd.as_ptr()) })
    }

    /// Whether this callback's range covers the whole huge page.
    #[inline]
    pub fn covers_whole(&self) -> bool {
        self.addr % bindings::PMD_SIZE == 0 && self.end - self.addr == bindings::PMD_SIZE
    }

    /// Whether the huge entry maps a page that is not anonymous (`vm_normal_page_pmd()`, so not
    /// the huge zero page), or is a migration entry of such a folio.
    #[inline]
    pub fn maps_file_page(&self) -> bool {
        let (pmd, vma) = (self.get(), self.vma.as_ptr());
        if pmd.is_present() {
            // SAFETY: By the type invariants `pmd` is the locked huge entry of `addr`.
            let page = unsafe { bindings::vm_normal_page_pmd(vma, self.addr, pmd.as_raw()) };
            // SAFETY: A non-NULL page mapped by a locked entry is valid while the lock is held.
            !page.is_null() && !unsafe { bindings::PageAnon(page) }
        } else if !pmd.is_none() {
            // SAFETY: The entry is locked; `softleaf_from_pmd()` is a pure function of it.
            unsafe { softleaf_maps_file_page(bindings::softleaf_from_pmd(pmd.as_raw())) }
        } else {
            false
        }
    }
}

impl VmaEnd<'_, ClearSoftDirty> {
    /// Clears `VM_SOFTDIRTY` from the VMA, so that its pages read soft-dirty only where their
    /// entries say so, and recomputes its page protection (`vma_set_page_prot()`), so that the
    /// next write to a page of a shared mapping faults, as `clear_refs` does. For a caller that
    /// reported, and cleared, every page of the VMA. Hugetlb VMAs, whose page tables are not
    /// soft-dirty tracked, are left alone, as is everything without soft-dirty tracking.
    #[inline]
    pub fn clear_soft_dirty(&mut self) {
        #[allow(clippy::bad_bit_mask)]
        if !pgtable::soft_dirty_supported()
            || self.vma.is_hugetlb()
            || self.vma.flags() & vm::SOFTDIRTY == 0
        {
            return;
        }
        // SAFETY: By the type invariants the walker holds the mmap lock for writing and the VMA
        // is write-locked, as changing its flags and page protection requires.
        unsafe {
            bindings::vm_flags_clear(self.vma.as_ptr(), vm::SOFTDIRTY);
            bindings::vma_set_page_prot(self.vma.as_ptr());
        }
    }

    /// Sets `VM_SOFTDIRTY` on the VMA, so that all its pages read soft-dirty: for a caller that
    /// cleared soft-dirty state it cannot keep in the page tables. Hugetlb VMAs are left alone,
    /// as is everything without soft-dirty tracking.
    #[inline]
    pub fn mark_soft_dirty(&mut self) {
        #[allow(clippy::bad_bit_mask)]
        if !pgtable::soft_dirty_supported()
            || self.vma.is_hugetlb()
            || self.vma.flags() & vm::SOFTDIRTY != 0
        {
            return;
        }
        // SAFETY: By the type invariants the walker holds the mmap lock for writing and the VMA
        // is write-locked, as changing its flags requires.
        unsafe { bindings::vm_flags_set(self.vma.as_ptr(), vm::SOFTDIRTY) };
    }
}

impl HugePmdGuard<'_, ClearSoftDirty> {
    /// Clears the soft-dirty bit of a present huge PMD and write-protects it, keeping the
    /// accessed and dirty bits, or the soft-dirty bit of a migration entry, as
    /// `clear_soft_dirty_pmd()` does (`pmdp_invalidate()` also flushes the TLB); a writable
    /// migration entry is made readable as well, so the page comes back write-protected. Without
    /// soft-dirty tracking in the page tables nothing is changed. Returns whether the bit was set.
    #[inline]
    pub fn clear_soft_dirty(&mut self) -> bool {
        if !pgtable::soft_dirty_supported() {
            return false;
        }
        let pmd = self.get();
        let addr = self.addr & !(bindings::PMD_SIZE - 1);
        // SAFETY: Pure function of the entry's value.
        if unsafe { bindings::pmd_is_migration_entry(pmd.as_raw()) } {
            let was = pmd.is_swp_soft_dirty();
            // SAFETY: By the type invariants the entry is locked; a non-present entry is not
            // cached by the TLB and not changed by hardware.
            unsafe {
                let readable = bindings::pmd_softleaf_wrprotect(pmd.as_raw());
                let new = bindings::pmd_swp_clear_soft_dirty(readable);
                bindings::set_pmd_at(self.vma.mm().as_raw(), addr, self.pmd.as_ptr(), new);
            }
            return was;
        }
        if !pmd.is_present() {
            return false;
        }
        let was = pmd.is_soft_dirty();
        // SAFETY: By the type invariants the entry is a present huge PMD of `vma` and locked;
        // `pmdp_invalidate()` makes it non-present and flushes it before it is rewritten.
        unsafe {
            // The hardware may have set accessed/dirty between the read and the invalidation.
            let old = bindings::pmdp_invalidate(self.vma.as_ptr(), addr, self.pmd.as_ptr());
            let mut new = pmd.as_raw();
            if bindings::pmd_dirty(old) {
                new = bindings::pmd_mkdirty(new);
            }
            if bindings::pmd_young(old) {
                new = bindings::pmd_mkyoung(new);
            }
            let new = bindings::pmd_clear_soft_dirty(bindings::pmd_wrprotect(new));
            bindings::set_pmd_at(self.vma.mm().as_raw(), addr, self.pmd.as_ptr(), new);
        }
        was
    }
}

impl HugePmdGuard<'_, UffdWp> {
    /// Write-protects the whole huge page for userfaultfd, as `PAGEMAP_SCAN` does: a present
    /// entry gets the uffd-wp bit (`pmdp_invalidate_ad()` keeps the accessed and dirty bits), a
    /// migration entry its uffd-wp bit (made readable first if writable). The entry is flushed
    /// from the TLB before the lock is dropped. Does nothing in a VMA not registered for uffd-wp.
    #[inline]
    pub fn make_uffd_wp(&mut self) {
        if !self.vma.userfaultfd_wp() {
            return;
        }
        let pmd = self.get();
        let addr = self.addr & !(bindings::PMD_SIZE - 1);
        let mm = self.vma.mm().as_raw();
        // SAFETY: Pure function of the entry's value.
        let migration = unsafe { bindings::pmd_is_migration_entry(pmd.as_raw()) };
        if pmd.is_present() {
            // SAFETY: By the type invariants the entry is a present huge PMD of `vma` and locked;
            // `pmdp_invalidate_ad()` makes it non-present and returns it with the hardware's
            // accessed and dirty bits before it is rewritten.
            unsafe {
                let old = bindings::pmdp_invalidate_ad(self.vma.as_ptr(), addr, self.pmd.as_ptr());
                bindings::set_pmd_at(mm, addr, self.pmd.as_ptr(), bindings::pmd_mkuffd(old));
            }
        } else if migration {
            // SAFETY: By the type invariants the entry is locked; a non-present entry is not
            // cached by the TLB. A writable migration entry is made readable first, as for a PTE.
            unsafe {
                let readable = bindings::pmd_softleaf_wrprotect(pmd.as_raw());
                let new = bindings::pmd_swp_mkuffd(readable);
                bindings::set_pmd_at(mm, addr, self.pmd.as_ptr(), new);
            }
        } else {
            return;
        }
        flush_tlb(self.vma, Some((addr, addr + bindings::PMD_SIZE)));
    }
}

impl<M> Drop for HugePmdGuard<'_, M> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariants the lock is held.
        unsafe { bindings::spin_unlock(self.ptl.as_ptr()) };
    }
}

/// A PTE seen by [`PageWalk::pte_entry`], with its table lock held by the walker.
///
/// # Invariants
///
/// `pte` is the entry of `addr` in `vma`'s page tables, and its table lock is held for `'a`.
pub struct PteEntry<'a, M = ReadOnly> {
    pte: NonNull<bindings::pte_t>,
    vma: &'a VmaRef,
    addr: usize,
    flush: Option<(usize, usize)>,
    _invariant: PhantomData<*mut &'a ()>,
    _mode: PhantomData<M>,
}

impl<'a, M> PteEntry<'a, M> {
    /// The VMA being walked.
    #[inline]
    pub fn vma(&self) -> &'a VmaRef {
        self.vma
    }

    /// Reads the entry (`ptep_get()`).
    #[inline]
    pub fn get(&self) -> Pte {
        // SAFETY: By the type invariants `pte` is valid and locked.
        Pte::from_raw(unsafe { bindings::ptep_get(self.pte.as_ptr()) })
    }
}

impl PteEntry<'_, ClearSoftDirty> {
    /// Clears the soft-dirty state as `clear_refs` does (a present entry is write-protected,
    /// unless it may be DMA-pinned); returns whether the bit was set. The entry is flushed from
    /// the TLB before the callback returns.
    #[inline]
    pub fn clear_soft_dirty(&mut self) -> bool {
        // SAFETY: By the type invariants `pte` is the locked entry of `addr`.
        let was = unsafe { pte_clear_soft_dirty(self.vma, self.addr, self.pte.as_ptr()) };
        note_change(&mut self.flush, self.addr, self.addr + PAGE_SIZE);
        was
    }
}

/// A hugetlb entry seen by [`PageWalk::hugetlb_entry`].
///
/// # Invariants
///
/// `pte` is the hugetlb entry covering `addr` in `vma`, valid for `'a` (the walker holds the
/// hugetlb VMA read lock).
pub struct HugetlbEntry<'a, M = ReadOnly> {
    pte: NonNull<bindings::pte_t>,
    vma: &'a VmaRef,
    addr: usize,
    _invariant: PhantomData<*mut &'a ()>,
    _mode: PhantomData<M>,
}

impl<'a, M> HugetlbEntry<'a, M> {
    /// The VMA being walked.
    #[inline]
    pub fn vma(&self) -> &'a VmaRef {
        self.vma
    }

    /// Reads the entry (`huge_ptep_get()`).
    #[inline]
    pub fn get(&self) -> Pte {
        // SAFETY: By the type invariants `pte` is a valid hugetlb entry of the VMA's mm.
        Pte::from_raw(unsafe {
            bindings::huge_ptep_get(self.vma.mm().as_raw(), self.addr, self.pte.as_ptr())
        })
    }

    /// The size of the VMA's huge pages (`huge_page_size(hstate_vma())`).
    #[inline]
    pub fn size(&self) -> usize {
        hugetlb_page_size(self.vma)
    }

    /// Whether a present entry maps a huge page that is not anonymous (hugetlbfs files, shared
    /// memory and `MAP_HUGETLB | MAP_SHARED` mappings).
    #[inline]
    pub fn maps_file_page(&self) -> bool {
        // SAFETY: By the type invariants the walker holds the hugetlb VMA read lock, which keeps
        // the page of a present entry mapped.
        unsafe { hugetlb_maps_file_page(self.get()) }
    }
}

impl HugetlbEntry<'_, UffdWp> {
    /// Locks the entry for a change, as `PAGEMAP_SCAN` does: the file's `i_mmap` lock for
    /// writing, then the entry's lock (`huge_pte_lock()`).
    #[inline]
    pub fn lock(&mut self) -> Option<HugetlbGuard<'_>> {
        // SAFETY: By the type invariants `pte` is the hugetlb entry of `addr` in `vma` and the
        // walker holds the hugetlb VMA read lock.
        unsafe { HugetlbGuard::lock(self.vma, self.pte, self.addr) }
    }
}

/// The size of the huge pages of the hugetlb VMA `vma`.
#[inline]
fn hugetlb_page_size(vma: &VmaRef) -> usize {
    // SAFETY: `vma` is valid; the helper reads its hstate.
    unsafe { bindings::hugetlb_vma_page_size(vma.as_ptr()) }
}

/// Whether the hugetlb entry `pte` maps a page that is not anonymous.
///
/// # Safety
///
/// `pte` was read from a hugetlb entry that cannot be unmapped meanwhile (its lock or the hugetlb
/// VMA lock is held).
#[inline]
unsafe fn hugetlb_maps_file_page(pte: Pte) -> bool {
    // SAFETY: By the function's safety requirements the page of a present entry is valid.
    pte.is_present() && !unsafe { bindings::PageAnon(bindings::hugetlb_pte_page(pte.as_raw())) }
}

/// The VMA whose walk [`PageWalk::post_vma`] ends.
///
/// # Invariants
///
/// The walker holds the mmap lock for `'a` and has walked `vma` (write-locked in a walk with the
/// mmap lock held for writing).
pub struct VmaEnd<'a, M = ReadOnly> {
    vma: &'a VmaRef,
    _invariant: PhantomData<*mut &'a ()>,
    _mode: PhantomData<M>,
}

impl<'a, M> VmaEnd<'a, M> {
    /// The VMA.
    #[inline]
    pub fn vma(&self) -> &'a VmaRef {
        self.vma
    }
}

/// A hugetlb entry locked for a change (from [`HugetlbEntry::lock`] or a hole's
/// [`Hole::make_uffd_wp`]), with the file's `i_mmap` lock held for writing.
///
/// # Invariants
///
/// `pte` is the hugetlb entry of `addr` in `vma`, `mapping` is the `f_mapping` of the VMA's file
/// and is write-locked, and `ptl`, the entry's lock, is held, until drop.
pub struct HugetlbGuard<'a> {
    pte: NonNull<bindings::pte_t>,
    ptl: NonNull<bindings::spinlock_t>,
    mapping: NonNull<bindings::address_space>,
    vma: &'a VmaRef,
    addr: usize,
    _nts: NotThreadSafe,
}

impl<'a> HugetlbGuard<'a> {
    /// # Safety
    ///
    /// `pte` is the hugetlb entry of `addr` in `vma`, which is a hugetlb VMA, and the caller
    /// holds the mmap lock and the hugetlb VMA read lock.
    unsafe fn lock(vma: &'a VmaRef, pte: NonNull<bindings::pte_t>, addr: usize) -> Option<Self> {
        // SAFETY: `vma` is valid; a hugetlb VMA's file does not change while it is mapped.
        let file = unsafe { (*vma.as_ptr()).vm_file };
        if file.is_null() {
            return None;
        }
        // SAFETY: `file` is the VMA's file, valid while the VMA is.
        let mapping = NonNull::new(unsafe { (*file).f_mapping })?;
        // SAFETY: `mapping` is valid; this is the lock order of `PAGEMAP_SCAN` (hugetlb VMA
        // lock, then `i_mmap_rwsem`, then the entry lock).
        unsafe { bindings::i_mmap_lock_write(mapping.as_ptr()) };
        // SAFETY: By the function's safety requirements `pte` is an entry of `vma`.
        let ptl = unsafe { bindings::hugetlb_vma_pte_lock(vma.as_ptr(), pte.as_ptr()) };
        let Some(ptl) = NonNull::new(ptl) else {
            // SAFETY: Locked just above.
            unsafe { bindings::i_mmap_unlock_write(mapping.as_ptr()) };
            return None;
        };
        // INVARIANT: Both locks are held.
        Some(Self {
            pte,
            ptl,
            mapping,
            vma,
            addr,
            _nts: NotThreadSafe,
        })
    }

    /// Reads the entry (`huge_ptep_get()`).
    #[inline]
    pub fn get(&self) -> Pte {
        // SAFETY: By the type invariants `pte` is valid and locked.
        Pte::from_raw(unsafe {
            bindings::huge_ptep_get(self.vma.mm().as_raw(), self.addr, self.pte.as_ptr())
        })
    }

    /// Whether a present entry maps a huge page that is not anonymous.
    #[inline]
    pub fn maps_file_page(&self) -> bool {
        // SAFETY: By the type invariants the entry is locked.
        unsafe { hugetlb_maps_file_page(self.get()) }
    }

    /// Write-protects the entry for userfaultfd as `PAGEMAP_SCAN` does (`make_uffd_wp_huge_pte()`):
    /// an empty entry gets a uffd-wp marker, a migration entry its uffd-wp bit (made readable
    /// first if writable), a present entry
    /// the uffd-wp bit; poisoned entries and markers are left alone. A changed present entry is
    /// flushed from the TLB before the lock is dropped. Does nothing in a VMA not registered for
    /// uffd-wp.
    pub fn make_uffd_wp(&mut self) {
        if !self.vma.userfaultfd_wp() {
            return;
        }
        let pte = self.get();
        let size = hugetlb_page_size(self.vma);
        let (vma, mm, ptep) = (self.vma.as_ptr(), self.vma.mm().as_raw(), self.pte.as_ptr());
        if pte.is_huge_none() {
            // SAFETY: By the type invariants the entry is locked; an empty entry is not cached by
            // the TLB.
            unsafe {
                let marker = bindings::make_pte_marker_uffd_wp();
                bindings::pagewalk_set_huge_pte_at(mm, self.addr, ptep, marker, size);
            }
            return;
        }
        // SAFETY: Pure function of the entry's value, which is locked.
        let entry = unsafe { bindings::softleaf_from_pte(pte.as_raw()) };
        // SAFETY: Pure functions of the entry's value.
        if unsafe { bindings::softleaf_is_hwpoison(entry) || bindings::softleaf_is_marker(entry) } {
            return;
        }
        // SAFETY: Pure function of the entry's value.
        if unsafe { bindings::softleaf_is_migration(entry) } {
            // SAFETY: By the type invariants the entry is locked; it is not present. A writable
            // migration entry is made readable first, as for a PTE.
            unsafe {
                let new = bindings::pte_swp_mkuffd(bindings::pte_softleaf_wrprotect(pte.as_raw()));
                bindings::pagewalk_set_huge_pte_at(mm, self.addr, ptep, new, size);
            }
            return;
        }
        // SAFETY: By the type invariants the entry is locked; start/commit keep the accessed and
        // dirty bits the hardware sets meanwhile; the flush follows before the unlock.
        unsafe {
            let old = bindings::pagewalk_huge_ptep_modify_prot_start(vma, self.addr, ptep);
            let new = bindings::huge_pte_mkuffd(old);
            bindings::pagewalk_huge_ptep_modify_prot_commit(vma, self.addr, ptep, old, new);
            bindings::pagewalk_flush_hugetlb_tlb_range(vma, self.addr, self.addr + size);
        }
    }
}

impl Drop for HugetlbGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariants both locks are held, taken in this order.
        unsafe {
            bindings::spin_unlock(self.ptl.as_ptr());
            bindings::i_mmap_unlock_write(self.mapping.as_ptr());
        }
    }
}

/// A range without page tables seen by [`PageWalk::pte_hole`].
///
/// # Invariants
///
/// The walker holds the mmap lock for `'a`, and if `vma` is a hugetlb VMA its hugetlb VMA read
/// lock.
pub struct Hole<'a, M = ReadOnly> {
    vma: Option<&'a VmaRef>,
    _invariant: PhantomData<*mut &'a ()>,
    _mode: PhantomData<M>,
}

impl<'a, M> Hole<'a, M> {
    /// The VMA of the hole; `None` for a gap between VMAs.
    #[inline]
    pub fn vma(&self) -> Option<&'a VmaRef> {
        self.vma
    }
}

impl Hole<'_, UffdWp> {
    /// Write-protects `addr..end` of the hole's VMA for userfaultfd, as `PAGEMAP_SCAN` does for
    /// unpopulated ranges: uffd-wp markers are installed (`uffd_wp_range()`; in a hugetlb VMA one
    /// marker per huge page from the huge page containing `addr`, without the hugetlb VMA write
    /// lock that `uffd_wp_range()` would take while the walk holds it for reading).
    ///
    /// Fails with `EINVAL` outside a VMA registered for uffd-wp, outside the VMA's range or for
    /// addresses that are not page-aligned, with `ENOMEM` if a page table cannot be allocated.
    pub fn make_uffd_wp(&mut self, addr: usize, end: usize) -> Result {
        let vma = self.vma.ok_or(EINVAL)?;
        if addr >= end || addr < vma.start() || end > vma.end() || !vma.userfaultfd_wp() {
            return Err(EINVAL);
        }
        // `change_protection()` steps a page at a time until it meets `end`.
        if addr % PAGE_SIZE != 0 || end % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        if !vma.is_hugetlb() {
            // SAFETY: By the type invariants the mmap lock is held; the page-aligned range lies
            // in `vma`, which is registered for uffd-wp.
            let ret =
                unsafe { bindings::pagewalk_uffd_wp_range(vma.as_ptr(), addr, end - addr, true) };
            // `PAGEMAP_SCAN` keeps the result in an int, as done here.
            let ret = ret as c_int;
            return if ret < 0 {
                Err(Error::from_errno(ret))
            } else {
                Ok(())
            };
        }
        let size = hugetlb_page_size(vma);
        let mm = vma.mm().as_raw();
        let mut a = addr & !(size - 1);
        while a < end {
            // SAFETY: By the type invariants the mmap lock and the hugetlb VMA read lock are
            // held; `a` is a huge page address of `vma`.
            let pte = unsafe { bindings::pagewalk_huge_pte_alloc(mm, vma.as_ptr(), a, size) };
            let pte = NonNull::new(pte).ok_or(ENOMEM)?;
            // SAFETY: `pte` is the hugetlb entry of `a` in `vma`; the locks are held (above).
            let mut guard = unsafe { HugetlbGuard::lock(vma, pte, a) }.ok_or(EINVAL)?;
            guard.make_uffd_wp();
            drop(guard);
            a += size;
        }
        Ok(())
    }
}

/// The C side of a [`PageWalk`] implementation.
struct Adapter<T>(PhantomData<T>);

impl<T: PageWalk> Adapter<T> {
    /// The walk's state and VMA.
    ///
    /// # Safety
    ///
    /// `walk` is the `struct mm_walk` of a walk started by [`walk`] for `T`: its `private` is the
    /// `T` borrowed for the walk, and its `vma` is NULL or a VMA valid for the callback.
    unsafe fn state<'a>(walk: *mut bindings::mm_walk) -> (&'a mut T, Option<&'a VmaRef>) {
        // SAFETY: By the function's safety requirements `walk` is valid.
        let w = unsafe { &*walk };
        // SAFETY: `private` is the `&mut T` of [`walk`], not otherwise used during the walk.
        let this = unsafe { &mut *w.private.cast::<T>() };
        // SAFETY: A non-NULL `vma` is valid for the callback, under the walk's lock.
        let vma = (!w.vma.is_null()).then(|| unsafe { VmaRef::from_raw(w.vma) });
        (this, vma)
    }

    fn flow(r: Result<Flow>) -> c_int {
        match r {
            Ok(Flow::Continue) => 0,
            Ok(Flow::Stop) => STOP,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by `walk_page_range()` for a walk started by [`walk`] for `T`.
    unsafe extern "C" fn test_walk(
        start: c_ulong,
        end: c_ulong,
        walk: *mut bindings::mm_walk,
    ) -> c_int {
        // SAFETY: By the function's safety requirements.
        let (this, vma) = unsafe { Self::state(walk) };
        // `test_walk` is only called for a VMA.
        let Some(vma) = vma else { return 0 };
        match this.test_walk(vma, start, end) {
            Ok(VmaFilter::Walk) => 0,
            Ok(VmaFilter::Skip) => 1,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by `walk_page_range()` for a walk started by [`walk`] for `T`.
    unsafe extern "C" fn pre_vma(
        start: c_ulong,
        end: c_ulong,
        walk: *mut bindings::mm_walk,
    ) -> c_int {
        // SAFETY: By the function's safety requirements.
        let (this, vma) = unsafe { Self::state(walk) };
        let Some(vma) = vma else { return 0 };
        Self::flow(this.pre_vma(vma, start, end))
    }

    /// # Safety
    ///
    /// Called by `walk_page_range()` for a walk started by [`walk`] for `T`.
    unsafe extern "C" fn post_vma(walk: *mut bindings::mm_walk) {
        // SAFETY: By the function's safety requirements.
        let (this, vma) = unsafe { Self::state(walk) };
        if let Some(vma) = vma {
            // INVARIANT: `post_vma` is called by the walker, under its lock, for the VMA it has
            // just walked (write-locked by a walk with `PGWALK_WRLOCK`).
            let mut end = VmaEnd {
                vma,
                _invariant: PhantomData,
                _mode: PhantomData,
            };
            this.post_vma(&mut end);
        }
    }

    /// # Safety
    ///
    /// Called by `walk_page_range()` for a walk started by [`walk`] for `T`, with `pmd` the
    /// entry covering `addr..next`.
    unsafe extern "C" fn pmd_entry(
        pmd: *mut bindings::pmd_t,
        addr: c_ulong,
        next: c_ulong,
        walk: *mut bindings::mm_walk,
    ) -> c_int {
        // SAFETY: By the function's safety requirements.
        let (this, vma) = unsafe { Self::state(walk) };
        // Walks started here always have a VMA at the PMD level.
        let (Some(vma), Some(pmd)) = (vma, NonNull::new(pmd)) else {
            return 0;
        };
        // INVARIANT: The walker passes the PMD of `addr..next` of `vma` under its locks.
        let mut entry = PmdEntry {
            pmd,
            vma,
            addr,
            end: next,
            _invariant: PhantomData,
            _mode: PhantomData,
        };
        let action = match this.pmd_entry(&mut entry, addr, next) {
            Ok(PmdAction::Descend) => bindings::page_walk_action_ACTION_SUBTREE,
            Ok(PmdAction::Next) => bindings::page_walk_action_ACTION_CONTINUE,
            Ok(PmdAction::Again) => bindings::page_walk_action_ACTION_AGAIN,
            Ok(PmdAction::Stop) => return STOP,
            Err(e) => return e.to_errno(),
        };
        // SAFETY: `walk` is valid (see above); the walker reads `action` after the callback.
        unsafe { (*walk).action = action };
        0
    }

    /// # Safety
    ///
    /// Called by `walk_page_range()` for a walk started by [`walk`] for `T`, with `pte` the
    /// locked entry of `addr`.
    unsafe extern "C" fn pte_entry(
        pte: *mut bindings::pte_t,
        addr: c_ulong,
        next: c_ulong,
        walk: *mut bindings::mm_walk,
    ) -> c_int {
        // SAFETY: By the function's safety requirements.
        let (this, vma) = unsafe { Self::state(walk) };
        let (Some(vma), Some(pte)) = (vma, NonNull::new(pte)) else {
            return 0;
        };
        // INVARIANT: The walker holds the table lock of `pte` during the callback.
        let mut entry = PteEntry {
            pte,
            vma,
            addr,
            flush: None,
            _invariant: PhantomData,
            _mode: PhantomData,
        };
        let ret = Self::flow(this.pte_entry(&mut entry, addr, next));
        flush_tlb(vma, entry.flush);
        ret
    }

    /// # Safety
    ///
    /// Called by `walk_page_range()` for a walk started by [`walk`] for `T`.
    unsafe extern "C" fn pte_hole(
        addr: c_ulong,
        next: c_ulong,
        depth: c_int,
        walk: *mut bindings::mm_walk,
    ) -> c_int {
        // SAFETY: By the function's safety requirements.
        let (this, vma) = unsafe { Self::state(walk) };
        // INVARIANT: The walker calls `pte_hole` with the mmap lock held, and for a hugetlb VMA
        // with its hugetlb VMA read lock held.
        let mut hole = Hole {
            vma,
            _invariant: PhantomData,
            _mode: PhantomData,
        };
        match Self::flow(this.pte_hole(&mut hole, addr, next, depth)) {
            // Depth -1: the range of a `VM_PFNMAP` VMA, from `walk_page_test()`.
            STOP if depth == -1 => STOP_FROM_TEST,
            r => r,
        }
    }

    /// # Safety
    ///
    /// Called by `walk_page_range()` for a walk started by [`walk`] for `T`, with `pte` the
    /// hugetlb entry covering `addr..next`.
    unsafe extern "C" fn hugetlb_entry(
        pte: *mut bindings::pte_t,
        _hmask: c_ulong,
        addr: c_ulong,
        next: c_ulong,
        walk: *mut bindings::mm_walk,
    ) -> c_int {
        // SAFETY: By the function's safety requirements.
        let (this, vma) = unsafe { Self::state(walk) };
        let (Some(vma), Some(pte)) = (vma, NonNull::new(pte)) else {
            return 0;
        };
        // INVARIANT: The walker holds the hugetlb VMA read lock during the callback.
        let mut entry = HugetlbEntry {
            pte,
            vma,
            addr,
            _invariant: PhantomData,
            _mode: PhantomData,
        };
        Self::flow(this.hugetlb_entry(&mut entry, addr, next))
    }

    const fn ops(lock: bindings::page_walk_lock) -> bindings::mm_walk_ops {
        bindings::mm_walk_ops {
            pgd_entry: None,
            p4d_entry: None,
            pud_entry: None,
            pmd_entry: if T::HAS_PMD_ENTRY {
                Some(Self::pmd_entry)
            } else {
                None
            },
            pte_entry: if T::HAS_PTE_ENTRY {
                Some(Self::pte_entry)
            } else {
                None
            },
            pte_hole: if T::HAS_PTE_HOLE {
                Some(Self::pte_hole)
            } else {
                None
            },
            hugetlb_entry: if T::HAS_HUGETLB_ENTRY {
                Some(Self::hugetlb_entry)
            } else {
                None
            },
            test_walk: if T::HAS_TEST_WALK {
                Some(Self::test_walk)
            } else {
                None
            },
            pre_vma: if T::HAS_PRE_VMA {
                Some(Self::pre_vma)
            } else {
                None
            },
            post_vma: if T::HAS_POST_VMA && T::POST_VMA {
                Some(Self::post_vma)
            } else {
                None
            },
            install_pte: None,
            walk_lock: lock,
        }
    }

    const READ_OPS: bindings::mm_walk_ops = Self::ops(bindings::page_walk_lock_PGWALK_RDLOCK);
    const WRITE_OPS: bindings::mm_walk_ops = Self::ops(bindings::page_walk_lock_PGWALK_WRLOCK);
}

/// Refuses an empty range (as `walk_page_range()` does) and addresses that are not page-aligned:
/// the handles index page tables from the addresses the walker passes, and an unaligned start
/// would make them act on the entry of the page before.
fn check_range(start: usize, end: usize) -> Result {
    if start >= end || start % PAGE_SIZE != 0 || end % PAGE_SIZE != 0 {
        return Err(EINVAL);
    }
    Ok(())
}

/// Runs `walk_page_range()` over `start..end` of `mm`.
///
/// The caller holds the mmap lock that `ops.walk_lock` requires.
fn walk<T: PageWalk>(
    mm: &MmWithUser,
    start: usize,
    end: usize,
    walker: &mut T,
    ops: &'static bindings::mm_walk_ops,
) -> Result<WalkOutcome> {
    let private: *mut T = walker;
    check_range(start, end)?;
    // SAFETY: `mm` is valid with a non-zero `mm_users`; the caller holds the lock `ops` states;
    // the callbacks of `ops` are `Adapter<T>`'s, which expect `private` to be the `T`, borrowed
    // mutably for the duration of the call and not used otherwise meanwhile.
    let ret = unsafe { bindings::walk_page_range(mm.as_raw(), start, end, ops, private.cast()) };
    match ret {
        0 => Ok(WalkOutcome::Completed),
        r if r > 0 || r == STOP_FROM_TEST => Ok(WalkOutcome::Stopped),
        r => Err(Error::from_errno(r)),
    }
}

impl MmapReadGuard<'_> {
    /// Walks the page tables of `start..end` with `walker` (`PGWALK_RDLOCK`).
    ///
    /// Fails with `EINVAL` when `start >= end` or either is not page-aligned, or with the first
    /// error a callback returns.
    #[inline]
    pub fn walk_page_range<T: PageWalk<Mode = ReadOnly>>(
        &self,
        start: usize,
        end: usize,
        walker: &mut T,
    ) -> Result<WalkOutcome> {
        walk(self.mm, start, end, walker, &Adapter::<T>::READ_OPS)
    }

    /// Walks the page tables of `start..end` with `walker`, which may write-protect entries for
    /// userfaultfd ([`UffdWp`]), inside an `MMU_NOTIFY_PROTECTION_VMA` invalidation of
    /// `start..end` (`PGWALK_RDLOCK`).
    ///
    /// Fails as [`MmapReadGuard::walk_page_range`] does.
    #[inline]
    pub fn walk_page_range_uffd_wp<T: PageWalk<Mode = UffdWp>>(
        &self,
        start: usize,
        end: usize,
        walker: &mut T,
    ) -> Result<WalkOutcome> {
        check_range(start, end)?;
        self.invalidate_range(Event::ProtectionVma, start, end, || {
            walk(self.mm, start, end, walker, &Adapter::<T>::READ_OPS)
        })
    }
}

impl MmapWriteGuard<'_> {
    /// Walks the page tables of `start..end` with `walker` (`PGWALK_WRLOCK`: each VMA is
    /// write-locked as the walk reaches it, excluding page faults that hold only the VMA lock).
    ///
    /// Fails with `EINVAL` when `start >= end` or either is not page-aligned, or with the first
    /// error a callback returns.
    #[inline]
    pub fn walk_page_range<T: PageWalk<Mode = ReadOnly>>(
        &self,
        start: usize,
        end: usize,
        walker: &mut T,
    ) -> Result<WalkOutcome> {
        walk(self.mm, start, end, walker, &Adapter::<T>::WRITE_OPS)
    }

    /// Walks the page tables of `start..end` with `walker`, which may clear soft-dirty state
    /// ([`ClearSoftDirty`]), as [`MmapWriteGuard::walk_page_range`] does, inside an
    /// `MMU_NOTIFY_SOFT_DIRTY` invalidation of `start..end` and with a TLB flush pending. Every
    /// cleared entry is flushed before its page-table lock is dropped, so none is left cached
    /// writable when this returns.
    ///
    /// Fails as [`MmapWriteGuard::walk_page_range`] does.
    #[inline]
    pub fn walk_page_range_clear_soft_dirty<T: PageWalk<Mode = ClearSoftDirty>>(
        &self,
        start: usize,
        end: usize,
        walker: &mut T,
    ) -> Result<WalkOutcome> {
        check_range(start, end)?;
        self.with_tlb_flush_pending(|| {
            self.invalidate_range(Event::SoftDirty, start, end, || {
                walk(self.mm, start, end, walker, &Adapter::<T>::WRITE_OPS)
            })
        })
    }
}

#[cfg(CONFIG_RUST_PAGEWALK_KUNIT_TEST)]
#[macros::kunit_tests(rust_mm_pagewalk)]
mod tests {
    use super::*;
    use crate::{
        alloc::{flags::GFP_KERNEL, KVec},
        error::to_result,
        uaccess::{UserPtr, UserSlice},
    };

    // Values of include/uapi/asm-generic/mman-common.h, which x86 uses.
    const PROT_READ_WRITE: c_ulong = 0x1 | 0x2;
    const MAP_PRIVATE_ANONYMOUS: c_ulong = 0x02 | 0x20;

    /// Maps `pages` pages of anonymous memory in the test thread's own address space (made by
    /// `kunit_attach_mm()` on first use, torn down when the test's kthread exits).
    fn map_anon(pages: usize) -> Result<usize> {
        // SAFETY: Called from a KUnit test case, in its kthread.
        to_result(unsafe { bindings::kunit_attach_mm() })?;
        // SAFETY: `current->mm` is set; a NULL file maps anonymous memory.
        let addr = unsafe {
            bindings::vm_mmap(
                core::ptr::null_mut(),
                0,
                pages * PAGE_SIZE,
                PROT_READ_WRITE,
                MAP_PRIVATE_ANONYMOUS,
                0,
            )
        };
        // An errno comes back as a value within the last page of the address space.
        if addr == 0 || addr > usize::MAX - PAGE_SIZE {
            return Err(ENOMEM);
        }
        Ok(addr)
    }

    fn unmap(addr: usize, pages: usize) -> Result {
        // SAFETY: `current->mm` is set (by `map_anon`).
        to_result(unsafe { bindings::vm_munmap(addr, pages * PAGE_SIZE) })
    }

    /// Writes one byte at `addr`, faulting the page in (and marking it soft-dirty).
    fn write_byte(addr: usize) -> Result {
        UserSlice::new(UserPtr::from_addr(addr), 1)
            .writer()
            .write_slice(&[0x5a])
    }

    /// Runs `f` with the test thread's address space.
    fn with_mm<R>(f: impl FnOnce(&MmWithUser) -> Result<R>) -> Result<R> {
        let task = crate::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        f(mm)
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Ev {
        TestWalk(usize, usize),
        Pre(usize, usize),
        Post(usize),
        Present(usize),
        Empty(usize),
        Hole(usize, usize, bool, i32),
    }

    /// Records every callback. `pte_entry` runs under the PTE table spinlock, where nothing may
    /// sleep: the room for the events is allocated before the walk.
    struct Recorder {
        ev: KVec<Ev>,
        stop_at_present: Option<usize>,
        skip_vma: Option<usize>,
    }

    impl Recorder {
        fn new() -> Result<Self> {
            Ok(Self {
                ev: KVec::with_capacity(1024, GFP_KERNEL)?,
                stop_at_present: None,
                skip_vma: None,
            })
        }

        fn push(&mut self, e: Ev) -> Result {
            self.ev.push_within_capacity(e).map_err(|_| ENOMEM)
        }

        fn present(&self) -> usize {
            self.ev
                .iter()
                .filter(|e| matches!(e, Ev::Present(_)))
                .count()
        }

        fn is_present(&self, a: usize) -> bool {
            self.ev.contains(&Ev::Present(a))
        }

        /// Whether `a` was reported as an empty PTE or inside a hole.
        fn is_unpopulated(&self, a: usize) -> bool {
            self.ev.iter().any(|e| match *e {
                Ev::Empty(p) => p == a,
                Ev::Hole(s, n, _, _) => s <= a && a < n,
                _ => false,
            })
        }
    }

    #[vtable]
    impl PageWalk for Recorder {
        type Mode = ReadOnly;

        fn test_walk(&mut self, vma: &VmaRef, start: usize, end: usize) -> Result<VmaFilter> {
            self.push(Ev::TestWalk(start, end))?;
            Ok(if self.skip_vma == Some(vma.start()) {
                VmaFilter::Skip
            } else {
                VmaFilter::Walk
            })
        }

        fn pre_vma(&mut self, _vma: &VmaRef, start: usize, end: usize) -> Result<Flow> {
            self.push(Ev::Pre(start, end))?;
            Ok(Flow::Continue)
        }

        fn post_vma(&mut self, vma: &mut VmaEnd<'_>) {
            // Cannot fail the walk from here: a lost event shows as a count mismatch.
            let _ = self.push(Ev::Post(vma.vma().start()));
        }

        fn pte_entry(&mut self, pte: &mut PteEntry<'_>, addr: usize, next: usize) -> Result<Flow> {
            if next != addr + PAGE_SIZE {
                return Err(EINVAL);
            }
            if pte.get().is_present() {
                self.push(Ev::Present(addr))?;
                if self.stop_at_present == Some(self.present()) {
                    return Ok(Flow::Stop);
                }
            } else if pte.get().is_none() {
                self.push(Ev::Empty(addr))?;
            }
            Ok(Flow::Continue)
        }

        fn pte_hole(
            &mut self,
            hole: &mut Hole<'_>,
            addr: usize,
            next: usize,
            depth: i32,
        ) -> Result<Flow> {
            self.push(Ev::Hole(addr, next, hole.vma().is_some(), depth))?;
            Ok(Flow::Continue)
        }
    }

    #[test]
    fn ptes_present_and_empty() -> Result {
        let a = map_anon(8)?;
        for i in [1, 2, 6] {
            write_byte(a + i * PAGE_SIZE)?;
        }
        let mut r = Recorder::new()?;
        let end = a + 8 * PAGE_SIZE;
        let out = with_mm(|mm| {
            mm.mmap_read_lock_killable()?
                .walk_page_range(a, end, &mut r)
        })?;
        assert_eq!(out, WalkOutcome::Completed);
        assert_eq!(r.present(), 3);
        for i in 0..8 {
            let p = a + i * PAGE_SIZE;
            assert_eq!(r.is_present(p), [1, 2, 6].contains(&i));
            assert_eq!(r.is_unpopulated(p), ![1, 2, 6].contains(&i));
        }
        let vma_events: KVec<Ev> = {
            let mut v = KVec::new();
            for e in
                r.ev.iter()
                    .filter(|e| matches!(e, Ev::TestWalk(..) | Ev::Pre(..) | Ev::Post(..)))
            {
                v.push(*e, GFP_KERNEL)?;
            }
            v
        };
        assert_eq!(
            &vma_events[..],
            &[Ev::TestWalk(a, end), Ev::Pre(a, end), Ev::Post(a)]
        );
        unmap(a, 8)
    }

    #[test]
    fn gap_between_vmas_is_a_hole_without_vma() -> Result {
        let a = map_anon(3)?;
        write_byte(a)?;
        write_byte(a + 2 * PAGE_SIZE)?;
        unmap(a + PAGE_SIZE, 1)?;
        let mut r = Recorder::new()?;
        let out = with_mm(|mm| {
            mm.mmap_read_lock_killable()?
                .walk_page_range(a, a + 3 * PAGE_SIZE, &mut r)
        })?;
        assert_eq!(out, WalkOutcome::Completed);
        assert!(r
            .ev
            .iter()
            .any(|e| *e == Ev::Hole(a + PAGE_SIZE, a + 2 * PAGE_SIZE, false, -1)));
        assert_eq!(
            r.ev.iter()
                .filter(|e| matches!(e, Ev::TestWalk(..)))
                .count(),
            2
        );
        assert!(r.is_present(a) && r.is_present(a + 2 * PAGE_SIZE));
        assert_eq!(r.present(), 2);
        unmap(a, 3)
    }

    #[test]
    fn stop_ends_the_walk() -> Result {
        let a = map_anon(4)?;
        for i in 0..4 {
            write_byte(a + i * PAGE_SIZE)?;
        }
        let mut r = Recorder::new()?;
        r.stop_at_present = Some(2);
        let out = with_mm(|mm| {
            mm.mmap_read_lock_killable()?
                .walk_page_range(a, a + 4 * PAGE_SIZE, &mut r)
        })?;
        assert_eq!(out, WalkOutcome::Stopped);
        assert_eq!(r.present(), 2);
        assert!(matches!(
            r.ev.last(),
            Some(Ev::Present(_)) | Some(Ev::Post(_))
        ));
        assert!(!r.ev.iter().any(|e| matches!(e, Ev::Empty(_))));
        unmap(a, 4)
    }

    #[test]
    fn test_walk_skips_a_vma() -> Result {
        // Two VMAs with a gap between them (adjacent anonymous mappings would merge).
        let a = map_anon(3)?;
        for i in 0..3 {
            write_byte(a + i * PAGE_SIZE)?;
        }
        unmap(a + PAGE_SIZE, 1)?;
        let b = a + 2 * PAGE_SIZE;
        let mut r = Recorder::new()?;
        r.skip_vma = Some(a);
        with_mm(|mm| {
            mm.mmap_read_lock_killable()?
                .walk_page_range(a, b + PAGE_SIZE, &mut r)
        })?;
        assert!(r.ev.contains(&Ev::TestWalk(a, a + PAGE_SIZE)));
        assert!(!r.is_present(a));
        assert!(!r.ev.contains(&Ev::Pre(a, a + PAGE_SIZE)));
        assert!(r.is_present(b));
        assert!(r.ev.contains(&Ev::Pre(b, b + PAGE_SIZE)));
        unmap(a, 3)
    }

    #[test]
    fn empty_range_is_einval() -> Result {
        let a = map_anon(1)?;
        let mut r = Recorder::new()?;
        let res = with_mm(|mm| mm.mmap_read_lock_killable()?.walk_page_range(a, a, &mut r));
        assert_eq!(res, Err(EINVAL));
        assert!(r.ev.is_empty());
        unmap(a, 1)
    }

    /// The handles index page tables from the walker's addresses: a range that is not
    /// page-aligned is refused before any callback runs, under either lock.
    #[test]
    fn unaligned_range_is_einval() -> Result {
        let a = map_anon(4)?;
        write_byte(a)?;
        let mut r = Recorder::new()?;
        for (s, e) in [
            (a + 1, a + 2 * PAGE_SIZE),
            (a, a + PAGE_SIZE + 1),
            (a + PAGE_SIZE - 1, a + 4 * PAGE_SIZE - 1),
        ] {
            let res = with_mm(|mm| mm.mmap_read_lock_killable()?.walk_page_range(s, e, &mut r));
            assert_eq!(res, Err(EINVAL));
            let res = with_mm(|mm| mm.mmap_write_lock_killable()?.walk_page_range(s, e, &mut r));
            assert_eq!(res, Err(EINVAL));
        }
        assert!(r.ev.is_empty());
        unmap(a, 4)
    }

    /// Answers `Again` the first time, then maps the PTE table and counts present entries.
    struct PmdCounter {
        calls: usize,
        present: usize,
        soft_dirty: usize,
    }

    #[vtable]
    impl PageWalk for PmdCounter {
        type Mode = ReadOnly;

        fn pmd_entry(
            &mut self,
            pmd: &mut PmdEntry<'_>,
            _addr: usize,
            _next: usize,
        ) -> Result<PmdAction> {
            self.calls += 1;
            if self.calls == 1 {
                return Ok(PmdAction::Again);
            }
            let count = |t: &mut PteTable<'_>| {
                let present = t.iter().filter(|(_, p)| p.is_present());
                present.fold((0, 0), |(n, d), (_, p)| {
                    (n + 1, d + usize::from(p.is_soft_dirty()))
                })
            };
            let Some((present, soft_dirty)) = pmd.with_ptes(count) else {
                return Ok(PmdAction::Again);
            };
            self.present += present;
            self.soft_dirty += soft_dirty;
            Ok(PmdAction::Next)
        }
    }

    fn pmd_count(a: usize) -> Result<PmdCounter> {
        let mut w = PmdCounter {
            calls: 0,
            present: 0,
            soft_dirty: 0,
        };
        with_mm(|mm| {
            mm.mmap_read_lock_killable()?
                .walk_page_range(a, a + PAGE_SIZE, &mut w)
        })?;
        Ok(w)
    }

    #[test]
    fn pmd_again_then_ptes() -> Result {
        let a = map_anon(1)?;
        write_byte(a)?;
        let w = pmd_count(a)?;
        assert_eq!(w.calls, 2);
        assert_eq!(w.present, 1);
        unmap(a, 1)
    }

    /// Clears the soft-dirty state of the page at `.0`, counting in `.1` the present entries it
    /// cleared.
    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    struct ClearOne(usize, usize);

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    #[vtable]
    impl PageWalk for ClearOne {
        type Mode = ClearSoftDirty;

        fn pmd_entry(
            &mut self,
            pmd: &mut PmdEntry<'_, ClearSoftDirty>,
            _addr: usize,
            _next: usize,
        ) -> Result<PmdAction> {
            let addr = self.0;
            let clear = |t: &mut PteTable<'_, ClearSoftDirty>| {
                let present = t.get(addr).is_some_and(|p| p.is_present());
                t.clear_soft_dirty(addr);
                usize::from(present)
            };
            let Some(n) = pmd.with_ptes(clear) else {
                return Ok(PmdAction::Again);
            };
            self.1 += n;
            Ok(PmdAction::Next)
        }
    }

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    #[test]
    fn soft_dirty_clear_then_write_is_seen() -> Result {
        let a = map_anon(1)?;
        write_byte(a)?;
        assert_eq!(pmd_count(a)?.soft_dirty, 1);
        // Clear under the write lock; the next read walk sees it clean.
        let mut c = ClearOne(a, 0);
        with_mm(|mm| {
            mm.mmap_write_lock_killable()?
                .walk_page_range_clear_soft_dirty(a, a + PAGE_SIZE, &mut c)
        })?;
        assert_eq!(c.1, 1);
        assert_eq!(pmd_count(a)?.soft_dirty, 0);
        // This thread's TLB held a writable entry for the page: unless the clear flushed it, this
        // write would not fault and would be lost to soft-dirty tracking.
        write_byte(a)?;
        assert_eq!(pmd_count(a)?.soft_dirty, 1);
        unmap(a, 1)
    }

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    /// Visits entries with [`PteTable::for_each_entry`], stopping after `stop_after` present
    /// entries, clearing the soft-dirty state of `clear`.
    struct EntryVisitor {
        seen: KVec<usize>,
        present: usize,
        soft_dirty: usize,
        select: fn(Pte) -> bool,
        stop_after: Option<usize>,
        clear: Option<usize>,
    }

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    #[vtable]
    impl PageWalk for EntryVisitor {
        type Mode = ClearSoftDirty;

        fn pmd_entry(
            &mut self,
            pmd: &mut PmdEntry<'_, ClearSoftDirty>,
            _addr: usize,
            _next: usize,
        ) -> Result<PmdAction> {
            let mut full = false;
            let select = self.select;
            let walked = pmd.with_ptes(|ptes| {
                ptes.for_each_entry(select, |e, pte| {
                    full |= self.seen.push_within_capacity(e.addr()).is_err();
                    if pte.is_present() {
                        self.present += 1;
                        if pte.is_soft_dirty() {
                            self.soft_dirty += 1;
                        }
                        if self.clear == Some(e.addr()) {
                            e.clear_soft_dirty();
                        }
                        if self.stop_after == Some(self.present) {
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                });
            });
            if walked.is_none() {
                return Ok(PmdAction::Again);
            }
            if full {
                return Err(ENOMEM);
            }
            Ok(PmdAction::Next)
        }
    }

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    /// Walks the `pages` pages from `a` with an [`EntryVisitor`].
    fn visit(
        a: usize,
        pages: usize,
        stop_after: Option<usize>,
        clear: Option<usize>,
    ) -> Result<EntryVisitor> {
        visit_selected(a, pages, |_| true, stop_after, clear)
    }

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    fn visit_selected(
        a: usize,
        pages: usize,
        select: fn(Pte) -> bool,
        stop_after: Option<usize>,
        clear: Option<usize>,
    ) -> Result<EntryVisitor> {
        let mut v = EntryVisitor {
            seen: KVec::with_capacity(pages, GFP_KERNEL)?,
            present: 0,
            soft_dirty: 0,
            select,
            stop_after,
            clear,
        };
        let end = a + pages * PAGE_SIZE;
        with_mm(|mm| {
            mm.mmap_write_lock_killable()?
                .walk_page_range_clear_soft_dirty(a, end, &mut v)
        })?;
        Ok(v)
    }

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    #[test]
    fn for_each_entry_selects_stops_and_changes() -> Result {
        let a = map_anon(4)?;
        write_byte(a)?;
        write_byte(a + 2 * PAGE_SIZE)?;
        let p = |i: usize| a + i * PAGE_SIZE;
        // The table's pages, in order.
        let v = visit(a, 4, None, None)?;
        assert_eq!(&v.seen[..], &[p(0), p(1), p(2), p(3)]);
        assert_eq!((v.present, v.soft_dirty), (2, 2));
        // A walk of part of the table: that part only.
        let v = visit(p(1), 2, None, None)?;
        assert_eq!(&v.seen[..], &[p(1), p(2)]);
        assert_eq!((v.present, v.soft_dirty), (1, 1));
        // Break stops at the first present entry.
        let v = visit(a, 4, Some(1), None)?;
        assert_eq!(&v.seen[..], &[p(0)]);
        // Only the entries `select` takes reach the closure.
        let v = visit_selected(a, 4, Pte::is_present, None, None)?;
        assert_eq!(&v.seen[..], &[p(0), p(2)]);
        // A change through the slot sticks, and the write after it is seen.
        visit(a, 4, None, Some(p(2)))?;
        assert_eq!(visit(a, 4, None, None)?.soft_dirty, 1);
        write_byte(p(2))?;
        assert_eq!(visit(a, 4, None, None)?.soft_dirty, 2);
        unmap(a, 4)
    }

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    /// Finds the runs of soft-dirty entries with [`PteTable::for_each_run`] (a run that goes on
    /// in the next table is one run) and clears the part of each below `clear_to` with
    /// [`PteRun::clear_soft_dirty`].
    struct RunFinder {
        runs: KVec<(usize, usize)>,
        clear_to: usize,
    }

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    #[vtable]
    impl PageWalk for RunFinder {
        type Mode = ClearSoftDirty;

        fn pmd_entry(
            &mut self,
            pmd: &mut PmdEntry<'_, ClearSoftDirty>,
            _addr: usize,
            _next: usize,
        ) -> Result<PmdAction> {
            let walked = pmd.with_ptes(|t| {
                let mut ret = Ok(());
                t.for_each_run(Pte::is_soft_dirty, |run| {
                    let (a, b) = (run.start(), run.end());
                    match self.runs.last_mut() {
                        Some(last) if last.1 == a => last.1 = b,
                        _ => {
                            if self.runs.push_within_capacity((a, b)).is_err() {
                                ret = Err(ENOMEM);
                                return ControlFlow::Break(());
                            }
                        }
                    }
                    run.clear_soft_dirty(self.clear_to);
                    ControlFlow::Continue(())
                });
                ret
            });
            match walked {
                None => Ok(PmdAction::Again),
                Some(r) => r.map(|()| PmdAction::Next),
            }
        }
    }

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    /// Walks the `pages` pages from `a` with a [`RunFinder`].
    fn find_runs(a: usize, pages: usize, clear_to: usize) -> Result<KVec<(usize, usize)>> {
        let mut f = RunFinder {
            runs: KVec::with_capacity(pages, GFP_KERNEL)?,
            clear_to,
        };
        let end = a + pages * PAGE_SIZE;
        with_mm(|mm| {
            mm.mmap_write_lock_killable()?
                .walk_page_range_clear_soft_dirty(a, end, &mut f)
        })?;
        Ok(f.runs)
    }

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    #[test]
    fn for_each_run_finds_runs_and_clears_them() -> Result {
        let a = map_anon(8)?;
        for i in [1, 2, 3, 5, 7] {
            write_byte(a + i * PAGE_SIZE)?;
        }
        let p = |i: usize| a + i * PAGE_SIZE;
        // Maximal runs, in order.
        let runs = find_runs(a, 8, 0)?;
        assert_eq!(&runs[..], &[(p(1), p(4)), (p(5), p(6)), (p(7), p(8))]);
        // A walk of pages 2..6: runs cut at its edges.
        let runs = find_runs(p(2), 4, 0)?;
        assert_eq!(&runs[..], &[(p(2), p(4)), (p(5), p(6))]);
        // Clearing below an address inside page 3 clears pages 1 and 2 only.
        find_runs(a, 8, p(3) + 1)?;
        let runs = find_runs(a, 8, 0)?;
        assert_eq!(&runs[..], &[(p(3), p(4)), (p(5), p(6)), (p(7), p(8))]);
        // Clearing the runs of pages 5..8 leaves page 3, and a write after it is seen.
        find_runs(p(5), 3, usize::MAX)?;
        assert_eq!(&find_runs(a, 8, 0)?[..], &[(p(3), p(4))]);
        write_byte(p(1))?;
        let runs = find_runs(a, 8, 0)?;
        assert_eq!(&runs[..], &[(p(1), p(2)), (p(3), p(4))]);
        unmap(a, 8)
    }

    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    struct HugeProbe {
        trans_huge: bool,
        locked: bool,
        whole: bool,
    }

    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    #[vtable]
    impl PageWalk for HugeProbe {
        type Mode = ReadOnly;

        fn pmd_entry(
            &mut self,
            pmd: &mut PmdEntry<'_>,
            _addr: usize,
            _next: usize,
        ) -> Result<PmdAction> {
            self.trans_huge |= pmd.get().is_trans_huge();
            if let Some(huge) = pmd.lock_huge() {
                self.locked = true;
                self.whole = huge.covers_whole() && huge.get().is_trans_huge();
            }
            Ok(PmdAction::Next)
        }
    }

    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    #[test]
    fn thp_is_seen_and_locked_at_pmd_level() -> Result {
        const MADV_HUGEPAGE: c_int = 14;
        let huge = bindings::PMD_SIZE;
        let pages = 2 * huge / PAGE_SIZE;
        let a = map_anon(pages)?;
        let h = (a + huge - 1) & !(huge - 1);
        with_mm(|mm| {
            // SAFETY: `mm` is the test thread's live address space; `do_madvise()` takes the
            // mmap lock itself.
            to_result(unsafe { bindings::do_madvise(mm.as_raw(), h, huge, MADV_HUGEPAGE) })
        })?;
        write_byte(h)?;
        let mut p = HugeProbe {
            trans_huge: false,
            locked: false,
            whole: false,
        };
        with_mm(|mm| {
            mm.mmap_read_lock_killable()?
                .walk_page_range(h, h + huge, &mut p)
        })?;
        assert!(p.trans_huge);
        assert!(p.locked);
        assert!(p.whole);
        unmap(a, pages)
    }
}
