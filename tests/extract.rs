//! `--extract`: fields of each body into columns, from flags and from the config file, against
//! the aiohttp target of tests/servers (gzip-encoded, so decoding comes first).

use crate::common::*;

const EXTRACTS: [&str; 8] = [
    "--extract",
    "name=/user/name",
    "--extract",
    "n=jq:.items | length",
    "--extract",
    "second=/items/1/id",
    "--extract",
    "pad=re:\"pad\":\"((?:ab)+)\"",
];

#[test]
fn each_kind_of_expression_fills_its_column_and_misses_stay_empty() {
    let target = AiohttpTarget::start_script("coded_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/doc?id={{id}}&coding=gzip", target.base);
    let mut args = EXTRACTS.to_vec();
    args.extend([
        "--extract",
        "admin=jq:.user.admin",
        "--summary-json",
        "s.json",
    ]);
    let rows = scrape_ok(dir.path(), &url, 0, 500, 8, &args);
    let header = std::fs::read_to_string(dir.path().join("out.csv")).expect("csv");
    assert!(
        header.starts_with("id,status,bytes,latency_ms,attempts,error,name,n,second,pad,admin\n"),
        "{}",
        header.lines().next().unwrap_or_default()
    );
    for row in &rows {
        let id = row.id;
        let pad = if id % 40 == 0 {
            String::new()
        } else {
            "ab".repeat((id % 40) as usize)
        };
        assert_eq!(
            row.extra,
            [
                format!("user {id}"),
                "3".into(),
                (10 * id + 1).to_string(),
                pad,
                (id.is_multiple_of(2)).to_string()
            ],
            "id {id}"
        );
    }
    // The regex misses where `pad` is empty (id % 40 == 0): 13 of 500 ids.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).expect("json"))
            .expect("valid");
    assert_eq!(summary["extract_misses"], 13);

    // A body that is not JSON: pointer and jq cells empty (not error rows), the regex still runs.
    let url = format!("{}/text?id={{id}}", target.base);
    let rows = scrape_ok(dir.path(), &url, 0, 50, 4, &EXTRACTS);
    for row in &rows {
        assert_eq!((row.status, row.error.as_str()), (Some(200), ""));
        assert_eq!(row.extra, ["", "", "", ""], "{row:?}");
    }
}

#[test]
fn extraction_keeps_no_body_unless_asked_and_works_from_the_config_file() {
    let target = AiohttpTarget::start_script("coded_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("c.toml"),
        "extract = ['name=/user/name', 'n=jq:.items | length']\nsave_body = true\n",
    )
    .expect("config");
    let url = format!("{}/doc?id={{id}}&coding=br", target.base);
    let rows = scrape_ok(dir.path(), &url, 0, 100, 4, &["--config", "c.toml"]);
    for row in &rows {
        assert_eq!(row.extra[0], format!("user {}", row.id));
        assert_eq!(row.extra[1], "3");
        assert!(row.extra[2].starts_with(&format!("{{\"id\":{},", row.id)));
    }
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        100,
        4,
        &["--extract", "name=/user/name"],
    );
    assert!(rows.iter().all(|row| row.extra.len() == 1));
}

#[test]
fn a_bad_expression_or_a_clashing_name_is_exit_2_before_any_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens on port 9: a run that got as far as a request would say connect errors.
    for (flags, want) in [
        (
            vec!["--extract", "x=jq:.items |"],
            "error: --extract x=jq:.items |: not a jq filter: expected term at the end",
        ),
        (
            vec!["--extract", "x=re:(unclosed"],
            "error: --extract x=re:(unclosed: not a regular expression",
        ),
        (
            vec!["--extract", "x=user.name"],
            "error: --extract x=user.name: a JSON Pointer starts with `/`",
        ),
        (
            vec!["--extract", "status=/status"],
            "error: --extract status=/status: column `status` is also written by ringscrape itself",
        ),
        (
            vec!["--capture-header", "etag", "--extract", "etag=/e"],
            "error: --extract etag=/e: column `etag` is also written by --capture-header etag",
        ),
        (
            vec!["--save-body", "--extract", "body=/b"],
            "error: --save-body: column `body` is also written by --extract body=/b",
        ),
    ] {
        let out = TestCommand::run(dir.path(), "http://127.0.0.1:9/{id}", "0..5")
            .output("o.csv")
            .args(flags)
            .output_of();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.starts_with(want), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!dir.path().join("o.csv").exists());
    }
    std::fs::write(dir.path().join("keys.txt"), "a\nb\n").expect("keys");
    let out = TestCommand::keys(dir.path(), "http://127.0.0.1:9/{id}", "keys.txt")
        .output("o.csv")
        .args(["--capture-header", "line"])
        .output_of();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(
            "error: --capture-header line: column `line` is also written by --ids-file (its line column)"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_body_nested_too_deep_for_jq_is_a_miss_and_the_worker_lives() {
    use std::io::Write;
    // Odd ids: 20,000 nested objects, gzip (211 bytes on the wire); even ids: a small document.
    let gzip = |text: &str| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(text.as_bytes()).expect("gzip");
        encoder.finish().expect("gzip")
    };
    let deep = gzip(&("{\"a\":".repeat(20_000) + "1" + &"}".repeat(20_000)));
    let base = raw_server(move |target, stream| {
        let id: u64 = target
            .rsplit('=')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let body = if id % 2 == 1 {
            deep.clone()
        } else {
            gzip(&format!("{{\"id\":{id}}}"))
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).is_ok() && stream.write_all(&body).is_ok()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{base}/doc?id={{id}}");
    let args = [
        "--extract",
        "x=jq:.id",
        "--extract",
        "y=jq:.",
        "--summary-json",
        "s.json",
    ];
    let rows = scrape_ok(dir.path(), &url, 0, 200, 4, &args);
    for row in &rows {
        assert_eq!((row.status, row.error.as_str()), (Some(200), ""), "{row:?}");
        if row.id % 2 == 1 {
            assert_eq!(row.extra, ["", ""], "id {}", row.id);
        } else {
            let doc = format!("{{\"id\":{}}}", row.id);
            assert_eq!(row.extra, [row.id.to_string(), doc], "id {}", row.id);
        }
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).expect("json"))
            .expect("valid");
    assert_eq!(
        summary["extract_misses"], 200,
        "two misses for each of 100 deep bodies"
    );
}

/// A jq filter that recurses without end on some answers overflows the worker's stack, which
/// nothing can catch: the shard's keeper finds each such item (a worker of one slot over the
/// items that were in flight), writes it as a `crash` row, and finishes the shard.
#[test]
fn an_answer_that_kills_its_worker_is_one_crash_row_and_the_shard_finishes() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let filter = "x=jq:if .id % 500 == 7 then (def f: 1 + f; f) else .id end";
    let rows = scrape_ok(
        dir.path(),
        &server.url(),
        0,
        3000,
        32,
        &["--extract", filter],
    );
    for row in &rows {
        if row.id % 500 == 7 {
            assert_eq!((row.status, row.error.as_str()), (None, "crash"), "{row:?}");
        } else {
            assert_eq!((row.status, row.error.as_str()), (Some(200), ""), "{row:?}");
            assert_eq!(row.extra, [row.id.to_string()], "{row:?}");
        }
    }
    // Keys from a file: the crash row names its key.
    let keys: String = (0..200).map(|k| format!("k{k}\n")).collect();
    std::fs::write(dir.path().join("keys.txt"), keys).expect("keys");
    let base = raw_server(|target, stream| {
        use std::io::Write;
        let key = target.rsplit('=').next().unwrap_or("");
        let body = format!("{{\"key\":\"{key}\"}}");
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        stream.write_all((head + &body).as_bytes()).is_ok()
    });
    let filter = "x=jq:if .key == \"k42\" then (def f: 1 + f; f) else .key end";
    TestCommand::keys(dir.path(), &format!("{base}/doc?key={{id}}"), "keys.txt")
        .output("keys.csv")
        .args(["-s", "1", "-c", "16", "--no-progress", "--extract", filter])
        .ok();
    let csv = std::fs::read_to_string(dir.path().join("keys.csv")).expect("csv");
    let crashed: Vec<&str> = csv.lines().filter(|l| l.contains(",crash,")).collect();
    assert_eq!(crashed.len(), 1, "{crashed:?}");
    assert!(crashed[0].starts_with("k42,"), "{crashed:?}");
    assert_eq!(csv.lines().count(), 201, "a header and a row per key");
}
