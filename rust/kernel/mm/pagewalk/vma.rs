// SPDX-License-Identifier: GPL-2.0

//! Per-VMA handles: the end of a VMA's walk ([`VmaEnd`]) and a hole ([`Hole`]).

use super::*;

impl VmaEnd<'_, ClearSoftDirty> {
    /// Clears `VM_SOFTDIRTY` from the VMA, as `clear_refs` does.
    ///
    /// Its pages then read soft-dirty only where their entries say so, and its page protection is
    /// recomputed (`vma_set_page_prot()`), so that the next write to a page of a shared mapping
    /// faults. For a caller that reported, and cleared, every page of the VMA. Hugetlb VMAs, whose
    /// page tables are not soft-dirty tracked, are left alone, as is everything without soft-dirty
    /// tracking.
    ///
    /// Fails with `EINVAL`, changing nothing, when the walk covered only part of the VMA: the
    /// pages outside its range would read clean with no invalidation or flush of theirs.
    #[inline]
    pub fn clear_soft_dirty(&mut self) -> Result {
        if !self.covered {
            return Err(EINVAL);
        }
        #[allow(clippy::bad_bit_mask)]
        if !pgtable::soft_dirty_supported()
            || self.vma.is_hugetlb()
            || self.vma.flags() & vm::SOFTDIRTY == 0
        {
            return Ok(());
        }
        // SAFETY: By the type invariants the walker holds the mmap lock for writing and the VMA
        // is write-locked, as changing its flags and page protection requires.
        unsafe {
            bindings::vm_flags_clear(self.vma.as_ptr(), vm::SOFTDIRTY);
            bindings::vma_set_page_prot(self.vma.as_ptr());
        }
        Ok(())
    }

    /// Sets `VM_SOFTDIRTY` on the VMA, so that all its pages read soft-dirty.
    ///
    /// For a caller that cleared soft-dirty state it cannot keep in the page tables. Hugetlb VMAs
    /// are left alone, as is everything without soft-dirty tracking.
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

/// The VMA whose walk [`PageWalk::post_vma`] ends.
///
/// # Invariants
///
/// The walker holds the mmap lock for `'a` and has walked `vma` (write-locked in a walk with the
/// mmap lock held for writing); `covered` is whether the walk's range covers all of `vma`.
pub struct VmaEnd<'a, M = ReadOnly> {
    pub(super) vma: &'a VmaRef,
    pub(super) covered: bool,
    pub(super) _nts: NotThreadSafe,
    pub(super) _mode: PhantomData<M>,
}

impl<'a, M> VmaEnd<'a, M> {
    /// The VMA.
    #[inline]
    pub fn vma(&self) -> &'a VmaRef {
        self.vma
    }
}

/// A range without page tables seen by [`PageWalk::pte_hole`].
///
/// # Invariants
///
/// The walker holds the mmap lock for `'a`, and if `vma` is a hugetlb VMA its hugetlb VMA read
/// lock; `start..end` is the range of the callback, inside the walk's.
pub struct Hole<'a, M = ReadOnly> {
    pub(super) vma: Option<&'a VmaRef>,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) _nts: NotThreadSafe,
    pub(super) _mode: PhantomData<M>,
}

impl<'a, M> Hole<'a, M> {
    /// The VMA of the hole; `None` for a gap between VMAs.
    #[inline]
    pub fn vma(&self) -> Option<&'a VmaRef> {
        self.vma
    }
}

impl Hole<'_, UffdWp> {
    /// Write-protects `addr..end` of the hole's VMA for userfaultfd, as `PAGEMAP_SCAN` does.
    ///
    /// Uffd-wp markers are installed (`uffd_wp_range()`; in a hugetlb VMA one marker per huge page
    /// from the huge page containing `addr`, without the hugetlb VMA write lock that
    /// `uffd_wp_range()` would take while the walk holds it for reading). As
    /// `hugetlb_change_protection()` does, the huge pages are changed inside an
    /// `MMU_NOTIFY_PROTECTION_VMA` invalidation of their own, nested in the walk's: the first or
    /// last may extend past the walked range.
    ///
    /// Fails with `EINVAL` outside a VMA registered for uffd-wp, outside this callback's range or
    /// for addresses that are not page-aligned, with `ENOMEM` if a page table cannot be allocated.
    pub fn make_uffd_wp(&mut self, addr: usize, end: usize) -> Result {
        use crate::ptr::{
            Alignable,
            Alignment, //
        };

        let vma = self.vma.ok_or(EINVAL)?;
        if addr >= end || addr < self.start || end > self.end || !vma.userfaultfd_wp() {
            return Err(EINVAL);
        }
        // `change_protection()` steps a page at a time until it meets `end`.
        if (addr | end) & !PAGE_MASK != 0 {
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
        // SAFETY: `vma` is a hugetlb VMA (checked just above).
        let size = unsafe { hugetlb_page_size(vma) };
        let mm = vma.mm().as_raw();
        let align = Alignment::new_checked(size).ok_or(EINVAL)?;
        let first = addr.align_down(align);
        let last = end.align_up(align).ok_or(EINVAL)?;
        let wp = || -> Result {
            let mut a = first;
            while a < last {
                // SAFETY: By the type invariants the mmap lock and the hugetlb VMA read lock are
                // held; `a` is a huge page address of `vma`.
                let pte = unsafe { bindings::pagewalk_huge_pte_alloc(mm, vma.as_ptr(), a, size) };
                let pte = NonNull::new(pte).ok_or(ENOMEM)?;
                // SAFETY: `pte` is the hugetlb entry of `a` in `vma`, a hugetlb VMA; the locks are
                // held (above); the huge page lies in the invalidation around this closure.
                let mut guard = unsafe { HugetlbGuard::lock(vma, pte, a, true) };
                guard.make_uffd_wp()?;
                drop(guard);
                a += size;
            }
            Ok(())
        };
        // SAFETY: By the type invariants the mmap lock is held; `first..last` is non-empty and
        // aligned to the huge page size, so to pages.
        unsafe { mmu_notifier::invalidate_range(vma.mm(), Event::ProtectionVma, first, last, wp) }
    }
}
