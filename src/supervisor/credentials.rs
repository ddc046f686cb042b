//! `--auth-command`: credentials from a command, kept fresh for the whole run. The command runs
//! before the first request; each line it prints is a header of every request (in place of a
//! `-H` of that name): every line not blank must be `Name: value`, at most [`MAX_OUTPUT`] in
//! all, and may not set a header ringscrape writes itself (framing, `Host`, connection). It runs again every `--auth-refresh`, and when a worker
//! says its credentials were answered `401` (at most once per [`MIN_GAP`], however many say
//! so). Each new set goes to every worker over its stdin, the pipe its assignment came on:
//! never on a command line, and never printed — messages name the command, not what it printed.
//!
//! A failing command (non-zero exit, a line that breaks the rule, past `--auth-timeout`) stops
//! the run as `--abort-after` does: exit 3, resumable, with the command's last line of stderr,
//! redacted. It runs in a process group of its own, ended whole when it times out and when
//! `sh` exits (a background child left behind must not hold the output open).

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

use crate::config::AuthSpec;
use crate::redact::redact_text;
use crate::request::reserved_for_ringscrape;
use crate::wire;

/// Fewest seconds between two runs asked for by `401`s.
pub const MIN_GAP: Duration = Duration::from_secs(2);

/// Most bytes the command may print on stdout: header lines are a few KB (a long JWT is 8 KB).
/// Read whole before, 500 MB of output took the supervisor to 521 MB.
pub const MAX_OUTPUT: usize = 64 * 1024;
/// Bytes of stderr kept, its end: the last line is shown.
const STDERR_TAIL: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("--auth-command: could not run it: {0}")]
    Spawn(io::Error),
    #[error("--auth-command exited with {status}{}", said(.last))]
    Exit { status: String, last: String },
    #[error("--auth-command printed no `Name: value` line{}", said(.last))]
    NoHeader { last: String },
    #[error(
        "--auth-command: line {0} of its output is not a `Name: value` header line (print notes on stderr)"
    )]
    NotAHeader(usize),
    #[error("--auth-command: line {0} of its output holds a CR, which no header line may")]
    Cr(usize),
    #[error(
        "--auth-command: line {0} of its output sets `{1}`, which ringscrape writes itself (framing, host and connection headers are refused)"
    )]
    Reserved(usize, String),
    #[error("--auth-command printed over {} KiB: it should print header lines only", MAX_OUTPUT / 1024)]
    TooLong,
    #[error("--auth-command took over {0:.1} s (--auth-timeout) and was killed")]
    Timeout(f64),
}

/// `: LINE` when the command's stderr had a last line.
fn said(last: &str) -> String {
    if last.is_empty() {
        String::new()
    } else {
        format!(": {last}")
    }
}

/// The run's credentials, who gets them, and when they are due again.
pub struct Credentials {
    spec: AuthSpec,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    generation: u64,
    /// The header lines of this generation (`Name: value`, checked).
    lines: String,
    ran_at: Instant,
    /// A worker got a 401 with this generation.
    stale: bool,
    /// Where each live worker's next credentials go.
    workers: Vec<ChildStdin>,
    failed: Option<String>,
    done: bool,
    runs: u64,
}

impl Credentials {
    /// Runs the command the first time; its failure refuses the run.
    pub fn fetch_first(spec: &AuthSpec) -> Result<Arc<Credentials>, AuthError> {
        let lines = run_command(spec, "")?;
        crate::note!(
            "ringscrape: --auth-command gives {} (sent with every request)",
            names_of(&lines)
        );
        Ok(Arc::new(Credentials {
            spec: spec.clone(),
            state: Mutex::new(State {
                generation: 1,
                lines,
                ran_at: Instant::now(),
                stale: false,
                workers: Vec::new(),
                failed: None,
                done: false,
                runs: 1,
            }),
            wake: Condvar::new(),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `assignment` and the current credentials to a new worker's stdin, which is kept
    /// for the next ones (under the lock: no refresh can fall in between).
    pub fn hand_over(&self, mut stdin: ChildStdin, assignment: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        let mut bytes = assignment.to_vec();
        wire::encode_credentials(state.generation, &state.lines, &mut bytes);
        stdin.write_all(&bytes)?;
        if !state.done {
            state.workers.push(stdin);
        }
        Ok(())
    }

    /// A worker got a 401 with credentials of `generation`: run the command again (soon) if
    /// they are still the newest.
    pub fn stale(&self, generation: u64) {
        let mut state = self.state();
        if generation == state.generation && !state.stale {
            state.stale = true;
            self.wake.notify_all();
        }
    }

    /// Times the command ran.
    pub fn runs(&self) -> u64 {
        self.state().runs
    }

    /// Why the command failed, if it did.
    pub fn failed(&self) -> Option<String> {
        self.state().failed.clone()
    }

    /// Keeps the credentials fresh on a thread of its own until [`Credentials::finish`]; on a
    /// failure, `stop` is called with the message and nothing more is run.
    pub fn keep_fresh(
        self: &Arc<Self>,
        stop: impl FnOnce(&str) + Send + 'static,
    ) -> io::Result<JoinHandle<()>> {
        let this = self.clone();
        std::thread::Builder::new()
            .name("auth-command".into())
            .spawn(move || this.refresh_until_done(stop))
    }

    fn refresh_until_done(&self, stop: impl FnOnce(&str)) {
        loop {
            let mut state = self.state();
            // Until the clock's refresh or a 401's is due.
            loop {
                if state.done {
                    return;
                }
                let now = Instant::now();
                let by_clock = self.spec.refresh.map(|every| state.ran_at + every);
                let by_401 = state.stale.then(|| state.ran_at + MIN_GAP);
                match [by_clock, by_401].into_iter().flatten().min() {
                    Some(at) if at <= now => break,
                    Some(at) => state = self.wait(state, Some(at - now)),
                    None => state = self.wait(state, None),
                }
            }
            let known = state.lines.clone();
            drop(state);
            let ran = run_command(&self.spec, &known);
            let mut state = self.state();
            state.runs += 1;
            match ran {
                Ok(lines) => {
                    if names_of(&lines) != names_of(&state.lines) {
                        crate::note!("ringscrape: --auth-command now gives {}", names_of(&lines));
                    }
                    state.generation += 1;
                    state.lines = lines;
                    state.ran_at = Instant::now();
                    state.stale = false;
                    let mut frame = Vec::new();
                    wire::encode_credentials(state.generation, &state.lines, &mut frame);
                    // A worker that has exited has closed its end: forget it.
                    state
                        .workers
                        .retain_mut(|stdin| stdin.write_all(&frame).is_ok());
                    crate::detail!(
                        "ringscrape: --auth-command ran again: credentials #{}",
                        state.generation
                    );
                }
                Err(error) => {
                    let message = error.to_string();
                    state.failed = Some(message.clone());
                    state.done = true;
                    drop(state);
                    stop(&message);
                    return;
                }
            }
        }
    }

    fn wait<'a>(
        &self,
        state: MutexGuard<'a, State>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        match timeout {
            Some(timeout) => {
                self.wake
                    .wait_timeout(state, timeout)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => self.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Ends the refreshing and lets go of the workers' stdin.
    pub fn finish(&self) {
        let mut state = self.state();
        state.done = true;
        state.workers.clear();
        self.wake.notify_all();
    }
}

/// Runs the command once (`sh -c`, in a process group of its own): its header lines, checked,
/// or why it failed. `known` are the header lines in use, kept out of a message.
fn run_command(spec: &AuthSpec, known: &str) -> Result<String, AuthError> {
    let mut child = Command::new("sh")
        .args(["-c", &spec.command])
        // Its own group: a timeout ends the script and every child it started, not `sh` alone.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(AuthError::Spawn)?;
    let group = Arc::new(Group {
        leader: Pid::from_raw(child.id() as i32),
        reaped: Mutex::new(false),
    });
    let deadline = Instant::now() + spec.timeout;
    let (tx, rx) = std::sync::mpsc::channel();
    // Each pipe on a thread of its own: a chatty stderr must not block the command while
    // stdout is read. One byte past the cap is enough to know the output is too long.
    if let Some(stdout) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Event::Stdout(read_capped(stdout, MAX_OUTPUT + 1)));
        });
    }
    if let Some(stderr) = child.stderr.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Event::Stderr(read_tail(stderr, STDERR_TAIL)));
        });
    }
    let waiter = group.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Event::Exited(waiter.wait_for(child)));
    });
    let (mut out, mut err, mut status) = (None, None, None);
    while out.is_none() || err.is_none() || status.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Event::Stdout(bytes)) if bytes.len() > MAX_OUTPUT => {
                group.kill();
                return Err(AuthError::TooLong);
            }
            Ok(Event::Stdout(bytes)) => out = Some(bytes),
            Ok(Event::Stderr(bytes)) => err = Some(bytes),
            Ok(Event::Exited(exit)) => status = Some(exit),
            Err(_) => {
                group.kill();
                return Err(AuthError::Timeout(spec.timeout.as_secs_f64()));
            }
        }
    }
    let (out, err) = (out.unwrap_or_default(), err.unwrap_or_default());
    let last = last_stderr_line(&err, known, &out);
    let status = status.unwrap_or_else(|| Err(io::Error::other("not waited for")));
    let status = status.map_err(AuthError::Spawn)?;
    if !status.success() {
        return Err(AuthError::Exit {
            status: status.to_string(),
            last,
        });
    }
    match parse_output(&out) {
        Err(AuthError::NoHeader { .. }) => Err(AuthError::NoHeader { last }),
        parsed => parsed,
    }
}

/// The command's last non-empty stderr line, for a failure's message. What the command prints
/// on stderr may repeat what it printed on stdout (`printed`), valid or not, or the credentials
/// in use (`known`): all of those values stay out of it.
fn last_stderr_line(stderr: &[u8], known: &str, printed: &[u8]) -> String {
    let printed = String::from_utf8_lossy(printed);
    let secrets: Vec<&str> = [known, &printed]
        .into_iter()
        .flat_map(str::lines)
        .map(|line| line.split_once(':').map_or(line, |(_, value)| value).trim())
        // The whole value, and each long word of it (the token after `Bearer`).
        .flat_map(|value| {
            std::iter::once(value).chain(value.split_whitespace().filter(|word| word.len() >= 8))
        })
        .collect();
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(|line| redact_text(line, &secrets))
        .unwrap_or_default()
}

/// What the threads around a running command report.
enum Event {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exited(io::Result<ExitStatus>),
}

/// The command's process group (its `sh` leads it).
struct Group {
    leader: Pid,
    /// Set once the leader is reaped: from then on its id may name another group, which must
    /// not be signalled.
    reaped: Mutex<bool>,
}

impl Group {
    /// Ends every process of the group.
    fn kill(&self) {
        let reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if !*reaped {
            let _ = killpg(self.leader, Signal::SIGKILL);
        }
    }

    /// Waits for `sh` to exit, then ends what it left running before reaping it: a background
    /// child holding stdout open would keep the output from ending (the command then timed
    /// out though it had exited 0).
    fn wait_for(&self, mut child: Child) -> io::Result<ExitStatus> {
        // WNOWAIT: `sh` stays a zombie, so its id still names this group while it is killed.
        let exited = || {
            waitid(
                Id::Pid(self.leader),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
            )
        };
        while let Err(nix::errno::Errno::EINTR) = exited() {}
        self.kill();
        let mut reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        let status = child.wait();
        *reaped = true;
        status
    }
}

/// The command's output as header lines (`name: value\n` each), or which line breaks the
/// rule: every line not blank is `Name: value`, with a token for a name and no CR (a CRLF
/// line end is taken as a line end), and sets no header ringscrape writes itself. A line
/// is named by its number, never its text: it may hold a secret.
fn parse_output(out: &[u8]) -> Result<String, AuthError> {
    let mut lines = String::new();
    for (at, line) in out.split(|&b| b == b'\n').enumerate() {
        let number = at + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if line.contains(&b'\r') {
            return Err(AuthError::Cr(number));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(AuthError::NotAHeader(number))?;
        let name = http::HeaderName::from_bytes(&line[..colon])
            .map_err(|_| AuthError::NotAHeader(number))?;
        let value = line[colon + 1..].trim_ascii();
        let value = std::str::from_utf8(value)
            .ok()
            .filter(|value| !value.is_empty() && http::HeaderValue::from_str(value).is_ok())
            .ok_or(AuthError::NotAHeader(number))?;
        if reserved_for_ringscrape(&name) {
            return Err(AuthError::Reserved(number, name.to_string()));
        }
        lines.push_str(&format!("{name}: {value}\n"));
    }
    if lines.is_empty() {
        return Err(AuthError::NoHeader {
            last: String::new(),
        });
    }
    Ok(lines)
}

/// The header names of `lines`, for a note: names, never values.
fn names_of(lines: &str) -> String {
    let names: Vec<&str> = lines
        .lines()
        .filter_map(|line| line.split_once(':').map(|(name, _)| name))
        .collect();
    names.join(", ")
}

/// Up to `cap` bytes of `pipe`; what comes after is left unread.
fn read_capped(pipe: impl Read, cap: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = pipe.take(cap as u64).read_to_end(&mut bytes);
    bytes
}

/// The last `keep` bytes of `pipe`, read to its end (stderr: its last line is shown).
fn read_tail(mut pipe: impl Read, keep: usize) -> Vec<u8> {
    let mut tail = Vec::with_capacity(2 * keep);
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => return tail,
            Ok(n) => {
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > 2 * keep {
                    tail.drain(..tail.len() - keep);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &str) -> AuthSpec {
        AuthSpec {
            command: command.into(),
            refresh: None,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_command_gives_header_lines_or_a_one_line_reason() {
        let lines = run_command(
            &spec("echo 'Authorization: Bearer t1'; echo; printf 'X-A:  b \\r\\n'"),
            "",
        )
        .expect("headers");
        assert_eq!(lines, "authorization: Bearer t1\nx-a: b\n");
        let failed =
            run_command(&spec("echo 'login refused' >&2; exit 7"), "").expect_err("exit 7");
        assert_eq!(
            failed.to_string(),
            "--auth-command exited with exit status: 7: login refused"
        );
        let nothing = run_command(&spec("echo; true"), "").expect_err("no header");
        assert_eq!(
            nothing.to_string(),
            "--auth-command printed no `Name: value` line"
        );
        let slow = AuthSpec {
            timeout: Duration::from_millis(200),
            ..spec("sleep 5; echo 'A: b'")
        };
        let started = Instant::now();
        assert!(matches!(run_command(&slow, ""), Err(AuthError::Timeout(_))));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn every_line_is_a_header_and_none_frames_or_routes_the_request() {
        let refused = |command: &str| run_command(&spec(command), "").expect_err(command);
        assert!(matches!(
            refused("echo 'Authorization: Bearer t'; echo 'fetching token…'"),
            AuthError::NotAHeader(2)
        ));
        // A CR inside a line would be a header line of its own on the wire.
        assert!(matches!(
            refused("echo 'A: b'; printf 'Authorization: Bearer a\\rX-Evil: 1\\n'"),
            AuthError::Cr(2)
        ));
        for name in [
            "Content-Length: 0",
            "Transfer-Encoding: chunked",
            "Host: evil.example",
            "Connection: close",
            "Upgrade: h2c",
            "TE: trailers",
        ] {
            let error = refused(&format!("echo 'Authorization: Bearer t'; echo '{name}'"));
            assert!(
                matches!(error, AuthError::Reserved(2, _)),
                "{name}: {error}"
            );
        }
        assert!(matches!(
            refused("echo 'X-Empty:'"),
            AuthError::NotAHeader(1)
        ));
        let message = refused("echo 'Authorization: Bearer s3cret'; echo 'Bad Name: s3cret'");
        assert!(!message.to_string().contains("s3cret"), "{message}");
    }

    #[test]
    fn what_the_command_says_on_stderr_is_redacted() {
        let failed = run_command(
            &spec("echo 'Authorization: Bearer SECRET1' >&2; exit 1"),
            "",
        )
        .expect_err("exit 1");
        assert_eq!(
            failed.to_string(),
            "--auth-command exited with exit status: 1: Authorization: <redacted>"
        );
        // A value it printed as a header, or the one in use, repeated bare.
        let failed = run_command(
            &spec(
                "echo 'X-Sig: abcd-1234'; echo \"saw abcd-1234 and OLD-7777 rejected\" >&2; exit 1",
            ),
            "authorization: Bearer OLD-7777\n",
        )
        .expect_err("exit 1");
        let message = failed.to_string();
        assert!(
            !message.contains("abcd-1234") && !message.contains("OLD-7777"),
            "{message}"
        );
        let failed = run_command(
            &spec("echo 'BARE-TOKEN-9'; echo 'BARE-TOKEN-9 is no header' >&2; exit 2"),
            "",
        )
        .expect_err("exit 2");
        assert!(!failed.to_string().contains("BARE-TOKEN-9"), "{failed}");
        let failed =
            run_command(&spec("echo 'token=SECRET2 rejected' >&2"), "").expect_err("no header");
        assert_eq!(
            failed.to_string(),
            "--auth-command printed no `Name: value` line: token=<redacted> rejected"
        );
    }

    /// True once no process `pid` runs (gone, or a zombie waiting for init).
    fn ended(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
    }

    #[test]
    fn a_timeout_ends_the_command_and_every_child_it_started() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pids = dir.path().join("pids");
        let slow = AuthSpec {
            timeout: Duration::from_millis(300),
            ..spec(&format!(
                "sleep 30 & echo $! >> {0}; sh -c 'echo $$ >> {0}; sleep 30'",
                pids.display()
            ))
        };
        assert!(matches!(run_command(&slow, ""), Err(AuthError::Timeout(_))));
        let pids = std::fs::read_to_string(&pids).expect("pids written");
        assert_eq!(pids.lines().count(), 2, "{pids}");
        for pid in pids.lines() {
            let gone = (0..100).any(|_| {
                std::thread::sleep(Duration::from_millis(20));
                ended(pid)
            });
            assert!(gone, "process {pid} still runs");
        }
    }

    #[test]
    fn a_background_child_holding_stdout_does_not_hold_the_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid = dir.path().join("pid");
        let started = Instant::now();
        let lines = run_command(
            &spec(&format!(
                "sleep 30 & echo $! > {}; echo 'Authorization: Bearer t'",
                pid.display()
            )),
            "",
        )
        .expect("exited 0 with a header");
        assert_eq!(lines, "authorization: Bearer t\n");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let pid = std::fs::read_to_string(&pid).expect("pid written");
        assert!(
            (0..100).any(|_| {
                std::thread::sleep(Duration::from_millis(20));
                ended(pid.trim())
            }),
            "the background child still runs"
        );
    }

    #[test]
    fn output_past_the_cap_fails_without_being_read_whole() {
        let started = Instant::now();
        let error = run_command(&spec("yes 'X-A: b'"), "").expect_err("endless output");
        assert!(matches!(error, AuthError::TooLong), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let fits = format!("X-A: {}", "b".repeat(MAX_OUTPUT - 100));
        assert!(run_command(&spec(&format!("echo '{fits}'")), "").is_ok());
    }

    #[test]
    fn a_401_runs_the_command_again_after_the_gap_and_only_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let count = dir.path().join("count");
        let command = format!(
            "echo x >> {0}; echo \"Authorization: Bearer $(wc -l < {0})\"",
            count.display()
        );
        let credentials = Credentials::fetch_first(&spec(&command)).expect("first");
        let refresher = credentials.keep_fresh(|_| {}).expect("thread");
        for _ in 0..5 {
            credentials.stale(1);
        }
        credentials.stale(7);
        std::thread::sleep(MIN_GAP + Duration::from_millis(500));
        assert_eq!(
            credentials.runs(),
            2,
            "five 401s of one generation: one run"
        );
        assert_eq!(credentials.state().generation, 2);
        assert_eq!(credentials.state().lines, "authorization: Bearer 2\n");
        credentials.finish();
        refresher.join().expect("joined");
    }
}
