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
//! of a [`ReadOnly`] walk change the state of no entry (a huge PMD may still be split, by
//! [`PmdEntry::split_huge`] or by the walker itself, as C's `walk_pmd_range()` does for any walk
//! with a `pte_entry`; for a file or shmem PMD that only zaps it);
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
    error::{
        code::*,
        Error,
        Result,
        VTABLE_DEFAULT_ERROR, //
    },
    ffi::{
        c_int,
        c_ulong, //
    },
    mm::{
        mmu_notifier::{
            self,
            Event, //
        },
        pgtable::{
            self,
            Pmd,
            Pte, //
        },
        virt::{
            flags as vm,
            VmaRef, //
        },
        MmWithUser,
        MmapReadGuard,
        MmapWriteGuard, //
    },
    page::{
        PAGE_MASK,
        PAGE_SIZE, //
    },
    str::CStr,
    types::NotThreadSafe,
    ModuleMetadata,
    ThisModule, //
};
use core::{
    marker::PhantomData,
    ops::ControlFlow,
    ptr::NonNull, //
};
use macros::vtable;

mod adapter;
mod hugetlb;
mod pmd;
mod pte;
mod vma;

use self::adapter::*;
pub use self::{
    hugetlb::*,
    pmd::*,
    pte::*,
    vma::*, //
};

/// What the walk does after a [`PageWalk::pmd_entry`] callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmdAction {
    /// Go down to the PTEs of this PMD (`ACTION_SUBTREE`).
    ///
    /// The walker splits a huge PMD and calls [`PageWalk::pte_entry`] for each PTE. Without a
    /// `pte_entry` this is the same as [`PmdAction::Next`].
    Descend,
    /// Go on with the next PMD, skipping the PTEs of this one (`ACTION_CONTINUE`).
    Next,
    /// Call [`PageWalk::pmd_entry`] again for this PMD (`ACTION_AGAIN`).
    ///
    /// For example when the PTE table went away under the walk ([`PmdEntry::with_ptes`] returned
    /// `None`).
    Again,
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
    /// A callback returned [`ControlFlow::Break`] or [`PmdAction::Stop`].
    Stopped,
}

mod private {
    /// Seals [`super::Mode`] and says what a mode's walk holds.
    pub trait Sealed {
        /// Whether the walk may clear soft-dirty state.
        ///
        /// Such a walk write-locks each VMA and skips `VM_PFNMAP` VMAs, as `clear_refs` does, even
        /// when its [`super::PageWalk::test_walk`] would walk them.
        const CLEARS_SOFT_DIRTY: bool = false;
    }
}

/// What a walk may change in the entries it visits.
///
/// It is the type parameter of the handles its callbacks receive, fixed by the function that starts
/// the walk ([`PageWalk::Mode`]). A handle offers a change only in the mode whose walk holds what
/// that change needs, so a change cannot be made under the wrong lock, outside the MMU notifier
/// invalidation of the walked range or without the TLB flush it needs.
///
/// The trait is sealed; its implementations are the modes below.
pub trait Mode: private::Sealed {}

/// The mode of a walk that changes the state of no entry ([`MmapReadGuard::walk_page_range`],
/// [`MmapWriteGuard::walk_page_range`]).
///
/// Its handles may still split a huge PMD ([`PmdEntry::split_huge`]), which C's walker also
/// does for any walk with a `pte_entry`: the mapping stays, as PTEs.
pub enum ReadOnly {}

impl private::Sealed for ReadOnly {}
impl Mode for ReadOnly {}

/// The mode of a walk that may write-protect entries for userfaultfd.
///
/// Such a walk ([`MmapReadGuard::walk_page_range_uffd_wp`]) runs inside an
/// `MMU_NOTIFY_PROTECTION_VMA` invalidation of exactly its range, as `PAGEMAP_SCAN` does.
pub enum UffdWp {}

impl private::Sealed for UffdWp {}
impl Mode for UffdWp {}

/// The mode of a walk that may clear soft-dirty state.
///
/// Such a walk ([`MmapWriteGuard::walk_page_range_clear_soft_dirty`]) runs under the mmap write
/// lock with each VMA write-locked, inside an `MMU_NOTIFY_SOFT_DIRTY` invalidation of exactly its
/// range, with a TLB flush pending, as `clear_refs` does.
pub enum ClearSoftDirty {}

impl private::Sealed for ClearSoftDirty {
    const CLEARS_SOFT_DIRTY: bool = true;
}
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

/// What [`PageWalk::pte_hole`] returns to stop the walk from `walk_page_test()`.
///
/// `walk_page_test()` calls it for a `VM_PFNMAP` VMA and takes every positive value for "skip this
/// VMA": this is a negative value no errno has, which `walk_page_range()` returns as it is and
/// [`walk`] turns back into [`WalkOutcome::Stopped`].
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
/// Code outside a module (built-in code, the only kind that can walk: see [`BuiltIn`]) names
/// its owner in the `#[vtable]` implementation:
///
/// ```
/// use kernel::mm::pagewalk::{PageWalk, PmdAction, PmdEntry, PteTable, ReadOnly};
/// use kernel::mm::MmWithUser;
/// use kernel::page::PAGE_SIZE;
/// use kernel::prelude::*;
/// # use kernel::mm::pagewalk::testing::with_mapping;
///
/// struct CountPresent(usize);
///
/// #[vtable]
/// impl PageWalk for CountPresent {
///     type OwnerModule = kernel::mm::pagewalk::BuiltIn;
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
///
/// // Eight pages, of which pages 1, 2 and 6 were written.
/// # with_mapping(8, &[1, 2, 6], |mm, start| {
/// assert_eq!(present_pages(mm, start, start + 8 * PAGE_SIZE)?, 3);
/// # Ok(())
/// # })?;
/// # Ok::<(), Error>(())
/// ```
#[vtable]
pub trait PageWalk: Sized {
    /// What the walk may change: [`ReadOnly`] for a walk that only reads.
    ///
    /// It decides which function starts the walk and which changes the callbacks' handles offer.
    type Mode: Mode;

    /// Decides whether the VMA is walked; `start..end` is the part of it inside the walk's range.
    fn test_walk(&mut self, _vma: &VmaRef, _start: usize, _end: usize) -> Result<VmaFilter> {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Called before the page tables of a VMA are walked.
    fn pre_vma(&mut self, _vma: &VmaRef, _start: usize, _end: usize) -> Result<ControlFlow<()>> {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Called after a VMA was walked, whether or not its walk ended in an error; its handle
    /// offers what a walk of this mode may change in the VMA.
    fn post_vma(&mut self, _vma: &mut VmaEnd<'_, Self::Mode>) {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Whether the walker calls [`PageWalk::post_vma`], when it is implemented.
    ///
    /// A type that walks in several modes may need it in some of them only (a call per VMA in the
    /// others costs them for nothing).
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
    ) -> Result<ControlFlow<()>> {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Called for `addr..next` when it has no page table at some level, or lies outside any VMA.
    ///
    /// Outside any VMA, [`Hole::vma`] is `None`. `depth` is 0 (PGD) to 3 (PMD), or -1 when unknown
    /// (outside VMAs). In a hugetlb VMA it is called for each huge page without an entry.
    fn pte_hole(
        &mut self,
        _hole: &mut Hole<'_, Self::Mode>,
        _addr: usize,
        _next: usize,
        _depth: i32,
    ) -> Result<ControlFlow<()>> {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Called for each hugetlb entry covering `addr..next`, under the hugetlb VMA read lock.
    fn hugetlb_entry(
        &mut self,
        _entry: &mut HugetlbEntry<'_, Self::Mode>,
        _addr: usize,
        _next: usize,
    ) -> Result<ControlFlow<()>> {
        crate::build_error!(VTABLE_DEFAULT_ERROR)
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

/// The private state of a walk: the walker and the walked range.
struct Private<'a, T> {
    walker: &'a mut T,
    start: usize,
    end: usize,
}

/// Runs `walk_page_range()` over `start..end` of `mm`.
///
/// # Safety
///
/// The caller holds the mmap lock of `mm` in the mode `ops.walk_lock` requires (for
/// `PGWALK_WRLOCK`, for writing), `ops` is one of `Adapter::<T>`'s tables, and `start..end`
/// passed `mmu_notifier::check_range()`: it is not empty and its bounds are page-aligned (the
/// handles index page tables from the addresses the walker passes, and an unaligned start would
/// make them act on the entry of the page before).
unsafe fn walk<T: PageWalk>(
    mm: &MmWithUser,
    start: usize,
    end: usize,
    walker: &mut T,
    ops: &'static bindings::mm_walk_ops,
) -> Result<WalkOutcome> {
    let mut private = Private { walker, start, end };
    let private: *mut Private<'_, T> = &mut private;
    // SAFETY: `mm` is valid with a non-zero `mm_users`; by the function's safety requirements the
    // caller holds the lock `ops` states and the callbacks of `ops` are `Adapter<T>`'s, which
    // expect `private` to be a `Private<T>` whose walker is borrowed mutably for the duration of
    // the call and not used otherwise meanwhile.
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
        super::mmu_notifier::check_range(start, end)?;
        // SAFETY: The guard holds the mmap lock for reading, as `READ_OPS` requires; the range
        // was checked just above.
        unsafe { walk(self.mm, start, end, walker, &Adapter::<T>::READ_OPS) }
    }

    /// Walks the page tables of `start..end` with `walker`, which may write-protect for
    /// userfaultfd.
    ///
    /// The walk ([`UffdWp`], `PGWALK_RDLOCK`) runs inside an `MMU_NOTIFY_PROTECTION_VMA`
    /// invalidation of `start..end`.
    ///
    /// Fails as [`MmapReadGuard::walk_page_range`] does.
    ///
    /// # Examples
    ///
    /// Write-protecting the present pages of a range for userfaultfd, as `PAGEMAP_SCAN` does with
    /// `PM_SCAN_WP_MATCHING` (here outside a VMA registered for uffd-wp, so nothing changes); a
    /// huge PMD that the range covers in part is split first, as the change must stay inside it:
    ///
    /// ```
    /// use kernel::mm::pagewalk::{PageWalk, PmdAction, PmdEntry, UffdWp};
    /// use kernel::page::PAGE_SIZE;
    /// use kernel::prelude::*;
    /// # use kernel::mm::pagewalk::testing::with_mapping;
    ///
    /// struct Protect(usize);
    ///
    /// #[vtable]
    /// impl PageWalk for Protect {
    ///     type OwnerModule = kernel::mm::pagewalk::BuiltIn;
    ///     type Mode = UffdWp;
    ///
    ///     fn pmd_entry(
    ///         &mut self,
    ///         pmd: &mut PmdEntry<'_, UffdWp>,
    ///         addr: usize,
    ///         next: usize,
    ///     ) -> Result<PmdAction> {
    ///         let split = match pmd.lock_huge() {
    ///             Some(mut huge) if huge.covers_whole() => {
    ///                 huge.make_uffd_wp()?;
    ///                 self.0 += (next - addr) / PAGE_SIZE;
    ///                 return Ok(PmdAction::Next);
    ///             }
    ///             huge => huge.is_some(),
    ///         };
    ///         if split {
    ///             pmd.split_huge();
    ///             return Ok(PmdAction::Again);
    ///         }
    ///         let done = pmd.with_ptes(|t| {
    ///             let mut n = 0;
    ///             let mut a = t.start();
    ///             while a < t.end() {
    ///                 if t.get(a).is_some_and(|pte| pte.is_present()) {
    ///                     t.make_uffd_wp(a)?;
    ///                     n += 1;
    ///                 }
    ///                 a += PAGE_SIZE;
    ///             }
    ///             Ok::<_, Error>(n)
    ///         });
    ///         let Some(n) = done else {
    ///             return Ok(PmdAction::Again);
    ///         };
    ///         self.0 += n?;
    ///         Ok(PmdAction::Next)
    ///     }
    /// }
    ///
    /// # with_mapping(4, &[1, 2], |mm, start| {
    /// let mut walk = Protect(0);
    /// mm.mmap_read_lock_killable()?
    ///     .walk_page_range_uffd_wp(start, start + 4 * PAGE_SIZE, &mut walk)?;
    /// assert_eq!(walk.0, 2);
    /// # Ok(())
    /// # })?;
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn walk_page_range_uffd_wp<T: PageWalk<Mode = UffdWp>>(
        &self,
        start: usize,
        end: usize,
        walker: &mut T,
    ) -> Result<WalkOutcome> {
        super::mmu_notifier::check_range(start, end)?;
        let wp = || {
            // SAFETY: The guard holds the mmap lock for reading, as `READ_OPS` requires; the
            // range was checked above.
            unsafe { walk(self.mm, start, end, walker, &Adapter::<T>::READ_OPS) }
        };
        // SAFETY: The guard holds the mmap lock; the range was checked above.
        unsafe { mmu_notifier::invalidate_range(self.mm, Event::ProtectionVma, start, end, wp) }
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
        super::mmu_notifier::check_range(start, end)?;
        // SAFETY: The guard holds the mmap lock for writing, as `WRITE_OPS` requires; the range
        // was checked just above.
        unsafe { walk(self.mm, start, end, walker, &Adapter::<T>::WRITE_OPS) }
    }

    /// Walks the page tables of `start..end` with `walker`, which may clear soft-dirty state.
    ///
    /// The walk ([`ClearSoftDirty`]) runs as [`MmapWriteGuard::walk_page_range`] does, inside an
    /// `MMU_NOTIFY_SOFT_DIRTY` invalidation of `start..end` and with a TLB flush pending. Every
    /// cleared entry is flushed before its page-table lock is dropped, so none is left cached
    /// writable when this returns.
    ///
    /// Fails as [`MmapWriteGuard::walk_page_range`] does.
    ///
    /// # Examples
    ///
    /// An atomic get-and-clear: the pages of a range written since the last call, each cleared as
    /// it is counted, so that a write after it is seen by the next call (huge PMDs left out):
    ///
    /// ```
    /// use kernel::mm::pagewalk::{ClearSoftDirty, PageWalk, PmdAction, PmdEntry};
    /// use kernel::mm::{pgtable, MmWithUser};
    /// use kernel::page::PAGE_SIZE;
    /// use kernel::prelude::*;
    /// # use kernel::mm::pagewalk::testing::{with_mapping, write_byte};
    ///
    /// struct Written(usize);
    ///
    /// #[vtable]
    /// impl PageWalk for Written {
    ///     type OwnerModule = kernel::mm::pagewalk::BuiltIn;
    ///     type Mode = ClearSoftDirty;
    ///
    ///     fn pmd_entry(
    ///         &mut self,
    ///         pmd: &mut PmdEntry<'_, ClearSoftDirty>,
    ///         _addr: usize,
    ///         _next: usize,
    ///     ) -> Result<PmdAction> {
    ///         let done = pmd.with_ptes(|t| {
    ///             let mut n = 0;
    ///             let mut a = t.start();
    ///             while a < t.end() {
    ///                 if t.clear_soft_dirty(a)? {
    ///                     n += 1;
    ///                 }
    ///                 a += PAGE_SIZE;
    ///             }
    ///             Ok::<_, Error>(n)
    ///         });
    ///         let Some(n) = done else {
    ///             return Ok(PmdAction::Again);
    ///         };
    ///         self.0 += n?;
    ///         Ok(PmdAction::Next)
    ///     }
    /// }
    ///
    /// fn written(mm: &MmWithUser, start: usize, end: usize) -> Result<usize> {
    ///     let mut walk = Written(0);
    ///     mm.mmap_write_lock_killable()?
    ///         .walk_page_range_clear_soft_dirty(start, end, &mut walk)?;
    ///     Ok(walk.0)
    /// }
    ///
    /// # with_mapping(4, &[0, 3], |mm, start| {
    /// # if !pgtable::soft_dirty_supported() {
    /// #     return Ok(());
    /// # }
    /// let end = start + 4 * PAGE_SIZE;
    /// assert_eq!(written(mm, start, end)?, 2);
    /// assert_eq!(written(mm, start, end)?, 0);
    /// write_byte(start + PAGE_SIZE)?;
    /// assert_eq!(written(mm, start, end)?, 1);
    /// # Ok(())
    /// # })?;
    /// # Ok::<(), Error>(())
    /// ```
    #[inline]
    pub fn walk_page_range_clear_soft_dirty<T: PageWalk<Mode = ClearSoftDirty>>(
        &self,
        start: usize,
        end: usize,
        walker: &mut T,
    ) -> Result<WalkOutcome> {
        super::mmu_notifier::check_range(start, end)?;
        let clear = || {
            // SAFETY: The guard holds the mmap lock for writing, as `WRITE_OPS` requires; the
            // range was checked above.
            unsafe { walk(self.mm, start, end, walker, &Adapter::<T>::WRITE_OPS) }
        };
        self.with_tlb_flush_pending(|| {
            // SAFETY: The guard holds the mmap lock; the range was checked above.
            unsafe { mmu_notifier::invalidate_range(self.mm, Event::SoftDirty, start, end, clear) }
        })
    }
}

#[cfg(CONFIG_RUST_PAGEWALK_KUNIT_TEST)]
mod tests;

#[cfg(any(CONFIG_RUST_KERNEL_DOCTESTS, CONFIG_RUST_PAGEWALK_KUNIT_TEST))]
#[doc(hidden)]
pub mod testing;
