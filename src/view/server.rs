//! `--dashboard ADDR`: the live page on `http://ADDR/`, its state on `/state` (JSON, the latest
//! the supervisor made, at most a second old) and the Prometheus text on `/metrics`. Read-only:
//! it answers GETs and nothing changes the run. Each connection has a thread of its own, so a
//! stuck browser holds up only itself, and the run never waits for a viewer.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::metrics::{self, Metrics};

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
    pub fn set(&self, state: &serde_json::Value) {
        let text = Arc::new(state.to_string());
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }

    fn state(&self) -> Arc<String> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Serves the page from a thread for the rest of the process; `refresh` runs before each
/// `/metrics` answer (the workers' figures).
pub fn serve(
    listener: TcpListener,
    live: Arc<Live>,
    refresh: impl Fn(&Metrics) + Send + Sync + 'static,
) -> io::Result<SocketAddr> {
    let bound = listener.local_addr()?;
    let refresh = Arc::new(refresh);
    std::thread::Builder::new()
        .name("dashboard".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let (live, refresh) = (live.clone(), refresh.clone());
                let _ = std::thread::Builder::new()
                    .name("dashboard-page".into())
                    .spawn(move || answer(stream, &live, refresh.as_ref()));
            }
        })?;
    Ok(bound)
}

fn answer(stream: TcpStream, live: &Live, refresh: &dyn Fn(&Metrics)) -> io::Result<()> {
    let path = metrics::request_path(&stream)?;
    match path.as_str() {
        "/" | "/index.html" => {
            let page = super::page(&live.state(), true);
            metrics::respond(stream, "200 OK", "text/html; charset=utf-8", &page)
        }
        "/state" => metrics::respond(stream, "200 OK", "application/json", &live.state()),
        "/metrics" => {
            refresh(&live.metrics);
            metrics::respond(
                stream,
                "200 OK",
                metrics::CONTENT_TYPE,
                &live.metrics.encode(),
            )
        }
        _ => metrics::respond(stream, "404 Not Found", "text/plain", "try /\n"),
    }
}
