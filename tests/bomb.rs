//! A gzip bomb (250 KB that inflates to 256 MiB) ends as `body-too-large` at once, in bounded
//! memory, not retried. The peak is the largest process of this run's tree, read by `wait4`.

use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn a_gzip_bomb_ends_at_the_body_limit_in_bounded_memory() {
    let target = AiohttpTarget::start_script("coded_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/bomb?id={{id}}", target.base);
    let started = Instant::now();
    // Bodies kept, default --max-body (16 MiB): without a decoded limit each would be 256 MiB.
    let run = TestCommand::run(dir.path(), &url, "0..8")
        .shards(2)
        .concurrency(2)
        .output("out.csv")
        .args(["--save-body", "--retries", "3"])
        .spawn();
    let (code, peak_kib) = wait_largest_rss_kib(run);
    let took = started.elapsed();
    assert_eq!(code, Some(0));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 8);
    for row in &rows {
        assert_eq!(
            (row.status, row.error.as_str(), row.attempts),
            (Some(200), "body-too-large", 1),
            "{row:?}"
        );
    }
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(peak_kib < 96 << 10, "a process peaked at {peak_kib} KiB");
}
