//! Bad input: exit code 2, exactly one line on stderr, no panic text, no output file.

use crate::common::*;

fn assert_refused(args: &[&str], expect_in_message: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_refused_in(dir.path(), args, expect_in_message);
}

/// Like [`assert_refused`], run in `dir` (which may hold files the arguments name).
fn assert_refused_in(dir: &std::path::Path, args: &[&str], expect_in_message: &str) {
    let out = TestCommand::new(dir)
        .arg("run")
        .output("out.csv")
        .args(args)
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: stderr {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
    assert!(err.contains(expect_in_message), "{args:?}: {err:?}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(!dir.join("out.csv").exists(), "{args:?}: no output file");
}

const URL: &str = "http://127.0.0.1:9/log?id={id}";

#[test]
fn url_without_placeholder() {
    assert_refused(
        &["-u", "http://127.0.0.1:9/log?id=1", "-i", "0..10"],
        "must contain {id}",
    );
}

#[test]
fn reversed_range() {
    assert_refused(
        &["-u", URL, "-i", "10..5"],
        "--ids 10..5: end is before start",
    );
}

#[test]
fn range_that_is_not_a_range() {
    assert_refused(&["-u", URL, "-i", "abc"], "--ids abc: expected START..END");
}

#[test]
fn zero_concurrency() {
    assert_refused(
        &["-u", URL, "-i", "0..10", "-c", "0"],
        "--concurrency 0: must be at least 1",
    );
}

#[test]
fn concurrency_that_is_not_a_number() {
    assert_refused(
        &["-u", URL, "-i", "0..10", "-c", "lots"],
        "invalid value 'lots'",
    );
}

#[test]
fn missing_config_file() {
    assert_refused(
        &["-u", URL, "-i", "0..10", "--config", "nope.toml"],
        "config file nope.toml",
    );
}

#[test]
fn unknown_flag() {
    assert_refused(
        &["-u", URL, "-i", "0..10", "--frobnicate"],
        "unexpected argument '--frobnicate'",
    );
}

#[test]
fn unwritable_output_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), URL, "0..10")
        .output("no/such/dir/out.csv")
        .output_of();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"));
    assert!(!dir.path().join("no").exists());
}

#[test]
fn output_in_a_read_only_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    let mut perms = std::fs::metadata(&ro).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    std::fs::set_permissions(&ro, perms).expect("chmod");
    let mut run = TestCommand::run(dir.path(), URL, "0..10")
        .output("ro/out.csv")
        .into_command();
    if is_root() {
        // root ignores directory permissions: the run is made as `nobody`, let into the
        // (root's own, 0700) temporary directory.
        let mut perms = std::fs::metadata(dir.path()).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(dir.path(), perms).expect("chmod");
        std::os::unix::process::CommandExt::uid(&mut run, 65534);
        std::os::unix::process::CommandExt::gid(&mut run, 65534);
    } else if std::fs::File::create(ro.join("probe")).is_ok() {
        skipped("this user may write into a read-only directory (CAP_DAC_OVERRIDE)");
        return;
    }
    let out = run.output().expect("run ringscrape");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(!ro.join("out.csv").exists());
}

#[test]
fn output_is_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("taken")).expect("mkdir");
    let out = TestCommand::run(dir.path(), URL, "0..10")
        .output("taken")
        .args(["--overwrite"])
        .output_of();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: --output taken"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn existing_output_is_never_clobbered_without_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("out.csv"), "precious\n").expect("write");
    let out = TestCommand::run(dir.path(), URL, "0..10")
        .output("out.csv")
        .output_of();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("file exists"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.csv")).expect("read"),
        "precious\n"
    );
}

#[test]
fn concurrency_beyond_the_open_files_limit_is_refused_before_any_request() {
    let hard: u64 = std::fs::read_to_string("/proc/self/limits")
        .expect("limits")
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4)?.parse().ok())
        .expect("hard limit");
    let too_many = (hard / 2 + 64).to_string();
    if hard > (1 << 20) {
        // An unlimited-looking hard limit: nothing to exceed under the concurrency cap.
        skipped(&format!(
            "the hard limit of open files ({hard}) is above any --concurrency"
        ));
        return;
    }
    assert_refused(&["-u", URL, "-i", "0..10", "-c", &too_many], "ulimit -Hn");
    // Under --bodies-dir each slot also holds its body's spool file.
    let dir = tempfile::tempdir().expect("tempdir");
    let bodies = dir.path().join("b");
    let too_many_spooling = (hard / 3 + 64).to_string();
    assert_refused(
        &[
            "-u",
            URL,
            "-i",
            "0..10",
            "-c",
            &too_many_spooling,
            "--bodies-dir",
            bodies.to_str().expect("utf-8"),
        ],
        "ulimit -Hn",
    );
}

#[test]
fn help_explains_every_run_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::new(dir.path())
        .args(["run", "--help"])
        .output_of();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--url",
        "--ids",
        "--shards",
        "--concurrency",
        "--output",
        "--config",
        "--no-progress",
    ] {
        assert!(help.contains(flag), "{flag} missing from help");
    }
    // Every row format is named where the format is chosen, and no help says CSV only.
    let format = help.split("--format").nth(1).expect("--format in help");
    assert!(
        format.contains("parquet") && format.contains(".parquet"),
        "{format}"
    );
    // Each flag's description is a sentence of its own: two doc comments spliced together once
    // gave --dashboard the summary's words and --summary-json a lower-case tail.
    let described: Vec<(&str, &str)> = help
        .lines()
        .zip(help.lines().skip(1))
        .filter(|(flag, _)| flag.trim_start().starts_with('-'))
        .map(|(flag, text)| (flag.trim(), text.trim()))
        .collect();
    for (flag, text) in &described {
        assert!(
            text.starts_with(|c: char| !c.is_lowercase()),
            "{flag}: {text}"
        );
    }
    let text_of = |name: &str| {
        described
            .iter()
            .find(|(flag, _)| flag.split_whitespace().any(|word| word == name))
            .map(|(_, text)| *text)
            .unwrap_or_else(|| panic!("{name} missing from help"))
    };
    assert!(text_of("--dashboard").starts_with("Serve a live page"));
    assert!(!text_of("--dashboard").contains("summary"));
    assert!(text_of("--summary-json").starts_with("Write the closing summary as JSON"));
    // Sizes and durations are shown as they are written (`128M`, `2s`), never as a raw count.
    assert!(
        text_of("--body-memory").contains("[default: 128M]"),
        "{help}"
    );
    assert!(text_of("--max-body").contains("[default: 16M]"), "{help}");
    assert!(text_of("--timeout").contains("[default: 30s]"), "{help}");
    assert!(
        text_of("--retry-base").contains("[default: 100ms]"),
        "{help}"
    );
    assert!(
        !help.contains("<SECS>") && !help.contains("<SECONDS>") && !help.contains("134217728"),
        "{help}"
    );
    let top = TestCommand::new(dir.path()).arg("--help").output_of();
    for text in [
        help.to_string(),
        String::from_utf8_lossy(&top.stdout).to_string(),
    ] {
        assert!(!text.contains("one CSV row per id"), "{text}");
        assert!(text.contains("JSON Lines, Parquet or Arrow"), "{text}");
    }
}

#[test]
fn resume_refuses_a_file_that_is_not_a_ringscrape_csv_and_leaves_it_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("out.csv"), "name,age\nann,3\n").expect("write");
    let out = TestCommand::run(dir.path(), URL, "0..10")
        .output("out.csv")
        .args(["--resume"])
        .output_of();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to append"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.csv")).expect("read"),
        "name,age\nann,3\n"
    );
}

#[test]
fn resume_and_overwrite_together_are_refused() {
    assert_refused(
        &["-u", URL, "-i", "0..10", "--resume", "--overwrite"],
        "cannot be used with",
    );
}

#[test]
fn bad_failure_handling_values() {
    assert_refused(
        &["-u", URL, "-i", "0..10", "--max-body", "0"],
        "--max-body 0",
    );
    assert_refused(
        &["-u", URL, "-i", "0..10", "--retries", "5000"],
        "--retries 5000",
    );
    assert_refused(
        &["-u", URL, "-i", "0..10", "--grace", "-1"],
        "--grace -1: must be a positive number of seconds",
    );
    assert_refused(
        &["-u", URL, "-i", "0..10", "--retry-base", "0"],
        "--retry-base 0: must be a positive number of seconds",
    );
    assert_refused(
        &["-u", URL, "-i", "0..10", "--retry-failed"],
        "not provided: --resume",
    );
}

#[test]
fn resume_to_stdout_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), URL, "0..10")
        .output("-")
        .args(["--resume"])
        .output_of();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: --resume needs --output FILE (it reads the rows already written)\n"
    );
}

#[test]
fn bad_request_shaping_and_capture_flags_name_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    assert_refused_in(
        d,
        &["-u", URL, "-i", "0..10", "-H", "@missing.txt"],
        "--header @missing.txt",
    );
    assert_refused_in(
        d,
        &["-u", URL, "-i", "0..10", "-d", "@missing.bin"],
        "--data @missing.bin",
    );
    assert_refused_in(
        d,
        &["-u", URL, "-i", "0..10", "-H", "NoColonHere"],
        "--header \"NoColonHere\"",
    );
    std::fs::write(d.join("bad-headers.txt"), "X-Ok: 1\nbroken line\n").expect("write");
    assert_refused_in(
        d,
        &["-u", URL, "-i", "0..10", "-H", "@bad-headers.txt"],
        "--header \"broken line\"",
    );
    assert_refused_in(d, &["-u", URL, "-i", "0..10", "-X", "GE T"], "--method");
    assert_refused_in(
        d,
        &["-u", "http://{id}.test/", "-i", "0..10", "--http2"],
        "--http2 with a host that varies per item",
    );
    assert_refused_in(
        d,
        &["-u", URL, "-i", "0..10", "--save-body", "--bodies-dir", "b"],
        "'--save-body' cannot be used with '--bodies-dir <DIR>'",
    );
    assert_refused_in(
        d,
        &["-u", URL, "-i", "0..10", "--capture-header", "bad name"],
        "--capture-header",
    );
    assert_refused_in(
        d,
        &["-u", URL, "-i", "0..10", "--capture-header", "status"],
        "--capture-header status",
    );
    assert_refused_in(
        d,
        &[
            "-u",
            URL,
            "-i",
            "0..10",
            "--body-encoding",
            "hex",
            "--save-body",
        ],
        "--body-encoding",
    );
    assert_refused_in(
        d,
        &["-u", "ftp://{id}:8/x", "-i", "0..10"],
        "only http:// and https:// URLs are supported",
    );
}

#[test]
fn bad_trust_and_output_directories_name_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    assert_refused_in(
        d,
        &["-u", URL, "-i", "0..10", "--ca-cert", "missing.pem"],
        "--ca-cert missing.pem",
    );
    std::fs::write(d.join("empty.pem"), "no certificate here\n").expect("write");
    assert_refused_in(
        d,
        &["-u", URL, "-i", "0..10", "--ca-cert", "empty.pem"],
        "--ca-cert empty.pem: no PEM certificate",
    );
    // A directory under a regular file can't be made, even by root.
    std::fs::write(d.join("plain-file"), "x").expect("write");
    assert_refused_in(
        d,
        &[
            "-u",
            URL,
            "-i",
            "0..10",
            "--bodies-dir",
            "plain-file/bodies",
        ],
        "--bodies-dir plain-file/bodies: cannot write there",
    );
}

#[test]
fn a_config_file_with_an_unknown_key_or_bad_value_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("typo.toml"), "concurency = 4\n").expect("write");
    assert_refused_in(
        d,
        &["-u", URL, "-i", "0..10", "--config", "typo.toml"],
        "config file typo.toml: unknown key `concurency`",
    );
    std::fs::write(d.join("bad.toml"), "timeout = 'soon'\n").expect("write");
    assert_refused_in(
        d,
        &["-u", URL, "-i", "0..10", "--config", "bad.toml"],
        "config file bad.toml",
    );
}

#[test]
fn ids_and_ids_file_together_or_a_missing_file_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("keys.txt"), "a\n").expect("write");
    assert_refused_in(
        d,
        &["-u", URL, "-i", "0..10", "--ids-file", "keys.txt"],
        "cannot be used with",
    );
    assert_refused_in(
        d,
        &["-u", URL, "--ids-file", "missing.txt"],
        "--ids-file missing.txt",
    );
    std::fs::write(d.join("blank.txt"), "\n\n").expect("write");
    assert_refused_in(
        d,
        &["-u", URL, "--ids-file", "blank.txt"],
        "--ids-file blank.txt: no keys",
    );
    assert_refused_in(
        d,
        &["-u", URL],
        "--ids, --ids-file, --keys or --urls is required",
    );
}

#[test]
fn a_rate_that_is_not_positive_or_too_small_to_pace_is_refused() {
    assert_refused(
        &["-u", URL, "-i", "0..10", "--rate", "0"],
        "--rate 0: must be a number of requests per second from 0.001 to 1e9",
    );
    assert_refused(&["-u", URL, "-i", "0..10", "--rate", "-5"], "--rate -5");
    // Before: a worker panicked turning 1e20 s into a pause.
    assert_refused(
        &["-u", URL, "-i", "0..10", "--rate", "1e-20"],
        "--rate 0.00000000000000000001",
    );
}

#[test]
fn a_summary_json_in_a_missing_directory_is_refused() {
    assert_refused(
        &[
            "-u",
            URL,
            "-i",
            "0..10",
            "--summary-json",
            "no/such/dir/s.json",
        ],
        "--summary-json no/such/dir/s.json: directory no/such/dir does not exist",
    );
}

#[test]
fn a_user_agent_with_a_line_break_would_add_a_header_line() {
    assert_refused(
        &["-u", URL, "-i", "0..10", "--user-agent", "x\r\nX-Evil: 1"],
        "--user-agent \"x\\r\\nX-Evil: 1\": not a valid header value",
    );
}

/// Issue 35 items 14, 18 and 22: headers ringscrape writes itself, and a refresh that would
/// run the credential command hundreds of times a second.
#[test]
fn framing_headers_http2_connection_headers_and_a_sub_second_auth_refresh_are_refused() {
    // A GET with it hung 30 s × 3 attempts; beside a body, two Content-Lengths went out.
    assert_refused(
        &["-u", URL, "-i", "0..10", "-H", "Transfer-Encoding: chunked"],
        "ringscrape frames each request itself",
    );
    assert_refused(
        &[
            "-u",
            URL,
            "-i",
            "0..10",
            "-d",
            "a",
            "-H",
            "Content-Length: 5",
        ],
        "--header \"Content-Length: 5\": ringscrape frames each request itself",
    );
    // Every id failed as `protocol`, 3 attempts each, exit 0.
    assert_refused(
        &[
            "-u",
            URL,
            "-i",
            "0..10",
            "--http2",
            "-H",
            "Connection: keep-alive",
        ],
        "--http2 with --header connection: a connection-specific header",
    );
    assert_refused(
        &[
            "-u",
            URL,
            "-i",
            "0..10",
            "--auth-command",
            "echo A: b",
            "--auth-refresh",
            "1ms",
        ],
        "--auth-refresh 0.001 s: at least 1 s",
    );
}

#[test]
fn a_duration_without_a_number_or_with_an_unknown_unit_is_refused() {
    assert_refused(
        &["-u", URL, "-i", "0..10", "--timeout", "fast"],
        "expected a duration such as 30, 500ms, 2.5s or 2m",
    );
    assert_refused(
        &["-u", URL, "-i", "0..10", "--grace", "5d"],
        "unknown unit \"d\" (ms, s, m or h)",
    );
}

#[test]
fn an_output_that_is_a_directory_is_refused_whatever_the_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("rows")).expect("mkdir");
    for mode in [&[][..], &["--resume"], &["--overwrite"]] {
        let out = TestCommand::run(dir.path(), URL, "0..10")
            .output("rows")
            .args(mode)
            .output_of();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{mode:?}: {err}");
        assert!(
            err.starts_with("error: --output rows: is a directory"),
            "{mode:?}: {err}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, ["rows"], "{mode:?}: nothing created (no lock file)");
    }
}

#[test]
fn an_id_range_below_zero_or_without_an_end_names_the_flag() {
    assert_refused(
        &["-u", URL, "--ids", "-1..5"],
        "--ids -1..5: -1 is not a whole number",
    );
    assert_refused(
        &["-u", URL, "--ids", "0.."],
        "--ids 0..: expected START..END, e.g. 0..1000000",
    );
}

#[test]
fn bad_routing_proxy_and_memory_flags_name_the_flag() {
    let run = |flag: &'static str, value: &'static str| ["-u", URL, "-i", "0..10", flag, value];
    for (args, message) in [
        (
            run("--local-addr", "nope"),
            "--local-addr nope: not an IP address or CIDR block",
        ),
        (
            run("--local-addr", "10.0.0.0/8"),
            "--local-addr 10.0.0.0/8: more than 65536",
        ),
        (run("--proxy", "host:1:2"), "proxy host:1:2: expected"),
        (
            run("--proxy", "http://u:p@[::1"),
            "proxy http://***@[::1: expected",
        ),
        (
            run("--local-addr", "::1"),
            "--local-addr: none is an IPv4 address, and the target is 127.0.0.1",
        ),
        (
            run("--local-addr", "127.0.3.7,192.0.2.1"),
            "--local-addr 192.0.2.1: not an address of this machine",
        ),
        (
            run("--resolve", "a.test:80"),
            "--resolve a.test:80: expected HOST:PORT:ADDR",
        ),
        (
            run("--connect-to", "a:b"),
            "--connect-to a:b: expected HOST:PORT:HOST2:PORT2",
        ),
        (
            run("--dns-refresh", "0"),
            "--dns-refresh 0: must be a positive number",
        ),
        (run("--body-memory", "1.5M"), "`1.5M` is not a size"),
        (
            run("--proxy-file", "missing.txt"),
            "--proxy-file missing.txt:",
        ),
        // The password is not echoed.
        (
            run("--proxy", "ftp://u:s3cret@h:1"),
            "proxy ftp://***@h:1: expected http://",
        ),
    ] {
        assert_refused(&args, message);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("list.txt"), "socks5://127.0.0.1:1\n").expect("write");
    let both = [
        "--proxy",
        "socks5://127.0.0.1:2",
        "--proxy-file",
        "list.txt",
    ];
    assert_refused_in(
        dir.path(),
        &[&["-u", URL, "-i", "0..10"][..], &both].concat(),
        "--proxy and --proxy-file: give one",
    );
}

#[test]
fn a_url_with_a_password_is_refused_without_showing_it() {
    for url in [
        "http://user:PASS@127.0.0.1/{id}",
        "http://user:PASS@127.0.0.1/x",
        "ftp://user:PASS@127.0.0.1/{id}",
        "http://user:PASS@ho st/{id}",
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = TestCommand::new(dir.path())
            .args(["run", "-u", url, "-i", "0..3", "-o", "out.csv"])
            .output_of();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(!err.contains("PASS"), "{url}: the password shown: {err}");
        assert!(err.contains("***@"), "{url}: {err}");
    }
}

/// Runs `ringscrape run ARGS` in `dir` and checks it is refused (exit 2, one line holding
/// `expect_in_message`) with every file of `dir` as it was.
fn assert_refused_touching_nothing(dir: &std::path::Path, args: &[&str], expect_in_message: &str) {
    let before = files_of(dir);
    let out = TestCommand::new(dir).arg("run").args(args).output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: stderr {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
    assert!(err.contains(expect_in_message), "{args:?}: {err:?}");
    assert_eq!(files_of(dir), before, "{args:?}: a file changed");
}

/// Each file of `dir` with its bytes.
fn files_of(dir: &std::path::Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap_or_default()))
        .collect();
    files.sort();
    files
}

#[test]
fn a_report_or_summary_on_the_output_or_a_key_file_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("keys.csv"), "name\nalpha\nbeta\n").expect("write");
    std::fs::write(d.join("ids.txt"), "a\nb\n").expect("write");
    std::fs::write(d.join("out.csv"), "rows of an earlier run\n").expect("write");
    let url = "http://127.0.0.1:9/{name}";
    for (args, message) in [
        (
            &["--keys", "keys.csv", "--report", "keys.csv"][..],
            "--report keys.csv: is the --keys file too",
        ),
        (
            &["--keys", "keys.csv", "--summary-json", "./keys.csv"][..],
            "--summary-json ./keys.csv: is the --keys file too",
        ),
        (
            &["--keys", "keys.csv", "--report", "out.csv"][..],
            "--report out.csv: is the --output file too",
        ),
        (
            &["--keys", "keys.csv", "--summary-json", "out.csv"][..],
            "--summary-json out.csv: is the --output file too",
        ),
        (
            &[
                "--keys",
                "keys.csv",
                "--summary-json",
                "s.json",
                "--report",
                "s.json",
            ][..],
            "--report s.json: is the --summary-json file too",
        ),
    ] {
        let args = [&["-u", url, "-o", "out.csv", "--overwrite"][..], args].concat();
        assert_refused_touching_nothing(d, &args, message);
    }
    // A new output: the names match before either file exists.
    let args = [
        "-u", URL, "-i", "0..3", "-o", "new.csv", "--report", "new.csv",
    ];
    assert_refused_touching_nothing(d, &args, "--report new.csv: is the --output file too");
    let args = ["-u", "http://127.0.0.1:9/{id}", "--ids-file", "ids.txt"];
    let args = [&args[..], &["-o", "new.csv", "--summary-json", "ids.txt"]].concat();
    assert_refused_touching_nothing(
        d,
        &args,
        "--summary-json ids.txt: is the --ids-file file too",
    );
}

#[test]
fn rows_into_the_key_file_they_are_read_from_are_refused_even_with_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("keys.csv"), "name\nalpha\nbeta\n").expect("write");
    std::fs::write(d.join("ids.txt"), "a\nb\n").expect("write");
    for mode in ["--overwrite", "--resume"] {
        let args = ["-u", "http://127.0.0.1:9/{name}", "--keys", "keys.csv"];
        let args = [&args[..], &["-o", "./keys.csv", mode]].concat();
        assert_refused_touching_nothing(d, &args, "--output ./keys.csv: is the --keys file too");
        let args = ["-u", "http://127.0.0.1:9/{id}", "--ids-file", "ids.txt"];
        let args = [&args[..], &["-o", "ids.txt", mode]].concat();
        assert_refused_touching_nothing(d, &args, "--output ids.txt: is the --ids-file file too");
    }
}

#[test]
fn a_report_that_cannot_be_written_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("reports")).expect("mkdir");
    for flag in ["--report", "--summary-json"] {
        for (path, message) in [
            ("reports", "reports: is a directory"),
            ("/proc/x.html", "/proc/x.html: cannot write in /proc"),
        ] {
            assert_refused_in(
                dir.path(),
                &["-u", URL, "-i", "0..3", flag, path],
                &format!("{flag} {message}"),
            );
        }
    }
}

/// Issue 36 item 7: what `-o` names is what is written. A name of another kind of file, or of
/// another format than `--format`'s, exits 2 naming the fix, and no file is made; before, each
/// of these wrote rows its readers would misread (JSON Lines in `.csv`, CSV in `.json` and
/// `.tsv`, plain text in `.csv.gz`, a directory of parts named `.csv`).
#[test]
fn an_output_name_that_says_another_kind_of_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, format, said) in [
        ("f.csv", Some("jsonl"), "name it f.jsonl, or drop --format"),
        (
            "f.csv",
            Some("parquet"),
            "name it f.parquet, or drop --format",
        ),
        ("f.jsonl", Some("csv"), "name it f.csv, or drop --format"),
        (
            "f.json",
            None,
            "ringscrape writes JSON Lines: name it .jsonl",
        ),
        ("f.tsv", None, "tab-separated; ringscrape writes CSV"),
        ("f.xlsx", None, "a spreadsheet; ringscrape writes CSV"),
        ("f.csv.gz", None, "compressed"),
        ("f.zst", None, "compressed"),
    ] {
        let mut run = TestCommand::run(dir.path(), "http://127.0.0.1:9/{id}", "0..5").output(name);
        if let Some(format) = format {
            run = run.args(["--format", format]);
        }
        let out = run.output_of();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("--output {name}: ")) && err.contains(said),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "{name}: a file was made"
        );
    }
    // A name that says nothing takes --format; one that agrees with it is fine.
    let server = Server::start(&[]);
    for (name, format) in [("rows", "jsonl"), ("rows.JSONL", "jsonl"), ("r.csv", "csv")] {
        let out = TestCommand::run(dir.path(), &server.url(), "0..5")
            .output(name)
            .args(["--format", format])
            .output_of();
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
    }
    let lines = std::fs::read_to_string(dir.path().join("rows")).expect("rows");
    assert!(lines.starts_with('{'), "JSON Lines: {lines}");
}
