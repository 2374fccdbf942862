// SPDX-License-Identifier: GPL-2.0
//! CRIU and its own test suite (zdtm), from Debian's source package (the upstream tarball of
//! trixie's criu), built in the cache: once as released, once with this project's patch
//! (`tooling/criu/*.patch`, the get-and-clear of soft-dirty state). The guest runs them from the
//! host's root file system, shared read-only over 9p.

use crate::bail;
use crate::ctx::Ctx;
use crate::util::{fnv64, output, run, run_logged, Context, Result, Stage};
use std::path::PathBuf;
use std::process::Command;

/// The release Debian trixie ships (`criu 4.1.1-1`).
pub const VERSION: &str = "4.1.1";
const TARBALL: &str = "criu_4.1.1.orig.tar.xz";
/// Where in a Debian mirror the tarball lies; Debian's `.dsc` and packaging tarball are not
/// needed (and were not served when this was written).
const POOL_PATH: &str = "pool/main/c/criu/criu_4.1.1.orig.tar.xz";
const SHA256: &str = "f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe";

/// Which CRIU: as released, or with the patches of `tooling/criu/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Released,
    Patched,
}

impl Flavor {
    fn dir_name(self) -> &'static str {
        match self {
            Flavor::Released => "released",
            Flavor::Patched => "patched",
        }
    }
}

/// The project's patches to CRIU, in the order they apply.
pub fn patches(ctx: &Ctx) -> Result<Vec<PathBuf>> {
    let dir = ctx.repo.join("tooling/criu");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .collect();
    v.sort();
    Ok(v)
}

/// The tarball in the cache, fetched from the Debian mirror setup uses and checked.
fn tarball(ctx: &Ctx) -> Result<PathBuf> {
    let dir = ctx.cache.join("criu");
    std::fs::create_dir_all(&dir)?;
    let t = dir.join(TARBALL);
    if !t.exists() {
        let url = format!("{}/{POOL_PATH}", crate::setup::mirror());
        println!("criu: fetching {url}");
        let part = dir.join(format!("{TARBALL}.part"));
        run(Command::new("curl")
            .args(["-fsSL", "--retry", "3", "-o"])
            .arg(&part)
            .arg(&url))
        .context(|| format!("fetch {url}"))?;
        std::fs::rename(&part, &t)?;
    }
    let sum = output(Command::new("sha256sum").arg(&t))?;
    if sum.split_whitespace().next() != Some(SHA256) {
        let _ = std::fs::remove_file(&t);
        bail!("{TARBALL}: sha256 is not {SHA256} (removed; run again to fetch it anew)");
    }
    Ok(t)
}

/// Builds CRIU (`criu/criu`, the Python images of `lib/pycriu`) and zdtm's tests in the cache;
/// returns the source tree, where `test/zdtm.py` runs. Done again only when the tarball or the
/// patches change.
pub fn build(ctx: &Ctx, flavor: Flavor) -> Result<PathBuf> {
    let _s = Stage::new(&format!("criu-{}", flavor.dir_name()));
    let tar = tarball(ctx)?;
    let patches = match flavor {
        Flavor::Released => Vec::new(),
        Flavor::Patched => patches(ctx)?,
    };
    let mut parts: Vec<Vec<u8>> = vec![SHA256.as_bytes().to_vec()];
    for p in &patches {
        parts.push(std::fs::read(p)?);
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let key = fnv64(&refs);
    let tree = ctx
        .cache
        .join(format!("criu/{}-{VERSION}", flavor.dir_name()));
    let stamp = tree.join(".pmrs-built");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == key) {
        return Ok(tree);
    }
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(&tree)?;
    run(Command::new("tar")
        .arg("xf")
        .arg(&tar)
        .arg("-C")
        .arg(&tree)
        .arg("--strip-components=1"))?;
    for p in &patches {
        println!("criu: applying {}", p.display());
        run(Command::new("patch")
            .args(["-p1", "-s", "-d"])
            .arg(&tree)
            .arg("-i")
            .arg(p))
        .context(|| format!("apply {}", p.display()))?;
    }
    let log = ctx.logs().join(format!("criu-{}.log", flavor.dir_name()));
    let jobs = format!("-j{}", ctx.jobs);
    // No TLS (page-server encryption) and no plugins: what zdtm's memory tests use.
    run_logged(
        Command::new("make").arg("-C").arg(&tree).args([
            jobs.as_str(),
            "NO_GNUTLS=1",
            "criu",
            "lib",
        ]),
        &log,
    )
    .context(|| format!("build CRIU (log {})", log.display()))?;
    let zlog = ctx
        .logs()
        .join(format!("criu-{}-zdtm.log", flavor.dir_name()));
    run_logged(
        Command::new("make")
            .arg("-C")
            .arg(tree.join("test/zdtm"))
            .arg(&jobs),
        &zlog,
    )
    .context(|| format!("build zdtm (log {})", zlog.display()))?;
    std::fs::write(&stamp, format!("{key}\n"))?;
    Ok(tree)
}
