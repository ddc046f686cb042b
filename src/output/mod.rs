//! Where rows end up: the CSV [`writer`] (the only place rows are written), the CSV [`reader`]
//! (the only place they are read back), the [`bodies`] directory of `--bodies-dir`, and
//! [`resume`], which uses the reader to prepare an interrupted run's file for appending.

use std::path::PathBuf;

pub mod bodies;
pub mod lock;
pub mod reader;
pub mod resume;
pub mod writer;

/// Where rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}
