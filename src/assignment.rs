//! A worker's assignment and how it travels: the [`WorkerSpec`] as TOML in a spec frame on the
//! worker's stdin, then the ids to skip (when resuming) in skip frames, then (with
//! `--auth-command`) the first credentials — never on argv, which any user can read in /proc,
//! and headers may hold secrets. With credentials, stdin stays open for the next ones.

use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{IdRange, IdSet};
use crate::job::Keys;
use crate::model::{Continuation, RequestLimits, RetryPolicy, Schema};
use crate::net::{NetSpec, Protocol};
use crate::request::RequestSpec;
use crate::tls::Trust;
use crate::verbosity::Verbosity;
use crate::wire::{self, Frame, FrameReader};

/// What the supervisor hands a worker: TOML in a spec frame on the worker's stdin, followed by
/// the skip set (when resuming) in skip frames. Never on argv: headers may hold secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub shard: usize,
    /// What every worker of the run gets alike.
    pub fetch: Fetch,
    /// This worker's share of `--rate` (requests per second); `None`: adaptive on 429.
    pub rate: Option<f64>,
    /// This worker's share of a quota the answers' rate-limit headers say (1/shards: every
    /// worker sees the same quota); `None`: `--no-rate-limit-headers`.
    #[serde(default)]
    pub quota_share: Option<f64>,
    /// Item indexes of this shard.
    pub ids: IdRange,
    /// Where the keys of those items come from.
    pub keys: Keys,
    /// `--next` when resuming: items whose chain of pages goes on from a page already written.
    #[serde(default)]
    pub continuations: Vec<Continuation>,
    /// The table to note each slot's item in (see [`crate::inflight`]): a `/proc` path.
    #[serde(default)]
    pub in_flight_table: Option<std::path::PathBuf>,
    /// When the host varies: the run's shards, among which items are routed by host. `ids` is
    /// then every shard's range and this worker takes the items whose host hashes to `shard`
    /// (see `worker::schedule::route`), so that all of a host is one worker's.
    #[serde(default)]
    pub host_shards: Option<usize>,
}

/// What every worker of a run is told alike: how to build, send, keep and retry its requests.
/// Part of the run's config as it is, so a new setting of this kind is one field here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fetch {
    pub request: RequestSpec,
    pub trust: Trust,
    pub schema: Schema,
    pub follow_redirects: u32,
    /// What requests to the run's origin are sent in (`--http2`), chosen once.
    pub protocol: Protocol,
    /// In-flight requests per worker; with `auto_concurrency`, the most it may reach.
    pub concurrency: usize,
    /// `--concurrency auto`: find the limit from the answers' latency.
    pub auto_concurrency: bool,
    /// After a stop signal, time in-flight requests get.
    pub grace: Duration,
    pub limits: RequestLimits,
    /// `--raw-body`: keep bodies as they came (no `Accept-Encoding` of ours, nothing decoded).
    pub raw_body: bool,
    /// `--local-addr`, `--resolve`, `--connect-to`.
    pub net: NetSpec,
    pub retry: RetryPolicy,
    /// `-q` / `-v`, for what the worker says on stderr.
    pub verbosity: Verbosity,
    /// `--auth-command`: credentials come on stdin after the assignment, and again when
    /// refreshed.
    #[serde(default)]
    pub auth: bool,
    /// `--robots`: each host's robots.txt is obeyed.
    #[serde(default)]
    pub robots: Option<RobotsPolicy>,
    /// `--host-concurrency` and `--host-rate` when the host varies (with one host they are
    /// folded into `concurrency` and the rate by the config).
    #[serde(default)]
    pub hosts: HostLimits,
}

/// Limits per host, kept by the worker each host's items are routed to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HostLimits {
    /// Requests in flight per host (`--host-concurrency`).
    pub concurrency: Option<usize>,
    /// Requests started per second per host, evenly spaced (`--host-rate`).
    pub rate: Option<f64>,
}

impl HostLimits {
    /// The least time between two starts of a host under `--host-rate` (see [`spacing_of`]).
    pub fn spacing(&self) -> Option<Duration> {
        self.rate.map(spacing_of)
    }
}

/// The least added to `--host-rate`'s spacing: a server's log stamps starts to the millisecond
/// (nginx's `$msec` minus `$request_time`).
pub const SPACING_MARGIN: Duration = Duration::from_millis(2);

/// `--host-rate R`'s spacing between a host's starts: 1/R and 5% more (at least
/// [`SPACING_MARGIN`]). A request the server reads late (its loop busy, ours) followed by one on
/// time would otherwise put R + 1 starts into one of its seconds: measured against nginx with
/// 2,000 hosts at 5/s, gaps of 162 ms among the 202 ms ones made 6 in a second; 5% of 1/R lets
/// the R gaps of a second absorb that much.
pub fn spacing_of(rate: f64) -> Duration {
    let gap = Duration::from_secs_f64(1.0 / rate);
    gap + (gap / 20).max(SPACING_MARGIN)
}

/// `--robots`: how each worker obeys the hosts' robots.txt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RobotsPolicy {
    /// Workers that may each send to any host: a `Crawl-delay` spaces one worker's requests
    /// to a host by the delay times this, so that the host sees the delay between the run's.
    pub workers: u32,
}

/// Largest skip frame: a skip set is sent in pieces so that no frame nears the wire's limit.
const SKIP_FRAME_BYTES: usize = 4 << 20;

/// The frames that hand `spec` (and the ids to skip) to a worker, as written to its stdin.
pub fn encode_assignment(spec: &WorkerSpec, skip: Option<&IdSet>) -> Vec<u8> {
    let text = toml::to_string(spec).expect("a WorkerSpec always serialises");
    let mut out = Vec::new();
    wire::encode_spec(text.as_bytes(), &mut out);
    if let Some(skip) = skip {
        for piece in skip.to_bytes().chunks(SKIP_FRAME_BYTES) {
            wire::encode_skip(piece, &mut out);
        }
    }
    out
}

/// An assignment that does not read.
#[derive(Debug, thiserror::Error)]
#[error("worker spec on stdin: {0}")]
pub struct SpecError(String);

/// A worker's assignment as read.
#[derive(Debug, PartialEq)]
pub struct Assignment {
    pub spec: WorkerSpec,
    /// Items that already have a row (resuming).
    pub skip: Option<IdSet>,
    /// The first credentials and their generation (`--auth-command`).
    pub credentials: Option<(u64, String)>,
}

/// Reads what [`encode_assignment`] wrote: to the end of `reader`, or to the first credentials
/// frame (the reader then goes on with the next ones).
pub fn read_assignment(reader: &mut FrameReader<impl Read>) -> Result<Assignment, SpecError> {
    let bad = SpecError;
    let mut spec = None;
    let mut skip: Option<Vec<u8>> = None;
    let mut credentials = None;
    while let Some(frame) = reader.next_frame().map_err(|e| bad(e.to_string()))? {
        match frame {
            Frame::Spec(bytes) => {
                let text = String::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
                spec = Some(toml::from_str::<WorkerSpec>(&text).map_err(|e| bad(e.to_string()))?);
            }
            Frame::Skip(bytes) => skip.get_or_insert_with(Vec::new).extend_from_slice(&bytes),
            Frame::Credentials { generation, lines } => {
                credentials = Some((generation, lines));
                break;
            }
            _ => return Err(bad("unexpected frame".into())),
        }
    }
    let spec = spec.ok_or_else(|| bad("no spec frame".into()))?;
    let skip = match skip {
        Some(bytes) => Some(
            IdSet::from_bytes(spec.ids, &bytes)
                .ok_or_else(|| bad("skip set that does not decode for this range".into()))?,
        ),
        None => None,
    };
    Ok(Assignment {
        spec,
        skip,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BodyColumn;

    /// An assignment with every part set.
    fn spec() -> WorkerSpec {
        WorkerSpec {
            shard: 3,
            fetch: Fetch {
                request: RequestSpec {
                    headers: vec!["Authorization: Bearer secret".into()],
                    body: Some(b"\x00binary{id}".to_vec()),
                    accept_encoding: Some(crate::request::ACCEPT_ENCODING.into()),
                    key_columns: vec!["date".into()],
                    ..RequestSpec::of_url("http://h/{id}")
                },
                trust: Trust::default(),
                schema: Schema {
                    items: crate::model::Items::Lines,
                    keys: Vec::new(),
                    pages: Some(crate::model::Pages {
                        next: "link".into(),
                        param: None,
                        max_pages: Some(20),
                    }),
                    capture_headers: vec!["etag".into()],
                    extract: vec![crate::extract::ExtractSpec {
                        name: "n".into(),
                        expr: "jq:.items | length".into(),
                    }],
                    body: BodyColumn::Files("/tmp/bodies".into()),
                },
                follow_redirects: 3,
                protocol: Protocol::Http2,
                concurrency: 64,
                auto_concurrency: true,
                raw_body: false,
                net: NetSpec::parse(
                    &["127.0.0.0/30".into()],
                    &["a.test:*:127.0.0.1".into()],
                    &["b.test:80:a.test:8080".into()],
                )
                .expect("valid"),
                grace: Duration::from_millis(2500),
                limits: RequestLimits {
                    timeout: Duration::from_secs(30),
                    connect_timeout: Duration::from_millis(1500),
                    max_body_bytes: 1 << 24,
                    body_memory_bytes: 1 << 27,
                },
                retry: RetryPolicy {
                    retries: 2,
                    base: Duration::from_millis(100),
                    cap: Duration::from_secs(10),
                    max_retry_after: Duration::from_secs(60),
                },
                verbosity: Verbosity::Verbose,
                auth: true,
                robots: Some(RobotsPolicy { workers: 4 }),
                hosts: HostLimits {
                    concurrency: Some(2),
                    rate: Some(0.5),
                },
            },
            rate: Some(500.0),
            quota_share: Some(0.5),
            keys: Keys::Lines {
                path: "/tmp/keys.txt".into(),
                line: 65_537,
                offset: 1_234_567,
            },
            ids: IdRange::new(10, 20),
            continuations: vec![Continuation {
                index: 12,
                page: 3,
                next: "https://h/list?page=3".into(),
            }],
            in_flight_table: Some("/proc/1/fd/9".into()),
            host_shards: Some(4),
        }
    }

    fn read(bytes: &[u8]) -> Result<Assignment, SpecError> {
        read_assignment(&mut FrameReader::new(bytes))
    }

    #[test]
    fn assignment_round_trips_through_frames() {
        let spec = spec();
        let mut skip = IdSet::new(spec.ids);
        skip.insert(12);
        let bytes = encode_assignment(&spec, Some(&skip));
        let assignment = read(&bytes).expect("round trip");
        assert_eq!((assignment.spec, assignment.skip), (spec, Some(skip)));
    }

    #[test]
    fn the_largest_body_and_no_body_round_trip_in_the_spec_frame() {
        let mut spec = spec();
        // Every byte value, over and over: base64 must carry them all.
        spec.fetch.request.body =
            Some((0..crate::request::MAX_BODY_LEN).map(|i| i as u8).collect());
        let bytes = encode_assignment(&spec, None);
        assert_eq!(read(&bytes).expect("largest body").spec, spec);
        spec.fetch.request.body = None;
        let bytes = encode_assignment(&spec, None);
        assert_eq!(read(&bytes).expect("no body").spec, spec);
    }

    #[test]
    fn credentials_end_the_hand_over_and_the_next_ones_stay_in_the_reader() {
        let mut bytes = encode_assignment(&spec(), None);
        wire::encode_credentials(1, "Authorization: Bearer a", &mut bytes);
        wire::encode_credentials(2, "Authorization: Bearer b", &mut bytes);
        let mut reader = FrameReader::new(bytes.as_slice());
        let first = read_assignment(&mut reader).expect("with credentials");
        assert_eq!(
            first.credentials,
            Some((1, "Authorization: Bearer a".into()))
        );
        assert!(matches!(
            reader.next_frame(),
            Ok(Some(Frame::Credentials { generation: 2, .. }))
        ));
    }

    #[test]
    fn an_assignment_without_a_skip_set_has_none_and_a_torn_one_is_refused() {
        let bytes = encode_assignment(&spec(), None);
        assert_eq!(read(&bytes).expect("no skip").skip, None);
        assert!(read(&bytes[..bytes.len() - 1]).is_err(), "torn spec");
    }

    #[test]
    fn an_assignment_of_key_files_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dates.csv");
        std::fs::write(&path, "date\n2026-01-01\n2026-01-02\n").expect("write");
        let file = crate::job::RecordFile::scan(&path, "dates.csv", crate::job::RecordFormat::Csv)
            .expect("scan");
        let records = WorkerSpec {
            keys: Keys::Records(crate::job::Product {
                ids: Some(IdRange::new(0, 1000)),
                files: vec![file],
            }),
            ..spec()
        };
        let bytes = encode_assignment(&records, None);
        let read = read(&bytes).expect("records round trip");
        assert_eq!(read.spec, records);
    }
}
