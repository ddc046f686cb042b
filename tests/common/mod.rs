//! Helpers shared by the integration tests: start `ringscrape serve` on a free loopback port,
//! run the built binary, and read its CSV back row by row.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ringscrape::output::reader::RowReader;

mod tier;
pub use tier::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_ringscrape");

/// A `ringscrape serve` process, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--threads", "2"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ringscrape serve");
        let base = wait_for_listening(&mut child);
        Server { child, base }
    }

    pub fn url(&self) -> String {
        format!("{}/log?id={{id}}", self.base)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("serve prints http://127.0.0.1:PORT")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the first line of a `ringscrape serve` started with its stdout piped, `listening on
/// BASE`, printed once its socket listens; returns BASE.
pub fn wait_for_listening(serve: &mut Child) -> String {
    let stdout = serve.stdout.take().expect("serve's stdout piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read listen line");
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"))
        .to_string()
}

/// Variables that change what `ringscrape run` does without a flag: a test must not inherit
/// them (run inside a Slurm array job or a Kubernetes Indexed Job, every test would otherwise
/// take a node's slice of its ids).
const INHERITED_SETTINGS: [&str; 11] = [
    "RINGSCRAPE_",
    "SLURM_ARRAY_",
    "JOB_COMPLETION_INDEX",
    // The proxy variables every HTTP tool reads, ringscrape included.
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// The built binary as a test runs it, after ripgrep's `TestCommand`: in its own directory, with
/// `XDG_CONFIG_HOME` where no config file is (so the tester's own is not read), stdin closed, and none of the environment
/// variables that would steer it ([`INHERITED_SETTINGS`]); flags added by name.
pub struct TestCommand {
    cmd: Command,
}

impl TestCommand {
    pub fn new(dir: &Path) -> TestCommand {
        Self::from_command(Command::new(BIN), dir)
    }

    /// The binary run inside network namespace `netns` (`ip netns exec`, root only).
    pub fn in_netns(dir: &Path, netns: &str) -> TestCommand {
        needs_root("ip netns exec");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns, BIN]);
        Self::from_command(cmd, dir)
    }

    fn from_command(mut cmd: Command, dir: &Path) -> TestCommand {
        cmd.current_dir(dir).stdin(Stdio::null());
        // The user's config directory is read by default: the tester's own must not steer it.
        cmd.env("XDG_CONFIG_HOME", dir.join("no-user-config"));
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if INHERITED_SETTINGS
                .iter()
                .any(|prefix| text.starts_with(prefix))
            {
                cmd.env_remove(&name);
            }
        }
        TestCommand { cmd }
    }

    /// `run -u URL -i IDS`.
    pub fn run(dir: &Path, url: &str, ids: &str) -> TestCommand {
        Self::new(dir).args(["run", "-u", url, "-i", ids])
    }

    /// `run -u URL --ids-file FILE`.
    pub fn keys(dir: &Path, url: &str, file: &str) -> TestCommand {
        Self::new(dir).args(["run", "-u", url, "--ids-file", file])
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> TestCommand {
        self.cmd.arg(arg);
        self
    }

    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.cmd.args(args);
        self
    }

    pub fn shards(self, n: u64) -> TestCommand {
        self.args(["-s", &n.to_string()])
    }

    pub fn concurrency(self, n: u64) -> TestCommand {
        self.args(["-c", &n.to_string()])
    }

    /// `-o FILE`.
    pub fn output(self, file: &str) -> TestCommand {
        self.args(["-o", file])
    }

    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> TestCommand {
        self.cmd.env(name, value);
        self
    }

    /// Runs to completion.
    pub fn output_of(mut self) -> Output {
        self.cmd.output().expect("run ringscrape")
    }

    /// Runs to completion; asserts exit 0 and returns stderr.
    pub fn ok(self) -> String {
        let out = self.output_of();
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        stderr(&out)
    }

    /// Starts it without waiting (stdout discarded, stderr piped).
    pub fn spawn(mut self) -> Child {
        self.cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringscrape")
    }

    /// The underlying command, for what the builder does not cover (pipes, process groups).
    pub fn into_command(self) -> Command {
        self.cmd
    }
}

/// `ringscrape <args>` run to completion in `dir` (see [`TestCommand`]).
pub fn ringscrape(dir: &Path, args: &[&str]) -> Output {
    TestCommand::new(dir).args(args).output_of()
}

/// One CSV row, typed, with the id as a number (the ids of a range).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: u64,
    pub status: Option<u16>,
    pub bytes: u64,
    pub latency_ms: f64,
    pub attempts: u32,
    pub error: String,
    /// Optional columns, in header order.
    pub extra: Vec<String>,
}

/// Reads a ringscrape CSV with the crate's own reader (header checked, rows typed); panics on a
/// malformed row.
pub fn read_rows(path: &Path) -> Vec<Row> {
    let file = std::fs::File::open(path).expect("open csv");
    let mut reader = RowReader::new(std::io::BufReader::new(file)).expect("ringscrape header");
    let mut rows = Vec::new();
    while let Some(raw) = reader.next_row().expect("well-formed row") {
        let row = raw.typed().expect("typed row");
        rows.push(Row {
            id: row.id.parse().expect("numeric id"),
            status: row.status,
            bytes: row.bytes,
            latency_ms: row.latency_ms,
            attempts: row.attempts,
            error: row.error.map_or("", |kind| kind.as_str()).to_string(),
            extra: row.extra,
        });
    }
    rows
}

/// Asserts that `rows` hold exactly one row per id of `start..end`.
pub fn assert_one_row_per_id(rows: &[Row], start: u64, end: u64) {
    let ids: HashSet<u64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), rows.len(), "duplicate ids in the CSV");
    assert_eq!(rows.len() as u64, end - start, "row count");
    assert!(
        ids.iter().all(|id| (start..end).contains(id)),
        "id outside the range"
    );
}

/// The body `ringscrape serve` sends for `id`: `{"id":N,"v":"…"}`, `N mod 8` letters in `v`.
pub fn demo_body_len(id: u64) -> u64 {
    format!(
        "{{\"id\":{id},\"v\":\"{}\"}}",
        "x".repeat((id % 8) as usize)
    )
    .len() as u64
}

/// The body the nginx and aiohttp targets in these tests send for `id`: `{"id":N}`.
pub fn plain_body_len(id: u64) -> u64 {
    format!("{{\"id\":{id}}}").len() as u64
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `python3 ARGS…` and parses what it prints as JSON; a failing script fails the test
/// with its stderr.
pub fn python_json<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
) -> serde_json::Value {
    let out = Command::new("python3")
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from python")
}

/// A CSV row as the readers of the other formats are asked to give it back: status, bytes,
/// attempts, error (`""` for none), `true` (a positive latency), then the optional columns.
pub fn row_values(row: &Row) -> serde_json::Value {
    let mut values = vec![
        row.status.map_or(serde_json::Value::Null, Into::into),
        row.bytes.into(),
        row.attempts.into(),
        row.error.clone().into(),
        true.into(),
    ];
    values.extend(
        row.extra
            .iter()
            .map(|text| serde_json::Value::from(text.as_str())),
    );
    serde_json::Value::from(values)
}

/// While `run` holds its output, `second` (another run on the same output) is refused with exit
/// 2; then `run` is killed with SIGKILL, reaped, and its workers given a moment to notice.
pub fn assert_locked_then_kill_9(mut run: Child, second: TestCommand) {
    let out = second.output_of();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("in use by another ringscrape run"),
        "{}",
        stderr(&out)
    );
    kill_9(&mut run);
}

/// Waits (at most 30 s, for a loaded box) until the file at `path` holds more than `rows` rows
/// after its header: what a fixed sleep "to let rows reach the file" hoped for.
pub fn wait_for_rows(path: &Path, rows: usize) {
    wait_for(Duration::from_secs(30), || {
        (line_count(path) > rows + 1).then_some(())
    })
    .unwrap_or_else(|| panic!("{}: {} lines after 30 s", path.display(), line_count(path)));
}

/// The lines of the file at `path` (0 while there is none).
pub fn line_count(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |text| text.iter().filter(|&&b| b == b'\n').count())
}

/// kill -9 of a run's supervisor, reaped, and its workers (which die with it, PDEATHSIG) waited
/// for until they are gone: what comes next (a `--resume`) finds no process of the run.
pub fn kill_9(run: &mut Child) {
    let workers = children_of(run.id());
    let pid = nix::unistd::Pid::from_raw(run.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill");
    let _ = run.wait();
    let gone = wait_for(Duration::from_secs(10), || {
        (!workers.iter().any(|&worker| is_running(worker))).then_some(())
    });
    assert!(
        gone.is_some(),
        "workers {workers:?} outlived their supervisor"
    );
}

/// True while process `pid` exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the `(comm)`.
        stat.rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// A raw-socket HTTP/1.1 server on loopback, for answers no real server would send: each
/// request's head is read, then `answer(target, stream)` writes whatever it likes; `false` ends
/// the connection. Its threads die with the test process. Returns the base URL.
pub fn raw_server<F>(answer: F) -> String
where
    F: Fn(&str, &mut std::net::TcpStream) -> bool + Send + Sync + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || serve_raw_connection(stream, answer.as_ref()));
        }
    });
    base
}

fn serve_raw_connection(
    mut stream: std::net::TcpStream,
    answer: &dyn Fn(&str, &mut std::net::TcpStream) -> bool,
) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        // Skip the rest of the head.
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or("/");
        if !answer(target, &mut stream) {
            return;
        }
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(value) = check() {
            return Some(value);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// How many IPv4 connections to loopback port `port` are established, counted on the client's
/// side (from /proc/net/tcp): for "requests are in flight" where no row can say so.
pub fn connections_to(port: u16) -> usize {
    let remote = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp").map_or(0, |table| {
        table
            .lines()
            .skip(1)
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // sl local_address rem_address st …; 01 is ESTABLISHED.
                fields.len() > 3 && fields[2].ends_with(&remote) && fields[3] == "01"
            })
            .count()
    })
}

/// Pids of the direct children of `pid` (from /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // Fields after the `(comm)`: state ppid …
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Resident memory of `pid` in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// Peak resident memory of a run, in MB (10^6 bytes).
#[derive(Debug, Clone, Copy, Default)]
pub struct PeakRss {
    /// The run and all its descendants together.
    pub tree: f64,
    /// The largest one descendant reached (for `ringscrape run`: a worker).
    pub descendant: f64,
}

/// Waits for `run` (spawned with [`TestCommand::spawn`]), sampling the resident memory of it
/// and all its descendants every 10 ms; returns its exit code, stderr and the peaks.
pub fn wait_measuring_tree_rss(mut run: Child) -> (Option<i32>, String, PeakRss) {
    let mut err = run.stderr.take().expect("stderr piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut text);
        text
    });
    let (mut peak_kib, mut descendant_kib) = (0, 0);
    let status = loop {
        let mut tree = vec![run.id()];
        let mut kib = 0;
        while let Some(pid) = tree.pop() {
            let one = rss_kib(pid);
            if pid != run.id() {
                descendant_kib = descendant_kib.max(one);
            }
            kib += one;
            tree.extend(children_of(pid));
        }
        peak_kib = peak_kib.max(kib);
        if let Some(status) = run.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = reader.join().expect("stderr reader");
    let mb = |kib: u64| kib as f64 * 1024.0 / 1e6;
    let peak = PeakRss {
        tree: mb(peak_kib),
        descendant: mb(descendant_kib),
    };
    (status.code(), stderr, peak)
}

/// Waits for `run` (spawned with [`TestCommand::spawn`]); returns its exit code and the largest
/// resident size, in KiB, that it or any descendant it waited for reached (`ru_maxrss` from
/// `wait4`, for `ringscrape run`: its largest worker or itself). Exact where sampling could miss
/// a short peak, and only this run's processes, not the other children of the test binary.
pub fn wait_largest_rss_kib(run: Child) -> (Option<i32>, u64) {
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills in; the pid is our own child's.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(run.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(
        pid,
        run.id() as libc::pid_t,
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss as u64)
}

/// A free loopback port (bound, then released: a small race, fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// An nginx on loopback with the given `server { … }` body, stopped on drop. Tests that use it
/// need nginx installed (`make test` installs it, tests/setup.sh); they fail, not skip, when it is missing.
pub struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
    pub base: String,
}

impl Nginx {
    pub fn start(http_directives: &str, server_body: &str) -> Nginx {
        Self::start_listening("", http_directives, server_body)
    }

    /// Like [`Nginx::start`], with options on the `listen` line (`ssl`, `http2`); `base` then
    /// starts with `https://` when `ssl` is among them.
    pub fn start_listening(
        listen_options: &str,
        http_directives: &str,
        server_body: &str,
    ) -> Nginx {
        let port = free_port();
        let (child, dir) = Self::spawn(
            None,
            &["127.0.0.1"],
            port,
            listen_options,
            http_directives,
            server_body,
        );
        let up = wait_for(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(up.is_some(), "nginx did not start listening on {port}");
        let scheme = if listen_options.contains("ssl") {
            "https"
        } else {
            "http"
        };
        Nginx {
            child,
            _dir: dir,
            base: format!("{scheme}://127.0.0.1:{port}"),
        }
    }

    /// Plain nginx listening on a free port of every IPv4 address (`0.0.0.0`): each address of
    /// 127.0.0.0/8 is then a host of its own, no DNS needed. `base` names 127.0.0.1. A port free
    /// on 127.0.0.1 may still be held on another loopback address by a test running beside
    /// (a client's own port): nginx then cannot bind it and exits, and another port is tried.
    pub fn start_on_every_address(http_directives: &str, server_body: &str) -> Nginx {
        for _ in 0..5 {
            let port = free_port();
            let (mut child, dir) =
                Self::spawn(None, &["0.0.0.0"], port, "", http_directives, server_body);
            let up = wait_for(Duration::from_secs(10), || {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(true);
                }
                matches!(child.try_wait(), Ok(Some(_))).then_some(false)
            });
            match up {
                Some(true) => {
                    return Nginx {
                        child,
                        _dir: dir,
                        base: format!("http://127.0.0.1:{port}"),
                    };
                }
                Some(false) => continue,
                None => panic!("nginx did not start listening on {port}"),
            }
        }
        panic!("nginx could not bind a free port on 0.0.0.0 in 5 tries");
    }

    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .expect("the base URL ends in its port")
    }

    /// Plain nginx inside network namespace `netns`, listening on `port` of each address of
    /// `addrs`; `base` names the first.
    pub fn start_in_netns(netns: &str, addrs: &[&str], port: u16, server_body: &str) -> Nginx {
        needs_root("nginx in a network namespace");
        let (child, dir) = Self::spawn(Some(netns), addrs, port, "", "", server_body);
        // nginx writes its pid file once its sockets listen.
        let pid = dir.path().join("nginx.pid");
        let up = wait_for(Duration::from_secs(10), || pid.exists().then_some(()));
        assert!(up.is_some(), "nginx did not start in {netns}");
        Nginx {
            child,
            _dir: dir,
            base: format!("http://{}:{port}", addrs[0]),
        }
    }

    fn spawn(
        netns: Option<&str>,
        addrs: &[&str],
        port: u16,
        listen_options: &str,
        http_directives: &str,
        server_body: &str,
    ) -> (Child, tempfile::TempDir) {
        let nginx = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is not installed: run `make test` (tests/setup.sh installs it)");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let listens: String = addrs
            .iter()
            .map(|addr| format!(" listen {addr}:{port} {listen_options};\n"))
            .collect();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/cb;\n proxy_temp_path {d}/px;\n\
             fastcgi_temp_path {d}/fc;\n uwsgi_temp_path {d}/uw;\n scgi_temp_path {d}/sc;\n{http_directives}\n\
             server {{\n{listens}{server_body}\n }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let mut cmd = match netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, nginx]);
                cmd
            }
            None => Command::new(nginx),
        };
        let child = cmd
            .args(["-c", &format!("{d}/nginx.conf"), "-p", &d.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        (child, dir)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// The aiohttp target in tests/servers (a Python server from PyPI), killed on drop.
pub struct AiohttpTarget {
    child: Child,
    pub base: String,
}

impl AiohttpTarget {
    pub fn start() -> AiohttpTarget {
        Self::start_script("aiohttp_target.py")
    }

    /// Another aiohttp server of tests/servers (e.g. `coded_target.py`).
    pub fn start_script(name: &str) -> AiohttpTarget {
        Self::start_script_with(name, &[])
    }

    /// A server of tests/servers run with `args`.
    pub fn start_script_with(name: &str, args: &[&str]) -> AiohttpTarget {
        let script = format!("{}/tests/servers/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 (aiohttp target)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!("{name} did not start (make test installs its packages): {line:?}")
            })
            .to_string();
        AiohttpTarget { child, base }
    }
}

impl Drop for AiohttpTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ringscrape run` with `url` over `start..end` (2 shards × `concurrency`) into `dir`,
/// asserts exit 0 and one row per id, and returns the rows.
pub fn scrape_ok(
    dir: &Path,
    url: &str,
    start: u64,
    end: u64,
    concurrency: u32,
    extra: &[&str],
) -> Vec<Row> {
    TestCommand::run(dir, url, &format!("{start}..{end}"))
        .shards(2)
        .concurrency(concurrency.into())
        .output("out.csv")
        .arg("--overwrite")
        .args(extra)
        .ok();
    let rows = read_rows(&dir.join("out.csv"));
    assert_one_row_per_id(&rows, start, end);
    rows
}

/// Waits until `run` has `n` child processes for which `ready` holds; returns their pids.
pub fn wait_for_workers(run: &Child, n: usize, ready: impl Fn(u32) -> bool) -> Vec<u32> {
    wait_for(Duration::from_secs(10), || {
        let kids = children_of(run.id());
        (kids.len() == n && kids.iter().all(|&pid| ready(pid))).then_some(kids)
    })
    .unwrap_or_else(|| panic!("{n} worker processes did not show up"))
}

/// True when process `pid` holds an io_uring instance.
pub fn holds_io_uring(pid: u32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .any(|link| link.to_string_lossy() == "anon_inode:[io_uring]")
    })
}

/// nginx over TLS (`listen_options` include `ssl`) with the server certificate that
/// [`make_test_pki`] made in `pki`.
pub fn nginx_with_test_certs(listen_options: &str, pki: &Path, server_body: &str) -> Nginx {
    let certs = format!(
        "ssl_certificate {d}/server.pem;\nssl_certificate_key {d}/server.key;",
        d = pki.display()
    );
    Nginx::start_listening(listen_options, &certs, server_body)
}

/// The first optional column (`body` with `--save-body`) of every row of `csv`, after
/// checking there is one row per id of `0..ids` and each is a 200.
pub fn ok_bodies(csv: &Path, ids: u64) -> Vec<String> {
    let rows = read_rows(csv);
    assert_one_row_per_id(&rows, 0, ids);
    rows.iter()
        .map(|row| {
            assert_eq!((row.status, row.error.as_str()), (Some(200), ""), "{row:?}");
            row.extra[0].clone()
        })
        .collect()
}

/// A test CA and a server certificate it signed for `localhost` and 127.0.0.1 (made with the
/// openssl command line, which `make test` installs): `ca.pem`, `server.pem`, `server.key`.
pub fn make_test_pki(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (make test installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=ringscrape test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write ext.cnf");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// Runs `ip ARGS` (root: network namespaces, addresses), which must succeed.
pub fn ip(args: &[&str]) {
    needs_root(&format!("ip {}", args.join(" ")));
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?}");
}

/// Request heads a [`recording_server`] read, lower-cased, in order.
pub type Heads = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A loopback server that keeps each request head it reads (lower-cased; no body is read) and
/// answers it at once `200` with the body `answer` gives for that head: for what went on the
/// wire. Returns its port.
pub fn recording_server(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> (u16, Heads) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let heads = Heads::default();
    let seen = heads.clone();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (seen, answer) = (seen.clone(), answer.clone());
            std::thread::spawn(move || {
                let Ok(mut writer) = stream.try_clone() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line.to_ascii_lowercase());
                    }
                    let body = answer(&head);
                    seen.lock().expect("heads").push(head);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if writer.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, heads)
}

/// Rows of a CSV as (column → text) maps.
pub fn csv_rows(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let file = BufReader::new(std::fs::File::open(path).expect("open"));
    let mut reader = csv::Reader::from_reader(file);
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            header
                .iter()
                .cloned()
                .zip(r.iter().map(String::from))
                .collect()
        })
        .collect()
}
