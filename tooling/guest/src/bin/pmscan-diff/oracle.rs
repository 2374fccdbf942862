// SPDX-License-Identifier: GPL-2.0
//! The clear-flag oracle: `PM_SCAN_CLEAR_SOFT_DIRTY` checked against what does not come from
//! the code under test.
//!
//! On one quiescent twin (blocked on its command pipe, khugepaged paused), for each call A with
//! the flag, made in turn by the C and the Rust implementation: the C implementation's
//! report-only call of A (the flag taken out) must return exactly what the get-and-clear of A
//! returns (return value, errno, every byte of the output area, `walk_end`), and afterwards the
//! soft-dirty state of every page of the arena, read through bit 55 of /proc/PID/pagemap and
//! through a report-only scan (which must agree), must be what the documented rules make of the
//! state before and the pages reported (all matching pages of the range when there is no
//! vector): a reported page reads clean, unless its VMA had `VM_SOFTDIRTY` (read from
//! /proc/PID/smaps) and was not reported whole in one walk (the flag stays, all its pages read
//! soft-dirty), or it is part of the huge mapping of a file, shmem or zero page reported in part
//! (left soft-dirty), or it is a hugetlb page (never cleared); every other page keeps its
//! state. A call that fails must lose nothing (the state after contains the state before); a
//! call the flag makes invalid (a mask without PAGE_IS_SOFT_DIRTY, WP_MATCHING) must fail with
//! EINVAL and change nothing. Any other difference fails.
//!
//! The cases are biased to the edges where the clear path has its own logic: vec_len equal to,
//! one below and one above the number of regions, the 64-run table, max_pages cutting a run or a
//! huge page, ranges starting or ending inside a huge page; the address space mixes every memory
//! kind of the differential tester, including shmem THP and one-page VMAs by the hundred.

use super::*;

/// The soft-dirty state of every page of the arena, by bit 55 of /proc/PID/pagemap and by a
/// report-only scan (C); an error if they disagree on a page that is not in `hugetlb`. On hugetlb
/// pages the two differ by design (upstream): pagemap reads their soft-dirty state from the VMA
/// flag only, `PAGEMAP_SCAN` from the entry as well, and `clear_refs` clears the flag and
/// leaves the entries; the scan's view is taken there.
fn sd_state(t: &Twin, sw: &ImplSwitch, hugetlb: &[bool]) -> Result<Vec<bool>, String> {
    let pages = (ARENA_END - BASE) / PAGE;
    // The twin's pagemap, open already (PAGEMAP_SCAN goes through it too).
    let bit55: Vec<bool> = pagemap_entries(&t.pagemap, BASE, pages)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|e| e & (1 << 55) != 0)
        .collect();
    sw.select("c");
    let sd = (0, PAGE_IS_SOFT_DIRTY, 0, PAGE_IS_SOFT_DIRTY);
    let regions = scan_all(
        t.pagemap.as_raw_fd(),
        BASE as u64,
        ARENA_END as u64,
        sd,
        VEC_REGIONS,
    )
    .map_err(|e| format!("scan: {e}"))?;
    let mut scan = vec![false; pages];
    mark(&mut scan, &regions);
    if let Some(i) = (0..pages).find(|&i| scan[i] != bit55[i] && !hugetlb[i]) {
        return Err(format!(
            "page {:#x}: PAGEMAP_SCAN says soft-dirty {}, pagemap bit 55 says {}",
            BASE + i * PAGE,
            scan[i],
            bit55[i]
        ));
    }
    Ok(scan)
}

/// The address range of a `/proc/PID/maps` or `smaps` line that starts with one (`start-end`).
fn maps_range(line: &str) -> Option<(u64, u64)> {
    let (s, e) = line.split_whitespace().next()?.split_once('-')?;
    Some((
        u64::from_str_radix(s, 16).ok()?,
        u64::from_str_radix(e, 16).ok()?,
    ))
}

/// The mapping and the categories (C) of the page at `addr`, to say what a failure was about.
fn describe_page(t: &Twin, sw: &ImplSwitch, addr: usize) -> String {
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", t.pid)).unwrap_or_default();
    let vma = maps
        .lines()
        .find(|l| maps_range(l).is_some_and(|(s, e)| s <= addr as u64 && (addr as u64) < e))
        .unwrap_or("(no VMA)");
    sw.select("c");
    let all = (0, 0, 0, PM_SCAN_CATEGORIES);
    let cats = scan_all(
        t.pagemap.as_raw_fd(),
        addr as u64,
        (addr + PAGE) as u64,
        all,
        4,
    )
    .ok()
    .and_then(|v| v.first().map(|g| category_names(g.categories)))
    .unwrap_or_default();
    format!("{vma}; now {cats}")
}

/// Sets the arena pages of `regions` in `pages`.
fn mark(pages: &mut [bool], regions: &[PageRegion]) {
    for r in regions {
        let (s, e) = (r.start.max(BASE as u64), r.end.min(ARENA_END as u64));
        let mut a = s;
        while a < e {
            pages[(a as usize - BASE) / PAGE] = true;
            a += PAGE as u64;
        }
    }
}

/// The arena pages of hugetlb mappings (from /proc/PID/maps).
fn hugetlb_pages(t: &Twin) -> Vec<bool> {
    let mut v = vec![false; (ARENA_END - BASE) / PAGE];
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", t.pid)).unwrap_or_default();
    for l in maps.lines().filter(|l| l.contains("anon_hugepage")) {
        let Some((s, e)) = l.split_whitespace().next().and_then(|r| r.split_once('-')) else {
            continue;
        };
        let (Ok(s), Ok(e)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16)) else {
            continue;
        };
        mark(
            &mut v,
            &[PageRegion {
                start: s,
                end: e,
                categories: 0,
            }],
        );
    }
    v
}

/// A VMA of the twin: its range, whether it has `VM_SOFTDIRTY` ("sd" in /proc/PID/smaps) and
/// whether it is a hugetlb VMA ("ht").
struct Vma {
    start: u64,
    end: u64,
    soft_dirty: bool,
    hugetlb: bool,
}

/// The VMAs of the twin that overlap the arena, from /proc/PID/smaps.
fn vmas(t: &Twin) -> Vec<Vma> {
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", t.pid)).unwrap_or_default();
    let mut out: Vec<Vma> = Vec::new();
    for l in smaps.lines() {
        if let Some(flags) = l.strip_prefix("VmFlags:") {
            if let Some(v) = out.last_mut() {
                let f: Vec<&str> = flags.split_whitespace().collect();
                v.soft_dirty = f.contains(&"sd");
                v.hugetlb = f.contains(&"ht");
            }
            continue;
        }
        let Some((s, e)) = maps_range(l) else {
            continue;
        };
        if !l.contains(' ') || l.starts_with(|c: char| c.is_ascii_uppercase()) {
            continue;
        }
        out.push(Vma {
            start: s,
            end: e,
            soft_dirty: false,
            hugetlb: false,
        });
    }
    out.retain(|v| v.start < ARENA_END as u64 && v.end > BASE as u64);
    out
}

/// Whether `ranges` (sorted by start, not overlapping) cover all of `start..end`.
fn covered(ranges: &[(u64, u64)], start: u64, end: u64) -> bool {
    let mut at = start;
    for &(s, e) in ranges {
        if e <= at {
            continue;
        }
        if s > at {
            return false;
        }
        at = e;
        if at >= end {
            return true;
        }
    }
    at >= end
}

/// The arena pages that belong to the huge mapping (a PMD) of a file, shmem or the huge zero page:
/// by huge page (index of its first arena page), from a report-only scan (C).
fn file_huge_pages(t: &Twin, sw: &ImplSwitch) -> Vec<bool> {
    let pages = (ARENA_END - BASE) / PAGE;
    let mut v = vec![false; pages];
    sw.select("c");
    let m = (
        0,
        PAGE_IS_HUGE,
        0,
        PAGE_IS_HUGE | PAGE_IS_FILE | PAGE_IS_PFNZERO,
    );
    let regions = scan_all(
        t.pagemap.as_raw_fd(),
        BASE as u64,
        ARENA_END as u64,
        m,
        VEC_REGIONS,
    )
    .unwrap_or_default();
    for r in regions
        .iter()
        .filter(|r| r.categories & (PAGE_IS_FILE | PAGE_IS_PFNZERO) != 0)
    {
        mark(&mut v, std::slice::from_ref(r));
    }
    v
}

/// The state the documented rules make of `before` after a successful clearing call that
/// reported `reported` (absolute ranges, sorted) in walks that began at `walk_starts`.
fn expected_after(
    before: &[bool],
    reported: &[(u64, u64)],
    walk_starts: &[u64],
    vmas: &[Vma],
    file_huge: &[bool],
    hugetlb: &[bool],
) -> Vec<bool> {
    let pages = before.len();
    let addr = |i: usize| (BASE + i * PAGE) as u64;
    let in_report = |a: u64| reported.iter().any(|&(s, e)| s <= a && a < e);
    let mut want = before.to_vec();
    // Reported pages of VMAs without VM_SOFTDIRTY read clean, but those of a file, shmem or zero
    // huge page reported in part.
    for i in 0..pages {
        if hugetlb[i] || !in_report(addr(i)) {
            continue;
        }
        let a = addr(i);
        let Some(v) = vmas.iter().find(|v| v.start <= a && a < v.end) else {
            continue;
        };
        if v.soft_dirty || v.hugetlb {
            continue;
        }
        if file_huge[i] {
            let h = a & !(HUGE as u64 - 1);
            if !covered(reported, h, h + HUGE as u64) {
                continue;
            }
        }
        want[i] = false;
    }
    // A VMA with VM_SOFTDIRTY loses it, and all its pages read clean, when every page of it was
    // reported in one walk.
    for v in vmas.iter().filter(|v| v.soft_dirty && !v.hugetlb) {
        let whole = covered(reported, v.start, v.end)
            && !walk_starts.iter().any(|&w| v.start < w && w < v.end);
        if !whole {
            continue;
        }
        for (i, w) in want.iter_mut().enumerate() {
            if v.start <= addr(i) && addr(i) < v.end && !hugetlb[i] {
                *w = false;
            }
        }
    }
    want
}

/// Sorted, merged ranges of `regions`.
fn ranges_of(regions: &[PageRegion]) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = regions.iter().map(|r| (r.start, r.end)).collect();
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if last.1 >= s => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// The regions of an output vector of `n` regions.
fn regions_of(vec: &[u8], n: usize) -> Vec<PageRegion> {
    vec.chunks_exact(24)
        .take(n)
        .map(|c| {
            let w = |i: usize| u64::from_ne_bytes(c[i..i + 8].try_into().unwrap_or_default());
            PageRegion {
                start: w(0),
                end: w(8),
                categories: w(16),
            }
        })
        .collect()
}

/// Where the output vector starts in the output area `call()` returns.
fn vec_offset(c: &Case) -> usize {
    match c.vec_at {
        VecAt::Edge(k) => PAGE - 24 * k as usize - (k % 3) as usize,
        _ => 0,
    }
}

/// Masks real users of the flag pass: (inverted, mask, anyof, return).
const CLEAR_MASKS: [(u64, u64, u64, u64); 5] = [
    (0, PAGE_IS_SOFT_DIRTY, 0, PAGE_IS_SOFT_DIRTY),
    (0, PAGE_IS_SOFT_DIRTY, 0, PM_SCAN_CATEGORIES),
    (
        0,
        PAGE_IS_SOFT_DIRTY,
        PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_SOFT_DIRTY | PAGE_IS_FILE,
    ),
    (
        PAGE_IS_PFNZERO,
        PAGE_IS_SOFT_DIRTY | PAGE_IS_PFNZERO,
        0,
        PAGE_IS_SOFT_DIRTY,
    ),
    (0, PAGE_IS_SOFT_DIRTY | PAGE_IS_HUGE, 0, PAGE_IS_HUGE),
];

/// Whether the Rust implementation must refuse `a` because of the flag (EINVAL).
fn invalid_for_clear(a: &PmScanArg) -> bool {
    a.flags & (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC) != 0
        || a.category_mask & PAGE_IS_SOFT_DIRTY == 0
        || a.category_inverted & PAGE_IS_SOFT_DIRTY != 0
}

/// A clearing call, biased to the clear path's edges; `t` is scanned (report-only, C) to find
/// them.
pub fn gen_clear_case(r: &mut Rng, t: &Twin, sw: &ImplSwitch) -> Case {
    let mut c = gen_case(r);
    let a = &mut c.arg;
    // Mostly a valid clearing call; some that the flag makes invalid.
    a.flags = match r.below(40) {
        0 => PM_SCAN_CLEAR_SOFT_DIRTY | PM_SCAN_WP_MATCHING,
        1 => PM_SCAN_CLEAR_SOFT_DIRTY | PM_SCAN_CHECK_WPASYNC,
        2 => PM_SCAN_CLEAR_SOFT_DIRTY | 1 << (3 + r.below(61)),
        _ => PM_SCAN_CLEAR_SOFT_DIRTY,
    };
    match r.below(20) {
        0..=1 => {} // gen_case's masks: mostly invalid for the flag
        2..=5 => {
            a.category_mask |= PAGE_IS_SOFT_DIRTY;
            a.category_inverted &= !PAGE_IS_SOFT_DIRTY;
        }
        _ => {
            let m = CLEAR_MASKS[r.below(CLEAR_MASKS.len() as u64) as usize];
            (
                a.category_inverted,
                a.category_mask,
                a.category_anyof_mask,
                a.return_mask,
            ) = m;
        }
    }
    if r.chance(80) {
        // A sane range in the arena, often starting or ending inside a huge page.
        let page = |r: &mut Rng| {
            let slot = r.below(NSLOTS as u64) as usize;
            let off = match r.below(4) {
                0 => 0,
                1 => 1 + r.below(511),
                2 => 256,
                _ => r.below(512),
            };
            (BASE + slot * HUGE + off as usize * PAGE) as u64
        };
        let (x, y) = (page(r), page(r));
        (a.start, a.end) = if x <= y { (x, y) } else { (y, x) };
        if a.start == a.end || r.chance(20) {
            a.end = a.start + HUGE as u64 * (1 + r.below(3));
        }
        a.end = a.end.min(ARENA_END as u64);
        if r.chance(90) {
            c.vec_at = VecAt::Own;
        }
        if r.chance(80) {
            c.arg_at = ArgAt::Normal;
        }
        if a.size != 96 && r.chance(90) {
            a.size = 96;
        }
    }
    if let (VecAt::Own, true) = (c.vec_at, r.chance(85)) {
        // How many regions and pages the call would report without limits: put vec_len and
        // max_pages at, around and inside them.
        sw.select("c");
        let m = (
            a.category_inverted,
            a.category_mask,
            a.category_anyof_mask,
            a.return_mask,
        );
        if let Ok(all) = scan_all(t.pagemap.as_raw_fd(), a.start, a.end, m, VEC_REGIONS) {
            let n = all.len() as u64;
            let pages: u64 = all.iter().map(|g| (g.end - g.start) / PAGE as u64).sum();
            a.vec_len = match r.below(12) {
                0 => n.saturating_sub(1),
                1 => n,
                2 => n + 1,
                3 => 63,
                4 => 64,
                5 => 65,
                6 => 127 + r.below(4),
                7 => 1,
                8 => 1 + r.below(n.max(1)),
                _ => VEC_REGIONS as u64,
            }
            .clamp(1, VEC_REGIONS as u64 - 1);
            a.max_pages = match r.below(8) {
                0 if pages > 1 => pages - 1,
                1 if pages > 0 => 1 + r.below(pages),
                // Inside a huge page: a multiple of 512 pages and some.
                2 => 512 * r.below(3) + 1 + r.below(511),
                3 => 1 + r.below(4),
                _ => 0,
            };
        }
    }
    c
}

/// Time spent per phase of the oracle loop.
#[derive(Default)]
struct Phases([std::time::Duration; 6]);

impl Phases {
    fn start(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
    /// Adds the time since `at` to phase `i`; returns now.
    fn lap(&mut self, i: usize, at: std::time::Instant) -> std::time::Instant {
        let now = std::time::Instant::now();
        self.0[i] += now - at;
        now
    }
    fn summary(&self, names: [&str; 6]) -> String {
        let parts: Vec<String> = names
            .iter()
            .zip(self.0)
            .map(|(n, d)| format!("{n} {:.1}s", d.as_secs_f64()))
            .collect();
        parts.join(", ")
    }
}

/// Runs `calls` oracle checks from `seed`; prints the outcome, returns whether all passed.
/// `only`: the implementation that clears (`c` or `rust`); both in turn when `None`.
pub fn run(
    calls: u64,
    calls_per_build: u64,
    seed: u64,
    sw: &ImplSwitch,
    only: Option<&'static str>,
) -> bool {
    let t0 = std::time::Instant::now();
    let mut r = Rng::new(seed ^ 0x5d_0c1e);
    let (mut passed, mut failed, mut n) = (0u64, 0u64, 0u64);
    let (mut cleared_pages, mut nonempty, mut errors, mut refused) = (0u64, 0u64, 0u64, 0u64);
    let (mut out_c, mut out_r) = (Out::new(), Out::new());
    let mut printed = 0;
    let mut builds = 0u64;
    let mut disagreed = 0u64;
    let mut first_disagreement: Option<String> = None;
    // Where the time goes, for the summary line: ops, case generation, the state before and
    // after, the hugetlb map, the matching pages, the C and Rust calls.
    let mut ph = Phases::default();
    'outer: while n < calls {
        set_shmem_thp(builds);
        builds += 1;
        let mut t = build_one(&mut r);
        // The state after the last call, reused while no op ran since; the hugetlb map,
        // reused while no op changed the mappings.
        let mut last: Option<Vec<bool>> = None;
        let mut huge: Option<Vec<bool>> = None;
        // The VMAs (with their VM_SOFTDIRTY) and the file huge pages, reused while nothing ran
        // that may change them: no op, and the last call either refused or changed no page's
        // state (a clear of VM_SOFTDIRTY makes every page of the VMA read clean, but for
        // hugetlb ones, whose VMAs keep the flag).
        let mut maps: Option<(Vec<Vma>, Vec<bool>)> = None;
        for _ in 0..calls_per_build {
            if n >= calls {
                break 'outer;
            }
            // Change the address space and write pages, as a tracked process would.
            let at = ph.start();
            let ops = r.below(3);
            for _ in 0..ops {
                let op = gen_op(&mut r);
                t.op(op);
                if matches!(op[0], OP_MAP | OP_MREMAP | OP_CHOP) {
                    huge = None;
                }
            }
            if ops > 0 {
                last = None;
                maps = None;
            }
            let at = ph.lap(0, at);
            let case = gen_clear_case(&mut r, &t, sw);
            n += 1;
            let at = ph.lap(1, at);
            let huge = huge.get_or_insert_with(|| hugetlb_pages(&t));
            // The VMAs and their flags, and the file huge pages, as they are before the call.
            let (vmas_before, file_huge) = maps
                .take()
                .unwrap_or_else(|| (vmas(&t), file_huge_pages(&t, sw)));
            let at = ph.lap(3, at);
            let before = match last.take() {
                Some(v) => v,
                None => {
                    let before = sd_state(&t, sw, huge);
                    ph.lap(2, at);
                    let before = match before {
                        Ok(v) => v,
                        Err(e) => {
                            // Disagreeing views after an op (not after a call: that is checked
                            // and fails): the environment changed the pages between the two
                            // reads. Rebuild; counted and the first one shown in the summary.
                            disagreed += 1;
                            first_disagreement.get_or_insert(e);
                            n -= 1;
                            continue 'outer;
                        }
                    };
                    before
                }
            };
            let at = ph.start();
            // Everything the call may clear when it has no vector: the matching pages of its
            // range, by the C implementation.
            let (s, e) = (
                case.arg.start & !(PAGE as u64 - 1),
                case.arg.end.wrapping_add(PAGE as u64 - 1) & !(PAGE as u64 - 1),
            );
            let m = (
                case.arg.category_inverted,
                case.arg.category_mask,
                case.arg.category_anyof_mask,
                case.arg.return_mask,
            );
            // Only a call without a vector clears what it does not report.
            let no_vec = case.arg.vec_len == 0;
            sw.select("c");
            let matching = if no_vec && s < e && e <= (1 << 47) {
                scan_all(t.pagemap.as_raw_fd(), s, e, m, VEC_REGIONS).unwrap_or_default()
            } else {
                Vec::new()
            };
            let at = ph.lap(4, at);
            let invalid = invalid_for_clear(&case.arg);
            let oc = if invalid {
                None
            } else {
                let mut report = case;
                report.arg.flags &= !PM_SCAN_CLEAR_SOFT_DIRTY;
                sw.select("c");
                Some(call(&t, &mut out_c, &report))
            };
            // The implementations clear in turn, or the one asked for.
            let clear_impl = only.unwrap_or(if n % 2 == 0 { "c" } else { "rust" });
            sw.select(clear_impl);
            let or = call(&t, &mut out_r, &case);
            let at = ph.lap(5, at);
            let after = sd_state(&t, sw, huge);
            ph.lap(2, at);
            let mut why = Vec::new();
            // An argument that cannot be read fails with EFAULT before anything is checked.
            let unreadable = matches!(case.arg_at, ArgAt::Null | ArgAt::Unmapped | ArgAt::Kernel);
            let refusal = if unreadable { 14 } else { 22 };
            match (&oc, &or.ret) {
                (None, Err(e)) if *e == refusal => {
                    refused += 1;
                }
                (None, ret) => {
                    why.push(format!("invalid for the flag, got {ret:?}, not {refusal}"))
                }
                (Some(oc), _) => {
                    if oc.ret != or.ret {
                        why.push(format!(
                            "return: C report {:?}, {clear_impl} clear {:?}",
                            oc.ret, or.ret
                        ));
                    }
                    // The report-only call went without the flag; everything else must match.
                    let unflagged = |a: Option<PmScanArg>| a.map(|a| PmScanArg { flags: 0, ..a });
                    if unflagged(oc.arg_after) != unflagged(or.arg_after) {
                        why.push(format!(
                            "walk_end: C report {:?}, {clear_impl} clear {:?}",
                            oc.arg_after.map(|x| x.walk_end),
                            or.arg_after.map(|x| x.walk_end)
                        ));
                    }
                    if oc.vec != or.vec {
                        let at = vec_offset(&case);
                        let show = |v: &[u8]| regions_of(v.get(at..).unwrap_or_default(), 6);
                        why.push(format!(
                            "output area differs from region {}: C report {:x?}, {clear_impl} \
                             clear {:x?}",
                            first_difference(&oc.vec, &or.vec),
                            show(&oc.vec),
                            show(&or.vec)
                        ));
                    }
                }
            }
            match &after {
                Err(e) => why.push(format!("after: {e}")),
                Ok(after) => {
                    let lost: Vec<usize> = (0..before.len())
                        .filter(|&i| before[i] && !after[i])
                        .collect();
                    let gained: Vec<usize> = (0..before.len())
                        .filter(|&i| !before[i] && after[i])
                        .collect();
                    match (&or.ret, invalid) {
                        (Ok(k), false) => {
                            // What was reported, and where each walk of the call began: a walk
                            // ends on a full bounce buffer of 512 regions.
                            let (reported, walk_starts) = if no_vec {
                                (ranges_of(&matching), Vec::new())
                            } else {
                                // An output area that cannot be read (an unmapped vector) is
                                // fine only when nothing was reported.
                                let v = or.vec.get(vec_offset(&case)..).unwrap_or_default();
                                if v.len() < 24 * *k {
                                    why.push(format!(
                                        "{k} region(s) reported, {} byte(s) of output to read",
                                        v.len()
                                    ));
                                }
                                let regs = regions_of(v, *k);
                                let starts = regs.iter().step_by(512).skip(1).map(|r| r.start);
                                (ranges_of(&regs), starts.collect())
                            };
                            let mut expect = vec![false; before.len()];
                            let as_regions: Vec<PageRegion> = reported
                                .iter()
                                .map(|&(start, end)| PageRegion {
                                    start,
                                    end,
                                    categories: 0,
                                })
                                .collect();
                            mark(&mut expect, &as_regions);
                            let want = expected_after(
                                &before,
                                &reported,
                                &walk_starts,
                                &vmas_before,
                                &file_huge,
                                huge,
                            );
                            let wrong: Vec<usize> =
                                (0..before.len()).filter(|&i| want[i] != after[i]).collect();
                            if let Some(&i) = wrong.first() {
                                why.push(format!(
                                    "{clear_impl}: {} page(s) not as the rules make of the state \
                                     before, first {:#x}: before {}, reported {}, want {}, after \
                                     {} ({})",
                                    wrong.len(),
                                    BASE + i * PAGE,
                                    before[i],
                                    expect[i],
                                    want[i],
                                    after[i],
                                    describe_page(&t, sw, BASE + i * PAGE)
                                ));
                            }
                            let c = (0..before.len())
                                .filter(|&i| before[i] && !after[i])
                                .count();
                            cleared_pages += c as u64;
                            nonempty += u64::from(c > 0);
                        }
                        _ => {
                            errors += u64::from(or.ret.is_err());
                            if let Some(&i) = lost.first() {
                                why.push(format!(
                                    "failed call lost {} soft-dirty page(s), first {:#x} ({})",
                                    lost.len(),
                                    BASE + i * PAGE,
                                    describe_page(&t, sw, BASE + i * PAGE)
                                ));
                            }
                            if invalid && !gained.is_empty() {
                                why.push("an invalid call changed the state".into());
                            }
                        }
                    }
                }
            }
            if why.is_empty() {
                passed += 1;
                if let Ok(after) = after {
                    let unchanged = after == before && or.ret.is_ok();
                    if unchanged || invalid {
                        maps = Some((vmas_before, file_huge));
                    }
                    last = Some(after);
                }
                continue;
            }
            failed += 1;
            if printed < 10 {
                printed += 1;
                println!("ORACLE seed {seed} call {n}: {:x?}", case);
                for w in &why {
                    println!("  {w}");
                }
            }
            continue 'outer;
        }
    }
    println!(
        "sd-oracle: seed {seed}: {n} clearing calls checked, {passed} passed, {failed} failed; \
         {nonempty} cleared something ({cleared_pages} pages), {refused} refused with EINVAL, \
         {errors} other errors; {builds} builds, {disagreed} after views disagreed before a \
         call; {:.1}s ({})",
        t0.elapsed().as_secs_f64(),
        ph.summary(["ops", "case", "state", "maps", "matching", "calls"])
    );
    if let Some(e) = first_disagreement {
        println!("sd-oracle: first disagreement before a call: {e}");
    }
    println!("@@COUNTS passed={passed} failed={failed} skipped=0");
    failed == 0 && passed == calls
}
