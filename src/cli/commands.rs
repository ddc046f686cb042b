//! The flags of `serve`, `tune`, `merge`, `completions` and the hidden `worker`.

use std::path::PathBuf;

use clap::Args;

use super::values::{KeepArg, millis_arg, seconds_arg};

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on: PORT (on 127.0.0.1), IP:PORT, [IPv6]:PORT or NAME:PORT; port 0 picks a
    /// free port (printed on stdout)
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
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = seconds_arg)]
    pub per_step: f64,
    /// Latency budget: the knee's p99 must be at most this many milliseconds
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = millis_arg)]
    pub p99_budget: f64,
    /// Also draw throughput and p99 against concurrency into this SVG file
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// Also write the sweep (rate, p50 and p99 per concurrency, the knee) as a self-contained
    /// HTML page in the style of `run --report`
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<std::path::PathBuf>,
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
        required_unless_present_any = ["ids_file", "keys", "urls"],
        allow_hyphen_values = true
    )]
    pub ids: Option<String>,
    /// The whole job's file of keys, as given to every node (rows are matched by line)
    #[arg(long, value_name = "FILE", conflicts_with = "ids")]
    pub ids_file: Option<PathBuf>,
    /// The whole job's key files, as given to every node, in the same order (rows are matched
    /// by index, or by id without --ids)
    #[arg(long = "keys", value_name = "FILE", conflicts_with = "ids_file")]
    pub keys: Vec<PathBuf>,
    /// The whole job's file of URLs (run's --urls), as given to every node
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ids_file", "keys"])]
    pub urls: Option<PathBuf>,
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
    /// The merged file to write (CSV, JSON Lines, Parquet or Arrow, by its extension, as the inputs)
    #[arg(value_name = "OUT.csv")]
    pub out: PathBuf,
    /// The nodes' outputs, all of one format
    #[arg(value_name = "IN.csv", required = true)]
    pub inputs: Vec<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// A worker's assignment arrives as frames on its stdin, never on argv, which any user can read
/// in /proc and which is capped in size. Only the shard number is here, so `ps` tells them apart.
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Which shard of the run this worker fetches (informational; the spec says it too)
    #[arg(long, value_name = "N")]
    pub shard: usize,
}
