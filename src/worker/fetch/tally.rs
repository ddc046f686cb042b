//! What the slots count of the answers they get, for the worker's stats: bytes on the wire,
//! unknown codings, the diagnosis's signs and TLS reasons, extraction misses, redirect chains cut
//! at `--follow-redirects`. One place writes them; the worker loop reads a snapshot.

use std::cell::RefCell;

use crate::model::ErrorKind;
use crate::stats::AnswerCounts;
use crate::worker::failure::Failure;

/// The worker's answer counters (all slots on one thread).
#[derive(Default)]
pub struct Tally {
    counts: RefCell<AnswerCounts>,
}

impl Tally {
    /// An answer came: `wire_len` bytes, `coding_unknown` when its coding was not undone.
    pub(super) fn answered(&self, wire_len: u64, coding_unknown: bool) {
        let mut counts = self.counts.borrow_mut();
        counts.wire_bytes += wire_len;
        counts.unknown_coding += u64::from(coding_unknown);
    }

    /// An answer said the target speaks HTTPS on this port (a sign for the diagnosis).
    pub(super) fn https_port(&self) {
        self.counts.borrow_mut().signs.https_port += 1;
    }

    /// A row failed with `failure`: its sign, and a TLS failure's reason.
    pub(super) fn failed(&self, failure: &Failure) {
        let mut counts = self.counts.borrow_mut();
        if failure.kind == ErrorKind::Tls {
            counts.add_tls_reason(&failure.detail, 1);
        }
        crate::diagnosis::note_failure(&mut counts.signs, failure.kind, &failure.detail);
    }

    /// `--extract` found nothing for `misses` fields of a body.
    pub(super) fn extract_misses(&self, misses: u64) {
        self.counts.borrow_mut().extract_misses += misses;
    }

    /// A redirect chain was cut at `--follow-redirects`.
    pub(super) fn redirect_limit(&self) {
        self.counts.borrow_mut().redirect_limit += 1;
    }

    /// The counts so far.
    pub fn snapshot(&self) -> AnswerCounts {
        self.counts.borrow().clone()
    }

    /// Connects refused so far (nothing listens, or a firewall rejects).
    pub fn refused(&self) -> u64 {
        self.counts.borrow().signs.refused
    }

    /// What the diagnosis is waiting for (TLS reasons, signs seen): when it changes, the
    /// stats go at once.
    pub fn news(&self) -> (usize, [bool; 3]) {
        let counts = self.counts.borrow();
        (counts.tls_reasons.len(), counts.signs.seen())
    }
}
