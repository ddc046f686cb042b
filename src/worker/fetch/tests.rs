//! The fetch path over scripted connections: a slot, its plan and a dialer that hands out
//! in-memory connections playing back a server's bytes (`conn/scripted.rs`), so what the slot
//! makes of stale connections, 408s, 407s, failing proxies, retries and cut bodies is checked
//! without a socket.

use std::rc::Rc;
use std::time::Duration;

use super::plan::Plan;
use super::{Outcome, Slot};
use crate::assignment::{Fetch, WorkerSpec};
use crate::ids::IdRange;
use crate::job::Keys;
use crate::model::{ErrorKind, Record, RequestLimits, RetryPolicy, Schema};
use crate::net::NetSpec;
use crate::request::RequestSpec;
use crate::template::Values;
use crate::tls::Trust;
use crate::verbosity::Verbosity;
use crate::worker::conn::scripted::{Read, Script};
use crate::worker::conn::stream::Stream;
use crate::worker::failure::Failure;
use crate::worker::http::h1::CHECK_IDLE_AFTER;
use crate::worker::pages::Chain;
use crate::worker::schedule::retry::Verdict;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// A run of `url` with `retries` retries, through `proxy` if given.
fn spec(url: &str, retries: u32, proxy: Option<&str>) -> WorkerSpec {
    let net = NetSpec::parse(&[], &[], &[]).expect("no routing");
    let net = net.with_proxies(proxy, |_| None).expect("a valid proxy");
    WorkerSpec {
        shard: 0,
        fetch: Fetch {
            request: RequestSpec::of_url(url),
            trust: Trust::default(),
            schema: Schema {
                items: Default::default(),
                keys: Vec::new(),
                pages: None,
                capture_headers: Vec::new(),
                extract: Vec::new(),
                body: Default::default(),
            },
            follow_redirects: 0,
            protocol: crate::net::Protocol::Http1,
            concurrency: 1,
            auto_concurrency: false,
            grace: Duration::from_secs(1),
            limits: RequestLimits {
                timeout: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(1),
                max_body_bytes: 1 << 20,
                body_memory_bytes: 1 << 24,
            },
            raw_body: false,
            net,
            retry: RetryPolicy {
                retries,
                base: Duration::from_millis(100),
                cap: Duration::from_secs(1),
                max_retry_after: Duration::from_secs(60),
            },
            verbosity: Verbosity::Quiet,
            auth: false,
            robots: None,
            hosts: Default::default(),
        },
        rate: None,
        quota_share: None,
        ids: IdRange::new(0, 10),
        keys: Keys::Numbers,
        continuations: Vec::new(),
        in_flight_table: None,
        host_shards: None,
    }
}

/// A slot of a plan for `spec`, whose dialer hands out `conns` in turn.
fn slot(spec: &WorkerSpec, conns: Vec<Script>) -> Slot {
    let plan = Plan::new(spec, None, None).expect("a valid plan");
    plan.dialer
        .script(conns.into_iter().map(|c| Ok(Stream::scripted(c))));
    Slot::new(Rc::new(plan))
}

/// Item `id`'s first attempt on `slot`.
fn try_item(slot: &mut Slot, id: u64) -> Outcome {
    try_values(slot, id, &Values::one(id.to_string().as_bytes()))
}

/// Item `index`'s first attempt on `slot`, its placeholders taking `values`.
fn try_values(slot: &mut Slot, index: u64, values: &Values) -> Outcome {
    let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("a runtime");
    runtime.block_on(slot.try_once(index, values, 0, &Chain::default()))
}

fn done(outcome: Outcome) -> Record {
    match outcome {
        Outcome::Done(record) => record,
        Outcome::RetryAfter { why, .. } => panic!("a retry ({why}), not a row"),
    }
}

/// A connection whose answers are `answers`, and what the client wrote on it.
fn answering(answers: &[&[u8]]) -> (Script, Rc<std::cell::RefCell<Vec<u8>>>) {
    let script = Script::answers(answers);
    let written = script.written.clone();
    (script, written)
}

#[test]
fn a_request_failing_on_a_stale_idle_connection_goes_again_on_a_fresh_one_uncounted() {
    // The kept-alive connection answers once, then the server has closed it (unseen by the
    // idle peek): the second item is sent again at once on a fresh connection.
    let (kept, _) = answering(&[OK]);
    let (fresh, written) = answering(&[OK]);
    let mut slot = slot(&spec("http://127.0.0.1:9/{id}", 0, None), vec![kept, fresh]);
    let first = done(try_item(&mut slot, 1));
    assert_eq!((first.status, first.error), (Some(200), None));
    let second = done(try_item(&mut slot, 2));
    assert_eq!((second.status, second.error), (Some(200), None));
    assert_eq!(
        second.attempts, 1,
        "a stale connection's failure is no attempt"
    );
    assert!(written.borrow().starts_with(b"GET /2 HTTP/1.1\r\n"));
    assert_eq!(slot.plan.dialer.scripted_left(), 0);
}

#[test]
fn a_408_on_a_reused_connection_is_the_server_closing_it_and_the_request_goes_again() {
    let timeout = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n";
    let (kept, _) = answering(&[OK, timeout]);
    let (fresh, _) = answering(&[OK]);
    let mut slot = slot(&spec("http://127.0.0.1:9/{id}", 0, None), vec![kept, fresh]);
    done(try_item(&mut slot, 1));
    let second = done(try_item(&mut slot, 2));
    assert_eq!(
        (second.status, second.error, second.attempts),
        (Some(200), None, 1)
    );
}

#[test]
fn a_408_on_a_fresh_connection_is_the_servers_status() {
    let timeout: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n";
    let (conn, _) = answering(&[timeout]);
    let mut slot = slot(&spec("http://127.0.0.1:9/{id}", 0, None), vec![conn]);
    let record = done(try_item(&mut slot, 1));
    assert_eq!((record.status, record.error), (Some(408), None));
}

#[test]
fn a_forwarding_proxys_407_is_the_proxys_failure_and_no_status_of_the_target() {
    let wants: &[u8] = b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n";
    let (conn, written) = answering(&[wants]);
    let run = spec("http://127.0.0.2:9/{id}", 0, Some("http://127.0.0.1:9"));
    let mut slot = slot(&run, vec![conn]);
    let record = done(try_item(&mut slot, 1));
    assert_eq!(
        (record.status, record.error),
        (None, Some(ErrorKind::Proxy))
    );
    assert!(
        written
            .borrow()
            .starts_with(b"GET http://127.0.0.2:9/1 HTTP/1.1\r\n"),
        "a forwarding proxy is sent the absolute form"
    );
    let tallies = slot.plan.proxies.tallies();
    assert_eq!(tallies[0].1.failures, 1, "the proxy sits out");
}

#[test]
fn a_407_from_the_target_itself_is_its_status() {
    let wants: &[u8] = b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n";
    let (conn, _) = answering(&[wants]);
    let mut slot = slot(&spec("http://127.0.0.1:9/{id}", 0, None), vec![conn]);
    let record = done(try_item(&mut slot, 1));
    assert_eq!((record.status, record.error), (Some(407), None));
}

#[test]
fn a_forwarding_proxy_that_closes_a_fresh_connection_unanswered_is_blamed() {
    let run = spec("http://127.0.0.2:9/{id}", 0, Some("http://127.0.0.1:9"));
    let mut slot = slot(&run, vec![Script::reads(vec![Read::End])]);
    let record = done(try_item(&mut slot, 1));
    assert_eq!(
        (record.status, record.error),
        (None, Some(ErrorKind::Proxy))
    );
    assert_eq!(slot.plan.proxies.tallies()[0].1.failures, 1);
}

#[test]
fn a_direct_connection_closed_unanswered_is_the_servers_closing() {
    let mut slot = slot(
        &spec("http://127.0.0.1:9/{id}", 0, None),
        vec![Script::reads(vec![Read::End])],
    );
    let record = done(try_item(&mut slot, 1));
    assert_eq!(
        (record.status, record.error),
        (None, Some(ErrorKind::Closed))
    );
}

#[test]
fn a_503_with_retry_after_schedules_a_retry_after_that_wait() {
    let busy: &[u8] =
        b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 3\r\ncontent-length: 0\r\n\r\n";
    let (conn, _) = answering(&[busy]);
    let mut slot = slot(&spec("http://127.0.0.1:9/{id}", 2, None), vec![conn]);
    match try_item(&mut slot, 1) {
        Outcome::RetryAfter { wait, why } => {
            assert_eq!(wait, Duration::from_secs(3));
            assert_eq!(
                why,
                Verdict::Status {
                    status: 503,
                    retry_after: Some(Duration::from_secs(3))
                }
            );
        }
        Outcome::Done(record) => panic!("a row, not a retry: {record:?}"),
    }
}

#[test]
fn a_failed_connect_with_retries_left_schedules_a_retry() {
    let run = spec("http://127.0.0.1:9/{id}", 1, None);
    let plan = Plan::new(&run, None, None).expect("a valid plan");
    let refused = Failure::from_io(&std::io::ErrorKind::ConnectionReset.into(), false);
    plan.dialer.script([Err(refused)]);
    let mut slot = Slot::new(Rc::new(plan));
    assert!(matches!(
        try_item(&mut slot, 1),
        Outcome::RetryAfter {
            why: Verdict::Error(ErrorKind::Reset),
            ..
        }
    ));
}

#[test]
fn a_body_cut_short_is_an_error_that_keeps_the_status() {
    let cut = Script::reads(vec![
        Read::Bytes(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc".to_vec()),
        Read::End,
    ]);
    let mut slot = slot(&spec("http://127.0.0.1:9/{id}", 0, None), vec![cut]);
    let record = done(try_item(&mut slot, 1));
    assert_eq!(record.status, Some(200));
    assert_eq!(record.error, Some(ErrorKind::Closed), "{record:?}");
}

#[test]
fn a_reset_while_the_body_comes_is_a_reset_that_keeps_the_status() {
    let reset = Script::reads(vec![
        Read::Bytes(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc".to_vec()),
        Read::Fail(std::io::ErrorKind::ConnectionReset),
    ]);
    let mut slot = slot(&spec("http://127.0.0.1:9/{id}", 0, None), vec![reset]);
    let record = done(try_item(&mut slot, 1));
    assert_eq!(
        (record.status, record.error),
        (Some(200), Some(ErrorKind::Reset))
    );
}

/// A slot whose requests go to another origin than the run's (`{id}` in the host: every item
/// here is key `1`, host 127.0.0.1), whose dialer for it hands out `conns` in turn.
fn slot_elsewhere(conns: Vec<Script>) -> Slot {
    let plan = Plan::new(&spec("http://127.0.0.{id}:9/x", 0, None), None, None);
    let plan = plan.expect("a valid plan");
    let origin = plan.template.origin_of(&Values::one(b"1"));
    let dialer = plan.dialer_for(&origin.expect("a host")).expect("a dialer");
    dialer.script(conns.into_iter().map(|c| Ok(Stream::scripted(c))));
    Slot::new(Rc::new(plan))
}

/// `slot`'s item `index` (key `1`, as every item of [`slot_elsewhere`]).
fn try_elsewhere(slot: &mut Slot, index: u64) -> Record {
    done(try_values(slot, index, &Values::one(b"1")))
}

fn scripted_left_elsewhere(slot: &Slot) -> usize {
    let origin = slot.plan.template.origin_of(&Values::one(b"1"));
    let dialer = slot.plan.dialer_for(&origin.expect("a host"));
    dialer.expect("a dialer").scripted_left()
}

#[test]
fn requests_to_another_origin_share_a_kept_alive_connection_from_the_pool() {
    let (conn, written) = answering(&[OK, OK, OK]);
    let mut slot = slot_elsewhere(vec![conn]);
    for index in 0..3 {
        let record = try_elsewhere(&mut slot, index);
        assert_eq!((record.status, record.error), (Some(200), None));
    }
    let requests = written.borrow().windows(4).filter(|w| w == b"GET ").count();
    assert_eq!(requests, 3, "three requests on the one connection");
    assert_eq!(
        slot.plan.idle.borrow().len(),
        1,
        "parked again after the last"
    );
}

#[test]
fn a_request_failing_on_a_stale_pooled_connection_goes_again_on_a_fresh_one_uncounted() {
    // The pooled connection answers once, then the server has closed it (unseen by the peek).
    let (kept, _) = answering(&[OK]);
    let (fresh, written) = answering(&[OK]);
    let mut slot = slot_elsewhere(vec![kept, fresh]);
    try_elsewhere(&mut slot, 0);
    let second = try_elsewhere(&mut slot, 1);
    assert_eq!(
        (second.status, second.error, second.attempts),
        (Some(200), None, 1),
        "a stale connection's failure is no attempt"
    );
    assert!(written.borrow().starts_with(b"GET /x HTTP/1.1\r\n"));
    assert_eq!(scripted_left_elsewhere(&slot), 0);
}

#[test]
fn a_pooled_connection_the_server_closed_while_idle_is_passed_over() {
    let (mut closed, first) = answering(&[OK, OK]);
    closed.closed_while_idle = true;
    let (fresh, _) = answering(&[OK]);
    let mut slot = slot_elsewhere(vec![closed, fresh]);
    try_elsewhere(&mut slot, 0);
    // Idle long enough to be looked at.
    std::thread::sleep(CHECK_IDLE_AFTER * 2);
    let second = try_elsewhere(&mut slot, 1);
    assert_eq!((second.status, second.attempts), (Some(200), 1));
    let requests = first.borrow().windows(4).filter(|w| w == b"GET ").count();
    assert_eq!(
        requests, 1,
        "nothing sent on a connection the peek found closed"
    );
    assert_eq!(scripted_left_elsewhere(&slot), 0);
}

#[test]
fn a_pooled_connection_that_has_just_answered_is_not_looked_at() {
    let (mut closed, first) = answering(&[OK, OK]);
    closed.closed_while_idle = true;
    let (fresh, _) = answering(&[OK]);
    let mut slot = slot_elsewhere(vec![closed, fresh]);
    try_elsewhere(&mut slot, 0);
    let second = try_elsewhere(&mut slot, 1);
    assert_eq!((second.status, second.attempts), (Some(200), 1));
    let requests = first.borrow().windows(4).filter(|w| w == b"GET ").count();
    assert_eq!(
        requests, 2,
        "the second request went on the same connection"
    );
    assert_eq!(scripted_left_elsewhere(&slot), 1, "the fresh one unused");
}

#[test]
fn a_408_on_a_pooled_connection_goes_again_on_a_fresh_one() {
    let timeout: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n";
    let (kept, _) = answering(&[OK, timeout]);
    let (fresh, _) = answering(&[OK]);
    let mut slot = slot_elsewhere(vec![kept, fresh]);
    try_elsewhere(&mut slot, 0);
    let second = try_elsewhere(&mut slot, 1);
    assert_eq!(
        (second.status, second.error, second.attempts),
        (Some(200), None, 1)
    );
    assert_eq!(scripted_left_elsewhere(&slot), 0);
}

#[test]
fn an_answer_that_closes_its_connection_leaves_nothing_in_the_pool() {
    let closing: &[u8] = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";
    let (conn, _) = answering(&[closing]);
    let (fresh, _) = answering(&[OK]);
    let mut slot = slot_elsewhere(vec![conn, fresh]);
    assert_eq!(try_elsewhere(&mut slot, 0).status, Some(200));
    assert_eq!(slot.plan.idle.borrow().len(), 0);
    let second = try_elsewhere(&mut slot, 1);
    assert_eq!((second.status, second.attempts), (Some(200), 1));
    assert_eq!(
        scripted_left_elsewhere(&slot),
        0,
        "the second on a fresh one"
    );
}
