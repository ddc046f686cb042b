//! Where rows end up. One room per format — [`csv_rows`], [`jsonl`], [`parquet`] — each
//! writing its rows (`WriteRows`) and reading them back (`ReadRows`); `open` is the
//! supervisor's one door (locks, `--overwrite`, and [`resume`], which prepares an interrupted
//! run's output for appending); the [`writer`]'s row loop is the only place rows are written,
//! the [`reader`] façade the only place they are read back (`--resume`, `merge`, the tests);
//! `rows` is a row as read back; [`bodies`] is the directory of `--bodies-dir`, [`lock`] the
//! output lock, [`job_record`] what the output was written from, [`batch`] carries records from the pipe readers to the writer, and `format`
//! names the formats and outputs every room shares. This file only declares the rooms: none
//! imports it.

pub mod batch;
pub mod bodies;
pub mod csv_rows;
mod format;
pub mod job_record;
pub mod jsonl;
pub mod lock;
mod open;
pub mod parquet;
pub mod reader;
pub mod resume;
mod rows;
pub mod writer;

pub use format::{Named, Output, RowFormat, directory_of};
pub use open::{Kept, OpenError, Opened, Spec, WriteMode, open};
pub use reader::rows_on_disk;
