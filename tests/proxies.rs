//! Through proxies nobody here wrote: Debian's tinyproxy (plain HTTP forwarded, `CONNECT` for
//! https) and microsocks (SOCKS5, with and without a password). Each proxy connects onward from
//! a loopback address of its own, and the target (nginx) answers with the address each request
//! came from: so every row proves it came through its proxy, or directly.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// A proxy process, killed on drop.
struct ProxyServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn started(child: Child, port: u16, dir: tempfile::TempDir) -> ProxyServer {
    let up = wait_for(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    assert!(up.is_some(), "the proxy did not listen on {port}");
    ProxyServer {
        child,
        port,
        _dir: dir,
    }
}

/// tinyproxy with user `alice`, password `s3cret`, connecting onward from 127.0.0.5.
fn tinyproxy() -> ProxyServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let conf = dir.path().join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nBind 127.0.0.5\nTimeout 30\nMaxClients 100\n\
             Allow 127.0.0.1\nDisableViaHeader Yes\nLogLevel Critical\nBasicAuth alice s3cret\n"
        ),
    )
    .expect("write tinyproxy.conf");
    let child = Command::new("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tinyproxy (make test installs it)");
    started(child, port, dir)
}

/// microsocks connecting onward from `bind`, with user `bob` and password `pw` if `auth`.
fn microsocks(bind: &str, auth: bool) -> ProxyServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut cmd = Command::new("microsocks");
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string(), "-b", bind]);
    if auth {
        cmd.args(["-u", "bob", "-P", "pw"]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start microsocks (make test installs it)");
    started(child, port, dir)
}

const WHO: &str = "location /who { return 200 \"$remote_addr\"; }";

/// Runs `ids` through the extra flags; returns each row's body (the address nginx saw), after
/// checking every row is a 200.
fn sources(dir: &Path, url: &str, ids: u64, extra: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    sources_and_stderr(dir, url, ids, extra, env).0
}

/// [`sources`], and what the run said on stderr.
fn sources_and_stderr(
    dir: &Path,
    url: &str,
    ids: u64,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Vec<String>, String) {
    let mut run = TestCommand::run(dir, url, &format!("0..{ids}"))
        .output("out.csv")
        .args([
            "--save-body",
            "--no-progress",
            "--overwrite",
            "--retries",
            "0",
        ])
        .args(extra);
    for (name, value) in env {
        run = run.env(name, value);
    }
    let stderr = run.ok();
    assert!(
        !stderr.contains("s3cret") && !stderr.contains(":pw@"),
        "a password on stderr: {stderr}"
    );
    (ok_bodies(&dir.join("out.csv"), ids), stderr)
}

fn all_from(sources: &[String], address: &str) {
    assert!(
        sources.iter().all(|s| s == address),
        "not all from {address}: {:?}",
        sources.iter().find(|s| *s != address)
    );
}

#[test]
fn every_proxy_kind_carries_http_https_and_h2() {
    let pki = tempfile::tempdir().expect("tempdir");
    make_test_pki(pki.path());
    let ca = pki.path().join("ca.pem");
    let ca = ca.to_str().expect("utf-8");
    let plain = Nginx::start("", WHO);
    let tls = nginx_with_test_certs("ssl http2", pki.path(), WHO);
    let tiny = tinyproxy();
    let socks = microsocks("127.0.0.6", false);
    let socks_auth = microsocks("127.0.0.7", true);
    let proxies = [
        (
            format!("http://alice:s3cret@127.0.0.1:{}", tiny.port),
            "127.0.0.5",
        ),
        (format!("socks5://127.0.0.1:{}", socks.port), "127.0.0.6"),
        (
            format!("socks5h://bob:pw@127.0.0.1:{}", socks_auth.port),
            "127.0.0.7",
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for (proxy, from) in &proxies {
        let http = format!("{}/who?id={{id}}", plain.base);
        all_from(
            &sources(dir.path(), &http, 200, &["--proxy", proxy], &[]),
            from,
        );
        let https = format!("{}/who?id={{id}}", tls.base);
        let trusted = ["--proxy", proxy, "--ca-cert", ca];
        all_from(&sources(dir.path(), &https, 200, &trusted, &[]), from);
        let h2 = [&trusted[..], &["--http2", "-c", "32"]].concat();
        all_from(&sources(dir.path(), &https, 200, &h2, &[]), from);
    }
}

#[test]
fn the_environment_names_the_proxy_and_no_proxy_bypasses_it() {
    let plain = Nginx::start("", WHO);
    let socks = microsocks("127.0.0.6", false);
    let url = format!("{}/who?id={{id}}", plain.base);
    let proxy = format!("socks5://127.0.0.1:{}", socks.port);
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["http_proxy", "HTTP_PROXY", "ALL_PROXY", "RINGSCRAPE_PROXY"] {
        let through = sources(dir.path(), &url, 20, &[], &[(name, &proxy)]);
        all_from(&through, "127.0.0.6");
    }
    // An https proxy variable is not for an http:// target.
    let direct = sources(dir.path(), &url, 20, &[], &[("HTTPS_PROXY", &proxy)]);
    all_from(&direct, "127.0.0.1");
    for no_proxy in ["127.0.0.1", "*", "localhost,127.0.0.1", "127.0.0.0/30"] {
        let env = [("HTTP_PROXY", proxy.as_str()), ("NO_PROXY", no_proxy)];
        all_from(&sources(dir.path(), &url, 20, &[], &env), "127.0.0.1");
    }
    // The flag wins over the environment.
    let dead = format!("socks5://127.0.0.1:{}", free_port());
    let flagged = sources(
        dir.path(),
        &url,
        20,
        &["--proxy", &proxy],
        &[("ALL_PROXY", &dead)],
    );
    all_from(&flagged, "127.0.0.6");
}

#[test]
fn a_failing_proxy_is_error_kind_proxy_never_the_targets() {
    let plain = Nginx::start("", WHO);
    let socks_auth = microsocks("127.0.0.7", true);
    let url = format!("{}/who?id={{id}}", plain.base);
    let dead = free_port();
    // A forward proxy that wants credentials: its 407 is never the target's answer.
    let wants_credentials = raw_server(|_, stream| {
        use std::io::Write;
        let answer = "HTTP/1.1 407 Proxy Authentication Required\r\n\
                      Proxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n";
        stream.write_all(answer.as_bytes()).is_ok()
    });
    for proxy in [
        format!("socks5://bob:wrong@127.0.0.1:{}", socks_auth.port),
        format!("socks5://127.0.0.1:{}", socks_auth.port),
        format!("socks5://127.0.0.1:{dead}"),
        format!("http://127.0.0.1:{dead}"),
        wants_credentials,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = TestCommand::run(dir.path(), &url, "0..20")
            .output("out.csv")
            .args(["--proxy", &proxy, "--retries", "0", "--no-progress", "-v"])
            .output_of();
        assert!(!stderr(&out).contains("wrong"), "{}", stderr(&out));
        let rows = read_rows(&dir.path().join("out.csv"));
        assert_one_row_per_id(&rows, 0, 20);
        for row in &rows {
            assert_eq!(
                (row.status, row.error.as_str()),
                (None, "proxy"),
                "{proxy}: {row:?}"
            );
        }
    }
}

#[test]
fn a_proxy_file_spreads_over_the_healthy_proxies_and_benches_a_dead_one() {
    let plain = Nginx::start("", WHO);
    let (a, b) = (
        microsocks("127.0.0.6", false),
        microsocks("127.0.0.7", true),
    );
    let dead = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("proxies.txt");
    std::fs::write(
        &list,
        format!(
            "# two that work and one that does not\nsocks5://127.0.0.1:{}\n\
             socks5://127.0.0.1:{dead}\nsocks5h://bob:pw@127.0.0.1:{}\n",
            a.port, b.port
        ),
    )
    .expect("write the list");
    let url = format!("{}/who?id={{id}}", plain.base);
    let list = list.to_str().expect("utf-8");
    let flags = ["--proxy-file", list, "-s", "2", "-c", "8"];
    let (from, stderr) = sources_and_stderr(
        dir.path(),
        &url,
        600,
        &[&flags[..], &["--summary-json", "summary.json"]].concat(),
        &[],
    );
    let through = |addr: &str| from.iter().filter(|s| *s == addr).count();
    let (via_a, via_b) = (through("127.0.0.6"), through("127.0.0.7"));
    assert_eq!(via_a + via_b, 600, "every row through a working proxy");
    assert!(via_a >= 150 && via_b >= 150, "shared: {via_a} and {via_b}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).expect("read"))
            .expect("json");
    let proxies = summary["proxies"].as_object().expect("per-proxy figures");
    let dead_one = &proxies[&format!("socks5://127.0.0.1:{dead}")];
    assert!(dead_one["failures"].as_u64() >= Some(1), "{proxies:?}");
    assert_eq!(dead_one["rows"].as_u64(), Some(0), "{proxies:?}");
    assert!(dead_one["bench_ms"].as_u64() > Some(0), "{proxies:?}");
    // The summary on stderr has a line per proxy, the dead one's with its failures.
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!("proxy      socks5://127.0.0.1:{dead}: ")))
        .unwrap_or_else(|| panic!("no summary line for the dead proxy: {stderr}"));
    assert!(
        line.contains(" 0 rows (0.0%), ") && line.contains(" benched "),
        "{line}"
    );
    let rows: u64 = proxies.values().filter_map(|p| p["rows"].as_u64()).sum();
    assert_eq!(rows, 600, "{proxies:?}");
    assert!(
        proxies.contains_key(&format!("socks5h://***@127.0.0.1:{}", b.port)),
        "{proxies:?}"
    );
}

#[test]
fn every_proxy_failing_stops_the_run_as_abort_after_does() {
    let plain = Nginx::start("", WHO);
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("proxies.txt");
    let (p1, p2) = (free_port(), free_port());
    std::fs::write(
        &list,
        format!("socks5://127.0.0.1:{p1}\nhttp://127.0.0.1:{p2}\n"),
    )
    .expect("write the list");
    let url = format!("{}/who?id={{id}}", plain.base);
    let out = TestCommand::run(dir.path(), &url, "0..5000")
        .output("out.csv")
        .args(["--proxy-file", list.to_str().expect("utf-8")])
        .args(["--abort-after", "100", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert!(
        rows.len() >= 100 && rows.len() < 5000,
        "{} rows",
        rows.len()
    );
    assert!(rows.iter().all(|r| r.error == "proxy"), "{rows:?}");
}

#[test]
fn the_config_file_names_the_proxy_and_the_proxy_file() {
    let plain = Nginx::start("", WHO);
    let socks = microsocks("127.0.0.6", true);
    let url = format!("{}/who?id={{id}}", plain.base);
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = format!("socks5://bob:pw@127.0.0.1:{}", socks.port);
    std::fs::write(
        dir.path().join("proxy.toml"),
        format!("proxy = \"{proxy}\"\n"),
    )
    .expect("write config");
    let through = sources(dir.path(), &url, 20, &["--config", "proxy.toml"], &[]);
    all_from(&through, "127.0.0.6");
    std::fs::write(dir.path().join("list.txt"), format!("{proxy}\n")).expect("write list");
    std::fs::write(dir.path().join("file.toml"), "proxy_file = \"list.txt\"\n")
        .expect("write config");
    let through = sources(dir.path(), &url, 20, &["--config", "file.toml"], &[]);
    all_from(&through, "127.0.0.6");
}

/// A raw-socket stand-in for a forwarding HTTP proxy that answers every request itself with
/// `name` as the body: kept alive, or closed after each answer (as tinyproxy does).
fn answering_proxy(name: &'static str, close: bool) -> String {
    raw_server(move |_, stream| {
        use std::io::Write;
        let connection = if close { "close" } else { "keep-alive" };
        let answer = format!(
            "HTTP/1.1 200 OK\r\nConnection: {connection}\r\nContent-Length: {}\r\n\r\n{name}",
            name.len()
        );
        stream.write_all(answer.as_bytes()).is_ok() && !close
    })
}

/// `--proxy-file` of `proxies` (base URLs), `ids` ids through it: the bodies (which proxy
/// answered) and the summary JSON's `proxies`.
fn through_proxy_file(proxies: &[String], ids: u64) -> (Vec<String>, serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("proxies.txt");
    std::fs::write(&list, proxies.join("\n") + "\n").expect("write the list");
    let list = list.to_str().expect("utf-8");
    let flags = ["--proxy-file", list, "-s", "1", "-c", "16"];
    let url = "http://198.51.100.1/who?id={id}";
    let (bodies, stderr) = sources_and_stderr(
        dir.path(),
        url,
        ids,
        &[&flags[..], &["--summary-json", "summary.json"]].concat(),
        &[],
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).expect("read"))
            .expect("json");
    (bodies, summary["proxies"].clone(), stderr)
}

#[test]
fn a_forwarding_proxy_that_fails_is_benched_and_the_request_goes_through_another() {
    use std::io::Write;
    let wants_credentials = raw_server(|_, stream| {
        let answer = "HTTP/1.1 407 Proxy Authentication Required\r\n\
                      Proxy-Authenticate: Basic realm=\"p\"\r\nContent-Length: 0\r\n\r\n";
        stream.write_all(answer.as_bytes()).is_ok()
    });
    let closes_at_once = raw_server(|_, _| false);
    for bad in [wants_credentials, closes_at_once] {
        let good = answering_proxy("good", false);
        let (bodies, proxies, _) = through_proxy_file(&[bad.clone(), good], 1000);
        assert!(
            bodies.iter().all(|b| b == "good"),
            "{bad}: every id answered through the good proxy, none a `proxy` row"
        );
        let failing = &proxies[bad.as_str()];
        assert!(failing["failures"].as_u64() >= Some(1), "{proxies}");
        assert!(failing["bench_ms"].as_u64() > Some(0), "{proxies}");
        assert_eq!(failing["rows"].as_u64(), Some(0), "{proxies}");
    }
}

#[test]
fn proxies_share_requests_even_when_one_closes_after_every_answer() {
    let (kept, closing) = (
        answering_proxy("kept", false),
        answering_proxy("closing", true),
    );
    let (bodies, proxies, stderr) = through_proxy_file(&[kept.clone(), closing.clone()], 4000);
    let via_closing = bodies.iter().filter(|b| *b == "closing").count();
    assert_eq!(bodies.len(), 4000);
    assert!(
        (1600..=2400).contains(&via_closing),
        "about half through each: {via_closing} of 4000 through the closing one; {proxies}"
    );
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!("proxy      {closing}: ")))
        .unwrap_or_else(|| panic!("no summary line for the proxy: {stderr}"));
    assert!(line.contains(&format!("{via_closing} rows (")), "{line}");
}

#[test]
fn a_407_from_the_target_itself_is_a_status() {
    let base = raw_server(|_, stream| {
        use std::io::Write;
        let answer = "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n";
        stream.write_all(answer.as_bytes()).is_ok()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = scrape_ok(
        dir.path(),
        &format!("{base}/status/407?id={{id}}"),
        0,
        50,
        4,
        &["--retries", "0"],
    );
    for row in &rows {
        assert_eq!((row.status, row.error.as_str()), (Some(407), ""), "{row:?}");
    }
}

/// A `CONNECT` proxy of a few lines answering with `head`: it connects to the authority asked
/// for, waits up to 300 ms for the target's first bytes (an HTTP/2 server's SETTINGS) and sends
/// them in the same write as its answer, then relays both ways. Counts the early bytes.
fn eager_connect_proxy(
    head: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, Read, Write};
    use std::sync::atomic::Ordering;
    let early = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = early.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let early = counted.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(client.try_clone().expect("clone"));
                let mut line = String::new();
                reader.read_line(&mut line).expect("request line");
                let authority = line.split_whitespace().nth(1).unwrap_or("").to_string();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let Ok(mut target) = std::net::TcpStream::connect(&authority) else {
                    return;
                };
                target
                    .set_read_timeout(Some(Duration::from_millis(300)))
                    .expect("timeout");
                let mut first = vec![0u8; 4096];
                let n = target.read(&mut first).unwrap_or(0);
                early.fetch_add(n, Ordering::SeqCst);
                target.set_read_timeout(None).expect("no timeout");
                let mut answer = head.as_bytes().to_vec();
                answer.extend_from_slice(&first[..n]);
                let mut client = client;
                if client.write_all(&answer).is_err() || !head.contains(" 200 ") {
                    return;
                }
                let (mut from_client, mut to_target) = (reader, target.try_clone().expect("clone"));
                std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_target));
                let _ = std::io::copy(&mut target, &mut client);
            });
        }
    });
    (base, early)
}

#[test]
fn a_connect_answer_is_read_as_any_answer_and_what_follows_it_is_the_tunnels() {
    let target = AiohttpTarget::start_script("h2c_target.py");
    let url = format!("{}/who?id={{id}}", target.base);
    let dir = tempfile::tempdir().expect("tempdir");
    // The target's SETTINGS in the same write as the 200; then an answer with bare LF ends.
    for head in [
        "HTTP/1.1 200 Connection established\r\n\r\n",
        "HTTP/1.1 200 Connection established\nVia: test\n\n",
    ] {
        let (proxy, early) = eager_connect_proxy(head);
        let flags = [
            "--proxy",
            &proxy,
            "--http2",
            "-c",
            "8",
            "--connect-timeout",
            "3",
        ];
        let bodies = sources(dir.path(), &url, 100, &flags, &[]);
        all_from(&bodies, "h2c");
        assert!(
            early.load(std::sync::atomic::Ordering::SeqCst) > 0,
            "the target's first bytes came with the proxy's answer"
        );
    }
    // A 407 with a body is the proxy's refusal, said as such.
    let (proxy, _) = eager_connect_proxy(
        "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 5\r\n\r\nnope!",
    );
    let out = TestCommand::run(dir.path(), &url, "0..10")
        .output("out.csv")
        .args([
            "--proxy",
            &proxy,
            "--http2",
            "--retries",
            "0",
            "-v",
            "--overwrite",
        ])
        .args(["--no-progress"])
        .output_of();
    assert!(
        stderr(&out).contains("CONNECT answered 407"),
        "{}",
        stderr(&out)
    );
    for row in read_rows(&dir.path().join("out.csv")) {
        assert_eq!((row.status, row.error.as_str()), (None, "proxy"), "{row:?}");
    }
}

#[test]
fn a_proxy_that_never_answers_under_http2_is_proxy_for_every_row() {
    let silent = raw_server(|_, _| {
        // A proxy that never answers: holding the connection silent is the point.
        std::thread::sleep(Duration::from_secs(30));
        false
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let out = TestCommand::run(dir.path(), "http://127.0.0.1:9/who?id={id}", "0..40")
        .output("out.csv")
        .args([
            "--proxy",
            &silent,
            "--http2",
            "-s",
            "1",
            "-c",
            "8",
            "--retries",
            "0",
        ])
        .args(["--connect-timeout", "1", "--timeout", "2", "--no-progress"])
        .output_of();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = read_rows(&dir.path().join("out.csv"));
    assert_one_row_per_id(&rows, 0, 40);
    for row in &rows {
        assert_eq!((row.status, row.error.as_str()), (None, "proxy"), "{row:?}");
    }
}
