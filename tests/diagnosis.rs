//! The usual mistakes, each made as a newcomer makes it, against a real server on loopback: the
//! run says what the failures were, in words with the fix (not "the target looks down"), and
//! `--max-failed` turns a run whose answers all failed into exit 4.

use std::path::Path;
use std::process::Output;

use crate::common::*;

/// nginx on an HTTPS port, with a certificate from the test CA.
fn https_nginx(pki: &Path) -> Nginx {
    make_test_pki(pki);
    nginx_with_test_certs(
        "ssl",
        pki,
        "location /log { default_type application/json; return 200 '{\"id\":$arg_id}'; }",
    )
}

fn run(dir: &Path, url: &str, ids: &str, more: &[&str]) -> Output {
    TestCommand::run(dir, url, ids)
        .shards(2)
        .concurrency(16)
        .output("out.csv")
        .args(["--no-progress"])
        .args(more)
        .output_of()
}

/// The one line of stderr that holds `words`.
fn line_with<'a>(err: &'a str, words: &str) -> &'a str {
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(words)).collect();
    assert_eq!(lines.len(), 1, "one line with {words:?} in:\n{err}");
    lines[0]
}

#[test]
fn plain_http_to_an_https_port_says_use_https_and_max_failed_exits_4() {
    let pki = tempfile::tempdir().expect("tempdir");
    let nginx = https_nginx(pki.path());
    let url = format!("{}/log?id={{id}}", nginx.base).replace("https://", "http://");
    let dir = tempfile::tempdir().expect("tempdir");

    // Without --max-failed the run completes (exit 0), and says once what went wrong.
    let out = run(dir.path(), &url, "0..500", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 500);
    assert!(rows.iter().all(|r| r.status == Some(400)), "{:?}", rows[0]);
    let warning = line_with(&err, "warning: ");
    assert!(
        warning.contains("status 400") && warning.contains("use https://"),
        "{warning}"
    );

    // With it, the same run is exit 4 and one line says why.
    let out = run(
        dir.path(),
        &url,
        "0..500",
        &["--overwrite", "--max-failed", "5%"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    let line = line_with(&err, "--max-failed");
    assert_eq!(
        line,
        "ringscrape: 500 of 500 rows failed (100%), more than --max-failed 5% allows: exit 4"
    );

    // -q leaves the warning out (it says nothing on stderr but problems), not the verdict.
    let out = run(
        dir.path(),
        &url,
        "0..500",
        &["--overwrite", "-q", "--max-failed", "5%"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert!(err.contains("more than --max-failed 5%"), "{err}");
}

#[test]
fn max_failed_lets_a_run_under_the_share_pass() {
    // Every 10th id is dropped (a `closed` row after its retries): 10% failed.
    let server = Server::start(&["--drop-every", "10"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        dir.path(),
        &server.url(),
        "0..400",
        &["--retries", "0", "--max-failed", "0.2"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(
        dir.path(),
        &server.url(),
        "0..400",
        &["--retries", "0", "--max-failed", "0.05", "--overwrite"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("40 of 400 rows failed (10%), more than --max-failed 5% allows"),
        "{err}"
    );
    // Not every row failed the same way: no warning.
    assert!(!err.contains("warning:"), "{err}");
    // Run again with --resume (as a requeued Slurm task or a retried Kubernetes index is): the
    // kept rows are judged too, so nothing fetched does not make the job a success.
    let out = run(
        dir.path(),
        &server.url(),
        "0..400",
        &["--retries", "0", "--max-failed", "0.05", "--resume"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("40 of 400 rows failed (10%), more than --max-failed 5% allows"),
        "{err}"
    );
}

#[test]
fn tls_to_a_plain_port_says_use_http() {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url().replace("http://", "https://");
    let out = run(dir.path(), &url, "0..300", &[]);
    let err = stderr(&out);
    let warning = line_with(&err, "warning: ");
    assert!(
        warning.contains("the server answered plain HTTP, not TLS: use http://"),
        "{warning}"
    );

    // A smoke test of a few ids is told too.
    let out = run(dir.path(), &url, "0..5", &["--overwrite"]);
    let err = stderr(&out);
    let warning = line_with(&err, "warning: all 5 rows failed");
    assert!(warning.contains("use http://"), "{warning}");
}

#[test]
fn an_untrusted_certificate_says_use_ca_cert_or_k() {
    let pki = tempfile::tempdir().expect("tempdir");
    let nginx = https_nginx(pki.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        dir.path(),
        &format!("{}/log?id={{id}}", nginx.base),
        "0..300",
        &[],
    );
    let err = stderr(&out);
    let warning = line_with(&err, "warning: ");
    assert!(
        warning.contains("certificate is not trusted")
            && warning.contains("use --ca-cert FILE")
            && warning.contains("or -k"),
        "{warning}"
    );
}

/// The recipe most guides give (`openssl req -x509 … -subj /CN=localhost -addext
/// subjectAltName=…`) makes a certificate marked as a CA; `curl --cacert` takes it for the server
/// it belongs to, and so does `--ca-cert` (before: every row `tls`, `CaUsedAsEndEntity`). Another
/// name than the certificate's is still refused.
#[test]
fn a_self_signed_certificate_given_with_ca_cert_is_trusted_for_its_own_names() {
    let pki = tempfile::tempdir().expect("tempdir");
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args(["-keyout", "server.key", "-out", "server.pem", "-days", "2"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .current_dir(pki.path())
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "{}", stderr(&made));
    let nginx = nginx_with_test_certs(
        "ssl",
        pki.path(),
        "location /log { default_type application/json; return 200 '{\"id\":$arg_id}'; }",
    );
    let cert = pki.path().join("server.pem");
    let cert = cert.to_str().expect("utf-8");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}/log?id={{id}}", nginx.base).replace("127.0.0.1", "localhost");
    let out = run(dir.path(), &url, "0..300", &["--ca-cert", cert]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 300);
    assert!(rows.iter().all(|r| r.status == Some(200)), "{:?}", rows[0]);

    let port = nginx.base.rsplit(':').next().expect("a port");
    let elsewhere = url.replace("localhost", "elsewhere.test");
    let out = run(
        dir.path(),
        &elsewhere,
        "0..50",
        &[
            "--ca-cert",
            cert,
            "--overwrite",
            "--resolve",
            &format!("elsewhere.test:{port}:127.0.0.1"),
        ],
    );
    let rows = read_rows(&dir.path().join("out.csv"));
    assert!(rows.iter().all(|r| r.error == "tls"), "{:?}", rows[0]);
    let err = stderr(&out);
    let warning = line_with(&err, "warning: ");
    assert!(
        warning.contains("not for elsewhere.test") || warning.contains("not trusted"),
        "{warning}"
    );
}

#[test]
fn a_refused_port_says_nothing_listens_there_not_that_the_server_is_slow() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        dir.path(),
        &format!("http://127.0.0.1:{port}/log?id={{id}}"),
        "0..3000",
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    // Said by the stop itself, or by the first rows' warning just before it.
    line_with(&err, "stopping: the last 1000 items in a row failed:");
    line_with(
        &err,
        &format!("nothing listens at 127.0.0.1:{port} (connection refused): check the port"),
    );
    assert!(!err.contains("halved"), "{err}");
}

#[test]
fn http2_to_a_server_without_it_says_drop_http2() {
    let nginx = Nginx::start(
        "",
        "location /log { default_type application/json; return 200 '{\"id\":$arg_id}'; }",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        dir.path(),
        &format!("{}/log?id={{id}}", nginx.base),
        "0..300",
        &["--http2"],
    );
    let err = stderr(&out);
    let warning = line_with(&err, "warning: ");
    assert!(
        warning.contains("the server does not speak HTTP/2") && warning.contains("drop --http2"),
        "{warning}"
    );
}

/// A fixed host that does not resolve is refused before anything starts (exit 2, no file),
/// naming it; a host made from the keys stays a `dns` row per item.
#[test]
fn a_fixed_host_that_does_not_resolve_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        dir.path(),
        "http://no-such-host.invalid/x?id={id}",
        "0..10",
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: --url: the host no-such-host.invalid does not resolve"),
        "{err}"
    );
    assert!(!dir.path().join("out.csv").exists());

    let out = run(
        dir.path(),
        "http://h{id}.invalid/x?id={id}",
        "0..10",
        &["--retries", "0"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 10);
    assert!(rows.iter().all(|r| r.error == "dns"), "{:?}", rows[0]);
    let err = stderr(&out);
    let warning = line_with(&err, "warning: ");
    assert!(
        warning.contains("the hosts made from the keys do not resolve"),
        "{warning}"
    );
}
