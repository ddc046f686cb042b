//! Starting worker processes: re-execute this binary with the hidden `worker` subcommand (no
//! fork in a threaded process), stdout piped to us, and pin each to one core.

use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use super::credentials::Credentials;
use crate::assignment::{WorkerSpec, encode_assignment};
use crate::ids::IdSet;

/// The cores this process may run on, in order (respects taskset / cgroup masks).
pub fn allowed_cores() -> Vec<usize> {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else {
        return vec![0];
    };
    let cores: Vec<usize> = (0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect();
    if cores.is_empty() { vec![0] } else { cores }
}

/// Starts one worker in its own process group (so a terminal's Ctrl-C reaches only the
/// supervisor, which relays it), and hands it `spec` and the ids to skip on its stdin; with
/// `--auth-command`, the credentials too, and stdin stays open for the next ones.
pub fn spawn_worker(
    exe: &Path,
    spec: &WorkerSpec,
    skip: Option<&IdSet>,
    credentials: Option<&Credentials>,
) -> io::Result<Child> {
    let mut child = Command::new(exe)
        .args(["worker", "--shard", &spec.shard.to_string()])
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // The worker reads this before anything else; closing stdin ends the hand-over.
        let assignment = encode_assignment(spec, skip);
        let handed = match credentials {
            Some(credentials) => credentials.hand_over(stdin, &assignment),
            None => stdin.write_all(&assignment),
        };
        if let Err(e) = handed {
            let _ = child.kill();
            return Err(e);
        }
    }
    Ok(child)
}

/// Pins process `pid` to `core`.
pub fn pin_to_core(pid: u32, core: usize) -> nix::Result<()> {
    let mut set = CpuSet::new();
    set.set(core)?;
    sched_setaffinity(Pid::from_raw(pid as i32), &set)
}
