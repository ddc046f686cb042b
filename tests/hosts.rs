//! Limits per host (issue 38): `--host-concurrency` and `--host-rate` hold per host, as the
//! server's own log sees it; a host with many items holds back no other host; a host's 429 with
//! `Retry-After` slows that host only; a many-host run killed with -9 resumes to one row per item;
//! the summary's per-host rankings name the hosts nginx made slow, throttled and failing.
//!
//! Hosts are addresses of 127.0.0.0/8 (no DNS) in a key file's `host` column, all served by one
//! nginx listening on every address and logging `$host $msec $request_time $status`, in front of
//! `ringscrape serve` for a fixed answer delay. From the log: per host, the most requests in flight
//! at once (intervals from `$msec - $request_time` to `$msec`) and the most started in any
//! one-second window. The 2,000 hosts × 10 items is scaled to 300 hosts here (2,000 hosts
//! hold 4,000 requests in flight through nginx and `serve`, too much beside other tests);
//! `bench/hosts.py` runs the full size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{Nginx, Server, TestCommand, kill_9, read_rows, stderr, wait_for_rows};

/// The caps, over two workers.
const CAPS: [&str; 6] = ["--host-concurrency", "2", "--host-rate", "5", "-s", "2"];

/// One request as nginx logged it: its host, start and end in milliseconds, status.
#[derive(Debug, Clone)]
struct Hit {
    host: String,
    start_ms: i64,
    end_ms: i64,
    status: u16,
}

/// An nginx on every loopback address in front of `serve` (answers delayed `delay_ms`), with
/// `location_extra` first in its `location /`.
struct Site {
    _serve: Server,
    _nginx: Nginx,
    _dir: tempfile::TempDir,
    log: PathBuf,
    port: u16,
}

fn site(delay_ms: u64, location_extra: &str) -> Site {
    let delay = format!("{delay_ms}..{delay_ms}");
    let serve = Server::start(&["--delay-ms", &delay]);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let server = format!(
        "access_log {} hosts;\nlocation / {{\n{location_extra}\nproxy_pass http://127.0.0.1:{};\n}}",
        log.display(),
        serve.port()
    );
    let formats = "log_format hosts '$host $msec $request_time $status';";
    let nginx = Nginx::start_on_every_address(formats, &server);
    let port = nginx.port();
    Site {
        _serve: serve,
        _nginx: nginx,
        _dir: dir,
        log,
        port,
    }
}

/// Host number `k` as an address of 127.0.0.0/8 (never 127.0.0.1, which the site's helpers use).
fn host(k: usize) -> String {
    format!("127.0.{}.{}", 1 + k / 250, 1 + k % 250)
}

/// A key file of `host,n` lines: each host's items next to each other, in order.
fn key_file(dir: &Path, hosts: &[(String, usize)]) -> usize {
    let mut text = String::from("host,n\n");
    let mut items = 0;
    for (name, count) in hosts {
        for _ in 0..*count {
            text.push_str(&format!("{name},{items}\n"));
            items += 1;
        }
    }
    std::fs::write(dir.join("hosts.csv"), text).expect("write the key file");
    items
}

fn run(dir: &Path, site: &Site) -> TestCommand {
    let url = format!("http://{{host}}:{}/x/{{n}}", site.port);
    TestCommand::new(dir)
        .args(["run", "-u", &url, "--keys", "hosts.csv", "-o", "out.csv"])
        .arg("--no-progress")
}

/// Milliseconds from nginx's `1733512345.123`-style seconds.
fn millis(text: &str) -> i64 {
    let (secs, frac) = text.split_once('.').unwrap_or((text, "0"));
    let frac = format!("{frac:0<3}");
    secs.parse::<i64>().expect("seconds") * 1000 + frac[..3].parse::<i64>().expect("millis")
}

fn hits(log: &Path) -> Vec<Hit> {
    let text = std::fs::read_to_string(log).expect("nginx's log");
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let end_ms = millis(f[1]);
            Hit {
                host: f[0].to_string(),
                start_ms: end_ms - millis(f[2]),
                end_ms,
                status: f[3].parse().expect("status"),
            }
        })
        .collect()
}

fn by_host(hits: &[Hit]) -> BTreeMap<&str, Vec<&Hit>> {
    let mut hosts: BTreeMap<&str, Vec<&Hit>> = BTreeMap::new();
    for hit in hits {
        hosts.entry(hit.host.as_str()).or_default().push(hit);
    }
    hosts
}

/// The most requests in flight at once: a request that ends when another starts is not
/// counted with it.
fn max_in_flight(hits: &[&Hit]) -> usize {
    let mut events: Vec<(i64, i32)> = hits
        .iter()
        .flat_map(|h| [(h.start_ms, 1), (h.end_ms, -1)])
        .collect();
    events.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in events {
        now += step;
        most = most.max(now);
    }
    most as usize
}

/// The most requests started in any window of one second, `[t, t + 1000 ms)`.
fn max_started_per_second(hits: &[&Hit]) -> usize {
    let mut starts: Vec<i64> = hits.iter().map(|h| h.start_ms).collect();
    starts.sort();
    let mut most = 0;
    let mut first = 0;
    for (last, &start) in starts.iter().enumerate() {
        while starts[first] + 1000 <= start {
            first += 1;
        }
        most = usize::max(most, last - first + 1);
    }
    most
}

/// The earliest a host's `items` can all be answered with `cap` in flight, starts `1/rate` apart
/// and each answer taking `latency`.
fn host_bound(items: usize, cap: usize, rate: f64, latency: Duration) -> Duration {
    let spacing = Duration::from_secs_f64(1.0 / rate);
    let mut starts: Vec<Duration> = Vec::new();
    for k in 0..items {
        let spaced = starts.last().map_or(Duration::ZERO, |s| *s + spacing);
        let slot_free = k
            .checked_sub(cap)
            .map_or(Duration::ZERO, |j| starts[j] + latency);
        starts.push(spaced.max(slot_free));
    }
    starts.last().map_or(Duration::ZERO, |s| *s + latency)
}

#[test]
fn host_caps_hold_per_host_across_two_workers_and_the_run_takes_what_they_allow() {
    const HOSTS: usize = 300;
    const ITEMS: usize = 10;
    let latency = Duration::from_millis(500);
    let site = site(500, "");
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts: Vec<(String, usize)> = (0..HOSTS).map(|k| (host(k), ITEMS)).collect();
    let items = key_file(dir.path(), &hosts);
    let started = Instant::now();
    let out = run(dir.path(), &site)
        .args(CAPS)
        .args(["-c", "512"])
        .output_of();
    let wall = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    crate::common::assert_one_row_per_id(&rows, 0, items as u64);
    assert!(rows.iter().all(|r| r.status == Some(200)), "every row 200");
    let hits = hits(&site.log);
    assert_eq!(hits.len(), items, "one request per item");
    let per_host = by_host(&hits);
    assert_eq!(per_host.len(), HOSTS);
    for (name, hits) in &per_host {
        assert_eq!(hits.len(), ITEMS, "{name}");
        assert!(
            max_in_flight(hits) <= 2,
            "{name}: {} at once",
            max_in_flight(hits)
        );
        let started = max_started_per_second(hits);
        assert!(started <= 5, "{name}: {started} started in one second");
    }
    // What the caps allow: each host's own bound (2 in flight, 5 a second), and the slots'
    // (1,024 of them), whichever is longer, for answers as slow as nginx saw them (`serve`
    // waits 500 ms; a loaded machine adds to it, and no limit of ours can take that away).
    let total_ms: i64 = hits.iter().map(|h| h.end_ms - h.start_ms).sum();
    let latency = latency.max(Duration::from_millis((total_ms / hits.len() as i64) as u64));
    let host = host_bound(ITEMS, 2, 5.0, latency);
    let slots = latency.mul_f64(items as f64 / 1024.0);
    let bound = host.max(slots);
    let first = hits.iter().map(|h| h.start_ms).min().unwrap_or(0);
    let last = hits.iter().map(|h| h.end_ms).max().unwrap_or(0);
    eprintln!(
        "wall {wall:?} ({} ms from the first request to the last answer), bound {bound:?} \
         (per host {host:?}, slots {slots:?}, mean answer {latency:?})",
        last - first
    );
    assert!(
        wall <= bound.mul_f64(1.3),
        "the run took {wall:?}, more than 1.3 × {bound:?}"
    );
}

/// When each of the others' last answer came after the run's first request, from the log.
fn others_done_after(hits: &[Hit], hot: Option<&str>) -> Duration {
    let first = hits.iter().map(|h| h.start_ms).min().expect("requests");
    let last = hits
        .iter()
        .filter(|h| Some(h.host.as_str()) != hot)
        .map(|h| h.end_ms)
        .max()
        .expect("other hosts' requests");
    Duration::from_millis((last - first) as u64)
}

#[test]
fn a_host_with_twenty_times_the_items_holds_no_other_host_back() {
    let others: Vec<(String, usize)> = (0..60).map(|k| (host(k), 5)).collect();
    let hot = host(200);
    let mut with_hot = vec![(hot.clone(), 100)];
    with_hot.extend(others.iter().cloned());
    let caps = [
        "--host-concurrency",
        "2",
        "--host-rate",
        "20",
        "-s",
        "1",
        "-c",
        "64",
    ];
    let mut done = Vec::new();
    for hosts in [&others, &with_hot] {
        let site = site(100, "");
        let dir = tempfile::tempdir().expect("tempdir");
        let items = key_file(dir.path(), hosts);
        let out = run(dir.path(), &site).args(caps).output_of();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let rows = read_rows(&dir.path().join("out.csv"));
        crate::common::assert_one_row_per_id(&rows, 0, items as u64);
        let hits = hits(&site.log);
        let hot_hits: Vec<&Hit> = hits.iter().filter(|h| h.host == hot).collect();
        if !hot_hits.is_empty() {
            // 100 items, 2 at a time, 100 ms each: the hot host takes at least 5 s, so others
            // waiting behind it would show as seconds.
            let span = hot_hits.iter().map(|h| h.end_ms).max().unwrap_or(0)
                - hot_hits.iter().map(|h| h.start_ms).min().unwrap_or(0);
            assert!(span >= 4_500, "the hot host took {span} ms");
        }
        done.push(others_done_after(&hits, Some(&hot)));
    }
    eprintln!(
        "others done after {:?} alone, {:?} beside the hot host",
        done[0], done[1]
    );
    // Within half a second of the run without it: a tenth of the hot host's own 5 s, and more
    // than a loaded machine's jitter on a run of about 0.5 s.
    assert!(
        done[1] <= done[0] + Duration::from_millis(500),
        "the others took {:?} beside the hot host, {:?} without",
        done[1],
        done[0]
    );
}

#[test]
fn a_hosts_429_with_retry_after_slows_that_host_only() {
    let slow = host(240);
    let refuse =
        format!("if ($host = \"{slow}\") {{ add_header Retry-After 2 always; return 429; }}");
    let site = site(0, &refuse);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hosts = vec![(slow.clone(), 2)];
    hosts.extend((0..40).map(|k| (host(k), 10)));
    let items = key_file(dir.path(), &hosts);
    let out = run(dir.path(), &site)
        .args(["--host-rate", "5", "--retries", "1", "-s", "1", "-c", "64"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    crate::common::assert_one_row_per_id(&rows, 0, items as u64);
    for row in &rows {
        let expected = if row.id < 2 { 429 } else { 200 };
        assert_eq!(row.status, Some(expected), "{row:?}");
    }
    let hits = hits(&site.log);
    let mut refused: Vec<i64> = hits
        .iter()
        .filter(|h| h.host == slow)
        .map(|h| h.start_ms)
        .collect();
    refused.sort();
    assert_eq!(refused.len(), 4, "2 items, each sent twice");
    for pair in refused.windows(2) {
        // Paused 2 s after each 429 (the log's milliseconds are truncated: 10 ms of slack).
        assert!(pair[1] - pair[0] >= 1_990, "{refused:?}");
    }
    // The others flowed meanwhile: 10 items at 5 a second end in about 2 s, where pausing the
    // whole worker for each of the slow host's 429s would have taken 6.
    let others = others_done_after(&hits, Some(&slow));
    assert!(
        others < Duration::from_millis(3_000),
        "others done after {others:?}"
    );
    assert!(
        hits.iter()
            .filter(|h| h.host != slow)
            .all(|h| h.status == 200)
    );
}

#[test]
fn a_many_host_run_killed_with_9_resumes_to_one_row_per_item() {
    let site = site(0, "");
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts: Vec<(String, usize)> = (0..300).map(|k| (host(k), 10)).collect();
    let items = key_file(dir.path(), &hosts);
    let caps = || run(dir.path(), &site).args(CAPS).args(["-c", "128"]);
    let mut first = caps().spawn();
    let out = dir.path().join("out.csv");
    wait_for_rows(&out, 600);
    kill_9(&mut first);
    let partial = read_rows(&out).len();
    assert!(partial < items, "killed before the end ({partial} rows)");
    let resumed = caps().arg("--resume").output_of();
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let rows = read_rows(&out);
    crate::common::assert_one_row_per_id(&rows, 0, items as u64);
    assert!(rows.iter().all(|r| r.status == Some(200)));
}

#[test]
fn the_summary_names_the_slowest_most_throttled_and_failing_hosts_of_every_worker() {
    // Host 0 answers after 300 ms (its own `serve`), host 1 with 429, host 2 closes the
    // connection without an answer (nginx's 444); the 27 others at once.
    let slow_serve = Server::start(&["--delay-ms", "300..300"]);
    let [slow, throttled, failing] = [host(0), host(1), host(2)];
    let extra = format!(
        "if ($host = \"{slow}\") {{ proxy_pass http://127.0.0.1:{}; }}\n\
         if ($host = \"{throttled}\") {{ return 429; }}\n\
         if ($host = \"{failing}\") {{ return 444; }}",
        slow_serve.port()
    );
    let site = site(0, &extra);
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts: Vec<(String, usize)> = (0..30).map(|k| (host(k), 4)).collect();
    let items = key_file(dir.path(), &hosts);
    let out = run(dir.path(), &site)
        .args([
            "-s",
            "2",
            "-c",
            "16",
            "--retries",
            "0",
            "--host-concurrency",
            "2",
        ])
        .args(["--summary-json", "summary.json"])
        .output_of();
    // Error rows make the exit status non-zero; the rows and the summary are what is checked.
    let rows = read_rows(&dir.path().join("out.csv"));
    crate::common::assert_one_row_per_id(&rows, 0, items as u64);
    let text = std::fs::read_to_string(dir.path().join("summary.json")).expect("summary.json");
    let summary: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let view = &summary["hosts"];
    assert_eq!(view["touched"], 30, "{view}");
    let first = |ranking: &str| view[ranking][0]["host"].as_str().map(str::to_string);
    let with_port = |h: &str| format!("{h}:{}", site.port);
    assert_eq!(first("slowest"), Some(with_port(&slow)), "{view}");
    assert_eq!(first("throttled"), Some(with_port(&throttled)), "{view}");
    assert_eq!(view["throttled"][0]["throttled"], 4, "{view}");
    assert_eq!(
        view["throttled"].as_array().map(Vec::len),
        Some(1),
        "{view}"
    );
    assert_eq!(first("failing"), Some(with_port(&failing)), "{view}");
    assert_eq!(view["failing"][0]["errors"], 4, "{view}");
    assert!(
        view["slowest"][0]["mean_ms"].as_f64().unwrap_or(0.0) >= 290.0,
        "{view}"
    );
    // The text summary says the same on stderr.
    let said = stderr(&out);
    assert!(said.contains("30 touched"), "{said}");
    assert!(said.contains(&with_port(&failing)), "{said}");
}

#[test]
fn with_one_host_the_caps_hold_for_the_run_whatever_the_shards() {
    // The host fixed in the URL: the caps become the run's. A tester saw 6 starts in a second
    // at `--host-rate 5 -s 2` (each of two workers pacing half, out of step).
    let site = site(300, "");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{}/x/{{id}}", site.port);
    let out = TestCommand::new(dir.path())
        .args([
            "run",
            "-u",
            &url,
            "-i",
            "0..16",
            "-o",
            "out.csv",
            "--no-progress",
        ])
        .args([
            "--host-rate",
            "5",
            "--host-concurrency",
            "2",
            "-s",
            "2",
            "-c",
            "8",
        ])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    crate::common::assert_one_row_per_id(&rows, 0, 16);
    let hits = hits(&site.log);
    let all: Vec<&Hit> = hits.iter().collect();
    assert_eq!(all.len(), 16);
    assert!(max_in_flight(&all) <= 2, "{all:?}");
    assert!(max_started_per_second(&all) <= 5, "{all:?}");
}
