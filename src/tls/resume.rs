//! TLS sessions resumed, and counted. rustls' own store keeps at most 8 TLS 1.3 tickets per
//! server, each used once: a worker that opens 256 connections at once empties it and most of
//! them pay for a full handshake (38–50% resumed, measured on a 50 ms path). [`Tickets`] keeps
//! as many tickets per server as a worker has connections in flight, for all of its connections
//! and redirects (one store per client configuration, which a worker thread shares), TLS 1.2
//! sessions beside them. 0-RTT stays off: a scraper's requests are not all safe to replay.
//!
//! A handshake is counted as full when the server's certificate was verified (a resumed one
//! sends none), and every handshake that completes is counted by the dialer: the difference is
//! what was resumed. Both are this process's: a worker reads them into its stats.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::NamedGroup;
use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;

/// Servers remembered at once: with `{id}` in the host every key is a server of its own; past
/// this the store starts again rather than grow without bound.
const MAX_SERVERS: usize = 4096;

/// Handshakes completed, and of those, full ones (certificate verified), in this process.
static COMPLETED: AtomicU64 = AtomicU64::new(0);
static FULL: AtomicU64 = AtomicU64::new(0);

/// A TLS handshake completed (called by the dialer).
pub fn handshake_completed() {
    COMPLETED.fetch_add(1, Ordering::Relaxed);
}

/// A server's certificate passed verification: a full handshake.
pub(super) fn full_handshake() {
    FULL.fetch_add(1, Ordering::Relaxed);
}

/// This process's handshakes so far: (resumed, full).
pub fn handshakes() -> (u64, u64) {
    let full = FULL.load(Ordering::Relaxed);
    let completed = COMPLETED.load(Ordering::Relaxed);
    (completed.saturating_sub(full), full)
}

#[derive(Default)]
struct Server {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    /// Single-use TLS 1.3 tickets, oldest first.
    tls13: VecDeque<Tls13ClientSessionValue>,
}

/// A session store with room for `per_server` TLS 1.3 tickets per server.
pub struct Tickets {
    per_server: usize,
    servers: Mutex<HashMap<ServerName<'static>, Server>>,
}

impl Tickets {
    pub fn new(per_server: usize) -> Tickets {
        Tickets {
            per_server: per_server.max(1),
            servers: Mutex::default(),
        }
    }

    /// Runs `edit` on `name`'s entry, made if it is new.
    fn edit(&self, name: ServerName<'static>, edit: impl FnOnce(&mut Server)) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        if servers.len() >= MAX_SERVERS && !servers.contains_key(&name) {
            servers.clear();
        }
        edit(servers.entry(name).or_default());
    }

    fn read<T>(&self, name: &ServerName<'_>, read: impl FnOnce(&mut Server) -> T) -> Option<T> {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        // The map's keys are owned: a borrowed name is looked up as an owned copy.
        servers.get_mut(&name.to_owned()).map(read)
    }
}

impl fmt::Debug for Tickets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tickets")
            .field("per_server", &self.per_server)
            .finish_non_exhaustive()
    }
}

impl ClientSessionStore for Tickets {
    fn set_kx_hint(&self, name: ServerName<'static>, group: NamedGroup) {
        self.edit(name, |server| server.kx_hint = Some(group));
    }

    fn kx_hint(&self, name: &ServerName<'_>) -> Option<NamedGroup> {
        self.read(name, |server| server.kx_hint).flatten()
    }

    fn set_tls12_session(&self, name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.edit(name, |server| server.tls12 = Some(value));
    }

    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.read(name, |server| server.tls12.clone()).flatten()
    }

    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.read(name, |server| server.tls12 = None);
    }

    fn insert_tls13_ticket(&self, name: ServerName<'static>, value: Tls13ClientSessionValue) {
        let per_server = self.per_server;
        self.edit(name, |server| {
            if server.tls13.len() >= per_server {
                server.tls13.pop_front();
            }
            server.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(&self, name: &ServerName<'_>) -> Option<Tls13ClientSessionValue> {
        // The newest first: the oldest are the nearest to their lifetime's end.
        self.read(name, |server| server.tls13.pop_back()).flatten()
    }
}
