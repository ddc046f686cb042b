//! HTTPS trust against nginx with a certificate from a CA this test makes: verified by default
//! (untrusted → error kind `tls`, not retried), `--ca-cert` adds the CA, `--insecure` accepts
//! anything and says so once.

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
