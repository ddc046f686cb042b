//! DNS for many names, in a network namespace of the test's own: a DNS server of ours
//! (`tests/servers/dns_lossy.py`, dnslib) answering a wildcard zone `*.test` with the namespace's
//! loopback, dropping a share of the queries and counting the queries per name; nginx answering
//! with the host asked for (or the address reached). 2,000 names × 2 items behind a server that
//! loses a fifth of the queries resolve with few `dns` rows and few queries per name; a name that
//! does not exist is `dns` for all its items at once, asked for once (the negative cache); a
//! record's TTL is honoured both ways. The same 2,000 names resolve through dnsmasq, the resolver
//! nobody here wrote. One shard: each worker has its own cache of names, and until hosts are
//! routed to one worker, two would each ask for every name. Needs root: `make test` runs these.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::dns::{Namespace, Netns};

/// The lossy DNS server in its namespace; [`LossyDns::queries`] stops it and reads its counts.
struct LossyDns {
    child: Child,
    counts: PathBuf,
    overrides: PathBuf,
    dir: tempfile::TempDir,
    ns: Namespace,
}

impl LossyDns {
    /// `drop`: the share of queries never answered; `ttl`: the TTL of every address.
    fn start(drop: f64, ttl: u32) -> LossyDns {
        let ns = Namespace::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let counts = dir.path().join("counts.json");
        let overrides = dir.path().join("overrides");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/dns_lossy.py");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3"])
            .arg(script)
            .args(["--drop", &drop.to_string(), "--ttl", &ttl.to_string()])
            .arg("--counts")
            .arg(&counts)
            .arg("--overrides")
            .arg(&overrides)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start dns_lossy.py (make test installs dnslib)");
        let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let dns = LossyDns {
            child,
            counts,
            overrides,
            dir,
            ns,
        };
        assert_eq!(line.trim(), "listening", "dns_lossy.py did not start");
        dns
    }

    /// Answers `name` with `addr` and `ttl` from now on.
    fn answer(&self, lines: &str) {
        let tmp = self.dir.path().join("overrides.tmp");
        std::fs::write(&tmp, lines).expect("write overrides");
        std::fs::rename(&tmp, &self.overrides).expect("rename overrides");
    }

    /// Stops the server: the queries each name got (`name.` → count), dropped ones included.
    fn queries(mut self) -> HashMap<String, u64> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        // `ip netns exec` execs python3: the child is the server itself.
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.counts).expect("the server's counts");
        serde_json::from_str(&text).expect("counts JSON")
    }
}

impl Drop for LossyDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx answering with the host asked for; 5 requests per connection, so each slot opens many
/// (and a name's new address is reached by the next connection).
const HOST: &str = "keepalive_requests 5;\nlocation /x { return 200 \"$host $server_addr\"; }";

/// A key file with the column `host`.
fn hosts_file(dir: &Path, hosts: impl Iterator<Item = String>) -> PathBuf {
    let path = dir.join("hosts.csv");
    let lines: String = std::iter::once("host".to_string())
        .chain(hosts)
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, lines + "\n").expect("write hosts.csv");
    path
}

/// Runs `items` ids per host of `hosts.csv` in `netns` on one shard; returns the rows (by
/// column) and how long the run took.
fn run_hosts(
    netns: &str,
    dir: &Path,
    port: u16,
    items: u64,
    extra: &[&str],
) -> (Vec<std::collections::BTreeMap<String, String>>, Duration) {
    let url = format!("http://{{host}}:{port}/x?i={{id}}");
    let started = Instant::now();
    TestCommand::in_netns(dir, netns)
        .args(["run", "-u", &url, "--keys", "hosts.csv", "-i"])
        .arg(format!("0..{items}"))
        .output("out.csv")
        .args(["--save-body", "--no-progress", "-s", "1"])
        .args(extra)
        .ok();
    (csv_rows(&dir.join("out.csv")), started.elapsed())
}

fn dns_rows(rows: &[std::collections::BTreeMap<String, String>]) -> usize {
    rows.iter().filter(|r| r["error"] == "dns").count()
}

const NAMES: usize = 2000;

#[test]
#[ignore = "needs root: a network namespace with a lossy DNS server of ours (make test)"]
fn two_thousand_names_behind_a_server_losing_a_fifth_of_queries_resolve_with_few_queries() {
    let dns = LossyDns::start(0.2, 300);
    let port = free_port();
    let _nginx = Nginx::start_in_netns(&dns.ns.name, &["127.0.0.1"], port, HOST);
    let dir = tempfile::tempdir().expect("tempdir");
    hosts_file(dir.path(), (0..NAMES).map(|k| format!("n{k}.test")));
    let (rows, took) = run_hosts(&dns.ns.name, dir.path(), port, 2, &["-c", "256"]);
    let ns_name = dns.ns.name.clone();
    let queries = dns.queries();
    assert_eq!(rows.len(), 2 * NAMES, "one row per item");
    let failed = dns_rows(&rows);
    // Under 0.5% of the rows.
    assert!(
        failed * 200 < rows.len(),
        "{failed} dns rows of {}",
        rows.len()
    );
    for row in rows.iter().filter(|r| r["error"].is_empty()) {
        assert_eq!(row["status"], "200", "{row:?}");
        assert_eq!(row["body"], format!("{} 127.0.0.1", row["host"]), "{row:?}");
    }
    let asked: u64 = (0..NAMES)
        .map(|k| queries.get(&format!("n{k}.test.")).copied().unwrap_or(0))
        .sum();
    let per_name = asked as f64 / NAMES as f64;
    eprintln!(
        "dns_scale: {NAMES} names in {ns_name}: {took:?}, {failed} dns rows, {per_name:.2} queries a name"
    );
    assert!(
        per_name <= 4.0,
        "{per_name:.2} queries a name (A, AAAA where none, retries included)"
    );
    assert!(took < Duration::from_secs(40), "{took:?}");
}

#[test]
#[ignore = "needs root: a network namespace with a lossy DNS server of ours (make test)"]
fn a_name_that_does_not_exist_is_dns_for_every_item_at_once_and_asked_for_once() {
    let dns = LossyDns::start(0.0, 300);
    let port = free_port();
    let _nginx = Nginx::start_in_netns(&dns.ns.name, &["127.0.0.1"], port, HOST);
    let dir = tempfile::tempdir().expect("tempdir");
    hosts_file(
        dir.path(),
        ["nx-gone.test", "here.test"].map(String::from).into_iter(),
    );
    let (rows, took) = run_hosts(&dns.ns.name, dir.path(), port, 50, &["-c", "8"]);
    let queries = dns.queries();
    assert_eq!(rows.len(), 100, "one row per item");
    for row in &rows {
        let want = if row["host"] == "here.test" {
            ("200", "")
        } else {
            ("", "dns")
        };
        assert_eq!(
            (row["status"].as_str(), row["error"].as_str()),
            want,
            "{row:?}"
        );
    }
    // Retries of each item included (`--retries 2`): the negative cache answers them.
    assert!(took < Duration::from_secs(5), "{took:?}");
    let asked = queries.get("nx-gone.test.").copied().unwrap_or(0);
    assert!((1..=4).contains(&asked), "nx-gone.test asked {asked} times");
}

#[test]
#[ignore = "needs root: a network namespace with a lossy DNS server of ours (make test)"]
fn a_short_ttl_is_asked_again_and_reaches_the_new_address_a_long_one_is_asked_once() {
    let dns = LossyDns::start(0.0, 300);
    dns.answer("flip.test 1 127.0.0.1\nlong.test 3600 127.0.0.1\n");
    let port = free_port();
    let _nginx = Nginx::start_in_netns(&dns.ns.name, &["127.0.0.1", "127.0.0.2"], port, HOST);
    let dir = tempfile::tempdir().expect("tempdir");
    hosts_file(
        dir.path(),
        ["flip.test", "long.test"].map(String::from).into_iter(),
    );
    let netns = dns.ns.name.clone();
    // 600 items at 150 a second: 4 s; the address changes a second in.
    let rows = std::thread::scope(|scope| {
        let run =
            scope.spawn(|| run_hosts(&netns, dir.path(), port, 300, &["-c", "4", "--rate", "150"]));
        wait_for_rows(&dir.path().join("out.csv"), 150);
        dns.answer("flip.test 1 127.0.0.2\nlong.test 3600 127.0.0.2\n");
        run.join().expect("the run").0
    });
    let queries = dns.queries();
    assert_eq!(rows.len(), 600, "one row per item");
    let reached = |host: &str, addr: &str| {
        rows.iter()
            .filter(|r| r["host"] == host && r["body"] == format!("{host} {addr}"))
            .count()
    };
    assert_eq!(reached("long.test", "127.0.0.1"), 300, "the long TTL holds");
    assert!(
        reached("flip.test", "127.0.0.2") >= 100,
        "flip.test's new address reached"
    );
    assert_eq!(
        reached("flip.test", "127.0.0.1") + reached("flip.test", "127.0.0.2"),
        300
    );
    let asked = |name: &str| queries.get(name).copied().unwrap_or(0);
    assert_eq!(
        asked("long.test."),
        1,
        "A, once (AAAA only for a name without)"
    );
    assert!(
        asked("flip.test.") >= 3,
        "flip.test asked {} times",
        asked("flip.test.")
    );
}

#[test]
#[ignore = "needs root: a network namespace with dnsmasq as its resolver (make test)"]
fn two_thousand_names_resolve_through_dnsmasq() {
    let netns = Netns::with_options("127.0.0.1 ready.test\n", &["--address=/test/127.0.0.1"]);
    let port = free_port();
    let _nginx = Nginx::start_in_netns(&netns.name, &["127.0.0.1"], port, HOST);
    let dir = tempfile::tempdir().expect("tempdir");
    hosts_file(dir.path(), (0..NAMES).map(|k| format!("d{k}.test")));
    let (rows, took) = run_hosts(&netns.name, dir.path(), port, 2, &["-c", "256"]);
    assert_eq!(rows.len(), 2 * NAMES, "one row per item");
    assert_eq!(dns_rows(&rows), 0);
    for row in &rows {
        assert_eq!(row["body"], format!("{} 127.0.0.1", row["host"]), "{row:?}");
    }
    assert!(took < Duration::from_secs(40), "{took:?}");
}
