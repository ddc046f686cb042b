//! Flags (the command line over the config file, merged in `cli`) → one validated
//! [`RunConfig`]. All input checks live here; deeper code trusts what it is handed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::assignment::{Fetch, HostLimits, RobotsPolicy};
use crate::cli::{Concurrency, KeepArg, RunArgs};
use crate::failed::{FailedRows, MaxFailed};
use crate::job::Job;
use crate::merge::Keep;
use crate::model::{BodyColumn, RequestLimits, RetryPolicy};
use crate::net::{NetSpec, Protocol};
use crate::nodes::{self, Node};
use crate::output::Format;
use crate::output::Output;
use crate::output::WriteMode;
use crate::output::job_record::JobRequest;
use crate::request::{RequestSpec, RequestTemplate};
use crate::tls::{self, Trust};
use crate::verbosity::Verbosity;

mod error;
mod items;
mod output;
mod request;

pub use error::ConfigError;
use error::{MAX_BODY_LIMIT, MAX_CONCURRENCY, MAX_INLINE_BODY, MAX_RETRIES};

use items::job_of;
use output::{arrow_copy_of, check_reports, output_of, write_mode};
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
    /// Pace by the quota the answers' rate-limit headers say (not `--no-rate-limit-headers`).
    pub rate_limit_headers: bool,
    /// `--metrics`: where to serve Prometheus text during the run.
    pub metrics: Option<SocketAddr>,
    /// `--dashboard`: where to serve the live page.
    pub dashboard: Option<SocketAddr>,
    /// `--report`: the HTML report written when the run ends.
    pub report: Option<PathBuf>,
    /// `--summary-json`: where the closing figures go as JSON.
    pub summary_json: Option<PathBuf>,
    /// `--abort-after`: stop after this many ids in a row end in transport errors (0: never).
    pub abort_after: u64,
    /// `--max-failed`: the share of failed rows above which the run exits 4.
    pub max_failed: Option<MaxFailed>,
    /// What the run fetches (`--ids`, `--ids-file`, `--keys`): its shape and item indexes, only
    /// this node's slice of them when the job spans several nodes.
    pub job: Job,
    /// This machine's place when the job spans several nodes.
    pub node: Option<Node>,
    pub shards: usize,
    /// The URL's host varies: items are routed to shards by host (see
    /// `worker::schedule::route`), not cut into ranges.
    pub by_host: bool,
    pub output: Output,
    /// `--auth-command`: credentials from a command, refreshed.
    pub auth: Option<AuthSpec>,
    /// `--format`, else from the output's extension (CSV for stdout).
    pub format: &'static dyn Format,
    /// `--arrow-copy`: where this run's rows also go as an Arrow IPC stream.
    pub arrow_copy: Option<Output>,
    /// `--part-rows`: rows per Parquet part.
    pub part_rows: usize,
    pub mode: WriteMode,
    pub progress: bool,
    /// What the output remembers of the job, compared on `--resume`.
    pub job_request: JobRequest,
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

fn host_rate_of(rate: f64) -> Result<f64, ConfigError> {
    positive_rate(rate).map_err(|_| ConfigError::HostRate(rate))
}

/// With one host (none of the URL's placeholders in it), the host's limits are the run's:
/// `--host-concurrency N` caps the requests in flight across all workers at N (no more shards
/// than N, and each worker's concurrency at most its share, rounded down), and `--host-rate R`
/// is one worker's `--rate`, its starts spaced as a host's are (1/R and a margin; the lower of
/// the two when `--rate` is given too). One worker: workers pacing a share each are not in step,
/// and two starts of theirs a few milliseconds apart put R + 1 into a second (a tester saw 6 at
/// `--host-rate 5 -s 2`). Returns the limits left for the workers to keep per host (none), the
/// shards, the concurrency per worker and the rate.
fn one_host(
    hosts: HostLimits,
    shards: usize,
    concurrency: usize,
    rate: Option<f64>,
) -> (HostLimits, usize, usize, Option<f64>) {
    let shards = match hosts.rate {
        Some(_) => 1,
        None => shards,
    };
    let (shards, concurrency) = match hosts.concurrency {
        Some(cap) => {
            let shards = shards.min(cap);
            (shards, concurrency.min(cap / shards))
        }
        None => (shards, concurrency),
    };
    let spaced = hosts.spacing().map(|gap| 1.0 / gap.as_secs_f64());
    let rate = match (rate, spaced) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    (HostLimits::default(), shards, concurrency, rate)
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
///
/// Every flag is named, no `..` (as uv builds its settings): a new flag that nothing here handles
/// does not compile. A flag bound to `_` is read from `args` by the function its comment names.
pub fn resolve(args: &RunArgs) -> Result<RunConfig, ConfigError> {
    #[rustfmt::skip]
    let RunArgs {
        url: _, method: _, data: _, user_agent: _, // request_spec
        capture_header: _, save_body: _, extract: _, next: _, next_param: _, // schema
        max_pages: _, body_encoding: _, bodies_dir: _, // schema
        output: _, format: _, overwrite: _, resume: _, // write_mode and output_of
        arrow_copy: _, // arrow_copy_of
        config: _, given_elsewhere: _, // cli::parse, and the launch for the resume line
        items: _, // items
        headers, raw_body, retry_failed, part_rows, node_index, node_count,
        auth_command, auth_refresh, auth_timeout, follow_redirects, protocol, ca_cert, insecure,
        shards, concurrency, quiet, verbose, no_progress, timeout, connect_timeout, max_body,
        body_memory, retries, retry_base, retry_cap, max_retry_after, rate, abort_after,
        max_failed, grace, proxy, proxy_file, local_addr, dns_refresh, resolve: pins, connect_to,
        metrics, dashboard, report, summary_json, robots, no_rate_limit_headers,
        host_concurrency, host_rate,
    } = args;
    let request = request_spec(args)?;
    let trust = trust_of(ca_cert, *insecure)?;
    let node = Node::find(*node_index, *node_count, |name| std::env::var(name).ok())?;
    items::check_given(args)?;
    let shards = at_least_one("shards", shards.unwrap_or_else(default_shards))?;
    let (concurrency, auto_concurrency) = concurrency_of(*concurrency)?;
    let limits = limits_of(*timeout, *connect_timeout, *max_body, *body_memory)?;
    let retry = retry_of(*retries, *retry_base, *retry_cap, *max_retry_after)?;
    let mode = write_mode(args)?;
    let (output, format) = output_of(args, node.as_ref(), mode)?;
    let arrow_copy = arrow_copy_of(args, &output)?;
    let [summary_json, report] =
        documents_of(args, [summary_json, report], &node, &output, format)?;
    let metrics = listen_addr("metrics", metrics.as_deref())?;
    let dashboard = listen_addr("dashboard", dashboard.as_deref())?;
    // Late, as it may read a large file (or all of standard input).
    let job = job_of(args, node.as_ref())?;
    let protocol = protocol.protocol();
    let (request, template) = request_of(request, &job, protocol)?;
    let schema = schema(args, node.as_ref(), &job)?;
    if matches!(schema.body, BodyColumn::Inline(_)) && *max_body > MAX_INLINE_BODY {
        return Err(ConfigError::InlineBody(*max_body));
    }
    let routes = [local_addr, pins, connect_to];
    let net = net_of(routes, proxy, proxy_file, *dns_refresh, &template)?;
    let job_request = JobRequest::new(&request, headers, &schema, format, job.items());
    let hosts = HostLimits {
        concurrency: host_concurrency
            .map(|n| at_least_one("host-concurrency", n))
            .transpose()?,
        rate: host_rate.map(host_rate_of).transpose()?,
    };
    let rate = rate.map(positive_rate).transpose()?;
    let shards = job.shards(shards);
    let one_host = (!template.host_varies()).then(|| one_host(hosts, shards, concurrency, rate));
    let (hosts, shards, concurrency, rate) = one_host.unwrap_or((hosts, shards, concurrency, rate));
    // Routed by host, a host's requests all come from one worker.
    let robots_workers = if template.host_varies() { 1 } else { shards };
    Ok(RunConfig {
        fetch: Fetch {
            request,
            trust,
            schema,
            follow_redirects: *follow_redirects,
            protocol,
            concurrency,
            auto_concurrency,
            raw_body: *raw_body,
            net,
            grace: seconds("grace", *grace)?,
            limits,
            retry,
            verbosity: verbosity_of(*quiet, *verbose),
            auth: auth_command.is_some(),
            hosts,
            robots: robots.then(|| RobotsPolicy {
                workers: u32::try_from(robots_workers).unwrap_or(u32::MAX),
            }),
        },
        auth: auth_of(auth_command.as_deref(), *auth_refresh, *auth_timeout)?,
        rate,
        rate_limit_headers: !no_rate_limit_headers,
        abort_after: *abort_after,
        max_failed: max_failed_of(*max_failed, mode, retry_failed.as_deref()),
        summary_json,
        metrics,
        dashboard,
        report,
        node,
        shards,
        by_host: template.host_varies(),
        job,
        output,
        format,
        arrow_copy,
        part_rows: at_least_one("part-rows", *part_rows)?,
        mode,
        progress: !no_progress && !quiet,
        job_request,
    })
}

/// `--ca-cert` and `-k`, the certificate file read once to refuse a bad one now.
fn trust_of(ca_cert: &Option<PathBuf>, insecure: bool) -> Result<Trust, ConfigError> {
    let trust = Trust {
        ca_cert: ca_cert.clone(),
        insecure,
    };
    tls::check(&trust)?;
    Ok(trust)
}

/// `--summary-json` and `--report`, their `{node}` filled as `-o`'s is (each node writes its
/// own), checked writable and apart from the rows and the key files.
fn documents_of(
    args: &RunArgs,
    [summary_json, report]: [&Option<PathBuf>; 2],
    node: &Option<Node>,
    output: &Output,
    format: &dyn Format,
) -> Result<[Option<PathBuf>; 2], ConfigError> {
    let expand = |flag, path: &Option<PathBuf>| {
        path.as_deref()
            .map(|path| nodes::expand_path(flag, path, node.as_ref()))
            .transpose()
    };
    let (summary_json, report) = (
        expand("summary-json", summary_json)?,
        expand("report", report)?,
    );
    let documents = [
        ("summary-json", summary_json.as_deref()),
        ("report", report.as_deref()),
    ];
    check_reports(args, &documents, output, format)?;
    Ok([summary_json, report])
}

/// The request, with the key files' columns as its placeholders, checked against them and
/// compiled once to refuse a bad template before any worker starts (each worker compiles it
/// again from the spec).
fn request_of(
    mut request: RequestSpec,
    job: &Job,
    protocol: Protocol,
) -> Result<(RequestSpec, RequestTemplate), ConfigError> {
    // The key files name the placeholders and columns: the template and the schema come after.
    request.key_columns = job.columns().into_iter().map(|c| c.name).collect();
    crate::placeholders::check(&request, job.product())?;
    // Compiled here to refuse a bad template before any worker starts (each worker compiles it
    // again from the spec).
    let template = RequestTemplate::compile(&request)?;
    let http2 = protocol == Protocol::Http2;
    if http2 && template.host_varies() {
        return Err(ConfigError::Http2PerHost);
    }
    if http2 && let Some(name) = template.connection_specific_header() {
        return Err(ConfigError::Http2ConnectionHeader(name));
    }
    Ok((request, template))
}

/// `--max-failed`, counting the failures `--retry-failed=LIST` names when it names some.
fn max_failed_of(
    limit: Option<f64>,
    mode: WriteMode,
    retry_failed: Option<&str>,
) -> Option<MaxFailed> {
    let counts = match mode {
        WriteMode::Resume {
            retry_failed: Some(counts),
        } if retry_failed.is_some_and(|list| !list.is_empty()) => counts,
        _ => FailedRows::AT_LEAST_400,
    };
    limit.map(|limit| MaxFailed { limit, counts })
}

/// Shortest `--auth-refresh`.
const MIN_AUTH_REFRESH: Duration = Duration::from_secs(1);

/// `--auth-command` with its refresh period and timeout.
fn auth_of(
    command: Option<&str>,
    refresh: Option<f64>,
    timeout: f64,
) -> Result<Option<AuthSpec>, ConfigError> {
    let Some(command) = command else {
        return Ok(None);
    };
    if command.trim().is_empty() {
        return Err(ConfigError::EmptyAuthCommand);
    }
    let refresh = refresh
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
        command: command.to_string(),
        refresh,
        timeout: seconds("auth-timeout", timeout)?,
    }))
}

/// In-flight requests per worker: a fixed number, or `auto` (found during the run, up to
/// [`AUTO_CONCURRENCY_MAX`]).
fn concurrency_of(concurrency: Concurrency) -> Result<(usize, bool), ConfigError> {
    let (concurrency, auto_concurrency) = match concurrency {
        Concurrency::Auto => (AUTO_CONCURRENCY_MAX, true),
        Concurrency::Fixed(n) => (n, false),
    };
    let concurrency = at_least_one("concurrency", concurrency)?;
    if concurrency > MAX_CONCURRENCY {
        return Err(ConfigError::TooMuchConcurrency(concurrency));
    }
    Ok((concurrency, auto_concurrency))
}

/// `--timeout`, `--connect-timeout`, `--max-body` and `--body-memory`.
fn limits_of(
    timeout: f64,
    connect_timeout: f64,
    max_body: u64,
    body_memory: u64,
) -> Result<RequestLimits, ConfigError> {
    if max_body == 0 || max_body > MAX_BODY_LIMIT {
        return Err(ConfigError::MaxBody(max_body));
    }
    Ok(RequestLimits {
        timeout: seconds("timeout", timeout)?,
        connect_timeout: seconds("connect-timeout", connect_timeout)?,
        max_body_bytes: max_body as usize,
        body_memory_bytes: usize::try_from(body_memory).unwrap_or(usize::MAX),
    })
}

/// `--retries` and the backoff: `--retry-base`, `--retry-cap`, `--max-retry-after`.
fn retry_of(
    retries: u32,
    base: f64,
    cap: f64,
    max_retry_after: f64,
) -> Result<RetryPolicy, ConfigError> {
    if retries > MAX_RETRIES {
        return Err(ConfigError::Retries(retries));
    }
    Ok(RetryPolicy {
        retries,
        base: seconds("retry-base", base)?,
        cap: seconds("retry-cap", cap)?,
        max_retry_after: seconds("max-retry-after", max_retry_after)?,
    })
}

fn verbosity_of(quiet: bool, verbose: bool) -> Verbosity {
    if quiet {
        Verbosity::Quiet
    } else if verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    }
}

/// `--dashboard` and `--metrics` as addresses to bind, read once as `serve --listen` reads its
/// own.
fn listen_addr(flag: &'static str, text: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
    text.map(|text| {
        crate::listen_addr::parse(text)
            .ok_or_else(|| ConfigError::ListenAddr(flag, text.to_string()))
    })
    .transpose()
}

/// Source addresses, pinned names, proxies and DNS refresh, checked against the target.
fn net_of(
    [local_addr, pins, connect_to]: [&Vec<String>; 3],
    proxy: &Option<String>,
    proxy_file: &Option<PathBuf>,
    dns_refresh: f64,
    template: &RequestTemplate,
) -> Result<NetSpec, ConfigError> {
    let net = NetSpec::parse(local_addr, pins, connect_to)?
        .check_local_addrs()?
        .with_proxies(proxy.as_deref(), |name| std::env::var(name).ok())?
        .with_proxy_file(proxy_file.as_deref(), proxy.as_deref())?
        .with_dns_refresh(seconds("dns-refresh", dns_refresh)?);
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
    fn listening_flags_are_read_once_into_addresses() {
        let cfg = resolve(&args(&["--metrics", "9184", "--dashboard", "[::1]:8080"]))
            .expect("valid config");
        let addr = |text: &str| text.parse::<SocketAddr>().expect("an address");
        assert_eq!(cfg.metrics, Some(addr("127.0.0.1:9184")));
        assert_eq!(cfg.dashboard, Some(addr("[::1]:8080")));
        let err = resolve(&args(&["--dashboard", "nowhere"])).expect_err("no port");
        assert!(
            err.to_string()
                .starts_with("--dashboard nowhere: expected PORT"),
            "{err}"
        );
    }

    #[test]
    fn max_failed_counts_what_retry_failed_names_else_every_failure() {
        let cfg = resolve(&args(&["--max-failed", "5%"])).expect("valid config");
        let max_failed = cfg.max_failed.expect("given");
        assert!((max_failed.limit - 0.05).abs() < 1e-12);
        assert_eq!(max_failed.counts, FailedRows::AT_LEAST_400);
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
