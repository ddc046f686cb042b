//! The flags of `run`, the one command with many.

use std::path::PathBuf;

use clap::Args;

use super::elsewhere::GivenElsewhere;
use super::values::{Concurrency, bytes_arg, format_arg, ratio_arg, seconds_arg};
use crate::net::Protocol;
use crate::output::Format;

/// Flags of `run`. Each flag is declared once, here: its doc is the help text, its default is
/// clap's, and the config file is read as more of these flags (see [`config_file_args`]).
/// Values are checked and converted in `config`, so every bad input gets the same one-line error.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// URL template; every {id} is replaced by the id (and {name} by a --keys column, which may
    /// hold a whole URL: -u '{url}'), e.g. http://host/log?id={id}; with --urls, '{url}' unless
    /// given
    #[arg(short, long, value_name = "TEMPLATE", env = "RINGSCRAPE_URL")]
    pub url: Option<String>,
    // The items: --ids, --ids-file, --keys (read by `config::items` into the job).
    #[command(flatten)]
    pub items: ItemArgs,
    /// HTTP method [default: GET, or POST with --data]
    #[arg(short = 'X', long, value_name = "METHOD")]
    pub method: Option<String>,
    /// Request header 'Name: value' ({id} expands in the value); repeatable; @FILE reads one
    /// header per line. Content-Length and Transfer-Encoding are refused (ringscrape frames the
    /// request), and with --http2 connection headers (Connection, Upgrade…)
    #[arg(short = 'H', long = "header", alias = "headers", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Request body ({id} expands in it), at most 8 MiB; @FILE reads the body from FILE; given
    /// more than once, the pieces are joined with & (as curl joins them)
    #[arg(short = 'd', long, value_name = "TEXT|@FILE")]
    pub data: Vec<String>,
    /// Command (run with sh -c) that prints credentials: every line of its output must be
    /// 'Name: value' (notes go to stderr; no CR, at most 64 KiB, no Content-Length,
    /// Transfer-Encoding, Host or connection header) and is a header of every request (in place
    /// of a -H of that name). Run before the first request, every --auth-refresh, and when
    /// answers come back 401 (a 401 is sent again once with the new credentials). Its failure
    /// stops the run (exit 3, resumable)
    #[arg(long, value_name = "CMD")]
    pub auth_command: Option<String>,
    /// Run --auth-command again this often (e.g. 50m; at least 1s), besides on 401s
    #[arg(long, value_name = "DURATION", value_parser = seconds_arg, requires = "auth_command")]
    pub auth_refresh: Option<f64>,
    /// Seconds --auth-command may take before it is killed (with every process it started) and
    /// the run stopped
    #[arg(long, value_name = "DURATION", value_parser = seconds_arg, default_value = "30s")]
    pub auth_timeout: f64,
    /// User-Agent header [default: ringscrape/VERSION]
    #[arg(long, value_name = "TEXT")]
    pub user_agent: Option<String>,
    /// Follow up to N redirects (3xx with Location) per request; the row keeps the final status
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub follow_redirects: u32,
    /// Obey each host's robots.txt (fetched once per worker and host, RFC 9309) for the
    /// User-Agent's product token: a URL it disallows is a row with error `robots`, never
    /// requested; a 5xx or unreachable robots.txt disallows the host, a 4xx allows all; its
    /// Crawl-delay spaces the requests to the host
    #[arg(long)]
    pub robots: bool,
    // The protocol: --http2 (read by `ProtocolArgs::protocol`).
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    /// PEM file of certificates to trust besides the bundled and system roots (https): CAs, or a
    /// server's own self-signed certificate, as curl --cacert takes it
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
    /// Follow each item's pages: link (the rel="next" of a Link header), or an expression of
    /// the --extract kinds (/json/pointer, jq:FILTER, re:REGEX) giving the next page's URL
    /// (absolute or relative to the page). One row per page, with `page` and `next` columns;
    /// a chain ends when the next is absent, null or empty, on a non-2xx answer, at
    /// --max-pages, or (error `loop`) when a next repeats
    #[arg(long, value_name = "SPEC")]
    pub next: Option<String>,
    /// With --next: what it gives is a cursor, set as query parameter NAME of the item's first URL
    #[arg(long, value_name = "NAME", requires = "next")]
    pub next_param: Option<String>,
    /// With --next: fetch at most N pages per item
    #[arg(long, value_name = "N", requires = "next")]
    pub max_pages: Option<u32>,
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
    /// Where rows go: a file (CSV, JSON Lines or an Arrow stream), a directory of parts
    /// (Parquet), or - for stdout; {node} becomes the node index (see --node-index)
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "results.csv",
        env = "RINGSCRAPE_OUTPUT"
    )]
    pub output: PathBuf,
    /// Row format: csv, jsonl (JSON Lines), parquet (a directory of part files, typed
    /// columns) or arrow (an Arrow IPC stream, typed as parquet); by default from the output's
    /// extension (.jsonl, .ndjson, .parquet, .arrows), else csv
    #[arg(long, value_name = "FORMAT", value_parser = format_arg())]
    pub format: Option<&'static dyn Format>,
    /// Parquet: rows per part file (a part is also closed 10 s after its first row, and at the
    /// end); rows not yet in a closed part are fetched again by --resume after a crash
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub part_rows: usize,
    /// Also write every row this run writes as an Arrow IPC stream (the schema of --format
    /// arrow, a batch at least every second) to FILE, or - for stdout, whatever -o and --format
    /// are; the copy holds this run's rows only (a resume's new ones). Its reader going away
    /// stops the run as Ctrl-C does
    #[arg(long, value_name = "FILE")]
    pub arrow_copy: Option<PathBuf>,
    /// TOML config file of flags (`concurrency = 64`); command-line flags win over it
    /// [default: $XDG_CONFIG_HOME/ringscrape/config.toml, else ~/.config/ringscrape/config.toml, if present]
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
    /// With --resume: fetch again the ids whose row failed. Bare, every error and non-2xx
    /// status; =LIST only those named, comma-separated: errors, an error kind (dns, tls,
    /// timeout…), a status class (5xx) or a status (429), e.g. --retry-failed=errors,5xx,429
    #[arg(
        long,
        value_name = "LIST",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "",
        requires = "resume"
    )]
    pub retry_failed: Option<String>,
    /// Whole-request deadline in seconds, body included
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = seconds_arg,
        default_value = "30s",
        allow_negative_numbers = true,
        env = "RINGSCRAPE_TIMEOUT"
    )]
    pub timeout: f64,
    /// Deadline for opening a connection, in seconds
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = seconds_arg,
        default_value = "10s",
        allow_negative_numbers = true
    )]
    pub connect_timeout: f64,
    /// Largest response body, in bytes (or with K, M, G: 512K, 16M), received and decoded
    /// alike; a larger one ends as error body-too-large
    #[arg(long, value_name = "BYTES", default_value = "16M", value_parser = bytes_arg)]
    pub max_body: u64,
    /// Bytes of bodies a worker holds in memory at once (bodies it is receiving for
    /// --save-body or --extract, the windows of zstd and brotli decoders, and rows waiting for
    /// the supervisor); a request whose body would pass it waits. One body may always go on, so it needs no room for --max-body.
    /// --bodies-dir writes bodies to their files as they arrive
    #[arg(long, value_name = "BYTES", default_value = "128M", value_parser = bytes_arg)]
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
    /// Resolve the target's host name again at least this often while the run lasts, even when
    /// its TTL is longer (names are resolved off the event loop, all their addresses)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
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
        value_name = "DURATION",
        value_parser = seconds_arg,
        default_value = "100ms",
        allow_negative_numbers = true
    )]
    pub retry_base: f64,
    /// Longest backoff between retries, in seconds
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = seconds_arg,
        default_value = "10s",
        allow_negative_numbers = true
    )]
    pub retry_cap: f64,
    /// Longest Retry-After from a server that is honoured, in seconds
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = seconds_arg,
        default_value = "60s",
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
    /// Ignore the servers' rate-limit headers (RateLimit, RateLimit-Policy, RateLimit-*,
    /// X-RateLimit-*): by default each worker spreads its share of the requests a quota has
    /// left until its reset, and sends none while it is used up
    #[arg(long)]
    pub no_rate_limit_headers: bool,
    /// At most N requests in flight per host; each host's items go to one worker. With one host
    /// (no placeholder in it), at most N in flight across the whole run [default: none]
    #[arg(long, value_name = "N")]
    pub host_concurrency: Option<usize>,
    /// At most R requests started per second per host, evenly spaced, retries included (0.5:
    /// one every 2 s). With one host, the same as --rate R across the run [default: none]
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    pub host_rate: Option<f64>,
    /// Serve live Prometheus metrics on http://ADDR/metrics during the run: ADDR is PORT (on
    /// 127.0.0.1), IP:PORT or NAME:PORT, e.g. 9184 or 0.0.0.0:9184
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Serve a live page of the run (progress, rates, latency, errors, workers, the map of the
    /// id space) on PORT, IP:PORT or NAME:PORT (a port alone is on 127.0.0.1), with /metrics beside it
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<String>,
    /// When the run ends (however it ends), write the page's panels as one self-contained HTML
    /// file, viewable offline
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Write the closing summary as JSON to FILE too (rows, requests, status and error counts,
    /// retries, throttled time, wall time, rate, bytes, latency percentiles)
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// Stop the run (exit 3, resumable) after N ids in a row end in connect, dns, proxy, timeout,
    /// reset or tls errors, saying why. 0 never stops
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub abort_after: u64,
    /// Exit 4 when more than this share of the run's rows failed (an error, or a status of 400 or
    /// more; with --retry-failed=LIST, the rows it names), as 0.05 or 5%; without it a run that
    /// completes exits 0 whatever its rows hold
    #[arg(long, value_name = "RATIO", value_parser = ratio_arg)]
    pub max_failed: Option<f64>,
    /// On Ctrl-C or SIGTERM, time in-flight requests get to finish, in seconds
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = seconds_arg,
        default_value = "2s",
        allow_negative_numbers = true
    )]
    pub grace: f64,
    /// Not a flag: the flags whose values came from the environment or the config file found by
    /// default, for the resume line (filled by `cli::parse`).
    #[arg(skip)]
    pub given_elsewhere: Vec<GivenElsewhere>,
}

/// Where a run's items come from: an id range, a file of keys, key files with columns. One
/// group so that a new source of items is one more field here, read in `config::items`.
#[derive(Args, Debug, Clone)]
pub struct ItemArgs {
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
    /// Key file with named columns: CSV or TSV with a header row, JSON Lines, Parquet (a file
    /// or a directory of parts), by extension; - is CSV on standard input. Each column is a
    /// placeholder {name} and a column of the rows. Repeatable: with several, and with --ids,
    /// every combination is an item (the last varying fastest)
    #[arg(long = "keys", value_name = "FILE", conflicts_with = "ids_file")]
    pub keys: Vec<PathBuf>,
    /// File of whole URLs, one per line (blank lines skipped); - reads standard input. A key
    /// file of one column {url}: each line is fetched as it is (-u '{url}' unless -u is given;
    /// give -u to add to it, e.g. -u '{url}&lang=en') and is the rows' url column. A bad URL (no
    /// scheme, not http(s), a bad port, a space) is a request row, not a stopped run
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ids_file", "keys"])]
    pub urls: Option<PathBuf>,
}

impl ItemArgs {
    /// The files items are read from, each with the flag that named it (`("keys", path)`).
    pub fn files(&self) -> impl Iterator<Item = (&'static str, &PathBuf)> {
        let keys = self.keys.iter().map(|path| ("keys", path));
        let urls = self.urls.iter().map(|path| ("urls", path));
        keys.chain(urls)
            .chain(self.ids_file.iter().map(|path| ("ids-file", path)))
    }
}

/// Which protocol requests to the run's origin are sent in. One group so that another protocol
/// is one more flag here and one more arm in [`ProtocolArgs::protocol`].
#[derive(Args, Debug, Clone)]
pub struct ProtocolArgs {
    /// Speak HTTP/2: offered by ALPN over TLS (HTTP/1.1 if the server declines), with prior
    /// knowledge (h2c) for http:// URLs; many requests share each connection
    #[arg(long)]
    pub http2: bool,
}

impl ProtocolArgs {
    /// The protocol the flags ask for, chosen once.
    pub fn protocol(&self) -> Protocol {
        Protocol::from_flags(self.http2)
    }
}
