//! One in-flight slot's HTTP connection: sends a request with a deadline and turns whatever
//! happens into a [`Record`].
//!
//! monoio-http-client 0.3.3 returns a connection to its pool even after an error or a cancelled
//! (timed-out) request, and never notices that the server closed an idle keep-alive connection
//! (see `shared/NOTES-monoio-http-client.md`). So each slot owns its own `Client` — a pool of at
//! most one connection — and drops it after any failure: a failed connection is never used again.
//! A request that fails on a *reused* connection before the response head arrived is retried once
//! at once on a fresh connection and not counted as an attempt: the server closed a stale
//! connection, it did not answer.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio_http::common::error::HttpError;
use monoio_http::h1::codec::decoder::DecodeError;
use monoio_http::h1::codec::encoder::EncodeError;
use monoio_http::h1::payload::PayloadError;
use monoio_http_client::unified::{UnifiedTransportConnection, UnifiedTransportConnector};
use monoio_http_client::{Client, Connector, Error as ClientError, Key};

use crate::config::RequestLimits;
use crate::wire::{ErrorKind, Record};

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

enum Attempt {
    Response {
        status: u16,
        bytes: u64,
        latency: Duration,
    },
    Failed {
        kind: ErrorKind,
        latency: Duration,
        stale: bool,
    },
}

/// One in-flight slot: a client with at most one live connection.
pub struct Slot {
    client: Option<Client<SlotConnector>>,
    transport: Rc<UnifiedTransportConnector>,
    log: Rc<ConnectLog>,
    limits: RequestLimits,
}

impl Slot {
    /// `transport` is shared by a worker's slots: building one loads the TLS root store.
    pub fn new(transport: Rc<UnifiedTransportConnector>, limits: RequestLimits) -> Self {
        Self {
            client: None,
            transport,
            log: Rc::default(),
            limits,
        }
    }

    /// Fetches `url` for item `index`; always yields exactly one record.
    pub async fn fetch(&mut self, index: u64, url: &str) -> Record {
        let mut attempt = self.attempt(url).await;
        if let Attempt::Failed { stale: true, .. } = attempt {
            attempt = self.attempt(url).await;
        }
        match attempt {
            Attempt::Response {
                status,
                bytes,
                latency,
            } => Record {
                index,
                status: Some(status),
                bytes,
                latency_us: micros(latency),
                attempts: 1,
                error: None,
            },
            Attempt::Failed { kind, latency, .. } => Record {
                index,
                status: None,
                bytes: 0,
                latency_us: micros(latency),
                attempts: 1,
                error: Some(kind),
            },
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
        let deadline = self.limits.timeout;
        let started = Instant::now();
        let result = monoio::time::timeout(deadline, exchange(self.client(), url)).await;
        let latency = started.elapsed();
        let reused = self.log.opened.get() == opened_before;
        match result {
            Ok(Ok((status, bytes))) => Attempt::Response {
                status,
                bytes,
                latency,
            },
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

/// Sends a GET and reads the whole body; returns status and body length.
async fn exchange(
    client: &Client<SlotConnector>,
    url: &str,
) -> Result<(u16, u64), (Phase, ClientError)> {
    let response = client.get(url).send().await.map_err(|e| (Phase::Head, e))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| (Phase::Body, e))?;
    Ok((status, body.len() as u64))
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
