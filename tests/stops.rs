//! Runs that cannot go on: a target that is down (`--abort-after`, exit 3), a disk that is full
//! (exit 1, the cause named first, the resume command last, no worker blamed), and a reader of
//! stdout that went away (`-o - | head`: a quiet exit 0).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

#[test]
fn a_target_that_is_down_stops_the_run_with_exit_3_and_a_resume_command() {
    let port = free_port(); // nothing listens there
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{port}/log?id={{id}}");
    let out = TestCommand::run(dir.path(), &url, "0..100000")
        .shards(2)
        .concurrency(8)
        .output("out.csv")
        .args(["--retries", "0", "--abort-after", "50"])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    // It says why, with the fix (issue 36 item 4), by the stop or by the first rows' warning.
    assert!(
        err.contains("stopping: the last 50 items in a row failed:"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "nothing listens at 127.0.0.1:{port} (connection refused)"
        )),
        "{err}"
    );
    assert!(
        err.trim_end()
            .lines()
            .last()
            .is_some_and(|l| l.contains("resume with: ")),
        "{err}"
    );
    let rows = read_rows(&dir.path().join("out.csv"));
    // Refused connects take microseconds: the workers are a few batches ahead of the writer
    // when it sees the 50th, but far from the end.
    assert!(
        rows.len() >= 50 && rows.len() < 20_000,
        "{} rows",
        rows.len()
    );
    assert!(rows.iter().all(|r| r.error == "connect"));

    // 0 never stops.
    let out = TestCommand::run(dir.path(), &url, "0..300")
        .shards(1)
        .concurrency(8)
        .output("all.csv")
        .args(["--retries", "0", "--abort-after", "0"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(read_rows(&dir.path().join("all.csv")).len(), 300);
}

#[test]
fn a_full_disk_names_the_cause_first_and_the_resume_command_last() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), &server.url(), "0..200000")
        .shards(2)
        .concurrency(32)
        .output("/dev/full")
        .args(["--overwrite"])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("error: writing /dev/full: No space left on device (os error 28)"),
        "{err}"
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("resume with: ")),
        "{err}"
    );
    assert!(
        !err.contains("failed") && !err.contains("killed by signal"),
        "no shard blamed: {err}"
    );
}

/// A tmpfs of `size` mounted at `dir/small` (root only), to fill.
fn small_tmpfs(dir: &std::path::Path, size: &str) -> std::path::PathBuf {
    needs_root("mount -t tmpfs");
    let mnt = dir.join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mount a tmpfs at {}", mnt.display());
    mnt
}

#[test]
#[ignore = "needs root: mounts a small tmpfs to fill (make test)"]
fn a_full_tmpfs_then_resume_completes_the_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = small_tmpfs(dir.path(), "256k");
    let server = Server::start(&[]);
    let out = TestCommand::run(&mnt, &server.url(), "0..20000")
        .shards(2)
        .concurrency(16)
        .output("out.csv")
        .args(["--save-body"])
        .output_of();
    let err = stderr(&out);
    // What the file holds, before it grows again: the summary and the closing line say so.
    let path = mnt.join("out.csv");
    let on_disk =
        ringscrape::output::rows_on_disk(&path, ringscrape::output::formats::of_path(&path));
    let remounted = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    let resumed = if remounted {
        Some(
            TestCommand::run(&mnt, &server.url(), "0..20000")
                .shards(2)
                .concurrency(16)
                .output("out.csv")
                .args(["--save-body", "--resume"])
                .output_of(),
        )
    } else {
        None
    };
    let rows = remounted.then(|| read_rows(&mnt.join("out.csv")));
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: writing out.csv: No space left on device"),
        "{err}"
    );
    let (rows_on_disk, torn) = on_disk.expect("count the file's rows");
    assert!(
        err.contains(&format!("rows       {rows_on_disk} written")),
        "the summary counts the file's {rows_on_disk} rows: {err}"
    );
    let closing = if torn > 0 {
        format!(
            "{rows_on_disk} of 20000 items have whole rows in out.csv, then {torn} bytes of a torn row"
        )
    } else {
        format!("{rows_on_disk} of 20000 items have rows in out.csv")
    };
    assert!(err.contains(&closing), "{closing}: {err}");
    let resumed = resumed.expect("remount to a larger size");
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let rows = rows.expect("rows");
    assert_one_row_per_id(&rows, 0, 20_000);
    assert!(
        rows.iter()
            .all(|r| r.status == Some(200) && r.extra[0].len() as u64 == r.bytes)
    );
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_with_exit_0() {
    let server = Server::start(&[]);
    let mut run = TestCommand::run(std::path::Path::new("."), &server.url(), "0..2000000")
        .shards(2)
        .concurrency(32)
        .output("-")
        .into_command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let stdout = run.stdout.take().expect("stdout");
    let head: Vec<String> = BufReader::new(stdout)
        .lines()
        .take(10)
        .map(|l| l.expect("line"))
        .collect();
    assert_eq!(head[0], "id,status,bytes,latency_ms,attempts,error");
    // The reader goes away, as `head` does.
    let out = run.wait_with_output().expect("wait");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        !err.contains("failed") && !err.contains("killed by signal"),
        "{err}"
    );
    assert!(!err.lines().any(|l| l.starts_with("error")), "{err}");
    assert!(err.contains("Summary:"), "{err}");
}

#[test]
fn a_closed_stderr_does_not_end_the_run() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    // As `ringscrape … 2>&1 | head -1`: the reader of stderr is gone before the first line.
    let mut run = TestCommand::run(dir.path(), &server.url(), "0..20000")
        .shards(2)
        .output("out.csv")
        .arg("-v")
        .into_command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    drop(run.stderr.take());
    let status = run.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "not a panic (101)");
    assert_one_row_per_id(&read_rows(&dir.path().join("out.csv")), 0, 20_000);
}

#[test]
fn no_credential_reaches_stderr_and_a_header_file_is_shown_as_given() {
    let port = free_port(); // nothing listens there
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("h.txt"), "X-Session: sess-in-file\n").expect("headers");
    let out = TestCommand::run(
        dir.path(),
        &format!("http://127.0.0.1:{port}/{{id}}"),
        "0..5000",
    )
    .output("out.csv")
    .args([
        "-H",
        "Authorization: Bearer s3cret-token",
        "--header=X-Api-Key: k3y",
    ])
    .args([
        "-H",
        "@h.txt",
        "--retries",
        "0",
        "--abort-after",
        "20",
        "-v",
    ])
    // Refused connects take microseconds: unpaced, the 5,000 ids were all done before the stop
    // (rows reach the supervisor every 25 ms), and a finished run has nothing to resume.
    .args(["--rate", "2000"])
    .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("resume with:"), "{err}");
    for secret in ["s3cret-token", "k3y", "sess-in-file"] {
        assert!(!err.contains(secret), "{secret} on stderr: {err}");
    }
    assert!(
        err.contains("'Authorization: <redacted>'") && err.contains("@h.txt"),
        "{err}"
    );

    // A malformed line of a header file is not echoed with its secret.
    std::fs::write(dir.path().join("bad.txt"), "X-Api-Key k3y-without-colon\n").expect("headers");
    let out = TestCommand::run(dir.path(), "http://127.0.0.1:9/{id}", "0..5")
        .output("o.csv")
        .args(["-H", "@bad.txt"])
        .output_of();
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("k3y"), "{}", stderr(&out));
}

#[test]
fn a_stopped_supervisor_pauses_new_ids_and_freezes_no_request_into_a_timeout() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let run = TestCommand::run(dir.path(), &server.url(), "0..300000")
        .shards(2)
        .concurrency(64)
        .output("out.csv")
        .args(["--timeout", "1", "--retries", "0", "--no-progress"])
        .spawn();
    let pid = nix::unistd::Pid::from_raw(run.id() as i32);
    wait_for_rows(&dir.path().join("out.csv"), 100);
    // Longer than --timeout: the workers' pipes fill while the supervisor reads nothing.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("stop");
    std::thread::sleep(Duration::from_millis(3000));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("continue");
    let out = run.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 300_000);
    let timeouts = rows.iter().filter(|r| r.error == "timeout").count();
    assert_eq!(timeouts, 0, "answered requests frozen into timeouts");
}

#[test]
#[ignore = "needs root: mounts a small tmpfs to fill (make test)"]
fn a_full_tmpfs_under_parquet_counts_the_rows_a_reader_finds_then_resume_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = small_tmpfs(dir.path(), "192k");
    let server = Server::start(&[]);
    let scrape = || {
        TestCommand::run(&mnt, &server.url(), "0..20000")
            .shards(2)
            .concurrency(16)
            .output("out.parquet")
            .args(["--save-body", "--part-rows", "300", "--no-progress"])
    };
    let out = scrape().output_of();
    let err = stderr(&out);
    let path = mnt.join("out.parquet");
    let readable =
        ringscrape::output::rows_on_disk(&path, ringscrape::output::formats::of_path(&path));
    let remounted = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    let resumed = remounted.then(|| scrape().arg("--resume").output_of());
    let merged = remounted.then(|| {
        ringscrape(
            &mnt,
            &["merge", "-i", "0..20000", "all.parquet", "out.parquet"],
        )
    });
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let (readable, _) = readable.expect("count the parts' rows");
    assert!(
        readable < 20_000,
        "the disk filled before the end: {readable}"
    );
    let closing = format!("{readable} of 20000 items have rows in out.parquet");
    assert!(err.contains(&closing), "{closing}: {err}");
    let resumed = resumed.expect("remount to a larger size");
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let merged = merged.expect("merge");
    assert_eq!(
        merged.status.code(),
        Some(0),
        "every id once: {}",
        stderr(&merged)
    );
}
