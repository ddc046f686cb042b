//! Connections and how they are opened: where to (`resolve`, over the worker's cache of names
//! `dns` and its resolver thread `lookup`), through which proxy (`proxy`,
//! and each proxy's health in `proxy_board`), at what pace (`pace`), and the byte stream a
//! dial hands back (`stream`, plain TCP or TLS). `connect`'s [`Dialer`](connect::Dialer)
//! ties them together; no protocol is spoken here beyond a proxy's own handshake.
//!
//! For origins other than the run's own, `dialers` keeps the recently used dialers and `pool`
//! the idle connections, each bounded.

pub(super) mod connect;
pub(super) mod dialers;
mod dns;
mod lookup;
pub(super) mod pace;
pub(super) mod pool;
pub(super) mod proxy;
pub(super) mod proxy_board;
pub(super) mod resolve;
#[cfg(test)]
pub(super) mod scripted;
pub(super) mod stream;
