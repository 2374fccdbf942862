// SPDX-License-Identifier: GPL-2.0
//! The benchmark's results (tooling/guest/src/bin/pmscan-bench.rs prints them in the guest):
//! parsed from the results channel, written as docs/benchmarks.md and a plot of the
//! dirty-tracking comparison, docs/benchmarks-dirty-tracking.svg.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One scenario timed for both implementations (`@@ROW`).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub scenario: String,
    pub pages: f64,
    pub regions: f64,
    pub c: (f64, f64, f64),
    pub rust: (f64, f64, f64),
    pub reps: f64,
}

/// One dirty-tracking method at one written fraction (`@@DT`).
#[derive(Debug, Clone, PartialEq)]
pub struct Dt {
    pub method: String,
    pub pct: f64,
    pub collect: f64,
    pub write: f64,
    pub found: f64,
}

/// One point of a scaling curve (`@@SCALE`).
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    pub kind: String,
    pub x: f64,
    pub c: f64,
    pub rust: f64,
}

#[derive(Debug, Default)]
pub struct Results {
    pub rows: Vec<Row>,
    pub dt: Vec<Dt>,
    pub scale: Vec<Scale>,
    /// The `BENCH ...` lines, as printed.
    pub bench_lines: Vec<String>,
}

fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect()
}

fn num(f: &BTreeMap<&str, &str>, k: &str) -> f64 {
    f.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

pub fn parse(results: &str) -> Results {
    let mut r = Results::default();
    for l in results.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(rest) = l.strip_prefix("@@ROW ") {
            let f = fields(rest);
            r.rows.push(Row {
                scenario: f.get("scenario").unwrap_or(&"?").to_string(),
                pages: num(&f, "pages"),
                regions: num(&f, "regions"),
                c: (num(&f, "c_med"), num(&f, "c_p25"), num(&f, "c_p75")),
                rust: (
                    num(&f, "rust_med"),
                    num(&f, "rust_p25"),
                    num(&f, "rust_p75"),
                ),
                reps: num(&f, "reps"),
            });
        } else if let Some(rest) = l.strip_prefix("@@DT ") {
            let f = fields(rest);
            r.dt.push(Dt {
                method: f.get("method").unwrap_or(&"?").to_string(),
                pct: num(&f, "pct"),
                collect: num(&f, "collect_med"),
                write: num(&f, "write_med"),
                found: num(&f, "found"),
            });
        } else if let Some(rest) = l.strip_prefix("@@SCALE ") {
            let f = fields(rest);
            r.scale.push(Scale {
                kind: f.get("kind").unwrap_or(&"?").to_string(),
                x: num(&f, "x"),
                c: num(&f, "c"),
                rust: num(&f, "rust"),
            });
        } else if l.starts_with("BENCH ") || l.starts_with("BENCH-ICOUNT ") {
            r.bench_lines.push(l.to_string());
        }
    }
    r
}

/// The unit of a run's times: the guest clock counts instructions (icount) or wall time.
#[derive(Clone, Copy)]
enum Unit {
    Insns,
    Ms,
}

impl Unit {
    fn head(self) -> &'static str {
        match self {
            Unit::Insns => "M insns",
            Unit::Ms => "ms",
        }
    }
}

fn rows_table(s: &mut String, r: &Results, u: Unit) {
    let h = u.head();
    match u {
        Unit::Insns => {
            let _ = writeln!(
                s,
                "Median per call (a call resumed at `walk_end` until the range is done), in millions\n\
                 of guest instructions, quartiles in brackets, and instructions per page of the range.\n\n\
                 | scenario | pages | regions | C {h} | Rust {h} | Rust/C | C insns/page | Rust insns/page |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|"
            );
        }
        Unit::Ms => {
            let _ = writeln!(
                s,
                "Median time per call, quartiles in brackets, and pages of the range per second.\n\n\
                 | scenario | pages | regions | C {h} | Rust {h} | Rust/C | C pages/s | Rust pages/s |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|"
            );
        }
    }
    for row in &r.rows {
        let per = |m: f64| match u {
            Unit::Insns => format!("{:.1}", m * 1e6 / row.pages),
            Unit::Ms => format!("{:.3e}", row.pages / (m / 1e3)),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.3} [{:.3}, {:.3}] | {:.3} [{:.3}, {:.3}] | **{:.2}** | {} | {} |",
            row.scenario,
            row.pages,
            row.regions,
            row.c.0,
            row.c.1,
            row.c.2,
            row.rust.0,
            row.rust.1,
            row.rust.2,
            row.rust.0 / row.c.0,
            per(row.c.0),
            per(row.rust.0),
        );
    }
}

fn dt_table(s: &mut String, r: &Results, u: Unit) {
    let mut pcts: Vec<f64> = r.dt.iter().map(|d| d.pct).collect();
    pcts.sort_by(|a, b| a.total_cmp(b));
    pcts.dedup();
    let mut methods: Vec<&str> = Vec::new();
    for d in &r.dt {
        if !methods.contains(&d.method.as_str()) {
            methods.push(&d.method);
        }
    }
    let _ = writeln!(
        s,
        "A region fully populated, a fraction of its pages written between rounds. `collect` is\n\
         the tracker's cost per round (find what was written and re-arm), `write` the cost of the\n\
         writes themselves (the faults that record them). Median of the rounds, {}.\n",
        u.head()
    );
    let _ = write!(s, "| method |");
    for p in &pcts {
        let _ = write!(s, " collect @{p}% | write @{p}% |");
    }
    let _ = write!(s, "\n|---|");
    for _ in &pcts {
        let _ = write!(s, "---:|---:|");
    }
    s.push('\n');
    let get = |m: &str, p: f64| r.dt.iter().find(|d| d.method == m && d.pct == p);
    for m in &methods {
        let _ = write!(s, "| {m} |");
        for p in &pcts {
            match get(m, *p) {
                Some(d) => {
                    let _ = write!(s, " {:.3} | {:.3} |", d.collect, d.write);
                }
                None => s.push_str(" - | - |"),
            }
        }
        s.push('\n');
    }
    // The soft-dirty get-and-clear (C) against the two references the issue names, and the
    // Rust one against it.
    for (sd, other, label) in [
        (
            "sd-get-and-clear-c",
            "uffd-wp-c",
            "soft-dirty get-and-clear (C) / uffd-wp get+WP (C)",
        ),
        (
            "sd-get-and-clear-c",
            "pagemap+clear_refs",
            "soft-dirty get-and-clear (C) / pagemap read + clear_refs",
        ),
        (
            "sd-get-and-clear-rust",
            "sd-get-and-clear-c",
            "soft-dirty get-and-clear: Rust / C",
        ),
    ] {
        let _ = write!(s, "| *{label}* |");
        for p in &pcts {
            match (get(sd, *p), get(other, *p)) {
                (Some(a), Some(b)) => {
                    let _ = write!(s, " **{:.2}** | |", a.collect / b.collect);
                }
                _ => s.push_str(" - | |"),
            }
        }
        s.push('\n');
    }
}

fn scale_table(s: &mut String, r: &Results, u: Unit) {
    let h = u.head();
    let _ = writeln!(
        s,
        "Report-only scan with CRIU's masks. Against the virtual size of the range (1% of pages\n\
         populated), and against the populated fraction of the big range; median {h}.\n\n\
         | curve | x | C {h} | Rust {h} | Rust/C |\n|---|---:|---:|---:|---:|"
    );
    for p in &r.scale {
        let x = if p.kind == "size" {
            format!("{} MiB", p.x)
        } else {
            format!("{}% populated", p.x)
        };
        let _ = writeln!(
            s,
            "| {} | {x} | {:.3} | {:.3} | {:.2} |",
            p.kind,
            p.c,
            p.rust,
            p.rust / p.c
        );
    }
}

/// The Markdown report: the machine; the instruction counts (`icount`), then the same tables in
/// wall time under plain TCG (`wall`, when there is such a run).
pub fn markdown(
    icount: &Results,
    wall: Option<&Results>,
    commit: &str,
    machine: &str,
    config: &str,
    plot: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# PAGEMAP_SCAN benchmarks\n");
    let _ = writeln!(
        s,
        "Measured on commit `{commit}` by `cargo xtask bench` (tooling/guest/src/bin/pmscan-bench.rs).\n\n\
         Machine: {machine}. Kernel: {config}. Only ratios taken in one boot, with the two\n\
         implementations called alternately on the same memory (the order swapped every\n\
         repetition), are meant to be compared.\n\n\
         Two views. **Instructions** (first): QEMU TCG with `-icount shift=0` on one vCPU, so the\n\
         guest clock advances 1 ns per guest instruction and every figure is in millions of\n\
         instructions; the same on any host and from run to run (quartiles equal). It does not\n\
         see memory, cache or TLB costs: a TLB flush counts as a few instructions. **Wall time**\n\
         (second): plain TCG with 2 vCPUs, the emulator's time on this host, noisy, and with\n\
         costs a real CPU does not have (a TLB flush or a page-table walk is dear under TCG).\n"
    );
    if !config.contains("CONFIG_RUST_INLINE_HELPERS not set") {
        let _ = writeln!(
            s,
            "Without CONFIG_RUST_INLINE_HELPERS (every C helper a call from Rust), the same\n\
             benchmark (`cargo xtask bench --variant vm-noinline`):\n\
             [benchmarks-vm-noinline.md](benchmarks-vm-noinline.md); the commit it was measured\n\
             on is at its top.\n"
        );
    }
    let _ = writeln!(s, "## Rust vs C, same boot, in instructions\n");
    rows_table(&mut s, icount, Unit::Insns);
    let _ = writeln!(s, "\n## Dirty tracking per round, in instructions\n");
    let _ = writeln!(s, "Plot: [{plot}]({plot}).\n");
    dt_table(&mut s, icount, Unit::Insns);
    let _ = writeln!(s, "\n## Scaling, in instructions\n");
    scale_table(&mut s, icount, Unit::Insns);
    let _ = writeln!(s, "\n## Summary lines\n\n```");
    for l in icount
        .bench_lines
        .iter()
        .chain(wall.iter().flat_map(|w| &w.bench_lines))
    {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(s, "```");
    if let Some(w) = wall {
        let _ = writeln!(s, "\n## Wall time under plain TCG (second view)\n");
        let _ = writeln!(
            s,
            "The same runs timed by the emulator (2 vCPUs, no icount). Where the two views\n\
             differ, the difference is what instructions do not count: TLB flushes (one per PTE\n\
             table in the soft-dirty clear, one per mm in clear_refs) and page-table memory\n\
             traffic cost far more under TCG than their instruction count says, and the noise\n\
             of a shared host moves ratios by about 0.2 between runs.\n"
        );
        rows_table(&mut s, w, Unit::Ms);
        let _ = writeln!(s);
        dt_table(&mut s, w, Unit::Ms);
        let _ = writeln!(s);
        scale_table(&mut s, w, Unit::Ms);
    }
    s
}

const COLORS: [&str; 8] = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// A log-log plot of the collect time per round against the written fraction, one line per
/// method.
pub fn svg(r: &Results) -> String {
    let (w, h, ml, mr, mt, mb) = (760.0, 440.0, 70.0, 210.0, 40.0, 50.0);
    let pts: Vec<&Dt> =
        r.dt.iter()
            .filter(|d| d.collect > 0.0 && d.pct > 0.0)
            .collect();
    let lo = |f: fn(&Dt) -> f64| pts.iter().map(|d| f(d)).fold(f64::INFINITY, f64::min);
    let hi = |f: fn(&Dt) -> f64| pts.iter().map(|d| f(d)).fold(f64::NEG_INFINITY, f64::max);
    let (x0, x1) = (lo(|d| d.pct).log10().floor(), hi(|d| d.pct).log10().ceil());
    let (y0, y1) = (
        lo(|d| d.collect).log10().floor(),
        hi(|d| d.collect).log10().ceil(),
    );
    let (x1, y1) = (x1.max(x0 + 1.0), y1.max(y0 + 1.0));
    let px = |x: f64| ml + (x.log10() - x0) / (x1 - x0) * (w - ml - mr);
    let py = |y: f64| h - mb - (y.log10() - y0) / (y1 - y0) * (h - mt - mb);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="14">Dirty tracking: cost per round to collect and re-arm (TCG guest)</text>"#,
        ml
    );
    let mut e = x0;
    while e <= x1 {
        let x = px(10f64.powf(e));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{mt}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}%</text>"##,
            h - mb,
            h - mb + 16.0,
            10f64.powf(e)
        );
        e += 1.0;
    }
    let mut e = y0;
    while e <= y1 {
        let y = py(10f64.powf(e));
        let _ = writeln!(
            s,
            r##"<line x1="{ml}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} ms</text>"##,
            w - mr,
            ml - 6.0,
            y + 4.0,
            10f64.powf(e)
        );
        e += 1.0;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">pages written between rounds (% of the region)</text>"#,
        ml + (w - ml - mr) / 2.0,
        h - 10.0
    );
    let mut methods: Vec<&str> = Vec::new();
    for d in &pts {
        if !methods.contains(&d.method.as_str()) {
            methods.push(&d.method);
        }
    }
    for (i, m) in methods.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let mut line: Vec<&&Dt> = pts.iter().filter(|d| d.method == *m).collect();
        line.sort_by(|a, b| a.pct.total_cmp(&b.pct));
        let path: Vec<String> = line
            .iter()
            .map(|d| format!("{:.1},{:.1}", px(d.pct), py(d.collect)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for p in &path {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(s, r#"<circle cx="{x}" cy="{y}" r="3" fill="{c}"/>"#);
        }
        let ly = mt + 10.0 + i as f64 * 20.0;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{c}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{m}</text>"#,
            w - mr + 12.0,
            w - mr + 36.0,
            w - mr + 42.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "TAP version 13\n\
        @@ROW scenario=sparse pages=16384 regions=164 c_med=0.2 c_p25=0.1 c_p75=0.3 rust_med=0.1 rust_p25=0.1 rust_p75=0.2 reps=5\r\n\
        BENCH sparse: rust/c 0.500\n\
        @@SCALE kind=size x=16 c=0.08 rust=0.05\n\
        @@DT method=sd-get-and-clear-c pct=1 collect_med=0.5 write_med=2 found=164\n\
        @@DT method=pagemap+clear_refs pct=1 collect_med=12 write_med=2 found=164\n\
        @@DT method=sd-get-and-clear-c pct=10 collect_med=1.5 write_med=20 found=1640\n\
        BENCH sd-vs-pagemap-clear_refs@1%: 24.0x\n\
        BENCH-ICOUNT dense: rust/c 1.100\n";

    #[test]
    fn parses_every_kind_of_line() {
        let r = parse(OUT);
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0].scenario, "sparse");
        assert_eq!(r.rows[0].rust, (0.1, 0.1, 0.2));
        assert_eq!(r.dt.len(), 3);
        assert_eq!(r.dt[1].method, "pagemap+clear_refs");
        assert_eq!(r.scale[0].x, 16.0);
        assert_eq!(r.bench_lines.len(), 3);
    }

    #[test]
    fn report_and_plot_name_every_method() {
        let r = parse(OUT);
        let md = markdown(&r, None, "abc", "test", "cfg", "p.svg");
        assert!(md.contains("| sparse | 16384 | 164 |"));
        assert!(md.contains("**0.50**"));
        assert!(md.contains("| pagemap+clear_refs |"));
        // Instructions per page: 0.1 M instructions over 16384 pages.
        assert!(md.contains("| 6.1 |"), "{md}");
        // The get-and-clear against pagemap + clear_refs at 1%: 0.5 / 12.
        assert!(md.contains("**0.04**"), "{md}");
        assert!(!md.contains("Wall time under plain TCG"));
        let both = markdown(&r, Some(&parse(OUT)), "abc", "test", "cfg", "p.svg");
        assert!(both.contains("Wall time under plain TCG"));
        assert!(both.find("## Rust vs C, same boot, in instructions") < both.find("## Wall time"));
        let svg = svg(&r);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains(">sd-get-and-clear-c</text>"));
        assert!(svg.contains(">pagemap+clear_refs</text>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
    }
}
