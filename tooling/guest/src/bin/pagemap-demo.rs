// SPDX-License-Identifier: GPL-2.0
//! PAGEMAP_SCAN demonstration: a child process builds a small address space (written, zero-page,
//! guard, THP and shared-file pages); the parent scans it through /proc/<pid>/pagemap with the C
//! implementation and with the Rust one and shows that they agree; then, while a thread of the
//! child keeps writing its pages, it gets and clears the soft-dirty state of a sub-range
//! (`PM_SCAN_CLEAR_SOFT_DIRTY`) twice and shows what each call reported, and that the pages
//! outside the sub-range were left as they were. A new mapping reads soft-dirty as a whole
//! (VM_SOFTDIRTY) until a clear covers all of it, so the demo starts from one clear_refs.

use pmrs_guest::*;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::ExitCode;

const MADV_GUARD_INSTALL: i32 = 102;

fn die(what: &str) -> ! {
    eprintln!("pagemap-demo: {what}: {}", std::io::Error::last_os_error());
    std::process::exit(1)
}

fn map(len: usize, prot: i32, flags: i32, fd: i32) -> *mut u8 {
    // SAFETY: a fresh mapping chosen by the kernel (no MAP_FIXED) touches no existing memory.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
    if p == libc::MAP_FAILED {
        die("mmap");
    }
    p.cast()
}

/// The child's side: build the mappings, report their addresses, then serve commands.
fn child(mut to_parent: File, mut from_parent: File) -> ! {
    let ps = page_size();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let anon = map(64 * ps, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1);
    // SAFETY (all writes and reads below): every offset stays inside the mapping it indexes,
    // which this process owns for its whole life.
    unsafe {
        for i in 0..16 {
            anon.add(i * ps).write_volatile(1);
        }
        for i in 16..24 {
            let _ = anon.add(i * ps).read_volatile();
        }
        if libc::madvise(anon.add(40 * ps).cast(), 8 * ps, MADV_GUARD_INSTALL) != 0 {
            eprintln!("(guard regions unavailable)");
        }
    }
    let huge = 2 << 20;
    let thp_raw = map(3 * huge, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1);
    let thp = ((thp_raw as usize + huge - 1) & !(huge - 1)) as *mut u8;
    // SAFETY: [thp, thp + huge) lies inside the 3-huge-page mapping above.
    unsafe {
        libc::madvise(thp.cast(), huge, libc::MADV_HUGEPAGE);
        for i in 0..huge / ps {
            thp.add(i * ps).write_volatile(2);
        }
    }
    // SAFETY: memfd_create with a NUL-terminated name.
    let mfd = unsafe { libc::memfd_create(c"pagemap-demo".as_ptr(), 0) };
    if mfd < 0 || unsafe { libc::ftruncate(mfd, (8 * ps) as i64) } != 0 {
        die("memfd");
    }
    let file = map(8 * ps, rw, libc::MAP_SHARED, mfd);
    // SAFETY: inside the 8-page shared mapping.
    unsafe {
        for i in 0..4 {
            file.add(i * ps).write_volatile(3);
        }
    }
    let addrs = [
        anon as u64,
        (64 * ps) as u64,
        thp as u64,
        huge as u64,
        file as u64,
        (8 * ps) as u64,
    ];
    let mut msg = Vec::new();
    for a in addrs {
        msg.extend_from_slice(&a.to_ne_bytes());
    }
    if to_parent.write_all(&msg).is_err() {
        std::process::exit(1);
    }
    let mut cmd = [0u8; 1];
    let anon_addr = anon as usize;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writer = None;
    while from_parent.read_exact(&mut cmd).is_ok() {
        match cmd[0] {
            // A writer thread: one page of anon pages 0..16 every millisecond, round and round.
            b'w' => {
                let stop = stop.clone();
                writer = Some(std::thread::spawn(move || {
                    let mut i = 0usize;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        // SAFETY: page i % 16 of the anon mapping, alive as long as the process.
                        unsafe { ((anon_addr + (i % 16) * ps) as *mut u8).write_volatile(7) };
                        i += 1;
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }));
            }
            // Writes anon pages 32..40, outside the range the parent gets and clears.
            b'o' => {
                for i in 32..40 {
                    // SAFETY: page i of the 64-page anon mapping.
                    unsafe { ((anon_addr + i * ps) as *mut u8).write_volatile(5) };
                }
            }
            b's' => {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                if let Some(w) = writer.take() {
                    let _ = w.join();
                }
            }
            _ => std::process::exit(0),
        }
        if to_parent.write_all(b"k").is_err() {
            std::process::exit(1);
        }
    }
    std::process::exit(0)
}

fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        die("pipe");
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

fn show(
    fd: i32,
    title: &str,
    ranges: &[(&str, u64, u64)],
    mask: (u64, u64, u64, u64),
) -> Result<(), String> {
    println!("{title}");
    for (name, start, len) in ranges {
        let regions =
            scan_all(fd, *start, start + len, mask, 4).map_err(|e| format!("PAGEMAP_SCAN: {e}"))?;
        println!(
            "  {name} [{start:#x}, {:#x}): {} region(s)",
            start + len,
            regions.len()
        );
        let ps = page_size() as u64;
        for r in regions {
            println!(
                "    +{:>5} pages, {:>4} page(s): {}",
                (r.start - start) / ps,
                (r.end - r.start) / ps,
                category_names(r.categories)
            );
        }
    }
    Ok(())
}

/// Switches the PAGEMAP_SCAN implementation; false if the kernel has only C.
fn use_impl(which: &str) -> bool {
    ImplSwitch::open().and_then(|s| s.set(which)).is_ok()
}

/// Scans every category of `ranges` with C, then with Rust, prints the regions once and whether
/// the two agree.
fn compare_and_show(fd: i32, pid: i32, ranges: &[(&str, u64, u64)]) -> Result<(), String> {
    let all = (0, 0, 0, PM_SCAN_CATEGORIES);
    let scan = |which: &str| -> Result<Vec<Vec<PageRegion>>, String> {
        let _ = use_impl(which);
        ranges
            .iter()
            .map(|(_, s, l)| {
                scan_all(fd, *s, s + l, all, 4).map_err(|e| format!("PAGEMAP_SCAN: {e}"))
            })
            .collect()
    };
    let c = scan("c")?;
    show(
        fd,
        &format!("PAGEMAP_SCAN of process {pid}, every category reported:"),
        ranges,
        all,
    )?;
    if use_impl("rust") {
        let r = scan("rust")?;
        let n: usize = c.iter().map(Vec::len).sum();
        if r == c {
            println!("C and Rust PAGEMAP_SCAN agree: the same {n} regions, region for region.");
        } else {
            println!("C and Rust PAGEMAP_SCAN DIFFER:\n  C:    {c:x?}\n  Rust: {r:x?}");
            return Err("the implementations differ".into());
        }
    } else {
        println!("(this kernel has the C PAGEMAP_SCAN only)");
    }
    Ok(())
}

/// One `PM_SCAN_CLEAR_SOFT_DIRTY` call over pages `from..to` of `anon`: the soft-dirty pages it
/// reported (and cleared).
fn get_and_clear(fd: i32, anon: u64, from: u64, to: u64) -> Result<Vec<u64>, String> {
    let ps = page_size() as u64;
    let mut vec = vec![PageRegion::default(); 64];
    let mut arg = PmScanArg {
        size: std::mem::size_of::<PmScanArg>() as u64,
        flags: PM_SCAN_CLEAR_SOFT_DIRTY,
        start: anon + from * ps,
        end: anon + to * ps,
        vec: vec.as_mut_ptr() as u64,
        vec_len: vec.len() as u64,
        category_mask: PAGE_IS_SOFT_DIRTY,
        return_mask: PAGE_IS_SOFT_DIRTY,
        ..Default::default()
    };
    let n = pagemap_scan(fd, &mut arg).map_err(|e| format!("PM_SCAN_CLEAR_SOFT_DIRTY: {e}"))?;
    Ok(vec[..n]
        .iter()
        .flat_map(|r| (r.start - anon) / ps..(r.end - anon) / ps)
        .collect())
}

/// The soft-dirty pages of `anon` pages `from..to`, report-only.
fn soft_dirty(fd: i32, anon: u64, from: u64, to: u64) -> Result<Vec<u64>, String> {
    let ps = page_size() as u64;
    let sd = (0, PAGE_IS_SOFT_DIRTY, 0, PAGE_IS_SOFT_DIRTY);
    let regions = scan_all(fd, anon + from * ps, anon + to * ps, sd, 64)
        .map_err(|e| format!("PAGEMAP_SCAN: {e}"))?;
    Ok(regions
        .iter()
        .flat_map(|r| (r.start - anon) / ps..(r.end - anon) / ps)
        .collect())
}

/// Sends the child command `cmd` and waits for its acknowledgement.
fn child_cmd(rd: &mut File, wr: &mut File, cmd: &[u8]) -> Result<(), String> {
    wr.write_all(cmd)
        .and_then(|()| rd.read_exact(&mut [0u8; 1]))
        .map_err(|e| format!("child: {e}"))
}

/// Gets and clears anon pages 0..32 twice while the child writes pages 0..16, then once more
/// after it stopped.
fn get_and_clear_demo(
    fd: i32,
    pid: i32,
    anon: u64,
    rd: &mut File,
    wr: &mut File,
) -> Result<(), String> {
    // The C implementation, where the uAPI lives (the switch exists only with both built).
    let _ = use_impl("c");
    // The anon mapping is new, so VM_SOFTDIRTY makes all of it read soft-dirty, and a clear of
    // part of it leaves that flag (and every page reading soft-dirty) in place. One clear_refs
    // clears the flag; from then on each page has its own state.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "4")
        .map_err(|e| format!("clear_refs: {e}"))?;
    child_cmd(rd, wr, b"o")?;
    println!("clear_refs 4 once (the mapping is new, so all of it reads soft-dirty until then), then pages 32..40 written");
    let outside_before = soft_dirty(fd, anon, 32, 64)?;
    println!("get-and-clear of anon pages 0..32 (PM_SCAN_CLEAR_SOFT_DIRTY), a writer thread writing pages 0..16:");
    let first = get_and_clear(fd, anon, 0, 32)?;
    println!(
        "  call 1 reported and cleared {} page(s): {first:?}",
        first.len()
    );
    child_cmd(rd, wr, b"w")?;
    std::thread::sleep(std::time::Duration::from_millis(40));
    let second = get_and_clear(fd, anon, 0, 32)?;
    println!(
        "  call 2, 40 ms later: {} page(s) written since call 1: {second:?}",
        second.len()
    );
    child_cmd(rd, wr, b"s")?;
    let third = get_and_clear(fd, anon, 0, 32)?;
    println!(
        "  call 3, the writer stopped: {} page(s) written between call 2 and the stop",
        third.len()
    );
    let fourth = get_and_clear(fd, anon, 0, 32)?;
    println!(
        "  call 4: {} page(s): nothing written since, nothing reported",
        fourth.len()
    );
    let outside_after = soft_dirty(fd, anon, 32, 64)?;
    println!(
        "  pages 32..64, outside the range: {} soft-dirty before, {} after: {}",
        outside_before.len(),
        outside_after.len(),
        if outside_before == outside_after {
            "left as they were"
        } else {
            "CHANGED"
        }
    );
    if !fourth.is_empty()
        || outside_before != outside_after
        || outside_before.len() != 8
        || second.is_empty()
    {
        return Err("the get-and-clear did not behave".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let (p_read, c_write) = pipe();
    let (c_read, p_write) = pipe();
    // SAFETY: the program is single-threaded here; the child only uses async-signal-safe calls
    // before building its own state.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        die("fork");
    }
    if pid == 0 {
        drop(p_read);
        drop(p_write);
        child(c_write, c_read);
    }
    drop(c_write);
    drop(c_read);
    let (mut rd, mut wr) = (p_read, p_write);
    let mut buf = [0u8; 48];
    if rd.read_exact(&mut buf).is_err() {
        eprintln!("pagemap-demo: the child did not report its mappings");
        return ExitCode::FAILURE;
    }
    let a: Vec<u64> = buf
        .chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let ranges = [
        ("anon", a[0], a[1]),
        ("thp", a[2], a[3]),
        ("memfd", a[4], a[5]),
    ];
    let pagemap = match File::open(format!("/proc/{pid}/pagemap")) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("pagemap-demo: open /proc/{pid}/pagemap: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fd = pagemap.as_raw_fd();
    let ok = compare_and_show(fd, pid, &ranges)
        .and_then(|()| get_and_clear_demo(fd, pid, a[0], &mut rd, &mut wr));
    let _ = wr.write_all(b"q");
    let mut st = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    match ok {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pagemap-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
