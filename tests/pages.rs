//! `--next`: chains of pages against tests/servers/api_target.py (key K has K % 21 pages, 0 to
//! 20; a chain of 0 pages is one empty page), followed by `Link` header, by a JSON URL and by a
//! cursor parameter: every (key, page) once, in CSV, JSON Lines and Parquet (read back by Python's
//! csv, json and pyarrow); after kill -9 mid-run, `--resume` goes on from each chain's last page
//! and the server counts no page fetched twice beyond those in flight; a looping chain ends with
//! error `loop`; `--max-pages` and a failing page end a chain; each page keeps its own body file;
//! a page that kills its worker is its own `crash` row; credentials stay on the key's own host.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use crate::auth::api_stats;
use crate::common::*;
use serde_json::Value;

/// The rows of any format as [id, page, status, error, next], read by Python (csv, json,
/// pyarrow): nobody here wrote those readers.
fn page_rows(path: &Path) -> Vec<(u64, u64, Option<u64>, String, String)> {
    let script = r#"
import csv, json, os, sys
path = sys.argv[1]
if os.path.isdir(path):
    import pyarrow.parquet as pq
    rows = pq.read_table(path).to_pylist()
elif path.endswith(".jsonl"):
    rows = [json.loads(line) for line in open(path)]
else:
    rows = list(csv.DictReader(open(path)))
def num(v):
    return None if v in (None, "") else int(v)
print(json.dumps([[int(r["id"]), int(r["page"]), num(r["status"]), r["error"] or "", r["next"] or ""]
                  for r in rows]))
"#;
    let rows = python_json([
        std::ffi::OsStr::new("-c"),
        script.as_ref(),
        path.as_os_str(),
    ]);
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r[0].as_u64().expect("id"),
                r[1].as_u64().expect("page"),
                r[2].as_u64(),
                r[3].as_str().unwrap_or_default().to_string(),
                r[4].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Pages of key `k` as the target serves them (`--pages-mod 21`): at least one.
fn pages_of(k: u64) -> u64 {
    (k % 21).max(1)
}

/// Every (key, page) of `keys` exactly once, each 200, the last page of a chain without a next
/// and every other with one.
fn assert_every_page_once(
    rows: &[(u64, u64, Option<u64>, String, String)],
    keys: std::ops::Range<u64>,
) {
    let mut seen = BTreeSet::new();
    for (id, page, status, error, next) in rows {
        assert!(seen.insert((*id, *page)), "key {id} page {page} twice");
        assert_eq!(
            (*status, error.as_str()),
            (Some(200), ""),
            "key {id} page {page}"
        );
        let last = *page + 1 == pages_of(*id);
        assert_eq!(next.is_empty(), last, "key {id} page {page}: next {next:?}");
    }
    let expected: BTreeSet<(u64, u64)> = keys
        .flat_map(|k| (0..pages_of(k)).map(move |p| (k, p)))
        .collect();
    assert_eq!(seen, expected);
}

fn fetched_counts(base: &str) -> BTreeMap<String, u64> {
    let stats = api_stats(base);
    stats["pages"]
        .as_object()
        .expect("pages")
        .iter()
        .map(|(k, v): (&String, &Value)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect()
}

#[test]
fn chains_by_link_json_url_and_cursor_have_every_page_once_in_every_format() {
    let server = AiohttpTarget::start_script("api_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    for (route, next, output) in [
        ("link", vec!["--next", "link"], "link.csv"),
        ("json", vec!["--next", "/next"], "json.jsonl"),
        (
            "cursor",
            vec!["--next", "/next_cursor", "--next-param", "after"],
            "cursor.parquet",
        ),
    ] {
        let url = format!("{}/list/{route}?key={{id}}", server.base);
        let out = TestCommand::run(dir.path(), &url, "0..63")
            .args(&next)
            .args(["-o", output, "-s", "2", "-c", "8", "--no-progress"])
            .output_of();
        assert_eq!(out.status.code(), Some(0), "{route}: {}", stderr(&out));
        let rows = page_rows(&dir.path().join(output));
        assert_every_page_once(&rows, 0..63);
        let summary = stderr(&out);
        let pages: u64 = (0..63).map(pages_of).sum();
        assert!(
            summary.contains(&format!("rows       {pages} written")),
            "{summary}"
        );
    }
    let fetched = fetched_counts(&server.base);
    assert!(
        fetched.values().all(|&n| n == 3),
        "each page once per route: {fetched:?}"
    );
}

#[test]
fn a_killed_run_resumes_each_chain_from_its_last_page() {
    let server = AiohttpTarget::start_script_with("api_target.py", &["--delay-ms", "30"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/list/json?key={{id}}", server.base);
    let scrape = || {
        TestCommand::run(dir.path(), &url, "0..200").args([
            "--next",
            "/next",
            "-o",
            "out.csv",
            "-s",
            "2",
            "-c",
            "8",
            "--no-progress",
        ])
    };
    let mut run = scrape().spawn();
    let csv = dir.path().join("out.csv");
    let going = wait_for(Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&csv).ok()?;
        (text.lines().count() > 300).then_some(())
    });
    assert!(going.is_some(), "no rows came");
    kill_9(&mut run);
    let fetched_before: u64 = fetched_counts(&server.base).values().sum();
    let pages: u64 = (0..200).map(pages_of).sum();
    assert!(
        fetched_before < pages,
        "killed mid-run: {fetched_before} of {pages} pages"
    );
    // The pages whose rows reached the file (a torn last line is no row).
    let text = std::fs::read_to_string(&csv).expect("partial");
    let whole = &text[..text.rfind('\n').map_or(0, |at| at + 1)];
    let written: BTreeSet<String> = whole
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            format!("{}/{}", fields[0], fields[6])
        })
        .collect();
    let out = scrape().arg("--resume").output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("chains of pages go on"), "{err}");
    assert_every_page_once(&page_rows(&csv), 0..200);
    // No page with a row in the file was fetched again: only those in flight (requests, and
    // rows not yet flushed when the run was killed).
    let twice: Vec<(String, u64)> = fetched_counts(&server.base)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(
        twice.iter().all(|(page, _)| !written.contains(page)),
        "pages written before the kill fetched again: {twice:?}"
    );
    let lost = fetched_before - written.len() as u64;
    assert!(twice.len() as u64 <= lost, "{twice:?}, {lost} in flight");
    assert!(twice.len() < 100, "{} pages fetched again", twice.len());
}

#[test]
fn a_loop_a_failing_page_and_max_pages_end_a_chain() {
    let server = AiohttpTarget::start_script("api_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |route: &str, extra: &[&str], output: &str| {
        let url = format!("{}/list/{route}?key={{id}}", server.base);
        let out = TestCommand::run(dir.path(), &url, "0..3")
            .args(["--next", "/next", "-o", output, "--no-progress"])
            .args(extra)
            .output_of();
        assert_eq!(out.status.code(), Some(0), "{route}: {}", stderr(&out));
        let mut rows = page_rows(&dir.path().join(output));
        rows.sort();
        rows
    };
    // Page 3 leads back to page 1: the chain ends there, its row an error of its own kind.
    let rows = run("loop", &[], "loop.csv");
    assert_eq!(rows.len(), 12, "4 pages per key: {rows:?}");
    for (id, page, status, error, next) in &rows {
        let expected = if *page == 3 { "loop" } else { "" };
        assert_eq!(
            (error.as_str(), *status),
            (expected, Some(200)),
            "key {id} page {page}"
        );
        if *page == 3 {
            assert!(next.ends_with(&format!("loop?key={id}&page=1")), "{next}");
        }
    }
    // Page 3 leads back to the item's first URL: a loop there too, page 0 not fetched again.
    let url = format!("{}/list/loop?key={{id}}&back=0&page=0", server.base);
    let out = TestCommand::run(dir.path(), &url, "0..3")
        .args(["--next", "/next", "-o", "loop0.csv", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut rows = page_rows(&dir.path().join("loop0.csv"));
    rows.sort();
    let pages: Vec<(u64, String)> = rows.iter().map(|r| (r.1, r.3.clone())).collect();
    assert_eq!(pages.len(), 12, "4 pages per key: {rows:?}");
    assert!(
        pages
            .iter()
            .all(|(page, error)| (*page == 3) == (error == "loop")),
        "{rows:?}"
    );
    let fetched = fetched_counts(&server.base);
    assert_eq!(fetched["1/0"], 2, "once by each loop run: {fetched:?}");
    // A page answered 500 ends its chain (after --retries, here none).
    let rows = run("broken", &["--retries", "0"], "broken.csv");
    assert_eq!(rows.len(), 9);
    assert!(rows.iter().all(|r| (r.1 == 2) == (r.2 == Some(500))));
    assert!(rows.iter().filter(|r| r.1 == 2).all(|r| r.4.is_empty()));
    // --max-pages 1: key 2's chain (2 pages) stops after its first, whose next is kept.
    let rows = run("json", &["--max-pages", "1"], "max.csv");
    let pages: Vec<(u64, u64)> = rows.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(pages, [(0, 0), (1, 0), (2, 0)]);
    assert!(rows[2].4.ends_with("json?key=2&page=1"), "{rows:?}");
}

/// `--bodies-dir` with `--next`: every page's row points at a file of its own holding that
/// page's body (before, all pages of an item wrote one file and only the last page survived).
#[test]
fn every_page_keeps_its_own_body_file() {
    let server = AiohttpTarget::start_script("api_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/list/json?key={{id}}", server.base);
    let out = TestCommand::run(dir.path(), &url, "0..8")
        .args(["--next", "/next", "--bodies-dir", "bodies", "-o", "out.csv"])
        .args(["-c", "4", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let csv = std::fs::read_to_string(dir.path().join("out.csv")).expect("csv");
    let mut paths = BTreeSet::new();
    let mut rows = 0;
    for line in csv.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let (id, page, path) = (fields[0], fields[6], fields[8]);
        assert!(paths.insert(path.to_string()), "{path} for two rows");
        let body = std::fs::read(dir.path().join("bodies").join(path)).expect("body file");
        let doc: Value = serde_json::from_slice(&body).expect("a page's JSON");
        if id != "0" {
            assert_eq!(
                doc["items"][0].as_str(),
                Some(format!("{id}-{page}-0").as_str()),
                "key {id} page {page}: {path} holds another page's body"
            );
        }
        rows += 1;
    }
    assert_eq!(rows, (0..8).map(pages_of).sum::<u64>());
}

/// A page after the first that kills its worker (a jq filter that recurses without end on key
/// 5's page 3): the pages before keep their rows, page 3 is the `crash` row, and `--resume`
/// fetches nothing again. Before, the keeper fetched the item again from page 0, lost those
/// rows with the probe and wrote one `crash` row saying page 0.
#[test]
fn a_page_that_kills_its_worker_is_its_own_crash_row_and_the_pages_before_keep_theirs() {
    let server = AiohttpTarget::start_script("api_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/list/json?key={{id}}", server.base);
    let filter =
        r#"x=jq:if ((.items[0] // "") | startswith("5-3-")) then (def f: 1 + f; f) else 1 end"#;
    for (slots, output) in [("1", "one.csv"), ("8", "eight.csv")] {
        let scrape = || {
            TestCommand::run(dir.path(), &url, "0..12")
                .args(["--next", "/next", "--extract", filter, "-o", output])
                .args(["-s", "1", "-c", slots, "--no-progress"])
        };
        let before = fetched_counts(&server.base);
        let out = scrape().output_of();
        assert_eq!(out.status.code(), Some(0), "{slots}: {}", stderr(&out));
        if slots == "1" {
            // One slot sends each page's row before it asks for the next page: the probe goes
            // on from page 3, and pages 0 to 2 were fetched once.
            let after = fetched_counts(&server.base);
            for page in ["5/0", "5/1", "5/2"] {
                let times = after[page] - before.get(page).copied().unwrap_or(0);
                assert_eq!(times, 1, "{page}: {after:?}");
            }
        }
        let mut rows = page_rows(&dir.path().join(output));
        rows.sort();
        let mut pages = BTreeSet::new();
        for (id, page, status, error, _) in &rows {
            assert!(pages.insert((*id, *page)), "key {id} page {page} twice");
            let expected = match (id, page) {
                (5, 3) => (None, "crash"),
                _ => (Some(200), ""),
            };
            assert_eq!((*status, error.as_str()), expected, "key {id} page {page}");
        }
        let expected: BTreeSet<(u64, u64)> = (0..12)
            .flat_map(|k| (0..pages_of(k)).map(move |p| (k, p)))
            .filter(|&(k, p)| (k, p) != (5, 4))
            .collect();
        assert_eq!(pages, expected, "{slots} slots");
        let fetched = fetched_counts(&server.base);
        let out = scrape().arg("--resume").output_of();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stderr(&out).contains("nothing to do"), "{}", stderr(&out));
        assert_eq!(
            fetched_counts(&server.base),
            fetched,
            "a resume fetched again"
        );
        assert_eq!(page_rows(&dir.path().join(output)).len(), rows.len());
    }
}

/// A recording server that answers `/p/0` with a next (`/p/1` on the same host, or for `{id}` 2
/// the same page on another host name) and anything else with the last page.
fn recording_server() -> (u16, Heads) {
    let port = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let known = port.clone();
    let (bound, heads) =
        crate::common::recording_server(move |head| match head.split_whitespace().nth(1) {
            Some("/p/0") if head.contains("host: 2.tenant.test") => {
                let port = known.get().copied().unwrap_or(0);
                format!(r#"{{"next":"http://other.test:{port}/p/1"}}"#)
            }
            Some("/p/0") => r#"{"next":"/p/1"}"#.to_string(),
            _ => r#"{"next":null}"#.to_string(),
        });
    port.set(bound).expect("set once");
    (bound, heads)
}

/// With the host from the key (a per-tenant API), a page on the key's own host keeps `-H`
/// credentials (before, every page after the first lost them: the key's host was taken for
/// another origin); a page on another host gets none of the headers the redaction list names
/// (`X-Api-Key` went along before).
#[test]
fn pages_on_the_keys_own_host_keep_credentials_and_other_hosts_get_none() {
    let (port, heads) = recording_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://{{id}}.tenant.test:{port}/p/0");
    let out = TestCommand::run(dir.path(), &url, "0..3")
        .args(["--next", "/next", "-o", "out.csv", "--no-progress"])
        .args(["--resolve", &format!("*:{port}:127.0.0.1")])
        .args(["-H", "Authorization: Bearer tenant-token"])
        .args(["-H", "Cookie: session=s1", "-H", "X-Api-Key: k1"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let heads = heads.lock().expect("heads").clone();
    assert_eq!(heads.len(), 6, "two pages per key: {heads:?}");
    let credentials = [
        "authorization: bearer tenant-token",
        "cookie: session=s1",
        "x-api-key: k1",
    ];
    for head in &heads {
        let other_host = head.contains("host: other.test");
        for credential in credentials {
            assert_eq!(
                head.contains(credential),
                !other_host,
                "{credential}: {head}"
            );
        }
    }
    assert_eq!(
        heads
            .iter()
            .filter(|h| h.contains("host: other.test"))
            .count(),
        1
    );
}
