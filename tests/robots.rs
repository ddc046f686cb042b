//! `--robots` against nginx, whose access log says what reached it: a disallowed path never
//! does and is a `robots` row, an allowed one is 200 (`Allow` over a shorter `Disallow`, `$`);
//! robots.txt is fetched once per worker; a 404 allows all, a 500 disallows the host; a
//! redirected robots.txt is followed; `Crawl-delay` spaces the requests; without `--robots`
//! no robots.txt is asked for.

use std::path::{Path, PathBuf};

use crate::common::*;

/// Ids under `/p/{id}`: those starting with 1 (`/p/1`) but not 15 (allowed by the longer
/// `Allow: /p/15`), and 2 alone (`/p/2$`, not 20), are disallowed for `*`; another agent's group
/// disallows all.
const ROBOTS: &str = "User-agent: otherbot\nDisallow: /\n\nUser-agent: *\nDisallow: /p/1\n\
                      Allow: /p/15\nDisallow: /p/2$\n";

fn disallowed(id: u64) -> bool {
    let path = format!("/p/{id}");
    (path.starts_with("/p/1") && !path.starts_with("/p/15")) || path == "/p/2"
}

/// nginx serving `200 ok` for every path and robots.txt as `location` says (an nginx location
/// body, `WWW` the directory whose robots.txt and moved.txt hold `body`), logging
/// `$msec $request_uri $status` of each request.
struct Site {
    nginx: Nginx,
    log: PathBuf,
}

impl Site {
    fn start(dir: &Path, location: &str) -> Site {
        Self::serving(dir, ROBOTS, location)
    }

    fn serving(dir: &Path, body: &str, location: &str) -> Site {
        let log = dir.join("access.log");
        let www = dir.join("www");
        std::fs::create_dir_all(&www).expect("mkdir www");
        std::fs::write(www.join("robots.txt"), body).expect("write robots.txt");
        std::fs::write(www.join("moved.txt"), body).expect("write moved.txt");
        let robots = location.replace("WWW", &www.display().to_string());
        let nginx = Nginx::start(
            "log_format robots '$msec $request_uri $status';",
            &format!(
                "access_log {} robots;\nlocation = /robots.txt {{ {robots} }}\n\
                 location = /moved.txt {{ root {}; }}\nlocation / {{ return 200 'ok'; }}",
                log.display(),
                www.display()
            ),
        );
        Site { nginx, log }
    }

    /// The log's lines as (time in seconds, request URI, status), once nginx has stopped.
    fn requests(self) -> Vec<(f64, String, u16)> {
        let Site { nginx, log } = self;
        drop(nginx); // flushes the log
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines()
            .map(|line| {
                let mut words = line.split(' ');
                let time = words.next().and_then(|w| w.parse().ok()).expect("$msec");
                let uri = words.next().expect("$request_uri").to_string();
                let status = words.next().and_then(|w| w.parse().ok()).expect("$status");
                (time, uri, status)
            })
            .collect()
    }
}

/// Runs ids `0..n` of `/p/{id}` with `args`; its rows and stderr.
fn run(dir: &Path, site: &Site, n: u64, args: &[&str]) -> (Vec<Row>, String) {
    let url = format!("{}/p/{{id}}", site.nginx.base);
    let stderr = TestCommand::run(dir, &url, &format!("0..{n}"))
        .output("out.csv")
        .args(args)
        .ok();
    let rows = read_rows(&dir.join("out.csv"));
    assert_one_row_per_id(&rows, 0, n);
    (rows, stderr)
}

fn robots_fetches(requests: &[(f64, String, u16)]) -> usize {
    requests.iter().filter(|r| r.1 == "/robots.txt").count()
}

#[test]
fn disallowed_paths_never_reach_the_server_and_are_robots_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = Site::start(dir.path(), "root WWW;");
    let args = ["--robots", "-s", "1", "-c", "64", "-v"];
    let (rows, stderr) = run(dir.path(), &site, 30, &args);
    let port = site
        .nginx
        .base
        .rsplit(':')
        .next()
        .expect("a port")
        .to_string();
    for row in &rows {
        let expected = match disallowed(row.id) {
            true => (None, "robots", 0),
            false => (Some(200), "", 1),
        };
        assert_eq!(
            (row.status, row.error.as_str(), row.attempts),
            expected,
            "{row:?}"
        );
    }
    assert!(
        stderr.contains(&format!(
            "robots.txt of http://127.0.0.1:{port}: 200: 3 rules"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("robots 11"),
        "the summary counts them: {stderr}"
    );
    assert!(
        stderr.contains("requests   19 sent"),
        "robots.txt forbade 11: {stderr}"
    );
    let requests = site.requests();
    // 64 slots of one worker asked at once: one fetch, the others waited for it.
    assert_eq!(robots_fetches(&requests), 1, "{requests:?}");
    let mut reached: Vec<u64> = requests
        .iter()
        .filter_map(|(_, uri, _)| uri.strip_prefix("/p/")?.parse().ok())
        .collect();
    reached.sort_unstable();
    let allowed: Vec<u64> = (0..30).filter(|&id| !disallowed(id)).collect();
    assert_eq!(reached, allowed, "what reached nginx");
}

#[test]
fn robots_txt_is_fetched_once_per_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = Site::start(dir.path(), "root WWW;");
    let (rows, _) = run(dir.path(), &site, 400, &["--robots", "-s", "2", "-c", "64"]);
    let robots_rows = rows.iter().filter(|r| r.error == "robots").count();
    assert_eq!(robots_rows, (0..400).filter(|&id| disallowed(id)).count());
    // Two workers, each with its own cache: at most one fetch each.
    let fetches = robots_fetches(&site.requests());
    assert!(
        (1..=2).contains(&fetches),
        "{fetches} fetches of robots.txt"
    );
}

#[test]
fn a_robots_txt_for_our_product_token_overrides_the_star_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = Site::start(dir.path(), "root WWW;");
    let args = [
        "--robots",
        "-s",
        "1",
        "--user-agent",
        "OtherBot/2.0 (+https://x.test)",
    ];
    let (rows, _) = run(dir.path(), &site, 5, &args);
    assert!(rows.iter().all(|r| r.error == "robots"), "{rows:?}");
    let requests = site.requests();
    assert_eq!(requests.len(), 1, "only robots.txt: {requests:?}");
}

#[test]
fn a_404_robots_txt_allows_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = Site::start(dir.path(), "return 404;");
    let (rows, _) = run(dir.path(), &site, 30, &["--robots", "-s", "1"]);
    assert!(
        rows.iter()
            .all(|r| r.status == Some(200) && r.error.is_empty()),
        "{rows:?}"
    );
    let requests = site.requests();
    assert_eq!(robots_fetches(&requests), 1);
    assert_eq!(requests.len(), 31);
}

#[test]
fn a_500_robots_txt_disallows_the_host_and_nothing_else_is_requested() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = Site::start(dir.path(), "return 500;");
    let (rows, _) = run(
        dir.path(),
        &site,
        30,
        &["--robots", "-s", "1", "--retries", "3"],
    );
    assert!(
        rows.iter()
            .all(|r| (r.status, r.error.as_str(), r.attempts) == (None, "robots", 0)),
        "{rows:?}"
    );
    let requests = site.requests();
    assert_eq!(robots_fetches(&requests), 1);
    assert_eq!(requests.len(), 1, "nothing but robots.txt: {requests:?}");
}

#[test]
fn a_redirected_robots_txt_is_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = Site::start(dir.path(), "return 301 /moved.txt;");
    let (rows, _) = run(dir.path(), &site, 30, &["--robots", "-s", "1"]);
    for row in &rows {
        assert_eq!(row.error == "robots", disallowed(row.id), "{row:?}");
    }
    let requests = site.requests();
    assert!(requests.iter().any(|r| r.1 == "/moved.txt" && r.2 == 200));
}

#[test]
fn crawl_delay_spaces_the_requests_to_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = "User-agent: *\nCrawl-delay: 0.5\n";
    let site = Site::serving(dir.path(), body, "root WWW;");
    let (rows, stderr) = run(
        dir.path(),
        &site,
        6,
        &["--robots", "-s", "1", "-c", "16", "-v"],
    );
    assert!(rows.iter().all(|r| r.status == Some(200)), "{rows:?}");
    assert!(stderr.contains("crawl-delay 0.5 s"), "{stderr}");
    let requests = site.requests();
    let mut times: Vec<f64> = requests
        .iter()
        .filter(|r| r.1 != "/robots.txt")
        .map(|r| r.0)
        .collect();
    times.sort_by(f64::total_cmp);
    assert_eq!(times.len(), 6);
    // nginx logs each request when it ends, to the millisecond: on loopback an answer of two
    // bytes takes a millisecond or two, so 30 ms covers a slower one on a loaded machine, while
    // a delay not held would show gaps near 0.
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= 0.47, "requests {gap:.3} s apart: {times:?}");
    }
    // And not much slower than asked: 5 gaps of 0.5 s.
    let span = times[5] - times[0];
    assert!(span < 4.0, "{span:.2} s for 6 requests");
}

/// A robots.txt of 1.2 MB: line 2 disallows `/p/1`, a line cut by the 500 KiB limit would read
/// `Disallow: /p/` (all of `/p/`) if not dropped, and rules past the limit disallow everything
/// else under `/p/`.
fn huge_robots_txt() -> String {
    const LIMIT: usize = 500 << 10;
    let mut body = "User-agent: *\nDisallow: /p/1\n".to_string();
    let straddling = "Disallow: /p/2\n";
    while body.len() + 6 <= LIMIT - 13 {
        body.push_str("# pad\n");
    }
    body.push_str(&"#".repeat(LIMIT - 13 - body.len() - 1));
    body.push('\n');
    assert_eq!(body.len() + "Disallow: /p/".len(), LIMIT);
    body.push_str(straddling);
    while body.len() < 1_200_000 {
        body.push_str("# pad\n");
    }
    for id in 0..10 {
        body.push_str(&format!("Disallow: /p/{id}\n"));
    }
    body
}

#[test]
fn the_first_500_kib_of_a_huge_robots_txt_are_parsed_whatever_the_framing() {
    // Plain (a Content-Length over the limit), then gzip (chunked, the limit on decoded bytes).
    for (location, how) in [
        ("root WWW;", "plain"),
        (
            "root WWW; gzip on; gzip_types *; gzip_min_length 1;",
            "gzip",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let site = Site::serving(dir.path(), &huge_robots_txt(), location);
        let args = ["--robots", "-s", "1", "-c", "8", "-v"];
        let (rows, stderr) = run(dir.path(), &site, 30, &args);
        assert!(stderr.contains(": 200: 1 rules"), "{how}: {stderr}");
        for row in &rows {
            let expected = match row.id.to_string().starts_with('1') {
                true => (None, "robots"),
                false => (Some(200), ""),
            };
            assert_eq!((row.status, row.error.as_str()), expected, "{how}: {row:?}");
        }
        let requests = site.requests();
        assert_eq!(robots_fetches(&requests), 1, "{how}");
        assert!(
            !requests.iter().any(|r| r.1.starts_with("/p/1")),
            "{how}: a disallowed path reached nginx"
        );
    }
}

/// The tester's run scaled down: 30 items of a host whose robots.txt takes 3 s, then 10 of a
/// host whose robots.txt is a 404, through 8 slots. The slow host's items wait for its rules in
/// the look-ahead (one in a slot, fetching them), so the other host's are all answered long
/// before the 3 s are up; before, the 8 slots all waited for the slow robots.txt.
#[test]
fn a_slow_robots_txt_holds_one_slot_not_every_slot() {
    let serve = Server::start(&["--delay-ms", "3000..3000"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let (slow, fast) = ("127.0.9.1", "127.0.9.2");
    let http = format!(
        "log_format robots '$host $msec $request_uri $status';\n\
         map $host $robots_of {{ {slow} slow; default none; }}"
    );
    let server = format!(
        "access_log {} robots;\n\
         location = /robots.txt {{ rewrite ^ /robots-$robots_of.txt last; }}\n\
         location = /robots-slow.txt {{ proxy_pass http://127.0.0.1:{}/log?id=0; }}\n\
         location = /robots-none.txt {{ return 404; }}\n\
         location / {{ return 200 'ok'; }}",
        log.display(),
        serve.port()
    );
    let nginx = Nginx::start_on_every_address(&http, &server);
    let port = nginx.port();
    let mut keys = String::from("host,n\n");
    for n in 0..40 {
        keys.push_str(&format!("{},{n}\n", if n < 30 { slow } else { fast }));
    }
    std::fs::write(dir.path().join("hosts.csv"), keys).expect("write the key file");
    let url = format!("http://{{host}}:{port}/p/{{n}}");
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    TestCommand::new(dir.path())
        .args(["run", "-u", &url, "--keys", "hosts.csv", "-o", "out.csv"])
        .args(["--robots", "-s", "1", "-c", "8", "--no-progress"])
        .ok();
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 40);
    assert!(rows.iter().all(|r| r.status == Some(200)), "{rows:?}");
    drop(nginx); // flushes the log
    let text = std::fs::read_to_string(&log).expect("nginx's log");
    // (host, end in seconds, URI)
    let hits: Vec<(&str, f64, &str)> = text
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            (words[0], words[1].parse().expect("$msec"), words[2])
        })
        .collect();
    // Seconds from the run's start to the last answer of `host` (to its robots.txt or not).
    let end_of = |host: &str, robots: bool| {
        let ends = hits
            .iter()
            .filter(|h| h.0 == host && (h.2 == "/robots.txt") == robots);
        ends.map(|h| h.1 - started).fold(0.0, f64::max)
    };
    let slow_rules = end_of(slow, true);
    assert!(
        slow_rules >= 2.9,
        "the slow robots.txt took {slow_rules:.2} s"
    );
    let fast_done = end_of(fast, false);
    // Its 10 answers of a loopback nginx take milliseconds: a second leaves room for a loaded
    // machine, while slots held by the slow host would show 3 s.
    assert!(
        fast_done < 1.0,
        "the other host's last answer came {fast_done:.2} s in (the slow robots.txt: {slow_rules:.2} s)"
    );
    let slow_robots = hits.iter().filter(|h| h.0 == slow && h.2 == "/robots.txt");
    assert_eq!(slow_robots.count(), 1, "{hits:?}");
}

#[test]
fn without_robots_no_robots_txt_is_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = Site::start(dir.path(), "return 500;");
    let (rows, _) = run(dir.path(), &site, 30, &["-s", "2"]);
    assert!(
        rows.iter()
            .all(|r| r.status == Some(200) && r.error.is_empty())
    );
    let requests = site.requests();
    assert_eq!(robots_fetches(&requests), 0);
    assert_eq!(requests.len(), 30);
}
