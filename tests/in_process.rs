//! A scrape run inside the test's own process: the supervisor takes its worker program, its
//! stop source and its command line from the caller (`Launch`), and returns the outcome as a
//! value instead of printing it.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use crate::common::*;
use nix::sys::signal::Signal;
use ringscrape::cli::{self, Command};
use ringscrape::{Launch, Stop};

fn run_args(argv: &[String]) -> cli::RunArgs {
    let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
    match cli::parse(argv).expect("valid flags").command {
        Command::Run(args) => args,
        other => panic!("not run: {other:?}"),
    }
}

fn argv(dir: &Path, url: &str, ids: &str) -> Vec<String> {
    // An empty config file: the tester's own (~/.config/ringscrape/config.toml) must not add its flags.
    std::fs::write(dir.join("empty.toml"), "").expect("config");
    [
        "ringscrape",
        "run",
        "-u",
        url,
        "-i",
        ids,
        "-s",
        "2",
        "-c",
        "8",
        "--no-progress",
        "-q",
        "--config",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        dir.join("empty.toml").display().to_string(),
        "-o".into(),
        dir.join("out.csv").display().to_string(),
    ])
    .collect()
}

#[test]
fn a_scrape_in_process_returns_its_outcome_as_a_value() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let argv = argv(dir.path(), &server.url(), "0..3000");
    let launch = Launch {
        worker_exe: BIN.into(),
        stop: Arc::new(Stop::default()),
        argv: argv.clone(),
        given_elsewhere: Vec::new(),
    };
    let outcome = ringscrape::scrape(&run_args(&argv), &launch).expect("a run");
    assert!(outcome.complete && outcome.missing.is_none(), "{outcome:?}");
    let summary = outcome.summary.as_ref().expect("figures");
    assert_eq!((summary.rows_written, summary.stats.ok_2xx), (3000, 3000));
    assert_eq!(ringscrape::exit_code(&outcome), 0);
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 3000);
}

#[test]
fn a_stop_asked_for_mid_run_ends_it_with_the_resume_command_in_the_outcome() {
    let server = Server::start(&["--delay-ms", "5..10"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let argv = argv(dir.path(), &server.url(), "0..200000");
    let launch = Launch {
        worker_exe: BIN.into(),
        stop: Arc::new(Stop::default()),
        argv: argv.clone(),
        given_elsewhere: Vec::new(),
    };
    let stop = launch.stop.clone();
    let csv = dir.path().join("out.csv");
    let stopper = std::thread::spawn(move || {
        wait_for_rows(&csv, 100);
        stop.request(Signal::SIGINT);
    });
    let outcome = ringscrape::scrape(&run_args(&argv), &launch).expect("a run");
    stopper.join().expect("stopper");
    assert_eq!(outcome.interrupted, Some(Signal::SIGINT));
    assert_eq!(ringscrape::exit_code(&outcome), 130);
    let missing = outcome.missing.as_ref().expect("ids left");
    assert!(
        missing.have_rows > 0 && missing.have_rows < 200_000,
        "{missing:?}"
    );
    assert!(
        missing.resume_command.ends_with("--resume"),
        "{}",
        missing.resume_command
    );
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_eq!(rows.len() as u64, missing.have_rows);
}
