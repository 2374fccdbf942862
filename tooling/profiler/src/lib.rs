// SPDX-License-Identifier: GPL-2.0
//! A QEMU TCG plugin (`-plugin libpmrs_profiler.so,out=PREFIX`) for `cargo xtask profile`: it
//! counts how often each translated block of kernel text runs, and on SIGUSR2 writes the
//! counts to `PREFIX.<k>` (k = 0, 1, ...; written to a temporary name, then renamed, so the
//! file appears whole). A line is `<block address in hex> <instructions> <executions>`; the
//! difference of two dumps, mapped to symbols, is an instruction profile of what the guest
//! kernel ran in between.
//!
//! The plugin API is C (qemu-plugin.h); the few functions used are declared here, against
//! plugin API version 4 (QEMU 9 and later accept it). The symbols resolve against the QEMU
//! binary when it loads the plugin.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

type PluginId = u64;

/// `struct qemu_plugin_tb`: opaque.
#[repr(C)]
pub struct Tb {
    _opaque: [u8; 0],
}

extern "C" {
    fn qemu_plugin_register_vcpu_tb_trans_cb(id: PluginId, cb: extern "C" fn(PluginId, *mut Tb));
    fn qemu_plugin_register_vcpu_tb_exec_cb(
        tb: *mut Tb,
        cb: extern "C" fn(c_uint, *mut c_void),
        flags: c_int,
        udata: *mut c_void,
    );
    fn qemu_plugin_tb_n_insns(tb: *const Tb) -> usize;
    fn qemu_plugin_tb_vaddr(tb: *const Tb) -> u64;
}

/// The plugin API version this plugin was written against.
#[no_mangle]
pub static qemu_plugin_version: c_int = 4;

/// Where x86_64 kernel text starts: blocks below it (user space) are not counted.
const KERNEL_TEXT: u64 = 0xffff_ffff_8000_0000;

/// One translated block: its address, its instructions and how often it ran.
struct Block {
    va: u64,
    insns: u64,
    runs: AtomicU64,
}

/// Every block seen, by (address, instructions): a block translated again counts on.
static BLOCKS: Mutex<Option<HashMap<(u64, u64), &'static Block>>> = Mutex::new(None);
/// A dump was asked for (by SIGUSR2); the next counted block writes it.
static DUMP: AtomicBool = AtomicBool::new(false);
/// The number of the next dump.
static DUMPS: AtomicUsize = AtomicUsize::new(0);
/// The output prefix (`out=`).
static OUT: Mutex<String> = Mutex::new(String::new());

extern "C" fn on_signal(_: c_int) {
    DUMP.store(true, Ordering::Relaxed);
}

fn dump() {
    let k = DUMPS.fetch_add(1, Ordering::Relaxed);
    let out = OUT.lock().map(|o| o.clone()).unwrap_or_default();
    let path = format!("{out}.{k}");
    let tmp = format!("{path}.tmp");
    let mut text = String::new();
    if let Ok(blocks) = BLOCKS.lock() {
        for b in blocks.iter().flat_map(|m| m.values()) {
            let runs = b.runs.load(Ordering::Relaxed);
            if runs > 0 {
                text.push_str(&format!("{:x} {} {runs}\n", b.va, b.insns));
            }
        }
    }
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(text.as_bytes()));
    if written.is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

extern "C" fn on_exec(_vcpu: c_uint, udata: *mut c_void) {
    // SAFETY: `udata` is the `&'static Block` registered with this callback in `on_translate`.
    let b = unsafe { &*(udata as *const Block) };
    b.runs.fetch_add(1, Ordering::Relaxed);
    if DUMP.swap(false, Ordering::Relaxed) {
        dump();
    }
}

extern "C" fn on_translate(_id: PluginId, tb: *mut Tb) {
    // SAFETY: QEMU passes a block being translated, valid for this callback.
    let (va, insns) = unsafe { (qemu_plugin_tb_vaddr(tb), qemu_plugin_tb_n_insns(tb) as u64) };
    if va < KERNEL_TEXT {
        return;
    }
    let Ok(mut blocks) = BLOCKS.lock() else {
        return;
    };
    let b: &'static Block = *blocks
        .get_or_insert_with(HashMap::new)
        .entry((va, insns))
        .or_insert_with(|| {
            Box::leak(Box::new(Block {
                va,
                insns,
                runs: AtomicU64::new(0),
            }))
        });
    // SAFETY: `tb` is the block being translated; the callback gets a pointer to a block that
    // is never freed.
    unsafe {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, 0, b as *const Block as *mut c_void)
    };
}

/// Called by QEMU when it loads the plugin; `argv` holds `out=PREFIX`.
///
/// # Safety
///
/// QEMU passes `argc` valid NUL-terminated strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: PluginId,
    _info: *const c_void,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    for i in 0..argc.max(0) as usize {
        // SAFETY: the caller passes `argc` valid strings.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) }.to_string_lossy();
        if let Some(p) = arg.strip_prefix("out=") {
            if let Ok(mut o) = OUT.lock() {
                *o = p.to_string();
            }
        }
    }
    if OUT.lock().map(|o| o.is_empty()).unwrap_or(true) {
        return -1;
    }
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe { libc::signal(libc::SIGUSR2, on_signal as *const () as libc::sighandler_t) };
    // SAFETY: registering a callback with the id QEMU gave us.
    unsafe { qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate) };
    0
}
