// SPDX-License-Identifier: GPL-2.0
//! Where things live: the repository, the cache outside git, the toolchain.

use std::path::{Path, PathBuf};

/// Paths and toolchain settings shared by every stage.
pub struct Ctx {
    /// The repository root (holds `series/`, the kernel-path files and `tooling/`).
    pub repo: PathBuf,
    /// Cache directory outside git: base tree, build trees, guest images, logs.
    pub cache: PathBuf,
    /// `-j` for make.
    pub jobs: usize,
    /// ccache's directory: `<cache>/ccache`, shared with the caches of `cargo xtask fixes`.
    pub ccache: PathBuf,
}

impl Ctx {
    pub fn new() -> Self {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .unwrap_or_else(|_| PathBuf::from("."));
        let cache = if let Some(c) = std::env::var_os("PMRS_CACHE") {
            PathBuf::from(c)
        } else if let Some(c) = std::env::var_os("XDG_CACHE_HOME") {
            PathBuf::from(c).join("pmrs")
        } else {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/pmrs")
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Ctx {
            repo,
            ccache: cache.join("ccache"),
            cache,
            jobs: cores + 1,
        }
    }

    /// The git work tree holding base + series (one commit per patch).
    pub fn tree(&self) -> PathBuf {
        self.cache.join("tree")
    }

    /// The O= directory of a build variant (`vm`, `debug`, ...).
    pub fn build_dir(&self, variant: &str) -> PathBuf {
        self.cache.join(format!("build-{variant}"))
    }

    /// Per-variant staging area for the guest's userspace and initramfs.
    pub fn guest_dir(&self, variant: &str) -> PathBuf {
        self.cache.join(format!("guest-{variant}"))
    }

    pub fn logs(&self) -> PathBuf {
        self.cache.join("logs")
    }

    pub fn configs(&self) -> PathBuf {
        self.repo.join("tooling/configs")
    }

    /// bindgen installed by `setup` (cargo's bin directory).
    pub fn bindgen(&self) -> PathBuf {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                    .join(".cargo")
            });
        home.join("bin/bindgen")
    }

    /// The make variables that select Debian's LLVM/Rust toolchain (never rustup's: it has no
    /// rust-src).
    pub fn make_vars(&self) -> Vec<String> {
        vec![
            "LLVM=-22".into(),
            // Through ccache (its directory in the cache: `make()` sets CCACHE_DIR): the
            // per-patch builds, and every build after a change early in the series, compile
            // most files as they compiled them before.
            "CC=ccache clang-22".into(),
            "RUSTC=/usr/bin/rustc".into(),
            "RUSTDOC=/usr/bin/rustdoc".into(),
            format!("RUST_LIB_SRC={RUST_LIB_SRC}"),
            format!("BINDGEN={}", self.bindgen().display()),
            // Every build is a clippy build, with Debian's clippy and rustfmt of the same version.
            "CLIPPY=1".into(),
            "CLIPPY_DRIVER=/usr/bin/clippy-driver".into(),
            "RUSTFMT=/usr/bin/rustfmt".into(),
        ]
    }
}

/// Rust standard library sources from Debian's rust-web-src.
pub const RUST_LIB_SRC: &str = "/usr/src/rustc-1.96.0/library";
