//! HTTPS trust against nginx with a certificate from a CA this test makes: verified by default
//! (untrusted → error kind `tls`, not retried), `--ca-cert` adds the CA, `--insecure` accepts
//! anything and says so once.

use std::time::Duration;

use crate::common::*;

fn https_nginx(pki: &std::path::Path) -> Nginx {
    nginx_with_test_certs(
        "ssl",
        pki,
        "location /log { default_type application/json; return 200 '{\"id\":$arg_id}'; }",
    )
}

#[test]
fn a_private_ca_is_trusted_with_ca_cert_and_refused_without() {
    let pki = tempfile::tempdir().expect("tempdir");
    make_test_pki(pki.path());
    let nginx = https_nginx(pki.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = pki.path().join("ca.pem");
    let url = format!("{}/log?id={{id}}", nginx.base);
    let rows = scrape_ok(
        dir.path(),
        &url,
        0,
        2000,
        16,
        &["--ca-cert", ca.to_str().expect("utf-8")],
    );
    assert!(
        rows.iter()
            .all(|r| r.status == Some(200) && r.bytes == plain_body_len(r.id)),
        "{:?}",
        rows[0]
    );
    // By name too: the certificate names localhost.
    let by_name = url.replace("127.0.0.1", "localhost");
    let rows = scrape_ok(
        dir.path(),
        &by_name,
        0,
        200,
        8,
        &["--ca-cert", ca.to_str().expect("utf-8")],
    );
    assert!(rows.iter().all(|r| r.status == Some(200)));

    // The test CA is not among the bundled or system roots: every row is a tls error, not
    // retried (another attempt would fail the same way).
    let rows = scrape_ok(dir.path(), &url, 0, 100, 8, &["--summary-json", "s.json"]);
    for row in &rows {
        assert_eq!(
            (row.status, row.error.as_str(), row.attempts),
            (None, "tls", 1),
            "{row:?}"
        );
    }
    // The summary says why, as curl does (the reason is rustls's).
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).expect("summary"))
            .expect("json");
    let reasons = summary["tls_reasons"].as_object().expect("reasons");
    assert_eq!(
        reasons.values().filter_map(|n| n.as_u64()).sum::<u64>(),
        100,
        "{reasons:?}"
    );
    assert!(
        reasons
            .keys()
            .all(|reason| reason.contains("UnknownIssuer")),
        "{reasons:?}"
    );
}

#[test]
fn insecure_accepts_the_certificate_and_warns_once() {
    let pki = tempfile::tempdir().expect("tempdir");
    make_test_pki(pki.path());
    let nginx = https_nginx(pki.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/log?id={{id}}", nginx.base);
    let out = TestCommand::run(dir.path(), &url, "0..500")
        .shards(2)
        .concurrency(8)
        .output("out.csv")
        .args(["--insecure"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("--insecure").count(), 1, "{err}");
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 500);
    assert!(rows.iter().all(|r| r.status == Some(200)));
}

#[test]
fn a_plain_http_server_behind_an_https_url_is_a_tls_error() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url().replace("http://", "https://");
    let rows = scrape_ok(dir.path(), &url, 0, 50, 4, &["--timeout", "5"]);
    assert!(rows.iter().all(|r| r.error == "tls"), "{:?}", rows[0]);
}

/// A new connection per request (nginx closes after each answer), 512 in flight: after the
/// first connections, every handshake resumes a TLS 1.3 session, and the summary's counts are
/// the server's own (`$ssl_session_reused` in its log). rustls' own store, which keeps 8 tickets
/// per server, left 900–1,600 of 6,000 handshakes full here.
#[test]
fn sessions_resume_after_the_first_connections_and_are_counted_as_the_server_counts() {
    sessions_resume_as_the_server_counts("ssl_protocols TLSv1.3;");
}

/// The same with TLS 1.2 and session ids (no tickets): the server's session cache.
#[test]
fn tls12_sessions_resume_by_session_id_as_the_server_counts() {
    sessions_resume_as_the_server_counts(
        "ssl_protocols TLSv1.2;\nssl_session_tickets off;\nssl_session_cache shared:ids:1m;",
    );
}

fn sessions_resume_as_the_server_counts(protocol: &str) {
    let pki = tempfile::tempdir().expect("tempdir");
    make_test_pki(pki.path());
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("reused.log");
    let directives = format!(
        "ssl_certificate {d}/server.pem;\nssl_certificate_key {d}/server.key;\n\
         {protocol}\nkeepalive_timeout 0;\nlog_format reused '$ssl_session_reused';",
        d = pki.path().display()
    );
    let server = format!(
        "access_log {} reused;\nlocation /log {{ return 200 'ok'; }}",
        log.display()
    );
    let nginx = Nginx::start_listening("ssl", &directives, &server);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = pki.path().join("ca.pem");
    TestCommand::run(
        dir.path(),
        &format!("{}/log?id={{id}}", nginx.base),
        "0..6000",
    )
    .shards(1)
    .concurrency(512)
    .output("out.csv")
    .args(["--ca-cert", ca.to_str().expect("utf-8")])
    .args(["--summary-json", "s.json"])
    .ok();
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 6000);
    assert!(rows.iter().all(|r| r.status == Some(200)), "{:?}", rows[0]);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("s.json")).expect("summary"))
            .expect("json");
    let (resumed, full) = (
        summary["tls_resumed"].as_u64().expect("tls_resumed"),
        summary["tls_full"].as_u64().expect("tls_full"),
    );
    // nginx writes a request's log line as it finishes it, which may be just after the answer.
    let lines = wait_for(Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.lines().count() == 6000).then_some(text)
    })
    .expect("one log line per request");
    let reused = lines.lines().filter(|l| *l == "r").count() as u64;
    assert_eq!((resumed, full), (reused, 6000 - reused));
    assert!(
        full <= 512,
        "{full} full handshakes for 512 connections at once"
    );
}
