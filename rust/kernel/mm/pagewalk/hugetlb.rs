// SPDX-License-Identifier: GPL-2.0

//! Handles of hugetlb entries: [`HugetlbEntry`] and its lock, [`HugetlbGuard`].

use super::*;

/// A hugetlb entry seen by [`PageWalk::hugetlb_entry`].
///
/// # Invariants
///
/// `vma` is a hugetlb VMA and `pte` is its hugetlb entry of the huge page at `addr` (aligned),
/// valid for `'a` (the walker holds the hugetlb VMA read lock); `start..next` is the callback's
/// range, inside that huge page.
pub struct HugetlbEntry<'a, M = ReadOnly> {
    pub(super) pte: NonNull<bindings::pte_t>,
    pub(super) vma: &'a VmaRef,
    pub(super) addr: usize,
    pub(super) start: usize,
    pub(super) next: usize,
    pub(super) _nts: NotThreadSafe,
    pub(super) _mode: PhantomData<M>,
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
        // SAFETY: By the type invariants `vma` is a hugetlb VMA.
        unsafe { hugetlb_page_size(self.vma) }
    }

    /// Whether a present entry maps a huge page that is not anonymous (hugetlbfs files, shared
    /// memory and `MAP_HUGETLB | MAP_SHARED` mappings).
    #[inline]
    pub fn maps_file_page(&self) -> bool {
        // SAFETY: By the type invariants the walker holds the hugetlb VMA read lock. For a shared
        // or reserved mapping that keeps the entry from being unmapped; for a private one without
        // a reservation it takes no lock and the answer may be stale, as that of
        // `pagemap_hugetlb_category()` is, while the `struct page` it reads stays addressable.
        unsafe { hugetlb_maps_file_page(self.get()) }
    }
}

impl HugetlbEntry<'_, UffdWp> {
    /// Locks the entry for a change, as `PAGEMAP_SCAN` does.
    ///
    /// The file's `i_mmap` lock is taken for writing, then the entry's lock (`huge_pte_lock()`).
    /// The guard may change the entry only if the callback's range covers the whole huge page
    /// (see [`HugetlbGuard::make_uffd_wp`]).
    #[inline]
    pub fn lock(&mut self) -> HugetlbGuard<'_> {
        // The walk's invalidation covers the callback's range: the whole huge page, if the range
        // is all of it.
        let covered = self.start == self.addr && self.next - self.start == self.size();
        // SAFETY: By the type invariants `pte` is the hugetlb entry of `addr` in `vma`, a hugetlb
        // VMA, and the walker holds the hugetlb VMA read lock.
        unsafe { HugetlbGuard::lock(self.vma, self.pte, self.addr, covered) }
    }
}

/// The size of the huge pages of the hugetlb VMA `vma`.
///
/// # Safety
///
/// `vma` is a hugetlb VMA (`hstate_vma()` reads the hstate of its hugetlbfs file).
#[inline]
pub(super) unsafe fn hugetlb_page_size(vma: &VmaRef) -> usize {
    // SAFETY: `vma` is valid and, by the function's safety requirements, a hugetlb VMA.
    unsafe { bindings::hugetlb_vma_page_size(vma.as_ptr()) }
}

/// Whether the hugetlb entry `pte` maps a page that is not anonymous.
///
/// # Safety
///
/// `pte` was read from a hugetlb entry that cannot be unmapped meanwhile (its lock or the hugetlb
/// VMA lock is held).
#[inline]
pub(super) unsafe fn hugetlb_maps_file_page(pte: Pte) -> bool {
    // SAFETY: By the function's safety requirements the page of a present entry is valid.
    pte.is_present() && !unsafe { bindings::PageAnon(bindings::hugetlb_pte_page(pte.as_raw())) }
}

/// A hugetlb entry locked for a change (from [`HugetlbEntry::lock`] or a hole's
/// [`Hole::make_uffd_wp`]), with the file's `i_mmap` lock held for writing.
///
/// # Invariants
///
/// `vma` is a hugetlb VMA, `pte` is its hugetlb entry of the huge page at `addr` (aligned),
/// `mapping` is the `f_mapping` of the VMA's file and is write-locked, and `ptl`, the entry's
/// lock, is held, until drop; `covered` is whether the huge page lies inside an MMU notifier
/// invalidation of the walk's or of the guard's creator.
pub struct HugetlbGuard<'a> {
    pub(super) pte: NonNull<bindings::pte_t>,
    pub(super) ptl: NonNull<bindings::spinlock_t>,
    pub(super) mapping: NonNull<bindings::address_space>,
    pub(super) vma: &'a VmaRef,
    pub(super) addr: usize,
    pub(super) covered: bool,
    pub(super) _nts: NotThreadSafe,
}

impl<'a> HugetlbGuard<'a> {
    /// # Safety
    ///
    /// `pte` is the hugetlb entry of the huge page at `addr` in `vma`, which is a hugetlb VMA,
    /// and the caller holds the mmap lock and the hugetlb VMA read lock. `covered` is true only if
    /// that huge page lies inside an MMU notifier invalidation for the change.
    pub(super) unsafe fn lock(
        vma: &'a VmaRef,
        pte: NonNull<bindings::pte_t>,
        addr: usize,
        covered: bool,
    ) -> Self {
        // SAFETY: `vma` is valid. By the function's safety requirements it is a hugetlb VMA, so it
        // maps a hugetlbfs file (`MAP_HUGETLB` mappings get one from `hugetlb_file_setup()`),
        // which does not change while it is mapped, and whose `f_mapping` is set when it is
        // opened: `PAGEMAP_SCAN` locks `vma->vm_file->f_mapping` without a test.
        let mapping = unsafe { NonNull::new_unchecked((*(*vma.as_ptr()).vm_file).f_mapping) };
        // SAFETY: `mapping` is valid; this is the lock order of `PAGEMAP_SCAN` (hugetlb VMA
        // lock, then `i_mmap_rwsem`, then the entry lock).
        unsafe { bindings::i_mmap_lock_write(mapping.as_ptr()) };
        // SAFETY: By the function's safety requirements `pte` is an entry of `vma`, a hugetlb
        // VMA, whose entry lock `huge_pte_lock()` takes and returns (never NULL).
        let ptl = unsafe {
            NonNull::new_unchecked(bindings::hugetlb_vma_pte_lock(vma.as_ptr(), pte.as_ptr()))
        };
        // INVARIANT: Both locks are held.
        Self {
            pte,
            ptl,
            mapping,
            vma,
            addr,
            covered,
            _nts: NotThreadSafe,
        }
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

    /// Write-protects the entry for userfaultfd, as `PAGEMAP_SCAN` does
    /// (`make_uffd_wp_huge_pte()`).
    ///
    /// An empty entry gets a uffd-wp marker, a migration entry its uffd-wp bit (made readable first
    /// if writable), a present entry the uffd-wp bit; poisoned entries and markers are left alone.
    /// A changed present entry is flushed from the TLB before the lock is dropped. Does nothing in
    /// a VMA not registered for uffd-wp.
    ///
    /// Fails with `EINVAL`, changing nothing, for an entry locked from a [`HugetlbEntry`] whose
    /// callback covers only part of the huge page: the rest lies outside the walk's invalidation.
    pub fn make_uffd_wp(&mut self) -> Result {
        if !self.covered {
            return Err(EINVAL);
        }
        if !self.vma.userfaultfd_wp() {
            return Ok(());
        }
        let pte = self.get();
        // SAFETY: By the type invariants `vma` is a hugetlb VMA.
        let size = unsafe { hugetlb_page_size(self.vma) };
        let (vma, mm, ptep) = (self.vma.as_ptr(), self.vma.mm().as_raw(), self.pte.as_ptr());
        if pte.is_huge_none() {
            // SAFETY: By the type invariants the entry is locked; an empty entry is not cached by
            // the TLB.
            unsafe {
                let marker = bindings::make_pte_marker_uffd_wp();
                bindings::pagewalk_set_huge_pte_at(mm, self.addr, ptep, marker, size);
            }
            return Ok(());
        }
        // SAFETY: Pure function of the entry's value, which is locked.
        let entry = unsafe { bindings::softleaf_from_pte(pte.as_raw()) };
        // SAFETY: Pure functions of the entry's value.
        if unsafe { bindings::softleaf_is_hwpoison(entry) || bindings::softleaf_is_marker(entry) } {
            return Ok(());
        }
        // SAFETY: Pure function of the entry's value.
        if unsafe { bindings::softleaf_is_migration(entry) } {
            // SAFETY: By the type invariants the entry is locked; it is not present. A writable
            // migration entry is made readable first, as for a PTE.
            unsafe {
                let new = bindings::pte_swp_mkuffd(bindings::pte_softleaf_wrprotect(pte.as_raw()));
                bindings::pagewalk_set_huge_pte_at(mm, self.addr, ptep, new, size);
            }
            return Ok(());
        }
        // SAFETY: By the type invariants the entry is locked; start/commit keep the accessed and
        // dirty bits the hardware sets meanwhile; the flush follows before the unlock.
        unsafe {
            let old = bindings::pagewalk_huge_ptep_modify_prot_start(vma, self.addr, ptep);
            let new = bindings::huge_pte_mkuffd(old);
            bindings::pagewalk_huge_ptep_modify_prot_commit(vma, self.addr, ptep, old, new);
            bindings::pagewalk_flush_hugetlb_tlb_range(vma, self.addr, self.addr + size);
        }
        Ok(())
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
