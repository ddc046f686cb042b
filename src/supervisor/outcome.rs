//! How a run ended, as a value: what [`super::run`] gathered at the end ([`Ended`]) judged into
//! a [`RunOutcome`] — complete or not, what is missing and how to resume, and `--max-failed`'s
//! verdict. No I/O: `main`'s caller prints it and picks the exit code.

use std::io;
use std::time::Duration;

use crate::failed::MaxFailed;
use crate::output::writer::WriterReport;
use crate::output::{Kept, Output};
use crate::stats::{Summary, WorkerStats};
use crate::timeline::Views;

use super::failures::TooManyFailed;

/// How a run ended, as a value: `main`'s caller prints it (the summary, what is missing) and
/// picks the exit code from it.
#[derive(Debug)]
pub struct RunOutcome {
    /// Every id of the range has exactly one row.
    pub complete: bool,
    /// The stop signal (Ctrl-C, SIGTERM) that ended the run early, if any.
    pub interrupted: Option<nix::sys::signal::Signal>,
    /// `--abort-after` stopped the run: the target looked down.
    pub aborted: bool,
    /// Standard output was closed by its reader (`… -o - | head`): the run stopped quietly.
    pub stdout_closed: bool,
    /// The closing figures; `None` when there was nothing to do.
    pub summary: Option<Summary>,
    /// Some ids have no row: how many do, and how to complete the run.
    pub missing: Option<Missing>,
    /// More of the rows failed than `--max-failed` allows (exit 4).
    pub too_many_failed: Option<TooManyFailed>,
}

/// What an incomplete run leaves, for the closing message.
#[derive(Debug, Clone)]
pub struct Missing {
    pub have_rows: u64,
    pub items: u64,
    pub output: Output,
    /// Writing failed (a full disk): the bytes after the file's last whole row, which
    /// `--resume` cuts; `None` when writing did not fail.
    pub torn_after_failure: Option<u64>,
    /// The keys came on standard input: the resume needs them again.
    pub keys_on_stdin: bool,
    /// The command line that completes the run.
    pub resume_command: String,
}

/// Everything a run's end is judged from, gathered by [`run_shards`].
pub(super) struct Ended {
    pub(super) report: WriterReport,
    /// The rows over time and over the id space.
    pub(super) views: Views,
    /// Each worker's last figures (rate gate, answers, concurrency found).
    pub(super) workers: Vec<WorkerStats>,
    pub(super) failed_shards: usize,
    /// After a failed write: the whole rows on disk and the torn bytes after them.
    pub(super) on_disk: Option<(u64, u64)>,
    pub(super) kept: u64,
    pub(super) kept_rows: Kept,
    pub(super) empties: u64,
    pub(super) items: u64,
    pub(super) wall: Duration,
    pub(super) auto_concurrency: bool,
    pub(super) output: Output,
    pub(super) keys_on_stdin: bool,
    pub(super) resume_command: String,
    pub(super) interrupted: Option<nix::sys::signal::Signal>,
    /// `--auth-command` failed and stopped the run.
    pub(super) auth_failed: bool,
    /// `--max-failed`.
    pub(super) max_failed: Option<MaxFailed>,
}

/// The reader of standard output went away (`… -o - | head`): the run stops quietly, as
/// `yes | head` does, rather than failing.
pub(super) fn stdout_went_away(output: &Output, failed: Option<&io::Error>) -> bool {
    *output == Output::Stdout && failed.is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// `--max-failed`'s verdict on the whole file: this run's rows and those kept from earlier
/// runs, so that a resume that fetches little (or nothing) does not turn a job whose kept rows
/// failed into a success.
pub(super) fn too_many_failed(
    max: Option<MaxFailed>,
    tally: &WorkerStats,
    kept: &Kept,
) -> Option<TooManyFailed> {
    let max = max?;
    let failed = max.counts.count_in(tally) + max.counts.count_labelled(&kept.failed);
    TooManyFailed::judge(failed, tally.rows + kept.rows, Some(max.limit))
}

/// The run's outcome from how it ended; no I/O. Counts and latencies are the rows' own
/// (tallied by the writer: exactly the file's); time at the rate gate and what the answers
/// showed are the workers'.
pub(super) fn summarize(ended: Ended) -> RunOutcome {
    let Ended {
        report,
        workers,
        views,
        ..
    } = ended;
    let stdout_closed = stdout_went_away(&ended.output, report.failed.as_ref());
    // Items with all their rows: every row's item, but with `--next` a chain's last page's.
    let (rows, items_written, torn_after_failure) = match ended.on_disk {
        Some((rows, torn)) if report.failed.is_some() => {
            let rows = rows.saturating_sub(ended.kept);
            (rows, rows, Some(torn))
        }
        _ => (report.rows, report.ended, None),
    };
    let mut tally = report.tally;
    tally.throttled_us = workers.iter().map(|stats| stats.throttled_us).sum();
    tally.paced_by_quota_us = workers.iter().map(|s| s.paced_by_quota_us).sum();
    for stats in &workers {
        tally.answers.merge(&stats.answers);
        tally.hosts.merge(&stats.hosts);
    }
    let auto_concurrency = if ended.auto_concurrency {
        workers
            .iter()
            .map(|stats| stats.concurrency_limit)
            .collect()
    } else {
        Vec::new()
    };
    let too_many_failed = too_many_failed(ended.max_failed, &tally, &ended.kept_rows);
    let have_rows = ended.kept + items_written;
    let summary = Summary {
        stats: tally,
        rows_written: rows,
        items: ended.items,
        items_done: have_rows,
        output: match &ended.output {
            Output::File(path) => Some(path.clone()),
            Output::Stdout => None,
        },
        empty_lines: ended.empties,
        wall: ended.wall,
        auto_concurrency,
        timeline: Some(views.timeline),
        map: Some(views.map),
        drivers: workers.iter().filter_map(|s| s.driver.clone()).collect(),
    };
    let complete = report.failed.is_none() && ended.failed_shards == 0 && have_rows == ended.items;
    let missing = (!complete && !stdout_closed).then_some(Missing {
        have_rows,
        items: ended.items,
        output: ended.output,
        torn_after_failure,
        keys_on_stdin: ended.keys_on_stdin,
        resume_command: ended.resume_command,
    });
    RunOutcome {
        complete,
        interrupted: ended.interrupted,
        aborted: report.aborted || ended.auth_failed,
        stdout_closed,
        summary: Some(summary),
        missing,
        too_many_failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failed::FailedRows;
    use std::path::PathBuf;

    fn ended(rows: u64, kept: u64, items: u64) -> Ended {
        let mut tally = WorkerStats::new();
        tally.rows = rows;
        Ended {
            report: WriterReport {
                rows,
                ended: rows,
                rows_by_shard: vec![rows],
                errors: 0,
                failed: None,
                aborted: false,
                tally,
                first: Default::default(),
            },
            views: Views {
                timeline: crate::timeline::Timeline::new(std::time::Instant::now()),
                map: crate::timeline::IdMap::new(crate::ids::IdRange::new(0, items)),
            },
            workers: Vec::new(),
            failed_shards: 0,
            on_disk: None,
            kept,
            kept_rows: Kept::default(),
            empties: 0,
            items,
            wall: Duration::from_secs(2),
            auto_concurrency: false,
            output: Output::File(PathBuf::from("out.csv")),
            keys_on_stdin: false,
            resume_command: "ringscrape run … --resume".into(),
            interrupted: None,
            auth_failed: false,
            max_failed: None,
        }
    }

    #[test]
    fn a_run_is_complete_when_kept_and_new_rows_cover_every_item() {
        let mut run = ended(90, 10, 100);
        let mut worker = WorkerStats::new();
        worker.throttled_us = 1_500;
        worker.concurrency_limit = 60;
        run.workers = vec![worker.clone(), worker];
        run.auto_concurrency = true;
        let outcome = summarize(run);
        assert!(outcome.complete && outcome.missing.is_none());
        let summary = outcome.summary.expect("a summary");
        assert_eq!(summary.rows_written, 90);
        assert_eq!(summary.stats.throttled_us, 3_000);
        assert_eq!(summary.auto_concurrency, vec![60, 60]);
    }

    #[test]
    fn the_summary_has_every_workers_hosts_and_time_paced_by_quotas() {
        let mut run = ended(4, 0, 4);
        let worker = |host: &str| {
            let mut stats = WorkerStats::new();
            stats.paced_by_quota_us = 2_000_000;
            stats.hosts.touched = 1;
            stats.hosts.top.push(crate::stats::HostFigures {
                host: host.to_string(),
                requests: 2,
                ..Default::default()
            });
            stats
        };
        run.workers = vec![worker("a.test"), worker("b.test")];
        let summary = summarize(run).summary.expect("a summary");
        assert_eq!(summary.stats.paced_by_quota_us, 4_000_000);
        assert_eq!(summary.stats.hosts.touched, 2);
        let hosts: Vec<&str> = summary
            .stats
            .hosts
            .top
            .iter()
            .map(|h| h.host.as_str())
            .collect();
        assert_eq!(hosts, ["a.test", "b.test"]);
    }

    #[test]
    fn max_failed_is_passed_by_a_share_above_it_only() {
        let five_percent = MaxFailed {
            limit: 0.05,
            counts: FailedRows::AT_LEAST_400,
        };
        let mut run = ended(100, 0, 100);
        run.report.tally.statuses.insert(500, 5);
        run.max_failed = Some(five_percent);
        assert_eq!(
            summarize(run).too_many_failed,
            None,
            "5 of 100 is 5%: allowed"
        );
        let mut run = ended(100, 0, 100);
        run.report.tally.statuses.insert(404, 6);
        run.report.tally.statuses.insert(302, 10);
        run.max_failed = Some(five_percent);
        let over = summarize(run).too_many_failed.expect("6% is more than 5%");
        assert_eq!((over.failed, over.rows), (6, 100));
        let mut run = ended(100, 0, 100);
        run.report.tally.statuses.insert(500, 100);
        assert_eq!(
            summarize(run).too_many_failed,
            None,
            "no --max-failed: no judgement"
        );
    }

    #[test]
    fn after_a_failed_write_the_rows_on_disk_are_what_counts() {
        let mut run = ended(90, 10, 100);
        run.report.failed = Some(io::Error::other("No space left on device"));
        run.on_disk = Some((70, 12));
        let outcome = summarize(run);
        assert!(!outcome.complete);
        assert_eq!(outcome.summary.expect("a summary").rows_written, 60);
        let missing = outcome.missing.expect("ids are missing");
        assert_eq!((missing.have_rows, missing.items), (70, 100));
        assert_eq!(missing.torn_after_failure, Some(12));
        assert_eq!(missing.resume_command, "ringscrape run … --resume");
    }

    #[test]
    fn a_closed_stdout_ends_quietly_and_a_failed_shard_does_not() {
        let mut run = ended(5, 0, 100);
        run.output = Output::Stdout;
        run.report.failed = Some(io::Error::from(io::ErrorKind::BrokenPipe));
        let outcome = summarize(run);
        assert!(outcome.stdout_closed && !outcome.complete && outcome.missing.is_none());

        let mut run = ended(100, 0, 100);
        run.failed_shards = 1;
        let outcome = summarize(run);
        assert!(!outcome.complete && !outcome.stdout_closed);
        assert_eq!(outcome.missing.expect("resumable").have_rows, 100);
    }
}
