//! One in-flight slot: builds the request for an item from the template, sends it on the slot's
//! own connection with a deadline, and turns whatever happens into a [`Record`].
//!
//! Each slot owns at most one connection and drops it after any failure or an answer that
//! ends it: a failed connection is never used again (monoio-http-client's pool would hand it out
//! again; see `shared/NOTES-monoio-http-client.md`). A request that fails on a *reused*
//! connection before any answer byte arrived is sent once more at once on a fresh connection and
//! not counted as an attempt: the server closed an idle connection, it did not answer. Around
//! that sits the retry policy (`retry.rs`).

use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio_http_client::unified::UnifiedTransportConnection;

use super::Failure;
use super::connect::Dialer;
use super::h1::{Answer, H1Conn, Wants};
use super::retry::Verdict;
use crate::model::{ErrorKind, Record, RequestLimits, RetryPolicy};
use crate::request::RequestTemplate;

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
    conn: Option<H1Conn<UnifiedTransportConnection>>,
    dialer: Rc<Dialer>,
    template: Rc<RequestTemplate>,
    limits: RequestLimits,
    retry: RetryPolicy,
    rng: fastrand::Rng,
    /// The request being sent; reused from one item to the next.
    request: Vec<u8>,
    body_scratch: Vec<u8>,
    answer: Answer,
}

impl Slot {
    pub fn new(
        dialer: Rc<Dialer>,
        template: Rc<RequestTemplate>,
        limits: RequestLimits,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            conn: None,
            dialer,
            template,
            limits,
            retry,
            rng: fastrand::Rng::new(),
            request: Vec::with_capacity(512),
            body_scratch: Vec::new(),
            answer: Answer::default(),
        }
    }

    /// Fetches item `index` (whose key is `key`), retrying as the policy says; always yields
    /// one record, whose `attempts` is the number of attempts made and whose outcome is the
    /// last one's.
    pub async fn fetch(&mut self, index: u64, key: &[u8]) -> Record {
        let mut attempts = 1;
        loop {
            let attempt = self.attempt_once_fresh_if_stale(key).await;
            let verdict = match &attempt {
                Attempt::Answered { .. } => Verdict::Status {
                    status: self.answer.status,
                    retry_after: self.answer.retry_after,
                },
                Attempt::Failed { failure, .. } => Verdict::Error(failure.kind),
            };
            match self.retry.next_delay(verdict, attempts, &mut self.rng) {
                Some(wait) => {
                    monoio::time::sleep(wait).await;
                    attempts += 1;
                }
                None => return self.record(index, attempts, attempt),
            }
        }
    }

    fn record(&self, index: u64, attempts: u32, attempt: Attempt) -> Record {
        let attempts = u16::try_from(attempts).unwrap_or(u16::MAX);
        match attempt {
            Attempt::Answered { latency } => Record {
                index,
                status: Some(self.answer.status),
                bytes: self.answer.body_len,
                latency_us: micros(latency),
                attempts,
                error: None,
            },
            Attempt::Failed {
                failure, latency, ..
            } => Record {
                index,
                status: None,
                bytes: 0,
                latency_us: micros(latency),
                attempts,
                error: Some(failure.kind),
            },
        }
    }

    /// One attempt; a failure on a reused connection before any answer is repeated at once on
    /// a fresh connection, and the pair counts as one attempt.
    async fn attempt_once_fresh_if_stale(&mut self, key: &[u8]) -> Attempt {
        match self.attempt(key).await {
            Attempt::Failed { stale: true, .. } => self.attempt(key).await,
            other => other,
        }
    }

    async fn attempt(&mut self, key: &[u8]) -> Attempt {
        let started = Instant::now();
        if self
            .template
            .write_h1(key, &mut self.request, &mut self.body_scratch)
            .is_err()
        {
            let failure = Failure {
                kind: ErrorKind::Request,
                answered: false,
                detail: "the key would break a header line".into(),
            };
            return Attempt::Failed {
                failure,
                latency: started.elapsed(),
                stale: false,
            };
        }
        let reused = self.conn.is_some();
        let deadline = self.limits.timeout;
        let result = monoio::time::timeout(deadline, self.exchange()).await;
        let latency = started.elapsed();
        match result {
            Ok(Ok(())) => {
                if self.conn.as_ref().is_some_and(|c| !c.reusable()) {
                    self.conn = None;
                }
                Attempt::Answered { latency }
            }
            Ok(Err(failure)) => {
                self.conn = None;
                let stale = reused
                    && !failure.answered
                    && matches!(failure.kind, ErrorKind::Closed | ErrorKind::Reset);
                Attempt::Failed {
                    failure,
                    latency,
                    stale,
                }
            }
            Err(_elapsed) => {
                // The connection is mid-exchange: never use it again.
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

    /// Sends the prepared request on the slot's connection (opening one if needed) and reads
    /// the answer into `self.answer`.
    async fn exchange(&mut self) -> Result<(), Failure> {
        if self.conn.is_none() {
            self.conn = Some(H1Conn::new(self.dialer.dial().await?));
        }
        let conn = self.conn.as_mut().expect("a connection was just opened");
        let wants = Wants {
            capture: &[],
            keep_body: false,
            head_request: self.template.method == http::Method::HEAD,
            max_body: self.limits.max_body_bytes,
        };
        let (request, result) = conn
            .exchange(std::mem::take(&mut self.request), &wants, &mut self.answer)
            .await;
        self.request = request;
        result
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
