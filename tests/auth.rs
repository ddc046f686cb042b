//! `--auth-command`: credentials from a command, against tests/servers/api_target.py, whose
//! tokens expire: refreshed on 401s (a 401 sent again once with the new token) and every
//! `--auth-refresh`; the token on no stderr line, no worker's command line and not in the rows;
//! a failing command stops the run with exit 3 and its own last line of stderr, resumable.

use crate::common::*;

/// A command that gets a token from the target's /token and prints it as a header, counting
/// its runs in `count` (a file).
fn token_command(base: &str, count: &std::path::Path) -> String {
    format!(
        "echo run >> {count}; python3 -c \"import urllib.request; print('Authorization: Bearer ' + urllib.request.urlopen('{base}/token').read().decode())\"",
        count = count.display()
    )
}

/// What the api target counted (its `/stats`).
pub fn api_stats(base: &str) -> serde_json::Value {
    let get = format!(
        "import urllib.request; print(urllib.request.urlopen('{base}/stats').read().decode())"
    );
    python_json(["-c", &get])
}

fn runs(count: &std::path::Path) -> usize {
    std::fs::read_to_string(count).map_or(0, |t| t.lines().count())
}

#[test]
fn tokens_that_expire_every_2_s_are_refreshed_and_every_row_is_200() {
    let server = AiohttpTarget::start_script_with("api_target.py", &["--ttl", "2"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let count = dir.path().join("runs");
    let command = token_command(&server.base, &count);
    let url = format!("{}/log?id={{id}}", server.base);
    // 2,000 ids at 100 a second: a 20 s run, ten lifetimes of a token.
    let run = TestCommand::run(dir.path(), &url, "0..2000")
        .args([
            "--auth-command",
            &command,
            "--rate",
            "100",
            "-s",
            "2",
            "-c",
            "8",
        ])
        .args(["-o", "out.csv", "--no-progress", "-v"])
        .spawn();
    // No worker carries a credential on its command line.
    let workers = wait_for_workers(&run, 2, |_| true);
    for pid in &workers {
        let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let argv = String::from_utf8_lossy(&argv);
        assert!(!argv.contains("tok-") && !argv.contains("Bearer"), "{argv}");
    }
    let out = run.wait_with_output().expect("wait");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 2000);
    let not_200: Vec<_> = rows.iter().filter(|r| r.status != Some(200)).collect();
    assert!(
        not_200.is_empty(),
        "{} rows not 200: {:?}",
        not_200.len(),
        &not_200[..not_200.len().min(5)]
    );
    assert!(
        rows.iter().all(|r| r.attempts == 1),
        "a resend is not an attempt"
    );
    // About one run per lifetime: 20 s of 2 s tokens.
    let ran = runs(&count);
    assert!((8..=15).contains(&ran), "the command ran {ran} times");
    let stats = api_stats(&server.base);
    assert!(
        stats["unauthorized"].as_u64().unwrap_or(0) > 0,
        "tokens did expire: {stats}"
    );
    // The token is on no stderr line and not in the rows.
    assert!(!err.contains("tok-"), "{err}");
    let csv = std::fs::read_to_string(dir.path().join("out.csv")).expect("read");
    assert!(!csv.contains("tok-"));
}

#[test]
fn a_refresh_every_second_sends_new_tokens_before_any_expires() {
    let server = AiohttpTarget::start_script_with("api_target.py", &["--ttl", "2"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let count = dir.path().join("runs");
    let command = token_command(&server.base, &count);
    let url = format!("{}/log?id={{id}}", server.base);
    let out = TestCommand::run(dir.path(), &url, "0..500")
        .args(["--auth-command", &command, "--auth-refresh", "1"])
        .args([
            "--rate",
            "100",
            "-s",
            "1",
            "-c",
            "4",
            "-o",
            "out.csv",
            "--no-progress",
        ])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert!(rows.iter().all(|r| r.status == Some(200)));
    let stats = api_stats(&server.base);
    assert_eq!(stats["unauthorized"], 0, "refreshed before expiry: {stats}");
    let ran = runs(&count);
    assert!((4..=8).contains(&ran), "5 s at one run a second: {ran}");
}

#[test]
fn a_failing_command_stops_the_run_with_exit_3_and_its_last_stderr_line() {
    let server = AiohttpTarget::start_script_with("api_target.py", &["--ttl", "30"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/log?id={{id}}", server.base);
    // Before the first request: nothing is fetched.
    let out = TestCommand::run(dir.path(), &url, "0..10")
        .args(["--auth-command", "echo 'login: account locked' >&2; exit 1"])
        .args(["-o", "first.csv"])
        .output_of();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("account locked"), "{}", stderr(&out));
    // Mid-run: the second run of the command fails (a counter file says which run it is).
    let count = dir.path().join("runs");
    let good = token_command(&server.base, &count);
    let flaky = format!(
        "if [ -f {c} ]; then echo 'token service down' >&2; exit 1; fi; {good}",
        c = count.display()
    );
    let scrape = |command: &str| {
        TestCommand::run(dir.path(), &url, "0..1000")
            .args(["--auth-command", command, "--auth-refresh", "1"])
            .args(["--rate", "200", "-s", "2", "-o", "out.csv", "--no-progress"])
    };
    let out = scrape(&flaky).output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("token service down"), "{err}");
    assert!(err.contains("--resume"), "says how to resume: {err}");
    let rows = read_rows(&dir.path().join("out.csv"));
    assert!(
        !rows.is_empty() && rows.len() < 1000,
        "stopped mid-run: {}",
        rows.len()
    );
    let out = scrape(&good).arg("--resume").output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 1000);
    assert!(rows.iter().all(|r| r.status == Some(200)));
}

/// A recording server answering `ok`, and its base URL.
fn recording_server() -> (String, Heads) {
    let (port, heads) = crate::common::recording_server(|_| "ok".into());
    (format!("http://127.0.0.1:{port}"), heads)
}

/// Issue 35 item 14: a token endpoint behind the command must not be able to add a framing
/// header (a second `Content-Length`, `Transfer-Encoding` beside one: request smuggling), nor
/// reroute the request with `Host`.
#[test]
fn a_command_printing_a_framing_or_host_header_stops_the_run_before_any_request() {
    let (base, heads) = recording_server();
    let dir = tempfile::tempdir().expect("tempdir");
    for (line, name) in [
        ("Content-Length: 0", "content-length"),
        ("Transfer-Encoding: chunked", "transfer-encoding"),
        ("Host: internal.example", "host"),
    ] {
        let command = format!("echo 'Authorization: Bearer tok-1'; echo '{line}'");
        let out = TestCommand::run(dir.path(), &format!("{base}/x/{{id}}"), "0..3")
            .args(["--auth-command", &command, "-o", "out.csv", "--overwrite"])
            .output_of();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{line}: {err}");
        assert!(
            err.contains(&format!("line 2 of its output sets `{name}`")),
            "{line}: {err}"
        );
    }
    let heads = heads.lock().expect("heads");
    assert!(heads.is_empty(), "requests went out: {heads:?}");
}

/// Issue 35 item 16: what the command prints on stderr is redacted, the first time and mid-run,
/// and the run still stops with exit 3.
#[test]
fn the_command_s_stderr_is_shown_redacted_and_the_run_stops_with_exit_3() {
    let server = Server::start(&["--delay-ms", "5..5"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), &server.url(), "0..10")
        .args([
            "--auth-command",
            "echo 'Authorization: Bearer tok-first' >&2; exit 1",
        ])
        .args(["-o", "first.csv"])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("tok-first"), "{err}");
    assert!(
        err.contains("exit status: 1: Authorization: <redacted>"),
        "{err}"
    );
    // The second run fails, repeating the token in use. (A script: the command itself is part
    // of the resume line.)
    let count = dir.path().join("runs");
    let script = dir.path().join("login.sh");
    std::fs::write(
        &script,
        format!(
            "if [ -f {c} ]; then echo 'token=tok-second rejected, was tok-first' >&2; exit 1; fi\n\
             echo run > {c}; echo 'Authorization: Bearer tok-first'\n",
            c = count.display()
        ),
    )
    .expect("script");
    let command = format!("sh {}", script.display());
    let out = TestCommand::run(dir.path(), &server.url(), "0..2000")
        .args([
            "--auth-command",
            &command,
            "--auth-refresh",
            "1",
            "--rate",
            "200",
        ])
        .args(["-o", "out.csv", "--no-progress"])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("tok-"), "{err}");
    assert!(
        err.contains("token=<redacted> rejected, was <redacted>"),
        "{err}"
    );
    assert!(err.contains("--resume"), "says how to resume: {err}");
}

/// True once no process `pid` runs (gone, or a zombie for init to reap).
fn ended(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}

/// Issue 35 item 17: `--auth-timeout` ends the command's whole process group, and a
/// background child left holding stdout does not make a command that exited 0 time out.
#[test]
fn an_auth_timeout_ends_every_process_of_the_command() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let command = format!(
        "sleep 60 & echo $! >> {0}; sh -c 'echo $$ >> {0}; sleep 60'",
        pids.display()
    );
    let started = std::time::Instant::now();
    let out = TestCommand::run(dir.path(), &server.url(), "0..10")
        .args(["--auth-command", &command, "--auth-timeout", "0.5"])
        .args(["-o", "out.csv"])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("--auth-timeout"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let pids = std::fs::read_to_string(&pids).expect("pids written");
    assert_eq!(pids.lines().count(), 2, "{pids}");
    for pid in pids.lines() {
        let gone = wait_for(std::time::Duration::from_secs(2), || {
            ended(pid).then_some(())
        });
        assert!(gone.is_some(), "process {pid} of the command still runs");
    }
    // Exits 0 at once, leaving a child that holds stdout: its headers are used, no timeout.
    let started = std::time::Instant::now();
    let out = TestCommand::run(dir.path(), &server.url(), "0..10")
        .args([
            "--auth-command",
            "sleep 60 & echo 'Authorization: Bearer tok-1'",
            "--auth-timeout",
            "10",
        ])
        .args(["-o", "bg.csv"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_one_row_per_id(&read_rows(&dir.path().join("bg.csv")), 0, 10);
}

/// Issue 35 item 21: output past the cap stops the run, with the supervisor small (500 MB of
/// output took it to 521 MB when it was read whole).
#[test]
fn endless_output_from_the_command_stops_the_run_without_being_read_whole() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let run = TestCommand::run(dir.path(), &server.url(), "0..10")
        .args(["--auth-command", "yes 'X-A: b' | head -c 300000000"])
        .args(["-o", "out.csv", "-q"])
        .spawn();
    let (code, largest_kib) = wait_largest_rss_kib(run);
    assert_eq!(code, Some(3));
    assert!(largest_kib < 60_000, "{largest_kib} KiB");
}

/// Issue 35 item 27: every line the command prints is a header, and the run says which names
/// it sends; a line that is not one, or holds a CR, stops the run naming the line (not its text).
#[test]
fn the_command_s_lines_are_headers_named_at_start_or_refused_by_number() {
    let (base, heads) = recording_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{base}/x/{{id}}");
    let out = TestCommand::run(dir.path(), &url, "0..2")
        .args([
            "--auth-command",
            "echo 'note: fetching'; echo 'Authorization: Bearer tok-1'",
        ])
        .args(["-o", "out.csv"])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("--auth-command gives note, authorization (sent with every request)"),
        "{err}"
    );
    let sent = heads.lock().expect("heads").clone();
    assert!(
        sent.len() == 2 && sent.iter().all(|h| h.contains("note: fetching\r\n")),
        "{sent:?}"
    );
    for (command, said) in [
        (
            "echo 'Authorization: Bearer tok-1'; echo 'fetching tok-1 now'",
            "line 2 of its output is not a `Name: value` header line",
        ),
        (
            "printf 'Authorization: Bearer tok-1\\rX-Evil: 1\\n'",
            "line 1 of its output holds a CR",
        ),
    ] {
        let out = TestCommand::run(dir.path(), &url, "0..2")
            .args(["--auth-command", command, "-o", "bad.csv", "--overwrite"])
            .output_of();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{command}: {err}");
        assert!(
            err.contains(said) && !err.contains("tok-1"),
            "{command}: {err}"
        );
    }
}
