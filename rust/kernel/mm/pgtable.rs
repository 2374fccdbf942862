// SPDX-License-Identifier: GPL-2.0

//! Page-table entries of userspace address spaces, read by value.
//!
//! Hardware and concurrent faults update entries (accessed/dirty bits, new mappings) while a walk
//! looks at them, so entries are never handed out by reference: [`Pte`] and [`Pmd`] are copies
//! taken with `ptep_get()` / `pmdp_get_lockless()` / `pmdp_get()`, and every change to an entry
//! goes through a method of a handle that holds the lock the change needs (the page-walk
//! handles of `kernel::mm::pagewalk`).
//!
//! C headers: [`include/linux/pgtable.h`](srctree/include/linux/pgtable.h),
//! [`include/linux/leafops.h`](srctree/include/linux/leafops.h).

use crate::bindings;

/// Whether the page tables of this machine track soft-dirty state.
///
/// This is `pgtable_supports_soft_dirty()`: never without `CONFIG_MEM_SOFT_DIRTY`, and on some
/// architectures (riscv) only on CPUs with the extension that gives the bit.
#[inline]
pub fn soft_dirty_supported() -> bool {
    // SAFETY: The helper has no preconditions.
    unsafe { bindings::pgtable_supports_soft_dirty() }
}

/// The size of the memory a PMD entry maps (`PMD_SIZE`): a huge PMD's page, a PTE table's range.
pub const PMD_SIZE: usize = bindings::PMD_SIZE;

/// The mask that rounds an address down to its PMD (`PMD_MASK`).
pub const PMD_MASK: usize = !(PMD_SIZE - 1);

/// A page-table entry at the lowest level (`pte_t`), by value.
///
/// A value may be stale as soon as it is read unless the PTE table lock is held; it says what the
/// entry was, never what it is.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Pte(bindings::pte_t);

impl Pte {
    /// Wraps a raw entry.
    #[inline]
    pub fn from_raw(pte: bindings::pte_t) -> Self {
        Self(pte)
    }

    /// The raw entry.
    #[inline]
    pub fn as_raw(self) -> bindings::pte_t {
        self.0
    }

    /// Whether the entry is empty (`pte_none()`).
    #[inline]
    pub fn is_none(self) -> bool {
        // SAFETY: Pure function of the entry's value.
        unsafe { bindings::pte_none(self.0) }
    }

    /// Whether the entry maps a page (`pte_present()`).
    #[inline]
    pub fn is_present(self) -> bool {
        // SAFETY: Pure function of the entry's value.
        unsafe { bindings::pte_present(self.0) }
    }

    /// Whether the entry is neither empty nor present: a swap, migration, device or marker entry
    /// (a "softleaf" in mm's vocabulary).
    #[inline]
    pub fn is_softleaf(self) -> bool {
        !self.is_none() && !self.is_present()
    }

    /// Whether the entry is a guard-region marker (`MADV_GUARD_INSTALL`).
    #[inline]
    pub fn is_guard_marker(self) -> bool {
        // SAFETY: Pure function of the entry's value.
        self.is_softleaf() && unsafe { bindings::pte_is_guard_marker(self.0) }
    }

    /// Whether the entry carries the soft-dirty bit.
    ///
    /// It is read for a present entry (`pte_soft_dirty()`) or not (`pte_swp_soft_dirty()`); always
    /// false without `CONFIG_MEM_SOFT_DIRTY`.
    #[inline]
    pub fn is_soft_dirty(self) -> bool {
        if self.is_present() {
            // SAFETY: Pure function of the entry's value.
            unsafe { bindings::pte_soft_dirty(self.0) }
        } else if self.is_softleaf() {
            // SAFETY: Pure function of the entry's value, which is a software entry.
            unsafe { bindings::pte_swp_soft_dirty(self.0) }
        } else {
            false
        }
    }

    /// Whether a present entry is userfaultfd write-protected (`pte_uffd()`).
    #[inline]
    pub fn is_uffd(self) -> bool {
        // SAFETY: Pure function of the entry's value, which is present.
        self.is_present() && unsafe { bindings::pte_uffd(self.0) }
    }

    /// Whether a non-present entry carries userfaultfd state, as a uffd-wp bit on a swap or
    /// migration entry or as a uffd-wp marker (`pte_swp_uffd_any()`).
    #[inline]
    pub fn is_swp_uffd_any(self) -> bool {
        // SAFETY: Pure function of the entry's value.
        unsafe { bindings::pte_swp_uffd_any(self.0) }
    }

    /// Whether a hugetlb entry is empty (`huge_pte_none()`).
    #[inline]
    pub fn is_huge_none(self) -> bool {
        // SAFETY: Pure function of the entry's value.
        unsafe { bindings::huge_pte_none(self.0) }
    }

    /// Whether a present hugetlb entry is userfaultfd write-protected (`huge_pte_uffd()`).
    #[inline]
    pub fn is_huge_uffd(self) -> bool {
        // SAFETY: Pure function of the entry's value, which is present.
        self.is_present() && unsafe { bindings::huge_pte_uffd(self.0) }
    }

    /// The page frame number of a present entry.
    #[inline]
    fn pfn(self) -> Option<usize> {
        if !self.is_present() {
            return None;
        }
        // SAFETY: Pure function of the entry's value, which is present.
        Some(unsafe { bindings::pte_pfn(self.0) })
    }

    /// Whether a present entry maps the shared zero page.
    #[inline]
    pub fn is_zero_pfn(self) -> bool {
        let Some(pfn) = self.pfn() else {
            return false;
        };
        // SAFETY: Pure function of a pfn.
        unsafe { bindings::is_zero_pfn(pfn) }
    }

    /// Whether a present entry is writable.
    #[inline]
    pub fn is_writable(self) -> bool {
        // SAFETY: Pure function of the entry's value, which is present.
        self.is_present() && unsafe { bindings::pte_write(self.0) }
    }
}

/// A page-middle-directory entry (`pmd_t`), by value.
///
/// Without the PMD lock a value may be stale, and a huge PMD may be split or collapsed
/// concurrently: act on a huge PMD only with its lock held.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Pmd(bindings::pmd_t);

impl Pmd {
    /// Wraps a raw entry.
    #[inline]
    pub fn from_raw(pmd: bindings::pmd_t) -> Self {
        Self(pmd)
    }

    /// The raw entry.
    #[inline]
    pub fn as_raw(self) -> bindings::pmd_t {
        self.0
    }

    /// Whether the entry is empty.
    #[inline]
    pub fn is_none(self) -> bool {
        // SAFETY: Pure function of the entry's value.
        unsafe { bindings::pmd_none(self.0) }
    }

    /// Whether the entry is present (a PTE table or a present huge page).
    #[inline]
    pub fn is_present(self) -> bool {
        // SAFETY: Pure function of the entry's value.
        unsafe { bindings::pmd_present(self.0) }
    }

    /// Whether the entry maps a transparent huge page (`pmd_trans_huge()`).
    #[inline]
    pub fn is_trans_huge(self) -> bool {
        // SAFETY: Pure function of the entry's value.
        unsafe { bindings::pmd_trans_huge(self.0) }
    }

    /// Whether the entry maps the huge zero page.
    #[inline]
    pub fn is_huge_zero(self) -> bool {
        // SAFETY: Pure function of the entry's value.
        unsafe { bindings::is_huge_zero_pmd(self.0) }
    }

    /// Whether a present huge entry has the soft-dirty bit.
    #[inline]
    pub fn is_soft_dirty(self) -> bool {
        // SAFETY: Pure function of the entry's value, which is present.
        self.is_present() && unsafe { bindings::pmd_soft_dirty(self.0) }
    }

    /// Whether a non-present huge entry (a migration entry) has the swap soft-dirty bit
    /// (`pmd_swp_soft_dirty()`).
    #[inline]
    pub fn is_swp_soft_dirty(self) -> bool {
        // SAFETY: Pure function of the entry's value, which is not present.
        !self.is_none() && !self.is_present() && unsafe { bindings::pmd_swp_soft_dirty(self.0) }
    }

    /// Whether a present huge entry is userfaultfd write-protected (`pmd_uffd()`).
    #[inline]
    pub fn is_uffd(self) -> bool {
        // SAFETY: Pure function of the entry's value, which is present.
        self.is_present() && unsafe { bindings::pmd_uffd(self.0) }
    }

    /// Whether a non-present huge entry has the uffd-wp bit (`pmd_swp_uffd()`).
    #[inline]
    pub fn is_swp_uffd(self) -> bool {
        // SAFETY: Pure function of the entry's value, which is not present.
        !self.is_none() && !self.is_present() && unsafe { bindings::pmd_swp_uffd(self.0) }
    }
}
