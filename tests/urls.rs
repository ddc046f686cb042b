//! Whole URLs from a list: `--urls FILE` (one URL per line) and `-u '{url}'` over a key column
//! fetch each URL as it is, over two servers at once (nginx and `serve`), each row answered by
//! its own server and path; bad lines are `request` rows saying why (`-v`), never a stopped run;
//! blank lines are no items; kill -9 and `--resume` leave one row per line; `{base}` stands for a
//! URL's prefix beside `{id}`; `{url}` with nothing to fill it is a usage error.

use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// nginx answering every path with what it received: `nginx <request_uri> <Host>`.
fn nginx_saying_what_it_got() -> Nginx {
    Nginx::start(
        "",
        "location / { default_type text/plain; return 200 'nginx $request_uri $http_host'; }",
    )
}

/// The host:port of `base` (`http://127.0.0.1:8080` → `127.0.0.1:8080`).
fn authority(base: &str) -> &str {
    base.split_once("://").map_or(base, |(_, rest)| rest)
}

/// The `Host` header `serve`'s echo received.
fn host_of(echo: &Value) -> Option<&str> {
    echo["headers"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h[0] == "host"))
        .and_then(|h| h[1].as_str())
}

/// The rows of `out.csv` by their `url` column (each once).
fn rows_by_url(path: &std::path::Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let rows = csv_rows(path);
    let mut by_url = BTreeMap::new();
    for row in rows {
        let url = row["url"].clone();
        assert!(by_url.insert(url.clone(), row).is_none(), "{url}: two rows");
    }
    by_url
}

#[test]
fn a_list_over_two_servers_gets_each_url_from_its_own_server_and_path() {
    let serve = Server::start(&[]);
    let nginx = nginx_saying_what_it_got();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut urls = Vec::new();
    for n in 0..200 {
        urls.push(match n % 2 {
            0 => format!("{}/echo/p/{n}?n={n}&q=a%20b", serve.base),
            _ => format!("{}/files/{n}/x.txt?v={n}#frag", nginx.base),
        });
    }
    std::fs::write(dir.path().join("list.txt"), urls.join("\n") + "\n").expect("write");
    let out = TestCommand::new(dir.path())
        .args(["run", "--urls", "list.txt", "-o", "out.csv", "-s", "2"])
        .args(["-c", "8", "--save-body", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = rows_by_url(&dir.path().join("out.csv"));
    assert_eq!(rows.len(), urls.len(), "one row per line");
    for (n, url) in urls.iter().enumerate() {
        let row = &rows[url];
        assert_eq!(row["status"], "200", "{row:?}");
        let body = &row["body"];
        assert_eq!(row["bytes"], body.len().to_string(), "{row:?}");
        if n % 2 == 0 {
            let echo: Value = serde_json::from_str(body).expect("echo json");
            // The query as it was written: `%20` not encoded again.
            assert_eq!(echo["target"], format!("/echo/p/{n}?n={n}&q=a%20b"));
            assert_eq!(host_of(&echo), Some(authority(&serve.base)));
        } else {
            let expected = format!("nginx /files/{n}/x.txt?v={n} {}", authority(&nginx.base));
            assert_eq!(body, &expected, "the fragment is never sent");
        }
    }
}

#[test]
fn bad_lines_are_request_rows_saying_why_and_the_rest_are_fetched() {
    let nginx = nginx_saying_what_it_got();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = |n: u32| format!("{}/ok/{n}", nginx.base);
    let port = authority(&nginx.base).rsplit(':').next().expect("port");
    let bad = [
        ("example.com/x", "no scheme"),
        ("ftp://127.0.0.1/x", "a ftp: URL"),
        ("http://127.0.0.1:99999/x", "port 99999"),
        ("http://127.0.0.1/a b", "a space"),
        ("http:///x", "no host"),
    ];
    let mut lines = vec![good(0)];
    for (n, (line, _)) in bad.iter().enumerate() {
        lines.push(line.to_string());
        lines.push(String::new());
        lines.push(good(n as u32 + 1));
    }
    // The scheme in capitals is still http.
    lines.push(format!("HTTP://127.0.0.1:{port}/upper"));
    let text = lines.join("\r\n");
    std::fs::write(dir.path().join("list.txt"), &text).expect("write");
    let out = TestCommand::new(dir.path())
        .args([
            "run",
            "--urls",
            "list.txt",
            "-o",
            "out.csv",
            "-v",
            "--no-progress",
        ])
        .output_of();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "error rows are rows: {err}");
    let rows = rows_by_url(&dir.path().join("out.csv"));
    let non_blank: HashSet<&String> = lines.iter().filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), non_blank.len(), "one row per non-blank line");
    for (line, says) in bad {
        let row = &rows[line];
        assert_eq!(
            (row["error"].as_str(), row["status"].as_str()),
            ("request", "")
        );
        let detail = err
            .lines()
            .find(|l| l.contains(": request: ") && l.contains(&format!("{line:?}")))
            .unwrap_or_else(|| panic!("no -v line for {line}: {err}"));
        assert!(detail.contains(says), "{detail}");
    }
    for n in 0..=bad.len() as u32 {
        let row = &rows[&good(n)];
        assert_eq!((row["status"].as_str(), row["error"].as_str()), ("200", ""));
    }
    let upper = &rows[&format!("HTTP://127.0.0.1:{port}/upper")];
    assert_eq!(upper["status"], "200", "{upper:?}");
}

#[test]
fn urls_resume_after_kill_9_to_one_row_per_line() {
    let serve = Server::start(&["--delay-ms", "2..5"]);
    let other = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let lines: Vec<String> = (0..20_000)
        .map(|n| match n % 3 {
            0 => format!("{}/log?id={n}", other.base),
            _ => format!("{}/v1/logs/{n}", serve.base),
        })
        .collect();
    std::fs::write(dir.path().join("list.txt"), lines.join("\n")).expect("write");
    let scrape = || {
        TestCommand::new(dir.path())
            .args(["run", "--urls", "list.txt", "-o", "out.csv", "-s", "2"])
            .args(["-c", "16", "--no-progress"])
    };
    let mut run = scrape().spawn();
    let out_csv = dir.path().join("out.csv");
    wait_for_rows(&out_csv, 300);
    kill_9(&mut run);
    let before = line_count(&out_csv);
    assert!(before < 20_001, "killed mid-run: {before} lines");
    let out = scrape().arg("--resume").output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = rows_by_url(&out_csv);
    assert_eq!(rows.len(), lines.len());
    for (n, line) in lines.iter().enumerate() {
        let row = &rows[line];
        assert_eq!(row["status"], "200", "{row:?}");
        assert_eq!(row["bytes"], demo_body_len(n as u64).to_string(), "{row:?}");
    }
}

#[test]
fn a_base_column_stands_for_the_prefix_beside_an_encoded_id() {
    let (a, b) = (Server::start(&[]), Server::start(&[]));
    let dir = tempfile::tempdir().expect("tempdir");
    let bases = format!("base\n{}/echo/v1\n{}/echo/v2\n", a.base, b.base);
    std::fs::write(dir.path().join("bases.csv"), bases).expect("write");
    let out = TestCommand::new(dir.path())
        .args(["run", "-u", "{base}/x?id={id}", "--keys", "bases.csv"])
        .args([
            "--ids",
            "0..40",
            "-o",
            "out.csv",
            "--save-body",
            "--no-progress",
        ])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = csv_rows(&dir.path().join("out.csv"));
    assert_eq!(rows.len(), 80, "every (id, base) once");
    let mut seen = HashSet::new();
    for row in &rows {
        assert_eq!(row["status"], "200", "{row:?}");
        let echo: Value = serde_json::from_str(&row["body"]).expect("echo json");
        let (server, path) = match row["base"].contains(authority(&a.base)) {
            true => (&a, "/echo/v1"),
            false => (&b, "/echo/v2"),
        };
        let id = &row["id"];
        assert_eq!(echo["target"], format!("{path}/x?id={id}"), "{row:?}");
        assert_eq!(host_of(&echo), Some(authority(&server.base)));
        assert!(seen.insert((id.clone(), row["base"].clone())));
    }
}

#[test]
fn a_url_placeholder_nothing_fills_is_a_one_line_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::new(dir.path())
        .args(["run", "-u", "{url}", "--ids", "0..3", "-o", "out.csv"])
        .output_of();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("nothing fills {url}"), "{err}");
    assert!(!dir.path().join("out.csv").exists());
    // A list the request does not use: named by its flag.
    std::fs::write(dir.path().join("list.txt"), "http://127.0.0.1:1/\n").expect("write");
    let out = TestCommand::new(dir.path())
        .args(["run", "--urls", "list.txt", "-u", "http://127.0.0.1:1/{id}"])
        .args(["-o", "out.csv"])
        .output_of();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: --urls list.txt: the request uses none"),
        "{err}"
    );
    // A list of nothing but blank lines.
    std::fs::write(dir.path().join("blank.txt"), "\n  \n").expect("write");
    let out = TestCommand::new(dir.path())
        .args(["run", "--urls", "blank.txt", "-o", "out.csv"])
        .output_of();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--urls blank.txt: no records"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn node_slices_of_a_url_list_merge_into_one_row_per_line() {
    let serve = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let lines: Vec<String> = (0..500)
        .map(|n| format!("{}/log?id={n}", serve.base))
        .collect();
    std::fs::write(dir.path().join("list.txt"), lines.join("\n\n")).expect("write");
    for k in ["0", "1"] {
        let out = TestCommand::new(dir.path())
            .args([
                "run",
                "--urls",
                "list.txt",
                "-o",
                "part-{node}.csv",
                "--no-progress",
            ])
            .args(["--node-index", k, "--node-count", "2"])
            .output_of();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let merge = |inputs: &[&str]| {
        let job = ["merge", "--urls", "list.txt", "--overwrite", "all.csv"];
        ringscrape(dir.path(), &[&job[..], inputs].concat())
    };
    let out = merge(&["part-0.csv", "part-1.csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = rows_by_url(&dir.path().join("all.csv"));
    assert_eq!(rows.len(), lines.len());
    for (n, line) in lines.iter().enumerate() {
        assert_eq!(rows[line]["bytes"], demo_body_len(n as u64).to_string());
    }
    let out = merge(&["part-0.csv"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a slice left out: {}",
        stderr(&out)
    );
}

#[test]
fn a_urls_file_refused_beside_ids_or_http2_is_named_as_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("u.txt"), "http://127.0.0.1:9/a\n").expect("write");
    let said = |extra: &[&str]| {
        let out = TestCommand::new(dir.path())
            .args(["run", "--urls", "u.txt", "-o", "out.csv"])
            .args(extra)
            .output_of();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        stderr(&out)
    };
    let ids = said(&["-i", "0..3"]);
    assert!(
        ids.contains("--ids 0..3 with --urls: the request does not use {id}"),
        "{ids}"
    );
    let http2 = said(&["--http2"]);
    assert!(
        http2.contains("--http2 with a host that varies per item"),
        "{http2}"
    );
    assert!(http2.contains("--urls"), "{http2}");
}
