//! One in-flight slot: builds the request for an item from the template, sends it on the slot's
//! own connection with a deadline, and turns whatever happens into a [`Record`].
//!
//! Each slot owns at most one connection and drops it after any failure or an answer that
//! ends it: a failed connection is never used again, and an idle one is peeked at before it is
//! reused (the server may have closed it). A request that fails on a *reused* connection before
//! any answer byte arrived is sent once more at once on a fresh connection and not counted as an
//! attempt: the server closed an idle connection, it did not answer. Around that sits the retry
//! policy (`retry.rs`); a retry waits in the worker's queue (`queue.rs`). What all slots share is
//! the worker's [`Plan`].

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, ready};
use std::time::{Duration, Instant};

mod admit;
mod judge;
mod plan;
mod send;
mod tally;

use super::conn::connect::RouteId;
use super::conn::proxy_board::ProxyHealth;
use super::conn::stream::Stream;
use super::failure::Failure;
use super::http::answer::Answer;
use super::http::h1::H1Conn;
use super::http::spool::Spool;
use super::pages::{Chain, UnusableNext};
use super::schedule::hosts::{HostId, NONE};
use super::schedule::retry::Verdict;
use crate::model::{BodyColumn, Captured, ErrorKind, Record};
use crate::request::{Hop, Origin};
use crate::template::Values;
pub use plan::{Plan, PlanError};

/// Times a refused HTTP/2 request is sent again within one attempt.
const MAX_REFUSED_RESENDS: u32 = 8;
/// A body buffer larger than this is not kept for the slot's next answer: idle slots that once
/// received a large body would hold it for the rest of the run.
const REUSED_BODY_BUFFER: usize = 64 << 10;

/// What became of an item after an attempt.
pub enum Outcome {
    /// Final: its row.
    Done(Record),
    /// To be tried again after `wait`, because of `why`.
    RetryAfter { wait: Duration, why: Verdict },
}

/// What one attempt got.
enum Attempt {
    Answered {
        latency: Duration,
    },
    Failed {
        failure: Failure,
        latency: Duration,
        stale: bool,
    },
}

/// One in-flight slot.
pub struct Slot {
    conn: Option<H1Conn<Stream>>,
    plan: Rc<Plan>,
    rng: fastrand::Rng,
    /// The request being sent; reused from one item to the next.
    request: Vec<u8>,
    body_scratch: Vec<u8>,
    answer: Answer,
    /// The last request went on a connection that had carried requests before.
    reused: bool,
    /// The last request was refused by an HTTP/2 server without being processed.
    refused: bool,
    /// When the current request passed the gate: the clock read once per request serves its
    /// latency and the look at an idle connection (a read of the clock was 0.5% of a request).
    sent_at: Instant,
    /// The next request to another origin goes on a fresh connection: the last one, on a
    /// pooled connection, failed as stale.
    fresh_elsewhere: bool,
    /// The generation of the credentials the last request carried (`--auth-command`).
    generation: u64,
    /// `--next`: the request for the current page after an item's first.
    page_hop: Option<Hop>,
    /// `--next`: where the last request went (what a relative next resolves against).
    sent_to: Option<(Origin, Vec<u8>)>,
    /// `--next`: why the next the last answer gave cannot be followed (its row says so).
    unusable_next: Option<String>,
    /// The route (direct, or which proxy) of the slot's own connection.
    route: RouteId,
    /// The proxy the last answer came through, if any.
    answered_through: Option<Rc<ProxyHealth>>,
    /// The last request went to an HTTP proxy in absolute form (plain HTTP forwarded): what
    /// goes wrong before the target's answer is the proxy's.
    forwarded: bool,
    /// The request timeout's timer, kept from one request to the next: boxed, because monoio's
    /// timer is 640 bytes aligned to 128 (see `pause`), and reset rather than made anew, which
    /// for a later deadline only moves a number.
    timer: Option<Pin<Box<monoio::time::Sleep>>>,
    /// The current item's host in the worker's host table (`hosts::NONE`: none).
    host: HostId,
}

impl Slot {
    pub fn new(plan: Rc<Plan>) -> Self {
        Self {
            conn: None,
            plan,
            rng: fastrand::Rng::new(),
            request: Vec::with_capacity(512),
            body_scratch: Vec::new(),
            answer: Answer::default(),
            reused: false,
            refused: false,
            sent_at: Instant::now(),
            fresh_elsewhere: false,
            generation: 0,
            page_hop: None,
            sent_to: None,
            unusable_next: None,
            route: RouteId::default(),
            answered_through: None,
            forwarded: false,
            timer: None,
            host: NONE,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The item about to be tried is of `host` (runs whose host varies).
    pub fn set_host(&mut self, host: HostId) {
        self.host = host;
    }

    /// When the host varies, with `--host-rate`: waits until the item's host may be written
    /// to (its connection is open), so that its requests reach it spaced whatever the
    /// connects took.
    pub(super) async fn wait_for_host(&self) {
        let Some(hosts) = self.plan.hosts.as_ref().filter(|_| self.host != NONE) else {
            return;
        };
        let at = hosts.borrow_mut().send_at(self.host, Instant::now());
        if let Some(at) = at {
            super::wait::pause_until(at).await;
            hosts.borrow_mut().sent(self.host, Instant::now());
        }
    }

    /// The `Retry-After` of the last answer: its host's pause when the host varies, also
    /// after the item's last attempt (whose row does not carry it).
    pub fn retry_after(&self) -> Option<Duration> {
        self.answer.retry_after
    }

    /// One attempt at item `index` (whose placeholders take `values`) after `attempts_before`
    /// earlier ones: its record when the outcome is final, else how long to wait before the
    /// next attempt (the policy decides; the wait happens in the worker's retry queue, not in
    /// this slot). An item whose key record did not read is not sent: its row says `request`.
    pub async fn try_once(
        &mut self,
        index: u64,
        values: &Values,
        attempts_before: u32,
        chain: &Chain,
    ) -> Outcome {
        let attempts = attempts_before + 1;
        let ready = match self.prepare_request(values, chain) {
            // Boxed: the robots.txt fetch would make every request's future larger.
            Ok(()) if self.plan.robots.is_some() => Box::pin(self.obey_robots(values)).await,
            prepared => prepared,
        };
        if let Err(failure) = ready {
            // A URL robots.txt forbids is never sent: no attempt (nor a request in the stats).
            let attempts = attempts - u32::from(failure.kind == ErrorKind::Robots);
            // Nothing was sent: the status of the slot's previous answer is not this row's.
            self.answer.status = 0;
            let attempt = Attempt::Failed {
                failure,
                latency: Duration::ZERO,
                stale: false,
            };
            let record = self.record(index, values, attempts, attempt, chain.page);
            return Outcome::Done(self.paged(record, values, chain));
        }
        let attempt = self.attempt_once_fresh_if_stale(values).await;
        let verdict = match &attempt {
            Attempt::Answered { .. } => Verdict::Status {
                status: self.answer.status,
                retry_after: self.answer.retry_after,
            },
            Attempt::Failed { failure, .. } => Verdict::Error(failure.kind),
        };
        let outcome = match self.plan.retry.next_delay(verdict, attempts, &mut self.rng) {
            Some(wait) => Outcome::RetryAfter { wait, why: verdict },
            None => {
                let record = self.record(index, values, attempts, attempt, chain.page);
                Outcome::Done(self.paged(record, values, chain))
            }
        };
        self.let_go_of_the_body();
        outcome
    }

    /// What is known before sending: an item whose key record did not read is not sent (its
    /// row says `request`), and a page after an item's first goes where the page before said.
    fn prepare_request(&mut self, values: &Values, chain: &Chain) -> Result<(), Failure> {
        if let Some(why) = &values.malformed {
            return Err(Failure {
                kind: ErrorKind::Request,
                answered: false,
                detail: format!("the key record does not read: {why}"),
            });
        }
        if let Some(name) = self.plan.template.absent_in_path(values) {
            return Err(Failure {
                kind: ErrorKind::Request,
                answered: false,
                detail: format!("{{{name}}} is null: the path would have an empty segment"),
            });
        }
        self.page_hop = match &self.plan.paging {
            Some(paging) => paging.hop(&self.plan.template, values, chain)?,
            None => None,
        };
        Ok(())
    }

    /// `--next`: the record as a page of `chain`: its number, whether more follow, a loop (a
    /// next given before in the chain, or the item's first page) as an error of its own, and a
    /// next that cannot be followed as a `request` error that keeps it.
    fn paged(&mut self, mut record: Record, values: &Values, chain: &Chain) -> Record {
        let unusable = self.unusable_next.take();
        let Some(paging) = &self.plan.paging else {
            return record;
        };
        record.page = chain.page;
        if !record.succeeded() {
            record.captured.next = None;
            return record;
        }
        if let Some(why) = unusable {
            crate::detail!(
                "ringscrape: id {}: page {}: the next page cannot be followed: {why}",
                String::from_utf8_lossy(values.id()),
                chain.page
            );
            record.error = Some(ErrorKind::Request);
            return record;
        }
        if let Some(next) = &record.captured.next {
            let first = || paging.first_page(&self.plan.template, values);
            if chain.has_seen(next) || first().as_deref() == Some(next.as_slice()) {
                record.error = Some(ErrorKind::Loop);
            } else {
                record.more = paging.pages().goes_on(chain.page, next);
            }
        }
        record
    }

    /// The answer's body has been handed on (or is not wanted): a large buffer is dropped,
    /// and the memory budget learns what the slot still holds.
    fn let_go_of_the_body(&mut self) {
        let answer = &mut self.answer;
        answer.decoding = None;
        if answer.body.capacity() > REUSED_BODY_BUFFER {
            answer.body = Vec::new();
        }
        if let Some(memory) = &self.plan.memory {
            memory.settle(&mut answer.hold, answer.body.capacity());
        }
    }

    /// The row of item `index`'s page `page` after `attempt`.
    fn record(
        &mut self,
        index: u64,
        values: &Values,
        attempts: u32,
        attempt: Attempt,
        page: u32,
    ) -> Record {
        let attempts = u16::try_from(attempts).unwrap_or(u16::MAX);
        let (latency, kept) = match attempt {
            Attempt::Answered { latency } => {
                if let Some(proxy) = self.answered_through.take() {
                    proxy.count_row();
                }
                if self.answer.says_https_port {
                    self.plan.tally.https_port();
                }
                (latency, self.keep_answer(index, values, page))
            }
            Attempt::Failed {
                failure, latency, ..
            } => (latency, Err(failure)),
        };
        match kept {
            Ok(captured) => Record {
                index,
                page: 0,
                more: false,
                status: Some(self.answer.status),
                bytes: self.answer.body_len,
                latency_us: micros(latency),
                attempts,
                error: None,
                captured,
            },
            // Failed, or answered but the body could not be kept (its file not written).
            Err(failure) => {
                // The status the server sent, when its head came before the failure (a body
                // that did not decode or was too large, cut off, or timed out): a 404 with a
                // corrupt body is not "no response". A proxy's own 407 is no status of the
                // target's.
                let status = (self.answer.status != 0 && failure.kind != ErrorKind::Proxy)
                    .then_some(self.answer.status);
                self.plan.tally.failed(&failure);
                crate::detail!(
                    "ringscrape: id {}: {}: {}",
                    String::from_utf8_lossy(values.id()),
                    failure.kind.as_str(),
                    failure.detail
                );
                Record {
                    index,
                    page: 0,
                    more: false,
                    status,
                    bytes: 0,
                    latency_us: micros(latency),
                    attempts,
                    error: Some(failure.kind),
                    captured: Captured::default(),
                }
            }
        }
    }

    /// What the schema keeps of the last answer: captured headers, and the body (inline, or
    /// written to its file first, so the row never points at a file that is not complete; each
    /// page of a chain to a file of its own).
    fn keep_answer(&mut self, index: u64, values: &Values, page: u32) -> Result<Captured, Failure> {
        let mut headers = std::mem::take(&mut self.answer.captured);
        let next = match self.next_page(&mut headers) {
            Ok(next) => next,
            Err(unusable) => {
                self.unusable_next = Some(unusable.why);
                Some(unusable.given)
            }
        };
        let mut extracted = Vec::new();
        if !self.plan.extractor.is_empty() {
            let misses;
            (extracted, misses) = self.plan.extractor.run(&self.answer.body);
            self.plan.tally.extract_misses(misses);
        }
        let body = match (&self.plan.schema.body, &self.plan.bodies) {
            (BodyColumn::Inline(_), _) => Some(std::mem::take(&mut self.answer.body)),
            (BodyColumn::Files(_), Some(bodies)) => {
                let spool = self.answer.spool.take().map(Spool::finish);
                let path = spool
                    .ok_or_else(|| io::Error::other("no body file was written"))
                    .and_then(|file| {
                        // Ids repeat in a product of key files: bodies are named by index.
                        let mut number = itoa::Buffer::new();
                        let name = match self.plan.schema.keys.is_empty() {
                            true => values.id(),
                            false => number.format(index).as_bytes(),
                        };
                        bodies.borrow_mut().place(&file, name, index, page)
                    })
                    .map_err(|e| Failure {
                        kind: ErrorKind::Io,
                        answered: true,
                        detail: format!("writing the body file: {e}"),
                    })?;
                Some(path.into_bytes())
            }
            _ => None,
        };
        Ok(Captured {
            headers,
            body,
            extracted,
            next,
            ..Captured::default()
        })
    }

    /// `--next`: what a 2xx answer gives for the next page (from the `Link` header captured
    /// last, taken off `headers`, or from the body).
    fn next_page(
        &self,
        headers: &mut Vec<Option<Vec<u8>>>,
    ) -> Result<Option<Vec<u8>>, UnusableNext> {
        let Some(paging) = self.plan.paging.as_ref() else {
            return Ok(None);
        };
        let link = match paging.pages().by_link() {
            true => headers.pop().flatten(),
            false => None,
        };
        let Some((origin, target)) = self.sent_to.as_ref() else {
            return Ok(None);
        };
        if !(200..300).contains(&self.answer.status) {
            return Ok(None);
        }
        paging.next_of(origin, target, link.as_deref(), &self.answer.body)
    }

    /// One attempt; a failure on a reused connection before any answer is repeated at once on
    /// a fresh connection, and the pair counts as one attempt. An HTTP/2 stream the server
    /// refused unprocessed (it had sent GOAWAY, e.g. after its per-connection request limit) is
    /// sent again too, up to [`MAX_REFUSED_RESENDS`] times: with 100 streams per connection and
    /// nginx's GOAWAY every 50 requests, half the streams of each connection are refused.
    async fn attempt_once_fresh_if_stale(&mut self, values: &Values) -> Attempt {
        let mut attempt = self.attempt(values).await;
        if matches!(attempt, Attempt::Failed { stale: true, .. }) {
            attempt = self.attempt(values).await;
        }
        let mut resends = 0;
        while self.refused && resends < MAX_REFUSED_RESENDS {
            attempt = self.attempt(values).await;
            resends += 1;
        }
        // A 401 with credentials that have since been refreshed (or are being refreshed, on
        // this answer's word) is sent again once with the new ones: not an attempt of its own.
        if matches!(attempt, Attempt::Answered { .. }) && self.answer.status == 401 {
            let plan = self.plan.clone();
            if let Some(credentials) = &plan.credentials
                && Box::pin(credentials.newer_than(self.generation)).await
            {
                attempt = self.attempt(values).await;
            }
        }
        attempt
    }

    async fn attempt(&mut self, values: &Values) -> Attempt {
        // Where it goes is known before the gate (a gate per host would ask).
        let bound = self.bound_for(values, self.page_hop.as_ref());
        let started = self.plan.gate.pass().await;
        self.sent_at = started;
        self.reused = false;
        self.answered_through = None;
        self.refused = false;
        let deadline = monoio::time::Instant::from_std(started + self.plan.limits.timeout);
        let mut timer = match self.timer.take() {
            // Still set for an earlier request's deadline: left as it is, and moved on to this
            // one only if it fires first (`before`). Moving it for every request (monoio takes
            // the entry out of its wheel and puts it back) was 0.6% (HTTP/1.1) to 1.3% (HTTP/2)
            // of a run's profile.
            Some(timer) if timer.deadline() <= deadline => timer,
            Some(mut timer) => {
                timer.as_mut().reset(deadline);
                timer
            }
            None => Box::pin(monoio::time::sleep_until(deadline)),
        };
        let result = {
            let exchange = std::pin::pin!(self.exchange(values, bound));
            before(timer.as_mut(), deadline, exchange).await
        };
        self.timer = Some(timer);
        self.plan.gate.returned();
        let now = Instant::now();
        let latency = now.saturating_duration_since(started);
        match result {
            Some(Ok(())) => self.on_answer(now, latency),
            Some(Err(failure)) => self.on_failure(failure, latency),
            None => {
                // The connection is mid-exchange: never use it again. (An HTTP/2 stream is
                // reset when its request is dropped; the lane lives on.)
                self.conn = None;
                let failure = Failure {
                    kind: ErrorKind::Timeout,
                    answered: false,
                    detail: "request deadline passed".into(),
                };
                Attempt::Failed {
                    failure,
                    latency,
                    stale: false,
                }
            }
        }
    }
}

/// What `work` comes to, or `None` once `deadline` has passed. `expiry` may be set earlier than
/// `deadline` (it is not moved forward for every request): when it fires early it is moved to
/// `deadline` then. Unlike monoio's `timeout`, which takes the future by value and moves it
/// twice more, this polls it where the caller pinned it: a request's future is over a kilobyte,
/// and copying it was the largest user-space cost per request (callgrind).
async fn before<F: Future>(
    mut expiry: Pin<&mut monoio::time::Sleep>,
    deadline: monoio::time::Instant,
    mut work: Pin<&mut F>,
) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        loop {
            ready!(expiry.as_mut().poll(cx));
            if expiry.deadline() >= deadline {
                return Poll::Ready(None);
            }
            expiry.as_mut().reset(deadline);
        }
    })
    .await
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
