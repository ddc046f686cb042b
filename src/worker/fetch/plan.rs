//! What every slot of a worker shares: the request template and the row schema, the limits
//! and retry policy, the dialer (and those made for other origins, with their idle
//! connections), the proxies' health, the rate gate, the HTTP/2 lanes, the extractor and the
//! body-memory budget.
//!
//! Its fields are the fetch room's own (`pub(super)`): the worker loop reads what it needs
//! through the methods below, and the counters the slots keep are a [`Tally`] of their own.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::tally::Tally;
use crate::assignment::WorkerSpec;
use crate::extract::{ExtractError, Extractor};
use crate::model::{BodyColumn, ErrorKind, RequestLimits, RetryPolicy, Schema};
use crate::net::{NetSpec, Protocol};
use crate::output::bodies::BodiesDir;
use crate::request::{Origin, RequestError, RequestTemplate};
use crate::runtime::{MARGIN_PER_PROCESS, files_per_slot};
use crate::tls::{ClientTls, TlsError};
use crate::worker::conn::connect::{Dialer, RouteId};
use crate::worker::conn::dialers::Dialers;
use crate::worker::conn::pace::Pacer;
use crate::worker::conn::pool::{Bounds, IdlePool};
use crate::worker::conn::proxy_board::ProxyBoard;
use crate::worker::conn::stream::Stream;
use crate::worker::credentials::Credentials;
use crate::worker::failure::Failure;
use crate::worker::http::h1::H1Conn;
use crate::worker::http::shared::Shared;
use crate::worker::pages::Paging;
use crate::worker::robots::Robots;
use crate::worker::schedule::gate::Gate;
use crate::worker::schedule::hosts::HostTable;
use crate::worker::schedule::memory::BodyBudget;

/// Why a worker's plan could not be made from its spec.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
}

/// What every slot of a worker shares: how to build, send and keep.
pub struct Plan {
    pub(super) dialer: Rc<Dialer>,
    pub(super) template: Rc<RequestTemplate>,
    /// `--auth-command`: the newest credentials, and the template that carries them.
    pub(super) credentials: Option<Credentials>,
    pub(super) schema: Schema,
    /// Header names each answer's values are captured for: the schema's, then `link` when
    /// `--next link` reads it.
    pub(super) capture: Vec<String>,
    /// `--next`: how an answer leads to the next page.
    pub(super) paging: Option<Paging>,
    /// `--bodies-dir`: where bodies are written.
    pub(super) bodies: Option<RefCell<BodiesDir>>,
    pub(super) limits: RequestLimits,
    /// Undo content codings (not `--raw-body`).
    pub(super) decode: bool,
    pub(super) retry: RetryPolicy,
    /// Redirect hops followed per attempt (`--follow-redirects`).
    pub(super) follow_redirects: u32,
    /// Trust and session resumption, for the dialers made for other origins.
    pub(super) tls: ClientTls,
    /// Where connections go and come from.
    pub(super) net: NetSpec,
    /// The health of each proxy, for every dialer of the worker.
    pub(super) proxies: ProxyBoard,
    /// Paces the worker's requests (`--rate`, 429s).
    pub(super) gate: Gate,
    /// The connections requests share, when the protocol multiplexes (`--http2`'s lanes).
    pub(super) shared: Option<Shared>,
    /// Openers for other origins (a key's own host, a redirect's), made as first needed and
    /// kept while recently used.
    pub(super) elsewhere: RefCell<Dialers>,
    /// Idle HTTP/1.1 connections to other origins, for the next request there.
    pub(super) idle: RefCell<IdlePool<H1Conn<Stream>>>,
    /// What the slots saw of the answers, for the worker's stats.
    pub(super) tally: Tally,
    /// `--extract`: fields taken from each body.
    pub(super) extractor: Extractor,
    /// `--body-memory`: bodies held in memory at once, when bodies are read.
    pub(super) memory: Option<BodyBudget>,
    /// `--robots`: each origin's robots.txt, and its `Crawl-delay`'s spacing.
    pub(super) robots: Option<Robots>,
    /// When the host varies: the worker's hosts, whose writes a slot spaces.
    pub(super) hosts: Option<Rc<RefCell<HostTable>>>,
}

impl Plan {
    /// The plan `spec` asks for; `bodies`: where bodies are written (`--bodies-dir`).
    pub fn new(
        spec: &WorkerSpec,
        credentials: Option<Credentials>,
        bodies: Option<BodiesDir>,
    ) -> Result<Plan, PlanError> {
        let fetch = &spec.fetch;
        // Chosen once: the dialer offers it, and the lanes exist only for HTTP/2.
        let protocol = fetch.protocol;
        let template = RequestTemplate::compile(&fetch.request)?;
        // With `{id}` in the host, the run's own origin names no host and is never dialed (each
        // request goes to its key's host): an IP address keeps it from being resolved.
        let mut own = template.origin.clone();
        if template.host_varies() {
            own.host = std::net::Ipv4Addr::UNSPECIFIED.to_string();
        }
        let proxies = ProxyBoard::new(&fetch.net);
        // Room for a ticket per connection in flight: a worker opens up to `concurrency` at once.
        let tls = ClientTls {
            trust: fetch.trust.clone(),
            tickets_per_server: fetch.concurrency,
        };
        let timeout = fetch.limits.connect_timeout;
        let dialer = Dialer::new(&own, &tls, &fetch.net, timeout, protocol, true, &proxies)?;
        let spools = matches!(fetch.schema.body, BodyColumn::Files(_));
        let idle = IdlePool::new(idle_bounds(&template, fetch.concurrency, spools));
        Ok(Plan {
            dialer,
            template: Rc::new(template),
            credentials,
            bodies: bodies.map(RefCell::new),
            schema: fetch.schema.clone(),
            capture: capture_list(&fetch.schema),
            paging: fetch.schema.pages.as_ref().map(Paging::new).transpose()?,
            limits: fetch.limits,
            decode: !fetch.raw_body,
            retry: fetch.retry,
            follow_redirects: fetch.follow_redirects,
            tls,
            net: fetch.net.clone(),
            proxies,
            gate: Gate::new(spec.rate).with_quota(spec.quota_share),
            shared: Shared::for_protocol(protocol),
            elsewhere: RefCell::new(Dialers::new(MAX_OTHER_ORIGINS)),
            idle: RefCell::new(idle),
            tally: Tally::default(),
            extractor: Extractor::compile(&fetch.schema.extract)?,
            // Always: besides kept bodies, decoders' windows take memory (8 MiB for a zstd frame).
            memory: Some(BodyBudget::new(fetch.limits.body_memory_bytes)),
            robots: (fetch.robots)
                .map(|policy| Robots::new(&fetch.request.user_agent, policy.workers)),
            hosts: None,
        })
    }

    /// The worker's host table (runs whose host varies), shared with its look-ahead.
    pub fn with_hosts(mut self, hosts: Option<Rc<RefCell<HostTable>>>) -> Plan {
        self.hosts = hosts;
        self
    }

    /// The rate gate (its time spent throttled goes into the stats).
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The body-memory budget.
    pub fn memory(&self) -> Option<&BodyBudget> {
        self.memory.as_ref()
    }

    /// `--auth-command`'s credentials.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The run's own origin's connect pacer.
    pub fn pacer(&self) -> &Pacer {
        &self.dialer.pacer
    }

    /// The proxies' health, for the stats.
    pub fn proxies(&self) -> &ProxyBoard {
        &self.proxies
    }

    /// What the slots counted of the answers.
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// The template to send a request from now, and the generation of its credentials (0
    /// without `--auth-command`).
    pub(super) fn request_template(&self) -> (Rc<RequestTemplate>, u64) {
        match &self.credentials {
            Some(credentials) => credentials.template(),
            None => (self.template.clone(), 0),
        }
    }

    /// The opener for `origin`, another than the run's.
    pub(super) fn dialer_for(&self, origin: &Origin) -> Result<Rc<Dialer>, Failure> {
        if let Some(dialer) = self.elsewhere.borrow_mut().get(origin) {
            return Ok(dialer);
        }
        // Other origins are spoken to over HTTP/1.1.
        let dialer = Dialer::new(
            origin,
            &self.tls,
            &self.net,
            self.limits.connect_timeout,
            Protocol::Http1,
            false,
            &self.proxies,
        )
        .map_err(|e| Failure {
            kind: ErrorKind::Tls,
            answered: false,
            detail: e.to_string(),
        })?;
        self.elsewhere.borrow_mut().insert(origin, dialer.clone());
        Ok(dialer)
    }

    /// An idle connection to `origin` fit for a request (the server has not closed it or sent
    /// anything unasked, and its proxy has not carried more than its share), and its route.
    pub(super) fn idle_conn(
        &self,
        origin: &Origin,
        dialer: &Dialer,
    ) -> Option<(H1Conn<Stream>, RouteId)> {
        let mut idle = self.idle.borrow_mut();
        let now = Instant::now();
        // Unfit ones are dropped (closed) on the way.
        std::iter::from_fn(|| idle.take(origin, now)).find_map(|(mut conn, route)| {
            let fit = !conn.spoiled_while_idle(now) && !dialer.over_share(route);
            fit.then_some((conn, route))
        })
    }

    /// Keeps `conn` (of `route`), which an answer left fit for another request, for the next
    /// request to `origin`.
    pub(super) fn park_idle(&self, origin: &Origin, conn: H1Conn<Stream>, route: RouteId) {
        self.idle
            .borrow_mut()
            .park(origin, conn, route, Instant::now());
    }
}

/// Openers for other origins kept at once: with `{host}` from a key file, the hosts being
/// worked on (a few per slot) and those coming back soon.
const MAX_OTHER_ORIGINS: usize = 4096;
/// Idle connections to other origins a worker keeps when the run has an origin of its own
/// (redirects elsewhere): each slot holds its own connection already, and the supervisor
/// counts two descriptors per slot and 64 besides (`supervisor/limits.rs`).
const IDLE_BESIDE_OWN: usize = 16;
/// Idle connections kept for one origin: a few, so that many hosts share the pool.
const IDLE_PER_ORIGIN: usize = 4;
/// An idle connection older than this is closed: under the 5 s after which many servers close
/// theirs (Apache's `KeepAliveTimeout`, Node's `keepAliveTimeout`; nginx waits 75 s).
const IDLE_MAX_AGE: Duration = Duration::from_secs(4);

/// Idle connections to other origins a worker keeps at most, however many descriptors it may
/// open: each holds a socket and its buffers.
const MAX_IDLE: usize = 2048;

/// The idle pool's bounds for a worker of `concurrency` slots. With `{host}` in the URL the
/// slots' own connections are never opened: each slot's second descriptor (of the two the
/// supervisor counts) is an idle one, `concurrency` in all; and half of the descriptors the
/// worker may open beyond what the supervisor counted ([`MAX_IDLE`] at most): paced hosts come
/// back a fraction of a second later, and more of them than there are slots are paced at once.
fn idle_bounds(template: &RequestTemplate, concurrency: usize, spools: bool) -> Bounds {
    Bounds {
        max_idle: match template.host_varies() {
            true => concurrency + spare_descriptors(concurrency, spools) / 2,
            false => IDLE_BESIDE_OWN.min(concurrency),
        },
        per_origin: IDLE_PER_ORIGIN,
        max_age: IDLE_MAX_AGE,
    }
}

/// Descriptors this worker may open beyond those the supervisor counted for its slots (`spools`:
/// a body file each) and their margin, up to [`MAX_IDLE`].
fn spare_descriptors(concurrency: usize, spools: bool) -> usize {
    let counted = files_per_slot(spools) * concurrency as u64 + MARGIN_PER_PROCESS;
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(0, |(soft, _)| soft);
    usize::try_from(soft.saturating_sub(counted)).map_or(MAX_IDLE, |spare| spare.min(MAX_IDLE))
}

/// The header names whose values each answer captures: the schema's, then `link` when the next
/// page is in it.
fn capture_list(schema: &Schema) -> Vec<String> {
    let mut names = schema.capture_headers.clone();
    if schema
        .pages
        .as_ref()
        .is_some_and(crate::model::Pages::by_link)
    {
        names.push("link".into());
    }
    names
}
