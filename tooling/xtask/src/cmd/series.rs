// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask series` and `check-series`: the series emitted and checked, every patch built.

use crate::*;

/// Builds base + patches 1..=i for each i in the same build directory, then returns the tree
/// to the series head. Prints `PATCH i/n: ok|FAILED <subject>`; returns whether each built.
pub(crate) fn per_patch_builds(ctx: &Ctx, o: &Opts, m: &Manifest) -> Result<Vec<bool>> {
    let commits = materialize::series_commits(&ctx.tree())?;
    let n = commits.len();
    let mut ok = Vec::new();
    // The builds check out each commit: nothing unsaved may be in the tree.
    materialize::guard_tree(&ctx.tree(), None)?;
    // A tree that built before with the same configuration and toolchain builds again: its
    // success is recorded by content (the hash of what the build reads, and `build_key`), as
    // ccache would. The selftests (tools/testing/) are not part of the kernel build: a change
    // there alone does not call for the builds again.
    let key = kbuild::build_key(ctx, &o.variant)?;
    let done = ctx.cache.join("per-patch-built");
    std::fs::create_dir_all(&done)?;
    for (i, c) in commits.iter().enumerate() {
        let subject = m.patches.get(i).map_or("", |p| p.subject.as_str());
        let t =
            util::output(setup::git(&ctx.tree()).args(["rev-parse", &format!("{c}^{{tree}}")]))?;
        let built_tree = build_input_hash(ctx, c)?;
        let stamp = done.join(util::fnv64(&[key.as_bytes(), built_tree.as_bytes()]));
        // Recorded under the whole tree's hash before the selftests were left out.
        let old_stamp = done.join(util::fnv64(&[key.as_bytes(), t.trim().as_bytes()]));
        if stamp.exists() || old_stamp.exists() {
            ok.push(true);
            println!(
                "PATCH {}/{n}: ok (this tree built before, same config and toolchain) {subject}",
                i + 1
            );
            continue;
        }
        util::run(setup::git(&ctx.tree()).args(["checkout", "-q", "-f", c]))?;
        let log = ctx.logs().join(format!("build-patch-{}.log", i + 1));
        let built = kbuild::build_as_is(ctx, &o.variant, &log)?;
        if built {
            std::fs::write(&stamp, format!("{} {subject}\n", t.trim()))?;
        }
        ok.push(built);
        println!(
            "PATCH {}/{n}: {} {subject}",
            i + 1,
            if built { "ok" } else { "FAILED" },
        );
    }
    util::run(setup::git(&ctx.tree()).args(["checkout", "-q", "-f", materialize::BRANCH]))?;
    Ok(ok)
}

/// The hash of what a kernel build of commit `c` reads: its tree without tools/testing/ (the
/// top-level entries but `tools`, and those of tools/ but `testing`, as `git ls-tree` lists
/// them with their object ids).
fn build_input_hash(ctx: &Ctx, c: &str) -> Result<String> {
    let top = util::output(setup::git(&ctx.tree()).args(["ls-tree", c]))?;
    let tools = util::output(setup::git(&ctx.tree()).args(["ls-tree", &format!("{c}:tools")]))?;
    Ok(build_inputs(&top, &tools))
}

/// [`build_input_hash`] from the two listings.
fn build_inputs(top: &str, tools: &str) -> String {
    let name = |l: &str| l.split('\t').nth(1).unwrap_or("").to_string();
    let kept: Vec<&str> = top
        .lines()
        .filter(|l| name(l) != "tools")
        .chain(tools.lines().filter(|l| name(l) != "testing"))
        .collect();
    util::fnv64(&[kept.join("\n").as_bytes()])
}

/// Builds every patch of the series in turn; prints `builds <ok>/<n>`.
pub(crate) fn cmd_check_series(ctx: &Ctx, o: &Opts) -> Result<bool> {
    let m = setup_and_materialize(ctx, o)?;
    let _s = Stage::new("per-patch-builds");
    let built = per_patch_builds(ctx, o, &m)?;
    let ok = built.iter().filter(|b| **b).count();
    println!("builds {ok}/{}", built.len());
    Ok(ok == built.len())
}

/// Emits the series and checks it: checkpatch --strict, every patch builds (CONFIG_RUST=y), the
/// series builds with CONFIG_RUST=n, `git am` round trip, get_maintainer, and a captured
/// `git send-email` run. Prints the `SERIES:` line; returns the checks as a suite.
pub(crate) fn series_suite(ctx: &Ctx, o: &Opts, m: &Manifest) -> Result<report::Suite> {
    let id = series::identity(
        &ctx.repo,
        o.test_identity || std::env::var_os("CI").is_some(),
    )?;
    let dir = ctx.cache.join("series-out");
    let e = series::emit(ctx, m, &id, &dir)?;
    let (ck, ck_lines) = series::checkpatch(ctx, &e.patches)?;
    let per_patch = per_patch_builds(ctx, o, m)?;
    let (built, n) = (per_patch.iter().filter(|b| **b).count(), per_patch.len());
    let norust = match kbuild::build(ctx, "norust") {
        Ok(_) => true,
        Err(err) => {
            println!("  CONFIG_RUST=n build: {err}");
            false
        }
    };
    let touched = lint::series_paths(&ctx.repo, m);
    let am = series::am_roundtrip(ctx, &e, &touched)?;
    // The fixes at the front, on their own: checkpatch, builds, and `git am` onto the base.
    let k = m.patches.iter().take_while(|p| p.is_fix()).count();
    let fixes_ok = if k > 0 {
        let f = series::emit_prefix(ctx, k, e.patches.len(), &ctx.cache.join("series-out-fixes"))?;
        let (fck, _) = series::checkpatch(ctx, &f.patches)?;
        let fbuilt = per_patch.iter().take(k).filter(|b| **b).count();
        let fam = series::am_roundtrip(ctx, &f, &touched)?;
        println!(
            "FIXES: {k} patches, checkpatch {} errors {} warnings, builds {fbuilt}/{k}, am-roundtrip {}",
            fck.errors,
            fck.warnings + fck.checks,
            if fam { "ok" } else { "FAILED" }
        );
        fck.errors + fck.warnings + fck.checks == 0 && fbuilt == k && fam
    } else {
        println!("FIXES: none at the front of the series");
        true
    };
    let (to, cc) = series::recipients(ctx, &e.patches)?;
    let mails = series::send_dry_run(&e, &id, &to, &cc)?;
    let thread = series::check_thread(&mails, e.patches.len(), &id.email);
    let warnings = ck.warnings + ck.checks;
    println!(
        "SERIES: {} patches, checkpatch {} errors {} warnings, builds {built}/{n}, am-roundtrip {}",
        e.patches.len(),
        ck.errors,
        warnings,
        if am { "ok" } else { "FAILED" }
    );
    println!(
        "SERIES: CONFIG_RUST=n build {}; send-email dry run: {} mails, threading {}; To: {}; Cc: {} people",
        if norust { "ok" } else { "FAILED" },
        mails.len(),
        if thread.is_empty() { "ok" } else { "FAILED" },
        to.join(", "),
        cc.len()
    );
    println!(
        "SERIES: written to {} as {}{}",
        e.dir.display(),
        id.mailbox(),
        if id.fake {
            " (test identity: not for sending)"
        } else {
            ""
        }
    );
    let mut s = report::Suite::new("series", "emit");
    let cases: [(&str, bool, Vec<String>); 6] = [
        ("checkpatch --strict", ck.errors + warnings == 0, ck_lines),
        ("every patch builds", built == n, Vec::new()),
        ("CONFIG_RUST=n build", norust, Vec::new()),
        ("git am round trip", am, Vec::new()),
        ("send-email threading", thread.is_empty(), thread),
        ("the fixes at the front stand alone", fixes_ok, Vec::new()),
    ];
    for (name, ok, details) in cases {
        s.add_case(name, ok, details);
    }
    Ok(s)
}

pub(crate) fn cmd_series(ctx: &Ctx, o: &Opts) -> Result<bool> {
    let m = setup_and_materialize(ctx, o)?;
    let _s = Stage::new("series");
    let s = series_suite(ctx, o, &m)?;
    println!("{}", s.line());
    for p in &s.problems {
        println!("  {p}");
    }
    Ok(s.counts.failed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selftests_are_not_build_inputs() {
        let top = "040000 tree aaaa\tmm\n040000 tree bbbb\ttools\n";
        let tools = "040000 tree cccc\tobjtool\n040000 tree dddd\ttesting\n";
        let h = build_inputs(top, tools);
        // Another tools/testing: the same inputs.
        assert_eq!(h, build_inputs(top, &tools.replace("dddd", "eeee")));
        // Another objtool or mm: other inputs.
        assert_ne!(h, build_inputs(top, &tools.replace("cccc", "ffff")));
        assert_ne!(h, build_inputs(&top.replace("aaaa", "ffff"), tools));
    }
}
