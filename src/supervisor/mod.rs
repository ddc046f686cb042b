//! The supervisor: checks and raises the open-files limit, splits the range into shards, starts
//! one pinned worker process per shard, turns their pipes into rows (its main thread is the
//! writer), and returns the run's outcome (the summary, what is missing) for the caller to print.

mod credentials;
mod driver_note;
mod error;
mod failures;
mod keeper;
mod launch;
mod limits;
mod outcome;
mod pipes;
mod resume_line;
mod shards;
mod signals;
mod spawn;
mod views;

use std::sync::Arc;

pub use outcome::{Missing, RunOutcome};
use outcome::{summarize, too_many_failed};

pub use error::SupervisorError;
pub use launch::Launch;
pub use signals::exit_code as signal_exit_code;

use crate::config::RunConfig;
use crate::ids::IdSet;
use crate::metrics;
use crate::model::BodyColumn;

use crate::output::job_record::JobRecord;
use crate::output::{ArrowCopyTo, Spec};
use crate::stats::WorkerStats;
use crate::timeline::IdMap;
use credentials::Credentials;
pub use failures::TooManyFailed;
use failures::target_of;
use shards::{Prepared, plan_shards, run_shards};
pub use signals::Stop;

/// Runs a whole scrape: checks and notes before anything starts, the output prepared (locked,
/// opened or resumed), the shards run to their end, and the outcome summed up.
pub fn run(cfg: &RunConfig, launch: &Launch) -> Result<RunOutcome, SupervisorError> {
    preflight(cfg)?;
    let credentials = cfg
        .auth
        .as_ref()
        .map(Credentials::fetch_first)
        .transpose()?;
    let prepared = prepare_output(cfg, &launch.stop)?;
    let plan = plan_shards(cfg, prepared.skip.as_ref(), &prepared.open);
    if plan.is_empty() {
        crate::note!(
            "ringscrape: nothing to do: every id of {} has a row in {}",
            cfg.job.items(),
            cfg.output.path().display()
        );
        return Ok(RunOutcome {
            complete: true,
            interrupted: None,
            aborted: false,
            stdout_closed: false,
            summary: None,
            missing: None,
            too_many_failed: too_many_failed(
                cfg.max_failed,
                &WorkerStats::new(),
                &prepared.kept_rows,
            ),
        });
    }
    let ended = run_shards(cfg, launch, &plan, prepared, credentials)?;
    Ok(summarize(ended))
}

/// The open-files limit raised for the run, and what the user should know before it starts.
fn preflight(cfg: &RunConfig) -> Result<(), SupervisorError> {
    crate::verbosity::set(cfg.fetch.verbosity);
    let slots = limits::Slots {
        concurrency: cfg.fetch.concurrency,
        auto: cfg.fetch.auto_concurrency,
        files_each: limits::files_per_slot(matches!(cfg.fetch.schema.body, BodyColumn::Files(_))),
    };
    limits::raise_nofile(cfg.shards, slots)?;
    // HTTP/2 multiplexes: a few connections whatever the concurrency. Each source address has
    // the port range to itself.
    let sources = cfg.fetch.net.local_addrs.len().max(1);
    let connections = (cfg.shards * cfg.fetch.concurrency / sources) as u64;
    if !cfg.fetch.protocol.multiplexes()
        && let Some(advice) = limits::port_advice_here(connections)
    {
        crate::note!("{advice}");
    }
    if let Some(node) = &cfg.node {
        crate::note!(
            "ringscrape: node {} of {} (from {}): {} {}",
            node.index,
            node.count,
            node.source,
            cfg.job.noun(),
            cfg.job.items()
        );
    }
    if cfg.fetch.trust.insecure {
        crate::note!("ringscrape: warning: --insecure: TLS certificates are not verified");
    }
    // A name that does not resolve would fail every request the same way: say so now, before
    // any worker starts or any file is made. A host from the keys is each item's own (`dns`
    // rows).
    if let Some((host, port)) = target_of(cfg).host_to_resolve() {
        crate::diagnosis::check_resolves(host, port)
            .map_err(|e| SupervisorError::Unresolved(host.to_string(), port, e))?;
    }
    Ok(())
}

fn prepare_output(cfg: &RunConfig, stop: &Arc<Stop>) -> Result<Prepared, SupervisorError> {
    let bind = |flag: &'static str, addr: Option<std::net::SocketAddr>| match addr {
        Some(addr) => metrics::bind(addr)
            .map(Some)
            .map_err(|e| SupervisorError::Listen(flag, addr.to_string(), e)),
        None => Ok(None),
    };
    let metrics = bind("metrics", cfg.metrics)?;
    let dashboard = bind("dashboard", cfg.dashboard)?;
    let bodies_dir = match &cfg.fetch.schema.body {
        BodyColumn::Files(dir) => Some(dir.as_path()),
        _ => None,
    };
    let job = cfg
        .job
        .identities()
        .map(|key_files| JobRecord::new(key_files, Some(cfg.job_request.clone())))
        .map_err(SupervisorError::KeyFile)?;
    let opened = crate::output::open(&Spec {
        output: &cfg.output,
        format: cfg.format,
        mode: cfg.mode,
        schema: &cfg.fetch.schema,
        ids: cfg.job.items(),
        part_rows: cfg.part_rows,
        bodies_dir,
        job: &job,
        arrow_copy: cfg.arrow_copy.as_ref().map(|output| ArrowCopyTo {
            output,
            stop_run: {
                let stop = stop.clone();
                Arc::new(move || stop.request(nix::sys::signal::Signal::SIGINT))
            },
        }),
    })?;
    let (rows, done, open, kept_rows) = (opened.rows, opened.done, opened.open, opened.kept);
    let map = opened.map.unwrap_or_else(|| IdMap::new(cfg.job.items()));
    let kept = done.as_ref().map_or(0, IdSet::count);
    let empties = cfg.job.not_items_count();
    let skip = match (done, cfg.job.not_items()) {
        (Some(mut done), Some(not_items)) => {
            done.union_with(not_items);
            Some(done)
        }
        (None, Some(not_items)) => Some(not_items.clone()),
        (done, None) => done,
    };
    if empties > 0 {
        crate::note!("ringscrape: skipping {empties} empty lines of the --ids-file");
    }
    Ok(Prepared {
        metrics,
        dashboard,
        _locks: opened.locks,
        rows,
        kept,
        kept_rows,
        empties,
        skip,
        open,
        map,
    })
}
