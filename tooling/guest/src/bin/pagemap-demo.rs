// SPDX-License-Identifier: GPL-2.0
//! PAGEMAP_SCAN demonstration: a child process builds a small address space (written, zero-page,
//! guard, THP and shared-file pages); the parent scans it through /proc/<pid>/pagemap, then
//! resets soft-dirty with clear_refs, lets the child write one page and scans again.

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
    while from_parent.read_exact(&mut cmd).is_ok() {
        match cmd[0] {
            // SAFETY: page 3 of the anon mapping.
            b'w' => unsafe { anon.add(3 * ps).write_volatile(9) },
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
    let all = (0, 0, 0, PM_SCAN_CATEGORIES);
    let mut ok = show(
        fd,
        &format!("PAGEMAP_SCAN of process {pid}, every category reported:"),
        &ranges,
        all,
    );
    if ok.is_ok() {
        let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "4");
        let wrote = wr
            .write_all(b"w")
            .and_then(|()| rd.read_exact(&mut [0u8; 1]));
        ok = match (reset, wrote) {
            (Ok(()), Ok(())) => show(
                fd,
                "after `echo 4 > clear_refs` and one write to anon page 3, soft-dirty pages only:",
                &ranges[..1],
                (
                    0,
                    PAGE_IS_SOFT_DIRTY,
                    0,
                    PAGE_IS_SOFT_DIRTY | PAGE_IS_PRESENT,
                ),
            ),
            (r, w) => Err(format!("clear_refs {r:?}, child {w:?}")),
        };
    }
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
