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
