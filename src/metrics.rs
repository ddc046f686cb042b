//! `--metrics ADDR`: live figures in Prometheus' text format on `http://ADDR/metrics`, served by
//! the supervisor for as long as the run lasts. Counts are taken as the writer writes rows (so
//! they match the CSV and the summary, in the words of docs/guide.md's "Items, rows, requests,
//! retries"); requests in flight and time throttled come from the workers' stats.
//!
//! Metrics: `ringscrape_rows_total{outcome}` (rows by status class `2xx`…`5xx` or error kind),
//! `ringscrape_items_done_total`, `ringscrape_requests_total` (every attempt),
//! `ringscrape_retries_total`, `ringscrape_inflight`, `ringscrape_throttled_seconds`,
//! `ringscrape_latency_seconds` (histogram of answered rows), `ringscrape_shard_rows_total{shard}`,
//! `ringscrape_workers{driver}` (workers by event loop: `io_uring`, or `epoll` where a container
//! refuses io_uring — what a cluster's operator looks for when a run is slower than expected).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::model::Record;
use crate::output::writer::{RowObserver, WriterReport};
use crate::runtime::Driver;
use crate::status_server::{self, Answer};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabel {
    shard: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriverLabel {
    driver: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyLabel {
    /// The proxy as shown: credentials left out.
    proxy: String,
}

/// The run's live figures.
pub struct Metrics {
    registry: Registry,
    rows: Family<OutcomeLabel, Counter>,
    items_done: Counter,
    requests: Counter,
    retries: Counter,
    inflight: Gauge,
    throttled: Gauge<f64, AtomicU64>,
    latency: Histogram,
    shard_rows: Family<ShardLabel, Counter>,
    workers: Family<DriverLabel, Gauge>,
    proxy_rows: Family<ProxyLabel, Gauge>,
    proxy_failures: Family<ProxyLabel, Gauge>,
    proxy_benched: Family<ProxyLabel, Gauge<f64, AtomicU64>>,
}

/// The counters count every row the writer writes, a batch at a time.
impl RowObserver for Arc<Metrics> {
    fn rows(&mut self, shard: usize, records: &[Record], _written: &WriterReport) {
        for record in records {
            self.record(shard, record);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ringscrape");
        let rows = Family::<OutcomeLabel, Counter>::default();
        let items_done = Counter::default();
        let requests = Counter::default();
        let retries = Counter::default();
        let inflight = Gauge::default();
        let throttled = Gauge::<f64, AtomicU64>::default();
        // 100 µs to ~100 s.
        let latency = Histogram::new(exponential_buckets(0.0001, 2.0, 21));
        let shard_rows = Family::<ShardLabel, Counter>::default();
        registry.register(
            "rows",
            "Rows written, by outcome: status class or error kind",
            rows.clone(),
        );
        registry.register(
            "items_done",
            "Items with all their rows written",
            items_done.clone(),
        );
        registry.register(
            "requests",
            "Requests sent: every attempt, retries included",
            requests.clone(),
        );
        registry.register(
            "retries",
            "Requests beyond each row's first",
            retries.clone(),
        );
        registry.register("inflight", "Requests in flight", inflight.clone());
        registry.register(
            "throttled_seconds",
            "Time requests waited at the rate gate, summed over shards",
            throttled.clone(),
        );
        registry.register(
            "latency_seconds",
            "Latency of answered rows",
            latency.clone(),
        );
        registry.register("shard_rows", "Rows written per shard", shard_rows.clone());
        let workers = Family::<DriverLabel, Gauge>::default();
        registry.register(
            "workers",
            "Workers by event loop: io_uring, or epoll where io_uring is refused",
            workers.clone(),
        );
        let proxy_rows = Family::<ProxyLabel, Gauge>::default();
        let proxy_failures = Family::<ProxyLabel, Gauge>::default();
        let proxy_benched = Family::<ProxyLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "proxy_rows",
            "Rows answered through each proxy",
            proxy_rows.clone(),
        );
        registry.register(
            "proxy_failures",
            "Times each proxy failed",
            proxy_failures.clone(),
        );
        registry.register(
            "proxy_benched_seconds",
            "Time each proxy sat out after failing",
            proxy_benched.clone(),
        );
        Self {
            registry,
            rows,
            items_done,
            requests,
            retries,
            inflight,
            throttled,
            latency,
            shard_rows,
            workers,
            proxy_rows,
            proxy_failures,
            proxy_benched,
        }
    }

    /// Counts one row as it is written.
    pub fn record(&self, shard: usize, record: &Record) {
        let outcome = match (record.error, record.status) {
            (Some(kind), _) => kind.as_str(),
            (None, Some(status)) => match status / 100 {
                1 => "1xx",
                2 => "2xx",
                3 => "3xx",
                4 => "4xx",
                _ => "5xx",
            },
            (None, None) => "none",
        };
        self.rows.get_or_create(&OutcomeLabel { outcome }).inc();
        if !record.more {
            self.items_done.inc();
        }
        self.requests.inc_by(u64::from(record.attempts));
        self.retries
            .inc_by(u64::from(record.attempts.saturating_sub(1)));
        if record.status.is_some() && record.error.is_none() {
            self.latency.observe(f64::from(record.latency_us) / 1e6);
        }
        self.shard_rows
            .get_or_create(&ShardLabel {
                shard: shard.to_string(),
            })
            .inc();
    }

    /// The workers' latest figures.
    pub fn set_workers(&self, inflight: u64, throttled_us: u64) {
        self.inflight
            .set(i64::try_from(inflight).unwrap_or(i64::MAX));
        self.throttled.set(throttled_us as f64 / 1e6);
    }

    /// The event loop of each worker that has said which (`None`: not yet).
    pub fn set_drivers(&self, drivers: impl IntoIterator<Item = Option<Driver>>) {
        let mut counts = [(Driver::IoUring, 0), (Driver::Epoll, 0)];
        for driver in drivers.into_iter().flatten() {
            if let Some((_, n)) = counts.iter_mut().find(|(d, _)| *d == driver) {
                *n += 1;
            }
        }
        // Both, zero included: a shard started again on another loop leaves no stale count.
        for (driver, n) in counts {
            let label = DriverLabel {
                driver: driver.name(),
            };
            self.workers.get_or_create(&label).set(n);
        }
    }

    /// What each proxy carried so far, over all workers.
    pub fn set_proxies<'a>(
        &self,
        proxies: impl IntoIterator<Item = (&'a String, &'a crate::stats::ProxyTally)>,
    ) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (proxy, t) in proxies {
            let label = ProxyLabel {
                proxy: proxy.clone(),
            };
            self.proxy_rows.get_or_create(&label).set(gauge(t.rows));
            self.proxy_failures
                .get_or_create(&label)
                .set(gauge(t.failures));
            self.proxy_benched
                .get_or_create(&label)
                .set(t.bench_ms as f64 / 1e3);
        }
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Binds `addr`: first thing in a run, so a bad or busy address fails before any file or
/// request.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Serves `/metrics` on `listener` for the rest of the process (a thread per scrape, as
/// [`status_server`] serves); `refresh` runs before each scrape.
pub fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    refresh: impl Fn(&Metrics) + Send + Sync + 'static,
) -> io::Result<SocketAddr> {
    status_server::serve(listener, "metrics", move |request| {
        if request.path == "/metrics" {
            refresh(&metrics);
            Answer::new("200 OK", CONTENT_TYPE, metrics.encode())
        } else {
            Answer::new("404 Not Found", "text/plain", "try /metrics\n")
        }
    })
}

/// The content type of the metrics text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ErrorKind;

    #[test]
    fn rows_are_counted_by_outcome_and_shard_and_requests_are_every_attempt() {
        let metrics = Metrics::new();
        let row = |status, error, attempts| Record {
            status,
            error,
            attempts,
            latency_us: 1500,
            ..Record::default()
        };
        metrics.record(0, &row(Some(200), None, 1));
        metrics.record(1, &row(Some(503), None, 3));
        metrics.record(1, &row(None, Some(ErrorKind::Timeout), 3));
        metrics.set_workers(7, 1_500_000);
        metrics.set_drivers([Some(Driver::Epoll), None, Some(Driver::Epoll)]);
        let tally = crate::stats::ProxyTally {
            connections: 3,
            rows: 40,
            failures: 2,
            bench_ms: 1500,
        };
        metrics.set_proxies([(&"socks5://***@127.0.0.1:1080".to_string(), &tally)]);
        let text = metrics.encode();
        for line in [
            "ringscrape_proxy_rows{proxy=\"socks5://***@127.0.0.1:1080\"} 40",
            "ringscrape_proxy_failures{proxy=\"socks5://***@127.0.0.1:1080\"} 2",
            "ringscrape_proxy_benched_seconds{proxy=\"socks5://***@127.0.0.1:1080\"} 1.5",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        for line in [
            "ringscrape_rows_total{outcome=\"2xx\"} 1",
            "ringscrape_rows_total{outcome=\"timeout\"} 1",
            // Requests are every attempt (1 + 3 + 3), as in the summary.
            "ringscrape_requests_total 7",
            "ringscrape_retries_total 4",
            "ringscrape_items_done_total 3",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        assert!(text.contains("ringscrape_inflight 7"), "{text}");
        // A worker yet to say is not counted.
        assert!(
            text.contains("ringscrape_workers{driver=\"epoll\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ringscrape_workers{driver=\"io_uring\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("ringscrape_shard_rows_total{shard=\"1\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("ringscrape_latency_seconds_count 2"),
            "{text}"
        );
    }
}
