//! Flags (the command line over the config file, merged in `cli`) → one validated
//! [`RunConfig`]. All input checks live here; deeper code trusts what it is handed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::assignment::Fetch;
use crate::cli::{Concurrency, FormatArg, KeepArg, RunArgs};
use crate::document;
use crate::extract::ExtractSpec;
use crate::failed::{FailedRows, MaxFailed};
use crate::ids::{IdRange, IdRangeError};
use crate::job::{self, KeyFile, Product, RecordFile, RecordFileError, RecordFormat};
use crate::merge::Keep;
use crate::model::{
    BodyColumn, BodyEncoding, Items as RowItems, Pages, RequestLimits, RetryPolicy, Schema,
};
use crate::net::NetSpec;
use crate::nodes::{self, Node, NodeError};
use crate::output::WriteMode;
use crate::output::job_record::JobRequest;
use crate::output::{Named, RowFormat, directory_of};
use crate::output::{Output, bodies, parquet};
use crate::request::{RequestError, RequestSpec, RequestTemplate};
use crate::tls::{self, TlsError, Trust};
use crate::verbosity::Verbosity;

/// A body limit beyond this is a typo: bodies are held in memory, one per in-flight request.
const MAX_BODY_LIMIT: u64 = 1 << 32;
/// A body kept in the CSV travels in one frame, whose length is 32 bits.
const MAX_INLINE_BODY: u64 = 1 << 30;
/// Attempts are counted in 16 bits on the wire.
const MAX_RETRIES: u32 = 1000;
/// Far above what one core can drive; a typo guard, the fd limit check does the real work.
const MAX_CONCURRENCY: usize = 1 << 20;
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
    pub format: RowFormat,
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error("--url is required (or `url` in the config file)")]
    MissingUrl,
    #[error("--ids, --ids-file or --keys is required, e.g. --ids 0..1000000")]
    MissingIds,
    #[error(
        "--keys {0}: which format? name it .csv, .tsv, .jsonl or .parquet (or a directory of Parquet parts)"
    )]
    KeysFormat(PathBuf),
    #[error("--keys {0}: {1}")]
    Keys(PathBuf, RecordFileError),
    #[error("--auth-command: empty; give the command that prints `Name: value` header lines")]
    EmptyAuthCommand,
    #[error("--next {0}: {1} (give link, /json/pointer, jq:FILTER or re:REGEX)")]
    Next(String, String),
    #[error("--keys -: standard input can be read once")]
    KeysStdinTwice,
    #[error(transparent)]
    TooManyItems(#[from] job::TooManyItems),
    #[error("--ids-file {0}: {1}")]
    IdsFile(PathBuf, std::io::Error),
    #[error("--ids-file {0}: no keys in it (every line is empty)")]
    NoKeys(PathBuf),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Placeholder(#[from] crate::placeholders::PlaceholderError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("--{0} @{1}: {2}")]
    ReadArg(&'static str, PathBuf, std::io::Error),
    #[error("--capture-header {0:?}: not a header name")]
    CaptureName(String),
    #[error(transparent)]
    Columns(#[from] crate::model::ColumnClash),
    #[error(transparent)]
    Extract(#[from] crate::extract::ExtractError),
    #[error(
        "--format parquet: Parquet is a directory of part files; give it a path with -o, not stdout"
    )]
    ParquetStdout,
    #[error(
        "--http2 with {{id}} in the URL's host: each key's host gets a connection of its own, over HTTP/1.1; drop --http2"
    )]
    Http2PerHost,
    #[error(
        "--http2 with --header {0}: a connection-specific header, which HTTP/2 forbids (RFC 9113 §8.2.2); leave it out"
    )]
    Http2ConnectionHeader(String),
    #[error("--auth-refresh {0}: at least 1 s (the command runs again on 401s besides)")]
    AuthRefreshTooShort(String),
    #[error(
        "--output {0}: is a directory; give the file for the rows (or --format parquet for a directory of parts)"
    )]
    OutputIsDir(PathBuf),
    #[error("--output {0}: {1}")]
    OutputKind(PathBuf, &'static str),
    #[error(
        "--output {path}: the name says {named} but --format {given} writes {written}; name it {suggested}, or drop --format",
        named = .named.name(), given = .given.extension(), written = .given.name()
    )]
    FormatAgainstName {
        path: PathBuf,
        named: RowFormat,
        given: RowFormat,
        suggested: String,
    },
    #[error(
        "--max-body {0} with --save-body: at most {MAX_INLINE_BODY} bytes (use --bodies-dir for larger bodies)"
    )]
    InlineBody(u64),
    #[error("--bodies-dir {0}: cannot write there: {1}")]
    BodiesDir(PathBuf, std::io::Error),
    #[error(transparent)]
    Ids(#[from] IdRangeError),
    #[error(transparent)]
    Node(#[from] NodeError),
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
    #[error("--output {0} --overwrite: {1}")]
    NotOurs(PathBuf, parquet::NotOurs),
    #[error("--resume needs --output FILE (it reads the rows already written)")]
    ResumeStdout,
    #[error("--max-body {0}: must be between 1 and {MAX_BODY_LIMIT} bytes")]
    MaxBody(u64),
    #[error("--{0} {1}: {expected}", expected = crate::listen_addr::EXPECTED)]
    ListenAddr(&'static str, String),
    #[error("--{0} {1}: directory {2} does not exist")]
    ReportDir(&'static str, PathBuf, PathBuf),
    #[error("--{0} {1}: {2}")]
    Unwritable(&'static str, PathBuf, document::Unwritable),
    #[error(transparent)]
    Clash(#[from] document::Clash),
    #[error("--rate {0}: must be a number of requests per second from 0.001 to 1e9")]
    Rate(f64),
    #[error("--retries {0}: at most {MAX_RETRIES}")]
    Retries(u32),
    #[error("{0}")]
    RetryFailed(String),
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

fn write_mode(args: &RunArgs) -> Result<WriteMode, ConfigError> {
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

fn verbosity_of(args: &RunArgs) -> Verbosity {
    if args.quiet {
        Verbosity::Quiet
    } else if args.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    }
}

/// Where rows go and in which format; refused when the output cannot take this run's rows
/// (an existing file without `--resume` or `--overwrite`, Parquet on stdout, a directory that
/// holds files ringscrape did not write).
fn output_of(
    args: &RunArgs,
    node: Option<&Node>,
    mode: WriteMode,
) -> Result<(Output, RowFormat), ConfigError> {
    let output = if args.output.as_os_str() == "-" {
        Output::Stdout
    } else {
        Output::File(nodes::expand_path("output", &args.output, node)?)
    };
    if let Output::File(path) = &output {
        check_output_name(path, args.format.map(RowFormat::from))?;
    }
    let format = args.format.map(RowFormat::from).unwrap_or(match &output {
        Output::File(path) => RowFormat::of_path(path),
        Output::Stdout => RowFormat::Csv,
    });
    if format == RowFormat::Parquet && output == Output::Stdout {
        return Err(ConfigError::ParquetStdout);
    }
    // Rows go into a file; only Parquet's parts go into a directory.
    if let Output::File(path) = &output
        && format != RowFormat::Parquet
        && path.is_dir()
    {
        return Err(ConfigError::OutputIsDir(path.clone()));
    }
    check_output(&output, mode)?;
    if let Output::File(path) = &output
        && format == RowFormat::Parquet
        && mode == WriteMode::Overwrite
    {
        parquet::check_replaceable(path).map_err(|e| ConfigError::NotOurs(path.clone(), e))?;
    }
    Ok((output, format))
}

/// What `-o` names is what is written: a name of another kind of file (`.tsv`, `.json`,
/// `.csv.gz`), or of another format than `--format`'s, is refused rather than filled with rows
/// its readers would misread.
fn check_output_name(path: &Path, given: Option<RowFormat>) -> Result<(), ConfigError> {
    match RowFormat::named_by(path) {
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

/// `--dashboard` and `--metrics` as addresses to bind, read as `serve --listen` reads its own.
fn listen_addr(flag: &'static str, text: &str) -> Result<String, ConfigError> {
    crate::listen_addr::parse(text)
        .map(|addr| addr.to_string())
        .ok_or_else(|| ConfigError::ListenAddr(flag, text.to_string()))
}

/// `--metrics` is an address, `--summary-json` and `--report` can be written where they point,
/// and no file of the run is another of its files.
fn check_reports(
    args: &RunArgs,
    documents: &[(&'static str, Option<&Path>)],
    output: &Output,
    format: RowFormat,
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
fn check_apart(
    args: &RunArgs,
    documents: &[(&'static str, Option<&Path>)],
    output: &Output,
    format: RowFormat,
) -> Result<(), ConfigError> {
    let inputs = args.keys.iter().map(|path| ("keys", path));
    let inputs = inputs.chain(args.ids_file.iter().map(|path| ("ids-file", path)));
    let files = document::RunFiles {
        rows: match output {
            Output::File(path) => Some(path.as_path()),
            Output::Stdout => None,
        },
        rows_are_parts: format == RowFormat::Parquet,
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

/// The job's items, and this node's slice of them.
fn items_of(args: &RunArgs, node: Option<&Node>) -> Result<Items, ConfigError> {
    let mut items = job_items(args)?;
    if let Some(node) = node {
        items.ids = node.slice(items.ids)?;
        let ids = items.ids;
        if let Some(keys) = &mut items.key_file {
            keys.empty = keys.empty.restrict(ids);
        }
    }
    Ok(items)
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

/// The items: an id range, the lines of a file of keys, or key files with columns (standard
/// input is copied to a temporary file first, streamed).
fn job_items(args: &RunArgs) -> Result<Items, ConfigError> {
    if !args.keys.is_empty() {
        return product_items(args);
    }
    let Some(path) = &args.ids_file else {
        let ids: IdRange = args
            .ids
            .as_deref()
            .ok_or(ConfigError::MissingIds)?
            .parse()?;
        return Ok(Items {
            ids,
            key_file: None,
            product: None,
            stdin_spool: None,
        });
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
    Ok(Items {
        ids: keys.range(),
        key_file: Some(keys),
        product: None,
        stdin_spool: spool,
    })
}

/// The product of `--ids` (when given) and the `--keys` files, each scanned once.
fn product_items(args: &RunArgs) -> Result<Items, ConfigError> {
    let ids = args.ids.as_deref().map(str::parse::<IdRange>).transpose()?;
    let mut files = Vec::with_capacity(args.keys.len());
    let mut stdin_spool = None;
    for path in &args.keys {
        let format =
            RecordFormat::of_path(path).ok_or_else(|| ConfigError::KeysFormat(path.clone()))?;
        let fail = |e| ConfigError::Keys(path.clone(), e);
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
    Ok(Items {
        ids: product.items()?,
        key_file: None,
        product: Some(product),
        stdin_spool,
    })
}

/// What [`job_items`] found (the fields of [`RunConfig`] of the same names).
struct Items {
    ids: IdRange,
    key_file: Option<KeyFile>,
    product: Option<Product>,
    stdin_spool: Option<Arc<tempfile::TempPath>>,
}

/// The optional columns: `line` for keys from a file or `index` for a product, the key files'
/// columns, captured headers (checked, lower case), extracted fields (compiled once to check
/// them), then the body or its path; no two of one name.
fn schema(
    args: &RunArgs,
    node: Option<&Node>,
    product: Option<&Product>,
) -> Result<Schema, ConfigError> {
    let mut capture_headers: Vec<String> = Vec::new();
    for name in &args.capture_header {
        let header = http::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| ConfigError::CaptureName(name.clone()))?;
        capture_headers.push(header.as_str().to_string());
    }
    let extract = args
        .extract
        .iter()
        .map(|text| ExtractSpec::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    let body = if args.save_body {
        BodyColumn::Inline(match args.body_encoding.as_deref() {
            Some("base64") => BodyEncoding::Base64,
            _ => BodyEncoding::Text,
        })
    } else if let Some(dir) = &args.bodies_dir {
        let dir = nodes::expand_path("bodies-dir", dir, node)?;
        bodies::check_writable(&dir).map_err(|e| ConfigError::BodiesDir(dir.clone(), e))?;
        BodyColumn::Files(dir)
    } else {
        BodyColumn::None
    };
    let items = match (product, &args.ids_file) {
        (Some(product), _) => product.row_items(),
        (None, Some(_)) => RowItems::Lines,
        (None, None) => RowItems::Ids,
    };
    let pages = pages_of(args)?;
    let schema = Schema {
        items,
        pages,
        keys: product.map(Product::columns).unwrap_or_default(),
        capture_headers,
        extract,
        body,
    };
    schema.check()?;
    Ok(schema)
}

/// `--next` (checked as an `--extract` expression unless `link`), `--next-param`, `--max-pages`.
fn pages_of(args: &RunArgs) -> Result<Option<Pages>, ConfigError> {
    let Some(next) = &args.next else {
        return Ok(None);
    };
    if next != "link" {
        let spec = ExtractSpec {
            name: "next".into(),
            expr: next.clone(),
        };
        crate::extract::Extractor::compile(std::slice::from_ref(&spec))
            .map_err(|e| ConfigError::Next(next.clone(), e.to_string()))?;
    }
    if args.max_pages == Some(0) {
        return Err(ConfigError::Zero("max-pages", 0));
    }
    Ok(Some(Pages {
        next: next.clone(),
        param: args.next_param.clone(),
        max_pages: args.max_pages,
    }))
}

/// The request flags, with `@FILE` arguments read.
fn request_spec(args: &RunArgs) -> Result<RequestSpec, ConfigError> {
    let url = args.url.clone().ok_or(ConfigError::MissingUrl)?;
    let mut headers = Vec::with_capacity(args.headers.len());
    for header in &args.headers {
        match header.strip_prefix('@') {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::ReadArg("header", path.into(), e))?;
                headers.extend(
                    text.lines()
                        .map(str::trim_end)
                        .filter(|line| !line.is_empty())
                        .map(String::from),
                );
            }
            None => headers.push(header.clone()),
        }
    }
    let body = match args.data.as_deref() {
        Some(data) => Some(match data.strip_prefix('@') {
            Some(path) => {
                std::fs::read(path).map_err(|e| ConfigError::ReadArg("data", path.into(), e))?
            }
            None => data.as_bytes().to_vec(),
        }),
        None => None,
    };
    Ok(RequestSpec {
        url,
        method: args.method.clone(),
        headers,
        body,
        user_agent: args
            .user_agent
            .clone()
            .unwrap_or_else(|| concat!("ringscrape/", env!("CARGO_PKG_VERSION")).into()),
        accept_encoding: (!args.raw_body).then(|| crate::request::ACCEPT_ENCODING.into()),
        key_columns: Vec::new(),
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
    let dir = directory_of(path);
    if !dir.is_dir() {
        return Err(ConfigError::NoOutputDir(path.clone(), dir.to_path_buf()));
    }
    Ok(())
}

// The command line's own enums, as the rest of the program knows them.

impl From<FormatArg> for RowFormat {
    fn from(format: FormatArg) -> RowFormat {
        match format {
            FormatArg::Csv => RowFormat::Csv,
            FormatArg::Jsonl => RowFormat::JsonLines,
            FormatArg::Parquet => RowFormat::Parquet,
        }
    }
}

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
