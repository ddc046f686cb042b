//! What every slot of a worker shares: the request template and the row schema, the limits
//! and retry policy, the dialer (and those made for other origins that redirects lead to), the
//! proxies' health, the rate gate, the HTTP/2 lanes, the extractor and the body-memory budget.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::conn::connect::Dialer;
use super::conn::proxy_board::ProxyBoard;
use super::credentials::Credentials;
use super::failure::Failure;
use super::http::h2::Lanes;
use super::pages::Paging;
use super::schedule::gate::Gate;
use super::schedule::memory::BodyBudget;
use crate::extract::Extractor;
use crate::model::{ErrorKind, RequestLimits, RetryPolicy, Schema};
use crate::net::NetSpec;
use crate::output::bodies::BodiesDir;
use crate::request::{Origin, RequestTemplate};
use crate::stats::AnswerCounts;
use crate::tls::ClientTls;

/// What every slot of a worker shares: how to build, send and keep.
pub struct Plan {
    pub dialer: Rc<Dialer>,
    pub template: Rc<RequestTemplate>,
    /// `--auth-command`: the newest credentials, and the template that carries them.
    pub credentials: Option<Credentials>,
    pub schema: Schema,
    /// Header names each answer's values are captured for: the schema's, then `link` when
    /// `--next link` reads it.
    pub capture: Vec<String>,
    /// `--next`: how an answer leads to the next page.
    pub paging: Option<Paging>,
    /// `--bodies-dir`: where bodies are written.
    pub bodies: Option<RefCell<BodiesDir>>,
    pub limits: RequestLimits,
    /// Undo content codings (not `--raw-body`).
    pub decode: bool,
    pub retry: RetryPolicy,
    /// Redirect hops followed per attempt (`--follow-redirects`).
    pub follow_redirects: u32,
    /// Trust and session resumption, for the dialers made for other origins.
    pub tls: ClientTls,
    /// Where connections go and come from.
    pub net: NetSpec,
    /// The health of each proxy, for every dialer of the worker.
    pub proxies: ProxyBoard,
    /// Paces the worker's requests (`--rate`, 429s).
    pub gate: Gate,
    /// `--http2`: the worker's HTTP/2 connections.
    pub h2: Option<Lanes>,
    /// Openers for other origins that redirects led to, made as first needed.
    pub elsewhere: RefCell<HashMap<Origin, Rc<Dialer>>>,
    /// What the slots saw of the answers, for the worker's stats.
    pub seen: RefCell<AnswerCounts>,
    /// `--extract`: fields taken from each body.
    pub extractor: Extractor,
    /// `--body-memory`: bodies held in memory at once, when bodies are read.
    pub memory: Option<BodyBudget>,
}

impl Plan {
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
        if let Some(dialer) = self.elsewhere.borrow().get(origin) {
            return Ok(dialer.clone());
        }
        // Other origins are spoken to over HTTP/1.1, one connection per request.
        let dialer = Dialer::new(
            origin,
            &self.tls,
            &self.net,
            self.limits.connect_timeout,
            false,
            false,
            &self.proxies,
        )
        .map_err(|e| Failure {
            kind: ErrorKind::Tls,
            answered: false,
            detail: e.to_string(),
        })?;
        let mut elsewhere = self.elsewhere.borrow_mut();
        // With `{id}` in the host every key has an origin of its own: keep the last few
        // thousand, not every one of millions.
        if elsewhere.len() >= MAX_OTHER_ORIGINS {
            elsewhere.clear();
        }
        elsewhere.insert(origin.clone(), dialer.clone());
        Ok(dialer)
    }
}

/// Openers for other origins kept at once.
const MAX_OTHER_ORIGINS: usize = 4096;
