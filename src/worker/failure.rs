//! Why an attempt got no answer: the error kind its row will carry, in words for `-v`, and
//! whether the answer had begun (what tells a connection the server closed while idle).

use std::io;

use crate::model::ErrorKind;

/// Why an attempt got no answer, and whether any byte of an answer had arrived (a failure on a
/// reused connection before that means the server had closed it while idle).
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: ErrorKind,
    pub answered: bool,
    /// What went wrong, in words (for debugging; the CSV has the kind).
    pub detail: String,
}

impl Failure {
    /// A key that would break a header line: the request cannot be written.
    pub fn key_breaks_header() -> Failure {
        Failure {
            kind: ErrorKind::Request,
            answered: false,
            detail: "the key would break a header line".into(),
        }
    }

    /// An I/O error on a connection, as the CSV names it.
    pub fn from_io(error: &io::Error, answered: bool) -> Failure {
        use io::ErrorKind as K;
        let kind = match error.kind() {
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => ErrorKind::Reset,
            K::UnexpectedEof => ErrorKind::Closed,
            K::TimedOut => ErrorKind::Timeout,
            // TLS records that don't decrypt, alerts.
            K::InvalidData => ErrorKind::Tls,
            _ => ErrorKind::Io,
        };
        Failure {
            kind,
            answered,
            detail: error.to_string(),
        }
    }
}
