// SPDX-License-Identifier: GPL-2.0
//! One module per command: each holds its command's entry point and what only it uses.

pub(crate) mod bench;
pub(crate) mod fixes;
pub(crate) mod long;
pub(crate) mod profile;
pub(crate) mod run;
pub(crate) mod series;
pub(crate) mod test;
pub(crate) mod zdtm;

pub(crate) use bench::*;
pub(crate) use fixes::*;
pub(crate) use long::*;
pub(crate) use profile::*;
pub(crate) use run::*;
pub(crate) use series::*;
pub(crate) use test::*;
