//! Connections many requests share at once, for the protocol chosen once (`net::Protocol`):
//! HTTP/2's lanes today. The slot sees one shape — acquire a seat (or learn the server declined
//! and take the plain connection it gave), exchange on it, learn from a refusal — so that
//! another multiplexed protocol is one more variant here and a room of its own beside `h2`.

use crate::net::Protocol;
use crate::request::{Hop, RequestTemplate};
use crate::template::Values;
use crate::worker::conn::connect::{Dialer, RouteId};
use crate::worker::conn::stream::Stream;
use crate::worker::failure::Failure;

use super::answer::{Answer, Wants};
use super::h2;

/// The shared connections of a protocol that multiplexes; none for HTTP/1.1 (each slot keeps
/// its own connection).
pub enum Shared {
    H2(h2::Lanes),
}

/// A request's place on a shared connection; gives it back when dropped.
pub enum Seat {
    H2(h2::LaneSeat),
}

/// What [`Shared::acquire`] got.
pub enum Acquired {
    Seat(Seat),
    /// The server chose HTTP/1.1: this connection is to be used as such (boxed: a TLS stream
    /// is large, and this happens once per worker).
    Declined(Box<Stream>, RouteId),
}

impl Shared {
    /// The shared connections `protocol` speaks over, if it multiplexes.
    pub fn for_protocol(protocol: Protocol) -> Option<Shared> {
        match protocol {
            Protocol::Http1 => None,
            Protocol::Http2 => Some(Shared::H2(h2::Lanes::default())),
        }
    }

    /// The server declined the protocol: the worker speaks HTTP/1.1.
    pub fn declined(&self) -> bool {
        match self {
            Shared::H2(lanes) => lanes.declined(),
        }
    }

    /// A seat on a connection with room, if one has room now (no connection is opened).
    pub fn take_seat(&self) -> Option<Seat> {
        match self {
            Shared::H2(lanes) => lanes.take_room().map(Seat::H2),
        }
    }

    /// A seat on a connection with room, opening one when none has.
    pub async fn acquire(&self, dialer: &Dialer) -> Result<Acquired, Failure> {
        match self {
            Shared::H2(lanes) => Ok(match lanes.acquire(dialer).await? {
                h2::Acquired::Lane(seat) => Acquired::Seat(Seat::H2(seat)),
                h2::Acquired::Declined(stream, route) => Acquired::Declined(stream, route),
            }),
        }
    }

    /// After `seat` was refused: what the refusal says of the server's limits.
    pub fn learn_from_refusal(&self, seat: &Seat) {
        match (self, seat) {
            (Shared::H2(lanes), Seat::H2(seat)) => lanes.learn_from_refusal(seat),
        }
    }
}

impl Seat {
    /// The connection had carried requests before this one (a failure before any answer then
    /// says it had gone stale).
    pub fn reused(&self) -> bool {
        match self {
            Seat::H2(seat) => seat.reused,
        }
    }

    /// The route (direct, or which proxy) of the seat's connection.
    pub fn route(&self) -> RouteId {
        match self {
            Seat::H2(seat) => seat.lane.route,
        }
    }

    /// The server refused the request without processing it: safe to send again.
    pub fn refused(&self) -> bool {
        match self {
            Seat::H2(seat) => seat.refused.get(),
        }
    }

    /// Sends the request for `values` (or `hop`) on the seat and reads the answer.
    pub async fn exchange(
        &self,
        template: &RequestTemplate,
        values: &Values,
        hop: Option<&Hop>,
        wants: &Wants<'_>,
        answer: &mut Answer,
    ) -> Result<(), Failure> {
        match self {
            Seat::H2(seat) => {
                let request = template
                    .parts(values, hop)
                    .and_then(|parts| h2::build_request(&parts))
                    .map_err(|_| Failure::key_breaks_header())?;
                h2::exchange(seat, request, wants, answer).await
            }
        }
    }
}
