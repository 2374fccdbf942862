// SPDX-License-Identifier: GPL-2.0
//! Small helpers: running commands, errors, stage timing.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The tool's error: a message that says what failed and, where it helps, what to do.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error`] from format arguments.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => { $crate::util::Error(format!($($arg)*)) };
}

/// Returns early with an [`Error`] built from format arguments.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::err!($($arg)*)) };
}

/// Adds context to an error.
pub trait Context<T> {
    fn context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error(format!("{}: {e}", what().into())))
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` with inherited stdio; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let st = cmd
        .status()
        .context(|| format!("cannot start `{}`", describe(cmd)))?;
    if !st.success() {
        bail!("`{}` failed ({st})", describe(cmd));
    }
    Ok(())
}

/// Runs `cmd`, returning its stdout; fails (with its stderr) unless it exits 0.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context(|| format!("cannot start `{}`", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` with its output sent to `log`; on failure the log's tail is printed.
pub fn run_logged(cmd: &mut Command, log: &Path) -> Result<()> {
    let f = std::fs::File::create(log).context(|| format!("create {}", log.display()))?;
    let f2 = f.try_clone()?;
    let st = cmd
        .stdin(Stdio::null())
        .stdout(f)
        .stderr(f2)
        .status()
        .context(|| format!("cannot start `{}`", describe(cmd)))?;
    if !st.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        for l in tail.iter().rev() {
            eprintln!("  | {l}");
        }
        bail!(
            "`{}` failed ({st}); full log in {}",
            describe(cmd),
            log.display()
        );
    }
    Ok(())
}

/// Whether `prog` is found on PATH (or is an existing path).
pub fn have(prog: &str) -> bool {
    if prog.contains('/') {
        return Path::new(prog).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}

/// Prints `STAGE <name>: <secs>s` when dropped, so every stage's wall time is visible.
pub struct Stage {
    name: String,
    start: Instant,
}

impl Stage {
    pub fn new(name: &str) -> Self {
        println!("==> {name}");
        Stage {
            name: name.to_string(),
            start: Instant::now(),
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        println!(
            "STAGE {}: {:.1}s",
            self.name,
            self.start.elapsed().as_secs_f64()
        );
    }
}

/// A short content hash (FNV-1a, 64 bit) for change detection of small inputs.
pub fn fnv64(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain([0xffu8].iter()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// `doc` with the text between the lines `begin` and `end` replaced by `section` (the pair
/// added at the end if `doc` has none): a part of a generated document another command writes.
pub fn splice(doc: &str, begin: &str, end: &str, section: &str) -> String {
    let new = format!("{begin}\n{}\n{end}\n", section.trim_end());
    match (doc.find(begin), doc.find(end)) {
        (Some(b), Some(e)) if b < e => format!(
            "{}{new}{}",
            &doc[..b],
            doc[e + end.len()..].trim_start_matches('\n')
        ),
        _ if doc.is_empty() => new,
        _ => format!("{}\n\n{new}", doc.trim_end()),
    }
}

/// The text between the lines `begin` and `end` of `doc`, if it has them.
pub fn section_between(doc: &str, begin: &str, end: &str) -> Option<String> {
    let b = doc.find(begin)? + begin.len();
    let e = doc[b..].find(end)? + b;
    Some(doc[b..e].trim().to_string())
}
