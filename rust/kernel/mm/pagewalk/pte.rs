// SPDX-License-Identifier: GPL-2.0

//! PTE-level handles: a locked PTE table ([`PteTable`]) and what a walk reaches through it.

use super::*;

/// Whether `vma` is a COW mapping of an mm that has had pages DMA-pinned (`MMF_HAS_PINNED`).
///
/// If so, a present, writable PTE of it may map a pinned page ([`pte_maps_pinned_folio`]):
/// write-protecting that would break the pin's COW semantics, so `clear_refs` leaves it alone
/// (`pte_is_pinned()` of fs/proc/task_mmu.c; it stays soft-dirty: a false positive, never a lost
/// write). A pin that starts after this was read is no different from one that starts after the
/// entry was changed: GUP-fast checks the entry again after pinning and backs off if it changed.
#[inline]
pub(super) fn may_pin_cow(vma: &VmaRef) -> bool {
    // SAFETY: `vma` is valid under the walk's lock; the helper only reads its flags.
    let cow = unsafe { bindings::vma_is_cow_mapping(vma.as_ptr()) };
    // SAFETY: The VMA's mm is valid; the helper only reads its flags.
    cow && unsafe { bindings::mm_has_pinned(vma.mm().as_raw()) }
}

/// Whether the present entry `pte` of `addr` in `vma` maps a folio that may be DMA-pinned.
///
/// This is the folio test of `pte_is_pinned()`, made where [`may_pin_cow`] holds. Out of line and
/// cold: the walks that clear call it in their loops, for the rare VMA with pinned pages.
///
/// # Safety
///
/// `pte` is a present entry of `addr` in `vma`, read under its PTE table lock, which is held.
#[cold]
#[inline(never)]
pub(super) unsafe fn pte_maps_pinned_folio(vma: &VmaRef, addr: usize, pte: Pte) -> bool {
    // SAFETY: By the function's safety requirements `pte` is a present, locked entry of `addr`.
    let folio = unsafe { bindings::vm_normal_folio(vma.as_ptr(), addr, pte.as_raw()) };
    // SAFETY: A non-NULL folio mapped by a locked PTE is valid while the lock is held.
    !folio.is_null() && unsafe { bindings::folio_maybe_dma_pinned(folio) }
}

/// Clears the soft-dirty state of the PTE at `ptep`, as `clear_refs` does (`clear_soft_dirty()`).
///
/// A present entry is write-protected and loses its soft-dirty bit, so the next write faults and
/// sets it again; a software entry loses its swap soft-dirty bit. A present entry that may be
/// DMA-pinned is not write-protected (that would break the pin's COW semantics) and keeps, or gets,
/// its soft-dirty bit: a device may write the page without the page tables seeing it, so it must
/// keep reading soft-dirty even once `VM_SOFTDIRTY` is cleared. A writable migration entry is made
/// readable as well (as `mprotect()` does), or the page would come back writable and clean and its
/// writes would go unseen. Without soft-dirty tracking in the page tables nothing is changed.
/// Returns whether the bit was set.
///
/// # Safety
///
/// `ptep` is the PTE of `addr` in `vma`'s page tables and its PTE table lock is held.
#[inline]
pub(super) unsafe fn pte_clear_soft_dirty(
    vma: &VmaRef,
    addr: usize,
    ptep: *mut bindings::pte_t,
) -> bool {
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
pub(super) unsafe fn pte_clear_soft_dirty_with(
    vma: &VmaRef,
    addr: usize,
    ptep: *mut bindings::pte_t,
    may_pin: bool,
) -> bool {
    // SAFETY: By the function's safety requirements `ptep` is valid and locked.
    let pte = Pte::from_raw(unsafe { bindings::ptep_get(ptep) });
    let was = pte.is_soft_dirty();
    if pte.is_present() {
        // SAFETY: `pte` is the present entry at `ptep`, read under its lock (held by the
        // function's safety requirements).
        if may_pin && pte.is_writable() && unsafe { pte_maps_pinned_folio(vma, addr, pte) } {
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
pub(super) unsafe fn softleaf_maps_file_page(entry: bindings::softleaf_t) -> bool {
    // SAFETY: By the function's safety requirements the entry is stable, so the folio it refers
    // to (if it has a pfn) is valid while the lock is held.
    unsafe {
        bindings::softleaf_has_pfn(entry)
            && !bindings::folio_test_anon(bindings::softleaf_to_folio(entry))
    }
}

/// Whether `pte`, the entry of `addr` in `vma`, maps a page that is not anonymous.
///
/// That is a present entry with a normal page (`vm_normal_page()`: not the zero page, not a PFN
/// map) outside anon memory, or a migration or device entry of such a folio.
///
/// # Safety
///
/// `pte` was read from the entry of `addr` in `vma` with its PTE table lock, which is still held.
#[inline]
pub(super) unsafe fn pte_maps_file_page(vma: &VmaRef, addr: usize, pte: Pte) -> bool {
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

/// Marks the PTE at `ptep` write-protected for userfaultfd, as `make_uffd_wp_pte()` does.
///
/// A present entry gets the uffd-wp bit (keeping the accessed and dirty bits hardware may set
/// meanwhile), an empty one a uffd-wp marker, a swap or migration entry its uffd-wp bit.
///
/// # Safety
///
/// `ptep` is the PTE of `addr` in `vma`'s page tables and its PTE table lock is held.
#[inline]
pub(super) unsafe fn pte_make_uffd_wp(vma: &VmaRef, addr: usize, ptep: *mut bindings::pte_t) {
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
    pub(super) first: NonNull<bindings::pte_t>,
    pub(super) ptl: NonNull<bindings::spinlock_t>,
    pub(super) vma: &'a VmaRef,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) flush: Option<(usize, usize)>,
    /// Whether the VMA is registered for uffd-wp (read once, for the per-entry write-protection).
    pub(super) uffd_wp: bool,
    pub(super) _nts: NotThreadSafe,
    pub(super) _mode: PhantomData<M>,
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
    pub(super) fn ptep(&self, addr: usize) -> Option<*mut bindings::pte_t> {
        if addr < self.start || addr >= self.end || addr & !PAGE_MASK != 0 {
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
    pub(super) fn entries(&self) -> (*mut bindings::pte_t, *mut bindings::pte_t) {
        let n = self.end.saturating_sub(self.start) / PAGE_SIZE;
        let p = self.first.as_ptr();
        // SAFETY: By the type invariants the entries of the `n` pages of `self.start..self.end`
        // follow `first` in the table, so the end is in the table or one past its last entry.
        (p, unsafe { p.add(n) })
    }

    /// Calls `f` with each entry of the table's range for which `select` holds, in address order.
    ///
    /// The range is that of the [`PageWalk::pmd_entry`] call. `f` gets the entry's value as read,
    /// and a [`PteSlot`] through which it may change that entry; the loop ends when `f` returns
    /// [`ControlFlow::Break`]. The range is the table's own, so there is nothing to clamp and the
    /// loop does no per-entry bounds check, and entries `select` refuses cost only the test (a
    /// walker that looks for the few entries with some bit set skips the others in a few
    /// instructions each).
    ///
    /// Context: as for [`PmdEntry::with_ptes`], `f` runs with the PTE table spinlock held.
    ///
    /// # Examples
    ///
    /// Counting the present pages of a range (huge PMDs left out):
    ///
    /// ```
    /// use core::ops::ControlFlow;
    /// use kernel::mm::pagewalk::{PageWalk, PmdAction, PmdEntry, ReadOnly};
    /// use kernel::page::PAGE_SIZE;
    /// use kernel::prelude::*;
    /// # use kernel::mm::pagewalk::testing::with_mapping;
    ///
    /// struct Present(usize);
    ///
    /// #[vtable]
    /// impl PageWalk for Present {
    ///     type OwnerModule = kernel::mm::pagewalk::BuiltIn;
    ///     type Mode = ReadOnly;
    ///
    ///     fn pmd_entry(
    ///         &mut self,
    ///         pmd: &mut PmdEntry<'_>,
    ///         _addr: usize,
    ///         _next: usize,
    ///     ) -> Result<PmdAction> {
    ///         let n = &mut self.0;
    ///         let counted = pmd.with_ptes(|t| {
    ///             t.for_each_entry(
    ///                 |pte| pte.is_present(),
    ///                 |_, _| {
    ///                     *n += 1;
    ///                     ControlFlow::Continue(())
    ///                 },
    ///             )
    ///         });
    ///         Ok(counted.map_or(PmdAction::Again, |()| PmdAction::Next))
    ///     }
    /// }
    ///
    /// # with_mapping(8, &[0, 3, 4, 7], |mm, start| {
    /// let mut walk = Present(0);
    /// mm.mmap_read_lock_killable()?
    ///     .walk_page_range(start, start + 8 * PAGE_SIZE, &mut walk)?;
    /// assert_eq!(walk.0, 4);
    /// # Ok(())
    /// # })?;
    /// # Ok::<(), Error>(())
    /// ```
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

    /// Calls `f` with each run of consecutive entries for which `select` holds, in address order.
    ///
    /// The entries are those of the table's range (as for [`PteTable::for_each_entry`]). `f` gets a
    /// [`PteRun`] that gives the run's range and through which it may change the run's entries; the
    /// loop ends when `f` returns [`ControlFlow::Break`]. Entries are read by value and tested with
    /// `select` only, so a walker that reports the entries with some bit set skips the others in a
    /// few instructions each and can report and change each batch of them as one range.
    ///
    /// Context: as for [`PmdEntry::with_ptes`], `f` runs with the PTE table spinlock held.
    ///
    /// # Examples
    ///
    /// The runs of present pages of a range, as a count of runs and of pages (huge PMDs left out):
    ///
    /// ```
    /// use core::ops::ControlFlow;
    /// use kernel::mm::pagewalk::{PageWalk, PmdAction, PmdEntry, ReadOnly};
    /// use kernel::page::PAGE_SIZE;
    /// use kernel::prelude::*;
    /// # use kernel::mm::pagewalk::testing::with_mapping;
    ///
    /// struct Runs {
    ///     runs: usize,
    ///     pages: usize,
    /// }
    ///
    /// #[vtable]
    /// impl PageWalk for Runs {
    ///     type OwnerModule = kernel::mm::pagewalk::BuiltIn;
    ///     type Mode = ReadOnly;
    ///
    ///     fn pmd_entry(
    ///         &mut self,
    ///         pmd: &mut PmdEntry<'_>,
    ///         _addr: usize,
    ///         _next: usize,
    ///     ) -> Result<PmdAction> {
    ///         let counted = pmd.with_ptes(|t| {
    ///             t.for_each_run(
    ///                 |pte| pte.is_present(),
    ///                 |run| {
    ///                     self.runs += 1;
    ///                     self.pages += (run.end() - run.start()) / PAGE_SIZE;
    ///                     ControlFlow::Continue(())
    ///                 },
    ///             )
    ///         });
    ///         Ok(counted.map_or(PmdAction::Again, |()| PmdAction::Next))
    ///     }
    /// }
    ///
    /// # with_mapping(8, &[0, 1, 4, 5, 6], |mm, start| {
    /// let mut walk = Runs { runs: 0, pages: 0 };
    /// mm.mmap_read_lock_killable()?
    ///     .walk_page_range(start, start + 8 * PAGE_SIZE, &mut walk)?;
    /// assert_eq!((walk.runs, walk.pages), (2, 5));
    /// # Ok(())
    /// # })?;
    /// # Ok::<(), Error>(())
    /// ```
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

    /// Whether the entry of `addr` maps a page that is not anonymous.
    ///
    /// That is a normal page (`vm_normal_page()`, so not the zero page) of a file or shmem, or a
    /// migration or device entry of one.
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
    /// Clears the soft-dirty state of the entry of `addr` and returns whether the bit was set.
    ///
    /// As `clear_refs` does, a present entry is write-protected, unless it may be DMA-pinned. The
    /// entry is flushed from the TLB before the table is unlocked.
    ///
    /// Fails with `EINVAL` when `addr` is not a page of the table's range.
    #[inline]
    pub fn clear_soft_dirty(&mut self, addr: usize) -> Result<bool> {
        let ptep = self.ptep(addr).ok_or(EINVAL)?;
        // SAFETY: `ptep` is the entry of `addr` in the locked table.
        let was = unsafe { pte_clear_soft_dirty(self.vma, addr, ptep) };
        note_change(&mut self.flush, addr, addr + PAGE_SIZE);
        Ok(was)
    }
}

impl PteTable<'_, UffdWp> {
    /// Write-protects the entry of `addr` for userfaultfd, as `PAGEMAP_SCAN` does.
    ///
    /// A present entry gets the uffd-wp bit, an empty one a uffd-wp marker, a swap or migration
    /// entry its uffd-wp bit (a writable migration entry is made readable first). The entry is
    /// flushed from the TLB before the table is unlocked. Does nothing in a VMA not registered for
    /// uffd-wp: a write fault there would make the entry writable with the bit still set. Like C's
    /// `make_uffd_wp_pte()` it checks registration only; which registrations to change (for
    /// `PAGEMAP_SCAN`, asynchronous ones with markers) is its caller's choice, in `test_walk`.
    ///
    /// Fails with `EINVAL` when `addr` is not a page of the table's range.
    #[inline]
    pub fn make_uffd_wp(&mut self, addr: usize) -> Result {
        let ptep = self.ptep(addr).ok_or(EINVAL)?;
        if !self.uffd_wp {
            return Ok(());
        }
        // SAFETY: `ptep` is the entry of `addr` in the locked table.
        unsafe { pte_make_uffd_wp(self.vma, addr, ptep) };
        note_change(&mut self.flush, addr, addr + PAGE_SIZE);
        Ok(())
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
    pub(super) ptep: *mut bindings::pte_t,
    pub(super) pte: Pte,
    pub(super) addr: usize,
    pub(super) vma: &'a VmaRef,
    pub(super) uffd_wp: bool,
    pub(super) flush: &'s mut Option<(usize, usize)>,
    pub(super) _mode: PhantomData<M>,
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
    pub(super) first: *mut bindings::pte_t,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) vma: &'a VmaRef,
    pub(super) changed: &'s mut (usize, usize),
    pub(super) may_pin: bool,
    pub(super) _mode: PhantomData<M>,
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
    /// Clears the soft-dirty state of the run's pages that end at or below `end`.
    ///
    /// That is all of them when `end` is at or past the run's end, none when it is at or below its
    /// start; each is cleared as by [`PteTable::clear_soft_dirty`], and flushed from the TLB before
    /// the table is unlocked. What does not depend on the entry is looked at once: soft-dirty
    /// tracking in the page tables for the run, whether the VMA may have DMA-pinned COW pages for
    /// the runs of the table.
    #[inline(always)]
    pub fn clear_soft_dirty(&mut self, end: usize) {
        if !pgtable::soft_dirty_supported() {
            return;
        }
        // The end of the last whole page of the run below `end`.
        let stop = end.min(self.end) & PAGE_MASK;
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
    pub(super) fn unlock(self) {
        flush_tlb(self.vma, self.flush);
        // SAFETY: By the type invariants the table is mapped at `first` and `ptl` is held.
        unsafe { bindings::pte_unmap_unlock(self.first.as_ptr(), self.ptl.as_ptr()) };
    }
}

/// A PTE seen by [`PageWalk::pte_entry`], with its table lock held by the walker.
///
/// # Invariants
///
/// `pte` is an entry of `vma`'s page tables, and its table lock is held for `'a`.
pub struct PteEntry<'a, M = ReadOnly> {
    pub(super) pte: NonNull<bindings::pte_t>,
    pub(super) vma: &'a VmaRef,
    pub(super) _nts: NotThreadSafe,
    pub(super) _mode: PhantomData<M>,
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
