//! One in-flight slot's HTTP connection: sends a request with a deadline and turns whatever
//! happens into a [`Record`].
//!
//! monoio-http-client 0.3.3 returns a connection to its pool even after an error or a cancelled
//! (timed-out) request, and never notices that the server closed an idle keep-alive connection
//! (see `shared/NOTES-monoio-http-client.md`). So each slot owns its own `Client` — a pool of at
//! most one connection — and drops it after any failure: a failed connection is never used again.
//! A request that fails on a *reused* connection before the response head arrived is retried once
//! at once on a fresh connection and not counted as an attempt: the server closed a stale
//! connection, it did not answer. Around that sits the retry policy (`retry.rs`).

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use monoio_http::common::body::{BodyExt, FixedBody, HttpBody};
use monoio_http::common::error::HttpError;
use monoio_http::h1::codec::decoder::DecodeError;
use monoio_http::h1::codec::encoder::EncodeError;
use monoio_http::h1::payload::PayloadError;
use monoio_http_client::unified::{UnifiedTransportConnection, UnifiedTransportConnector};
use monoio_http_client::{BodyLimit, Client, Connector, Error as ClientError, Key};

use super::retry::{Verdict, parse_retry_after};
use crate::model::{ErrorKind, Record, RequestLimits, RetryPolicy};

/// What the slot's connector saw: how many connections it opened, and whether the last open
/// failed (which makes the request's error a `connect` error whatever the crate calls it).
#[derive(Default)]
struct ConnectLog {
    opened: Cell<u64>,
    failed: Cell<bool>,
}

/// Opens connections for one slot's client: applies the connect deadline and logs each open.
struct SlotConnector {
    transport: Rc<UnifiedTransportConnector>,
    log: Rc<ConnectLog>,
    connect_timeout: Duration,
}

impl Connector<Key> for SlotConnector {
    type Connection = UnifiedTransportConnection;
    type Error = ClientError;

    async fn connect(&self, key: Key) -> Result<Self::Connection, Self::Error> {
        self.log.opened.set(self.log.opened.get() + 1);
        let result = monoio::time::timeout(self.connect_timeout, self.transport.connect(key)).await;
        let result = result.unwrap_or_else(|_| {
            Err(io::Error::new(io::ErrorKind::TimedOut, "connect deadline passed").into())
        });
        self.log.failed.set(result.is_err());
        result
    }
}

/// The part of an exchange that failed: before the response head, or while reading the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Body,
}

/// What one attempt got.
struct Reply {
    status: u16,
    bytes: u64,
    retry_after: Option<Duration>,
}

enum Attempt {
    Response {
        reply: Reply,
        latency: Duration,
    },
    Failed {
        kind: ErrorKind,
        latency: Duration,
        stale: bool,
    },
}

impl Attempt {
    fn verdict(&self) -> Verdict {
        match self {
            Attempt::Response { reply, .. } => Verdict::Status {
                status: reply.status,
                retry_after: reply.retry_after,
            },
            Attempt::Failed { kind, .. } => Verdict::Error(*kind),
        }
    }

    fn into_record(self, index: u64, attempts: u32) -> Record {
        let attempts = u16::try_from(attempts).unwrap_or(u16::MAX);
        match self {
            Attempt::Response { reply, latency } => Record {
                index,
                status: Some(reply.status),
                bytes: reply.bytes,
                latency_us: micros(latency),
                attempts,
                error: None,
            },
            Attempt::Failed { kind, latency, .. } => Record {
                index,
                status: None,
                bytes: 0,
                latency_us: micros(latency),
                attempts,
                error: Some(kind),
            },
        }
    }
}

/// One in-flight slot: a client with at most one live connection.
pub struct Slot {
    client: Option<Client<SlotConnector>>,
    transport: Rc<UnifiedTransportConnector>,
    log: Rc<ConnectLog>,
    limits: RequestLimits,
    retry: RetryPolicy,
    rng: fastrand::Rng,
}

impl Slot {
    /// `transport` is shared by a worker's slots: building one loads the TLS root store.
    pub fn new(
        transport: Rc<UnifiedTransportConnector>,
        limits: RequestLimits,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            client: None,
            transport,
            log: Rc::default(),
            limits,
            retry,
            rng: fastrand::Rng::new(),
        }
    }

    /// Fetches `url` for item `index`, retrying as the policy says; always yields one record,
    /// whose `attempts` is the number of attempts made and whose outcome is the last one's.
    pub async fn fetch(&mut self, index: u64, url: &str) -> Record {
        let mut attempts = 1;
        loop {
            let attempt = self.attempt_once_fresh_if_stale(url).await;
            match self
                .retry
                .next_delay(attempt.verdict(), attempts, &mut self.rng)
            {
                Some(wait) => {
                    monoio::time::sleep(wait).await;
                    attempts += 1;
                }
                None => return attempt.into_record(index, attempts),
            }
        }
    }

    /// One attempt; a failure on a reused connection before any response is repeated at once on
    /// a fresh connection, and the pair counts as one attempt.
    async fn attempt_once_fresh_if_stale(&mut self, url: &str) -> Attempt {
        let attempt = self.attempt(url).await;
        match attempt {
            Attempt::Failed { stale: true, .. } => self.attempt(url).await,
            other => other,
        }
    }

    fn client(&mut self) -> &Client<SlotConnector> {
        self.client.get_or_insert_with(|| {
            monoio_http_client::Builder::new().build_with_connector(SlotConnector {
                transport: self.transport.clone(),
                log: self.log.clone(),
                connect_timeout: self.limits.connect_timeout,
            })
        })
    }

    async fn attempt(&mut self, url: &str) -> Attempt {
        let opened_before = self.log.opened.get();
        self.log.failed.set(false);
        let (deadline, max_body) = (self.limits.timeout, self.limits.max_body_bytes);
        let started = Instant::now();
        let result = monoio::time::timeout(deadline, exchange(self.client(), url, max_body)).await;
        let latency = started.elapsed();
        let reused = self.log.opened.get() == opened_before;
        match result {
            Ok(Ok(reply)) => Attempt::Response { reply, latency },
            Ok(Err((phase, error))) => {
                // Never hand this connection out again (the crate's pool would).
                self.client = None;
                let kind = if self.log.failed.get() {
                    ErrorKind::Connect
                } else {
                    classify(&error)
                };
                let stale = reused
                    && phase == Phase::Head
                    && matches!(kind, ErrorKind::Closed | ErrorKind::Reset);
                Attempt::Failed {
                    kind,
                    latency,
                    stale,
                }
            }
            Err(_elapsed) => {
                self.client = None;
                Attempt::Failed {
                    kind: ErrorKind::Timeout,
                    latency,
                    stale: false,
                }
            }
        }
    }
}

/// Builds the GET for `url` with the body limit attached (see vendor/monoio-http-client).
fn build_request(url: &str, max_body: usize) -> Result<http::Request<HttpBody>, ClientError> {
    let uri: http::Uri = url.parse().map_err(http::Error::from)?;
    let host = uri
        .authority()
        .map(|a| http::HeaderValue::from_str(a.as_str()))
        .transpose()
        .map_err(http::Error::from)?;
    let mut request = http::Request::get(uri).version(http::Version::HTTP_11);
    if let Some(host) = host {
        request = request.header(http::header::HOST, host);
    }
    Ok(request
        .extension(BodyLimit(max_body))
        .body(HttpBody::fixed_body(None))?)
}

/// Sends a GET and reads the whole body; returns status, body length and any `Retry-After`.
async fn exchange(
    client: &Client<SlotConnector>,
    url: &str,
    max_body: usize,
) -> Result<Reply, (Phase, ClientError)> {
    let request = build_request(url, max_body).map_err(|e| (Phase::Head, e))?;
    let response = client
        .send_request(request)
        .await
        .map_err(|e| (Phase::Head, e))?;
    let (head, body) = response.into_parts();
    if head.status.is_informational() {
        // A 1xx the crate did not skip (101): not an answer, and the connection is unusable.
        return Err((Phase::Head, ClientError::H1Decode(DecodeError::Header)));
    }
    let retry_after = head
        .headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let body = body.bytes().await.map_err(|e| (Phase::Body, e.into()))?;
    if body.len() > max_body {
        return Err((Phase::Body, ClientError::BodyTooLarge(max_body)));
    }
    Ok(Reply {
        status: head.status.as_u16(),
        bytes: body.len() as u64,
        retry_after,
    })
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Maps the crate's error onto the CSV's error kinds.
fn classify(error: &ClientError) -> ErrorKind {
    match error {
        ClientError::Io(e) => classify_io(e),
        ClientError::H1Decode(e) => classify_decode(e),
        ClientError::HttpError(e) => classify_http(e),
        ClientError::Rustls(_) => ErrorKind::Tls,
        ClientError::BodyTooLarge(_) => ErrorKind::BodyTooLarge,
        ClientError::H2Error(e) => match e.get_io() {
            Some(io) => classify_io(io),
            None => ErrorKind::Protocol,
        },
        _ => ErrorKind::Protocol,
    }
}

fn classify_http(error: &HttpError) -> ErrorKind {
    match error {
        HttpError::H1DecodeError(e) => classify_decode(e),
        HttpError::PayloadError(e) => classify_payload(e),
        HttpError::H1EncodeError(EncodeError::Io(e)) | HttpError::IOError(e) => classify_io(e),
        HttpError::H1EncodeError(EncodeError::Payload(e)) => classify_payload(e),
        HttpError::H2Error(e) => e.get_io().map_or(ErrorKind::Protocol, classify_io),
        _ => ErrorKind::Protocol,
    }
}

fn classify_decode(error: &DecodeError) -> ErrorKind {
    match error {
        DecodeError::Io(e) => classify_io(e),
        DecodeError::UnexpectedEof => ErrorKind::Closed,
        DecodeError::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Protocol,
    }
}

fn classify_payload(error: &PayloadError) -> ErrorKind {
    match error {
        PayloadError::UnexpectedEof => ErrorKind::Closed,
        PayloadError::Decode => ErrorKind::Protocol,
        PayloadError::Io(e) => classify_io(e),
    }
}

fn classify_io(error: &io::Error) -> ErrorKind {
    use io::ErrorKind as K;
    match error.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => ErrorKind::Reset,
        K::UnexpectedEof => ErrorKind::Closed,
        K::TimedOut => ErrorKind::Timeout,
        K::ConnectionRefused
        | K::AddrNotAvailable
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NotFound => ErrorKind::Connect,
        K::InvalidData => ErrorKind::Protocol,
        _ => ErrorKind::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_stable_kinds() {
        let kind = |k| classify(&ClientError::Io(io::Error::from(k)));
        assert_eq!(kind(io::ErrorKind::ConnectionReset), ErrorKind::Reset);
        assert_eq!(kind(io::ErrorKind::BrokenPipe), ErrorKind::Reset);
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), ErrorKind::Connect);
        assert_eq!(kind(io::ErrorKind::TimedOut), ErrorKind::Timeout);
        assert_eq!(kind(io::ErrorKind::PermissionDenied), ErrorKind::Io);
    }

    #[test]
    fn decode_errors_map_to_closed_or_protocol() {
        assert_eq!(
            classify(&ClientError::H1Decode(DecodeError::UnexpectedEof)),
            ErrorKind::Closed
        );
        assert_eq!(
            classify(&ClientError::H1Decode(DecodeError::Header)),
            ErrorKind::Protocol
        );
        assert_eq!(
            classify(&ClientError::HttpError(HttpError::PayloadError(
                PayloadError::UnexpectedEof
            ))),
            ErrorKind::Closed
        );
        assert_eq!(classify(&ClientError::MissingCodec), ErrorKind::Protocol);
    }
}
