//! Where rows end up: the [`writer`]'s row loop (the only place rows are written) over a row
//! format — [`csv_rows`], [`jsonl`] or [`parquet`] — the [`reader`] of every format (the only
//! place rows are read back), the [`bodies`] directory of `--bodies-dir`, the output [`lock`],
//! and [`resume`], which uses the reader to prepare an interrupted run's output for appending.
//! [`batch`] carries records from the pipe readers to the writer; `format` names the formats
//! and outputs every room here shares. This file only declares the rooms: none imports it.

pub mod batch;
pub mod bodies;
pub mod csv_rows;
mod format;
pub mod jsonl;
pub mod lock;
mod open;
pub mod parquet;
pub mod reader;
pub mod resume;
mod rows;
pub mod writer;

pub use format::{Output, RowFormat, directory_of};
pub use open::{OpenError, Opened, Spec, WriteMode, open};
pub use reader::rows_on_disk;
