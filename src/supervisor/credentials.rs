//! `--auth-command`: credentials from a command, kept fresh for the whole run. The command runs
//! before the first request; each `Name: value` line it prints is a header of every request
//! (in place of a `-H` of that name). It runs again every `--auth-refresh`, and when a worker
//! says its credentials were answered `401` (at most once per [`MIN_GAP`], however many say
//! so). Each new set goes to every worker over its stdin, the pipe its assignment came on:
//! never on a command line, and never printed — messages name the command, not what it printed.
//!
//! A failing command (non-zero exit, no header line, past `--auth-timeout`) stops the run as
//! `--abort-after` does: exit 3, resumable, with the command's last line of stderr.

use std::io::{self, Read, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::AuthSpec;
use crate::request::header_lines;
use crate::wire;

/// Fewest seconds between two runs asked for by `401`s.
pub const MIN_GAP: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("--auth-command: could not run it: {0}")]
    Spawn(io::Error),
    #[error("--auth-command exited with {status}{}", said(.last))]
    Exit { status: String, last: String },
    #[error("--auth-command printed no `Name: value` line{}", said(.last))]
    NoHeader { last: String },
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
        let lines = run_command(spec)?;
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
            drop(state);
            let ran = run_command(&self.spec);
            let mut state = self.state();
            state.runs += 1;
            match ran {
                Ok(lines) => {
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

/// Runs the command once (`sh -c`): its header lines, checked, or why it failed.
fn run_command(spec: &AuthSpec) -> Result<String, AuthError> {
    let mut child = Command::new("sh")
        .args(["-c", &spec.command])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(AuthError::Spawn)?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    std::thread::spawn(move || {
        // Both pipes read to their end on threads of their own: a chatty stderr must not
        // block the command while stdout is read.
        let err = std::thread::spawn(move || read_all(stderr.as_mut()));
        let out = read_all(stdout.as_mut());
        let err = err.join().unwrap_or_default();
        let status = child.wait();
        let _ = tx.send((status, out, err));
    });
    let Ok((status, out, err)) = rx.recv_timeout(spec.timeout) else {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        return Err(AuthError::Timeout(spec.timeout.as_secs_f64()));
    };
    let last = String::from_utf8_lossy(&err)
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or_default()
        .to_string();
    let status = status.map_err(AuthError::Spawn)?;
    if !status.success() {
        return Err(AuthError::Exit {
            status: status.to_string(),
            last,
        });
    }
    let headers = header_lines(&String::from_utf8_lossy(&out));
    if headers.is_empty() {
        return Err(AuthError::NoHeader { last });
    }
    Ok(headers
        .iter()
        .map(|(name, value)| format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())))
        .collect())
}

fn read_all(pipe: Option<&mut impl Read>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    bytes
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
        let lines = run_command(&spec(
            "echo 'Authorization: Bearer t1'; echo noise; echo 'X-A: b'",
        ))
        .expect("headers");
        assert_eq!(lines, "authorization: Bearer t1\nx-a: b\n");
        let failed = run_command(&spec("echo 'login refused' >&2; exit 7")).expect_err("exit 7");
        assert_eq!(
            failed.to_string(),
            "--auth-command exited with exit status: 7: login refused"
        );
        let nothing = run_command(&spec("echo no header")).expect_err("no header");
        assert_eq!(
            nothing.to_string(),
            "--auth-command printed no `Name: value` line"
        );
        let slow = AuthSpec {
            timeout: Duration::from_millis(200),
            ..spec("sleep 5; echo 'A: b'")
        };
        let started = Instant::now();
        assert!(matches!(run_command(&slow), Err(AuthError::Timeout(_))));
        assert!(started.elapsed() < Duration::from_secs(2));
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
