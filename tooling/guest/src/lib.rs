// SPDX-License-Identifier: GPL-2.0
//! Userspace side of `PAGEMAP_SCAN` (include/uapi/linux/fs.h) for the programs run in the
//! test guest, and small mm helpers they share.

use std::io;

pub const PAGE_IS_WPALLOWED: u64 = 1 << 0;
pub const PAGE_IS_WRITTEN: u64 = 1 << 1;
pub const PAGE_IS_FILE: u64 = 1 << 2;
pub const PAGE_IS_PRESENT: u64 = 1 << 3;
pub const PAGE_IS_SWAPPED: u64 = 1 << 4;
pub const PAGE_IS_PFNZERO: u64 = 1 << 5;
pub const PAGE_IS_HUGE: u64 = 1 << 6;
pub const PAGE_IS_SOFT_DIRTY: u64 = 1 << 7;
pub const PAGE_IS_GUARD: u64 = 1 << 8;
pub const PAGE_IS_ACCESSED: u64 = 1 << 9;
/// Every category the 7.3 ABI knows.
pub const PM_SCAN_CATEGORIES: u64 = (1 << 10) - 1;

pub const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
pub const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;

/// Category names, bit by bit.
pub const CATEGORY_NAMES: [&str; 10] = [
    "WPALLOWED",
    "WRITTEN",
    "FILE",
    "PRESENT",
    "SWAPPED",
    "PFNZERO",
    "HUGE",
    "SOFT_DIRTY",
    "GUARD",
    "ACCESSED",
];

/// `struct page_region`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PageRegion {
    pub start: u64,
    pub end: u64,
    pub categories: u64,
}

/// `struct pm_scan_arg`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PmScanArg {
    pub size: u64,
    pub flags: u64,
    pub start: u64,
    pub end: u64,
    pub walk_end: u64,
    pub vec: u64,
    pub vec_len: u64,
    pub max_pages: u64,
    pub category_inverted: u64,
    pub category_mask: u64,
    pub category_anyof_mask: u64,
    pub return_mask: u64,
}

const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

/// `_IOWR('f', 16, struct pm_scan_arg)`.
pub const PAGEMAP_SCAN: u64 = ((IOC_READ | IOC_WRITE) << 30)
    | ((std::mem::size_of::<PmScanArg>() as u64) << 16)
    | ((b'f' as u64) << 8)
    | 16;

/// Names of the categories set in `cats`, `|`-joined.
pub fn category_names(cats: u64) -> String {
    let v: Vec<&str> = (0..CATEGORY_NAMES.len())
        .filter(|b| cats & (1 << b) != 0)
        .map(|b| CATEGORY_NAMES[b])
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join("|")
    }
}

/// Issues `PAGEMAP_SCAN` on a pagemap fd; returns the ioctl's result (regions written).
pub fn pagemap_scan(fd: i32, arg: &mut PmScanArg) -> io::Result<usize> {
    // SAFETY: `arg` is a valid, exclusively borrowed pm_scan_arg for the duration of the call;
    // the kernel writes through `arg.vec`, which the caller set to a buffer of `vec_len` regions.
    let r = unsafe { libc::ioctl(fd, PAGEMAP_SCAN as _, arg as *mut PmScanArg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Scans `[start, end)` reporting `return_mask`, paging through `walk_end` with a vec of
/// `chunk` regions; returns every region.
pub fn scan_all(
    fd: i32,
    start: u64,
    end: u64,
    mask: (u64, u64, u64, u64),
    chunk: usize,
) -> io::Result<Vec<PageRegion>> {
    let (inverted, required, anyof, ret) = mask;
    let mut out = Vec::new();
    let mut vec = vec![PageRegion::default(); chunk.max(1)];
    let mut at = start;
    while at < end {
        let mut a = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            start: at,
            end,
            vec: vec.as_mut_ptr() as u64,
            vec_len: vec.len() as u64,
            category_inverted: inverted,
            category_mask: required,
            category_anyof_mask: anyof,
            return_mask: ret,
            ..Default::default()
        };
        let n = pagemap_scan(fd, &mut a)?;
        out.extend_from_slice(&vec[..n]);
        if a.walk_end <= at {
            break;
        }
        at = a.walk_end;
    }
    Ok(out)
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_sizes_and_ioctl_number() {
        assert_eq!(std::mem::size_of::<PmScanArg>(), 96);
        assert_eq!(std::mem::size_of::<PageRegion>(), 24);
        // _IOWR('f', 16, 96 bytes) as computed by the C headers.
        assert_eq!(PAGEMAP_SCAN, 0xc060_6610);
    }

    #[test]
    fn names() {
        assert_eq!(
            category_names(PAGE_IS_PRESENT | PAGE_IS_HUGE),
            "PRESENT|HUGE"
        );
        assert_eq!(category_names(0), "-");
        assert_eq!(category_names(PM_SCAN_CATEGORIES).matches('|').count(), 9);
    }
}
