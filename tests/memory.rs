//! Memory does not grow with concurrency × body size: bodies kept in the row stay within
//! `--body-memory`, and `--bodies-dir` writes bodies to their files as they arrive. The target
//! is aiohttp's server (chunked bodies of 8 MB, plain and gzip); every row and every body file
//! is checked, and the peak resident memory of the whole process tree is measured.

use crate::common::*;

const MB: u64 = 1_000_000;
/// Body size in MB, and slots: 16 bodies of 8 MB at once would be 128 MB in one worker.
const BODY_MB: u64 = 8;
const SLOTS: u64 = 16;
const IDS: u64 = 32;

/// What `/big?id=N&mb=M` sends (see coded_target.py).
fn big_body(id: u64) -> Vec<u8> {
    let line = format!("id {id} big body line\n").into_bytes();
    let size = (BODY_MB * MB) as usize;
    line.iter().copied().cycle().take(size).collect()
}

fn big_url(target: &AiohttpTarget, coding: &str) -> String {
    format!("{}/big?id={{id}}&mb={BODY_MB}&coding={coding}", target.base)
}

/// The rows of `dir/out.csv`: one per id, each a whole body of `BODY_MB`.
fn whole_rows(dir: &std::path::Path) -> Vec<Row> {
    let rows = read_rows(&dir.join("out.csv"));
    assert_one_row_per_id(&rows, 0, IDS);
    for row in &rows {
        assert_eq!(
            (row.status, row.bytes, row.error.as_str()),
            (Some(200), BODY_MB * MB, ""),
            "{row:?}"
        );
    }
    rows
}

#[test]
fn bodies_stream_to_their_files_whatever_their_size() {
    let target = AiohttpTarget::start_script("coded_target.py");
    for coding in ["identity", "gzip"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let bodies = dir.path().join("bodies");
        let run = TestCommand::run(dir.path(), &big_url(&target, coding), &format!("0..{IDS}"))
            .shards(1)
            .concurrency(SLOTS)
            .output("out.csv")
            .args([
                "--bodies-dir",
                bodies.to_str().expect("utf-8"),
                "--no-progress",
            ])
            .spawn();
        let (code, stderr, peak) = wait_measuring_tree_rss(run);
        let peak_mb = peak.tree;
        assert_eq!(code, Some(0), "{stderr}");
        let rows = whole_rows(dir.path());
        for row in &rows {
            let file = bodies.join(&row.extra[0]);
            let body = std::fs::read(&file).expect("body file");
            assert!(
                body == big_body(row.id),
                "{coding}: {file:?} is not id {}'s body",
                row.id
            );
        }
        let partial: Vec<_> = std::fs::read_dir(&bodies)
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".partial"))
            .collect();
        assert!(partial.is_empty(), "{partial:?} left behind");
        eprintln!("{coding}: peak tree RSS {peak_mb:.0} MB");
        // Held whole, 16 bodies would be 134 MB (8 MiB buffers) in the worker alone. Both
        // codings peak near 20 MB; gzip reached 90 MB when the decoded bytes of one read (up
        // to megabytes) were buffered before the file took them.
        assert!(peak_mb < 50.0, "{coding}: peak {peak_mb:.0} MB");
    }
}

#[test]
fn bodies_in_the_rows_stay_within_the_body_memory_budget() {
    let target = AiohttpTarget::start_script("coded_target.py");
    // 1M is less than one body: the oldest holder goes on alone, nothing stalls.
    for budget in ["16M", "1M"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = big_url(&target, "identity");
        let run = TestCommand::run(dir.path(), &url, &format!("0..{IDS}"))
            .shards(1)
            .concurrency(SLOTS)
            .output("out.csv")
            .args([
                "--save-body",
                "--body-memory",
                budget,
                "--no-progress",
                "-v",
            ])
            .spawn();
        let (code, stderr, peak) = wait_measuring_tree_rss(run);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stderr.contains("waited for --body-memory"),
            "the budget never held a slot back: {stderr}"
        );
        for row in &whole_rows(dir.path()) {
            assert!(
                row.extra[0].as_bytes() == big_body(row.id),
                "row {} holds another body",
                row.id
            );
        }
        eprintln!("--body-memory {budget}: peak RSS {peak:?} MB");
        // The budget bounds the worker: without it the worker alone peaked at 143 MB (16
        // bodies at once); with 16M, at 59 MB. The supervisor holds at most 32 MiB of rows on
        // their way to the writer besides (a slow writer, as when tests share the cores).
        assert!(
            peak.descendant < 80.0,
            "--body-memory {budget}: a worker peaked at {:.0} MB",
            peak.descendant
        );
        assert!(
            peak.tree < 150.0,
            "--body-memory {budget}: the tree peaked at {:.0} MB",
            peak.tree
        );
    }
}

/// 128 answers in flight, each a body that decodes with a large window and stalls before its
/// end: the windows stay within `--body-memory` (before, each took its window: 1.7 GB for
/// 256), and a zstd frame past 8 MiB (RFC 9659) is `decode` at once, its status kept.
#[test]
fn decoder_windows_stay_within_the_body_memory() {
    let target = AiohttpTarget::start_script("coded_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    for (coding, window, error) in [
        ("zstd", 27, "decode"),
        ("zstd", 23, "timeout"),
        ("br", 24, "timeout"),
    ] {
        let url = format!(
            "{}/stall?id={{id}}&coding={coding}&window={window}",
            target.base
        );
        let run = TestCommand::run(dir.path(), &url, "0..128")
            .shards(1)
            .concurrency(128)
            .output("out.csv")
            .args([
                "--overwrite",
                "--no-progress",
                "--retries",
                "0",
                "--timeout",
                "5",
            ])
            .args(["--body-memory", "16M"])
            .spawn();
        let (code, stderr, peak) = wait_measuring_tree_rss(run);
        assert_eq!(code, Some(0), "{stderr}");
        let rows = read_rows(&dir.path().join("out.csv"));
        assert_one_row_per_id(&rows, 0, 128);
        for row in &rows {
            assert_eq!(
                (row.status, row.error.as_str()),
                (Some(200), error),
                "{coding} {window}: {row:?}"
            );
        }
        assert!(
            peak.tree < 100.0,
            "{coding} window 2^{window}: peak tree RSS {:.0} MB",
            peak.tree
        );
    }
}
