//! Where connections go and come from: `--local-addr` spreads them over source addresses (as
//! nginx sees them), `--resolve` and `--connect-to` send a name's connections to another
//! address while the Host header stays the name, and a name that does not resolve is `dns`.

use std::collections::HashMap;

use crate::common::*;

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
    // A name no resolver knows, pinned to loopback; as curl writes it, also for every name
    // (`*`) and to be resolved lazily (`+`).
    let url = format!("http://ringscrape.test:{port}/who?id={{id}}");
    for pin in [
        format!("ringscrape.test:{port}:127.0.0.1"),
        format!("*:{port}:127.0.0.1"),
        format!("+ringscrape.test:{port}:127.0.0.1"),
    ] {
        TestCommand::run(dir.path(), &url, "0..20")
            .output("out.csv")
            .args(["--save-body", "--no-progress", "--overwrite"])
            .args(["--resolve", &pin])
            .ok();
        for body in bodies(dir.path(), 20) {
            assert_eq!(body, "127.0.0.1 ringscrape.test", "{pin}");
        }
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

/// A name made from the key (`{id}` in the host) that does not resolve: a `dns` row per item.
/// (A fixed host that does not resolve is refused before the run: `diagnosis.rs`.)
#[test]
fn a_name_that_does_not_resolve_is_error_kind_dns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), "http://h{id}.invalid/x?id={id}", "0..10")
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

#[test]
#[ignore = "needs root: a network namespace whose addresses it removes (make test)"]
fn a_source_address_taken_away_mid_run_leaves_the_rotation_and_costs_no_row() {
    let ns = format!("rs-gone-{}", std::process::id());
    ip(&["netns", "add", &ns]);
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let _gone = Gone(ns.clone());
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    for addr in ["10.77.0.1/32", "10.77.0.2/32", "10.77.0.3/32"] {
        ip(&["-n", &ns, "addr", "add", addr, "dev", "lo"]);
    }
    let mut serve = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            BIN,
            "serve",
            "--listen",
            "10.77.0.1:18777",
        ])
        .args(["--threads", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    wait_for_listening(&mut serve);
    let dir = tempfile::tempdir().expect("tempdir");
    // Every request on a new connection (Connection: close), 1,000 a second for 3 s; the
    // second source address goes away after about 1 s.
    let run = TestCommand::in_netns(dir.path(), &ns)
        .args([
            "run",
            "-u",
            "http://10.77.0.1:18777/log?id={id}",
            "-i",
            "0..3000",
        ])
        .args(["-s", "1", "-c", "4", "-o", "out.csv", "--no-progress"])
        .args([
            "-H",
            "Connection: close",
            "--rate",
            "1000",
            "--retries",
            "1",
        ])
        .args(["--local-addr", "10.77.0.2,10.77.0.3", "--timeout", "2"])
        .spawn();
    // Mid-run: a second's worth of rows written.
    wait_for_rows(&dir.path().join("out.csv"), 500);
    ip(&["-n", &ns, "addr", "del", "10.77.0.3/32", "dev", "lo"]);
    let out = run.wait_with_output().expect("wait");
    let _ = serve.kill();
    let _ = serve.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("--local-addr 10.77.0.3: ") && stderr.contains("left out from now on"),
        "{stderr}"
    );
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 3000);
    let failed: Vec<&Row> = rows.iter().filter(|r| r.status != Some(200)).collect();
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
}
