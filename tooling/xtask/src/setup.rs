// SPDX-License-Identifier: GPL-2.0
//! Idempotent setup from a bare Debian bookworm machine: apt sources, packages, bindgen, and the
//! pristine base tree as a git repository in the cache.

use crate::ctx::Ctx;
use crate::manifest::Manifest;
use crate::util::{have, output, run, run_logged, Context, Result};
use crate::{bail, err};
use std::path::Path;
use std::process::Command;

/// Packages from the default bookworm (and bookworm-security) sources.
const PACKAGES: &[&str] = &[
    "rustc-web",
    "rust-web-src",
    "rust-web-clippy",
    "rustfmt-web",
    "clang-22",
    "lld-22",
    "llvm-22",
    "libclang-22-dev",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "cpio",
    "gzip",
    "xz-utils",
    "busybox-static",
    "git",
    "git-email",
    // checkpatch.pl's SPDX check (scripts/spdxcheck.py) imports ply and git.
    "python3-ply",
    "python3-git",
    "gcc",
    "libc6-dev",
    "make",
    "perl",
    // headers_install copies with rsync.
    "rsync",
    // tools/testing/vma links against userspace RCU.
    "liburcu-dev",
    // Kernel objects cached by their preprocessed input (`ctx::make_vars`): the per-patch
    // builds go back and forth over the same sources.
    "ccache",
    // CRIU and its test suite (`criu.rs`), built from source; zdtm.py runs on the host's
    // python3 (the guest's root is the host's, over 9p).
    "curl",
    "pkg-config",
    "protobuf-c-compiler",
    "libprotobuf-c-dev",
    "protobuf-compiler",
    "libprotobuf-dev",
    "python3-protobuf",
    "python3-yaml",
    "libnl-3-dev",
    "libnl-route-3-dev",
    "libnet1-dev",
    "libcap-dev",
    "uuid-dev",
    "libbsd-dev",
    "libaio-dev",
];

/// Packages that come from a backports suite (package, suite).
const BACKPORTS: &[(&str, &str)] = &[("qemu-system-x86", "bookworm-backports")];

pub const BINDGEN_VERSION: &str = "0.73.2";

const SOURCES_FILE: &str = "/etc/apt/sources.list.d/pmrs-backports.sources";

/// The tag of the pristine base commit in the cache tree.
pub const BASE_TAG: &str = "pmrs-base";

pub fn setup(ctx: &Ctx, m: &Manifest) -> Result<()> {
    std::fs::create_dir_all(&ctx.cache).context(|| format!("create {}", ctx.cache.display()))?;
    std::fs::create_dir_all(ctx.logs())?;
    packages(ctx, m)?;
    bindgen(ctx)?;
    base(ctx, m)?;
    Ok(())
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u"))
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

/// apt-get, through sudo when not root.
fn apt(args: &[&str]) -> Command {
    let mut c = if is_root() {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.arg("apt-get");
        c
    };
    c.env("DEBIAN_FRONTEND", "noninteractive").args(args);
    c
}

/// The mirror and keyring of the machine's default Debian sources (deb822 or one-line form).
/// The Debian mirror setup uses (that of the machine's bookworm sources).
pub fn mirror() -> String {
    default_mirror().0
}

fn default_mirror() -> (String, String) {
    let mut uri = "http://deb.debian.org/debian".to_string();
    let mut key = "/usr/share/keyrings/debian-archive-keyring.gpg".to_string();
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources") {
        for stanza in t.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            };
            let suites = field("Suites:").unwrap_or_default();
            if suites.split_whitespace().any(|s| s == "bookworm") {
                if let Some(u) = field("URIs:") {
                    uri = u.split_whitespace().next().unwrap_or(&uri).to_string();
                }
                if let Some(k) = field("Signed-By:") {
                    key = k;
                }
            }
        }
    }
    (uri, key)
}

/// What `cargo xtask matrix` needs besides the rest: cross compilers and C libraries for the
/// arm64 and riscv64 guests' static programs, and their emulators.
const MATRIX_PACKAGES: &[&str] = &[
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "gcc-riscv64-linux-gnu",
    "libc6-dev-riscv64-cross",
];
const MATRIX_BACKPORTS: &[(&str, &str)] = &[
    ("qemu-system-arm", "bookworm-backports"),
    ("qemu-system-misc", "bookworm-backports"),
];

/// Rust targets of the matrix guests' programs (tooling/guest), for rustup's toolchain, which
/// builds them (the kernel uses Debian's rustc, which has no standard library for them).
const MATRIX_RUST_TARGETS: &[&str] = &["aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu"];

/// Installs what the build matrix needs (after `setup`).
pub fn matrix_packages(ctx: &Ctx, m: &Manifest) -> Result<()> {
    install(ctx, m, MATRIX_PACKAGES, MATRIX_BACKPORTS)?;
    let have_targets = output(Command::new("rustup").args(["target", "list", "--installed"]))
        .context(|| "rustup (the toolchain that builds tooling/guest) is missing")?;
    let missing: Vec<&str> = MATRIX_RUST_TARGETS
        .iter()
        .copied()
        .filter(|t| !have_targets.lines().any(|l| l.trim() == *t))
        .collect();
    if !missing.is_empty() {
        println!("rustup: adding targets {}", missing.join(" "));
        run_logged(
            Command::new("rustup")
                .args(["target", "add"])
                .args(&missing),
            &ctx.logs().join("rustup-targets.log"),
        )?;
    }
    Ok(())
}

fn packages(ctx: &Ctx, m: &Manifest) -> Result<()> {
    install(ctx, m, PACKAGES, BACKPORTS)
}

fn install(ctx: &Ctx, m: &Manifest, packages: &[&str], backports: &[(&str, &str)]) -> Result<()> {
    // The sources file names every backports suite the tooling uses, whichever list is
    // installed now, so that installing one list never drops another's suite.
    let suites: Vec<&str> = BACKPORTS
        .iter()
        .chain(MATRIX_BACKPORTS)
        .map(|(_, s)| *s)
        .chain([m.base.suite.as_str()])
        .collect();
    let want_sources = {
        let (uri, key) = default_mirror();
        let mut s =
            String::from("# Added by `cargo xtask setup` (PAGEMAP_SCAN Rust series tooling).\n");
        let mut done = Vec::new();
        for suite in &suites {
            if done.contains(suite) {
                continue;
            }
            done.push(*suite);
            s.push_str(&format!(
                "\nTypes: deb\nURIs: {uri}\nSuites: {suite}\nComponents: main\nSigned-By: {key}\n"
            ));
        }
        s
    };
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .chain(backports.iter().map(|(p, _)| *p))
        .filter(|p| !installed(p))
        .collect();
    let sources_ok = std::fs::read_to_string(SOURCES_FILE).is_ok_and(|t| t == want_sources);
    if missing.is_empty() && sources_ok {
        println!("packages: all {} present", packages.len() + backports.len());
        return Ok(());
    }
    if !have("apt-get") {
        bail!("missing packages {missing:?} and no apt-get: this tooling expects Debian bookworm");
    }
    if !sources_ok {
        let tmp = ctx.cache.join("pmrs-backports.sources");
        std::fs::write(&tmp, &want_sources)?;
        let mut c = if is_root() {
            Command::new("cp")
        } else {
            let mut c = Command::new("sudo");
            c.arg("cp");
            c
        };
        run(c.arg(&tmp).arg(SOURCES_FILE))?;
        println!("apt: wrote {SOURCES_FILE} ({})", suites.join(", "));
    }
    let log = ctx.logs().join("apt.log");
    run_logged(&mut apt(&["update"]), &log).context(|| "apt-get update")?;
    let plain: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|p| !backports.iter().any(|(b, _)| b == p))
        .collect();
    if !plain.is_empty() {
        println!("apt: installing {}", plain.join(" "));
        let mut args = vec!["install", "-y", "--no-install-recommends"];
        args.extend(&plain);
        run_logged(&mut apt(&args), &log)
            .context(|| format!("installing {plain:?} (is bookworm-security reachable?)"))?;
    }
    for (p, suite) in backports {
        if missing.contains(p) {
            println!("apt: installing {p} from {suite}");
            run_logged(
                &mut apt(&["install", "-y", "--no-install-recommends", "-t", suite, p]),
                &log,
            )
            .context(|| format!("installing {p} from {suite}"))?;
        }
    }
    let still: Vec<&str> = missing.into_iter().filter(|p| !installed(p)).collect();
    if !still.is_empty() {
        bail!("packages still missing after apt-get install: {still:?}");
    }
    Ok(())
}

fn bindgen(ctx: &Ctx) -> Result<()> {
    let b = ctx.bindgen();
    if let Ok(v) = output(Command::new(&b).arg("--version")) {
        if v.split_whitespace().nth(1) == Some(BINDGEN_VERSION) {
            println!("bindgen: {}", v.trim());
            return Ok(());
        }
    }
    println!("bindgen: cargo install --locked bindgen-cli {BINDGEN_VERSION} (about 2 minutes)");
    run_logged(
        Command::new("cargo").args([
            "install",
            "--locked",
            "--force",
            "bindgen-cli",
            "--version",
            BINDGEN_VERSION,
        ]),
        &ctx.logs().join("bindgen-install.log"),
    )
    .context(|| "installing bindgen-cli from crates.io")?;
    Ok(())
}

/// A git command in the cache tree with a fixed identity and date, so that the base and
/// materialized commits are the same on every machine.
pub fn git(tree: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(tree)
        .env("GIT_AUTHOR_NAME", "pmrs materialize")
        .env("GIT_AUTHOR_EMAIL", "pmrs@invalid")
        .env("GIT_COMMITTER_NAME", "pmrs materialize")
        .env("GIT_COMMITTER_EMAIL", "pmrs@invalid")
        .env("GIT_AUTHOR_DATE", "2026-11-15T22:30:00Z")
        .env("GIT_COMMITTER_DATE", "2026-11-15T22:30:00Z")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    c
}

pub fn base_message(m: &Manifest) -> String {
    format!(
        "Linux {} (Debian {} {})",
        m.base.kernel, m.base.package, m.base.version
    )
}

fn base(ctx: &Ctx, m: &Manifest) -> Result<()> {
    let tree = ctx.tree();
    let want = base_message(m);
    if tree.join(".git").is_dir() {
        if let Ok(msg) = output(git(&tree).args(["log", "-1", "--format=%s", BASE_TAG])) {
            if msg.trim() == want {
                println!("base: {want} (cached in {})", tree.display());
                return Ok(());
            }
            bail!(
                "the cache tree {} holds `{}`, the manifest wants `{want}`: remove it to re-extract",
                tree.display(),
                msg.trim()
            );
        }
    }
    let dl = ctx.cache.join("dl");
    let _ = std::fs::remove_dir_all(&dl);
    std::fs::create_dir_all(&dl)?;
    let spec = format!("{}={}", m.base.package, m.base.version);
    println!("base: apt-get download {spec}");
    let st = Command::new("apt-get")
        .args(["download", &spec])
        .current_dir(&dl)
        .status()?;
    if !st.success() {
        let avail = output(Command::new("apt-cache").args(["madison", &m.base.package]))
            .unwrap_or_default();
        bail!(
            "base {spec} is not available from apt ({}); available:\n{}\nupdate [base] in series/manifest.toml if Debian moved on",
            m.base.suite,
            avail.trim()
        );
    }
    let deb = std::fs::read_dir(&dl)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| err!("apt-get download left no .deb in {}", dl.display()))?;
    let x = dl.join("x");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x))?;
    let tarball = std::fs::read_dir(x.join("usr/src"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.xz"))
        .ok_or_else(|| err!("{} ships no usr/src/*.tar.xz", deb.display()))?;
    let unpack = ctx.cache.join("unpack");
    let _ = std::fs::remove_dir_all(&unpack);
    std::fs::create_dir_all(&unpack)?;
    println!("base: unpacking {}", tarball.display());
    run(Command::new("tar")
        .arg("-C")
        .arg(&unpack)
        .arg("-xJf")
        .arg(&tarball))?;
    let top = std::fs::read_dir(&unpack)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("Makefile").is_file())
        .ok_or_else(|| err!("no kernel tree in {}", tarball.display()))?;
    let mk = std::fs::read_to_string(top.join("Makefile"))?;
    let field = |k: &str| {
        mk.lines()
            .find_map(|l| {
                l.strip_prefix(k)
                    .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
            })
            .unwrap_or_default()
    };
    let ver = format!(
        "{}.{}.{}",
        field("VERSION"),
        field("PATCHLEVEL"),
        field("SUBLEVEL")
    );
    if ver != m.base.kernel {
        bail!(
            "{} unpacked as Linux {ver}, the manifest expects {}",
            spec,
            m.base.kernel
        );
    }
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::rename(&top, &tree)?;
    let _ = std::fs::remove_dir_all(&unpack);
    let _ = std::fs::remove_dir_all(&dl);
    println!("base: creating the base commit (git add of ~96k files)");
    run(git(&tree).args(["init", "-q", "-b", "series"]))?;
    run(git(&tree).args(["config", "core.autocrlf", "false"]))?;
    run(git(&tree).args(["config", "gc.auto", "0"]))?;
    // Debian's .gitignore ignores every top-level entry: add by force (the tarball holds no
    // build products).
    run(git(&tree).args(["add", "-f", "-A", "."]))?;
    run(git(&tree).args(["commit", "-q", "--no-verify", "-m", &want]))?;
    run(git(&tree).args(["tag", BASE_TAG]))?;
    std::fs::write(ctx.cache.join("base-version"), format!("{spec}\n"))?;
    println!("base: {want}");
    Ok(())
}
