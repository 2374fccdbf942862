// SPDX-License-Identifier: GPL-2.0
//! `cargo xtask run`: build the patched kernel, boot it and run the PAGEMAP_SCAN demo.

use crate::*;

pub(crate) fn cmd_run(ctx: &Ctx, o: &Opts) -> Result<bool> {
    let (_, kernel) = prepare(ctx, o)?;
    let initrd = {
        let _s = Stage::new("guest-userspace");
        guest::initramfs(ctx, &o.variant, &Mode::Demo { shell: o.shell })?
    };
    let _s = Stage::new("boot");
    let out = qemu::boot(&qemu::Boot {
        interactive: o.shell,
        echo_results: !o.shell,
        ..qemu::Boot::new(
            &kernel,
            &initrd,
            GUEST_CPUS,
            Duration::from_secs(if o.shell { 24 * 3600 } else { 300 }),
            &ctx.logs().join(format!("run-{}", o.variant)),
        )
    })?;
    let splats = splat::scan(&out.console);
    for l in &splats {
        println!("SPLAT: {l}");
    }
    let demo_ok = out
        .results
        .lines()
        .any(|l| l.trim_end() == "@@DEMO-END rc=0");
    if !o.shell {
        println!(
            "guest ran {:.1}s; console log {}",
            out.seconds,
            out.console_path.display()
        );
        if out.timed_out {
            println!("guest timed out");
        }
        if !demo_ok {
            println!("the demo did not finish successfully");
        }
    }
    Ok(splats.is_empty() && !out.timed_out && (o.shell || demo_ok))
}
