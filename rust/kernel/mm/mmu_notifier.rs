// SPDX-License-Identifier: GPL-2.0

//! Telling secondary MMUs (and the TLB-flush machinery) about changes to page tables.
//!
//! Code that changes entries of an address space brackets the change with an invalidation of
//! the range ([`MmapReadGuard::invalidate_range`], [`MmapWriteGuard::invalidate_range`]) so that
//! secondary MMUs (KVM, IOMMU SVA, HMM mirrors) drop what they cached, and under the mmap write
//! lock may declare a TLB flush pending for the duration
//! ([`MmapWriteGuard::with_tlb_flush_pending`]) so that concurrent page-table code that looks at
//! `mm_tlb_flush_pending()` knows entries may still be cached. Both are only reachable through a
//! guard of the mmap lock, and both are scoped to a closure, so the end of a range cannot be
//! forgotten or reordered.
//!
//! C header: [`include/linux/mmu_notifier.h`](srctree/include/linux/mmu_notifier.h)

use crate::{
    bindings,
    error::{
        code::EINVAL,
        Result, //
    },
    mm::{
        MmWithUser,
        MmapReadGuard,
        MmapWriteGuard, //
    },
    page::PAGE_MASK, //
};

/// Why a range is invalidated (`enum mmu_notifier_event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Protection of a whole VMA range changes (`MMU_NOTIFY_PROTECTION_VMA`).
    ///
    /// For example userfaultfd write-protection.
    ProtectionVma,
    /// Soft-dirty accounting: the same pages stay mapped, write-protected so the next write is
    /// seen (`MMU_NOTIFY_SOFT_DIRTY`).
    SoftDirty,
}

impl Event {
    fn as_raw(self) -> bindings::mmu_notifier_event {
        match self {
            Event::ProtectionVma => bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_VMA,
            Event::SoftDirty => bindings::mmu_notifier_event_MMU_NOTIFY_SOFT_DIRTY,
        }
    }
}

/// Runs `f` between `mmu_notifier_invalidate_range_start()` and `..._end()` for `start..end`.
///
/// # Safety
///
/// The caller holds the mmap lock of `mm`, and `start..end` is a non-empty page-aligned range
/// (notifier users such as KVM warn on an empty or reversed one).
pub(crate) unsafe fn invalidate_range<R>(
    mm: &MmWithUser,
    event: Event,
    start: usize,
    end: usize,
    f: impl FnOnce() -> R,
) -> R {
    let mut range = core::mem::MaybeUninit::<bindings::mmu_notifier_range>::uninit();
    // SAFETY: `range` is writable storage for a range; `mm` is valid and, by the function's
    // safety requirements, locked, and the range is valid. The range stays in place (on this
    // stack frame) until the end call below.
    unsafe {
        bindings::mmu_notifier_range_init(
            range.as_mut_ptr(),
            event.as_raw(),
            0,
            mm.as_raw(),
            start,
            end,
        );
        bindings::mmu_notifier_invalidate_range_start(range.as_mut_ptr());
    }
    let r = f();
    // SAFETY: `range` was initialised and started above.
    unsafe { bindings::mmu_notifier_invalidate_range_end(range.as_mut_ptr()) };
    r
}

/// Refuses an empty or reversed range and bounds that are not page-aligned.
///
/// Notifier users such as KVM warn on an empty or reversed range; the page-table walker checks
/// its range with this too.
pub(crate) fn check_range(start: usize, end: usize) -> Result {
    if start >= end || (start | end) & !PAGE_MASK != 0 {
        return Err(EINVAL);
    }
    Ok(())
}

impl MmapReadGuard<'_> {
    /// Runs `f` inside an invalidation of `start..end` of this address space (secondary MMUs are
    /// told before `f` changes entries, and again when it is done).
    ///
    /// Fails with `EINVAL`, without running `f`, when `start >= end` or either is not
    /// page-aligned.
    #[inline]
    pub fn invalidate_range<R>(
        &self,
        event: Event,
        start: usize,
        end: usize,
        f: impl FnOnce() -> R,
    ) -> Result<R> {
        check_range(start, end)?;
        // SAFETY: The guard holds the mmap lock; the range was checked just above.
        Ok(unsafe { invalidate_range(self.mm, event, start, end, f) })
    }
}

impl MmapWriteGuard<'_> {
    /// Runs `f` inside an invalidation of `start..end` of this address space (secondary MMUs are
    /// told before `f` changes entries, and again when it is done).
    ///
    /// Fails with `EINVAL`, without running `f`, when `start >= end` or either is not
    /// page-aligned.
    #[inline]
    pub fn invalidate_range<R>(
        &self,
        event: Event,
        start: usize,
        end: usize,
        f: impl FnOnce() -> R,
    ) -> Result<R> {
        check_range(start, end)?;
        // SAFETY: The guard holds the mmap lock; the range was checked just above.
        Ok(unsafe { invalidate_range(self.mm, event, start, end, f) })
    }

    /// Runs `f` with a TLB flush declared pending for this address space.
    ///
    /// Entries changed through the `kernel::mm::pagewalk` handles are flushed before their
    /// page-table lock is dropped, so they are all flushed when `f` returns.
    #[inline]
    pub fn with_tlb_flush_pending<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: The guard holds the mmap lock of `mm`.
        unsafe { bindings::inc_tlb_flush_pending(self.mm.as_raw()) };
        let r = f();
        // SAFETY: Balances the increment above, under the same lock.
        unsafe { bindings::dec_tlb_flush_pending(self.mm.as_raw()) };
        r
    }
}
