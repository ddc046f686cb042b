//! Where a run's rows and documents go, checked before anything is fetched: the output's name
//! says the format written, an existing file is not clobbered (or is resumed), and no file of
//! the run is another of its files.

use std::path::Path;

use crate::cli::RunArgs;
use crate::document;
use crate::failed::FailedRows;
use crate::nodes::{self, Node};
use crate::output::{Format, Named, Output, WriteMode, directory_of, formats};

use super::error::ConfigError;

pub(super) fn write_mode(args: &RunArgs) -> Result<WriteMode, ConfigError> {
    Ok(if args.resume {
        WriteMode::Resume {
            retry_failed: args
                .retry_failed
                .as_deref()
                .map(FailedRows::parse)
                .transpose()
                .map_err(ConfigError::RetryFailed)?,
        }
    } else if args.overwrite {
        WriteMode::Overwrite
    } else {
        WriteMode::New
    })
}

/// Where rows go and in which format; refused when the output cannot take this run's rows
/// (an existing file without `--resume` or `--overwrite`, a directory of parts on stdout, a
/// directory that holds files ringscrape did not write).
pub(super) fn output_of(
    args: &RunArgs,
    node: Option<&Node>,
    mode: WriteMode,
) -> Result<(Output, &'static dyn Format), ConfigError> {
    let output = if args.output.as_os_str() == "-" {
        Output::Stdout
    } else {
        Output::File(nodes::expand_path("output", &args.output, node)?)
    };
    if let Output::File(path) = &output {
        check_output_name(path, args.format)?;
    }
    let format = args.format.unwrap_or(match &output {
        Output::File(path) => formats::of_path(path),
        Output::Stdout => formats::default(),
    });
    if format.is_parts() && output == Output::Stdout {
        return Err(ConfigError::PartsOnStdout(format));
    }
    // Rows go into a file; only a format of parts goes into a directory.
    if let Output::File(path) = &output
        && !format.is_parts()
        && path.is_dir()
    {
        return Err(ConfigError::OutputIsDir(path.clone()));
    }
    check_output(&output, mode)?;
    if let Output::File(path) = &output
        && mode == WriteMode::Overwrite
    {
        format
            .check_replaceable(path)
            .map_err(|e| ConfigError::NotOurs(path.clone(), e))?;
    }
    Ok((output, format))
}

/// `--arrow-copy`: stdout, or a file (created, or replaced: it holds one run's rows) that is
/// not the output; never stdout twice.
pub(super) fn arrow_copy_of(
    args: &RunArgs,
    output: &Output,
) -> Result<Option<Output>, ConfigError> {
    let Some(path) = &args.arrow_copy else {
        return Ok(None);
    };
    if path.as_os_str() == "-" {
        return match output {
            Output::Stdout => Err(ConfigError::ArrowCopyOnStdout),
            Output::File(_) => Ok(Some(Output::Stdout)),
        };
    }
    if path.is_dir() {
        return Err(ConfigError::ArrowCopyIsDir(path.clone()));
    }
    if let Output::File(rows) = output
        && (rows == path || same_file(rows, path))
    {
        return Err(ConfigError::ArrowCopyIsOutput(path.clone()));
    }
    Ok(Some(Output::File(path.clone())))
}

/// Both paths name one existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// What `-o` names is what is written: a name of another kind of file (`.tsv`, `.json`,
/// `.csv.gz`), or of another format than `--format`'s, is refused rather than filled with rows
/// its readers would misread.
pub(super) fn check_output_name(
    path: &Path,
    given: Option<&'static dyn Format>,
) -> Result<(), ConfigError> {
    match formats::named_by(path) {
        Some(Named::Unwritten(why)) => Err(ConfigError::OutputKind(path.to_path_buf(), why)),
        Some(Named::Rows(named)) => match given {
            Some(given) if given != named => Err(ConfigError::FormatAgainstName {
                path: path.to_path_buf(),
                named,
                given,
                suggested: path.with_extension(given.extension()).display().to_string(),
            }),
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

/// `--metrics` is an address, `--summary-json` and `--report` can be written where they point,
/// and no file of the run is another of its files.
pub(super) fn check_reports(
    args: &RunArgs,
    documents: &[(&'static str, Option<&Path>)],
    output: &Output,
    format: &dyn Format,
) -> Result<(), ConfigError> {
    for &(flag, path) in documents {
        if let Some(path) = path {
            let dir = directory_of(path);
            if !dir.is_dir() {
                return Err(ConfigError::ReportDir(
                    flag,
                    path.to_path_buf(),
                    dir.to_path_buf(),
                ));
            }
            // Found now, not after the whole run has been fetched.
            document::check_writable(path)
                .map_err(|e| ConfigError::Unwritable(flag, path.to_path_buf(), e))?;
        }
    }
    check_apart(args, documents, output, format)
}

/// The run's files by flag, for [`document::check_apart`].
pub(super) fn check_apart(
    args: &RunArgs,
    documents: &[(&'static str, Option<&Path>)],
    output: &Output,
    format: &dyn Format,
) -> Result<(), ConfigError> {
    let inputs = args.items.files();
    let files = document::RunFiles {
        rows: match output {
            Output::File(path) => Some(path.as_path()),
            Output::Stdout => None,
        },
        rows_are_parts: format.is_parts(),
        // Standard input is no file to clash with.
        inputs: inputs
            .filter(|(_, path)| path.as_os_str() != "-")
            .map(|(f, p)| (f, p.as_path()))
            .collect(),
        documents: documents
            .iter()
            .filter_map(|&(f, p)| Some((f, p?)))
            .collect(),
    };
    Ok(document::check_apart(&files)?)
}

/// Refuses to clobber an existing file by accident, and catches a missing directory before any
/// request is made. (Whether the file can really be created is learnt by creating it.)
pub(super) fn check_output(output: &Output, mode: WriteMode) -> Result<(), ConfigError> {
    let path = match output {
        Output::File(path) => path,
        Output::Stdout if matches!(mode, WriteMode::Resume { .. }) => {
            return Err(ConfigError::ResumeStdout);
        }
        Output::Stdout => return Ok(()),
    };
    if path.exists() && mode == WriteMode::New {
        return Err(ConfigError::OutputExists(path.clone()));
    }
    let dir = directory_of(path);
    if !dir.is_dir() {
        return Err(ConfigError::NoOutputDir(path.clone(), dir.to_path_buf()));
    }
    Ok(())
}
