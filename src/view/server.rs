//! `--dashboard ADDR`: the live page on `http://ADDR/`, its state on `/state` (JSON, the latest
//! the supervisor made, at most a second old) and the Prometheus text on `/metrics`. Read-only:
//! it answers GETs and nothing changes the run. Each connection has a thread of its own, so a
//! stuck browser holds up only itself, and the run never waits for a viewer. Only requests for
//! one of this machine's own names are answered (no DNS rebinding).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use crate::metrics::{self, Metrics};
use crate::status_server::{self, Answer};
use crate::view::state::StateDocument;

/// What the page is served from: the latest state document (as JSON text: a few hundred KB
/// for a long run, where the parsed value would take several MB), and the metrics.
pub struct Live {
    state: Mutex<Arc<String>>,
    metrics: Arc<Metrics>,
}

impl Live {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Live> {
        Arc::new(Live {
            state: Mutex::new(Arc::new("null".to_string())),
            metrics,
        })
    }

    /// The state to serve from now on.
    pub fn set(&self, state: &StateDocument) {
        let text = Arc::new(state.to_text());
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }

    fn state(&self) -> Arc<String> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Serves the page for the rest of the process (a thread per connection, as [`status_server`]
/// serves); `refresh` runs before each `/metrics` answer (the workers' figures).
pub fn serve(
    listener: TcpListener,
    live: Arc<Live>,
    refresh: impl Fn(&Metrics) + Send + Sync + 'static,
) -> io::Result<SocketAddr> {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_ascii_lowercase())
        .unwrap_or_default();
    status_server::serve(listener, "dashboard", move |request| {
        if !is_own_host(request.host.as_deref(), &hostname) {
            // A name that is not this machine's: a page elsewhere that had its name rebound to
            // this address (DNS rebinding) must not read the run.
            return Answer::new("403 Forbidden", "text/plain", "unknown host\n");
        }
        answer(&request.path, &live, &refresh)
    })
}

fn answer(path: &str, live: &Live, refresh: &dyn Fn(&Metrics)) -> Answer {
    match path {
        "/" | "/index.html" => Answer::new(
            "200 OK",
            "text/html; charset=utf-8",
            super::page(&live.state(), true),
        ),
        "/state" => Answer::new("200 OK", "application/json", live.state().as_str()),
        "/metrics" => {
            refresh(&live.metrics);
            Answer::new("200 OK", metrics::CONTENT_TYPE, live.metrics.encode())
        }
        _ => Answer::new("404 Not Found", "text/plain", "try /\n"),
    }
}

/// Whether `host` (a `Host` header) names this machine as no other site can: an address
/// literal, `localhost` (or a name under it, which resolves to loopback, RFC 6761), or the
/// machine's own host name.
fn is_own_host(host: Option<&str>, hostname: &str) -> bool {
    let Some(host) = host else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6.split_once(']').is_some_and(|(addr, port)| {
                addr.parse::<Ipv6Addr>().is_ok() && (port.is_empty() || port.starts_with(':'))
            });
        }
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || (!hostname.is_empty() && name == hostname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machines_names_are_its_own() {
        for host in [
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "localhost:8080",
            "LOCALHOST.",
            "app.localhost:1",
            "node17:8080",
        ] {
            assert!(is_own_host(Some(host), "node17"), "{host}");
        }
        for host in [
            "evil.example:8080",
            "evil.example",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[::1",
            "",
        ] {
            assert!(!is_own_host(Some(host), "node17"), "{host}");
        }
        assert!(!is_own_host(None, "node17"));
        assert!(!is_own_host(Some("anything"), ""));
    }
}
