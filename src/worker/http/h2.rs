//! HTTP/2 for `--http2`: many streams share a few connections. A worker keeps a list of
//! connections ("lanes"); a slot takes the first lane with room — as many streams as the
//! server's `SETTINGS_MAX_CONCURRENT_STREAMS` allows (nginx: 128; [`STREAMS_PER_LANE`] until its
//! SETTINGS arrive) — and opens a new lane only when all are full and the lanes being opened
//! are spoken for by the slots already waiting: 256 slots starting together open 3 lanes at
//! once (one round trip, not three), and use 2 or 3, not 256. The frames are the `h2` crate's
//! (hyper's HTTP/2), driven over monoio through monoio-compat's poll adapter; a task per lane
//! reads and writes its connection. A lane whose connection failed, ended or got GOAWAY takes
//! no new requests; its requests end as error rows, retried as the policy says, never as hangs.
//!
//! Over TLS the server may decline `h2` by ALPN: the connection then goes back to the slot as an
//! HTTP/1.1 connection, and the worker speaks HTTP/1.1 from then on.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::SystemTime;

use bytes::Bytes;
use h2::Reason;
use h2::client::SendRequest;
use monoio_compat::StreamWrapper;

use super::answer::{Answer, Wants, keep_body_bytes};
use super::decode::Codings;
use crate::model::ErrorKind;
use crate::request::{KeyBreaksHeader, RequestParts, Scheme, connection_specific};
use crate::worker::conn::connect::{Dialer, RouteId};
use crate::worker::conn::stream::Stream;
use crate::worker::failure::Failure;
use crate::worker::schedule::quota::{self, Reading};
use crate::worker::schedule::retry::parse_retry_after;
use crate::worker::wait::Parked;

/// Streams a lane is taken to carry until the server's SETTINGS say how many: the least
/// RFC 9113 §6.5.2 recommends a server allow (nginx allows 128).
pub const STREAMS_PER_LANE: usize = 100;
/// The most streams put on one lane whatever the server allows ("unlimited" included): one
/// lost packet stalls every stream of its connection.
const MOST_STREAMS_PER_LANE: usize = 1000;

/// One HTTP/2 connection.
pub struct Lane {
    /// (`SendRequest::current_max_send_streams` is the server's limit once its SETTINGS came.)
    send: SendRequest<Bytes>,
    in_flight: Cell<usize>,
    /// Set by a request that saw the connection fail or refuse, or by the lane's task when the
    /// connection ended.
    broken: Rc<Cell<bool>>,
    /// Requests this lane has carried (0: the first request on it is under way).
    carried: Cell<u64>,
    /// Requests answered on this lane.
    answered: Cell<u64>,
    /// The route (direct, or which proxy) of its connection.
    pub route: RouteId,
}

/// A request's hold on a lane; releases its place when the request ends, however it ends.
pub struct LaneSeat {
    pub lane: Rc<Lane>,
    /// The lane had carried requests before this one (a failure before any answer then says
    /// the connection had gone stale, not that this request failed).
    pub reused: bool,
    /// The server refused the stream without processing it (REFUSED_STREAM, or after its
    /// GOAWAY): safe to send again, and not an attempt.
    pub refused: Cell<bool>,
    /// Refused after the server's GOAWAY: the lane takes no more (a REFUSED_STREAM alone, sent
    /// above the server's stream limit before its SETTINGS arrived, leaves the lane as it is).
    went_away: Cell<bool>,
    /// Answers the lane had given when this request took its seat, and whether the request
    /// ran to its end: one dropped unfinished (its deadline passed) on a lane that answered
    /// nothing meanwhile says the connection went silent.
    answered_before: u64,
    ended: Cell<bool>,
}

impl Lane {
    /// Streams this lane may carry at once.
    fn room(&self) -> usize {
        self.send
            .current_max_send_streams()
            .min(MOST_STREAMS_PER_LANE)
    }
}

impl Drop for LaneSeat {
    /// A lane that answered nothing for a whole request deadline takes no more requests: a
    /// connection gone silent (no FIN, no GOAWAY) would otherwise swallow every request put on
    /// it, each one waiting out its deadline.
    fn drop(&mut self) {
        if !self.ended.get() && self.lane.answered.get() == self.answered_before {
            self.lane.broken.set(true);
        }
        self.lane.in_flight.set(self.lane.in_flight.get() - 1);
    }
}

/// A lane being opened: ends the opening however `open` ends, its future dropped included (the
/// opening slot's deadline passed mid-handshake), and wakes the slots waiting on openings.
struct Opening<'a>(&'a Lanes);

impl<'a> Opening<'a> {
    fn begin(lanes: &'a Lanes) -> Opening<'a> {
        lanes.opening.set(lanes.opening.get() + 1);
        Opening(lanes)
    }

    /// Ends the opening as failed: the slots that waited on it fail alike.
    fn failed(self, failure: &Failure) {
        let lanes = self.0;
        *lanes.last_failed.borrow_mut() = Some((lanes.ended.get() + 1, failure.clone()));
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        let lanes = self.0;
        lanes.opening.set(lanes.opening.get() - 1);
        lanes.ended.set(lanes.ended.get() + 1);
        lanes.open_ended.wake_all();
    }
}

/// A slot waiting for a lane being opened, counted for as long as it waits (also when its
/// deadline drops the wait).
struct Waiter<'a>(&'a Cell<usize>);

impl<'a> Waiter<'a> {
    fn new(waiting: &'a Cell<usize>) -> Waiter<'a> {
        waiting.set(waiting.get() + 1);
        Waiter(waiting)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// What [`Lanes::acquire`] got.
pub enum Acquired {
    Lane(LaneSeat),
    /// The server chose HTTP/1.1: this connection is to be used as such (boxed: a TLS stream
    /// is large, and this happens once per worker).
    Declined(Box<Stream>, RouteId),
}

/// A worker's HTTP/2 connections.
#[derive(Default)]
pub struct Lanes {
    lanes: RefCell<Vec<Rc<Lane>>>,
    /// Lanes being opened, and the slots waiting for them (woken each time an opening ends).
    opening: Cell<usize>,
    waiting: Cell<usize>,
    open_ended: Parked,
    /// Openings ended so far, and how the last one that failed did (its number among them,
    /// kind and words): slots that waited on it fail alike, at once, rather than each waiting
    /// out its own deadline behind a proxy that never answers.
    ended: Cell<u64>,
    last_failed: RefCell<Option<(u64, Failure)>>,
    /// The server declined `h2`: the worker speaks HTTP/1.1.
    declined: Cell<bool>,
    /// Requests a connection takes before the server ends it with GOAWAY (nginx's
    /// `keepalive_requests`, 1000 by default), learnt from the first GOAWAY: a lane is given no
    /// more than that, so few streams are refused.
    budget: Cell<Option<u64>>,
}

impl Lanes {
    pub fn declined(&self) -> bool {
        self.declined.get()
    }

    /// After `held` was refused: when after a GOAWAY, the server ends connections after about as
    /// many requests as that lane had answered.
    pub fn learn_from_refusal(&self, held: &LaneSeat) {
        let answered = held.lane.answered.get();
        if held.went_away.get() && answered > 0 {
            let budget = self.budget.get().map_or(answered, |b| b.min(answered));
            self.budget.set(Some(budget));
        }
    }

    /// A place on a lane with room, opening a lane when none has room and those being opened
    /// are spoken for.
    pub async fn acquire(&self, dialer: &Dialer) -> Result<Acquired, Failure> {
        loop {
            if let Some(held) = self.take_room() {
                return Ok(Acquired::Lane(held));
            }
            if self.waiting.get() < self.opening.get() * self.room_expected() {
                // A lane being opened will have room for us too, and its failure is ours.
                // Parked until an opening ends, not looking every millisecond.
                let ended_before = self.ended.get();
                let waiter = Waiter::new(&self.waiting);
                self.open_ended
                    .until(|| self.ended.get() != ended_before)
                    .await;
                drop(waiter);
                if let Some(held) = self.take_room() {
                    return Ok(Acquired::Lane(held));
                }
                if let Some((number, failure)) = &*self.last_failed.borrow()
                    && *number > ended_before
                {
                    return Err(failure.clone());
                }
                continue;
            }
            let opening = Opening::begin(self);
            let opened = self.open(dialer).await;
            match opened {
                Ok(Opened::Lane(lane)) => self.lanes.borrow_mut().push(lane),
                Ok(Opened::Declined(stream, route)) => {
                    return Ok(Acquired::Declined(stream, route));
                }
                Err(failure) => {
                    opening.failed(&failure);
                    return Err(failure);
                }
            }
            drop(opening);
        }
    }

    /// Streams a lane being opened is expected to take: what the server allowed the last lane.
    fn room_expected(&self) -> usize {
        self.lanes
            .borrow()
            .last()
            .map_or(STREAMS_PER_LANE, |lane| lane.room())
    }

    /// A place on a lane with room now, if any.
    pub fn take_room(&self) -> Option<LaneSeat> {
        let mut lanes = self.lanes.borrow_mut();
        lanes.retain(|lane| !lane.broken.get());
        let budget = self.budget.get().unwrap_or(u64::MAX);
        let lane = lanes
            .iter()
            .find(|lane| lane.in_flight.get() < lane.room() && lane.carried.get() < budget)?
            .clone();
        lane.in_flight.set(lane.in_flight.get() + 1);
        let carried = lane.carried.get();
        lane.carried.set(carried + 1);
        Some(LaneSeat {
            answered_before: lane.answered.get(),
            lane,
            reused: carried > 0,
            refused: Cell::new(false),
            went_away: Cell::new(false),
            ended: Cell::new(false),
        })
    }

    /// Opens a lane, unless the server declines h2.
    async fn open(&self, dialer: &Dialer) -> Result<Opened, Failure> {
        let (stream, h2, route) = dialer.dial_choosing().await?;
        if !h2 {
            self.declined.set(true);
            return Ok(Opened::Declined(Box::new(stream), route));
        }
        let io = StreamWrapper::new_with_buffer_size(stream, LANE_BUFFER, LANE_BUFFER);
        let (send, connection) = h2::client::Builder::new()
            .initial_max_send_streams(STREAMS_PER_LANE)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| h2_failure(&e, false))?;
        // The connection's frames are read and written by this task until it ends; then the
        // lane takes no more requests (those on it fail with the connection's error).
        let broken = Rc::new(Cell::new(false));
        let ended = broken.clone();
        monoio::spawn(async move {
            let _ = connection.await;
            ended.set(true);
        });
        Ok(Opened::Lane(Rc::new(Lane {
            send,
            in_flight: Cell::new(0),
            broken,
            carried: Cell::new(0),
            answered: Cell::new(0),
            route,
        })))
    }
}

/// The poll adapter's read and write buffers: a lane's frames for many streams go through
/// them, so larger than monoio-compat's 8 KiB default (fewer reads and writes per request).
const LANE_BUFFER: usize = 64 * 1024;

enum Opened {
    Lane(Rc<Lane>),
    Declined(Box<Stream>, RouteId),
}

/// Sends `request` on `held`'s lane and reads the answer into `answer`.
pub async fn exchange(
    held: &LaneSeat,
    request: http::Request<Vec<u8>>,
    wants: &Wants<'_>,
    answer: &mut Answer,
) -> Result<(), Failure> {
    let result = exchange_on_lane(held, request, wants, answer).await;
    held.ended.set(true);
    result
}

async fn exchange_on_lane(
    held: &LaneSeat,
    request: http::Request<Vec<u8>>,
    wants: &Wants<'_>,
    answer: &mut Answer,
) -> Result<(), Failure> {
    answer.start();
    let (parts, body) = request.into_parts();
    // A request without a body ends its stream with HEADERS: a server that answers first and
    // resets a half-open stream (nginx does) would otherwise throw the answer away.
    let end_of_stream = body.is_empty();
    let sent = async {
        let mut send = held.lane.send.clone().ready().await?;
        let (response, mut upload) =
            send.send_request(http::Request::from_parts(parts, ()), end_of_stream)?;
        if !end_of_stream {
            upload.send_data(Bytes::from(body), true)?;
        }
        response.await
    };
    let response = sent.await.map_err(|e| {
        // Refused (REFUSED_STREAM, or above a GOAWAY's last stream): the server did not
        // process it; after a GOAWAY the lane takes no more.
        let went_away = e.is_go_away();
        held.refused
            .set(went_away || e.reason() == Some(Reason::REFUSED_STREAM));
        held.went_away.set(went_away);
        if is_connection_error(&e) {
            held.lane.broken.set(true);
        }
        h2_failure(&e, false)
    })?;
    let (head, mut body) = response.into_parts();
    held.lane.answered.set(held.lane.answered.get() + 1);
    answer.status = head.status.as_u16();
    let Framing { length, encoded } = read_head(&head.headers, wants, answer);
    if wants.head_request {
        return Ok(());
    }
    // As for HTTP/1.1: no coding to undo on an answer that has no body.
    let bodiless = matches!(answer.status, 204 | 304) || length == Some(0);
    if !bodiless && encoded {
        let values = head.headers.get_all(http::header::CONTENT_ENCODING);
        let content = Codings::parse(values.iter().map(|v| v.as_bytes()));
        answer.expect_codings(content, Vec::new(), wants);
    }
    read_body(held, &mut body, length, wants, answer).await?;
    answer.finish_body(wants)
}

/// Reads the answer's body off its stream into `answer`: each chunk's room handed back to the
/// server at once, counted against the body memory.
async fn read_body(
    held: &LaneSeat,
    body: &mut h2::RecvStream,
    length: Option<u64>,
    wants: &Wants<'_>,
    answer: &mut Answer,
) -> Result<(), Failure> {
    while let Some(chunk) = body.data().await {
        let chunk = match chunk {
            Ok(chunk) => {
                // Taken off the stream: the server may send as much again.
                let _ = body.flow_control().release_capacity(chunk.len());
                chunk
            }
            // RFC 9113 §8.1: a server may end a stream with RST_STREAM(NO_ERROR) once its
            // response is complete (nginx does, when it answered without reading the request
            // body); the client must keep that response. The h2 layer reports the reset after
            // the last data instead of the end of the stream. (Only a stream reset: a GOAWAY
            // does not say the response was complete; nor does a short body.)
            Err(e)
                if e.is_reset()
                    && e.reason() == Some(Reason::NO_ERROR)
                    && length.is_none_or(|n| n == answer.wire_len) =>
            {
                break;
            }
            Err(e) => {
                if is_connection_error(&e) {
                    held.lane.broken.set(true);
                }
                return Err(h2_failure(&e, true));
            }
        };
        keep_body_bytes(&chunk, wants, answer)?;
        // Counted, not waited for: a stream that stopped reading would hold the connection's
        // flow-control window from its other streams (see `memory`).
        if let Some(memory) = wants.memory {
            let held = answer.held_bytes();
            memory.settle(&mut answer.hold, held);
        }
    }
    Ok(())
}

/// What a response head says of its body.
struct Framing {
    /// Its `Content-Length` (the first, as a number).
    length: Option<u64>,
    /// A `Content-Encoding` was named.
    encoded: bool,
}

/// Captured headers, `Retry-After`, the rate-limit headers and `Location` from a response head,
/// and how its body comes. One pass over the lines (the first of a name counts, as `get` would
/// take): a hashed lookup per name read was the larger part of this (callgrind).
fn read_head(headers: &http::HeaderMap, wants: &Wants<'_>, answer: &mut Answer) -> Framing {
    use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, LOCATION, RETRY_AFTER};
    answer.captured.clear();
    for name in wants.capture {
        let mut values = headers.get_all(name.as_str()).iter();
        answer.captured.push(values.next().map(|first| {
            let mut joined = first.as_bytes().to_vec();
            for more in values {
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(more.as_bytes());
            }
            joined
        }));
    }
    answer.retry_after = None;
    answer.rate_limit = Reading::default();
    answer.location = None;
    let mut framing = Framing {
        length: None,
        encoded: false,
    };
    let (mut retry_after_seen, mut length_seen) = (false, false);
    for (name, value) in headers {
        if name == CONTENT_LENGTH {
            if !std::mem::replace(&mut length_seen, true) {
                framing.length = value.to_str().ok().and_then(|v| v.trim().parse().ok());
            }
        } else if name == CONTENT_ENCODING {
            framing.encoded = true;
        } else if name == RETRY_AFTER {
            if !std::mem::replace(&mut retry_after_seen, true) {
                answer.retry_after = value
                    .to_str()
                    .ok()
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
            }
        } else if name == LOCATION {
            if answer.location.is_none() {
                answer.location = Some(value.as_bytes().to_vec());
            }
        } else if let Some(field) = quota::Field::of(name.as_str().as_bytes()) {
            answer.rate_limit.take(field, value.as_bytes());
        }
    }
    framing
}

/// The connection, not only this stream, is gone.
fn is_connection_error(error: &h2::Error) -> bool {
    error.is_io() || error.is_go_away()
}

/// A stream reset or GOAWAY is `reset` (retried: the server may take it next time); a broken
/// connection is what its I/O error says; anything else is `protocol`.
fn h2_failure(error: &h2::Error, answered: bool) -> Failure {
    if let Some(io) = error.get_io() {
        return Failure::from_io(io, answered);
    }
    let kind = if error.is_reset() || error.is_go_away() {
        ErrorKind::Reset
    } else {
        ErrorKind::Protocol
    };
    Failure {
        kind,
        answered,
        detail: error.to_string(),
    }
}

/// The request as an `http::Request` for HTTP/2, with its body: the host goes as
/// `:authority` (RFC 9113 §8.3.1) and connection-specific headers are dropped (§8.2.2), as
/// curl drops them.
pub fn build_request(parts: &RequestParts<'_>) -> Result<http::Request<Vec<u8>>, KeyBreaksHeader> {
    let origin = parts.origin();
    let scheme = match origin.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let mut uri = format!("{scheme}://{}", origin.authority).into_bytes();
    parts.write_target(&mut uri);
    let mut body = Vec::new();
    parts.write_body(&mut body);
    let with_length = !body.is_empty() || parts.expects_body();
    // Filled in place rather than through `http::request::Builder`, which moves its whole
    // request (headers map included) at every step: a tenth of the memmove of an HTTP/2 run.
    let mut request = http::Request::new(Vec::new());
    *request.method_mut() = parts.method().clone();
    *request.uri_mut() = http::Uri::try_from(uri).map_err(|_| KeyBreaksHeader)?;
    *request.version_mut() = http::Version::HTTP_2;
    let headers = request.headers_mut();
    for (name, value) in parts.headers() {
        if name == http::header::HOST {
            continue;
        }
        let mut filled = Vec::new();
        parts.write_value(&value, &mut filled);
        if !connection_specific(name, &filled) {
            let value = http::HeaderValue::try_from(filled).map_err(|_| KeyBreaksHeader)?;
            headers.append(name.clone(), value);
        }
    }
    // As over HTTP/1.1: servers read the length from the header (RFC 9113 §8.1.1 allows it).
    if with_length {
        headers.append(http::header::CONTENT_LENGTH, body.len().into());
    }
    *request.body_mut() = body;
    Ok(request)
}
