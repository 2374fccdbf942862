// SPDX-License-Identifier: GPL-2.0
//! TAP 13 (kselftest) and KTAP (KUnit, nested by four-space indentation) parsing.

/// One test result, with the results nested under it (KTAP subtests).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub ok: bool,
    pub skip: bool,
    pub children: Vec<Node>,
    /// The `1..N` plan of the children, when one was printed.
    pub plan: Option<usize>,
}

/// Leaf-level counts of a suite.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn add(&mut self, o: Counts) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.skipped += o.skipped;
    }
}

/// The parse of a whole TAP/KTAP stream: top-level results and the top-level plan.
#[derive(Debug, Default)]
pub struct Parsed {
    pub roots: Vec<Node>,
    pub plan: Option<usize>,
}

/// Strips a printk timestamp (`[    1.234567] `) from a console line.
pub fn strip_timestamp(line: &str) -> &str {
    let l = line.trim_end_matches('\r');
    if let Some(rest) = l.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let inner = &rest[..end];
            if !inner.is_empty()
                && inner
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == ' ')
            {
                let after = &rest[end + 1..];
                return after.strip_prefix(' ').unwrap_or(after);
            }
        }
    }
    l
}

#[derive(Default)]
struct Frame {
    nodes: Vec<Node>,
    plan: Option<usize>,
}

/// Parses `ok N name`, `not ok N name # SKIP why`; returns (ok, skip, name).
fn parse_result(s: &str) -> Option<(bool, bool, String)> {
    let (ok, rest) = if let Some(r) = s.strip_prefix("not ok ") {
        (false, r)
    } else if let Some(r) = s.strip_prefix("ok ") {
        (true, r)
    } else {
        return None;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let rest = rest[digits..].trim_start();
    let rest = rest.strip_prefix("- ").unwrap_or(rest);
    let (name, directive) = match rest.find('#') {
        Some(i) => (rest[..i].trim(), rest[i + 1..].trim()),
        None => (rest.trim(), ""),
    };
    let skip = directive.len() >= 4 && directive[..4].eq_ignore_ascii_case("skip");
    let name = if name.is_empty() && skip {
        directive[4..].trim()
    } else {
        name
    };
    Some((ok, skip, name.to_string()))
}

fn parse_plan(s: &str) -> Option<usize> {
    let n = s.strip_prefix("1..")?;
    let n = n.split_whitespace().next()?;
    n.parse().ok()
}

/// Parses TAP/KTAP text; lines that are neither results nor plans are ignored, so kernel
/// messages interleaved on a console do no harm. printk timestamps are stripped.
pub fn parse(text: &str) -> Parsed {
    let mut frames: Vec<Frame> = vec![Frame::default()];
    for raw in text.lines() {
        let line = strip_timestamp(raw);
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        let level = indent / 4;
        let body = body.trim_end();
        if let Some(n) = parse_plan(body) {
            while frames.len() <= level {
                frames.push(Frame::default());
            }
            frames[level].plan = Some(n);
            continue;
        }
        let Some((ok, skip, name)) = parse_result(body) else {
            continue;
        };
        while frames.len() <= level + 1 {
            frames.push(Frame::default());
        }
        let child = std::mem::take(&mut frames[level + 1]);
        frames.truncate(level + 1);
        frames[level].nodes.push(Node {
            name,
            ok,
            skip,
            children: child.nodes,
            plan: child.plan,
        });
    }
    // Subtests whose parent result never came (a crash mid-suite): keep them, as failed.
    while frames.len() > 1 {
        let Some(f) = frames.pop() else { break };
        if f.nodes.is_empty() && f.plan.is_none() {
            continue;
        }
        let last = frames.len() - 1;
        frames[last].nodes.push(Node {
            name: "<incomplete>".into(),
            ok: false,
            skip: false,
            children: f.nodes,
            plan: f.plan,
        });
    }
    let top = frames.pop().unwrap_or_default();
    Parsed {
        roots: top.nodes,
        plan: top.plan,
    }
}

/// Leaf counts under `nodes`, with results missing from a `plan` counted as failed, and a
/// parent that failed with no failing child counted as one failure.
pub fn count(nodes: &[Node], plan: Option<usize>) -> Counts {
    let mut c = Counts::default();
    for n in nodes {
        if n.children.is_empty() && n.plan.is_none() {
            if n.skip {
                c.skipped += 1;
            } else if n.ok {
                c.passed += 1;
            } else {
                c.failed += 1;
            }
        } else {
            let sub = count(&n.children, n.plan);
            c.add(sub);
            if !n.ok && sub.failed == 0 {
                c.failed += 1;
            }
        }
    }
    if let Some(p) = plan {
        if nodes.len() < p {
            c.failed += p - nodes.len();
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kselftest_counts() {
        let t = "TAP version 13\n1..5\n# a comment\nok 1 first\nnot ok 2 second\nok 3 # SKIP no hugetlb\n\
                 ok 4 fourth # SKIP thp\nok 5 - fifth\n# Totals: pass:2 fail:1 xfail:0 xpass:0 skip:2 error:0\n";
        let p = parse(t);
        assert_eq!(p.plan, Some(5));
        assert_eq!(p.roots.len(), 5);
        assert_eq!(p.roots[2].name, "no hugetlb");
        assert_eq!(
            count(&p.roots, p.plan),
            Counts {
                passed: 2,
                failed: 1,
                skipped: 2
            }
        );
    }

    #[test]
    fn missing_results_fail() {
        let p = parse("TAP version 13\n1..119\nok 1 a\nok 2 b\n");
        assert_eq!(
            count(&p.roots, p.plan),
            Counts {
                passed: 2,
                failed: 117,
                skipped: 0
            }
        );
    }

    #[test]
    fn kunit_console_nested() {
        let t = "[    0.100000] KTAP version 1\n[    0.100001] 1..2\n\
                 [    0.100002]     KTAP version 1\n[    0.100003]     # Subtest: suite_a\n\
                 [    0.100004]     1..3\n[    0.100005]     ok 1 case_one\n\
                 [    0.100006] random: crng init done\n\
                 [    0.100007]     ok 2 case_two # SKIP not here\n[    0.100008]     not ok 3 case_three\n\
                 [    0.100009] # suite_a: pass:1 fail:1 skip:1 total:3\n[    0.100010] not ok 1 suite_a\n\
                 [    0.100011]     KTAP version 1\n[    0.100012]     # Subtest: suite_b\n\
                 [    0.100013]     1..1\n[    0.100014]     ok 1 only\n[    0.100015] ok 2 suite_b\n";
        let p = parse(t);
        assert_eq!(p.plan, Some(2));
        assert_eq!(p.roots.len(), 2);
        assert_eq!(p.roots[0].name, "suite_a");
        assert_eq!(p.roots[0].children.len(), 3);
        assert_eq!(
            count(&p.roots[..1], None),
            Counts {
                passed: 1,
                failed: 1,
                skipped: 1
            }
        );
        assert_eq!(
            count(&p.roots[1..], None),
            Counts {
                passed: 1,
                failed: 0,
                skipped: 0
            }
        );
    }

    #[test]
    fn crash_mid_suite_counts_as_failure() {
        let t = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..4\n    ok 1 a\n    ok 2 b\n\
                 BUG: kernel NULL pointer dereference\n";
        let p = parse(t);
        assert_eq!(p.roots.len(), 1);
        assert_eq!(p.roots[0].name, "<incomplete>");
        // Two passed, two missing from the plan of four, and the parent never reported.
        assert_eq!(
            count(&p.roots, p.plan),
            Counts {
                passed: 2,
                failed: 2,
                skipped: 0
            }
        );
    }

    #[test]
    fn failed_parent_with_passing_children() {
        let p = parse("1..1\n    1..1\n    ok 1 a\nnot ok 1 s\n");
        assert_eq!(
            count(&p.roots, p.plan),
            Counts {
                passed: 1,
                failed: 1,
                skipped: 0
            }
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(strip_timestamp("[    1.234567] ok 1 x"), "ok 1 x");
        assert_eq!(strip_timestamp("[    1.234567]     ok 1 x"), "    ok 1 x");
        assert_eq!(strip_timestamp("[abc] ok"), "[abc] ok");
        assert_eq!(strip_timestamp("ok 1 y\r"), "ok 1 y");
    }

    #[test]
    fn not_results() {
        assert!(parse_result("okay 1").is_none());
        assert!(parse_result("ok x").is_none());
        assert!(parse_result("# ok 1 x").is_none());
    }
}
