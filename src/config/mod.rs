//! Flags (the command line over the config file, merged in `cli`) → one validated
//! [`RunConfig`]. All input checks live here; deeper code trusts what it is handed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::assignment::Fetch;
use crate::cli::{Concurrency, KeepArg, RunArgs};
use crate::failed::{FailedRows, MaxFailed};
use crate::ids::IdRange;
use crate::job::{KeyFile, Product};
use crate::merge::Keep;
use crate::model::{BodyColumn, RequestLimits, RetryPolicy};
use crate::net::NetSpec;
use crate::nodes::{self, Node};
use crate::output::Format;
use crate::output::Output;
use crate::output::WriteMode;
use crate::output::job_record::JobRequest;
use crate::request::RequestTemplate;
use crate::tls::{self, Trust};
use crate::verbosity::Verbosity;

mod error;
mod items;
mod output;
mod request;

pub use error::ConfigError;
use error::{MAX_BODY_LIMIT, MAX_CONCURRENCY, MAX_INLINE_BODY, MAX_RETRIES};

use items::{Items, items_of};
use output::{check_reports, output_of, write_mode};
use request::{request_spec, schema};

/// The most `--concurrency auto` lets one worker reach.
pub const AUTO_CONCURRENCY_MAX: usize = 1024;

/// A run that has passed every check.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// What every worker is told alike (request, trust, columns, limits, retries…).
    pub fetch: Fetch,
    /// `--rate`: requests per second across all shards.
    pub rate: Option<f64>,
    /// `--metrics`: where to serve Prometheus text during the run.
    pub metrics: Option<String>,
    /// `--dashboard`: where to serve the live page (IP:PORT).
    pub dashboard: Option<String>,
    /// `--report`: the HTML report written when the run ends.
    pub report: Option<PathBuf>,
    /// `--summary-json`: where the closing figures go as JSON.
    pub summary_json: Option<PathBuf>,
    /// `--abort-after`: stop after this many ids in a row end in transport errors (0: never).
    pub abort_after: u64,
    /// `--max-failed`: the share of failed rows above which the run exits 4.
    pub max_failed: Option<MaxFailed>,
    /// Item indexes: the ids of `--ids`, or the line numbers of `--ids-file`; only this node's
    /// slice of them when the job spans several nodes.
    pub ids: IdRange,
    /// This machine's place when the job spans several nodes.
    pub node: Option<Node>,
    /// `--ids-file`, scanned.
    pub key_file: Option<KeyFile>,
    /// `--keys` (with `--ids` when given), scanned.
    pub product: Option<Product>,
    /// Standard input copied to a file for `--ids-file -` or `--keys -`; deleted when the run
    /// ends.
    pub stdin_spool: Option<Arc<tempfile::TempPath>>,
    pub shards: usize,
    pub output: Output,
    /// `--auth-command`: credentials from a command, refreshed.
    pub auth: Option<AuthSpec>,
    /// `--format`, else from the output's extension (CSV for stdout).
    pub format: &'static dyn Format,
    /// `--part-rows`: rows per Parquet part.
    pub part_rows: usize,
    pub mode: WriteMode,
    pub progress: bool,
    /// What the output remembers of the job, compared on `--resume`.
    pub job: JobRequest,
}

/// `--auth-command` and when to run it again.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthSpec {
    /// Run with `sh -c`.
    pub command: String,
    /// `--auth-refresh`: run again this often (besides on `401`s).
    pub refresh: Option<Duration>,
    /// `--auth-timeout`: a run that takes longer fails.
    pub timeout: Duration,
}

pub fn seconds(flag: &'static str, secs: f64) -> Result<Duration, ConfigError> {
    if secs.is_finite() && secs > 0.0 && secs < 1e9 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(ConfigError::BadDuration(flag, secs))
    }
}

/// Fewest requests per second `--rate` takes: one every 1,000 s. (Below, the pause between two
/// requests is no time a clock can add.)
const MIN_RATE: f64 = 1e-3;

fn positive_rate(rate: f64) -> Result<f64, ConfigError> {
    if rate.is_finite() && (MIN_RATE..=1e9).contains(&rate) {
        Ok(rate)
    } else {
        Err(ConfigError::Rate(rate))
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

/// Checks every flag and converts it into the run's settings.
pub fn resolve(args: &RunArgs) -> Result<RunConfig, ConfigError> {
    let mut request = request_spec(args)?;
    let trust = Trust {
        ca_cert: args.ca_cert.clone(),
        insecure: args.insecure,
    };
    tls::check(&trust)?;
    let node = Node::find(args.node_index, args.node_count, |name| {
        std::env::var(name).ok()
    })?;
    if args.ids.is_none() && args.ids_file.is_none() && args.keys.is_empty() {
        return Err(ConfigError::MissingIds);
    }
    let shards = at_least_one("shards", args.shards.unwrap_or_else(default_shards))?;
    let (concurrency, auto_concurrency) = concurrency_of(args)?;
    let limits = limits_of(args)?;
    let retry = retry_of(args)?;
    let mode = write_mode(args)?;
    let (output, format) = output_of(args, node.as_ref(), mode)?;
    // `{node}` fills these names as it fills `-o`'s: each node writes its own.
    let document = |flag, path: &Option<PathBuf>| {
        path.as_deref()
            .map(|path| nodes::expand_path(flag, path, node.as_ref()))
            .transpose()
    };
    let summary_json = document("summary-json", &args.summary_json)?;
    let report = document("report", &args.report)?;
    let documents = [
        ("summary-json", summary_json.as_deref()),
        ("report", report.as_deref()),
    ];
    check_reports(args, &documents, &output, format)?;
    let metrics = args
        .metrics
        .as_deref()
        .map(|text| listen_addr("metrics", text))
        .transpose()?;
    let dashboard = args
        .dashboard
        .as_deref()
        .map(|text| listen_addr("dashboard", text))
        .transpose()?;
    // Late, as it may read a large file (or all of standard input).
    let Items {
        ids,
        key_file,
        product,
        stdin_spool,
    } = items_of(args, node.as_ref())?;
    // The key files name the placeholders and columns: the template and the schema come after.
    if let Some(product) = &product {
        request.key_columns = product.columns().into_iter().map(|c| c.name).collect();
    }
    crate::placeholders::check(&request, product.as_ref())?;
    // Compiled here to refuse a bad template before any worker starts (each worker compiles it
    // again from the spec).
    let template = RequestTemplate::compile(&request)?;
    if args.http2 && template.host_varies() {
        return Err(ConfigError::Http2PerHost);
    }
    if args.http2
        && let Some(name) = template.connection_specific_header()
    {
        return Err(ConfigError::Http2ConnectionHeader(name));
    }
    let schema = schema(args, node.as_ref(), product.as_ref())?;
    if matches!(schema.body, BodyColumn::Inline(_)) && args.max_body > MAX_INLINE_BODY {
        return Err(ConfigError::InlineBody(args.max_body));
    }
    // Standard input is one stream: one shard reads it.
    let shards = if stdin_spool.is_some() && key_file.is_some() {
        1
    } else {
        shards
    };
    let net = net_of(args, &template)?;
    let job = JobRequest::new(&request, &args.headers, &schema, format, ids);
    Ok(RunConfig {
        fetch: Fetch {
            request,
            trust,
            schema,
            follow_redirects: args.follow_redirects,
            http2: args.http2,
            concurrency,
            auto_concurrency,
            raw_body: args.raw_body,
            net,
            grace: seconds("grace", args.grace)?,
            limits,
            retry,
            verbosity: verbosity_of(args),
            auth: args.auth_command.is_some(),
        },
        auth: auth_of(args)?,
        rate: args.rate.map(positive_rate).transpose()?,
        abort_after: args.abort_after,
        max_failed: args.max_failed.map(|limit| MaxFailed {
            limit,
            counts: match mode {
                WriteMode::Resume {
                    retry_failed: Some(counts),
                } if args
                    .retry_failed
                    .as_deref()
                    .is_some_and(|list| !list.is_empty()) =>
                {
                    counts
                }
                _ => FailedRows::AT_LEAST_400,
            },
        }),
        summary_json,
        metrics,
        dashboard,
        report,
        ids,
        node,
        key_file,
        product,
        stdin_spool,
        // More shards than ids would only start idle processes.
        shards: shards.min(usize::try_from(ids.len()).unwrap_or(usize::MAX)),
        output,
        format,
        part_rows: at_least_one("part-rows", args.part_rows)?,
        mode,
        progress: !args.no_progress && !args.quiet,
        job,
    })
}

/// Shortest `--auth-refresh`.
const MIN_AUTH_REFRESH: Duration = Duration::from_secs(1);

/// `--auth-command` with its refresh period and timeout.
fn auth_of(args: &RunArgs) -> Result<Option<AuthSpec>, ConfigError> {
    let Some(command) = &args.auth_command else {
        return Ok(None);
    };
    if command.trim().is_empty() {
        return Err(ConfigError::EmptyAuthCommand);
    }
    let refresh = args
        .auth_refresh
        .map(|secs| seconds("auth-refresh", secs))
        .transpose()?;
    // Each run is a process and often a call to a token service: below a second it ran 300
    // times in 2 s.
    if let Some(every) = refresh.filter(|every| *every < MIN_AUTH_REFRESH) {
        return Err(ConfigError::AuthRefreshTooShort(format!(
            "{} s",
            every.as_secs_f64()
        )));
    }
    Ok(Some(AuthSpec {
        command: command.clone(),
        refresh,
        timeout: seconds("auth-timeout", args.auth_timeout)?,
    }))
}

/// In-flight requests per worker: a fixed number, or `auto` (found during the run, up to
/// [`AUTO_CONCURRENCY_MAX`]).
fn concurrency_of(args: &RunArgs) -> Result<(usize, bool), ConfigError> {
    let (concurrency, auto_concurrency) = match args.concurrency {
        Concurrency::Auto => (AUTO_CONCURRENCY_MAX, true),
        Concurrency::Fixed(n) => (n, false),
    };
    let concurrency = at_least_one("concurrency", concurrency)?;
    if concurrency > MAX_CONCURRENCY {
        return Err(ConfigError::TooMuchConcurrency(concurrency));
    }
    Ok((concurrency, auto_concurrency))
}

fn limits_of(args: &RunArgs) -> Result<RequestLimits, ConfigError> {
    if args.max_body == 0 || args.max_body > MAX_BODY_LIMIT {
        return Err(ConfigError::MaxBody(args.max_body));
    }
    Ok(RequestLimits {
        timeout: seconds("timeout", args.timeout)?,
        connect_timeout: seconds("connect-timeout", args.connect_timeout)?,
        max_body_bytes: args.max_body as usize,
        body_memory_bytes: usize::try_from(args.body_memory).unwrap_or(usize::MAX),
    })
}

fn retry_of(args: &RunArgs) -> Result<RetryPolicy, ConfigError> {
    if args.retries > MAX_RETRIES {
        return Err(ConfigError::Retries(args.retries));
    }
    Ok(RetryPolicy {
        retries: args.retries,
        base: seconds("retry-base", args.retry_base)?,
        cap: seconds("retry-cap", args.retry_cap)?,
        max_retry_after: seconds("max-retry-after", args.max_retry_after)?,
    })
}

fn verbosity_of(args: &RunArgs) -> Verbosity {
    if args.quiet {
        Verbosity::Quiet
    } else if args.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    }
}

/// `--dashboard` and `--metrics` as addresses to bind, read as `serve --listen` reads its own.
fn listen_addr(flag: &'static str, text: &str) -> Result<String, ConfigError> {
    crate::listen_addr::parse(text)
        .map(|addr| addr.to_string())
        .ok_or_else(|| ConfigError::ListenAddr(flag, text.to_string()))
}

/// Source addresses, pinned names, proxies and DNS refresh, checked against the target.
fn net_of(args: &RunArgs, template: &RequestTemplate) -> Result<NetSpec, ConfigError> {
    let net = NetSpec::parse(&args.local_addr, &args.resolve, &args.connect_to)?
        .check_local_addrs()?
        .with_proxies(args.proxy.as_deref(), |name| std::env::var(name).ok())?
        .with_proxy_file(args.proxy_file.as_deref(), args.proxy.as_deref())?
        .with_dns_refresh(seconds("dns-refresh", args.dns_refresh)?);
    if !template.host_varies() {
        let origin = &template.origin;
        let https = origin.scheme == crate::request::Scheme::Https;
        net.check_source_family(&origin.host, origin.port, https)?;
    }
    Ok(net)
}

// The command line's own enums, as the rest of the program knows them.

impl From<KeepArg> for Keep {
    fn from(keep: KeepArg) -> Keep {
        match keep {
            KeepArg::First => Keep::First,
            KeepArg::Last => Keep::Last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn args(extra: &[&str]) -> RunArgs {
        let base = [
            "ringscrape",
            "run",
            "-u",
            "http://127.0.0.1:1/log?id={id}",
            "-i",
            "0..10",
            "-o",
            "-",
        ];
        match Cli::try_parse_from(base.iter().chain(extra))
            .expect("valid flags")
            .command
        {
            Command::Run(run) => run,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn defaults_come_from_the_flag_declarations() {
        let cfg = resolve(&args(&[])).expect("valid config");
        assert_eq!(cfg.fetch.concurrency, 256);
        assert_eq!(cfg.fetch.limits.timeout, Duration::from_secs(30));
        assert_eq!(cfg.fetch.limits.connect_timeout, Duration::from_secs(10));
        assert_eq!(cfg.fetch.limits.max_body_bytes, 16 << 20);
        assert_eq!(cfg.fetch.retry.retries, 2);
        assert_eq!(cfg.output, Output::Stdout);
        assert!(cfg.progress);
    }

    #[test]
    fn shards_never_exceed_ids() {
        let cfg = resolve(&args(&["-s", "64"])).expect("valid config");
        assert_eq!(cfg.shards, 10);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let err = resolve(&args(&["-c", "0"])).expect_err("zero concurrency");
        assert_eq!(err.to_string(), "--concurrency 0: must be at least 1");
        assert!(matches!(
            resolve(&args(&["--timeout", "-1"])),
            Err(ConfigError::BadDuration("timeout", _))
        ));
        let mut no_url = args(&[]);
        no_url.url = None;
        assert!(matches!(resolve(&no_url), Err(ConfigError::MissingUrl)));
    }
}
