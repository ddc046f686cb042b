//! A gzip bomb (250 KB that inflates to 256 MiB) ends as `body-too-large` at once, in bounded
//! memory, not retried. Alone in its test binary so that the children's peak memory this process
//! reads is this run's own.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::resource::{UsageWho, getrusage};

#[test]
fn a_gzip_bomb_ends_at_the_body_limit_in_bounded_memory() {
    let target = AiohttpTarget::start_script("coded_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/bomb?id={{id}}", target.base);
    let started = Instant::now();
    // Bodies kept, default --max-body (16 MiB): without a decoded limit each would be 256 MiB.
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        8,
        2,
        &["--save-body", "--retries", "3"],
    );
    let took = started.elapsed();
    for row in &rows {
        assert_eq!(
            (row.status, row.error.as_str(), row.attempts),
            (Some(200), "body-too-large", 1),
            "{row:?}"
        );
    }
    assert!(took < Duration::from_secs(20), "took {took:?}");
    // ru_maxrss of waited-for descendants, in KiB: the largest worker or supervisor.
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage")
        .max_rss();
    assert!(peak_kib < 96 << 10, "a process peaked at {peak_kib} KiB");
}
