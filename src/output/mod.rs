//! Where rows end up. A row format is a [`Format`] (its names, its layout — one file or a
//! directory of parts — and per layout its writer, reader and copier), one type per format in
//! its room — `csv_rows`, `jsonl`, `parquet` (private: reached only through the trait) — and
//! [`formats`] the one list they are looked up in; code outside `output/` holds a
//! `&'static dyn Format` and never names one.
//! `open` is the supervisor's one door (locks, `--overwrite`, and [`resume`], which prepares an
//! interrupted run's output for appending); the [`writer`]'s row loop is the only place rows are
//! written, the [`reader`] façade the only place they are read back (`--resume`, `merge`, the
//! tests); `rows` is a row as read back; `target` where rows go; [`bodies`] is the directory of
//! `--bodies-dir`, [`lock`] the output lock, [`job_record`] what the output was written from,
//! [`batch`] carries records from the pipe readers to the writer. This file only declares the
//! rooms: none imports it.

mod arrow;
mod arrow_copy;
pub mod batch;
mod batch_rows;
pub mod bodies;
mod columns;
mod csv_rows;
mod format;
pub mod formats;
pub mod job_record;
mod jsonl;
pub mod lock;
mod open;
mod parquet;
pub mod reader;
pub mod resume;
mod rows;
mod target;
pub mod writer;

pub use arrow_copy::ArrowCopyTo;
pub use format::{CopyRows, FileFormat, Format, Layout, Named, NotOurs, PartsFormat};
pub use open::{Kept, OpenError, Opened, Spec, WriteMode, open};
pub use reader::rows_on_disk;
pub use target::{Output, directory_of};
