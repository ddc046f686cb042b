//! The [`Job`] from `--ids`, `--ids-file`, `--keys` or `--urls` (and their product), and this
//! node's slice of it.

use std::sync::Arc;

use crate::cli::RunArgs;
use crate::ids::IdRange;
use crate::job::{self, Job, KeyFile, Product, RecordFile, RecordFormat};
use crate::nodes::Node;

use super::error::ConfigError;

/// Refuses a run with no source of items, early: before any file is read.
pub(super) fn check_given(args: &RunArgs) -> Result<(), ConfigError> {
    let items = &args.items;
    if items.ids.is_none()
        && items.ids_file.is_none()
        && items.keys.is_empty()
        && items.urls.is_none()
    {
        return Err(ConfigError::MissingIds);
    }
    Ok(())
}

/// The job, and this node's slice of it.
pub(super) fn job_of(args: &RunArgs, node: Option<&Node>) -> Result<Job, ConfigError> {
    let job = job_items(args)?;
    Ok(match node {
        Some(node) => {
            let slice = node.slice(job.items())?;
            job.restrict(slice)
        }
        None => job,
    })
}

/// The items: an id range, the lines of a file of keys, or key files with columns (standard
/// input is copied to a temporary file first, streamed).
pub(super) fn job_items(args: &RunArgs) -> Result<Job, ConfigError> {
    if !args.items.keys.is_empty() || args.items.urls.is_some() {
        return product_items(args);
    }
    let Some(path) = &args.items.ids_file else {
        let ids: IdRange = args
            .items
            .ids
            .as_deref()
            .ok_or(ConfigError::MissingIds)?
            .parse()?;
        return Ok(Job::range(ids));
    };
    let fail = |e| ConfigError::IdsFile(path.clone(), e);
    let (scan_path, spool) = if path.as_os_str() == "-" {
        let spool = job::spool_stdin().map_err(fail)?.into_temp_path();
        (spool.to_path_buf(), Some(Arc::new(spool)))
    } else {
        (path.clone(), None)
    };
    let keys = KeyFile::scan(&scan_path).map_err(fail)?;
    if keys.empty.count() == keys.lines {
        return Err(ConfigError::NoKeys(path.clone()));
    }
    Ok(Job::id_file(keys, spool))
}

/// The product of `--ids` (when given) and the `--keys` files (or the `--urls` file), each
/// scanned once.
pub(super) fn product_items(args: &RunArgs) -> Result<Job, ConfigError> {
    let ids = args
        .items
        .ids
        .as_deref()
        .map(str::parse::<IdRange>)
        .transpose()?;
    let mut files = Vec::with_capacity(args.items.keys.len());
    let mut stdin_spool = None;
    let keys = args
        .items
        .keys
        .iter()
        .map(|path| (path, RecordFormat::of_path(path)));
    let urls = args
        .items
        .urls
        .iter()
        .map(|path| (path, Some(RecordFormat::UrlLines)));
    for (path, format) in keys.chain(urls) {
        let format = format.ok_or_else(|| ConfigError::KeysFormat(path.clone()))?;
        let fail = |e| match format {
            RecordFormat::UrlLines => ConfigError::Urls(path.clone(), e),
            _ => ConfigError::Keys(path.clone(), e),
        };
        let scan_path = if path.as_os_str() == "-" {
            if stdin_spool.is_some() {
                return Err(ConfigError::KeysStdinTwice);
            }
            let spool = job::spool_stdin()
                .map_err(|e| fail(e.into()))?
                .into_temp_path();
            let scan_path = spool.to_path_buf();
            stdin_spool = Some(Arc::new(spool));
            scan_path
        } else {
            path.clone()
        };
        let shown = path.display().to_string();
        files.push(RecordFile::scan(&scan_path, &shown, format).map_err(fail)?);
    }
    let product = Product { ids, files };
    Ok(Job::key_files(product, stdin_spool)?)
}
