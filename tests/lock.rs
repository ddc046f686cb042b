//! One writer per output: a second run on a CSV (or a bodies directory) that a running run
//! holds is refused with exit 2, naming the output and the holder's pid, and writes nothing;
//! a killed run leaves no stale lock.

use std::path::Path;

use crate::common::*;

/// A run over 0..20000 into `output` (with `extra` flags), rows already in its file.
fn slow_run(dir: &Path, server: &Server, output: &str, extra: &[&str]) -> std::process::Child {
    let run = TestCommand::run(dir, &server.url(), "0..20000")
        .shards(2)
        .concurrency(16)
        .output(output)
        .args(extra)
        .spawn();
    wait_for_workers(&run, 2, |_| true);
    wait_for_rows(&dir.join(output), 10);
    run
}

#[test]
fn a_second_run_on_a_held_output_is_refused_and_a_killed_run_leaves_no_lock() {
    let server = Server::start(&["--delay-ms", "20..40"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = slow_run(dir.path(), &server, "out.csv", &[]);
    let before = std::fs::read(dir.path().join("out.csv")).expect("partial csv");
    for mode in ["--resume", "--overwrite"] {
        let out = TestCommand::run(dir.path(), &server.url(), "0..20000")
            .output("out.csv")
            .arg(mode)
            .output_of();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{mode}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!(
                "--output out.csv: in use by another ringscrape run (pid {})",
                first.id()
            )),
            "{err}"
        );
    }
    let after = std::fs::read(dir.path().join("out.csv")).expect("csv");
    assert!(
        after.starts_with(&before),
        "the refused runs changed nothing"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = first.wait();
    let out = TestCommand::run(dir.path(), &server.url(), "0..20000")
        .shards(2)
        .concurrency(64)
        .output("out.csv")
        .args(["--resume"])
        .output_of();
    assert_eq!(
        out.status.code(),
        Some(0),
        "no stale lock: {}",
        stderr(&out)
    );
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 20_000);
}

#[test]
fn a_held_bodies_dir_is_refused_too() {
    let server = Server::start(&["--delay-ms", "20..40"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = slow_run(dir.path(), &server, "a.csv", &["--bodies-dir", "bodies"]);
    let out = TestCommand::run(dir.path(), &server.url(), "0..10")
        .output("b.csv")
        .args(["--bodies-dir", "bodies"])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--bodies-dir bodies: in use by another ringscrape run"),
        "{err}"
    );
    assert!(!dir.path().join("b.csv").exists());
    let _ = first.kill();
    let _ = first.wait();
}
