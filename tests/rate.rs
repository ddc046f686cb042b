//! Politeness against nginx: `--rate` paces requests evenly (checked from nginx's own request
//! log), and without it a rate-limited API (nginx `limit_req`, 429 without Retry-After) slows
//! the run down instead of being hammered.

use crate::common::*;

/// Requests per whole second in an nginx log of `$msec` lines.
fn per_second(log: &str) -> (f64, Vec<u64>) {
    let times: Vec<f64> = log.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let first = times.iter().copied().fold(f64::INFINITY, f64::min);
    let last = times.iter().copied().fold(0.0, f64::max);
    let mut seconds = vec![0u64; (last - first) as usize + 1];
    for t in &times {
        seconds[(t - first) as usize] += 1;
    }
    (last - first, seconds)
}

#[test]
fn rate_paces_requests_evenly_across_shards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let nginx = Nginx::start(
        "log_format ts '$msec';",
        &format!(
            "access_log {} ts;\nlocation /log {{ default_type application/json; return 200 '{{\"id\":$arg_id}}'; }}",
            log.display()
        ),
    );
    let url = format!("{}/log?id={{id}}", nginx.base);
    let rows = scrape_ok(dir.path(), &url, 0, 10_000, 64, &["--rate", "1000"]);
    assert!(rows.iter().all(|r| r.status == Some(200)));
    drop(nginx); // flushes the log
    let (span, seconds) = per_second(&std::fs::read_to_string(&log).expect("access log"));
    // 10,000 requests at 1,000/s: never faster than 10 s less 5% (the politeness asked for);
    // slower only by what a loaded box costs (a CI runner sharing its cores), not a burst.
    assert!((9.5..=12.0).contains(&span), "took {span:.2} s");
    // No whole second more than 10% above the rate (the last, partial one aside).
    let busiest = seconds.iter().max().copied().unwrap_or(0);
    assert!(
        busiest <= 1100,
        "busiest second: {busiest} requests ({seconds:?})"
    );
}

#[test]
fn a_rate_limited_api_is_not_hammered() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("record.json"), "{\"ok\":true}").expect("write");
    // limit_req acts before the content phase: the answer is a static file, not `return`.
    let nginx = Nginx::start(
        "limit_req_zone $binary_remote_addr zone=api:1m rate=2000r/s;\nlimit_req_status 429;",
        &format!(
            "location /log {{ limit_req zone=api burst=50 nodelay; default_type application/json; alias {}/record.json; }}",
            dir.path().display()
        ),
    );
    let url = format!("{}/log?id={{id}}", nginx.base);
    // 256 in flight: two shards of 128.
    let rows = scrape_ok(dir.path(), &url, 0, 20_000, 128, &["--retries", "20"]);
    assert!(
        rows.iter().all(|r| r.status == Some(200)),
        "{:?}",
        rows.iter().find(|r| r.status != Some(200))
    );
    let attempts: u64 = rows.iter().map(|r| u64::from(r.attempts)).sum();
    let mean = attempts as f64 / rows.len() as f64;
    assert!(mean <= 1.3, "{mean:.3} attempts per id on average");
}
