//! What a run is given by its environment rather than its flags.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::SupervisorError;
use super::signals::{self, Stop};
use crate::cli::GivenElsewhere;

/// What a run is given by its environment: where the worker program is, where stop requests
/// come from, and the command line to repeat when telling how to resume. A test can run a scrape
/// in its own process with the built binary as the worker and a stop of its own.
pub struct Launch {
    pub worker_exe: PathBuf,
    pub stop: Arc<Stop>,
    pub argv: Vec<String>,
    /// Flags the command line did not hold (from `RINGSCRAPE_*` variables, the config file
    /// found by default), written out in the resume line.
    pub given_elsewhere: Vec<GivenElsewhere>,
}

impl Launch {
    /// This process's: its own executable, Ctrl-C and SIGTERM, its command line. Call before
    /// any other thread is started (the stop signals are blocked in every thread).
    pub fn from_process(given_elsewhere: Vec<GivenElsewhere>) -> Result<Launch, SupervisorError> {
        Ok(Launch {
            worker_exe: std::env::current_exe().map_err(|e| SupervisorError::Spawn(0, e))?,
            stop: signals::watch().map_err(SupervisorError::Signals)?,
            argv: std::env::args().collect(),
            given_elsewhere,
        })
    }
}
