// SPDX-License-Identifier: GPL-2.0

//! PMD-level handles: [`PmdEntry`] and a locked huge PMD, [`HugePmdGuard`].

use super::*;

/// A PMD slot of the walked range, valid for one [`PageWalk::pmd_entry`] call.
///
/// # Invariants
///
/// `pmd` points at the PMD entry covering `addr..end` of `vma`'s page tables, and stays valid
/// for `'a`: the walker holds the mmap lock (and the VMA lock of a write walk) for the callback.
pub struct PmdEntry<'a, M = ReadOnly> {
    pub(super) pmd: NonNull<bindings::pmd_t>,
    pub(super) vma: &'a VmaRef,
    pub(super) addr: usize,
    pub(super) end: usize,
    pub(super) _nts: NotThreadSafe,
    pub(super) _mode: PhantomData<M>,
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
            // builds) even when the C helpers are not inlined into the Rust code. Like
            // `build_error!` and the `#[vtable]` defaults, this relies on the optimiser; the
            // THP=n builds of the series (with and without inline helpers) check it.
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
    /// The entry is looked at here first, as the inline C function does, so that a PMD that is not
    /// huge costs no call into mm code (and none at all with the C helpers inlined into Rust); the
    /// mm wrapper then takes the lock and tests the entry again under it, without a second look
    /// before.
    #[inline(always)]
    pub(super) fn trans_huge_lock(&self) -> *mut bindings::spinlock_t {
        // SAFETY: By the type invariants `pmd` is a valid PMD entry; it is read once, by value.
        let pmd = unsafe { bindings::pmdp_get(self.pmd.as_ptr()) };
        // SAFETY: Only looks at the value.
        if !unsafe { bindings::pmd_is_huge(pmd) } {
            return core::ptr::null_mut();
        }
        // SAFETY: By the type invariants `pmd` and `vma` are valid and the mmap lock is held.
        unsafe { bindings::pagewalk_pmd_trans_huge_lock(self.pmd.as_ptr(), self.vma.as_ptr()) }
    }

    /// Runs `f` on the PTE table of this PMD, mapped and locked (`pte_offset_map_lock()`).
    ///
    /// The table covers the range of this callback. When `f` returns, what it changed through the
    /// table is flushed from the TLB and the table is unlocked. The table exists only inside `f`,
    /// so neither the flush nor the unlock can be skipped (as they could be by leaking a table with
    /// `mem::forget()`).
    ///
    /// `None`, without running `f`, means there is no PTE table any more (a huge PMD, a PMD that
    /// was emptied or collapsed concurrently; this can happen even under the mmap write lock):
    /// answer [`PmdAction::Again`] to look at the entry anew.
    ///
    /// Context: `f` runs with the PTE table spinlock held (atomic context): it must not sleep.
    ///
    /// # Examples
    ///
    /// The address of the first present page of a range, table by table:
    ///
    /// ```
    /// use kernel::mm::pagewalk::{PageWalk, PmdAction, PmdEntry, ReadOnly};
    /// use kernel::page::PAGE_SIZE;
    /// use kernel::prelude::*;
    /// # use kernel::mm::pagewalk::testing::with_mapping;
    ///
    /// struct FirstPresent(Option<usize>);
    ///
    /// #[vtable]
    /// impl PageWalk for FirstPresent {
    ///     type OwnerModule = kernel::mm::pagewalk::BuiltIn;
    ///     type Mode = ReadOnly;
    ///
    ///     fn pmd_entry(
    ///         &mut self,
    ///         pmd: &mut PmdEntry<'_>,
    ///         addr: usize,
    ///         _next: usize,
    ///     ) -> Result<PmdAction> {
    ///         if pmd.lock_huge().is_some() {
    ///             self.0 = Some(addr);
    ///             return Ok(PmdAction::Stop);
    ///         }
    ///         let first = pmd.with_ptes(|t| {
    ///             t.iter().find(|(_, pte)| pte.is_present()).map(|(a, _)| a)
    ///         });
    ///         match first {
    ///             // The table went away since the walker looked: look again.
    ///             None => Ok(PmdAction::Again),
    ///             Some(None) => Ok(PmdAction::Next),
    ///             Some(found) => {
    ///                 self.0 = found;
    ///                 Ok(PmdAction::Stop)
    ///             }
    ///         }
    ///     }
    /// }
    ///
    /// # with_mapping(8, &[5, 7], |mm, start| {
    /// let mut walk = FirstPresent(None);
    /// mm.mmap_read_lock_killable()?
    ///     .walk_page_range(start, start + 8 * PAGE_SIZE, &mut walk)?;
    /// assert_eq!(walk.0, Some(start + 5 * PAGE_SIZE));
    /// # Ok(())
    /// # })?;
    /// # Ok::<(), Error>(())
    /// ```
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
        // SAFETY: `pte_offset_map_lock()` sets `*ptlp` to the lock it took whenever it returns a
        // table.
        let ptl = unsafe { NonNull::new_unchecked(ptl) };
        // INVARIANT: `pte_offset_map_lock()` succeeded: the table is mapped and `ptl` is held.
        let mut table = PteTable {
            first,
            ptl,
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

/// A huge PMD with its lock held (from [`PmdEntry::lock_huge`]).
///
/// The entry is a transparent huge page mapping, or a non-present huge entry (migration).
///
/// # Invariants
///
/// `pmd` is a huge PMD entry of `vma` covering `addr..end` and its lock `ptl` is held until drop.
pub struct HugePmdGuard<'a, M = ReadOnly> {
    pub(super) pmd: NonNull<bindings::pmd_t>,
    pub(super) ptl: NonNull<bindings::spinlock_t>,
    pub(super) vma: &'a VmaRef,
    pub(super) addr: usize,
    pub(super) end: usize,
    pub(super) _nts: NotThreadSafe,
    pub(super) _mode: PhantomData<M>,
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
        self.addr & !pgtable::PMD_MASK == 0 && self.end - self.addr == pgtable::PMD_SIZE
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

impl HugePmdGuard<'_, ClearSoftDirty> {
    /// Clears the soft-dirty state of the huge PMD, as `clear_soft_dirty_pmd()` does.
    ///
    /// A present entry loses its soft-dirty bit and is write-protected, keeping the accessed and
    /// dirty bits (`pmdp_invalidate()` also flushes the TLB); a migration entry loses its
    /// soft-dirty bit, and a writable one is made readable as well, so the page comes back
    /// write-protected. Without soft-dirty tracking in the page tables nothing is changed. Returns
    /// whether the bit was set.
    ///
    /// Fails with `EINVAL`, changing nothing, unless this callback's range covers the whole huge
    /// page: the rest of it lies outside the walk's invalidation, where a secondary MMU would keep
    /// a writable mapping and writes would go unseen. Split the PMD to clear part of it.
    #[inline]
    pub fn clear_soft_dirty(&mut self) -> Result<bool> {
        if !self.covers_whole() {
            return Err(EINVAL);
        }
        if !pgtable::soft_dirty_supported() {
            return Ok(false);
        }
        let pmd = self.get();
        let addr = self.addr;
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
            return Ok(was);
        }
        if !pmd.is_present() {
            return Ok(false);
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
        Ok(was)
    }
}

impl HugePmdGuard<'_, UffdWp> {
    /// Write-protects the whole huge page for userfaultfd, as `PAGEMAP_SCAN` does.
    ///
    /// A present entry gets the uffd-wp bit (`pmdp_invalidate_ad()` keeps the accessed and dirty
    /// bits), a migration entry its uffd-wp bit (made readable first if writable). The entry is
    /// flushed from the TLB before the lock is dropped. Does nothing in a VMA not registered for
    /// uffd-wp.
    ///
    /// Fails with `EINVAL`, changing nothing, unless this callback's range covers the whole huge
    /// page, as [`HugePmdGuard::clear_soft_dirty`] does.
    #[inline]
    pub fn make_uffd_wp(&mut self) -> Result {
        if !self.covers_whole() {
            return Err(EINVAL);
        }
        if !self.vma.userfaultfd_wp() {
            return Ok(());
        }
        let pmd = self.get();
        let addr = self.addr;
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
            return Ok(());
        }
        flush_tlb(self.vma, Some((addr, addr + pgtable::PMD_SIZE)));
        Ok(())
    }
}

impl<M> Drop for HugePmdGuard<'_, M> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: By the type invariants the lock is held.
        unsafe { bindings::spin_unlock(self.ptl.as_ptr()) };
    }
}
