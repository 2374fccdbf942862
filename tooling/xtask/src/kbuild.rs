// SPDX-License-Identifier: GPL-2.0
//! Configure and build a kernel variant out of tree (O=) in the cache.

use crate::ctx::Ctx;
use crate::util::{fnv64, run_logged, Context, Result};
use crate::{bail, err};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub fragments: Vec<String>,
    pub required: Vec<String>,
    /// `ARCH=` (the host's, x86_64, when absent).
    #[serde(default)]
    pub arch: Option<String>,
    /// Kconfig lines applied after the fragments (a matrix configuration's own change).
    #[serde(default)]
    pub options: Vec<String>,
    /// Options that must not be `=y` after `make olddefconfig`.
    #[serde(default)]
    pub unset: Vec<String>,
}

impl Variant {
    /// The kernel image `make` target and its path in the build directory.
    pub fn image(&self) -> (&'static str, &'static str) {
        match self.arch.as_deref() {
            Some("arm64") => ("Image", "arch/arm64/boot/Image"),
            Some("riscv") => ("Image", "arch/riscv/boot/Image"),
            _ => ("bzImage", "arch/x86/boot/bzImage"),
        }
    }
}

fn variant(ctx: &Ctx, name: &str) -> Result<Variant> {
    variants(ctx)?
        .remove(name)
        .ok_or_else(|| err!("no kernel variant `{name}` in tooling/configs/variants.toml"))
}

pub fn variants(ctx: &Ctx) -> Result<BTreeMap<String, Variant>> {
    let p = ctx.configs().join("variants.toml");
    let t = std::fs::read_to_string(&p).context(|| format!("read {}", p.display()))?;
    toml::from_str(&t).map_err(|e| err!("{}: {e}", p.display()))
}

/// Options from `required` that are not `=y` in a .config text.
pub fn missing_options<'a>(config: &str, required: &'a [String]) -> Vec<&'a str> {
    required
        .iter()
        .map(String::as_str)
        .filter(|o| !config.lines().any(|l| l.strip_prefix(o) == Some("=y")))
        .collect()
}

/// `make` in the cache tree for a variant's build directory, with the toolchain variables.
pub fn make(ctx: &Ctx, variant: &str) -> Command {
    make_arch(ctx, variant, None)
}

/// `make` for a build directory and an `ARCH=` (none: the host's).
pub fn make_arch(ctx: &Ctx, variant: &str, arch: Option<&str>) -> Command {
    let mut c = Command::new("make");
    c.current_dir(ctx.tree())
        .arg(format!("O={}", ctx.build_dir(variant).display()));
    if let Some(a) = arch {
        c.arg(format!("ARCH={a}"));
    }
    c.args(ctx.make_vars())
        .env("CCACHE_DIR", &ctx.ccache)
        .env("CCACHE_MAXSIZE", "30G")
        // Paths below the cache are hashed relative to the build directory, so the trees of
        // `cargo xtask fixes` (`proof-*/tree`, built in `proof-*/build-proof`) share objects too.
        .env("CCACHE_BASEDIR", &ctx.cache)
        .env("CCACHE_NOHASHDIR", "1")
        // The rustup toolchain first on PATH must not be picked up by Kbuild's helpers.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    c
}

/// Configures (only when the fragments changed) and builds bzImage and the uapi headers.
/// Returns the path of the bzImage.
pub fn build(ctx: &Ctx, variant: &str) -> Result<PathBuf> {
    let out = configure(ctx, variant)?;
    println!(
        "build: make -j{} bzImage headers_install (O={})",
        ctx.jobs,
        out.display()
    );
    run_make(
        &out,
        make(ctx, variant)
            .arg(format!("-j{}", ctx.jobs))
            .args(["bzImage", "headers_install"]),
        &ctx.logs().join(format!("build-{variant}.log")),
    )?;
    Ok(out.join("arch/x86/boot/bzImage"))
}

/// Runs a `make` whose build directory is `dir`, its output in `log`.
///
/// Kbuild deletes a half-written target when a recipe fails (`.DELETE_ON_ERROR`) or make is
/// interrupted, but not when make is killed outright (a session ending, a CI timeout): the
/// target stays, newer than its prerequisites and with the same command in its `.cmd` file, so
/// the next make takes it as up to date (an empty `rust/bindings/bindings_generated.rs` failed
/// a CI run that way). A marker file lives in `dir` while make runs; when a make finds one, the
/// one before it was killed, and `repair_interrupted` removes what it may have left.
pub fn run_make(dir: &Path, cmd: &mut Command, log: &Path) -> Result<()> {
    let marker = dir.join(".pmrs-make-running");
    if marker.exists() {
        let n = repair_interrupted(dir);
        println!(
            "build: the last make in {} was killed; removed {n} file(s) written after their .cmd",
            dir.display()
        );
    }
    std::fs::write(&marker, b"").context(|| format!("write {}", marker.display()))?;
    let r = run_logged(cmd, log);
    // A failed make cleaned up after itself: only a killed one leaves the marker.
    let _ = std::fs::remove_file(&marker);
    r
}

/// Removes every target in the build directory `dir` that is newer than its `.<target>.cmd`.
///
/// Kbuild writes `.<target>.cmd` after the command that made the target succeeded, so a target
/// written after it is one whose command was cut short. Removing it costs one rebuild; a target
/// with no `.cmd` file is rebuilt by Kbuild anyway. Returns how many files were removed.
pub fn repair_interrupted(dir: &Path) -> usize {
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name();
            let name = name.to_string_lossy();
            if ft.is_dir() {
                stack.push(e.path());
                continue;
            }
            let Some(target) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".cmd")) else {
                continue;
            };
            let t = d.join(target);
            let mtime = |p: &Path| std::fs::symlink_metadata(p).and_then(|m| m.modified());
            if let (Ok(tm), Ok(cm)) = (mtime(&t), mtime(&e.path())) {
                if tm > cm && std::fs::remove_file(&t).is_ok() {
                    println!("build: removed {} (newer than its .cmd)", t.display());
                    removed += 1;
                }
            }
        }
    }
    removed
}

/// What besides the source tree decides a build's outcome: the variant's config fragments, the
/// make variables and the toolchain's versions. With a tree's hash it keys the per-patch build
/// cache.
pub fn build_key(ctx: &Ctx, variant: &str) -> Result<String> {
    let v = self::variant(ctx, variant)?;
    let mut texts = vec![variant.as_bytes().to_vec()];
    for f in &v.fragments {
        let p = ctx.configs().join(f);
        texts.push(std::fs::read(&p).context(|| format!("read {}", p.display()))?);
    }
    if !v.options.is_empty() || v.arch.is_some() {
        texts.push(format!("{:?}\n{}", v.arch, v.options.join("\n")).into_bytes());
    }
    texts.push(ctx.make_vars().join(" ").into_bytes());
    for tool in ["/usr/bin/rustc", "clang-22", "ld.lld-22"] {
        let out = Command::new(tool).arg("--version").output();
        texts.push(out.map(|o| o.stdout).unwrap_or_default());
    }
    let parts: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
    Ok(fnv64(&parts))
}

/// Builds whatever the cache tree holds now (for per-patch builds): `olddefconfig` on the
/// variant's .config, then bzImage. Options that patches later in the series add may be
/// missing here, so the required-option check is not made. Returns whether it built.
pub fn build_as_is(ctx: &Ctx, variant: &str, log: &std::path::Path) -> Result<bool> {
    // Merge the fragments anew against this tree's Kconfig (an option a later patch adds is
    // dropped here and comes back at that patch), unless neither the fragments nor a Kconfig
    // file changed since the .config was made (most patches touch no Kconfig file: about 10 s
    // saved per patch). The required-option check may fail before the patch that adds an
    // option: not an error here.
    let dir = ctx.build_dir(variant);
    let inputs = config_inputs(ctx, variant)?;
    let stamp = dir.join(".pmrs-config-inputs");
    let same = std::fs::read_to_string(&stamp).ok().as_deref() == Some(inputs.as_str());
    if !same || !dir.join(".config").exists() {
        let _ = std::fs::remove_file(dir.join(".pmrs-config"));
        let _ = configure(ctx, variant);
        let _ = std::fs::remove_file(dir.join(".pmrs-config"));
        std::fs::write(&stamp, &inputs)?;
    }
    Ok(run_make(
        &dir,
        make(ctx, variant)
            .arg(format!("-j{}", ctx.jobs))
            .arg("bzImage"),
        log,
    )
    .is_ok())
}

/// What decides the .config that `configure` makes for `variant` in the tree as it is
/// checked out: the fragments, and the object ids of every Kconfig file and of the kconfig
/// tool and tiny configurations.
fn config_inputs(ctx: &Ctx, variant: &str) -> Result<String> {
    let listing = crate::util::output(
        Command::new("git")
            .current_dir(ctx.tree())
            .args(["ls-tree", "-r", "HEAD"]),
    )?;
    let kconfig: String = listing
        .lines()
        .filter(|l| {
            let path = l.split('\t').nth(1).unwrap_or_default();
            let name = path.rsplit('/').next().unwrap_or_default();
            name.starts_with("Kconfig")
                || path.starts_with("scripts/kconfig/")
                || path.ends_with("/tiny.config")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(fnv64(&[
        build_key(ctx, variant)?.as_bytes(),
        kconfig.as_bytes(),
    ]))
}

/// Writes the variant's .config (only when its fragments changed) and checks that every
/// required option survived olddefconfig. Returns the build directory.
pub fn configure(ctx: &Ctx, variant: &str) -> Result<PathBuf> {
    configure_as(ctx, variant, &self::variant(ctx, variant)?)
}

/// `configure` for a variant described by `v` (a matrix configuration), built in the build
/// directory of `variant`.
pub fn configure_as(ctx: &Ctx, variant: &str, v: &Variant) -> Result<PathBuf> {
    let arch = v.arch.as_deref();
    let out = ctx.build_dir(variant);
    std::fs::create_dir_all(&out)?;
    let logs = ctx.logs();
    std::fs::create_dir_all(&logs)?;
    let mut texts = Vec::new();
    for f in &v.fragments {
        let p = ctx.configs().join(f);
        texts.push(std::fs::read(&p).context(|| format!("read {}", p.display()))?);
    }
    let own = out.join(".pmrs-options.config");
    if !v.options.is_empty() || arch.is_some() {
        let mut t = v.options.join("\n");
        t.push('\n');
        std::fs::write(&own, &t)?;
        texts.push(format!("{arch:?}\n{t}").into_bytes());
    }
    let parts: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
    let hash = fnv64(&parts);
    let stamp = out.join(".pmrs-config");
    let config = out.join(".config");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(hash.as_str()) || !config.exists() {
        println!("config: tinyconfig + {}", v.fragments.join(" + "));
        let log = logs.join(format!("config-{variant}.log"));
        run_logged(make_arch(ctx, variant, arch).arg("tinyconfig"), &log)?;
        let mut merge = Command::new(ctx.tree().join("scripts/kconfig/merge_config.sh"));
        merge
            .current_dir(ctx.tree())
            .env("KCONFIG_CONFIG", &config)
            .args(["-m", "-O"])
            .arg(&out)
            .arg(&config);
        for f in &v.fragments {
            merge.arg(ctx.configs().join(f));
        }
        if !v.options.is_empty() {
            merge.arg(&own);
        }
        if let Some(a) = arch {
            merge.env("ARCH", a);
        }
        run_logged(&mut merge, &logs.join(format!("merge-{variant}.log")))?;
        run_logged(make_arch(ctx, variant, arch).arg("olddefconfig"), &log)?;
        std::fs::write(&stamp, &hash)?;
        // Made for this tree: what the per-patch builds recorded no longer describes it.
        let _ = std::fs::remove_file(out.join(".pmrs-config-inputs"));
    }
    let cfg = std::fs::read_to_string(&config)?;
    let missing = missing_options(&cfg, &v.required);
    if !missing.is_empty() {
        let _ = std::fs::remove_file(&stamp);
        bail!(
            "after olddefconfig, {} lacks {} (a dependency is missing from the fragments)",
            config.display(),
            missing.join(" ")
        );
    }
    let present: Vec<&str> = v
        .unset
        .iter()
        .map(String::as_str)
        .filter(|o| missing_options(&cfg, &[o.to_string()]).is_empty())
        .collect();
    if !present.is_empty() {
        let _ = std::fs::remove_file(&stamp);
        bail!(
            "after olddefconfig, {} still has {} (something selects it)",
            config.display(),
            present.join(" ")
        );
    }
    println!("config: {} has every required option", config.display());
    Ok(out)
}

/// Whether the built .config of a variant has `opt=y`.
pub fn config_has(ctx: &Ctx, variant: &str, opt: &str) -> bool {
    std::fs::read_to_string(ctx.build_dir(variant).join(".config"))
        .map(|c| missing_options(&c, &[opt.to_string()]).is_empty())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_dropped_options() {
        let cfg = "CONFIG_RUST=y\n# CONFIG_SWAP is not set\nCONFIG_SWAPX=y\nCONFIG_ZRAM=m\n";
        let req: Vec<String> = ["CONFIG_RUST", "CONFIG_SWAP", "CONFIG_ZRAM"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(missing_options(cfg, &req), ["CONFIG_SWAP", "CONFIG_ZRAM"]);
    }

    #[test]
    fn variants_file_parses_and_requires_rust() {
        let ctx = Ctx::new();
        let vs = variants(&ctx).unwrap();
        for name in ["vm", "debug"] {
            let v = &vs[name];
            assert!(v.required.iter().any(|o| o == "CONFIG_RUST"), "{name}");
            for f in &v.fragments {
                assert!(ctx.configs().join(f).is_file(), "{name}: {f}");
            }
        }
    }
}
