// SPDX-License-Identifier: GPL-2.0
//! The series manifest: `series/manifest.toml` (base, shared trailers, the series in the order
//! they apply) and one file per series, `series/<name>.toml` (its subject prefix, where it goes,
//! its cover letter and its patches).
//!
//! Each patch carries new files whole (copied from the repository at their kernel path) and
//! unified diffs for files that exist upstream, applied in the order listed. The series stack:
//! the first applies to the pristine base, each later one on top of those before it. All their
//! patches, in that order, are the commits of one branch (`materialize`/`export`).

use crate::util::{Context, Result};
use crate::{bail, err};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

/// `series/manifest.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Top {
    /// Trailers every patch carries (e.g. `Assisted-by:`); never `Signed-off-by:`.
    #[serde(default)]
    trailers: Vec<String>,
    base: Base,
    /// Names of the series, in the order they apply: `series/<name>.toml` each.
    series: Vec<String>,
}

/// `series/<name>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesFile {
    /// The subject prefix of its mails: `PATCH`, `RFC PATCH`.
    prefix: String,
    /// Where it goes, in a line (the tree or list that takes it).
    #[serde(rename = "goes-to")]
    goes_to: String,
    /// Fixes of upstream bugs, to be applied (and backported) on their own: every patch has
    /// `Fixes:` and `Cc: stable@vger.kernel.org`. Only the first series may be one, and no other
    /// series has a `Fixes:` trailer.
    #[serde(default)]
    fixes: bool,
    cover: Cover,
    #[serde(default, rename = "patch")]
    patches: Vec<Patch>,
}

#[derive(Debug)]
pub struct Manifest {
    pub base: Base,
    /// Trailers every patch carries (e.g. `Assisted-by:`); never `Signed-off-by:`.
    pub trailers: Vec<String>,
    /// The series, in the order they apply.
    pub series: Vec<Series>,
    /// The patches of every series, in the order they apply (`Series::range` indexes this).
    pub patches: Vec<Patch>,
}

/// One series: what is mailed as one thread with its own cover letter.
#[derive(Debug)]
pub struct Series {
    pub name: String,
    /// Its file, relative to the repository root.
    pub file: String,
    pub prefix: String,
    pub goes_to: String,
    pub fixes: bool,
    pub cover: Cover,
    /// Its patches in [`Manifest::patches`].
    pub range: Range<usize>,
}

/// The Debian package the pristine base comes from, pinned.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Base {
    pub package: String,
    pub version: String,
    /// The apt suite that carries it.
    pub suite: String,
    /// Kernel version the unpacked Makefile must report.
    pub kernel: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cover {
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    pub subject: String,
    pub body: String,
    /// New files, whole, at their kernel path (relative to the repository root).
    #[serde(default)]
    pub files: Vec<String>,
    /// Unified diffs (paths relative to the repository root) against the tree as left by the
    /// previous patches.
    #[serde(default)]
    pub diffs: Vec<String>,
    /// Trailers of this patch alone (`Fixes:`, `Cc: stable@vger.kernel.org`), before the
    /// series' own.
    #[serde(default)]
    pub trailers: Vec<String>,
    /// Fixes only: the test cases that show the bug, `<suite>:<case>` (a selftest and its TAP
    /// case, as `cargo xtask fixes` runs them on the pristine base and on the fixes), or the
    /// reason none can (`why:<text>`).
    #[serde(default)]
    pub proof: Vec<String>,
}

impl Patch {
    /// Whether the patch fixes an upstream commit (it has a `Fixes:` trailer).
    pub fn is_fix(&self) -> bool {
        self.trailers.iter().any(|t| t.starts_with("Fixes: "))
    }

    /// Whether the patch changes selftests only (and their MAINTAINERS entries).
    pub fn is_selftest(&self) -> bool {
        self.files
            .iter()
            .chain(&self.diffs)
            .all(|f| f.starts_with("tools/testing/selftests/") || f.starts_with("MAINTAINERS."))
    }
}

/// Top-level entries of the repository that mirror the kernel tree.
pub const KERNEL_DIRS: &[&str] = &[
    "Documentation",
    "arch",
    "drivers",
    "fs",
    "include",
    "init",
    "kernel",
    "lib",
    "mm",
    "rust",
    "samples",
    "scripts",
    "tools",
];

/// Root-level kernel files that may be touched through a diff (`MAINTAINERS.<topic>.diff`).
pub const KERNEL_ROOT_FILES: &[&str] = &["MAINTAINERS", "Makefile"];

/// The path of series `name`'s file, relative to the repository root.
pub fn series_file(name: &str) -> String {
    format!("series/{name}.toml")
}

impl Manifest {
    /// The manifest from the text of `series/manifest.toml` and a reader of the series files
    /// (given their repository-relative path).
    pub fn parse_with(top: &str, read: impl Fn(&str) -> Result<String>) -> Result<Self> {
        let t: Top = toml::from_str(top).map_err(|e| err!("series/manifest.toml: {e}"))?;
        let mut series = Vec::new();
        let mut patches = Vec::new();
        for name in &t.series {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                bail!("series/manifest.toml: series name `{name}` is not [a-z0-9-]+");
            }
            let file = series_file(name);
            let text = read(&file)?;
            let s: SeriesFile = toml::from_str(&text).map_err(|e| err!("{file}: {e}"))?;
            let start = patches.len();
            patches.extend(s.patches);
            series.push(Series {
                name: name.clone(),
                file,
                prefix: s.prefix,
                goes_to: s.goes_to,
                fixes: s.fixes,
                cover: s.cover,
                range: start..patches.len(),
            });
        }
        let m = Manifest {
            base: t.base,
            trailers: t.trailers,
            series,
            patches,
        };
        m.check_text()?;
        Ok(m)
    }

    pub fn load(repo: &Path) -> Result<Self> {
        let p = repo.join("series/manifest.toml");
        let text = std::fs::read_to_string(&p).context(|| format!("read {}", p.display()))?;
        Self::parse_with(&text, |f| {
            std::fs::read_to_string(repo.join(f)).context(|| format!("read {f}"))
        })
    }

    /// The series patch `i` (an index into [`Manifest::patches`]) belongs to.
    pub fn series_of(&self, i: usize) -> &Series {
        self.series
            .iter()
            .find(|s| s.range.contains(&i))
            .unwrap_or(&self.series[self.series.len() - 1])
    }

    /// The fixes series, if there is one.
    pub fn fixes(&self) -> Option<&Series> {
        self.series.iter().find(|s| s.fixes)
    }

    /// `<series> k/n` for patch `i`, as its mail numbers it.
    pub fn label(&self, i: usize) -> String {
        let s = self.series_of(i);
        format!("{} {}/{}", s.name, i + 1 - s.range.start, s.range.len())
    }

    /// Checks that need only the manifest's text.
    fn check_text(&self) -> Result<()> {
        if self.series.is_empty() {
            bail!("series/manifest.toml: no series");
        }
        let mut names = BTreeSet::new();
        for (k, s) in self.series.iter().enumerate() {
            if !names.insert(s.name.as_str()) {
                bail!("series/manifest.toml: series `{}` is listed twice", s.name);
            }
            if s.cover.subject.trim().is_empty() || s.cover.body.trim().is_empty() {
                bail!("{}: the cover letter needs a subject and a body", s.file);
            }
            if s.prefix.trim().is_empty() || !s.prefix.ends_with("PATCH") {
                bail!("{}: prefix `{}` must end in PATCH", s.file, s.prefix);
            }
            if s.goes_to.trim().is_empty() {
                bail!("{}: say where the series goes (goes-to)", s.file);
            }
            if s.range.is_empty() {
                bail!("{}: the series has no patch", s.file);
            }
            if s.fixes && k != 0 {
                bail!(
                    "{}: a fixes series goes first, on the pristine base",
                    s.file
                );
            }
            for i in s.range.clone() {
                let p = &self.patches[i];
                let stable = p.trailers.iter().any(|t| t == "Cc: stable@vger.kernel.org");
                if s.fixes && p.is_selftest() && !p.is_fix() {
                    // A test of the fixes that is too big or too slow for a fix of its own.
                    if !p.proof.is_empty() {
                        bail!(
                            "{} patch {}: only fixes have a proof",
                            s.file,
                            self.label(i)
                        );
                    }
                    continue;
                }
                if s.fixes && !(p.is_fix() && stable) {
                    bail!(
                        "{} patch {}: a patch of a fixes series has Fixes: and Cc: \
                         stable@vger.kernel.org, or changes selftests only",
                        s.file,
                        self.label(i)
                    );
                }
                if !s.fixes && p.is_fix() {
                    bail!(
                        "{} patch {}: a patch with a Fixes: trailer goes into the fixes series, \
                         which is sent on its own",
                        s.file,
                        self.label(i)
                    );
                }
                if !s.fixes && !p.proof.is_empty() {
                    bail!(
                        "{} patch {}: only fixes have a proof",
                        s.file,
                        self.label(i)
                    );
                }
                if s.fixes && p.proof.is_empty() {
                    bail!(
                        "{} patch {}: a fix names the test cases that show its bug (proof = \
                         [\"<suite>:<case>\"]), or why none can (\"why:<text>\")",
                        s.file,
                        self.label(i)
                    );
                }
                for pr in &p.proof {
                    let ok = match pr.split_once(':') {
                        Some(("why", t)) => !t.trim().is_empty(),
                        Some((suite, case)) => !suite.is_empty() && !case.is_empty(),
                        None => false,
                    };
                    if !ok {
                        bail!(
                            "{} patch {}: proof `{pr}` is not `<suite>:<case>` or `why:<text>`",
                            s.file,
                            self.label(i)
                        );
                    }
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (i, p) in self.patches.iter().enumerate() {
            let n = self.label(i);
            let s = p.subject.trim();
            if s.is_empty() || s != p.subject || s.contains('\n') {
                bail!("patch {n}: subject must be one trimmed line");
            }
            if !s.contains(": ") {
                bail!("patch {n}: subject `{s}` lacks a subsystem prefix (`rust: mm: ...`)");
            }
            if s.len() > 75 {
                bail!("patch {n}: subject is {} characters (at most 75)", s.len());
            }
            if p.body.trim().is_empty() {
                bail!("patch {n} ({s}): the changelog is empty; say why");
            }
            if p.files.is_empty() && p.diffs.is_empty() {
                bail!("patch {n} ({s}): carries no file and no diff");
            }
            for f in p.files.iter().chain(&p.diffs) {
                if f.starts_with('/') || f.split('/').any(|c| c == ".." || c.is_empty()) {
                    bail!("patch {n}: bad path `{f}`");
                }
                if !seen.insert(f.clone()) {
                    bail!("patch {n}: `{f}` is listed twice in the series");
                }
            }
            for d in &p.diffs {
                if !d.ends_with(".diff") {
                    bail!("patch {n}: diff `{d}` must end in .diff");
                }
            }
        }
        let all_trailers = self
            .trailers
            .iter()
            .chain(self.patches.iter().flat_map(|p| &p.trailers));
        for tr in all_trailers {
            if !tr.contains(": ") || tr.contains('\n') {
                bail!("series manifest: trailer `{tr}` is not one `Key: value` line");
            }
        }
        // `Fixes: <12 or more hex digits> ("<subject>")`, as submitting-patches.rst asks.
        for tr in self.patches.iter().flat_map(|p| &p.trailers) {
            if let Some(rest) = tr.strip_prefix("Fixes: ") {
                let (id, subject) = rest.split_once(' ').unwrap_or((rest, ""));
                let hex = id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit());
                if !hex || !subject.starts_with("(\"") || !subject.ends_with("\")") {
                    bail!(
                        "series manifest: `{tr}` is not `Fixes: <12+ hex digits> (\"<subject>\")`"
                    );
                }
            }
        }
        let trailers = self
            .trailers
            .iter()
            .chain(self.patches.iter().flat_map(|p| &p.trailers))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        for body in self
            .series
            .iter()
            .map(|s| &s.cover.body)
            .chain(self.patches.iter().map(|p| &p.body))
            .chain(std::iter::once(&trailers))
        {
            for line in body.lines() {
                let l = line.trim_start().to_ascii_lowercase();
                if l.starts_with("signed-off-by:") || l.starts_with("from:") {
                    bail!(
                        "series manifest names a person (`{}`): identities come from git at emit time",
                        line.trim()
                    );
                }
            }
        }
        Ok(())
    }

    /// Checks against the repository: every listed file exists, and every file at a kernel path
    /// belongs to a patch (nothing is carried that the series does not send).
    pub fn check_repo(&self, repo: &Path, tracked: &[String]) -> Result<()> {
        let listed: BTreeSet<&str> = self
            .patches
            .iter()
            .flat_map(|p| p.files.iter().chain(&p.diffs))
            .map(String::as_str)
            .collect();
        for f in &listed {
            if !repo.join(f).is_file() {
                bail!("series manifest lists `{f}`, which is not in the repository");
            }
        }
        for f in tracked {
            if is_kernel_path(f) && !listed.contains(f.as_str()) {
                bail!("`{f}` is at a kernel path but no patch in series/*.toml carries it");
            }
        }
        Ok(())
    }
}

/// Whether a repository path is part of what the series sends (as opposed to tooling).
pub fn is_kernel_path(p: &str) -> bool {
    let first = p.split('/').next().unwrap_or("");
    (p.contains('/') && KERNEL_DIRS.contains(&first))
        || (!p.contains('/')
            && p.ends_with(".diff")
            && KERNEL_ROOT_FILES
                .iter()
                .any(|f| p.starts_with(&format!("{f}."))))
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub const TOP: &str = r#"
[base]
package = "linux-source-7.3"
version = "7.3.4-1~bpo13+1"
suite = "trixie-backports"
kernel = "7.3.4"
"#;

    const FIX: &str = "trailers = [\"Fixes: 52526ca7fdb9 (\\\"x\\\")\", \"Cc: stable@vger.kernel.org\"]\nproof = [\"pagemap_ioctl:walk_end\"]\n";

    /// A series file: `fixes` or not, with the given `[[patch]]` tables.
    pub fn series(fixes: bool, patches: &str) -> String {
        format!(
            "prefix = \"{}\"\ngoes-to = \"linux-mm\"\nfixes = {fixes}\n\
             [cover]\nsubject = \"c\"\nbody = \"Why.\"\n{patches}",
            if fixes { "PATCH" } else { "RFC PATCH" }
        )
    }

    /// A manifest of the named series files (`(name, text)`), in that order.
    pub fn parse(top: &str, files: &[(&str, String)]) -> Result<Manifest> {
        let names: Vec<String> = files.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        let top = format!("series = [{}]\n{top}", names.join(", "));
        Manifest::parse_with(&top, |f| {
            files
                .iter()
                .find(|(n, _)| series_file(n) == f)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| err!("no {f}"))
        })
    }

    fn patch(subject: &str, file: &str, extra: &str) -> String {
        format!("[[patch]]\nsubject = \"{subject}\"\nbody = \"b\"\nfiles = [\"{file}\"]\n{extra}")
    }

    #[test]
    fn parses_series_in_order() {
        let m = parse(
            TOP,
            &[
                ("fixes", series(true, &patch("fs/proc: fix", "fs/a.c", FIX))),
                (
                    "rust",
                    series(
                        false,
                        &(patch("rust: mm: add walker", "rust/kernel/mm/pagewalk.rs", "")
                            + "[[patch]]\nsubject = \"fs/proc/task_mmu: x\"\nbody = \"c\"\ndiffs = [\"fs/proc/task_mmu.c.diff\"]\n"),
                    ),
                ),
            ],
        )
        .unwrap();
        assert_eq!(m.base.kernel, "7.3.4");
        assert_eq!(m.patches.len(), 3);
        assert_eq!(m.series[0].range, 0..1);
        assert_eq!(m.series[1].range, 1..3);
        assert_eq!(m.series[1].file, "series/rust.toml");
        assert_eq!(m.series_of(2).name, "rust");
        assert_eq!(m.label(2), "rust 2/2");
        assert_eq!(m.fixes().map(|s| s.name.as_str()), Some("fixes"));
        assert_eq!(m.patches[1].files, ["rust/kernel/mm/pagewalk.rs"]);
        assert_eq!(m.patches[2].diffs, ["fs/proc/task_mmu.c.diff"]);
        assert_eq!(m.patches[0].proof, ["pagemap_ioctl:walk_end"]);
    }

    fn bad(patches: &str) -> String {
        parse(TOP, &[("rust", series(false, patches))])
            .unwrap_err()
            .0
    }

    #[test]
    fn rejects_bad_patches() {
        assert!(bad(&patch("no prefix", "fs/a.c", "")).contains("prefix"));
        assert!(
            bad("[[patch]]\nsubject = \"a: b\"\nbody = \" \"\nfiles = [\"fs/a.c\"]")
                .contains("changelog")
        );
        assert!(bad("[[patch]]\nsubject = \"a: b\"\nbody = \"x\"").contains("no file"));
        assert!(bad(&patch("a: b", "../etc/passwd", "")).contains("bad path"));
        assert!(
            bad("[[patch]]\nsubject = \"a: b\"\nbody = \"x\"\ndiffs = [\"fs/a.c.patch\"]")
                .contains(".diff")
        );
        assert!(bad(
            "[[patch]]\nsubject = \"a: b\"\nbody = \"x\"\nfiles = [\"fs/a.c\", \"fs/a.c\"]"
        )
        .contains("twice"));
        let long = "a: ".to_string() + &"x".repeat(80);
        assert!(bad(&patch(&long, "fs/a.c", "")).contains("75"));
        assert!(bad(
            "[[patch]]\nsubject = \"a: b\"\nbody = \"x\\nSigned-off-by: A <a@b>\"\nfiles = [\"fs/a.c\"]"
        )
        .contains("names a person"));
        assert!(bad(&patch("a: b", "fs/a.c", "bogus = 1\n")).contains("unknown field"));
        assert!(bad("").contains("no patch"));
    }

    #[test]
    fn trailers() {
        let with = |tr: &str| {
            parse(
                &format!("trailers = [\"{tr}\"]\n{TOP}"),
                &[("rust", series(false, &patch("a: b", "fs/a.c", "")))],
            )
        };
        let e = with("Signed-off-by: A <a@b>").unwrap_err();
        assert!(e.0.contains("names a person"), "{e}");
        let e = with("Assisted-by LLM").unwrap_err();
        assert!(e.0.contains("Key: value"), "{e}");
        let m = with("Assisted-by: LLM").unwrap();
        assert_eq!(m.trailers, ["Assisted-by: LLM"]);
    }

    #[test]
    fn fixes_series_rules() {
        let fix = patch("a: fix", "fs/a.c", FIX);
        let feature = patch("b: feature", "fs/b.c", "");
        // A fix outside the fixes series, a non-fix inside it, a fixes series not first.
        let e = parse(TOP, &[("rust", series(false, &fix))]).unwrap_err();
        assert!(e.0.contains("goes into the fixes series"), "{e}");
        let e = parse(TOP, &[("fixes", series(true, &feature))]).unwrap_err();
        assert!(e.0.contains("Fixes: and Cc: stable"), "{e}");
        // A selftest of the fixes may come without Fixes:, and without a proof.
        let test = patch(
            "selftests/mm: add a test",
            "tools/testing/selftests/mm/t.c",
            "",
        );
        assert!(parse(TOP, &[("fixes", series(true, &(fix.clone() + &test)))]).is_ok());
        let e = parse(
            TOP,
            &[(
                "fixes",
                series(
                    true,
                    &test.replace("t.c\"]\n", "t.c\"]\nproof = [\"a:b\"]\n"),
                ),
            )],
        )
        .unwrap_err();
        assert!(e.0.contains("only fixes have a proof"), "{e}");
        let e = parse(
            TOP,
            &[
                ("rust", series(false, &feature)),
                ("fixes", series(true, &fix)),
            ],
        )
        .unwrap_err();
        assert!(e.0.contains("goes first"), "{e}");
        // A fix without its proof, or with a malformed one.
        let noproof = fix.replace("proof = [\"pagemap_ioctl:walk_end\"]\n", "");
        let e = parse(TOP, &[("fixes", series(true, &noproof))]).unwrap_err();
        assert!(e.0.contains("names the test cases"), "{e}");
        let e = parse(
            TOP,
            &[(
                "fixes",
                series(true, &fix.replace("pagemap_ioctl:walk_end", "nocolon")),
            )],
        )
        .unwrap_err();
        assert!(e.0.contains("is not `<suite>:<case>`"), "{e}");
        let why = fix.replace("pagemap_ioctl:walk_end", "why:needs a race");
        assert!(parse(TOP, &[("fixes", series(true, &why))]).is_ok());
        let short = fix.replace("52526ca7fdb9", "52526ca7");
        let e = parse(TOP, &[("fixes", series(true, &short))]).unwrap_err();
        assert!(e.0.contains("12+ hex digits"), "{e}");
    }

    /// The repository's own manifest passes the text checks (before any stage needs the tree):
    /// the fixes first, as a series of their own.
    #[test]
    fn repository_manifest_parses() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let m = Manifest::load(&repo).unwrap();
        assert!(m.series[0].fixes);
        assert!(m.series[1..].iter().all(|s| !s.fixes));
    }

    #[test]
    fn kernel_paths() {
        assert!(is_kernel_path("rust/kernel/mm/pagewalk.rs"));
        assert!(is_kernel_path("fs/proc/task_mmu.c.diff"));
        assert!(is_kernel_path("MAINTAINERS.diff"));
        assert!(is_kernel_path("MAINTAINERS.pagewalk.diff"));
        assert!(!is_kernel_path("MAINTAINERS"));
        assert!(!is_kernel_path("Cargo.toml"));
        assert!(!is_kernel_path("tooling/xtask/src/main.rs"));
        assert!(!is_kernel_path("README.md"));
        assert!(!is_kernel_path("series/manifest.toml"));
        assert!(!is_kernel_path("series/fixes.toml"));
    }
}
