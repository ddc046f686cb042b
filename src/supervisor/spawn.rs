//! Starting worker processes: re-execute this binary with the hidden `worker` subcommand (no
//! fork in a threaded process), stdout piped to us, and pin each to one core.

use std::io;
use std::process::{Child, Command, Stdio};

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::worker::{WorkerSpec, encode_spec};

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

/// Starts one worker for `spec`.
pub fn spawn_worker(spec: &WorkerSpec) -> io::Result<Child> {
    let exe = std::env::current_exe()?;
    Command::new(exe)
        .arg("worker")
        .arg("--spec")
        .arg(encode_spec(spec))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
}

/// Pins process `pid` to `core`.
pub fn pin_to_core(pid: u32, core: usize) -> nix::Result<()> {
    let mut set = CpuSet::new();
    set.set(core)?;
    sched_setaffinity(Pid::from_raw(pid as i32), &set)
}
