//! What an attempt came to, judged: some answers are not the target's answer to this request (a
//! 408 on a connection that had been idle, a forwarding proxy's 407), and a failure on a fresh
//! connection through a forwarding proxy is the proxy's. Whether to send again at once (not
//! counted as an attempt) is decided here; the rate gate learns from each answer.

use std::time::{Duration, Instant};

use super::{Attempt, Slot};
use crate::model::ErrorKind;
use crate::worker::failure::Failure;
use crate::worker::schedule::hosts::NONE;
use crate::worker::schedule::quota;

impl Slot {
    /// An answer came: counted, and judged (some statuses are not the target's answer to this
    /// request); the rate gate learns from it.
    pub(super) fn on_answer(&mut self, now: Instant, latency: Duration) -> Attempt {
        let answer = &self.answer;
        self.plan
            .tally
            .answered(answer.wire_len, answer.coding_unknown);
        match &mut self.conn {
            Some(conn) if !conn.reusable() => self.conn = None,
            Some(conn) => conn.answered_at(now),
            None => {}
        }
        // Statuses that are not the target's answer to this request: the connection
        // goes, and the request is not counted as answered.
        let not_answered = match self.answer.status {
            // A 408 on a connection that had been idle is the server (HAProxy, nginx)
            // closing it, sent before our request arrived. Sent again on a fresh
            // connection, as a stale one is, and not counted as an attempt.
            408 if self.reused => Some((
                ErrorKind::Closed,
                "408 on a reused connection: closed while idle",
                true,
            )),
            // A forwarding proxy's 407 (RFC 9110 §15.5.8): the target was never asked.
            // The proxy sits out and the request goes again through another, not
            // counted as an attempt. A 407 from the target itself is a status.
            407 if self.forwarded => Some((
                ErrorKind::Proxy,
                "the proxy wants credentials (407)",
                self.proxy_failed(),
            )),
            _ => None,
        };
        if let Some((kind, detail, stale)) = not_answered {
            self.conn = None;
            return Attempt::Failed {
                failure: Failure {
                    kind,
                    answered: false,
                    detail: detail.into(),
                },
                latency,
                stale,
            };
        }
        // When the host varies, a 429 is its host's to heed (`schedule::hosts`): the worker's
        // gate, which every host passes, is not slowed by it.
        if self.answer.status == 429 && !self.plan.template.host_varies() {
            let pause = self
                .answer
                .retry_after
                .map(|wait| wait.min(self.plan.retry.max_retry_after));
            self.plan.gate.too_many(now, pause);
        } else {
            self.plan.gate.answered(now);
        }
        if !self.answer.rate_limit.is_empty() {
            self.heed_quota(now);
        }
        Attempt::Answered { latency }
    }

    /// The answer said its server's quota: the gate paces by it (and `-v` says so).
    fn heed_quota(&self, now: Instant) {
        let answer = &self.answer;
        let gate = &self.plan.gate;
        let max_wait = self.plan.retry.max_retry_after;
        // Hosts that vary: the quota is the answering host's, and paces that host only.
        if let Some(hosts) = self.plan.hosts.as_ref().filter(|_| self.host != NONE) {
            let state = (gate.heeds_quota())
                .then(|| {
                    answer
                        .rate_limit
                        .state(quota::unix_now(), answer.retry_after, max_wait)
                })
                .flatten();
            if let Some(state) = state {
                let mut hosts = hosts.borrow_mut();
                let pacing = hosts.heed_quota(self.host, &state, now);
                if hosts.may_say_quota(now) {
                    let host = hosts.name(self.host);
                    crate::detail!("{}", quota::describe(host, &state, &pacing, now));
                }
            }
            return;
        }
        if let Some((state, pacing)) =
            gate.read_quota(&answer.rate_limit, answer.retry_after, max_wait, now)
        {
            let host = &self.plan.template.origin.host;
            crate::detail!("{}", quota::describe(host, &state, &pacing, now));
        }
    }

    /// The exchange failed: whose failure it is, and whether to send again at once.
    pub(super) fn on_failure(&mut self, mut failure: Failure, latency: Duration) -> Attempt {
        self.conn = None;
        // A forwarding proxy that closes or resets a fresh connection before any answer
        // failed itself: a target it could not reach would have been a 502.
        if self.forwarded
            && !self.reused
            && !failure.answered
            && matches!(failure.kind, ErrorKind::Closed | ErrorKind::Reset)
        {
            failure.kind = ErrorKind::Proxy;
            failure.detail = format!("the proxy {}", failure.detail);
            self.proxy_failed();
        }
        // A proxy of several that failed sits out: the request goes again at once
        // through another, as it never reached the target.
        let stale = (self.reused
            && !failure.answered
            && matches!(failure.kind, ErrorKind::Closed | ErrorKind::Reset))
            || (failure.kind == ErrorKind::Proxy && self.plan.dialer.has_a_route_up());
        Attempt::Failed {
            failure,
            latency,
            stale,
        }
    }

    /// The proxy the last request went through failed: it sits out. True when another route
    /// is up to send the request through at once.
    fn proxy_failed(&self) -> bool {
        if let Some(proxy) = &self.answered_through {
            proxy.failed();
        }
        self.plan.dialer.has_a_route_up()
    }
}
