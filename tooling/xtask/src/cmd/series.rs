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
        let label = if i < m.patches.len() {
            m.label(i)
        } else {
            String::new()
        };
        let t =
            util::output(setup::git(&ctx.tree()).args(["rev-parse", &format!("{c}^{{tree}}")]))?;
        let built_tree = build_input_hash(ctx, c)?;
        let stamp = done.join(util::fnv64(&[key.as_bytes(), built_tree.as_bytes()]));
        // Recorded under the whole tree's hash before the selftests were left out.
        let old_stamp = done.join(util::fnv64(&[key.as_bytes(), t.trim().as_bytes()]));
        if stamp.exists() || old_stamp.exists() {
            ok.push(true);
            println!(
                "PATCH {}/{n} ({label}): ok (this tree built before, same config and toolchain) \
                 {subject}",
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
            "PATCH {}/{n} ({label}): {} {subject}",
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

/// Emits each series and checks it: checkpatch --strict, every patch builds (CONFIG_RUST=y), the
/// whole stack builds with CONFIG_RUST=n, `git am` round trip of the series on the pristine base
/// (with the series it applies on), get_maintainer, and a captured `git send-email` run. Prints
/// a `SERIES <name>:` line per series (and `FIXES:` for the fixes series) and the `SERIES:`
/// totals; returns the checks as a suite.
pub(crate) fn series_suite(ctx: &Ctx, o: &Opts, m: &Manifest) -> Result<report::Suite> {
    let id = series::identity(
        &ctx.repo,
        o.test_identity || std::env::var_os("CI").is_some(),
    )?;
    let dir = ctx.cache.join("series-out");
    let emitted = series::emit(ctx, m, &id, &dir)?;
    let per_patch = per_patch_builds(ctx, o, m)?;
    let norust = match kbuild::build(ctx, "norust") {
        Ok(_) => true,
        Err(err) => {
            println!("  CONFIG_RUST=n build: {err}");
            false
        }
    };
    let touched = lint::series_paths(&ctx.repo, m);
    let mut s = report::Suite::new("series", "emit");
    let (mut errors, mut warnings, mut built_all) = (0, 0, 0);
    for (k, (e, sd)) in emitted.iter().zip(&m.series).enumerate() {
        let n = e.patches.len();
        let (ck, ck_lines) = series::checkpatch(ctx, &e.patches)?;
        let built = per_patch[sd.range.clone()].iter().filter(|b| **b).count();
        let chain: Vec<&series::Emitted> = emitted[..=k].iter().collect();
        let am = series::am_roundtrip(ctx, &chain, &touched)?;
        let (to, cc) = series::recipients(ctx, &e.patches)?;
        let mails = series::send_dry_run(e, &id, &to, &cc)?;
        let thread = series::check_thread(&mails, n, &id.email, &sd.prefix);
        let w = ck.warnings + ck.checks;
        let am_word = if am { "ok" } else { "FAILED" };
        println!(
            "SERIES {}: {n} patches [{}] for {}, checkpatch {} errors {w} warnings, builds \
             {built}/{n}, am-roundtrip {am_word}; send-email dry run: {} mails, threading {}; \
             To: {}; Cc: {} people; in {}",
            sd.name,
            sd.prefix,
            sd.goes_to,
            ck.errors,
            mails.len(),
            if thread.is_empty() { "ok" } else { "FAILED" },
            to.join(", "),
            cc.len(),
            e.dir.display()
        );
        if sd.fixes {
            println!(
                "FIXES: {n} patches, checkpatch {} errors {w} warnings, builds {built}/{n}, \
                 am-roundtrip {am_word}",
                ck.errors
            );
            // Which fix applies alone to the pristine base (stable may take it alone); one that
            // does not needs the fixes before it, which its changelog says.
            let mut alone = Vec::new();
            for (j, f) in e.patches.iter().enumerate() {
                if !series::applies_alone(ctx, f)? {
                    alone.push((j + 1).to_string());
                }
            }
            println!(
                "FIXES: every fix applies alone to the pristine base{}",
                if alone.is_empty() {
                    String::new()
                } else {
                    format!(" but {} (needs the fixes before it)", alone.join(", "))
                }
            );
        }
        let name = &sd.name;
        s.add_case(
            &format!("{name}: checkpatch --strict"),
            ck.errors + w == 0,
            ck_lines,
        );
        s.add_case(
            &format!("{name}: every patch builds"),
            built == n,
            Vec::new(),
        );
        s.add_case(&format!("{name}: git am round trip"), am, Vec::new());
        s.add_case(
            &format!("{name}: send-email threading"),
            thread.is_empty(),
            thread,
        );
        s.add_case(
            &format!("{name}: addressed to linux-mm"),
            to.first().is_some_and(|t| t == "linux-mm@kvack.org"),
            Vec::new(),
        );
        errors += ck.errors;
        warnings += w;
        built_all += built;
    }
    s.add_case("CONFIG_RUST=n build", norust, Vec::new());
    println!(
        "SERIES: {} patches in {} series, checkpatch {errors} errors {warnings} warnings, builds \
         {built_all}/{}, CONFIG_RUST=n build {}",
        m.patches.len(),
        m.series.len(),
        per_patch.len(),
        if norust { "ok" } else { "FAILED" },
    );
    println!(
        "SERIES: written to {} as {}{}",
        dir.display(),
        id.mailbox(),
        if id.fake {
            " (test identity: not for sending)"
        } else {
            ""
        }
    );
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
