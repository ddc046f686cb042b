//! Command-line definitions (clap derive): `run` (rows as CSV, JSON Lines or Parquet), `merge`,
//! `tune`, `serve`, `completions` and the hidden `worker`; and the config file, which is a
//! layer of `run` flags under the command line.
//!
//! The config file holds flags by their long names (`concurrency = 64`, `headers = [...]` for a
//! repeatable flag, `no_progress = true` for a switch). It is read as if its flags were typed
//! before the command line's, so a flag given on the command line wins (repeatable flags add up),
//! and a flag exists in one place only. Values stay raw here (strings, plain numbers); `config`
//! checks and converts them, so every bad input gets the same one-line error and exit code 2.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, Parser, Subcommand};

/// Read by `run` when no `--config` is given, if it exists (relative to the working directory).
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";

#[derive(Parser, Debug)]
#[command(
    name = "ringscrape",
    version,
    about = "Fetch a URL template over a huge id range and stream one row per id (CSV, JSON Lines or Parquet)",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Scrape URL for every id in a range, writing one row per id (CSV, JSON Lines or Parquet)
    #[command(args_override_self = true)]
    Run(RunArgs),
    /// Merge the outputs of a job's nodes (CSV, JSON Lines or Parquet) into one, proving that
    /// every id has exactly one row
    /// (exit 0), else naming the missing and duplicated ids (exit 1)
    Merge(MergeArgs),
    /// Find the concurrency to use: short runs at each concurrency, a table of req/s and
    /// latency, the knee marked, the run command printed
    Tune(TuneArgs),
    /// Serve the built-in demo target (JSON record per id, optional delays)
    Serve(ServeArgs),
    /// Print a shell completion script (e.g. `ringscrape completions bash > ~/.local/share/bash-completion/completions/ringscrape`)
    Completions(CompletionsArgs),
    /// Internal: one worker process of a run (started by `run`)
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// Flags of `run`. Each flag is declared once, here: its doc is the help text, its default is
/// clap's, and the config file is read as more of these flags (see [`config_file_args`]).
/// Values are checked and converted in `config`, so every bad input gets the same one-line error.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// URL template; every {id} is replaced by the id, e.g. http://host/log?id={id}
    #[arg(short, long, value_name = "TEMPLATE", env = "RINGSCRAPE_URL")]
    pub url: Option<String>,
    /// Half-open id range START..END, e.g. 0..1000000 (one million ids)
    // A range that starts with `-` (`-1..5`) is a value, refused by `config` naming --ids.
    #[arg(
        short,
        long,
        value_name = "START..END",
        env = "RINGSCRAPE_IDS",
        allow_hyphen_values = true
    )]
    pub ids: Option<String>,
    /// File of keys, one per line, instead of --ids: {id} is the line (percent-encoded in the
    /// URL); - reads standard input (one shard). Empty lines are skipped
    #[arg(long, value_name = "FILE", conflicts_with = "ids")]
    pub ids_file: Option<PathBuf>,
    /// HTTP method [default: GET, or POST with --data]
    #[arg(short = 'X', long, value_name = "METHOD")]
    pub method: Option<String>,
    /// Request header 'Name: value' ({id} expands in the value); repeatable; @FILE reads one
    /// header per line
    #[arg(short = 'H', long = "header", alias = "headers", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Request body ({id} expands in it); @FILE reads the body from FILE
    #[arg(short = 'd', long, value_name = "TEXT|@FILE")]
    pub data: Option<String>,
    /// User-Agent header [default: ringscrape/VERSION]
    #[arg(long, value_name = "TEXT")]
    pub user_agent: Option<String>,
    /// Follow up to N redirects (3xx with Location) per request; the row keeps the final status
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub follow_redirects: u32,
    /// Speak HTTP/2: offered by ALPN over TLS (HTTP/1.1 if the server declines), with prior
    /// knowledge (h2c) for http:// URLs; many requests share each connection
    #[arg(long)]
    pub http2: bool,
    /// PEM file of CA certificates to trust besides the bundled and system roots (https)
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Don't verify TLS certificates (https)
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// Keep this response header in a column named after it (lower case); repeatable
    #[arg(long, value_name = "NAME")]
    pub capture_header: Vec<String>,
    /// Keep each response body in a `body` column
    #[arg(long, conflicts_with = "bodies_dir")]
    pub save_body: bool,
    /// A field of the body into a column NAME (repeatable, columns in the order given): EXPR is
    /// a JSON Pointer (/user/name), jq:FILTER (jq:.items | length) or re:REGEX (its first group)
    #[arg(long, value_name = "NAME=EXPR")]
    pub extract: Vec<String>,
    /// How the body column holds a body: text (as is when valid UTF-8, else `base64:` and the
    /// base64), or base64 [default: text]
    #[arg(long, value_name = "ENCODING", value_parser = ["text", "base64"], requires = "save_body")]
    pub body_encoding: Option<String>,
    /// Write each body to its own file under DIR (DIR/ab/cd/NAME); a body_path column holds
    /// the path relative to DIR. {node} becomes the node index (see --node-index)
    #[arg(long, value_name = "DIR")]
    pub bodies_dir: Option<PathBuf>,
    /// This machine is node K (0-based) of --node-count: it takes slice K of the ids (or of the
    /// --ids-file lines). Without it, read from a Slurm job array (SLURM_ARRAY_TASK_ID…) or a
    /// Kubernetes Indexed Job (JOB_COMPLETION_INDEX with RINGSCRAPE_NODE_COUNT)
    #[arg(long, value_name = "K")]
    pub node_index: Option<u64>,
    /// Number of nodes the job is split over (see --node-index)
    #[arg(long, value_name = "M")]
    pub node_count: Option<u64>,
    /// Worker processes, each pinned to a core [default: online cores]
    #[arg(short, long, value_name = "N", env = "RINGSCRAPE_SHARDS")]
    pub shards: Option<usize>,
    /// In-flight requests per worker (per core), or `auto`: found during the run from the
    /// answers' latency (grows while answers stay fast, backs off when they queue), up to 1024
    #[arg(
        short,
        long,
        value_name = "N|auto",
        default_value = "256",
        value_parser = Concurrency::parse,
        env = "RINGSCRAPE_CONCURRENCY"
    )]
    pub concurrency: Concurrency,
    /// Where rows go: a file (CSV, or JSON Lines), a directory of parts (Parquet), or - for
    /// stdout; {node} becomes the node index (see --node-index)
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "results.csv",
        env = "RINGSCRAPE_OUTPUT"
    )]
    pub output: PathBuf,
    /// Row format: csv, jsonl (JSON Lines) or parquet (a directory of part files, typed
    /// columns); by default from the output's extension (.jsonl, .ndjson, .parquet), else csv
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub format: Option<FormatArg>,
    /// Parquet: rows per part file (a part is also closed 10 s after its first row, and at the
    /// end); rows not yet in a closed part are fetched again by --resume after a crash
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub part_rows: usize,
    /// TOML config file of flags (`concurrency = 64`); command-line flags win over it
    /// [default: config/default.toml if present]
    #[arg(long, value_name = "FILE", env = "RINGSCRAPE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Say nothing on stderr but errors (no progress line, no summary)
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also say when each shard starts and ends, and each retry
    #[arg(short, long)]
    pub verbose: bool,
    /// Don't draw the progress line (it is only drawn on a terminal anyway)
    #[arg(long)]
    pub no_progress: bool,
    /// Replace the output file if it already exists
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Complete an interrupted run: keep the rows already in --output, fetch only the other ids
    #[arg(long)]
    pub resume: bool,
    /// With --resume: fetch again the ids whose row is an error or a non-2xx status
    #[arg(long, requires = "resume")]
    pub retry_failed: bool,
    /// Whole-request deadline in seconds, body included
    #[arg(
        long,
        value_name = "SECS",
        value_parser = seconds_arg,
        default_value_t = 30.0,
        allow_negative_numbers = true,
        env = "RINGSCRAPE_TIMEOUT"
    )]
    pub timeout: f64,
    /// Deadline for opening a connection, in seconds
    #[arg(
        long,
        value_name = "SECS",
        value_parser = seconds_arg,
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    pub connect_timeout: f64,
    /// Largest response body, in bytes (or with K, M, G: 512K, 16M), received and decoded
    /// alike; a larger one ends as error body-too-large
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20, value_parser = bytes_arg)]
    pub max_body: u64,
    /// Bytes of bodies a worker holds in memory at once (bodies it is receiving for
    /// --save-body or --extract, the windows of zstd and brotli decoders, and rows waiting for
    /// the supervisor); a request whose body would pass it waits. One body may always go on, so it needs no room for --max-body.
    /// --bodies-dir writes bodies to their files as they arrive
    #[arg(long, value_name = "BYTES", default_value_t = 128 << 20, value_parser = bytes_arg)]
    pub body_memory: u64,
    /// Reach the target through this proxy: http://[user:pass@]host[:port] (plain HTTP
    /// forwarded, anything else through CONNECT; port 3128 if none, where curl says 1080),
    /// socks5:// (the target's name resolved here) or socks5h:// (resolved by the proxy; port
    /// 1080 if none). Without it, http_proxy, https_proxy, all_proxy and
    /// no_proxy are read as curl reads them (upper case too). Credentials are never shown
    #[arg(
        long,
        value_name = "URL",
        env = "RINGSCRAPE_PROXY",
        hide_env_values = true
    )]
    pub proxy: Option<String>,
    /// Spread connections over the proxies of FILE (one URL a line, `#` comments); one that
    /// fails sits out (1 s, doubling to 60 s) and its ids go through the others
    #[arg(long, value_name = "FILE")]
    pub proxy_file: Option<PathBuf>,
    /// Source addresses to spread connections over, comma-separated, CIDR blocks allowed
    /// (127.0.0.0/29, 2001:db8::/125); each gives the whole local port range again. Past about
    /// 28,000 connections to one server port one source address runs out of ports
    #[arg(long, value_name = "LIST")]
    pub local_addr: Vec<String>,
    /// Resolve the target's host name again this often while the run lasts (it is resolved off
    /// the event loop, all its addresses)
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60.0,
        value_parser = seconds_arg
    )]
    pub dns_refresh: f64,
    /// Use these addresses for HOST at PORT instead of asking DNS (curl's syntax: PORT may be
    /// `*`, HOST `*` for every name, `+HOST` is HOST); repeatable
    #[arg(long, value_name = "HOST:PORT:ADDR[,ADDR]")]
    pub resolve: Vec<String>,
    /// Connect to HOST2:PORT2 whenever HOST:PORT is asked for, keeping Host and the TLS name
    /// (curl's syntax; empty parts match any / keep the original); repeatable
    #[arg(long, value_name = "HOST:PORT:HOST2:PORT2")]
    pub connect_to: Vec<String>,
    /// Keep bodies as they came: send no Accept-Encoding of ours and decode no
    /// Content-Encoding (by default gzip, deflate, br and zstd are asked for and decoded)
    #[arg(long)]
    pub raw_body: bool,
    /// Retries per id after the first attempt (errors, 429/502/503/504)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        env = "RINGSCRAPE_RETRIES"
    )]
    pub retries: u32,
    /// First backoff step in seconds; doubles per retry, full jitter
    #[arg(
        long,
        value_name = "SECS",
        value_parser = seconds_arg,
        default_value_t = 0.1,
        allow_negative_numbers = true
    )]
    pub retry_base: f64,
    /// Longest backoff between retries, in seconds
    #[arg(
        long,
        value_name = "SECS",
        value_parser = seconds_arg,
        default_value_t = 10.0,
        allow_negative_numbers = true
    )]
    pub retry_cap: f64,
    /// Longest Retry-After from a server that is honoured, in seconds
    #[arg(
        long,
        value_name = "SECS",
        value_parser = seconds_arg,
        default_value_t = 60.0,
        allow_negative_numbers = true
    )]
    pub max_retry_after: f64,
    /// At most R requests per second across all shards, retries included, evenly paced
    /// [default: none; a 429 slows the run down by itself]
    #[arg(
        long,
        value_name = "R",
        allow_negative_numbers = true,
        env = "RINGSCRAPE_RATE"
    )]
    pub rate: Option<f64>,
    /// Serve live Prometheus metrics on http://ADDR/metrics during the run (e.g. 127.0.0.1:9184)
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Write the closing summary as JSON to FILE too (rows, requests, status and error counts,
    /// retries, throttled time, wall time, rate, bytes, latency percentiles)
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// Stop the run (exit 3, resumable) after N ids in a row end in connect, timeout, reset or
    /// tls errors: the target looks down. 0 never stops
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub abort_after: u64,
    /// On Ctrl-C or SIGTERM, time in-flight requests get to finish, in seconds
    #[arg(
        long,
        value_name = "SECS",
        value_parser = seconds_arg,
        default_value_t = 2.0,
        allow_negative_numbers = true
    )]
    pub grace: f64,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed on stdout)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// Delay each answer by a per-id pseudo-random time in MIN..MAX milliseconds
    #[arg(long, default_value = "0..0", value_name = "MIN..MAX")]
    pub delay_ms: String,
    /// Seed for the per-id delays (same seed and id, same delay)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// Answer N bytes of text instead of the JSON record
    #[arg(long, value_name = "N")]
    pub body_bytes: Option<usize>,
    /// Server threads [default: online cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Work on at most N requests at a time (each for its --delay-ms) and queue the rest in
    /// arrival order, like a backend with N workers: a server with a capacity to find
    #[arg(long, value_name = "N")]
    pub max_inflight: Option<usize>,
    /// Fault: answer 503 + Retry-After: 1 to the first N requests for each id
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub fail_first: u32,
    /// Fault: close without answering for every K-th id (ids K-1, 2K-1, …)
    #[arg(long, value_name = "K")]
    pub drop_every: Option<u64>,
    /// Fault: accept and never answer for every K-th id
    #[arg(long, value_name = "K")]
    pub stall_every: Option<u64>,
    /// Fault: answer bytes that are not HTTP for every K-th id
    #[arg(long, value_name = "K")]
    pub garbage_every: Option<u64>,
    /// Fault: reset the connection in the middle of the body for every K-th id
    #[arg(long, value_name = "K")]
    pub reset_mid_body_every: Option<u64>,
    /// Fault: answer a chunked body with a malformed chunk-size line for every K-th id
    #[arg(long, value_name = "K")]
    pub bad_chunk_every: Option<u64>,
    /// Fault: answer a 64 MiB body for every K-th id
    #[arg(long, value_name = "K")]
    pub huge_every: Option<u64>,
    /// Fault: send a 103 Early Hints response before the answer for every K-th id
    #[arg(long, value_name = "K")]
    pub informational_every: Option<u64>,
    /// Fault: answer 302 Found (to /moved) for every K-th id
    #[arg(long, value_name = "K")]
    pub redirect_every: Option<u64>,
    /// Fault: close each connection after every K responses, without Connection: close
    #[arg(long, value_name = "K")]
    pub close_every: Option<u64>,
}

/// Flags of `tune`.
#[derive(Args, Debug, Clone)]
pub struct TuneArgs {
    /// URL template, as for run
    #[arg(short, long, value_name = "TEMPLATE")]
    pub url: String,
    /// Ids to spend: each step scrapes its own stripe of them, so every request is fresh
    #[arg(short, long, value_name = "START..END", allow_hyphen_values = true)]
    pub ids: String,
    /// Worker processes [default: online cores]
    #[arg(short, long, value_name = "N")]
    pub shards: Option<usize>,
    /// Per-worker concurrencies to try, in order; `auto` tries --concurrency auto
    #[arg(
        short,
        long,
        value_name = "LIST",
        default_value = "16,64,256,1024,auto"
    )]
    pub concurrency: String,
    /// Seconds each step runs (less if its ids run out)
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = seconds_arg)]
    pub per_step: f64,
    /// Latency budget: the knee's p99 must be at most this many milliseconds
    #[arg(long, value_name = "MS", default_value_t = 200.0, value_parser = millis_arg)]
    pub p99_budget: f64,
    /// Also draw throughput and p99 against concurrency into this SVG file
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// More `ringscrape run` flags for every step (headers, TLS, …), after --
    #[arg(last = true, value_name = "RUN-FLAGS")]
    pub run_flags: Vec<String>,
}

/// Flags of `merge`.
#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// The whole job's id range START..END, as given to every node
    #[arg(
        short,
        long,
        value_name = "START..END",
        required_unless_present = "ids_file",
        allow_hyphen_values = true
    )]
    pub ids: Option<String>,
    /// The whole job's file of keys, as given to every node (rows are matched by line)
    #[arg(long, value_name = "FILE", conflicts_with = "ids")]
    pub ids_file: Option<PathBuf>,
    /// When an id has rows in several inputs (a retried slice overlapped), keep the row of the
    /// input listed first or last, and accept it
    #[arg(long, value_name = "WHICH", value_enum)]
    pub allow_duplicates: Option<KeepArg>,
    /// Replace OUT if it already exists
    #[arg(long)]
    pub overwrite: bool,
    /// Say nothing on stderr but problems
    #[arg(short, long)]
    pub quiet: bool,
    /// The merged CSV to write
    #[arg(value_name = "OUT.csv")]
    pub out: PathBuf,
    /// The nodes' CSVs
    #[arg(value_name = "IN.csv", required = true)]
    pub inputs: Vec<PathBuf>,
}

/// `--concurrency`: a fixed number of in-flight requests per worker, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    Fixed(usize),
    Auto,
}

impl Concurrency {
    /// Parsed by clap, so that a bad value in the config file is blamed on the file.
    fn parse(text: &str) -> Result<Concurrency, String> {
        match text.trim() {
            "auto" => Ok(Concurrency::Auto),
            n => n
                .parse()
                .map(Concurrency::Fixed)
                .map_err(|_| "expected a whole number of requests per worker, or auto".into()),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Writes the completion script for `shell` to stdout.
pub fn print_completions(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "ringscrape", &mut std::io::stdout());
}

/// A worker's assignment arrives as frames on its stdin, never on argv, which any user can read
/// in /proc and which is capped in size. Only the shard number is here, so `ps` tells them apart.
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Which shard of the run this worker fetches (informational; the spec says it too)
    #[arg(long, value_name = "N")]
    pub shard: usize,
}

/// `--format`: the row formats by their flag names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Csv,
    Jsonl,
    Parquet,
}

/// `merge --allow-duplicates`: which input's row is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeepArg {
    /// The row of the input listed first.
    First,
    /// The row of the input listed last.
    Last,
}

/// A duration as wrk, oha and hey take it: a number with a unit (`ms`, `s`, `m`, `h`), or a bare
/// number in the flag's own unit (seconds for most, milliseconds for `--p99-budget`); in units
/// of `bare` seconds. Range checks are `config`'s.
fn duration_arg(text: &str, bare: f64) -> Result<f64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("expected a duration such as 30, 500ms, 2.5s or 2m, not {text:?}"))?;
    let unit_secs = match unit {
        "" => bare,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown unit {other:?} (ms, s, m or h)")),
    };
    Ok(number * unit_secs / bare)
}

/// A size in bytes: a whole number, or one followed by K, M or G (KiB, MiB, GiB; `KiB`, `MB`
/// and lower case are read the same).
fn bytes_arg(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "`{text}` is not a size (bytes, or a number with K, M or G)"
            ));
        }
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (bytes, or a number with K, M or G)"))?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A duration in seconds (a bare number is seconds).
fn seconds_arg(text: &str) -> Result<f64, String> {
    duration_arg(text, 1.0)
}

/// A duration in milliseconds (a bare number is milliseconds).
fn millis_arg(text: &str) -> Result<f64, String> {
    duration_arg(text, 1e-3)
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad flags, or `--help` / `--version` (which clap reports as errors).
    #[error("{}", one_line(&.0.render().to_string()))]
    Clap(#[from] clap::Error),
    #[error("config file {0}: {1}")]
    ConfigFile(PathBuf, String),
}

/// Parses `argv`; for `run`, with the config file's flags placed before the command line's.
pub fn parse(argv: Vec<OsString>) -> Result<Cli, CliError> {
    let cli = Cli::try_parse_from(&argv)?;
    let Command::Run(run) = &cli.command else {
        return Ok(cli);
    };
    let path = match &run.config {
        Some(path) => path.clone(),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => PathBuf::from(DEFAULT_CONFIG_PATH),
        None => return Ok(cli),
    };
    let mut layer = config_file_args(&path)?;
    // Precedence is flag, environment variable, config file, default: a file value for a flag
    // whose RINGSCRAPE_* variable is set gives way to it.
    layer.retain(|arg| !set_by_environment(arg));
    let program = argv.first().cloned().unwrap_or_else(|| "ringscrape".into());
    // The file's flags alone first, so that a bad value in it is blamed on the file.
    let alone = [program.clone(), "run".into()]
        .into_iter()
        .chain(layer.iter().cloned());
    Cli::try_parse_from(alone)
        .map_err(|e| CliError::ConfigFile(path, one_line(&e.render().to_string())))?;
    // `argv` is `program run <flags…>`: `run` has no global flags before it.
    let merged = [program, "run".into()]
        .into_iter()
        .chain(layer)
        .chain(argv.into_iter().skip(2));
    Ok(Cli::try_parse_from(merged)?)
}

/// True when `arg` (`--name=value` from the config file) is a flag whose environment variable
/// is set.
fn set_by_environment(arg: &OsString) -> bool {
    let Some(name) = arg
        .to_str()
        .and_then(|a| a.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap_or(a))
    else {
        return false;
    };
    let command = Cli::command();
    let run = command
        .find_subcommand("run")
        .expect("the run subcommand exists");
    run.get_arguments()
        .filter(|a| a.get_long() == Some(name))
        .filter_map(|a| a.get_env())
        .any(|var| std::env::var_os(var).is_some())
}

/// The flags a config file stands for, as `--name=value` arguments in the file's order.
pub fn config_file_args(path: &Path) -> Result<Vec<OsString>, CliError> {
    let fail = |message: String| CliError::ConfigFile(path.to_path_buf(), message);
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| fail(one_line(&e.to_string())))?;
    let command = Cli::command();
    let run = command
        .find_subcommand("run")
        .expect("the run subcommand exists");
    let mut args = Vec::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        let known = run.get_arguments().any(|arg| {
            arg.get_long() == Some(name.as_str())
                || arg
                    .get_all_aliases()
                    .is_some_and(|a| a.contains(&name.as_str()))
        });
        if !known || name == "config" {
            return Err(fail(format!(
                "unknown key `{key}` (keys are the long flags of `ringscrape run --help`)"
            )));
        }
        let values = match value {
            toml::Value::Array(items) => items,
            scalar => vec![scalar],
        };
        for value in values {
            let text = match value {
                toml::Value::Boolean(true) => {
                    args.push(format!("--{name}").into());
                    continue;
                }
                toml::Value::Boolean(false) => continue,
                toml::Value::String(text) => text,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                other => {
                    return Err(fail(format!(
                        "`{key}`: expected a string, number, boolean or a list of them, not {}",
                        other.type_str()
                    )));
                }
            };
            args.push(format!("--{name}={text}").into());
        }
    }
    Ok(args)
}

/// clap's message (everything before its usage block, tips included) folded onto one line: some
/// messages put the essential part — which argument is missing — on the lines after the first.
pub fn one_line(rendered: &str) -> String {
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:"))
        .map(str::trim)
        // We add our own pointer to --help.
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect();
    if message.is_empty() {
        "error: invalid arguments".to_string()
    } else {
        message.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    fn run_args(argv: &[&str]) -> RunArgs {
        let argv = argv.iter().map(OsString::from).collect();
        match parse(argv).expect("valid flags").command {
            Command::Run(run) => run,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn the_file_is_a_layer_under_the_command_line() {
        let (_dir, path) =
            file("concurrency = 64\nshards = 3\ntimeout = 5.5\nno_progress = true\noutput = '-'\n");
        let config = path.to_str().expect("utf-8 path");
        let run = run_args(&["rs", "run", "--config", config, "-c", "128"]);
        assert_eq!(run.concurrency, Concurrency::Fixed(128), "flag wins");
        assert_eq!(run.shards, Some(3), "file value when no flag");
        assert_eq!(run.timeout, 5.5);
        assert_eq!(run.connect_timeout, 10.0, "default when neither");
        assert!(run.no_progress, "a switch from the file");
        assert_eq!(
            run.output,
            PathBuf::from("-"),
            "a value that looks like a flag"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_blamed_on_the_file() {
        let (_dir, path) = file("concurency = 5\n");
        let err = config_file_args(&path).expect_err("unknown key");
        assert!(
            err.to_string().contains("unknown key `concurency`"),
            "{err}"
        );
        let (_dir, path) = file("concurrency = 'many'\n");
        let argv = ["rs", "run", "--config", path.to_str().expect("utf-8")];
        let err = parse(argv.iter().map(OsString::from).collect()).expect_err("bad value");
        assert!(matches!(err, CliError::ConfigFile(..)), "{err}");
        assert!(err.to_string().contains("'many'"), "{err}");
    }

    #[test]
    fn sizes_take_binary_units() {
        for (text, bytes) in [
            ("4096", 4096),
            ("512K", 512 << 10),
            ("16M", 16 << 20),
            ("16 MiB", 16 << 20),
            ("1g", 1 << 30),
        ] {
            assert_eq!(bytes_arg(text), Ok(bytes), "{text}");
        }
        for bad in ["", "M", "1.5M", "-1", "3T", "99999999999999999999G"] {
            assert!(bytes_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_take_units_and_a_bare_number_keeps_the_flags_unit() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        for (text, secs) in [
            ("30", 30.0),
            ("500ms", 0.5),
            ("2.5s", 2.5),
            ("2m", 120.0),
            (" 1h", 3600.0),
        ] {
            assert!(close(seconds_arg(text).expect(text), secs), "{text}");
        }
        assert!(close(millis_arg("200").expect("bare"), 200.0));
        assert!(close(millis_arg("1.5s").expect("s"), 1500.0));
        assert!(
            close(seconds_arg("-1").expect("negative"), -1.0),
            "config refuses it, naming the flag"
        );
        for bad in ["", "fast", "5 parsecs", "5d", "ms"] {
            assert!(seconds_arg(bad).is_err(), "{bad:?}");
        }
        let run = run_args(&["rs", "run", "--timeout", "500ms", "--grace", "1m"]);
        assert!(close(run.timeout, 0.5) && close(run.grace, 60.0));
    }

    #[test]
    fn the_shipped_default_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
        let args = config_file_args(&path).expect("config/default.toml is valid");
        assert!(
            args.contains(&OsString::from("--concurrency=256")),
            "{args:?}"
        );
    }
}
