// SPDX-License-Identifier: GPL-2.0
//! Booting the built kernel under QEMU TCG with a hard timeout; the console (ttyS0) and the
//! results channel (ttyS1) go to separate files so kernel messages never interleave with TAP.

use crate::bail;
use crate::util::{Context, Result};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A QEMU machine the guests boot on: the emulator, its machine arguments, the kernel's console
/// and how the results channel reaches the guest.
pub struct Machine {
    pub qemu: &'static str,
    pub args: &'static [&'static str],
    /// The kernel's console device (`console=`).
    pub console: &'static str,
    /// The results channel is a virtio console (`/dev/hvc0`, over virtio-mmio) rather than
    /// the second serial port (`/dev/ttyS1`).
    pub virtio_results: bool,
}

/// The x86_64 PC the test suites run on: console on ttyS0, results on ttyS1.
pub const X86_64: Machine = Machine {
    qemu: "qemu-system-x86_64",
    args: &[],
    console: "ttyS0",
    virtio_results: false,
};

impl Machine {
    /// Kernel command line: serial console, and any warning or oops ends the run.
    pub fn append(&self) -> String {
        format!(
            "console={} panic=-1 panic_on_warn=1 oops=panic rdinit=/init",
            self.console
        )
    }
}

pub struct Boot<'a> {
    pub machine: &'a Machine,
    /// Appended to the kernel's own command line (`numa=fake=2`).
    pub kernel_args: &'a str,
    /// Appended to the kernel command line (after `--`: arguments of /init).
    pub init_args: &'a str,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub mem: &'a str,
    pub smp: u32,
    pub timeout: Duration,
    /// Console and shell on this terminal instead of files.
    pub interactive: bool,
    /// Where the console and results logs go.
    pub logdir: &'a Path,
    /// Print results-channel lines as they arrive (all of them, or only `@@` markers).
    pub echo_results: bool,
    /// `-icount shift=0`: the guest clock advances 1 ns per guest instruction, so guest times
    /// count instructions (deterministic on a noisy host). Needs `smp` 1 (no MTTCG).
    pub icount: bool,
    /// More emulator arguments (`cargo xtask profile`: its plugin and control port).
    pub extra_args: Vec<String>,
    /// Called with each complete line of the results channel as it arrives, and the emulator's
    /// process id.
    pub watch: Option<&'a dyn Fn(&str, u32)>,
}

impl<'a> Boot<'a> {
    /// A non-interactive boot of a test guest on x86_64 (2 GiB, `smp` vCPUs, no /init
    /// arguments, results to a file, no icount); callers change what differs with `..`.
    pub fn new(
        kernel: &'a Path,
        initrd: &'a Path,
        smp: u32,
        timeout: Duration,
        logdir: &'a Path,
    ) -> Self {
        Boot {
            machine: &X86_64,
            kernel_args: "",
            init_args: "",
            kernel,
            initrd,
            mem: "2G",
            smp,
            timeout,
            interactive: false,
            logdir,
            echo_results: false,
            icount: false,
            extra_args: Vec::new(),
            watch: None,
        }
    }
}

pub struct Outcome {
    pub console: String,
    pub results: String,
    pub timed_out: bool,
    pub status: Option<ExitStatus>,
    pub seconds: f64,
    pub console_path: PathBuf,
    pub results_path: PathBuf,
}

fn read_from(path: &Path, pos: &mut u64, out: &mut String) {
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(*pos)).is_ok() {
            let mut buf = Vec::new();
            if let Ok(n) = f.read_to_end(&mut buf) {
                *pos += n as u64;
                out.push_str(&String::from_utf8_lossy(&buf));
            }
        }
    }
}

pub fn boot(b: &Boot<'_>) -> Result<Outcome> {
    let qemu = b.machine.qemu;
    if !crate::util::have(qemu) {
        bail!("{qemu} is missing: run `cargo xtask setup`");
    }
    std::fs::create_dir_all(b.logdir)?;
    // Two boots writing the same logs would interleave their results (each emulator writes at
    // its own offset): the second is refused while the first runs. The lock goes with the
    // process.
    let lock = std::fs::File::create(b.logdir.join(".boot.lock"))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "{} is in use by another boot (a `cargo xtask` command still running?)",
            b.logdir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
    }
    let console_path = b.logdir.join("console.log");
    let results_path = b.logdir.join("results.log");
    let _ = std::fs::remove_file(&console_path);
    let _ = std::fs::write(&results_path, "");
    // The results device, for an /init that reads it from its environment (the matrix's).
    let mut append = format!(
        "{} results=/dev/{}",
        b.machine.append(),
        if b.machine.virtio_results {
            "hvc0"
        } else {
            "ttyS1"
        }
    );
    if !b.kernel_args.is_empty() {
        append.push(' ');
        append.push_str(b.kernel_args);
    }
    if !b.init_args.is_empty() {
        append.push_str(" -- ");
        append.push_str(b.init_args);
    }
    let mut c = Command::new(qemu);
    c.args(b.machine.args)
        .args(["-accel", "tcg", "-no-reboot", "-smp"])
        .arg(b.smp.to_string())
        .args(["-m", b.mem])
        .arg("-kernel")
        .arg(b.kernel)
        .arg("-initrd")
        .arg(b.initrd)
        .arg("-append")
        .arg(&append);
    if b.icount {
        if b.smp != 1 {
            bail!("-icount needs one vCPU, not {}", b.smp);
        }
        c.args(["-icount", "shift=0"]);
    }
    let results_file = format!("file:{}", results_path.display());
    if b.interactive {
        c.args(["-nographic", "-serial", "mon:stdio"]);
    } else {
        c.args(["-display", "none", "-monitor", "none", "-serial"])
            .arg(format!("file:{}", console_path.display()))
            .stdin(Stdio::null());
    }
    if b.machine.virtio_results {
        c.args(["-device", "virtio-serial-device", "-chardev"])
            .arg(format!(
                "{},id=results",
                results_file.replacen(':', ",path=", 1)
            ))
            .args(["-device", "virtconsole,chardev=results"]);
    } else {
        c.arg("-serial").arg(&results_file);
    }
    c.args(&b.extra_args);
    let start = Instant::now();
    let mut child = c.spawn().context(|| format!("starting {qemu}"))?;
    let mut watch_buf = String::new();
    let mut results = String::new();
    let mut pos = 0u64;
    let mut line_buf = String::new();
    let mut timed_out = false;
    let status = loop {
        std::thread::sleep(Duration::from_millis(250));
        let before = results.len();
        read_from(&results_path, &mut pos, &mut results);
        if b.echo_results && results.len() > before {
            line_buf.push_str(&results[before..]);
            while let Some(i) = line_buf.find('\n') {
                let line: String = line_buf.drain(..=i).collect();
                println!("  guest| {}", line.trim_end_matches(['\r', '\n']));
            }
        }
        if let Some(w) = b.watch.filter(|_| results.len() > before) {
            watch_buf.push_str(&results[before..]);
            while let Some(i) = watch_buf.find('\n') {
                let line: String = watch_buf.drain(..=i).collect();
                w(line.trim_end_matches(['\r', '\n']), child.id());
            }
        }
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if start.elapsed() > b.timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().ok();
        }
    };
    read_from(&results_path, &mut pos, &mut results);
    let console = std::fs::read(&console_path)
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_default();
    Ok(Outcome {
        console,
        results,
        timed_out,
        status,
        seconds: start.elapsed().as_secs_f64(),
        console_path,
        results_path,
    })
}
