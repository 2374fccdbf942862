// SPDX-License-Identifier: GPL-2.0

//! Address spaces for the KUnit tests and the examples of this module.
//!
//! A KUnit test runs in a kthread without an address space: these helpers give it one
//! (`kunit_attach_mm()`) and map memory into it, so that a test or an example can walk it.

use super::*;
use crate::{
    error::to_result,
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

// Values of include/uapi/asm-generic/mman-common.h, which x86 uses.
const PROT_READ_WRITE: c_ulong = 0x1 | 0x2;
const MAP_PRIVATE_ANONYMOUS: c_ulong = 0x02 | 0x20;

/// Maps `pages` pages of anonymous memory in the test thread's own address space.
///
/// The address space is made by `kunit_attach_mm()` on first use and torn down when the test's
/// kthread exits. Fails with `EINVAL` outside a KUnit test.
pub fn map_anon(pages: usize) -> Result<usize> {
    if !crate::kunit::in_kunit_test() {
        return Err(EINVAL);
    }
    // SAFETY: Called from a KUnit test case, in its kthread.
    to_result(unsafe { bindings::kunit_attach_mm() })?;
    // SAFETY: `current->mm` is set; a NULL file maps anonymous memory.
    let addr = unsafe {
        bindings::vm_mmap(
            core::ptr::null_mut(),
            0,
            pages * PAGE_SIZE,
            PROT_READ_WRITE,
            MAP_PRIVATE_ANONYMOUS,
            0,
        )
    };
    // An errno comes back as a value within the last page of the address space.
    if addr == 0 || addr > usize::MAX - PAGE_SIZE {
        return Err(ENOMEM);
    }
    Ok(addr)
}

/// Unmaps `pages` pages from `addr` in the test thread's address space.
pub fn unmap(addr: usize, pages: usize) -> Result {
    with_mm(|_| {
        // SAFETY: `current->mm` is set (checked by `with_mm`); `vm_munmap()` takes its lock.
        to_result(unsafe { bindings::vm_munmap(addr, pages * PAGE_SIZE) })
    })
}

/// Writes one byte at `addr`, faulting the page in (and marking it soft-dirty).
pub fn write_byte(addr: usize) -> Result {
    UserSlice::new(UserPtr::from_addr(addr), 1)
        .writer()
        .write_slice(&[0x5a])
}

/// Runs `f` with the test thread's address space.
pub fn with_mm<R>(f: impl FnOnce(&MmWithUser) -> Result<R>) -> Result<R> {
    let task = crate::current!();
    let mm = task.mm().ok_or(EINVAL)?;
    f(mm)
}

/// Runs `f` on a mapping of `pages` pages whose pages at the indices in `written` were written.
///
/// `f` gets the test thread's address space and the mapping's start; the mapping is unmapped when
/// it returns.
pub fn with_mapping<R>(
    pages: usize,
    written: &[usize],
    f: impl FnOnce(&MmWithUser, usize) -> Result<R>,
) -> Result<R> {
    let start = map_anon(pages)?;
    let r = written
        .iter()
        .try_for_each(|&i| write_byte(start + i * PAGE_SIZE))
        .and_then(|()| with_mm(|mm| f(mm, start)));
    unmap(start, pages)?;
    r
}
