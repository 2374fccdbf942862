// SPDX-License-Identifier: GPL-2.0
//! What the host (`xtask`) and the programs in the test guest (`pmrs-guest`) agree on, in one
//! place: the markers on the results channel, the kernel log lines that count as a splat, and
//! the debugfs switch between the two `PAGEMAP_SCAN` implementations.
#![no_std]

/// The guest's /init reached userspace: `@@GUEST-READY <uname -r> cpus=<n>`.
pub const GUEST_READY: &str = "@@GUEST-READY";
/// A remark of the guest's /init, printed by the host: `@@NOTE <text>`.
pub const NOTE: &str = "@@NOTE";
/// A suite starts: `@@SUITE-BEGIN <name> <impl>`.
pub const SUITE_BEGIN: &str = "@@SUITE-BEGIN";
/// A suite ended: `@@SUITE-END <name> <impl> rc=<n> secs=<guest seconds>`.
pub const SUITE_END: &str = "@@SUITE-END";
/// A program's own count, for suites that are not TAP:
/// `@@COUNTS passed=<n> failed=<n> skipped=<n>`.
pub const COUNTS: &str = "@@COUNTS";
/// Every suite ran; the guest powers off.
pub const ALL_DONE: &str = "@@ALL-DONE";
/// `cargo xtask profile`: the guest program reached a point the profile is taken between; it
/// waits for a line on the profile's control port until the emulator has dumped its counts.
pub const PROFILE_MARK: &str = "@@PROFILE-MARK";
/// The control port the guest reads that line from (the third serial port).
pub const PROFILE_PORT: &str = "/dev/ttyS2";

/// The debugfs file that selects the implementation (`CONFIG_PROC_PAGEMAP_SCAN_SELECT`).
pub const IMPL_SWITCH: &str = "/sys/kernel/debug/pagemap_scan/impl";
/// What [`IMPL_SWITCH`] takes: the C implementation ...
pub const IMPL_C: &str = "c";
/// ... and the Rust one.
pub const IMPL_RUST: &str = "rust";

/// Substrings of a kernel log line that starts a report nobody should ever see in a test run
/// (a warning, a BUG, an oops, lockdep, a sanitizer, a hung task or RCU stall, a Rust panic).
/// The host reads them from the console, the guest programs from /dev/kmsg.
pub const SPLAT_PATTERNS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "kernel BUG at",
    "Oops",
    "general protection fault",
    "Kernel panic",
    "Call Trace:",
    "INFO: possible",
    "INFO: task ",
    "INFO: rcu",
    "rcu: INFO:",
    "KASAN:",
    "UBSAN:",
    "KFENCE:",
    "KMSAN:",
    "panicked at",
    "unreferenced object",
    "list_add corruption",
    "list_del corruption",
    "Unable to handle",
    "page_table_check",
    "RIP: ",
];

/// Whether a kernel log line (timestamp or not) starts a splat.
pub fn is_splat(line: &str) -> bool {
    !line.contains("Kernel command line:") && SPLAT_PATTERNS.iter().any(|p| line.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splats() {
        assert!(is_splat(
            "[    2.000001] WARNING: CPU: 1 PID: 77 at mm/pagewalk.c:123"
        ));
        assert!(is_splat(
            "INFO: task pmscan-fuzz:77 blocked for more than 120 seconds."
        ));
        assert!(is_splat(
            "rust_kernel: panicked at fs/proc/pagemap_scan.rs:10:5"
        ));
        assert!(!is_splat(
            "Kernel command line: console=ttyS0 panic_on_warn=1 oops=panic"
        ));
        assert!(!is_splat("Run /init as init process"));
    }
}
