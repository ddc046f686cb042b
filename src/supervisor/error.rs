//! Why a run could not start or go on, as the supervisor tells its caller (which turns it into
//! one line and an exit code).

use std::io;

use super::credentials::AuthError;
use super::limits::LimitError;
use crate::output::OpenError;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Limits(#[from] LimitError),
    #[error(transparent)]
    Output(#[from] OpenError),
    #[error("--{0} {1}: {2}")]
    Listen(&'static str, String, io::Error),
    #[error("starting the worker for shard {0}: {1}")]
    Spawn(usize, io::Error),
    #[error("setting up signal handling: {0}")]
    Signals(nix::Error),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("starting the --auth-command thread: {0}")]
    AuthThread(io::Error),
    #[error("reading a key file's head again: {0}")]
    KeyFile(io::Error),
    #[error(
        "--url: the host {0} does not resolve ({2}): check its spelling, or give its address with --resolve {0}:{1}:ADDR"
    )]
    Unresolved(String, u16, io::Error),
}

impl SupervisorError {
    /// True when the run could not start because the target's credentials could not be had
    /// (exit 3, as `--abort-after`).
    pub fn is_target_down(&self) -> bool {
        matches!(self, SupervisorError::Auth(_))
    }

    /// True when the run was refused before it started because of what the user asked for.
    pub fn is_usage(&self) -> bool {
        match self {
            SupervisorError::Output(e) => e.is_usage(),
            _ => matches!(
                self,
                SupervisorError::Limits(LimitError::PerWorker { .. } | LimitError::System { .. })
                    | SupervisorError::Listen(..)
                    | SupervisorError::Unresolved(..)
            ),
        }
    }
}
