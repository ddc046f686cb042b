//! Connect pacing (`src/worker/conn/pace.rs`): a server that drops SYNs (its listen queue full)
//! halves the connect window, and says so with `-v`; a path that loses packets at random does
//! not — there a connect waiting for a lost SYN is raced by a second one instead.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::*;

#[test]
fn a_server_whose_listen_queue_is_full_halves_the_connect_window() {
    // A listener with a queue of 2 that never accepts: past the first few, every SYN is
    // dropped, and each connect waits for a retransmit that is dropped again.
    let mut listener = Command::new("python3")
        .args([
            "-c",
            "import socket, sys, time\n\
             s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(2)\n\
             print(s.getsockname()[1], flush=True); time.sleep(60)",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut port = String::new();
    BufReader::new(listener.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("port");
    let listener = Killed(listener);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{}/log?id={{id}}", port.trim());
    let out = TestCommand::run(dir.path(), &url, "0..300")
        .shards(1)
        .concurrency(300)
        .output("out.csv")
        .args(["--timeout", "2s", "--retries", "0", "-v"])
        .output_of();
    drop(listener);
    let said = stderr(&out);
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 300);
    assert!(rows.iter().all(|row| row.status.is_none()), "{said}");
    assert!(
        said.contains("connect window") && said.contains("SYNs dropped"),
        "-v says why the window shrank: {said}"
    );
}

#[test]
#[ignore = "needs root: two network namespaces joined by a lossy wire (make test)"]
fn random_loss_on_the_path_never_shrinks_the_connect_window() {
    let path = LossyPath::new(5, 3.0);
    let _serve = path.serve();
    let dir = tempfile::tempdir().expect("tempdir");
    // A new connection per request: 3,000 connects, about 6% of them waiting for a lost SYN
    // (3% loss each way), far from the quarter of a round that reads as a server pushing back.
    let out = TestCommand::in_netns(dir.path(), &path.client)
        .args(["run", "-u", &format!("http://{SERVER}:18778/log?id={{id}}")])
        .args(["-i", "0..3000", "-s", "1", "-c", "128", "-o", "out.csv"])
        .args(["-H", "Connection: close", "--no-progress", "-v"])
        .output_of();
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 3000);
    assert!(rows.iter().all(|row| row.status == Some(200)), "{said}");
    assert!(
        said.contains("connects waited for a lost SYN"),
        "the loss was seen: {said}"
    );
    assert!(!said.contains("connect window"), "{said}");
}

const SERVER: &str = "10.78.0.1";

/// Two network namespaces joined by bench/delay-link/wire.c: each packet held `delay_ms` each
/// way, `loss_pct`% of them dropped. Removed on drop.
struct LossyPath {
    server: String,
    client: String,
    wire: Child,
}

impl LossyPath {
    fn new(delay_ms: u32, loss_pct: f64) -> LossyPath {
        let tag = std::process::id();
        let (server, client) = (format!("rs-pace-a{tag}"), format!("rs-pace-b{tag}"));
        for (ns, dev, addr) in [(&server, "tunA", SERVER), (&client, "tunB", "10.78.0.2")] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "tuntap", "add", "dev", dev, "mode", "tun"]);
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let wire = std::env::temp_dir().join(format!("ringscrape-wire-{tag}"));
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/delay-link/wire.c");
        let built = Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&wire)
            .arg(&source)
            .status()
            .expect("cc");
        assert!(built.success(), "cc {}", source.display());
        let wire = Command::new(&wire)
            .args([&format!("/run/netns/{server}"), "tunA"])
            .args([&format!("/run/netns/{client}"), "tunB"])
            .args([delay_ms.to_string(), loss_pct.to_string(), "100000".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("wire");
        LossyPath {
            server,
            client,
            wire,
        }
    }

    /// `ringscrape serve` on the server's side, killed on drop.
    fn serve(&self) -> Killed {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.server, BIN, "serve"])
            .args(["--listen", &format!("{SERVER}:18778"), "--threads", "1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("serve");
        let mut child = Killed(child);
        wait_for_listening(&mut child.0);
        child
    }
}

impl Drop for LossyPath {
    fn drop(&mut self) {
        let _ = self.wire.kill();
        let _ = self.wire.wait();
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
