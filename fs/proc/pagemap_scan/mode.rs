// SPDX-License-Identifier: GPL-2.0

//! What a walk of each mode does to the entries [`Scan`] reports: nothing, write-protect them
//! for userfaultfd, or clear their soft-dirty state.

use super::*;

/// What the walks of a call change, as the walker's [`Mode`] lets them.
///
/// Nothing when the call only reports ([`ReadOnly`]), uffd-wp with `PM_SCAN_WP_MATCHING`
/// ([`UffdWp`]), soft-dirty state with `PM_SCAN_CLEAR_SOFT_DIRTY` ([`ClearSoftDirty`]). The walk is
/// written once for every mode; a change a mode cannot make is a method that does nothing there,
/// which the walk does not call: [`Args::wp`] and [`Args::clear`], which chose the mode, guard
/// every change.
pub(super) trait ScanMode: Mode + Sized {
    /// Whether the walks clear soft-dirty state.
    const CLEARS: bool = false;

    /// One walk from `start` to `end` under the mmap lock this mode needs, taken and dropped
    /// here: the outer error is the lock's (a fatal signal while waiting), the inner the walk's.
    fn walk(mm: &MmWithUser, p: &mut Scan<Self>, start: usize, end: usize) -> Result<Result>;

    /// Write-protects the entry of `e` for userfaultfd.
    fn wp_slot(_e: &mut PteSlot<'_, '_, Self>) {}

    /// Write-protects the huge page for userfaultfd.
    fn wp_huge(_h: &mut HugePmdGuard<'_, Self>) -> Result {
        Ok(())
    }

    /// Installs uffd-wp markers in `addr..end` of a hole.
    fn wp_hole(_h: &mut Hole<'_, Self>, _addr: usize, _end: usize) -> Result {
        Ok(())
    }

    /// Clears the soft-dirty state of the entry of `addr`.
    fn clear_pte(_t: &mut PteTable<'_, Self>, _addr: usize) -> Result {
        Ok(())
    }

    /// Clears the soft-dirty state of the entry of `e`.
    fn clear_slot(_e: &mut PteSlot<'_, '_, Self>) {}

    /// Clears the soft-dirty state of the entries of `run` below `end`.
    fn clear_run(_run: &mut PteRun<'_, '_, Self>, _end: usize) {}

    /// Clears the soft-dirty state of the huge page.
    fn clear_huge(_h: &mut HugePmdGuard<'_, Self>) -> Result {
        Ok(())
    }

    /// Clears `VM_SOFTDIRTY` from the VMA whose walk ends.
    fn clear_vma(_v: &mut VmaEnd<'_, Self>) {}

    /// Sets `VM_SOFTDIRTY` on the VMA whose walk ends.
    fn mark_vma(_v: &mut VmaEnd<'_, Self>) {}

    /// Reports, and write-protects, a hugetlb entry under its lock, for a call with
    /// `PM_SCAN_WP_MATCHING`.
    fn hugetlb_wp(
        _p: &mut Scan<Self>,
        _entry: &mut HugetlbEntry<'_, Self>,
        _start: usize,
        _end: usize,
    ) -> Result<ControlFlow<()>> {
        Err(EINVAL)
    }
}

impl ScanMode for ReadOnly {
    fn walk(mm: &MmWithUser, p: &mut Scan<Self>, start: usize, end: usize) -> Result<Result> {
        let guard = mm.mmap_read_lock_killable()?;
        // Only a walk that stops early sets walk_end: forget where the last one stopped, or a
        // walk that completes would leave it.
        p.arg.walk_end = 0;
        Ok(guard.walk_page_range(start, end, p).map(|_| ()))
    }
}

impl ScanMode for UffdWp {
    fn walk(mm: &MmWithUser, p: &mut Scan<Self>, start: usize, end: usize) -> Result<Result> {
        let guard = mm.mmap_read_lock_killable()?;
        // Only a walk that stops early sets walk_end: forget where the last one stopped, or a
        // walk that completes would leave it.
        p.arg.walk_end = 0;
        // Protection changes for the range happen under the lock, inside an invalidation of it.
        Ok(guard.walk_page_range_uffd_wp(start, end, p).map(|_| ()))
    }

    #[inline(always)]
    fn wp_slot(e: &mut PteSlot<'_, '_, Self>) {
        e.make_uffd_wp();
    }

    fn wp_huge(h: &mut HugePmdGuard<'_, Self>) -> Result {
        h.make_uffd_wp()
    }

    fn wp_hole(h: &mut Hole<'_, Self>, addr: usize, end: usize) -> Result {
        h.make_uffd_wp(addr, end)
    }

    fn hugetlb_wp(
        p: &mut Scan<Self>,
        entry: &mut HugetlbEntry<'_, Self>,
        start: usize,
        end: usize,
    ) -> Result<ControlFlow<()>> {
        let vma = entry.vma();
        let mut end = end;
        let size = entry.size();
        let mut g = entry.lock();
        let pte = g.get();
        let categories =
            p.cur_vma_category | Scan::<Self>::hugetlb_category(vma, pte, || g.maps_file_page());
        if !p.is_interesting_page(categories) {
            return Ok(ControlFlow::Continue(()));
        }
        let ret = p.output(categories, start, &mut end);
        if start == end || categories & WRITTEN == 0 {
            return ret.map(|()| ControlFlow::Continue(()));
        }
        if end != start + size {
            // A hugetlb page cannot be write-protected in part: take back its report and stop
            // the walk before it.
            p.backout_range(start, end);
            p.arg.walk_end = start;
            p.stopped_before_huge = true;
            return Err(ENOSPC);
        }
        g.make_uffd_wp()?;
        ret.map(|()| ControlFlow::Continue(()))
    }
}

impl ScanMode for ClearSoftDirty {
    const CLEARS: bool = true;

    fn walk(mm: &MmWithUser, p: &mut Scan<Self>, start: usize, end: usize) -> Result<Result> {
        let guard = mm.mmap_write_lock_killable()?;
        p.arg.walk_end = 0;
        // The changes happen inside an MMU_NOTIFY_SOFT_DIRTY invalidation of the range, with a
        // TLB flush pending; each cleared entry is flushed before its page-table lock is dropped.
        Ok(guard
            .walk_page_range_clear_soft_dirty(start, end, p)
            .map(|_| ()))
    }

    fn clear_pte(t: &mut PteTable<'_, Self>, addr: usize) -> Result {
        t.clear_soft_dirty(addr).map(|_| ())
    }

    #[inline(always)]
    fn clear_slot(e: &mut PteSlot<'_, '_, Self>) {
        e.clear_soft_dirty();
    }

    #[inline(always)]
    fn clear_run(run: &mut PteRun<'_, '_, Self>, end: usize) {
        run.clear_soft_dirty(end);
    }

    fn clear_huge(h: &mut HugePmdGuard<'_, Self>) -> Result {
        h.clear_soft_dirty().map(|_| ())
    }

    fn clear_vma(v: &mut VmaEnd<'_, Self>) {
        // Only called for a VMA the walk covers whole (reported whole), which cannot fail; a
        // refusal would leave `VM_SOFTDIRTY` set, over-reporting and losing nothing.
        let _ = v.clear_soft_dirty();
    }

    fn mark_vma(v: &mut VmaEnd<'_, Self>) {
        v.mark_soft_dirty();
    }
}
