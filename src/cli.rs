//! Command-line definitions (clap derive): `run`, `serve`, and the hidden `worker`.
//!
//! Values stay raw here (`Option<String>`, plain numbers); `config` merges them with the config
//! file and validates them, so every bad input gets the same one-line error and exit code 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ringscrape",
    version,
    about = "Fetch a URL template over a huge id range and stream one CSV row per id",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Scrape URL for every id in a range, writing one CSV row per id
    Run(RunArgs),
    /// Serve the built-in demo target (JSON record per id, optional delays)
    Serve(ServeArgs),
    /// Internal: one worker process of a run (started by `run`)
    #[command(hide = true)]
    Worker(WorkerArgs),
}

#[derive(Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// URL template; every {id} is replaced by the id, e.g. http://host/log?id={id}
    #[arg(short, long, value_name = "TEMPLATE")]
    pub url: Option<String>,
    /// Half-open id range START..END, e.g. 0..1000000 (one million ids)
    #[arg(short, long, value_name = "START..END")]
    pub ids: Option<String>,
    /// Worker processes, each pinned to a core [default: online cores]
    #[arg(short, long, value_name = "N")]
    pub shards: Option<usize>,
    /// In-flight requests per worker (per core) [default: 256]
    #[arg(short, long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// CSV file to write, or - for stdout [default: results.csv]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// TOML config file; flags override it [default: config/default.toml if present]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// Whole-request deadline in seconds, body included [default: 30]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub timeout: Option<f64>,
    /// Deadline for opening a connection, in seconds [default: 10]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub connect_timeout: Option<f64>,
    /// Largest response body read, in bytes; a larger one ends as error body-too-large [default: 16 MiB]
    #[arg(long, value_name = "BYTES")]
    pub max_body: Option<u64>,
    /// Retries per id after the first attempt (errors, 429/502/503/504) [default: 2]
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// First backoff step in seconds; doubles per retry, full jitter [default: 0.1]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub retry_base: Option<f64>,
    /// Longest backoff between retries, in seconds [default: 10]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub retry_cap: Option<f64>,
    /// Longest Retry-After from a server that is honoured, in seconds [default: 60]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub max_retry_after: Option<f64>,
    /// On Ctrl-C or SIGTERM, time in-flight requests get to finish, in seconds [default: 2]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub grace: Option<f64>,
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

#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// The worker's assignment, as TOML written by the supervisor
    #[arg(long)]
    pub spec: String,
}
