//! Names resolved off the event loop, against a resolver nobody here wrote: dnsmasq, in a
//! network namespace of the test's own (`ip netns exec` reads `/etc/netns/NAME/resolv.conf`),
//! with nginx there answering with the address each request reached. A name with two A
//! records spreads connections over both; an address that refuses is skipped; a name that
//! stops resolving mid-run keeps the addresses found before. Needs root: `make test` runs these,
//! `make test-fast` leaves them out.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::common::*;

/// A network namespace of a test's own, its loopback up and `nameserver 127.0.0.53` in the
/// `resolv.conf` that `ip netns exec` shows its processes; removed on drop.
pub struct Namespace {
    pub name: String,
}

impl Namespace {
    pub fn new() -> Namespace {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "rs-dns-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        let etc = Path::new("/etc/netns").join(&name);
        std::fs::create_dir_all(&etc).expect("mkdir /etc/netns/NAME");
        std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.53\n").expect("resolv.conf");
        Namespace { name }
    }

    /// Waits until the namespace's resolver answers for `name` (as getaddrinfo asks).
    pub fn wait_for_answer(&self, name: &str) {
        let answers = wait_for(Duration::from_secs(10), || {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.name, "getent", "hosts", name])
                .output()
                .ok()?;
            out.status.success().then_some(())
        });
        assert!(
            answers.is_some(),
            "no DNS answer for {name} in {}",
            self.name
        );
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.name));
    }
}

/// A [`Namespace`] with dnsmasq as its resolver, answering from a hosts file the test may change
/// (and `extra` options), torn down on drop.
pub struct Netns {
    pub name: String,
    hosts: PathBuf,
    dnsmasq: Child,
    _dir: tempfile::TempDir,
    _ns: Namespace,
}

impl Netns {
    fn new(hosts: &str) -> Netns {
        Netns::with_options(hosts, &[])
    }

    pub fn with_options(hosts: &str, extra: &[&str]) -> Netns {
        let ns = Namespace::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts_file = dir.path().join("hosts");
        std::fs::write(&hosts_file, hosts).expect("write hosts");
        let dnsmasq = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "dnsmasq",
                "--no-daemon",
                "--no-resolv",
            ])
            .args([
                "--no-hosts",
                "--listen-address=127.0.0.53",
                "--bind-interfaces",
            ])
            .arg(format!("--addn-hosts={}", hosts_file.display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq (make test installs it)");
        let netns = Netns {
            name: ns.name.clone(),
            hosts: hosts_file,
            dnsmasq,
            _dir: dir,
            _ns: ns,
        };
        // Torn down (dnsmasq killed) if it never answers.
        netns._ns.wait_for_answer("ready.test");
        netns
    }

    /// Replaces the hosts file and has dnsmasq read it again.
    fn change_hosts(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).expect("write hosts");
        let pid = nix::unistd::Pid::from_raw(self.dnsmasq.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP dnsmasq");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Before the namespace goes (`_ns`, dropped after this).
        let _ = self.dnsmasq.kill();
        let _ = self.dnsmasq.wait();
    }
}

const TWO_RECORDS: &str = "127.0.0.1 ready.test\n127.0.0.1 two.test\n127.0.0.2 two.test\n";

/// nginx answering with the address the request reached; 5 requests per connection, so each
/// slot opens many.
const WHERE: &str = "keepalive_requests 5;\nlocation /where { return 200 \"$server_addr\"; }";

fn run_in(netns: &Netns, dir: &Path, url: &str, ids: u64, extra: &[&str]) -> (Vec<String>, String) {
    let stderr = TestCommand::in_netns(dir, &netns.name)
        .args(["run", "-u", url, "-i", &format!("0..{ids}")])
        .output("out.csv")
        .args(["--save-body", "--no-progress", "-s", "1", "-c", "8"])
        .args(extra)
        .ok();
    (ok_bodies(&dir.join("out.csv"), ids), stderr)
}

#[test]
#[ignore = "needs root: a network namespace with dnsmasq as its resolver (make test)"]
fn a_name_with_two_addresses_spreads_connections_over_both() {
    let netns = Netns::new(TWO_RECORDS);
    let port = free_port();
    let _nginx = Nginx::start_in_netns(&netns.name, &["127.0.0.1", "127.0.0.2"], port, WHERE);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://two.test:{port}/where?id={{id}}");
    let (reached, _) = run_in(&netns, dir.path(), &url, 400, &[]);
    let to = |addr: &str| reached.iter().filter(|r| *r == addr).count();
    let (first, second) = (to("127.0.0.1"), to("127.0.0.2"));
    assert_eq!(first + second, 400);
    assert!(first >= 100 && second >= 100, "{first} and {second}");
}

#[test]
#[ignore = "needs root: a network namespace with dnsmasq as its resolver (make test)"]
fn an_address_that_refuses_costs_no_row() {
    let netns = Netns::new(TWO_RECORDS);
    let port = free_port();
    // Only the first address listens: the second refuses every connection.
    let _nginx = Nginx::start_in_netns(&netns.name, &["127.0.0.1"], port, WHERE);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://two.test:{port}/where?id={{id}}");
    let (reached, _) = run_in(&netns, dir.path(), &url, 400, &["--retries", "0"]);
    assert!(reached.iter().all(|r| r == "127.0.0.1"));
}

#[test]
#[ignore = "needs root: a network namespace with dnsmasq as its resolver (make test)"]
fn a_name_that_stops_resolving_mid_run_keeps_its_addresses() {
    let netns = Netns::new(TWO_RECORDS);
    let port = free_port();
    let _nginx = Nginx::start_in_netns(&netns.name, &["127.0.0.1", "127.0.0.2"], port, WHERE);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://two.test:{port}/where?id={{id}}");
    // 600 ids at 300 a second: 2 s, the name asked for every 200 ms.
    let flags = ["--rate", "300", "--dns-refresh", "200ms", "-v"];
    let run = std::thread::scope(|scope| {
        let run = scope.spawn(|| run_in(&netns, dir.path(), &url, 600, &flags));
        // Mid-run: the name was resolved and answers are coming.
        wait_for_rows(&dir.path().join("out.csv"), 50);
        netns.change_hosts("127.0.0.1 ready.test\n");
        run.join().expect("the run")
    });
    let (reached, stderr) = run;
    assert_eq!(reached.len(), 600, "every row a 200, as checked");
    assert!(
        stderr.contains("two.test") && stderr.contains("keeping the 2 addresses"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs root: a network namespace with dnsmasq as its resolver (make test)"]
fn id_in_the_host_resolves_each_name_and_a_name_that_does_not_is_dns() {
    // Hosts 0.many.test to 9.many.test resolve; 10 to 19 do not.
    let hosts: String = (0..10)
        .map(|k| format!("127.0.0.1 {k}.many.test\n"))
        .collect();
    let netns = Netns::new(&format!("127.0.0.1 ready.test\n{hosts}"));
    let port = free_port();
    let body = "location /host { return 200 \"$host\"; }";
    let _nginx = Nginx::start_in_netns(&netns.name, &["127.0.0.1"], port, body);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://{{id}}.many.test:{port}/host");
    TestCommand::in_netns(dir.path(), &netns.name)
        .args(["run", "-u", &url, "-i", "0..20", "-o", "out.csv"])
        .args(["--save-body", "--no-progress", "--retries", "0", "-c", "4"])
        .ok();
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 20);
    for row in &rows {
        if row.id < 10 {
            assert_eq!(
                (row.status, row.extra[0].as_str()),
                (Some(200), format!("{}.many.test", row.id).as_str()),
                "{row:?}"
            );
        } else {
            assert_eq!((row.status, row.error.as_str()), (None, "dns"), "{row:?}");
        }
    }
}
