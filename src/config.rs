//! Config file + command-line flags → one validated [`RunConfig`]. All input checks live here;
//! deeper code trusts what it is handed.
//!
//! Precedence: flag, then config file (`--config`, or `config/default.toml` when present), then
//! the built-in default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::RunArgs;
use crate::ids::{IdRange, IdRangeError};
use crate::model::{RequestLimits, RetryPolicy};
use crate::template::{Template, TemplateError};

pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";
pub const DEFAULT_CONCURRENCY: usize = 256;
pub const DEFAULT_OUTPUT: &str = "results.csv";
pub const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
pub const DEFAULT_CONNECT_TIMEOUT_SECS: f64 = 10.0;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 << 20;
pub const DEFAULT_RETRIES: u32 = 2;
pub const DEFAULT_RETRY_BASE_SECS: f64 = 0.1;
pub const DEFAULT_RETRY_CAP_SECS: f64 = 10.0;
pub const DEFAULT_MAX_RETRY_AFTER_SECS: f64 = 60.0;
pub const DEFAULT_GRACE_SECS: f64 = 2.0;
/// A body limit beyond this is a typo: bodies are held in memory, one per in-flight request.
const MAX_BODY_LIMIT: u64 = 1 << 32;
/// Attempts are counted in 16 bits on the wire.
const MAX_RETRIES: u32 = 1000;
/// Far above what one core can drive; a typo guard, the fd limit check does the real work.
const MAX_CONCURRENCY: usize = 1 << 20;

/// The keys a config file may set; every one is optional and documented in
/// `config/default.toml`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub url: Option<String>,
    pub ids: Option<String>,
    pub shards: Option<usize>,
    pub concurrency: Option<usize>,
    pub output: Option<PathBuf>,
    pub progress: Option<bool>,
    pub timeout: Option<f64>,
    pub connect_timeout: Option<f64>,
    pub max_body: Option<u64>,
    pub retries: Option<u32>,
    pub retry_base: Option<f64>,
    pub retry_cap: Option<f64>,
    pub max_retry_after: Option<f64>,
    pub grace: Option<f64>,
}

/// Where rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    File(PathBuf),
}

/// What to do with an output file that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Refuse to start if it exists.
    New,
    /// Replace it.
    Overwrite,
    /// Keep its rows and fetch only the ids without one (or without a 2xx, with `retry_failed`).
    Resume { retry_failed: bool },
}

/// A run that has passed every check.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub template: Template,
    pub ids: IdRange,
    pub shards: usize,
    pub concurrency: usize,
    pub output: Output,
    pub mode: WriteMode,
    pub progress: bool,
    pub limits: RequestLimits,
    pub retry: RetryPolicy,
    pub grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("config file {0}: {1}")]
    Parse(PathBuf, String),
    #[error("--url is required (or `url` in the config file)")]
    MissingUrl,
    #[error("--ids is required (or `ids` in the config file), e.g. --ids 0..1000000")]
    MissingIds,
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Ids(#[from] IdRangeError),
    #[error("--{0} {1}: must be at least 1")]
    Zero(&'static str, usize),
    #[error("--concurrency {0}: more than {MAX_CONCURRENCY} in-flight requests per worker")]
    TooMuchConcurrency(usize),
    #[error("--{0} {1}: must be a positive number of seconds")]
    BadDuration(&'static str, f64),
    #[error("--output {0}: directory {1} does not exist")]
    NoOutputDir(PathBuf, PathBuf),
    #[error("--output {0}: file exists; pass --resume to complete it or --overwrite to replace it")]
    OutputExists(PathBuf),
    #[error("--resume needs --output FILE (it reads the rows already written)")]
    ResumeStdout,
    #[error("--max-body {0}: must be between 1 and {MAX_BODY_LIMIT} bytes")]
    MaxBody(u64),
    #[error("--retries {0}: at most {MAX_RETRIES}")]
    Retries(u32),
}

/// Reads the config file: the explicit one must exist; the default one is optional.
pub fn read_file_config(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let default = PathBuf::from(DEFAULT_CONFIG_PATH);
            if !default.exists() {
                return Ok(FileConfig::default());
            }
            default
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read(path.clone(), e))?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse(path, one_line(&e.to_string())))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn seconds(flag: &'static str, secs: f64) -> Result<Duration, ConfigError> {
    if secs.is_finite() && secs > 0.0 && secs < 1e9 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(ConfigError::BadDuration(flag, secs))
    }
}

fn at_least_one(flag: &'static str, value: usize) -> Result<usize, ConfigError> {
    if value == 0 {
        Err(ConfigError::Zero(flag, value))
    } else {
        Ok(value)
    }
}

fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Merges flags over the file config over defaults, and validates the result.
pub fn resolve(args: &RunArgs, file: FileConfig) -> Result<RunConfig, ConfigError> {
    let url = args
        .url
        .clone()
        .or(file.url)
        .ok_or(ConfigError::MissingUrl)?;
    let template = Template::compile(&url)?;
    let ids: IdRange = args
        .ids
        .clone()
        .or(file.ids)
        .ok_or(ConfigError::MissingIds)?
        .parse()?;
    let shards = at_least_one(
        "shards",
        args.shards.or(file.shards).unwrap_or_else(default_shards),
    )?;
    let concurrency = at_least_one(
        "concurrency",
        args.concurrency
            .or(file.concurrency)
            .unwrap_or(DEFAULT_CONCURRENCY),
    )?;
    if concurrency > MAX_CONCURRENCY {
        return Err(ConfigError::TooMuchConcurrency(concurrency));
    }
    let secs = |flag, cli: Option<f64>, file: Option<f64>, default| {
        seconds(flag, cli.or(file).unwrap_or(default))
    };
    let max_body = args
        .max_body
        .or(file.max_body)
        .unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body == 0 || max_body > MAX_BODY_LIMIT {
        return Err(ConfigError::MaxBody(max_body));
    }
    let limits = RequestLimits {
        timeout: secs("timeout", args.timeout, file.timeout, DEFAULT_TIMEOUT_SECS)?,
        connect_timeout: secs(
            "connect-timeout",
            args.connect_timeout,
            file.connect_timeout,
            DEFAULT_CONNECT_TIMEOUT_SECS,
        )?,
        max_body_bytes: max_body as usize,
    };
    let retries = args.retries.or(file.retries).unwrap_or(DEFAULT_RETRIES);
    if retries > MAX_RETRIES {
        return Err(ConfigError::Retries(retries));
    }
    let retry = RetryPolicy {
        retries,
        base: secs(
            "retry-base",
            args.retry_base,
            file.retry_base,
            DEFAULT_RETRY_BASE_SECS,
        )?,
        cap: secs(
            "retry-cap",
            args.retry_cap,
            file.retry_cap,
            DEFAULT_RETRY_CAP_SECS,
        )?,
        max_retry_after: secs(
            "max-retry-after",
            args.max_retry_after,
            file.max_retry_after,
            DEFAULT_MAX_RETRY_AFTER_SECS,
        )?,
    };
    let grace = secs("grace", args.grace, file.grace, DEFAULT_GRACE_SECS)?;
    let mode = if args.resume {
        WriteMode::Resume {
            retry_failed: args.retry_failed,
        }
    } else if args.overwrite {
        WriteMode::Overwrite
    } else {
        WriteMode::New
    };
    let output = match args.output.clone().or(file.output) {
        Some(path) if path.as_os_str() == "-" => Output::Stdout,
        Some(path) => Output::File(path),
        None => Output::File(PathBuf::from(DEFAULT_OUTPUT)),
    };
    check_output(&output, mode)?;
    Ok(RunConfig {
        template,
        ids,
        // More shards than ids would only start idle processes.
        shards: shards.min(usize::try_from(ids.len()).unwrap_or(usize::MAX)),
        concurrency,
        output,
        mode,
        progress: !args.no_progress && file.progress.unwrap_or(true),
        limits,
        retry,
        grace,
    })
}

/// Refuses to clobber an existing file by accident, and catches a missing directory before any
/// request is made. (Whether the file can really be created is learnt by creating it.)
fn check_output(output: &Output, mode: WriteMode) -> Result<(), ConfigError> {
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
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(ConfigError::NoOutputDir(path.clone(), dir.to_path_buf()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RunArgs {
        RunArgs {
            url: Some("http://127.0.0.1:1/log?id={id}".into()),
            ids: Some("0..10".into()),
            output: Some("-".into()),
            ..RunArgs::default()
        }
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: FileConfig = toml::from_str(
            "url = 'http://file/{id}'\nids = '0..99'\nconcurrency = 64\nshards = 3\ntimeout = 5.5\nprogress = false",
        )
        .expect("valid toml");
        let mut flags = args();
        flags.concurrency = Some(128);
        let cfg = resolve(&flags, file).expect("valid config");
        assert_eq!(
            cfg.template.as_str(),
            "http://127.0.0.1:1/log?id={id}",
            "flag wins"
        );
        assert_eq!(cfg.ids, IdRange::new(0, 10), "flag wins");
        assert_eq!(cfg.concurrency, 128, "flag wins");
        assert_eq!(cfg.shards, 3, "file value used when no flag");
        assert_eq!(
            cfg.limits.timeout,
            Duration::from_millis(5500),
            "file value used"
        );
        assert_eq!(
            cfg.limits.connect_timeout,
            Duration::from_secs(10),
            "default when neither"
        );
        assert!(!cfg.progress, "file can turn progress off");
    }

    #[test]
    fn shards_never_exceed_ids() {
        let mut flags = args();
        flags.shards = Some(64);
        let cfg = resolve(&flags, FileConfig::default()).expect("valid config");
        assert_eq!(cfg.shards, 10);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let mut zero = args();
        zero.concurrency = Some(0);
        let err = resolve(&zero, FileConfig::default()).expect_err("zero concurrency");
        assert_eq!(err.to_string(), "--concurrency 0: must be at least 1");

        let mut timeout = args();
        timeout.timeout = Some(-1.0);
        assert!(matches!(
            resolve(&timeout, FileConfig::default()),
            Err(ConfigError::BadDuration("timeout", _))
        ));

        let mut no_url = args();
        no_url.url = None;
        assert!(matches!(
            resolve(&no_url, FileConfig::default()),
            Err(ConfigError::MissingUrl)
        ));
    }

    #[test]
    fn unknown_config_keys_are_an_error() {
        assert!(toml::from_str::<FileConfig>("concurency = 5").is_err());
    }

    #[test]
    fn the_shipped_default_config_parses() {
        let text = include_str!("../config/default.toml");
        let file: FileConfig = toml::from_str(text).expect("config/default.toml is valid");
        assert_eq!(file.concurrency, Some(DEFAULT_CONCURRENCY));
    }
}
