//! Ctrl-C, SIGTERM, crashes of a worker or of the supervisor, and `--resume`: the CSV stays
//! whole, and after any sequence of them and resumes it holds exactly one row per id.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const IDS: u64 = 20_000;

fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(pid as i32), sig).expect("send signal");
}

/// A slow target (20–40 ms per answer) and a run over it that takes ~10 s if left alone.
fn start_slow_run(dir: &Path, extra: &[&str]) -> (Server, Child, Vec<u32>) {
    let server = Server::start(&["--delay-ms", "20..40"]);
    let url = server.url();
    let run = TestCommand::run(dir, &url, &format!("0..{IDS}"))
        .shards(2)
        .concurrency(32)
        .output("out.csv")
        .args(extra)
        .spawn();
    let workers = wait_for_workers(&run, 2, |_| true);
    // Rows have reached the file (the writer flushes at least every second).
    wait_for_rows(&dir.join("out.csv"), 100);
    (server, run, workers)
}

/// A target where every request stalls, and a run over `0..ids` with a 60 s deadline and the
/// given grace period, its workers up and requests in flight.
fn start_stalled_run(dir: &Path, ids: u64, grace: &str) -> (Server, Child) {
    let server = Server::start(&["--stall-every", "1"]);
    let url = server.url();
    let ids = format!("0..{ids}");
    let run = TestCommand::run(dir, &url, &ids)
        .shards(2)
        .concurrency(4)
        .output("out.csv")
        .args(["--grace"])
        .arg(grace)
        .args(["--timeout", "60"])
        .spawn();
    wait_for_workers(&run, 2, |_| true);
    // Each slot's connection is up (its request follows at once): 2 workers × 4.
    let up = wait_for(Duration::from_secs(30), || {
        (connections_to(server.port()) >= 8).then_some(())
    });
    assert!(
        up.is_some(),
        "{} connections",
        connections_to(server.port())
    );
    (server, run)
}

fn finish(run: Child) -> (Option<i32>, String) {
    let out = run.wait_with_output().expect("wait run");
    (out.status.code(), stderr(&out))
}

/// The command printed after `resume with: `, run through the shell as a user would paste it.
fn run_resume_line(dir: &Path, stderr: &str) -> (Option<i32>, String) {
    let line = stderr
        .lines()
        .find_map(|l| {
            l.split_once("resume with: ")
                .map(|(_, cmd)| cmd.to_string())
        })
        .unwrap_or_else(|| panic!("no resume line in: {stderr}"));
    assert!(line.ends_with("--resume"), "{line}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .current_dir(dir)
        .output()
        .expect("sh");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_complete(dir: &Path) {
    let rows = read_rows(&dir.join("out.csv"));
    assert_one_row_per_id(&rows, 0, IDS);
    assert!(rows.iter().all(|r| r.status == Some(200)), "all answered");
}

/// Rows of a partial file: whole, no duplicates, all from the range.
fn partial_rows(dir: &Path) -> Vec<Row> {
    let rows = read_rows(&dir.join("out.csv"));
    let ids: std::collections::HashSet<u64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), rows.len(), "no duplicates");
    assert!(ids.iter().all(|&id| id < IDS));
    rows
}

#[test]
fn sigint_mid_run_exits_130_with_a_whole_csv_and_the_printed_resume_completes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, run, _) = start_slow_run(dir.path(), &[]);
    signal(run.id(), Signal::SIGINT);
    let (code, err) = finish(run);
    assert_eq!(code, Some(130), "{err}");
    let rows = partial_rows(dir.path());
    assert!(
        !rows.is_empty() && (rows.len() as u64) < IDS,
        "{} rows",
        rows.len()
    );
    assert!(
        err.contains(&format!("rows       {} written", rows.len())),
        "every finished row flushed: {err}"
    );
    let (code, err2) = run_resume_line(dir.path(), &err);
    assert_eq!(code, Some(0), "{err2}");
    assert!(
        err2.contains(&format!("{} of {IDS} ids have rows", rows.len())),
        "{err2}"
    );
    assert_complete(dir.path());
}

#[test]
fn the_resume_line_writes_out_flags_from_the_environment_and_completes_in_a_fresh_shell() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A named config file adds a column: a resume without it would be refused.
    std::fs::write(
        dir.path().join("job.toml"),
        "capture_header = ['content-type']\n",
    )
    .expect("write config");
    let server = Server::start(&["--delay-ms", "20..40"]);
    let run = TestCommand::new(dir.path())
        .args(["run", "-u", &server.url()])
        .env("RINGSCRAPE_IDS", format!("0..{IDS}"))
        .env("RINGSCRAPE_SHARDS", "2")
        .env("RINGSCRAPE_CONFIG", "job.toml")
        .concurrency(32)
        .output("out.csv")
        .spawn();
    wait_for_workers(&run, 2, |_| true);
    wait_for_rows(&dir.path().join("out.csv"), 100);
    signal(run.id(), Signal::SIGINT);
    let (code, err) = finish(run);
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains(&format!("--ids 0..{IDS}")) && err.contains("--config job.toml"),
        "{err}"
    );
    // `sh -c` inherits no RINGSCRAPE_* variable: the line alone must say everything.
    let (code, err2) = run_resume_line(dir.path(), &err);
    assert_eq!(code, Some(0), "{err2}");
    assert_complete(dir.path());
    let rows = read_rows(&dir.path().join("out.csv"));
    assert!(rows.iter().all(|r| r.extra.len() == 1), "content-type kept");
}

#[test]
fn resume_of_another_job_exits_2_naming_what_differs_and_leaves_the_file_as_it_was() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out_csv = dir.path().join("out.csv");
    // The first run went to a wrong address: every row is a `connect` error.
    let wrong = format!("http://127.0.0.1:{}/log?id={{id}}", free_port());
    let run = |url: &str, extra: &[&str]| {
        TestCommand::run(dir.path(), url, "0..300")
            .shards(1)
            .concurrency(8)
            .output("out.csv")
            .args(["--retries", "0", "-H", "Authorization: Bearer s3cret-token"])
            .args(extra)
            .output_of()
    };
    let out = run(&wrong, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let record = std::fs::read_to_string(dir.path().join(".out.csv.job.json")).expect("record");
    assert!(
        record.contains("/log?id={id}") && !record.contains("s3cret"),
        "the URL kept, no secret: {record}"
    );
    let before = std::fs::read(&out_csv).expect("read");
    let refused = [
        (server.url(), vec![], "the URL differs"),
        (
            wrong.clone(),
            vec!["-X", "POST"],
            "the method differs (GET then, POST now)",
        ),
        (
            wrong.clone(),
            vec!["-H", "X-Day: {id}"],
            "-H differs (authorization then, authorization, x-day: {id} now)",
        ),
        (
            wrong.clone(),
            vec!["--extract", "v=/v"],
            "--extract differs (none then, v=/v now)",
        ),
        (wrong.clone(), vec!["-d", "x"], "the method differs"),
    ];
    for (url, extra, why) in refused {
        let out = run(&url, &[&["--resume"], extra.as_slice()].concat());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(why) && err.contains("--overwrite"), "{err}");
        assert_eq!(std::fs::read(&out_csv).expect("read"), before, "untouched");
    }
    // What may change on a resume without harm is not refused: shards, concurrency, timeouts,
    // retries, the value of a secret header.
    let out = TestCommand::run(dir.path(), &wrong, "0..300")
        .shards(2)
        .concurrency(3)
        .output("out.csv")
        .args(["--retries", "1", "--timeout", "5s", "--resume"])
        .args(["-H", "Authorization: Bearer another-token"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // An output of an earlier build, without its record, still resumes.
    std::fs::remove_file(dir.path().join(".out.csv.job.json")).expect("remove record");
    let out = run(&server.url(), &["--resume"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn sigterm_exits_143() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, run, _) = start_slow_run(dir.path(), &[]);
    signal(run.id(), Signal::SIGTERM);
    let (code, err) = finish(run);
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("resume with: "), "{err}");
    partial_rows(dir.path());
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_the_csv_stays_whole() {
    // Every request stalls, and the grace period is long: only the second signal can end it.
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, run) = start_stalled_run(dir.path(), 1000, "60");
    signal(run.id(), Signal::SIGINT);
    // A second press comes a moment after the first, once it is being handled.
    std::thread::sleep(Duration::from_millis(500));
    let second = Instant::now();
    signal(run.id(), Signal::SIGINT);
    let (code, err) = finish(run);
    assert!(
        second.elapsed() < Duration::from_secs(5),
        "took {:?}",
        second.elapsed()
    );
    assert_eq!(code, Some(130), "{err}");
    assert!(partial_rows(dir.path()).is_empty(), "nothing was answered");
}

#[test]
fn sigkill_of_one_worker_exits_1_names_the_shard_and_resume_completes_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, run, workers) = start_slow_run(dir.path(), &[]);
    let victim = *workers
        .iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("--shard\u{0}1\u{0}"))
        })
        .expect("worker of shard 1");
    signal(victim, Signal::SIGKILL);
    let (code, err) = finish(run);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("shard 1 (ids 10000..20000) failed: killed by signal 9 (SIGKILL)"),
        "{err}"
    );
    let rows = partial_rows(dir.path());
    let shard0 = rows.iter().filter(|r| r.id < 10_000).count();
    assert_eq!(shard0, 10_000, "the other shard finished");
    let (code, err2) = run_resume_line(dir.path(), &err);
    assert_eq!(code, Some(0), "{err2}");
    assert_complete(dir.path());
}

#[test]
fn sigkill_of_the_supervisor_leaves_no_worker_and_resume_completes_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, run, workers) = start_slow_run(dir.path(), &[]);
    signal(run.id(), Signal::SIGKILL);
    let mut run = run;
    let _ = run.wait();
    let gone = wait_for(Duration::from_secs(3), || {
        workers
            .iter()
            .all(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
                    stat[stat.rfind(')').map_or(0, |i| i + 2)..].starts_with('Z')
                })
            })
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "workers still running 3 s after the supervisor died"
    );
    partial_rows_allowing_torn_end(dir.path());
    let ids = format!("0..{IDS}");
    let url = server.url();
    let out = TestCommand::run(dir.path(), &url, &ids)
        .shards(2)
        .concurrency(32)
        .output("out.csv")
        .args(["--resume"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_complete(dir.path());
}

/// After a SIGKILL the file may end in a torn line: everything before it must be whole rows.
fn partial_rows_allowing_torn_end(dir: &Path) {
    let text = std::fs::read_to_string(dir.join("out.csv")).expect("read");
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    assert!(
        complete.starts_with("id,status,bytes,latency_ms,attempts,error\n") || complete.is_empty()
    );
    for line in complete.lines().skip(1) {
        assert_eq!(line.split(',').count(), 6, "whole row: {line:?}");
    }
}

#[test]
fn resume_with_retry_failed_refetches_failed_rows_and_keeps_one_row_per_id() {
    let server = Server::start(&["--fail-first", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let first = || {
        TestCommand::run(dir.path(), &url, "0..500")
            .shards(2)
            .concurrency(16)
            .output("out.csv")
            .args(["--retries", "0"])
    };
    let out = first().output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert!(
        rows.iter().all(|r| r.status == Some(503)),
        "first attempts all answered 503"
    );

    // Plain --resume: every id has a row, nothing to do.
    let out = first().arg("--resume").output_of();
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("nothing to do"), "{}", stderr(&out));

    let out = first().args(["--resume", "--retry-failed"]).output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 500);
    assert!(
        rows.iter()
            .all(|r| r.status == Some(200) && r.attempts == 1),
        "{:?}",
        rows[0]
    );
}

#[test]
fn resume_says_how_many_kept_rows_failed_and_retry_failed_takes_the_kinds_to_fetch_again() {
    let server = Server::start(&["--fail-first", "1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let run = |extra: &[&str]| {
        TestCommand::run(dir.path(), &url, "0..300")
            .shards(2)
            .concurrency(16)
            .output("out.csv")
            .args(["--retries", "0"])
            .args(extra)
            .output_of()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["--resume"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("; 300 of the kept rows failed (503 300): --retry-failed fetches them again"),
        "{}",
        stderr(&out)
    );
    // Rows of a kind not named stay.
    let out = run(&["--resume", "--retry-failed=errors,404"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to do"), "{}", stderr(&out));
    let out = run(&["--resume", "--retry-failed=5xx,oops"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`oops` is not errors"),
        "{}",
        stderr(&out)
    );
    let out = run(&["--resume", "--retry-failed=errors,5xx,429"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 300);
    assert!(rows.iter().all(|r| r.status == Some(200)), "{:?}", rows[0]);
}

#[test]
fn after_the_grace_period_unanswered_requests_are_abandoned_and_left_to_resume() {
    // Every request stalls and the deadline is far away: only the grace period ends the run.
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, run) = start_stalled_run(dir.path(), 100, "1");
    let stopped = Instant::now();
    signal(run.id(), Signal::SIGINT);
    let (code, err) = finish(run);
    let took = stopped.elapsed();
    assert_eq!(code, Some(130), "{err}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert!(
        partial_rows(dir.path()).is_empty(),
        "no stalled id gets a row"
    );
    assert!(
        err.contains("0 of 100 items have rows") && err.contains("resume with: "),
        "{err}"
    );
}

#[test]
fn resume_works_over_the_widest_range_in_small_memory() {
    let server = Server::start(&["--delay-ms", "20..40"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    for round in 0..2 {
        let mut run = TestCommand::run(dir.path(), &url, "0..18446744073709551615")
            .shards(2)
            .concurrency(8)
            .output("out.csv");
        if round == 1 {
            run = run.arg("--resume");
        }
        let run = run.spawn();
        let workers = wait_for_workers(&run, 2, |_| true);
        // Measured once the run is well under way: 100 more rows in the file.
        let csv = dir.path().join("out.csv");
        wait_for_rows(&csv, line_count(&csv).saturating_sub(1) + 100);
        for pid in workers.iter().copied().chain([run.id()]) {
            let kb = rss_kib(pid);
            assert!(
                kb > 0 && kb < 100_000,
                "process {pid}: {kb} kB (round {round})"
            );
        }
        signal(run.id(), Signal::SIGINT);
        let (code, err) = finish(run);
        assert_eq!(code, Some(130), "round {round}: {err}");
        if round == 1 {
            assert!(err.contains("resuming out.csv:"), "{err}");
        }
    }
    let rows = read_rows(&dir.path().join("out.csv"));
    let ids: std::collections::HashSet<u64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), rows.len(), "no duplicates");
    // The resumed run's shards start where the done ids leave off and halfway through the range.
    assert!(
        rows.iter().any(|r| r.id >= u64::MAX / 2),
        "the second shard's ids"
    );
}

/// Bodies of many lines (indented JSON) are quoted fields over several lines of the CSV: a kill
/// -9 can tear a row inside one. Four kills at different moments, each followed by `--resume`,
/// then a last `--resume`: one whole row per id, every body the document of its id.
#[test]
fn kill_9_inside_multi_line_bodies_then_resume_leaves_one_whole_row_per_id() {
    let target = AiohttpTarget::start_script("coded_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/pretty?id={{id}}", target.base);
    let scrape = || {
        TestCommand::run(dir.path(), &url, "0..20000")
            .shards(2)
            .concurrency(16)
            .output("out.csv")
            .args(["--save-body", "--no-progress"])
    };
    let csv = dir.path().join("out.csv");
    for (round, after_ms) in [350u64, 700, 1100, 1500].into_iter().enumerate() {
        let run = if round == 0 {
            scrape()
        } else {
            scrape().arg("--resume")
        };
        let mut run = run.spawn();
        // A kill at each of four moments of the run (not at a state one could wait for) is
        // what this tests.
        std::thread::sleep(Duration::from_millis(after_ms));
        kill_9(&mut run);
        assert!(csv.exists(), "round {round}: the file was created");
    }
    let err = scrape().arg("--resume").ok();
    assert!(err.contains("resuming out.csv"), "{err}");
    let rows = read_rows(&csv);
    assert_one_row_per_id(&rows, 0, 20_000);
    for row in &rows {
        let body: serde_json::Value = serde_json::from_str(&row.extra[0])
            .unwrap_or_else(|e| panic!("id {}: body is not the document: {e}", row.id));
        assert_eq!(body["id"], row.id, "{row:?}");
        assert_eq!(body["items"][2]["id"], 10 * row.id + 2, "{row:?}");
        assert!(row.extra[0].contains('\n'), "a body of many lines");
    }
}
