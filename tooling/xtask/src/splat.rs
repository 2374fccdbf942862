// SPDX-License-Identifier: GPL-2.0
//! Finding kernel splats (warnings, BUGs, oopses, lockdep, sanitizer reports) in a console log;
//! what counts as one is `pmrs_protocol::SPLAT_PATTERNS`, shared with the guest programs.

use crate::ktap::strip_timestamp;

/// Console lines that are the start of a splat (timestamps stripped), in order.
pub fn scan(console: &str) -> Vec<String> {
    console
        .lines()
        .map(strip_timestamp)
        .filter(|l| pmrs_protocol::is_splat(l))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_splats() {
        let log = "[    0.000000] Kernel command line: console=ttyS0 panic_on_warn=1 oops=panic\n\
                   [    1.000000] Run /init as init process\n\
                   [    2.000000] ------------[ cut here ]------------\n\
                   [    2.000001] WARNING: CPU: 1 PID: 77 at mm/pagewalk.c:123 walk_pmd_range+0x1/0x2\n\
                   [    2.000002] Call Trace:\n\
                   [    3.000000] BUG: KASAN: slab-out-of-bounds in pagemap_scan\n\
                   [    4.000000] ======================================================\n\
                   [    4.000001] WARNING: possible circular locking dependency detected\n\
                   [    5.000000] BUG: sleeping function called from invalid context\n\
                   [    6.000000] Oops: general protection fault, probably for non-canonical address\n\
                   [    7.000000] rust_kernel: panicked at fs/proc/pagemap_scan.rs:10:5\n";
        let s = scan(log);
        assert_eq!(s.len(), 7, "{s:?}");
        assert!(s[0].starts_with("WARNING: CPU"));
        assert!(s.iter().any(|l| l.contains("circular locking")));
        assert!(s.iter().any(|l| l.contains("panicked at")));
    }

    #[test]
    fn quiet_boot_is_clean() {
        let log = "[    0.000000] Linux version 7.3.4\n[    0.000000] Kernel command line: panic_on_warn=1\n\
                   [    0.500000] KTAP version 1\n[    0.500001]     ok 1 rust_doctest_kernel_bug_rs_0\n\
                   [    1.000000] Freeing unused kernel image memory\n";
        assert!(scan(log).is_empty());
    }

    #[test]
    fn soft_lockup_and_hung_task() {
        let log = "watchdog: BUG: soft lockup - CPU#0 stuck for 22s!\nINFO: task pagemap_ioctl:80 blocked for more than 120 seconds.\n";
        assert_eq!(scan(log).len(), 2);
    }
}
