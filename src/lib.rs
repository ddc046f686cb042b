//! ringscrape fetches a URL template over a huge id range (or the keys of a file) and streams one
//! row per id (CSV, JSON Lines or Parquet), keeping the response's headers, fields of its body,
//! and the body itself on request.
//!
//! The pipeline, in the order data flows: [`cli`] parses flags (the config file is a layer of
//! flags under the command line); [`config`] checks them into one [`config::RunConfig`] (every
//! placeholder filled: [`placeholders`]); the
//! [`supervisor`] raises the open-files limit, splits the [`job`]'s items (an [`ids`] range or
//! the lines of a key file) into shards and starts one pinned [`worker`] process per shard, its
//! [`assignment`] (the contract both sides import) sent as frames on its stdin; each worker runs a monoio [`runtime`] (io_uring, epoll
//! fallback) with `concurrency` tasks that build each item's request from the [`request`]
//! template (holes compiled by [`template`]) and fetch it over HTTP/1.1 or HTTP/2, trusting
//! what [`tls`] says, undoing the answer's content coding as it arrives and taking the fields
//! of [`extract`] out of the body; records travel back as [`wire`] frames over the worker's
//! stdout pipe; the supervisor's pipe readers feed a bounded channel into the [`output`] writer
//! (run on the supervisor's main thread), whose row loop hands each record to the row format
//! (CSV, JSON Lines, Parquet) and drives the [`progress`] line; [`stats`] sent by each worker
//! are merged for the closing summary, which the supervisor returns with the rest of the run's
//! outcome; [`report`] prints it at the edge. [`model`] holds the data every stage shares (records,
//! error kinds, the row schema), below all of them, as [`url`] (origins, and a `Location` or a
//! next page resolved as RFC 3986 says) is below [`request`]. [`output`] also holds the reader of every
//! format, which `--resume` and [`merge`] use. When a job spans several machines, [`nodes`]
//! picks this machine's slice of the items before any of that; `merge` joins the machines' outputs
//! afterwards and proves every item has one row. [`serve`] is the built-in demo target.

pub(crate) mod assignment;
pub mod cli;
pub(crate) mod config;
pub(crate) mod diagnosis;
pub(crate) mod document;
pub(crate) mod extract;
pub(crate) mod failed;
pub(crate) mod ids;
pub(crate) mod inflight;
pub(crate) mod job;
pub(crate) mod listen_addr;
pub(crate) mod merge;
pub(crate) mod metrics;
pub(crate) mod model;
pub(crate) mod net;
pub(crate) mod nodes;
pub mod output;
pub(crate) mod placeholders;
pub(crate) mod progress;
pub(crate) mod redact;
pub(crate) mod report;
pub(crate) mod request;
pub(crate) mod runtime;
pub(crate) mod serve;
pub(crate) mod stats;
pub(crate) mod status_server;
pub(crate) mod suggest;
pub(crate) mod supervisor;
pub(crate) mod template;
pub(crate) mod timeline;
pub(crate) mod tls;
pub(crate) mod tune;
pub(crate) mod url;
pub mod verbosity;
pub(crate) mod view;
pub(crate) mod wire;
pub(crate) mod worker;

use cli::{Command, MergeArgs, RunArgs, TuneArgs};
pub use stats::Summary;
pub use supervisor::{Launch, Missing, RunOutcome, Stop, TooManyFailed};

/// Every way a command can fail, each turned into one line and an exit code by `main`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Supervisor(#[from] supervisor::SupervisorError),
    #[error(transparent)]
    Worker(#[from] worker::WorkerError),
    #[error(transparent)]
    Serve(#[from] serve::ServeError),
    #[error(transparent)]
    Merge(#[from] merge::MergeError),
    #[error(transparent)]
    Tune(#[from] tune::TuneError),
    #[error(transparent)]
    DriverEnv(#[from] runtime::DriverEnvError),
}

/// Exit code for a run where some id has no row (a worker died, the writer failed).
pub const EXIT_FAILED: u8 = 1;
/// Exit code for bad usage or configuration: nothing was fetched.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a run stopped by `--abort-after`: the target looked down.
pub const EXIT_ABORTED: u8 = 3;
/// Exit code for a run that completed with more failed rows than `--max-failed` allows.
pub const EXIT_TOO_MANY_FAILED: u8 = supervisor::TooManyFailed::EXIT_CODE;

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::DriverEnv(_) => EXIT_USAGE,
            Error::Supervisor(e) if e.is_usage() => EXIT_USAGE,
            Error::Supervisor(e) if e.is_target_down() => EXIT_ABORTED,
            Error::Serve(e) if e.is_usage() => EXIT_USAGE,
            Error::Merge(e) if e.is_usage() => EXIT_USAGE,
            Error::Tune(e) if e.is_usage() => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }
}

/// Runs one parsed command; `Ok` carries the exit code.
pub fn execute(command: Command) -> Result<u8, Error> {
    if matches!(
        command,
        Command::Run(_) | Command::Tune(_) | Command::Serve(_)
    ) {
        runtime::epoll_forced()?;
    }
    match command {
        Command::Run(args) => run(&args),
        Command::Merge(args) => merge(&args),
        Command::Tune(args) => tune(&args),
        Command::Serve(args) => {
            serve::serve(serve::ServeOptions::from_args(&args)?)?;
            Ok(0)
        }
        Command::Completions(args) => {
            cli::print_completions(args.shell);
            Ok(0)
        }
        Command::Worker(_) => match worker::run() {
            Ok(()) => Ok(0),
            Err(e) if e.is_supervisor_gone() => Ok(EXIT_FAILED),
            Err(e) => Err(e.into()),
        },
    }
}

/// `merge`: exit 0 only when every item of the job has exactly one row.
fn merge(args: &MergeArgs) -> Result<u8, Error> {
    // Every flag by name: a new one that is not handled here does not compile.
    let MergeArgs {
        ids,
        ids_file,
        keys,
        urls,
        allow_duplicates,
        overwrite,
        quiet,
        out,
        inputs,
    } = args;
    let keys: Vec<merge::KeyPath> = (keys.iter().cloned().map(merge::KeyPath::Keys))
        .chain(urls.iter().cloned().map(merge::KeyPath::Urls))
        .collect();
    let job = merge::MergeJob::new(
        ids.as_deref(),
        ids_file.as_deref(),
        &keys,
        out.clone(),
        inputs.clone(),
        allow_duplicates.map(Into::into),
        *overwrite,
    )?;
    let report = job.run()?;
    let complete = report.is_complete();
    let lines = report.lines(&job.out);
    // The first line and the verdict are news; the rest are problems, said even with -q.
    for (n, line) in lines.iter().enumerate() {
        let news = n == 0 || (complete && n == lines.len() - 1);
        if !(*quiet && news) {
            crate::say!("{line}");
        }
    }
    Ok(if complete { 0 } else { EXIT_FAILED })
}

/// `tune`: the steps as they finish, then the table and the advice.
fn tune(args: &TuneArgs) -> Result<u8, Error> {
    // Every flag by name: a new one that is not handled here does not compile.
    let TuneArgs {
        url,
        ids,
        shards,
        concurrency,
        per_step,
        p99_budget,
        plot,
        report,
        run_flags,
    } = args;
    let session = tune::Tune {
        url: url.clone(),
        ids: ids.parse().map_err(tune::TuneError::Ids)?,
        shards: *shards,
        steps: tune::parse_steps(concurrency)?,
        per_step: config::seconds("per-step", *per_step)?,
        run_flags: {
            tune::check_run_flags(run_flags)?;
            run_flags.clone()
        },
    };
    let measured = session.measure(|m| {
        crate::say!(
            "ringscrape tune: concurrency {}: {:.0} req/s, p99 {:.1} ms",
            m.step,
            m.req_per_s,
            m.p99_ms
        );
    })?;
    let (budget, why) = tune::judged_budget(&measured, *p99_budget);
    let advice = tune::advice(&measured, budget);
    print!("{}", tune::table(&measured, advice));
    if let Some(why) = why {
        println!("{why}");
    }
    if let Some(growing) = tune::still_growing(&measured) {
        println!("{growing}");
    }
    if let Some(path) = plot {
        tune::plot(path, &measured, advice, budget).map_err(tune::TuneError::from)?;
        println!("plot: {}", path.display());
    }
    if let Some(path) = report {
        let state = tune::report_state(&measured, advice, budget);
        view::write_report(path, &state).map_err(|e| tune::TuneError::Report(path.clone(), e))?;
        println!("report: {}", path.display());
    }
    let Some(step) = advice else {
        println!(
            "no concurrency kept p99 within {budget:.0} ms without errors; try lower ones or a larger --p99-budget"
        );
        return Ok(EXIT_FAILED);
    };
    let mut command = vec![
        "ringscrape".to_string(),
        "run".into(),
        "--url".into(),
        url.clone(),
        "--ids".into(),
        "START..END".into(),
    ];
    if let Some(shards) = shards {
        command.extend(["--shards".into(), shards.to_string()]);
    }
    command.extend(["--concurrency".into(), step.to_string()]);
    command.extend(run_flags.iter().cloned());
    println!("run: {}", shell_words::join(redact::redact_args(&command)));
    Ok(0)
}

fn run(args: &RunArgs) -> Result<u8, Error> {
    let cfg = config::resolve(args)?;
    // Before any other thread exists, so that they all inherit the blocked stop signals.
    let launch = supervisor::Launch::from_process(args.given_elsewhere.clone())?;
    let outcome = supervisor::run(&cfg, &launch)?;
    let ran = report::Ran {
        argv: &launch.argv,
        ended: std::time::SystemTime::now(),
        exit_code: exit_code(&outcome),
        complete: outcome.complete,
    };
    report::show(&outcome, &ran, cfg.summary_json.as_deref());
    Ok(ran.exit_code)
}

/// `run` with the given launch (worker program, stop source, command line): the outcome as a
/// value, nothing printed but the notes on the way. For tests that run a scrape in-process.
pub fn scrape(args: &RunArgs, launch: &Launch) -> Result<RunOutcome, Error> {
    let cfg = config::resolve(args)?;
    Ok(supervisor::run(&cfg, launch)?)
}

/// The exit code a run's outcome stands for.
pub fn exit_code(outcome: &RunOutcome) -> u8 {
    match outcome.interrupted {
        Some(signal) => supervisor::signal_exit_code(signal),
        None if outcome.aborted => EXIT_ABORTED,
        // A closed stdout ends the run quietly, as `yes | head` and ripgrep do.
        None if outcome.stdout_closed => 0,
        None if outcome.complete && outcome.too_many_failed.is_some() => EXIT_TOO_MANY_FAILED,
        None if outcome.complete => 0,
        None => EXIT_FAILED,
    }
}
