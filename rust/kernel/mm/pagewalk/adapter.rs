// SPDX-License-Identifier: GPL-2.0

//! The `struct mm_walk_ops` of a [`PageWalk`]: C callbacks that call its methods.

use super::*;

/// The C side of a [`PageWalk`] implementation.
pub(super) struct Adapter<T>(PhantomData<T>);

impl<T: PageWalk> Adapter<T> {
    /// The walk's state and VMA.
    ///
    /// # Safety
    ///
    /// `walk` is the `struct mm_walk` of a walk started by [`walk`] for `T`: its `private` is the
    /// [`Private`] of that call, whose walker is borrowed for the walk, and its `vma` is NULL or a
    /// VMA valid for the callback.
    pub(super) unsafe fn state<'a>(
        walk: *mut bindings::mm_walk,
    ) -> (&'a mut T, Option<&'a VmaRef>) {
        // SAFETY: By the function's safety requirements `walk` is valid.
        let w = unsafe { &*walk };
        // SAFETY: `private` is the `Private<T>` of [`walk`], whose walker is not otherwise used
        // during the walk.
        let this = unsafe { &mut *(*w.private.cast::<Private<'_, T>>()).walker };
        // SAFETY: A non-NULL `vma` is valid for the callback, under the walk's lock.
        let vma = (!w.vma.is_null()).then(|| unsafe { VmaRef::from_raw(w.vma) });
        (this, vma)
    }

    pub(super) fn flow(r: Result<ControlFlow<()>>) -> c_int {
        match r {
            Ok(ControlFlow::Continue(())) => 0,
            Ok(ControlFlow::Break(())) => STOP,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by `walk_page_range()` for a walk started by [`walk`] for `T`.
    pub(super) unsafe extern "C" fn test_walk(
        start: c_ulong,
        end: c_ulong,
        walk: *mut bindings::mm_walk,
    ) -> c_int {
        // SAFETY: By the function's safety requirements.
        let (this, vma) = unsafe { Self::state(walk) };
        // `test_walk` is only called for a VMA.
        let Some(vma) = vma else { return 0 };
        if <T::Mode as private::Sealed>::CLEARS_SOFT_DIRTY && vma.flags() & vm::PFNMAP != 0 {
            return 1;
        }
        match this.test_walk(vma, start, end) {
            Ok(VmaFilter::Walk) => 0,
            Ok(VmaFilter::Skip) => 1,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by `walk_page_range()` for a walk started by [`walk`] for `T`.
    pub(super) unsafe extern "C" fn pre_vma(
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
    pub(super) unsafe extern "C" fn post_vma(walk: *mut bindings::mm_walk) {
        // SAFETY: By the function's safety requirements.
        let (this, vma) = unsafe { Self::state(walk) };
        // SAFETY: By the function's safety requirements `walk` is valid and its `private` is the
        // `Private<T>` of [`walk`]; its range is only read.
        let (start, end) = unsafe {
            let p = (*walk).private.cast::<Private<'_, T>>();
            ((*p).start, (*p).end)
        };
        if let Some(vma) = vma {
            // INVARIANT: `post_vma` is called by the walker, under its lock, for the VMA it has
            // just walked (write-locked by a walk with `PGWALK_WRLOCK`), whose range the walk
            // covers if it lies in `start..end`.
            let mut handle = VmaEnd {
                vma,
                covered: start <= vma.start() && vma.end() <= end,
                _nts: NotThreadSafe,
                _mode: PhantomData,
            };
            this.post_vma(&mut handle);
        }
    }

    /// # Safety
    ///
    /// Called by `walk_page_range()` for a walk started by [`walk`] for `T`, with `pmd` the
    /// entry covering `addr..next`.
    pub(super) unsafe extern "C" fn pmd_entry(
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
            _nts: NotThreadSafe,
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
    pub(super) unsafe extern "C" fn pte_entry(
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
            _nts: NotThreadSafe,
            _mode: PhantomData,
        };
        Self::flow(this.pte_entry(&mut entry, addr, next))
    }

    /// # Safety
    ///
    /// Called by `walk_page_range()` for a walk started by [`walk`] for `T`.
    pub(super) unsafe extern "C" fn pte_hole(
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
            start: addr,
            end: next,
            _nts: NotThreadSafe,
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
    pub(super) unsafe extern "C" fn hugetlb_entry(
        pte: *mut bindings::pte_t,
        hmask: c_ulong,
        addr: c_ulong,
        next: c_ulong,
        walk: *mut bindings::mm_walk,
    ) -> c_int {
        // SAFETY: By the function's safety requirements.
        let (this, vma) = unsafe { Self::state(walk) };
        let (Some(vma), Some(pte)) = (vma, NonNull::new(pte)) else {
            return 0;
        };
        // INVARIANT: The walker calls `hugetlb_entry` for hugetlb VMAs only, with `pte` the entry
        // of the huge page `addr & hmask`, and holds the hugetlb VMA read lock during the call.
        let mut entry = HugetlbEntry {
            pte,
            vma,
            addr: addr & hmask,
            start: addr,
            next,
            _nts: NotThreadSafe,
            _mode: PhantomData,
        };
        Self::flow(this.hugetlb_entry(&mut entry, addr, next))
    }

    pub(super) const fn ops(lock: bindings::page_walk_lock) -> bindings::mm_walk_ops {
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

    pub(super) const READ_OPS: bindings::mm_walk_ops =
        Self::ops(bindings::page_walk_lock_PGWALK_RDLOCK);
    pub(super) const WRITE_OPS: bindings::mm_walk_ops =
        Self::ops(bindings::page_walk_lock_PGWALK_WRLOCK);
}
