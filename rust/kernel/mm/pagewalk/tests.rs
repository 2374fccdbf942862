// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the page-table walker: walks of an address space made for the test.

use super::*;

#[macros::kunit_tests(rust_mm_pagewalk)]
mod kunit {
    use super::*;
    use crate::{
        alloc::{
            flags::GFP_KERNEL,
            KVec, //
        },
        error::to_result,
        mm::pagewalk::testing::{
            map_anon,
            unmap,
            with_mm,
            write_byte, //
        }, //
    };

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Ev {
        TestWalk(usize, usize),
        Pre(usize, usize),
        Post(usize),
        Present(usize),
        Empty(usize),
        Hole(usize, usize, bool, i32),
    }

    /// Records every callback.
    ///
    /// `pte_entry` runs under the PTE table spinlock, where nothing may sleep: the room for the
    /// events is allocated before the walk.
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

        fn pre_vma(&mut self, _vma: &VmaRef, start: usize, end: usize) -> Result<ControlFlow<()>> {
            self.push(Ev::Pre(start, end))?;
            Ok(ControlFlow::Continue(()))
        }

        fn post_vma(&mut self, vma: &mut VmaEnd<'_>) {
            // Cannot fail the walk from here: a lost event shows as a count mismatch.
            let _ = self.push(Ev::Post(vma.vma().start()));
        }

        fn pte_entry(
            &mut self,
            pte: &mut PteEntry<'_>,
            addr: usize,
            next: usize,
        ) -> Result<ControlFlow<()>> {
            if next != addr + PAGE_SIZE {
                return Err(EINVAL);
            }
            if pte.get().is_present() {
                self.push(Ev::Present(addr))?;
                if self.stop_at_present == Some(self.present()) {
                    return Ok(ControlFlow::Break(()));
                }
            } else if pte.get().is_none() {
                self.push(Ev::Empty(addr))?;
            }
            Ok(ControlFlow::Continue(()))
        }

        fn pte_hole(
            &mut self,
            hole: &mut Hole<'_>,
            addr: usize,
            next: usize,
            depth: i32,
        ) -> Result<ControlFlow<()>> {
            self.push(Ev::Hole(addr, next, hole.vma().is_some(), depth))?;
            Ok(ControlFlow::Continue(()))
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
                t.clear_soft_dirty(addr).map(|_| usize::from(present))
            };
            let Some(n) = pmd.with_ptes(clear) else {
                return Ok(PmdAction::Again);
            };
            self.1 += n?;
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
    /// Finds the runs of soft-dirty entries and clears the part of each below `clear_to`.
    ///
    /// The runs come from [`PteTable::for_each_run`] (a run that goes on in the next table is one
    /// run), the clear from [`PteRun::clear_soft_dirty`].
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
        soft_dirty: bool,
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
                self.soft_dirty = huge.get().is_soft_dirty();
            }
            Ok(PmdAction::Next)
        }
    }

    /// Maps two huge pages' worth of anonymous memory and faults a THP in at the huge page
    /// boundary inside it: the mapping's start, its page count and the huge page's address.
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    fn map_thp() -> Result<(usize, usize, usize)> {
        const MADV_HUGEPAGE: c_int = 14;
        let huge = pgtable::PMD_SIZE;
        let pages = 2 * huge / PAGE_SIZE;
        let a = map_anon(pages)?;
        let h = (a + huge - 1) & pgtable::PMD_MASK;
        with_mm(|mm| {
            // SAFETY: `mm` is the test thread's live address space; `do_madvise()` takes the
            // mmap lock itself.
            to_result(unsafe { bindings::do_madvise(mm.as_raw(), h, huge, MADV_HUGEPAGE) })
        })?;
        write_byte(h)?;
        Ok((a, pages, h))
    }

    /// What a read walk sees of the huge page at `h`.
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    fn probe_thp(h: usize) -> Result<HugeProbe> {
        let mut p = HugeProbe {
            trans_huge: false,
            locked: false,
            whole: false,
            soft_dirty: false,
        };
        with_mm(|mm| {
            mm.mmap_read_lock_killable()?
                .walk_page_range(h, h + pgtable::PMD_SIZE, &mut p)
        })?;
        Ok(p)
    }

    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    #[test]
    fn thp_is_seen_and_locked_at_pmd_level() -> Result {
        let (a, pages, h) = map_thp()?;
        let p = probe_thp(h)?;
        assert!(p.trans_huge);
        assert!(p.locked);
        assert!(p.whole);
        // A written THP is soft-dirty where the page tables track it.
        assert_eq!(p.soft_dirty, crate::mm::pgtable::soft_dirty_supported());
        unmap(a, pages)
    }

    /// Write-protects each huge PMD for userfaultfd, recording the last answer.
    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    struct HugeWp(Option<Result>);

    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    #[vtable]
    impl PageWalk for HugeWp {
        type Mode = UffdWp;

        fn pmd_entry(
            &mut self,
            pmd: &mut PmdEntry<'_, UffdWp>,
            _addr: usize,
            _next: usize,
        ) -> Result<PmdAction> {
            if let Some(mut huge) = pmd.lock_huge() {
                self.0 = Some(huge.make_uffd_wp());
            }
            Ok(PmdAction::Next)
        }
    }

    #[cfg(CONFIG_TRANSPARENT_HUGEPAGE)]
    #[test]
    fn uffd_wp_of_part_of_a_thp_is_refused() -> Result {
        let (a, pages, h) = map_thp()?;
        let wp = |start: usize, end: usize| -> Result<Option<Result>> {
            let mut w = HugeWp(None);
            with_mm(|mm| {
                mm.mmap_read_lock_killable()?
                    .walk_page_range_uffd_wp(start, end, &mut w)
            })?;
            Ok(w.0)
        };
        // The invalidation covers only the walked range: a change to the rest of the huge page
        // would be outside it. The whole page is accepted (and, outside a VMA registered for
        // uffd-wp, left as it is).
        assert_eq!(wp(h + PAGE_SIZE, h + 2 * PAGE_SIZE)?, Some(Err(EINVAL)));
        assert_eq!(wp(h, h + pgtable::PMD_SIZE)?, Some(Ok(())));
        assert!(probe_thp(h)?.whole);
        unmap(a, pages)
    }

    /// Clears the soft-dirty state of each huge PMD, recording the last answer.
    #[cfg(all(CONFIG_TRANSPARENT_HUGEPAGE, CONFIG_MEM_SOFT_DIRTY))]
    struct HugeClear(Option<Result<bool>>);

    #[cfg(all(CONFIG_TRANSPARENT_HUGEPAGE, CONFIG_MEM_SOFT_DIRTY))]
    #[vtable]
    impl PageWalk for HugeClear {
        type Mode = ClearSoftDirty;

        fn pmd_entry(
            &mut self,
            pmd: &mut PmdEntry<'_, ClearSoftDirty>,
            _addr: usize,
            _next: usize,
        ) -> Result<PmdAction> {
            if let Some(mut huge) = pmd.lock_huge() {
                self.0 = Some(huge.clear_soft_dirty());
            }
            Ok(PmdAction::Next)
        }
    }

    #[cfg(all(CONFIG_TRANSPARENT_HUGEPAGE, CONFIG_MEM_SOFT_DIRTY))]
    #[test]
    fn clear_of_part_of_a_thp_is_refused() -> Result {
        let (a, pages, h) = map_thp()?;
        let huge = pgtable::PMD_SIZE;
        let clear = |start: usize, end: usize| -> Result<Option<Result<bool>>> {
            let mut c = HugeClear(None);
            with_mm(|mm| {
                mm.mmap_write_lock_killable()?
                    .walk_page_range_clear_soft_dirty(start, end, &mut c)
            })?;
            Ok(c.0)
        };
        let dirty = pgtable::soft_dirty_supported();
        assert_eq!(probe_thp(h)?.soft_dirty, dirty);
        // The second half of the huge page: refused, and the whole page stays soft-dirty.
        assert_eq!(clear(h + huge / 2, h + huge)?, Some(Err(EINVAL)));
        assert_eq!(probe_thp(h)?.soft_dirty, dirty);
        // The whole page: cleared, and still one huge PMD.
        assert_eq!(clear(h, h + huge)?, Some(Ok(dirty)));
        let p = probe_thp(h)?;
        assert!(p.whole && !p.soft_dirty);
        unmap(a, pages)
    }

    /// Clears `VM_SOFTDIRTY` from each VMA whose walk ends, recording the last answer.
    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    struct VmaClear(Option<Result>);

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    #[vtable]
    impl PageWalk for VmaClear {
        type Mode = ClearSoftDirty;

        fn post_vma(&mut self, vma: &mut VmaEnd<'_, ClearSoftDirty>) {
            self.0 = Some(vma.clear_soft_dirty());
        }
    }

    #[cfg(CONFIG_MEM_SOFT_DIRTY)]
    #[test]
    fn vma_flag_is_cleared_only_for_a_vma_walked_whole() -> Result {
        let a = map_anon(4)?;
        let clear = |start: usize, end: usize| -> Result<Option<Result>> {
            let mut c = VmaClear(None);
            with_mm(|mm| {
                mm.mmap_write_lock_killable()?
                    .walk_page_range_clear_soft_dirty(start, end, &mut c)
            })?;
            Ok(c.0)
        };
        let flagged = || {
            with_mm(|mm| {
                let guard = mm.mmap_read_lock_killable()?;
                let vma = guard.vma_lookup(a).ok_or(EINVAL)?;
                Ok(vma.flags() & vm::SOFTDIRTY != 0)
            })
        };
        // A new mapping is `VM_SOFTDIRTY`. A walk over part of it cannot clear that: the pages
        // outside the walk would read clean with no invalidation of theirs.
        assert!(flagged()?);
        assert_eq!(clear(a + PAGE_SIZE, a + 4 * PAGE_SIZE)?, Some(Err(EINVAL)));
        assert!(flagged()?);
        assert_eq!(clear(a, a + 4 * PAGE_SIZE)?, Some(Ok(())));
        assert_eq!(flagged()?, !pgtable::soft_dirty_supported());
        unmap(a, 4)
    }
}
