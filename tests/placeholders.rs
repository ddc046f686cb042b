//! Placeholders: one that nothing fills (`{date}` beside a `day` column, `{dya}` in a header,
//! `{usr}` alone) and a key file none of whose columns the request uses are refused before any
//! request, naming what was typed and the placeholders there are; braces that are no placeholder
//! (a JSON body's) are sent as written; a misspelt `{node}` in `-o` is refused too.

use std::path::Path;

use crate::common::*;

/// `users.csv` (columns `user`, `tenant`) and `days.csv` (column `day`) in `dir`.
fn write_key_files(dir: &Path) {
    std::fs::write(dir.join("users.csv"), "user,tenant\nann,a\nbob,b\n").expect("write");
    std::fs::write(dir.join("days.csv"), "day\nmon\ntue\nwed\n").expect("write");
}

/// Runs `run -o out.csv <args>` in `dir` against `server`; asserts exit 2, one line on stderr and
/// no output file, and returns the line.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = TestCommand::new(dir)
        .args(["run", "-o", "out.csv", "--no-progress"])
        .args(args)
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
    assert!(!dir.join("out.csv").exists(), "{args:?}: nothing fetched");
    err
}

#[test]
fn a_placeholder_no_key_column_fills_is_refused_naming_it_and_the_columns() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    write_key_files(dir.path());
    let url = format!("{}/echo/users/{{user}}/logs?date={{date}}", server.base);
    let err = refused(
        dir.path(),
        &["-u", &url, "--keys", "users.csv", "--keys", "days.csv"],
    );
    assert!(
        err.starts_with("error: --url ")
            && err.contains("nothing fills {date}, which would be sent as written")
            && err.contains("(did you mean {day}?)")
            && err.contains("{user}, {tenant} from users.csv; {day} from days.csv"),
        "{err}"
    );
}

#[test]
fn a_typo_in_a_header_placeholder_is_refused_not_sent() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    write_key_files(dir.path());
    let url = format!("{}/echo/users/{{user}}/logs?date={{day}}", server.base);
    let err = refused(
        dir.path(),
        &[
            "-u",
            &url,
            "--keys",
            "users.csv",
            "--keys",
            "days.csv",
            "-H",
            "X-Day: {dya}",
        ],
    );
    assert!(
        err.contains("--header \"X-Day: {dya}\": nothing fills {dya}")
            && err.contains("(did you mean {day}?)"),
        "{err}"
    );
}

#[test]
fn a_typo_alone_is_named_rather_than_asking_for_id() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/echo/users/{{usr}}", server.base);
    let err = refused(dir.path(), &["-u", &url, "-i", "0..5"]);
    assert!(
        err.contains("nothing fills {usr}") && err.contains("the only placeholder is {id}"),
        "{err}"
    );
    assert!(!err.contains("must contain"), "{err}");
    let err = refused(
        dir.path(),
        &["-u", &url, "-i", "0..5", "-d", r#"{"user": "{usr}"}"#],
    );
    assert!(err.contains("nothing fills {usr}"), "{err}");
}

#[test]
fn a_key_file_whose_columns_the_request_never_uses_is_refused_naming_it() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    write_key_files(dir.path());
    let url = format!("{}/echo/users/{{user}}", server.base);
    let err = refused(
        dir.path(),
        &["-u", &url, "--keys", "users.csv", "--keys", "days.csv"],
    );
    assert!(
        err.contains("--keys days.csv: the request uses none of its columns ({day})"),
        "{err}"
    );
    // `--ids` beside key files is a source too: unused, it repeats every request.
    let url = format!("{}/echo/users/{{user}}", server.base);
    let err = refused(
        dir.path(),
        &["-u", &url, "-i", "0..4", "--keys", "users.csv"],
    );
    assert!(
        err.contains("--ids 0..4 with --keys: the request does not use {id}, so each request would be sent 4 times"),
        "{err}"
    );
}

#[test]
fn braces_that_are_no_placeholder_are_sent_as_written() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/echo?id={{id}}", server.base);
    let body = r#"{"a": {id}, "b": {"c": 1}, "n": {}, "re": "x{2}", "q": "{ user }"}"#;
    TestCommand::run(dir.path(), &url, "0..3")
        .args(["-d", body, "--save-body", "--no-progress"])
        .output("out.csv")
        .ok();
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_eq!(rows.len(), 3);
    for row in rows {
        let echo: serde_json::Value =
            serde_json::from_str(row.extra.last().expect("body column")).expect("echo json");
        assert_eq!(echo["body"], body.replace("{id}", &row.id.to_string()));
    }
}

#[test]
fn a_misspelt_node_placeholder_in_the_output_name_is_refused() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), &server.url(), "0..5")
        .args(["--node-index", "0", "--node-count", "1"])
        .output("part-{nod}.csv")
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--output part-{nod}.csv: nothing fills {nod}")
            && err.contains("the only placeholder there is {node}"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

#[test]
fn node_fills_the_summary_and_report_names_as_it_fills_the_outputs() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    for node in ["0", "1"] {
        TestCommand::run(dir.path(), &server.url(), "0..20")
            .args(["--node-index", node, "--node-count", "2", "--no-progress"])
            .args([
                "--summary-json",
                "sum-{node}.json",
                "--report",
                "rep-{node}.html",
            ])
            .output("part-{node}.csv")
            .ok();
    }
    for made in [
        "part-0.csv",
        "part-1.csv",
        "sum-0.json",
        "sum-1.json",
        "rep-0.html",
        "rep-1.html",
    ] {
        assert!(dir.path().join(made).is_file(), "{made}");
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("sum-0.json")).expect("read"),
    )
    .expect("json");
    assert_eq!(summary["output"], "part-0.csv");
    let out = TestCommand::run(dir.path(), &server.url(), "0..20")
        .args(["--report", "rep-{nod}.html"])
        .output("other.csv")
        .output_of();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--report rep-{nod}.html: nothing fills {nod}"),
        "{}",
        stderr(&out)
    );
}
