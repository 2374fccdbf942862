// SPDX-License-Identifier: GPL-2.0
//! No-lost-write soak, run in the guest: writer threads write random pages of anonymous, THP,
//! shared memfd, shmem THP (memfd with MADV_HUGEPAGE under shmem_enabled "advise"), file THP
//! (a file on a tmpfs mounted huge=always), ext4 file (the page cache of a block filesystem)
//! and KSM memory (anonymous, MADV_MERGEABLE, written with the content it has, so that ksmd
//! merges a page again after each write), while a thread compacts memory (pages migrate under
//! the writers and the scans), and log each write; the tracker loops a
//! dirty-tracking scan over sub-ranges whose edges fall inside huge pages (the soft-dirty
//! get-and-clear, `PM_SCAN_CLEAR_SOFT_DIRTY`, and for comparison the uffd-wp get+WP of
//! `PM_SCAN_WP_MATCHING`). A write made after scans 0..c-1 completed and before scan s started
//! must be in the report of one of the scans c..s; each is checked.
//!
//! Prints `SOAK: writes <n>, missed <n>, splats <n>` (splats: kernel log lines that look like a
//! warning or a bug, read from /dev/kmsg) and a TAP line per tracking mode.

use pmrs_guest::*;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

const WRITERS: usize = 2;
/// Writes a writer logs per epoch before it stops.
const LOG_PER_EPOCH: usize = 150_000;
/// Scans per epoch at most.
const SCANS_PER_EPOCH: u32 = 2000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    SoftDirty,
    UffdWp,
    /// The control: report-only scan, then `clear_refs` 4, not atomic; it must miss writes,
    /// which shows the check can fail.
    ScanThenClearRefs,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::SoftDirty => "soft-dirty-get-and-clear",
            Mode::UffdWp => "uffd-wp-get-and-wp",
            Mode::ScanThenClearRefs => "control-scan-then-clear_refs",
        }
    }
}

/// Where the tmpfs mounted huge=always for the file THP part is.
const HUGE_TMPFS: &str = "/tmp/soak-huge";
/// Where the guest's /init mounts ext4 (on a ram disk).
const EXT4: &str = "/mnt/ext4";

/// Kinds of tracked memory: (name, length).
const KINDS: [(&str, usize); 7] = [
    ("anon", 1 << 20),
    ("anon THP", 2 * HUGE),
    ("memfd", 1 << 20),
    ("shmem THP", 2 * HUGE),
    ("file THP", 2 * HUGE),
    ("ext4 file", 2 * HUGE),
    ("KSM", 1 << 20),
];
/// The index of the KSM part in `KINDS`.
const KSM_KIND: usize = 6;
/// What every byte of the tracked memory is set to first, and what writers write to the KSM
/// part: its pages stay identical, so ksmd merges each one again after a write broke it out.
const FILL: u8 = 1;

/// The tracked memory: one part per kind of `KINDS`, as one page index space.
struct Mem {
    parts: Vec<(usize, usize)>,
    pages: usize,
    /// The pages of the KSM part.
    ksm: std::ops::Range<usize>,
}

impl Mem {
    fn new(mode: Mode, uffd: i32) -> Result<Mem, String> {
        let mut parts = Vec::new();
        for (kind, &(name, len)) in KINDS.iter().enumerate() {
            let (flags, fd) = match kind {
                2 | 3 => {
                    // SAFETY: a NUL-terminated name.
                    let fd = unsafe { libc::memfd_create(c"soak".as_ptr(), 0) };
                    // SAFETY: sizing our own memfd (as large as the over-sized mapping).
                    if fd < 0 || unsafe { libc::ftruncate(fd, (len + HUGE) as i64) } != 0 {
                        return Err(format!("{name}: memfd"));
                    }
                    (libc::MAP_SHARED, fd)
                }
                4 | 5 => {
                    let dir = if kind == 4 { HUGE_TMPFS } else { EXT4 };
                    let path = format!("{dir}/soak-{}\0", mode.name());
                    // SAFETY: a NUL-terminated path.
                    let fd = unsafe {
                        libc::open(
                            path.as_ptr().cast(),
                            libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
                            0o600,
                        )
                    };
                    // SAFETY: sizing our own file.
                    if fd < 0 || unsafe { libc::ftruncate(fd, (len + HUGE) as i64) } != 0 {
                        return Err(format!("{name}: {path}"));
                    }
                    (libc::MAP_SHARED, fd)
                }
                _ => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
            };
            // SAFETY: a fresh reservation, over-sized so that a 2 MiB aligned piece fits, then
            // the memory mapped over that piece (a file from offset 0, as huge mappings of it
            // need).
            let p = unsafe {
                let raw = libc::mmap(
                    std::ptr::null_mut(),
                    len + HUGE,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                if raw == libc::MAP_FAILED {
                    libc::MAP_FAILED
                } else {
                    let addr = (raw as usize + HUGE - 1) & !(HUGE - 1);
                    libc::mmap(
                        addr as *mut libc::c_void,
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        flags | libc::MAP_FIXED,
                        fd,
                        0,
                    )
                }
            };
            if fd >= 0 {
                // SAFETY: the mapping keeps the file.
                unsafe { libc::close(fd) };
            }
            if p == libc::MAP_FAILED {
                return Err(format!("{name}: mmap"));
            }
            let addr = p as usize;
            let advice = if (1..=5).contains(&kind) && kind != 2 {
                libc::MADV_HUGEPAGE
            } else {
                libc::MADV_NOHUGEPAGE
            };
            // SAFETY: advice on our own mapping.
            unsafe { libc::madvise(addr as *mut _, len, advice) };
            // SAFETY: as above.
            if kind == KSM_KIND
                && unsafe { libc::madvise(addr as *mut _, len, libc::MADV_MERGEABLE) } != 0
            {
                return Err(format!("{name}: MADV_MERGEABLE"));
            }
            if mode == Mode::UffdWp {
                uffd_register_wp(uffd, addr, len).map_err(|e| format!("UFFDIO_REGISTER: {e}"))?;
            }
            for p in (0..len).step_by(PAGE) {
                // SAFETY: inside the mapping.
                unsafe { std::ptr::write_bytes((addr + p) as *mut u8, FILL, PAGE) };
            }
            // Reclaim unmaps a file or shmem page and its PTE takes the soft-dirty bit with it
            // (upstream, for clear_refs as much as for PAGEMAP_SCAN: nothing keeps the bit of a
            // dropped file mapping, as sd-zap-probe shows for a split PMD). mlock keeps these
            // parts mapped; compaction still migrates them (compact_unevictable_allowed).
            // SAFETY: locking our own mapping.
            if (2..=5).contains(&kind) && unsafe { libc::mlock(addr as *const _, len) } != 0 {
                return Err(format!("{name}: mlock"));
            }
            parts.push((addr, len));
        }
        let pages = parts.iter().map(|p| p.1 / PAGE).sum();
        let ksm_start: usize = parts[..KSM_KIND].iter().map(|p| p.1 / PAGE).sum();
        let ksm = ksm_start..ksm_start + parts[KSM_KIND].1 / PAGE;
        Ok(Mem { parts, pages, ksm })
    }

    fn addr(&self, mut page: usize) -> usize {
        for &(a, l) in &self.parts {
            if page < l / PAGE {
                return a + page * PAGE;
            }
            page -= l / PAGE;
        }
        0
    }

    fn page_of(&self, addr: usize) -> Option<usize> {
        let mut base = 0;
        for &(a, l) in &self.parts {
            if addr >= a && addr < a + l {
                return Some(base + (addr - a) / PAGE);
            }
            base += l / PAGE;
        }
        None
    }
}

#[derive(Clone, Copy)]
struct Write {
    page: u32,
    first: u32,
    last: u32,
}

struct Shared {
    started: AtomicU32,
    completed: AtomicU32,
    stop: AtomicBool,
}

/// Stops an epoch's threads however the epoch ends.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

/// The page frames of the anonymous and memfd parts (`MADV_NOHUGEPAGE`: no huge page is made
/// of them or split), 0 where not present, from /proc/self/pagemap (root sees frames). Nothing
/// there changes a page's frame but migration (the soak neither swaps nor shares them), so
/// frames that changed while mapped count the pages that migrated. (The kernel here has no
/// `CONFIG_VM_EVENT_COUNTERS`, so /proc/vmstat has no `pgmigrate_success`.)
fn frames(pm: &std::fs::File, mem: &Mem) -> Vec<u64> {
    let mut out = Vec::new();
    for &i in &[0, 2] {
        let (addr, len) = mem.parts[i];
        let Ok(entries) = pagemap_entries(pm, addr, len / PAGE) else {
            return Vec::new();
        };
        out.extend(entries.into_iter().map(|e| {
            if e & (1 << 63) != 0 {
                e & ((1 << 55) - 1)
            } else {
                0
            }
        }));
    }
    out
}

/// Pages whose frame changed between two [`frames`].
fn moved(before: &[u64], after: &[u64]) -> u64 {
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| **b != 0 && **a != 0 && b != a)
        .count() as u64
}

const KSM_SYSFS: &str = "/sys/kernel/mm/ksm";

fn ksm_stat(name: &str) -> u64 {
    std::fs::read_to_string(format!("{KSM_SYSFS}/{name}"))
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One tracking pass over every part; marks reported pages in `rep`.
/// One scan of all the tracked memory, in calls over random sub-ranges (their edges mostly
/// inside huge pages) with, now and then, a short vector or a `max_pages` that cut a huge page
/// too; marks the reported pages in `rep`.
fn track(
    fd: i32,
    mode: Mode,
    mem: &Mem,
    vec: &mut [PageRegion],
    rep: &mut [u8],
    rng: &mut Rng,
) -> Result<(), String> {
    let (flags, cat) = match mode {
        Mode::SoftDirty => (PM_SCAN_CLEAR_SOFT_DIRTY, PAGE_IS_SOFT_DIRTY),
        Mode::UffdWp => (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, PAGE_IS_WRITTEN),
        Mode::ScanThenClearRefs => (0, PAGE_IS_SOFT_DIRTY),
    };
    for &(a, l) in &mem.parts {
        let (mut at, end) = (a as u64, (a + l) as u64);
        while at < end {
            let r = rng.next();
            let sub_end = end.min(at + (1 + r % 1536) * PAGE as u64);
            let (vec_len, max_pages) = match (r >> 16) % 8 {
                0 => (1 + (r >> 24) % 4, 0),
                1 => (vec.len() as u64, 1 + (r >> 24) % 700),
                _ => (vec.len() as u64, 0),
            };
            let mut arg = PmScanArg {
                size: std::mem::size_of::<PmScanArg>() as u64,
                flags,
                start: at,
                end: sub_end,
                vec: vec.as_mut_ptr() as u64,
                vec_len,
                max_pages,
                category_mask: cat,
                return_mask: cat,
                ..Default::default()
            };
            let n = pagemap_scan(fd, &mut arg).map_err(|e| format!("PAGEMAP_SCAN: {e}"))?;
            for r in &vec[..n] {
                let mut x = r.start as usize;
                while x < r.end as usize {
                    if let Some(p) = mem.page_of(x) {
                        rep[p] = 1;
                    }
                    x += PAGE;
                }
            }
            if arg.walk_end <= at {
                return Err(format!(
                    "PAGEMAP_SCAN from {at:#x}: walk_end {:#x}",
                    arg.walk_end
                ));
            }
            at = arg.walk_end;
        }
    }
    if mode == Mode::ScanThenClearRefs {
        std::fs::write("/proc/self/clear_refs", "4").map_err(|e| format!("clear_refs: {e}"))?;
    }
    Ok(())
}

/// Runs epochs until `target` writes were checked; returns (checked, missed, scans).
fn soak(mode: Mode, target: u64, seed: u64) -> Result<(u64, u64, u64), String> {
    let pm = std::fs::File::open("/proc/self/pagemap").map_err(|e| format!("pagemap: {e}"))?;
    let fd = pm.as_raw_fd();
    let uffd = if mode == Mode::UffdWp {
        uffd_open(UFFD_FEATURES_WP_ASYNC).map_err(|e| format!("userfaultfd: {e}"))?
    } else {
        -1
    };
    let mem = Arc::new(Mem::new(mode, uffd)?);
    // What the huge parts really got: evidence that the memory types are covered.
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let huge: Vec<&str> = rollup
        .lines()
        .filter(|l| {
            ["AnonHugePages", "ShmemPmdMapped", "FilePmdMapped"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .collect();
    println!(
        "# {}: {}",
        mode.name(),
        huge.join(", ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut vec = vec![PageRegion::default(); 512];
    let mut scratch = vec![0u8; mem.pages];
    let mut rng = Rng::new(seed);
    // Arm: everything clean / write-protected.
    track(fd, mode, &mem, &mut vec, &mut scratch, &mut rng)?;
    let (mut checked, mut missed, mut scans) = (0u64, 0u64, 0u64);
    let mut epoch = 0u64;
    let mut ksm_merged_max = 0;
    let mut migrated = 0;
    let ksm_scans0 = ksm_stat("full_scans");
    // The control goes on (a few epochs at most) until it has shown a miss.
    while checked < target || (mode == Mode::ScanThenClearRefs && missed == 0 && epoch < 20) {
        let sh = Arc::new(Shared {
            started: AtomicU32::new(0),
            completed: AtomicU32::new(0),
            stop: AtomicBool::new(false),
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (sh, mem) = (sh.clone(), mem.clone());
                let mut rng = Rng::new(seed ^ (epoch << 8) ^ ((w as u64 + 1) << 32));
                std::thread::spawn(move || {
                    let mut log = Vec::with_capacity(LOG_PER_EPOCH);
                    while !sh.stop.load(Ordering::SeqCst) && log.len() < LOG_PER_EPOCH {
                        let page = rng.below(mem.pages as u64) as usize;
                        let c = sh.completed.load(Ordering::SeqCst);
                        let value = if mem.ksm.contains(&page) {
                            u32::from_ne_bytes([FILL; 4])
                        } else {
                            c.wrapping_add(1)
                        };
                        // SAFETY: a page of the tracked memory, alive for the whole run.
                        unsafe { std::ptr::write_volatile(mem.addr(page) as *mut u32, value) };
                        let s = sh.started.load(Ordering::SeqCst);
                        log.push(Write {
                            page: page as u32,
                            first: c,
                            last: s,
                        });
                        if mode == Mode::ScanThenClearRefs && log.len().is_multiple_of(8) {
                            // The control's writers are paced: at full speed every page is
                            // written again before the next scan, which then reports it, and
                            // a write lost between scan and clear_refs hides behind the next
                            // one (a loaded machine ran 19 scans and found no miss).
                            std::thread::sleep(std::time::Duration::from_micros(100));
                        } else if rng.below(128) == 0 {
                            std::thread::yield_now();
                        }
                    }
                    log
                })
            })
            .collect();
        // Pages migrate under the writers and the scans.
        let frames0 = frames(&pm, &mem);
        let _stop = StopOnDrop(sh.clone());
        let compactor = {
            let sh = sh.clone();
            std::thread::spawn(move || {
                while !sh.stop.load(Ordering::SeqCst) {
                    let _ = std::fs::write("/proc/sys/vm/compact_memory", "1");
                    // A whole compaction is dear under TCG (KASAN more so); the first of an
                    // epoch moves most pages, later ones what was allocated since.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            })
        };
        let mut reported: Vec<u8> = Vec::new();
        let mut k = 0u32;
        loop {
            let last = k == SCANS_PER_EPOCH || writers.iter().all(|w| w.is_finished());
            let mut logs = Vec::new();
            if last {
                sh.stop.store(true, Ordering::SeqCst);
            }
            sh.started.store(k + 1, Ordering::SeqCst);
            let mut rep = vec![0u8; mem.pages];
            track(fd, mode, &mem, &mut vec, &mut rep, &mut rng)?;
            sh.completed.store(k + 1, Ordering::SeqCst);
            reported.extend_from_slice(&rep);
            k += 1;
            if last {
                // A final scan after every writer stopped: join them, then one more scan.
                for w in writers {
                    logs.push(w.join().map_err(|_| "writer panicked".to_string())?);
                }
                let _ = compactor.join();
                migrated += moved(&frames0, &frames(&pm, &mem));
                let merged = std::fs::read_to_string("/proc/self/ksm_merging_pages")
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                ksm_merged_max = ksm_merged_max.max(merged);
                sh.started.store(k + 1, Ordering::SeqCst);
                let mut rep = vec![0u8; mem.pages];
                track(fd, mode, &mem, &mut vec, &mut rep, &mut rng)?;
                reported.extend_from_slice(&rep);
                k += 1;
                for log in logs {
                    for w in log {
                        checked += 1;
                        let hit = (w.first..=w.last.min(k - 1))
                            .any(|s| reported[s as usize * mem.pages + w.page as usize] != 0);
                        if !hit {
                            missed += 1;
                            if missed <= 5 {
                                println!(
                                    "# {}: write to page {} between scans {} and {} in no report",
                                    mode.name(),
                                    w.page,
                                    w.first,
                                    w.last
                                );
                            }
                        }
                    }
                }
                break;
            }
        }
        scans += u64::from(k);
        epoch += 1;
    }
    // Evidence that the KSM part was merged and that pages migrated meanwhile.
    println!(
        "# {}: pages of the anon and memfd parts migrated {}, ksmd full scans {}, KSM pages \
         merged at an epoch's end (most) {}",
        mode.name(),
        migrated,
        ksm_stat("full_scans") - ksm_scans0,
        ksm_merged_max
    );
    if uffd >= 0 {
        // SAFETY: closing our descriptor.
        unsafe { libc::close(uffd) };
    }
    Ok((checked, missed, scans))
}

fn main() -> ExitCode {
    let writes = arg_u64("--writes", 1_000_000);
    let seed = arg_u64("--seed", 1);
    println!("TAP version 13\n1..3");
    // The get-and-clear exists in the Rust implementation only: select it, whatever an earlier
    // program left the switch at (a kernel without the switch has only C: the flag fails there).
    let _ = ImplSwitch::open().and_then(|s| s.set(IMPL_RUST));
    // Shmem THPs where asked for (memfd with MADV_HUGEPAGE), and a tmpfs that always has them.
    let old_shmem = sysfs_choice(SHMEM_ENABLED);
    let _ = std::fs::write(SHMEM_ENABLED, "advise");
    let mounted = mount_huge_tmpfs(HUGE_TMPFS);
    let _ = std::fs::create_dir_all(EXT4);
    if !std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .contains(&format!(" {EXT4} ext4 "))
    {
        println!("# no ext4 at {EXT4}: the ext4 part is a file on the root file system");
    }
    // ksmd merges the KSM part as fast as it can go here: a page broken out by a write is
    // merged again within a few milliseconds.
    let old_ksm: Vec<(&str, Option<String>)> = ["sleep_millisecs", "pages_to_scan", "run"]
        .into_iter()
        .map(|k| (k, std::fs::read_to_string(format!("{KSM_SYSFS}/{k}")).ok()))
        .collect();
    for (k, v) in [
        ("sleep_millisecs", "5"),
        ("pages_to_scan", "1000"),
        ("run", "1"),
    ] {
        if std::fs::write(format!("{KSM_SYSFS}/{k}"), v).is_err() {
            println!("# cannot set {KSM_SYSFS}/{k}: the KSM part is not merged");
        }
    }
    if !mounted {
        println!("# no huge=always tmpfs at {HUGE_TMPFS}: the file THP part is plain tmpfs");
    }
    let (mut all_checked, mut all_missed, mut ok) = (0, 0, true);
    for (i, mode) in [Mode::SoftDirty, Mode::UffdWp].into_iter().enumerate() {
        match soak(mode, writes / 2, seed) {
            Ok((checked, missed, scans)) => {
                println!(
                    "# {}: {scans} scans, writes checked {checked}, missed {missed}",
                    mode.name()
                );
                all_checked += checked;
                all_missed += missed;
                let good = missed == 0 && checked > 0;
                ok &= good;
                println!(
                    "{} {} {}",
                    if good { "ok" } else { "not ok" },
                    i + 1,
                    mode.name()
                );
            }
            Err(e) => {
                ok = false;
                println!("not ok {} {}\n# {e}", i + 1, mode.name());
            }
        }
    }
    // The control: the same check on the non-atomic status quo must find misses.
    match soak(Mode::ScanThenClearRefs, (writes / 10).max(100_000), seed) {
        Ok((checked, missed, scans)) => {
            println!(
                "# {}: {scans} scans, writes checked {checked}, missed {missed} (expected > 0)",
                Mode::ScanThenClearRefs.name()
            );
            let good = missed > 0;
            ok &= good;
            println!(
                "{} 3 the check finds the writes a non-atomic read-then-clear loses",
                if good { "ok" } else { "not ok" }
            );
        }
        Err(e) => {
            ok = false;
            println!("not ok 3 control\n# {e}");
        }
    }
    if mounted {
        // SAFETY: unmounting what we mounted.
        unsafe { libc::umount2(c"/tmp/soak-huge".as_ptr(), libc::MNT_DETACH) };
    }
    if let Some(v) = old_shmem {
        let _ = std::fs::write(SHMEM_ENABLED, v);
    }
    for (k, v) in old_ksm.into_iter().rev() {
        if let Some(v) = v {
            let _ = std::fs::write(format!("{KSM_SYSFS}/{k}"), v.trim());
        }
    }
    let splats = kmsg_splats();
    println!("SOAK: writes {all_checked}, missed {all_missed}, splats {splats}");
    if ok && splats == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
