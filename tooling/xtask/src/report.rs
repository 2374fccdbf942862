// SPDX-License-Identifier: GPL-2.0
//! Turning guest output into per-suite counts and the output contract:
//! `SUITE <name> <impl>: N passed, N failed, N skipped` per suite, then `N passed, N failed`.

use crate::ktap::{count, parse, Counts};
use pmrs_protocol::{COUNTS, SUITE_BEGIN, SUITE_END};

#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    pub imp: String,
    pub counts: Counts,
    /// Why the suite failed beyond its test counts (timeout, crash, exit status).
    pub problems: Vec<String>,
}

impl Suite {
    /// A suite with no results yet.
    pub fn new(name: &str, imp: &str) -> Self {
        Suite {
            name: name.into(),
            imp: imp.into(),
            counts: Counts::default(),
            problems: Vec::new(),
        }
    }

    /// Counts one check: passed when `ok`, else failed with `details` as its problems.
    pub fn add_case(&mut self, name: &str, ok: bool, details: Vec<String>) {
        if ok {
            self.counts.passed += 1;
        } else {
            self.counts.failed += 1;
            if details.is_empty() {
                self.problems.push(name.to_string());
            }
            self.problems
                .extend(details.into_iter().map(|d| format!("{name}: {d}")));
        }
    }

    pub fn line(&self) -> String {
        format!(
            "SUITE {} {}: {} passed, {} failed, {} skipped",
            self.name, self.imp, self.counts.passed, self.counts.failed, self.counts.skipped
        )
    }
}

/// The results channel's lines, without the serial line's carriage returns.
pub fn result_lines(results: &str) -> Vec<&str> {
    results.lines().map(|l| l.trim_end_matches('\r')).collect()
}

/// The lines suite `name` run under `imp` printed between its `@@SUITE-BEGIN` and `@@SUITE-END`
/// lines (to the end of `lines` if it never ended), and the text after `rc=` of its end line;
/// `None` if it never started.
pub fn suite_frame<'a, 'b>(
    lines: &'b [&'a str],
    name: &str,
    imp: &str,
) -> Option<(&'b [&'a str], Option<&'a str>)> {
    let begin = format!("{SUITE_BEGIN} {name} {imp}");
    let end = format!("{SUITE_END} {name} {imp} rc=");
    let b = lines.iter().position(|l| *l == begin)? + 1;
    match lines[b..].iter().position(|l| l.starts_with(&end)) {
        Some(i) => Some((&lines[b..b + i], Some(&lines[b + i][end.len()..]))),
        None => Some((&lines[b..], None)),
    }
}

/// How long each suite ran, in guest seconds, from the `secs=` of its `@@SUITE-END` line:
/// `TIME <name> <impl>: <n> s` lines, in the order the suites ran.
pub fn suite_times(results: &str) -> Vec<String> {
    result_lines(results)
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix(SUITE_END)?.strip_prefix(' ')?;
            let mut w = rest.split_whitespace();
            let (name, imp) = (w.next()?, w.next()?);
            let secs = w.find_map(|t| t.strip_prefix("secs="))?;
            Some(format!("TIME {name} {imp}: {secs} s"))
        })
        .collect()
}

/// Suites framed by `@@SUITE-BEGIN`/`@@SUITE-END` on the results channel. Every `(name, impl)`
/// in `expected` appears in the answer; one that never started or never ended has failed.
pub fn guest_suites(results: &str, expected: &[(String, String)]) -> Vec<Suite> {
    let lines = result_lines(results);
    let mut out = Vec::new();
    for (name, imp) in expected {
        let mut s = Suite {
            name: name.clone(),
            imp: imp.clone(),
            counts: Counts::default(),
            problems: Vec::new(),
        };
        let Some((body, e)) = suite_frame(&lines, name, imp) else {
            s.counts.failed = 1;
            s.problems
                .push("never started (guest died or did not reach it)".into());
            out.push(s);
            continue;
        };
        let body = body.join("\n");
        if let Some(c) = stated_counts(&body) {
            s.counts = c;
        } else {
            let p = parse(&body);
            s.counts = count(&p.roots, p.plan);
            if p.plan.is_none() && p.roots.is_empty() {
                s.problems.push("printed no TAP".into());
            }
        }
        match e {
            None => s
                .problems
                .push("never finished (guest crashed or timed out)".into()),
            Some(rc_text) => {
                let rc: i32 = rc_text
                    .split_whitespace()
                    .next()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(-1);
                let skip_exit = rc == 4 && s.counts.skipped > 0 && s.counts.failed == 0;
                if rc != 0 && !skip_exit {
                    s.problems.push(format!("exited with rc={rc_text}"));
                }
            }
        }
        if !s.problems.is_empty() && s.counts.failed == 0 {
            s.counts.failed = 1;
        }
        out.push(s);
    }
    out
}

/// Counts a guest program states itself with `@@COUNTS passed=<n> failed=<n> skipped=<n>`, for
/// programs whose cases are too many to print one TAP line each (the differential tester).
/// The last such line counts.
fn stated_counts(body: &str) -> Option<Counts> {
    let line = body
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(COUNTS)?.strip_prefix(' '))?;
    let mut c = Counts::default();
    let mut seen = 0;
    for kv in line.split_whitespace() {
        let (k, v) = kv.split_once('=')?;
        let v: usize = v.parse().ok()?;
        match k {
            "passed" => c.passed = v,
            "failed" => c.failed = v,
            "skipped" => c.skipped = v,
            _ => return None,
        }
        seen += 1;
    }
    (seen == 3).then_some(c)
}

/// The KUnit names of the page-table walker's examples among the kernel crate's doctests
/// (`rust_doctest_kernel_<file>_<n>`, the file being `mm/pagewalk/*.rs`).
const WALKER_EXAMPLES: &str = "rust_doctest_kernel_mm_pagewalk_";

/// KUnit suites from the console's KTAP, one per top-level suite, and the walker's examples
/// among the kernel crate's doctests as a suite of their own (`kunit/pagewalk-examples`), so
/// that the log says how many of them ran.
pub fn kunit_suites(console: &str) -> Vec<Suite> {
    let p = parse(console);
    let suite = |name: String, counts| Suite {
        name,
        imp: "builtin".into(),
        counts,
        problems: Vec::new(),
    };
    let mut out: Vec<Suite> = p
        .roots
        .iter()
        .map(|n| {
            suite(
                format!("kunit/{}", n.name),
                count(std::slice::from_ref(n), None),
            )
        })
        .collect();
    if let Some(d) = p.roots.iter().find(|n| n.name == "rust_doctests_kernel") {
        let examples: Vec<_> = d
            .children
            .iter()
            .filter(|c| c.name.starts_with(WALKER_EXAMPLES))
            .cloned()
            .collect();
        out.push(suite(
            "kunit/pagewalk-examples".into(),
            count(&examples, None),
        ));
    }
    out
}

/// Host unit tests from `cargo test` output (`test result: ok. N passed; M failed; K ignored`).
pub fn cargo_test_counts(out: &str) -> Option<Counts> {
    let mut c = Counts::default();
    let mut seen = false;
    for l in out.lines() {
        let Some(rest) = l.trim().strip_prefix("test result: ") else {
            continue;
        };
        seen = true;
        for part in rest.split(';') {
            let mut w = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (w.next(), w.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<usize>() else { continue };
            match what {
                "passed" => c.passed += n,
                "failed" => c.failed += n,
                "ignored" => c.skipped += n,
                _ => {}
            }
        }
    }
    seen.then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn suite_times_come_from_the_end_markers() {
        let r = "@@SUITE-BEGIN a c\r\nok 1 x\r\n@@SUITE-END a c rc=0 secs=12\r\n\
                 @@SUITE-END b rust rc=125 (cannot select implementation)\n";
        assert_eq!(suite_times(r), vec!["TIME a c: 12 s".to_string()]);
    }

    #[test]
    fn stated_counts_replace_tap() {
        let r = "@@SUITE-BEGIN differential c-vs-rust\nDIFF seed 1 call 9: x\n\
                 @@COUNTS passed=99 failed=1 skipped=0\n@@SUITE-END differential c-vs-rust rc=1\n";
        let s = guest_suites(r, &exp(&[("differential", "c-vs-rust")]));
        assert_eq!((s[0].counts.passed, s[0].counts.failed), (99, 1));
        assert_eq!(stated_counts("@@COUNTS passed=1 failed=0"), None);
        assert_eq!(stated_counts("@@COUNTS passed=x failed=0 skipped=0"), None);
    }

    #[test]
    fn suites_from_results_channel() {
        let r = "@@GUEST-READY 7.3.4 cpus=2\r\n@@SUITE-BEGIN pagemap_ioctl c\r\nTAP version 13\r\n1..2\r\nok 1 a\r\nok 2 b\r\n\
                 @@SUITE-END pagemap_ioctl c rc=0\r\n@@SUITE-BEGIN soft-dirty c\r\nTAP version 13\r\n1..3\r\nok 1 a\r\n";
        let s = guest_suites(
            r,
            &exp(&[
                ("pagemap_ioctl", "c"),
                ("soft-dirty", "c"),
                ("pagemap_ioctl", "rust"),
            ]),
        );
        assert_eq!(
            s[0].line(),
            "SUITE pagemap_ioctl c: 2 passed, 0 failed, 0 skipped"
        );
        assert!(s[0].problems.is_empty());
        assert_eq!(
            s[1].counts,
            Counts {
                passed: 1,
                failed: 2,
                skipped: 0
            }
        );
        assert!(s[1].problems[0].contains("never finished"));
        assert_eq!(s[2].counts.failed, 1);
        assert!(s[2].problems[0].contains("never started"));
    }

    #[test]
    fn nonzero_exit_fails_even_when_tap_passed() {
        let r = "@@SUITE-BEGIN x c\n1..1\nok 1 a\n@@SUITE-END x c rc=137\n";
        let s = guest_suites(r, &exp(&[("x", "c")]));
        assert_eq!(
            s[0].counts,
            Counts {
                passed: 1,
                failed: 1,
                skipped: 0
            }
        );
        let r = "@@SUITE-BEGIN x c\n1..1\nok 1 # SKIP no uffd\n@@SUITE-END x c rc=4\n";
        let s = guest_suites(r, &exp(&[("x", "c")]));
        assert_eq!(
            s[0].counts,
            Counts {
                passed: 0,
                failed: 0,
                skipped: 1
            }
        );
        assert!(s[0].problems.is_empty());
        let r = "@@SUITE-BEGIN x c\n@@SUITE-END x c rc=125 (cannot select implementation)\n";
        let s = guest_suites(r, &exp(&[("x", "c")]));
        assert_eq!(s[0].counts.failed, 1);
        assert_eq!(s[0].problems.len(), 2);
    }

    #[test]
    fn kunit_from_console() {
        let c = "[    0.1] KTAP version 1\n[    0.1] 1..1\n[    0.1]     # Subtest: rust_doctests_kernel\n\
                 [    0.1]     1..2\n[    0.2]     ok 1 rust_doctest_kernel_a\n[    0.2]     ok 2 rust_doctest_kernel_b\n\
                 [    0.3] ok 1 rust_doctests_kernel\n";
        let s = kunit_suites(c);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].line(),
            "SUITE kunit/rust_doctests_kernel builtin: 2 passed, 0 failed, 0 skipped"
        );
        assert_eq!(
            s[1].line(),
            "SUITE kunit/pagewalk-examples builtin: 0 passed, 0 failed, 0 skipped"
        );
    }

    #[test]
    fn walker_examples_counted_apart() {
        let c = "KTAP version 1\n1..1\n    # Subtest: rust_doctests_kernel\n    1..3\n\
                 \x20   ok 1 rust_doctest_kernel_alloc_rs_0\n\
                 \x20   ok 2 rust_doctest_kernel_mm_pagewalk_mod_rs_0\n\
                 \x20   not ok 3 rust_doctest_kernel_mm_pagewalk_pte_rs_1\n\
                 not ok 1 rust_doctests_kernel\n";
        let s = kunit_suites(c);
        assert_eq!(
            s[1].line(),
            "SUITE kunit/pagewalk-examples builtin: 1 passed, 1 failed, 0 skipped"
        );
    }

    #[test]
    fn cases() {
        let mut s = Suite::new("lint", "series");
        s.add_case("a", true, Vec::new());
        s.add_case("b", false, Vec::new());
        s.add_case("c", false, vec!["x.rs:1: warning".into()]);
        assert_eq!(
            s.counts,
            Counts {
                passed: 1,
                failed: 2,
                skipped: 0
            }
        );
        assert_eq!(s.problems, ["b", "c: x.rs:1: warning"]);
    }

    #[test]
    fn cargo_output() {
        let o = "running 3 tests\ntest a ... ok\ntest result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
                 test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(
            cargo_test_counts(o),
            Some(Counts {
                passed: 5,
                failed: 1,
                skipped: 1
            })
        );
        assert_eq!(cargo_test_counts("nothing"), None);
    }
}
