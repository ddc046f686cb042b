//! Compressed answers: asked for by default and decoded as they arrive, from nginx's `gzip on`
//! and from an aiohttp target whose bodies the reference encoders made (zlib, PyPI brotli and
//! zstandard). Each kept body is compared byte for byte with the document the server encoded.

use crate::common::*;

/// The document `tests/servers/coded_target.py` sends for `id`, before any coding.
fn document(id: u64) -> String {
    format!(
        "{{\"id\":{id},\"user\":{{\"name\":\"user {id}\",\"admin\":{}}},\"items\":[{{\"id\":{}}},{{\"id\":{}}},{{\"id\":{}}}],\"score\":{id}.5,\"pad\":\"{}\"}}",
        id.is_multiple_of(2),
        10 * id,
        10 * id + 1,
        10 * id + 2,
        "ab".repeat((id % 40) as usize)
    )
}

fn summary_json(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("s.json")).expect("summary json");
    serde_json::from_str(&text).expect("valid json")
}

#[test]
fn every_coding_and_a_stack_of_them_decode_to_the_original_bytes() {
    let target = AiohttpTarget::start_script("coded_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    for coding in [
        "gzip",
        "deflate",
        "rawdeflate",
        "br",
        "zstd",
        "gzip,br",
        "zstd&chunked=1",
        "br,gzip&chunked=1",
    ] {
        let url = format!("{}/doc?id={{id}}&coding={coding}", target.base);
        let rows = scrape_ok(
            dir.path(),
            &url,
            0,
            300,
            8,
            &["--save-body", "--summary-json", "s.json"],
        );
        for row in &rows {
            let want = document(row.id);
            assert_eq!(
                (row.status, row.error.as_str(), row.bytes),
                (Some(200), "", want.len() as u64),
                "{coding}: {row:?}"
            );
            assert_eq!(row.extra[0], want, "{coding}: id {}", row.id);
        }
        let summary = summary_json(dir.path());
        let decoded = summary["bytes"].as_u64().expect("bytes");
        let wire = summary["bytes_wire"].as_u64().expect("bytes_wire");
        let total: u64 = (0..300).map(|id| document(id).len() as u64).sum();
        assert_eq!(decoded, total, "{coding}");
        assert!(wire > 0 && wire != decoded, "{coding}: wire {wire}");
    }
}

#[test]
fn our_accept_encoding_is_sent_unless_given_and_raw_body_sends_none() {
    let target = AiohttpTarget::start_script("coded_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/echo?id={{id}}", target.base);
    let seen = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["--save-body"];
        args.extend_from_slice(extra);
        let rows = scrape_ok(dir.path(), &url, 0, 3, 1, &args);
        rows.iter()
            .map(|row| {
                let echo: serde_json::Value = serde_json::from_str(&row.extra[0]).expect("json");
                let headers = echo["headers"].as_array().expect("headers").clone();
                headers
                    .iter()
                    .filter(|h| {
                        h[0].as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case("accept-encoding"))
                    })
                    .map(|h| h[1].as_str().expect("value").to_string())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    };
    assert!(seen(&[]).iter().all(|v| v == "gzip, deflate, br, zstd"));
    assert!(
        seen(&["-H", "Accept-Encoding: gzip"])
            .iter()
            .all(|v| v == "gzip")
    );
    assert!(seen(&["--raw-body"]).iter().all(String::is_empty));

    // The user's own header still gets a decoded body; --raw-body keeps what came.
    let url = format!("{}/doc?id={{id}}&coding=gzip", target.base);
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        50,
        4,
        &["--save-body", "-H", "Accept-Encoding: gzip"],
    );
    assert!(rows.iter().all(|row| row.extra[0] == document(row.id)));
    let rows = scrape_ok(dir.path(), &url, 0, 50, 4, &["--save-body", "--raw-body"]);
    for row in &rows {
        // gzip's magic bytes 1f 8b, base64 of a body that is not UTF-8.
        assert!(row.extra[0].starts_with("base64:H4sI"), "{row:?}");
        assert_ne!(row.bytes, document(row.id).len() as u64);
    }
}

#[test]
fn a_corrupt_stream_is_a_decode_row_and_an_unknown_coding_is_kept_as_received() {
    let target = AiohttpTarget::start_script("coded_target.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/corrupt?id={{id}}", target.base);
    let rows = scrape_ok(dir.path(), &url, 0, 40, 4, &["--save-body"]);
    for row in &rows {
        assert_eq!(
            (row.status, row.error.as_str(), row.attempts),
            (Some(200), "decode", 1),
            "not retried, the status kept: {row:?}"
        );
    }
    let url = format!("{}/unknown?id={{id}}", target.base);
    let out = TestCommand::run(dir.path(), &url, "0..40")
        .shards(1)
        .concurrency(4)
        .output("out.csv")
        .args([
            "--overwrite",
            "--save-body",
            "--no-progress",
            "--summary-json",
            "s.json",
        ])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "40 bodies in a Content-Encoding ringscrape does not decode, kept as received"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(summary_json(dir.path())["unknown_coding"], 40);
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 40);
    assert!(
        rows.iter()
            .all(|row| row.status == Some(200) && row.extra[0] == document(row.id))
    );
}

/// nginx's gzip filter on HTTP/1.1 and on HTTP/2 (prior knowledge): the rows hold the body
/// nginx was given, the summary the smaller count that crossed the wire.
#[test]
fn nginx_gzip_on_is_decoded_over_http1_and_http2() {
    let pad = "abcdefgh".repeat(64);
    let locations = format!(
        "gzip on; gzip_types application/json; gzip_min_length 0;\n\
         location /log {{ default_type application/json; return 200 '{{\"id\":$arg_id,\"pad\":\"{pad}\"}}'; }}"
    );
    let plain = |id: u64| format!("{{\"id\":{id},\"pad\":\"{pad}\"}}");
    for listen in ["", "http2"] {
        let nginx = Nginx::start_listening(listen, "", &locations);
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("{}/log?id={{id}}", nginx.base);
        let mut args = vec!["--save-body", "--summary-json", "s.json"];
        if listen == "http2" {
            args.push("--http2");
        }
        let rows = scrape_ok(dir.path(), &url, 0, 2000, 16, &args);
        for row in &rows {
            assert_eq!(row.status, Some(200), "{listen}: {row:?}");
            assert_eq!(row.extra[0], plain(row.id), "{listen}: id {}", row.id);
            assert_eq!(row.bytes, plain(row.id).len() as u64);
        }
        let summary = summary_json(dir.path());
        let (decoded, wire) = (summary["bytes"].as_u64(), summary["bytes_wire"].as_u64());
        let (decoded, wire) = (decoded.expect("bytes"), wire.expect("bytes_wire"));
        assert!(
            wire * 5 < decoded,
            "{listen}: gzip on the wire {wire}, decoded {decoded}"
        );

        args.push("--raw-body");
        let rows = scrape_ok(dir.path(), &url, 0, 200, 4, &args);
        assert!(
            rows.iter().all(|row| row.extra[0] == plain(row.id)),
            "{listen}: without Accept-Encoding nginx sends it plain"
        );
    }
}
