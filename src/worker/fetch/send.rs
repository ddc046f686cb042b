//! One request and its answer: where it goes (the run's origin or another), over which
//! protocol, on which connection, and the redirects after it.

use std::rc::Rc;
use std::time::Instant;

use super::Slot;
use super::plan::Plan;
use crate::model::ErrorKind;
use crate::request::{Hop, Origin, UnusableKey};
use crate::template::Values;
use crate::worker::conn::connect::{Dialer, RouteId};
use crate::worker::conn::proxy;
use crate::worker::conn::proxy_board::ProxyHealth;
use crate::worker::failure::Failure;
use crate::worker::http::answer::Wants;
use crate::worker::http::h1::{self, H1Conn};
use crate::worker::http::shared::{Acquired, Shared};
use crate::worker::http::spool::Spool;

/// Where a request goes, known before it passes any gate.
pub(super) enum Bound {
    /// The run's own origin: the slot's kept-alive connection, or a shared HTTP/2 lane.
    Own,
    /// Another origin (a key's own host, a redirect's or a page's elsewhere): over HTTP/1.1, on
    /// an idle connection of the worker's pool, else a fresh one.
    Other(Origin),
}

impl Slot {
    /// Where a request for `values` (or `hop`, a page's or a redirect's) goes: known before
    /// the rate gate is passed, so that a gate may ask which host it is for. An error (a key
    /// that cannot be part of a host name) is the request's, said when it is sent.
    pub(super) fn bound_for(&self, values: &Values, hop: Option<&Hop>) -> Result<Bound, Failure> {
        let template = &self.plan.template;
        match hop {
            // With `{id}` in the host, every request goes to its key's own host, on a
            // connection from the worker's idle pool or a fresh one.
            None if template.host_varies() => template
                .origin_of(values)
                .map(Bound::Other)
                .map_err(unusable_key),
            Some(hop) if hop.origin != template.origin => Ok(Bound::Other(hop.origin.clone())),
            _ => Ok(Bound::Own),
        }
    }

    /// Sends the request for `values` to `bound` and reads the answer into `self.answer`; then
    /// follows up to `--follow-redirects` redirects.
    pub(super) async fn exchange(
        &mut self,
        values: &Values,
        bound: Result<Bound, Failure>,
    ) -> Result<(), Failure> {
        // A page after an item's first goes where the page before said.
        let page = self.page_hop.clone();
        self.send(values, page.as_ref(), bound).await?;
        if self.plan.follow_redirects == 0 || self.answer.location.is_none() {
            return Ok(());
        }
        // Boxed: the redirect state would otherwise make every request's future larger.
        Box::pin(self.follow_redirects(values, page)).await
    }

    /// Follows the `Location` of the last answer, hop by hop, up to `--follow-redirects` hops.
    async fn follow_redirects(
        &mut self,
        values: &Values,
        page: Option<Hop>,
    ) -> Result<(), Failure> {
        let plan = self.plan.clone();
        let template = &plan.template;
        let (mut origin, mut target, mut method) = match page {
            Some(hop) => (hop.origin, hop.target, hop.method),
            None => (
                template.origin_of(values).map_err(unusable_key)?,
                template.target(values),
                template.method.clone(),
            ),
        };
        for _ in 0..plan.follow_redirects {
            let Some(location) = self.answer.location.take() else {
                break;
            };
            let status = self.answer.status;
            let hop = match template.redirect(&origin, &target, &method, status, &location) {
                Ok(Some(hop)) => hop,
                Ok(None) => break,
                // An http(s) Location that cannot be fetched: an error row, with its 3xx.
                Err(detail) => {
                    return Err(Failure {
                        kind: ErrorKind::Request,
                        answered: true,
                        detail,
                    });
                }
            };
            let bound = self.bound_for(values, Some(&hop));
            self.send(values, Some(&hop), bound).await?;
            (origin, target, method) = (hop.origin, hop.target, hop.method);
        }
        if (300..400).contains(&self.answer.status) && self.answer.location.is_some() {
            self.plan.tally.redirect_limit();
        }
        Ok(())
    }

    /// One request (the template's, or a page's or redirect's `hop`) to `bound` and its
    /// answer, in the protocol the run chose: on an HTTP/2 lane when the run asked for it and
    /// the server agreed, else over HTTP/1.1 on the slot's connection, or on a connection of its
    /// own for another origin.
    async fn send(
        &mut self,
        values: &Values,
        hop: Option<&Hop>,
        bound: Result<Bound, Failure>,
    ) -> Result<(), Failure> {
        let plan = self.plan.clone();
        // No status until this request's answer says one (a redirect's 3xx is not the answer
        // of the hop after it).
        self.answer.status = 0;
        self.start_spool()?;
        let (template, generation) = plan.request_template();
        self.generation = generation;
        if plan.paging.is_some() {
            self.sent_to = Some(match hop {
                Some(hop) => (hop.origin.clone(), hop.target.clone()),
                None => (
                    template
                        .origin_of(values)
                        .unwrap_or_else(|_| template.origin.clone()),
                    template.target(values),
                ),
            });
        }
        let method = hop.map_or(&template.method, |h| &h.method);
        let wants = Self::wants(&plan, method);
        let bound = bound?;
        if let Some(shared) = self.shared_to_try(&plan, &bound) {
            // A seat with room is taken without the opening's future (4.5 KiB, boxed: it
            // was allocated and copied for every request).
            let acquired = match shared.take_seat() {
                Some(seat) => Acquired::Seat(seat),
                None => Box::pin(shared.acquire(&plan.dialer)).await?,
            };
            match acquired {
                Acquired::Seat(seat) => {
                    self.reused = seat.reused();
                    self.going_through(plan.dialer.proxy_of(seat.route()));
                    let exchange = seat.exchange(&template, values, hop, &wants, &mut self.answer);
                    let result = exchange.await;
                    self.refused = seat.refused();
                    if self.refused {
                        shared.learn_from_refusal(&seat);
                    }
                    return result;
                }
                Acquired::Declined(stream, route) => {
                    self.conn = Some(H1Conn::new(*stream));
                    self.route = route;
                }
            }
        }
        let parts = template
            .parts(values, hop)
            .map_err(|_| Failure::key_breaks_header())?;
        h1::write_request(&parts, &mut self.request, &mut self.body_scratch);
        match bound {
            Bound::Other(origin) => Box::pin(self.send_elsewhere(&origin, &wants)).await,
            Bound::Own => self.send_on_own_conn(&wants).await,
        }
    }

    /// The shared connections a request to `bound` tries first (HTTP/2's lanes with
    /// `--http2`): for the run's own origin, while the server has not declined the protocol
    /// and the slot holds no HTTP/1.1 connection.
    fn shared_to_try<'p>(&self, plan: &'p Plan, bound: &Bound) -> Option<&'p Shared> {
        let shared = plan.shared.as_ref().filter(|shared| !shared.declined())?;
        (matches!(bound, Bound::Own) && self.conn.is_none()).then_some(shared)
    }

    /// What the answer to a `method` request must be read for.
    fn wants<'a>(plan: &'a Plan, method: &http::Method) -> Wants<'a> {
        Wants {
            capture: &plan.capture,
            keep_body: plan.schema.keeps_body_in_memory(),
            memory: plan.memory.as_ref(),
            head_request: method == http::Method::HEAD,
            max_body: plan.limits.max_body_bytes,
            cut_past_max: false,
            decode: plan.decode,
        }
    }

    /// `--bodies-dir`: an empty spool file for the answer about to come.
    fn start_spool(&mut self) -> Result<(), Failure> {
        let Some(bodies) = &self.plan.bodies else {
            return Ok(());
        };
        let started = match &mut self.answer.spool {
            Some(spool) => spool.restart(),
            None => Spool::create(bodies.borrow_mut().spool_path())
                .map(|spool| self.answer.spool = Some(spool)),
        };
        started.map_err(|e| Failure {
            kind: ErrorKind::Io,
            answered: false,
            detail: format!("writing the body file: {e}"),
        })
    }

    async fn send_on_own_conn(&mut self, wants: &Wants<'_>) -> Result<(), Failure> {
        // What an idle connection received is no answer to the request about to go: it goes.
        let now = self.sent_at;
        if self
            .conn
            .as_mut()
            .is_some_and(|c| c.spoiled_while_idle(now))
        {
            self.conn = None;
        }
        // Proxies share requests, not connections: a slot whose kept-alive connection goes
        // through a proxy that carried more than its share leaves it for the least used one.
        if self.conn.is_some() && self.plan.dialer.over_share(self.route) {
            self.conn = None;
        }
        match &self.conn {
            Some(_) => self.reused = true,
            None => {
                let (stream, route) = Box::pin(self.plan.dialer.dial()).await?;
                self.conn = Some(H1Conn::new(stream));
                self.route = route;
            }
        }
        let plan = self.plan.clone();
        self.write_for_route(&plan.dialer, self.route);
        let conn = self.conn.as_mut().expect("a connection was just opened");
        // On failure `attempt` drops the connection.
        conn.exchange(&mut self.request, wants, &mut self.answer)
            .await
    }

    /// The request as `route` of `dialer` carries it: in absolute form, through a forwarding
    /// proxy.
    fn write_for_route(&mut self, dialer: &Dialer, route: RouteId) {
        if let Some((prefix, auth)) = dialer.forward(route) {
            proxy::to_absolute_form(&mut self.request, prefix, auth);
            self.forwarded = true;
        }
        self.going_through(dialer.proxy_of(route));
    }

    /// The request goes through `proxy` (or directly): counted there.
    fn going_through(&mut self, proxy: Option<Rc<ProxyHealth>>) {
        if let Some(proxy) = &proxy {
            proxy.sending();
        }
        self.answered_through = proxy;
    }

    /// A request to another origin: on an idle connection of the worker's pool (unless the
    /// last one failed as stale: then, as on the slot's own, the request goes again on a fresh
    /// one), else a fresh one; back into the pool after an answer that leaves it fit.
    async fn send_elsewhere(&mut self, origin: &Origin, wants: &Wants<'_>) -> Result<(), Failure> {
        let plan = self.plan.clone();
        let dialer = plan.dialer_for(origin)?;
        let pooled = match std::mem::take(&mut self.fresh_elsewhere) {
            true => None,
            false => plan.idle_conn(origin, &dialer),
        };
        // Judged as the slot's own connection is: a failure before any answer on a reused one
        // is the server having closed it while idle.
        self.reused = pooled.is_some();
        let (mut conn, route) = match pooled {
            Some(found) => found,
            None => {
                let (stream, route) = dialer.dial().await?;
                (H1Conn::new(stream), route)
            }
        };
        self.wait_for_host().await;
        self.write_for_route(&dialer, route);
        let result = conn
            .exchange(&mut self.request, wants, &mut self.answer)
            .await;
        // A 408 on a reused connection, a forwarding proxy's 407: no answer to this request
        // (`judge.rs`), and the connection goes.
        let not_the_answer = match self.answer.status {
            408 => self.reused,
            407 => self.forwarded,
            _ => false,
        };
        match result {
            Ok(()) if !not_the_answer => {
                if conn.reusable() {
                    conn.answered_at(Instant::now());
                    plan.park_idle(origin, conn, route);
                }
            }
            // Sent again at once if it failed as stale: then on a fresh connection.
            _ => self.fresh_elsewhere = self.reused,
        }
        result
    }
}

/// An item whose values make no request (no host, no fetchable URL): its `request` row says why.
fn unusable_key(why: UnusableKey) -> Failure {
    Failure {
        kind: ErrorKind::Request,
        answered: false,
        detail: why.0,
    }
}
