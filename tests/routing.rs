//! Where connections go and come from: `--local-addr` spreads them over source addresses (as
//! nginx sees them), `--resolve` and `--connect-to` send a name's connections to another
//! address while the Host header stays the name, and a name that does not resolve is `dns`.

mod common;

use std::collections::HashMap;

use common::*;

/// nginx answering each request with the address it came from and the Host it named; a
/// connection carries at most 5 requests, so each slot opens many.
fn who_nginx() -> Nginx {
    Nginx::start(
        "keepalive_requests 5;",
        "location /who { return 200 \"$remote_addr $host\"; }",
    )
}

fn port_of(base: &str) -> &str {
    base.rsplit(':').next().expect("a port")
}

/// The saved bodies of a run's rows, which must all be 200s.
fn bodies(dir: &std::path::Path, ids: u64) -> Vec<String> {
    ok_bodies(&dir.join("out.csv"), ids)
}

#[test]
fn local_addr_spreads_connections_over_a_cidr_block() {
    let nginx = who_nginx();
    let dir = tempfile::tempdir().expect("tempdir");
    TestCommand::run(
        dir.path(),
        &format!("{}/who?id={{id}}", nginx.base),
        "0..800",
    )
    .shards(2)
    .concurrency(16)
    .output("out.csv")
    .args([
        "--save-body",
        "--local-addr",
        "127.0.0.8/29",
        "--no-progress",
    ])
    .ok();
    let mut by_source: HashMap<String, usize> = HashMap::new();
    for body in bodies(dir.path(), 800) {
        let source = body.split(' ').next().expect("address").to_string();
        *by_source.entry(source).or_default() += 1;
    }
    let expected: Vec<String> = (8..16).map(|k| format!("127.0.0.{k}")).collect();
    let mut seen: Vec<&String> = by_source.keys().collect();
    seen.sort_by_key(|a| a.rsplit('.').next().and_then(|k| k.parse::<u8>().ok()));
    assert_eq!(seen, expected.iter().collect::<Vec<_>>(), "{by_source:?}");
    // Connections take the addresses in turn: each carries a fair share of the requests.
    assert!(
        by_source.values().all(|&n| n >= 800 / 8 / 2),
        "{by_source:?}"
    );
}

#[test]
fn resolve_and_connect_to_send_a_name_elsewhere_keeping_its_host() {
    let nginx = who_nginx();
    let port = port_of(&nginx.base);
    let dir = tempfile::tempdir().expect("tempdir");
    // A name no resolver knows, pinned to loopback.
    let url = format!("http://ringscrape.test:{port}/who?id={{id}}");
    TestCommand::run(dir.path(), &url, "0..20")
        .output("out.csv")
        .args(["--save-body", "--no-progress"])
        .args(["--resolve", &format!("ringscrape.test:{port}:127.0.0.1")])
        .ok();
    for body in bodies(dir.path(), 20) {
        assert_eq!(body, "127.0.0.1 ringscrape.test");
    }
    // Port 80 of another unknown name, connected to nginx's port on loopback.
    let dir = tempfile::tempdir().expect("tempdir");
    TestCommand::run(dir.path(), "http://other.test/who?id={id}", "0..20")
        .output("out.csv")
        .args(["--save-body", "--no-progress"])
        .args(["--connect-to", &format!("other.test:80:127.0.0.1:{port}")])
        .ok();
    for body in bodies(dir.path(), 20) {
        assert_eq!(body, "127.0.0.1 other.test");
    }
}

#[test]
fn a_name_that_does_not_resolve_is_error_kind_dns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), "http://no-such-host.invalid/x?id={id}", "0..10")
        .output("out.csv")
        .args(["--retries", "0", "--no-progress"])
        .output_of();
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 10);
    for row in &rows {
        assert_eq!((row.status, row.error.as_str()), (None, "dns"), "{row:?}");
    }
    assert!(stderr(&out).contains("dns"), "{}", stderr(&out));
}

#[test]
fn source_addresses_and_pinned_names_work_from_the_config_file() {
    let nginx = who_nginx();
    let port = port_of(&nginx.base);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("net.toml"),
        format!(
            "local_addr = [\"127.0.0.20/30\"]\n\
             resolve = [\"config.test:{port}:127.0.0.1\"]\n\
             dns_refresh = 30\n"
        ),
    )
    .expect("config");
    let url = format!("http://config.test:{port}/who?id={{id}}");
    TestCommand::run(dir.path(), &url, "0..200")
        .shards(1)
        .concurrency(8)
        .output("out.csv")
        .args(["--save-body", "--no-progress", "--config", "net.toml"])
        .ok();
    let mut sources = std::collections::BTreeSet::new();
    for body in bodies(dir.path(), 200) {
        let (source, host) = body.split_once(' ').expect("address and host");
        assert_eq!(host, "config.test");
        sources.insert(source.to_string());
    }
    let expected: std::collections::BTreeSet<String> =
        (20..24).map(|k| format!("127.0.0.{k}")).collect();
    assert_eq!(sources, expected);
}
