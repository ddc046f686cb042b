//! The worker's resolver thread: one per worker, whatever the number of names. It runs
//! hickory-resolver (the servers of `/etc/resolv.conf`, so `ip netns exec` works) on a
//! single-threaded tokio runtime, at most [`IN_FLIGHT`] lookups at once, each tried again with
//! back-off after a timeout or a server failure (SERVFAIL) before it is given up. A name
//! with no address (NXDOMAIN, or no A and no AAAA record) is answered at once, with how long that
//! holds (the SOA minimum, RFC 2308). Answers go back to the event loop through a queue and one
//! byte on a socket pair the loop reads: the loop never spins waiting for them.
//!
//! Chosen over the system's getaddrinfo (measured, 2,000 names, a server dropping 20% of
//! queries, 64 at once: getaddrinfo 80 s and 95 names failed, as glibc waits 5 s for a lost
//! answer; hickory 12.8 s and 4 failed before any retry; with no loss, getaddrinfo took 110 µs of
//! CPU per name and hickory 150 µs): the system resolver tells no TTL and no negative TTL either.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;

/// Lookups in flight at once per worker. Each is a UDP socket and a few hundred bytes; 128 keeps
/// the 2,000-name test's lookups (about 3 ms each from a local server) well ahead of the
/// connects, and a public resolver far from a flood (a few hundred queries a second).
pub const IN_FLIGHT: usize = 128;
/// How long one query waits for its answer before it is sent again (glibc waits 5 s: a lost
/// UDP datagram then costs each item behind it 5 s).
const QUERY_TIMEOUT: Duration = Duration::from_millis(1500);
/// Pauses before the second, third and fourth try of a lookup that timed out or that the server
/// failed. Four tries: where a fifth of the queries are lost, 1 name in 600 still fails (three
/// tries: 1 in 125); the last try ends about 9 s after the first.
const BACK_OFF: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(1000),
    Duration::from_millis(2000),
];
/// How long a name without an address is known to have none when the server said not
/// (no SOA), and the bounds put on what it said (RFC 2308 §5: a negative answer is kept a while,
/// not for ever).
const NEGATIVE_TTL: Duration = Duration::from_secs(30);
const NEGATIVE_TTL_MIN: Duration = Duration::from_secs(5);
const NEGATIVE_TTL_MAX: Duration = Duration::from_secs(600);
/// The longest a found address is kept without asking again, whatever its TTL.
const POSITIVE_TTL_MAX: Duration = Duration::from_secs(3600);
/// The shortest: a TTL of 0 (dnsmasq's for its hosts file) would have every connect ask again.
const POSITIVE_TTL_MIN: Duration = Duration::from_secs(1);

/// What a lookup came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The name's addresses (its A records, else its AAAA ones), good for `ttl`.
    Found { addrs: Vec<IpAddr>, ttl: Duration },
    /// The name has no address (NXDOMAIN, or no A and no AAAA record), for `ttl`.
    NoAddress { why: String, ttl: Duration },
    /// No answer after every try (timeouts, SERVFAIL): worth asking again later.
    Failed(String),
}

/// One answer for the event loop.
pub struct Answer {
    pub name: Box<str>,
    pub outcome: Outcome,
}

/// The event loop's end of the resolver thread.
pub struct LookupThread {
    asks: tokio::sync::mpsc::UnboundedSender<Box<str>>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

impl LookupThread {
    /// Starts the thread; `wake` is written a byte when answers wait in the queue.
    pub fn start(wake: UnixStream) -> std::io::Result<LookupThread> {
        one_malloc_arena();
        let (asks, asked) = tokio::sync::mpsc::unbounded_channel();
        let answers = Arc::new(Mutex::new(Vec::new()));
        let delivery = Delivery {
            answers: answers.clone(),
            wake,
        };
        std::thread::Builder::new()
            .name("resolve".into())
            .spawn(move || serve(asked, delivery))?;
        Ok(LookupThread { asks, answers })
    }

    /// Asks for `name`'s addresses; the answer comes through [`LookupThread::take_answers`].
    pub fn ask(&self, name: &str) {
        // Only fails once the thread is gone, which it leaves only when this end is dropped.
        let _ = self.asks.send(name.into());
    }

    /// The answers that came since the last call.
    pub fn take_answers(&self) -> Vec<Answer> {
        std::mem::take(&mut *self.answers.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Keeps glibc's allocator to one arena for the worker. Names go from the loop to this thread
/// and answers back, each freed by the thread that did not allocate it; with an arena per
/// thread that left the worker's memory fragmented: 100,000 names over 2 workers peaked at
/// 307 MB, 118 MB with one arena, at the same CPU per request (170 and 174 µs; the loop and this
/// thread seldom allocate at the same moment). Before the thread starts: arenas are made as
/// threads first allocate.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator; M_ARENA_MAX takes any positive value.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
}

/// The thread's end: where answers go, and the byte that says so.
struct Delivery {
    answers: Arc<Mutex<Vec<Answer>>>,
    wake: UnixStream,
}

impl Delivery {
    fn deliver(&self, answer: Answer) {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        answers.push(answer);
        // A byte per batch: the loop reads the byte before it takes the queue, so an answer
        // pushed onto a queue that was not empty is taken with the one that woke it.
        if answers.len() == 1 {
            // Full (WouldBlock) only when bytes are already waiting to be read.
            let _ = (&self.wake).write(&[1]);
        }
    }
}

/// The thread's body: a current-thread tokio runtime serving asks until the loop's end is gone.
fn serve(mut asked: tokio::sync::mpsc::UnboundedReceiver<Box<str>>, delivery: Delivery) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => return fail_every_ask(asked, &delivery, &format!("no resolver runtime: {e}")),
    };
    runtime.block_on(async move {
        let resolver = match resolver() {
            Ok(resolver) => resolver,
            Err(why) => return fail_every_ask(asked, &delivery, &why),
        };
        let delivery = Arc::new(delivery);
        let room = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        while let Some(name) = asked.recv().await {
            let Ok(permit) = room.clone().acquire_owned().await else {
                return;
            };
            let (resolver, delivery) = (resolver.clone(), delivery.clone());
            tokio::spawn(async move {
                let outcome = lookup(&resolver, &name).await;
                drop(permit);
                delivery.deliver(Answer { name, outcome });
            });
        }
    });
}

fn fail_every_ask(
    mut asked: tokio::sync::mpsc::UnboundedReceiver<Box<str>>,
    delivery: &Delivery,
    why: &str,
) {
    while let Some(name) = asked.blocking_recv() {
        let outcome = Outcome::Failed(format!("{name}: {why}"));
        delivery.deliver(Answer { name, outcome });
    }
}

/// The system's resolver configuration with our timeouts: A asked first, AAAA only for a name
/// with no IPv4 address. Asking both at once doubled the queries, and the resolver's CPU, for
/// nothing: a connection goes to an IPv4 address whenever the name has one (measured over
/// 20,000 names through dnsmasq: 402 µs of CPU per request of 2 per name with both asked).
fn resolver() -> Result<TokioResolver, String> {
    let mut builder =
        TokioResolver::builder_tokio().map_err(|e| format!("reading /etc/resolv.conf: {e}"))?;
    let options = builder.options_mut();
    options.timeout = QUERY_TIMEOUT;
    options.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
    // Ours (`dns.rs`) is the cache; hickory's would hold every name a second time.
    options.cache_size = 0;
    options.positive_max_ttl = Some(POSITIVE_TTL_MAX);
    options.negative_min_ttl = Some(NEGATIVE_TTL_MIN);
    options.negative_max_ttl = Some(NEGATIVE_TTL_MAX);
    // Every lookup in flight may be on the one UDP "connection" to the server.
    options.max_active_requests = 2 * IN_FLIGHT;
    builder.build().map_err(|e| format!("resolver: {e}"))
}

/// `name`'s addresses, trying again after a timeout or a server failure.
async fn lookup(resolver: &TokioResolver, name: &str) -> Outcome {
    // A name with a dot is asked as it is (no search domains: a missing name is one NXDOMAIN,
    // not one per search domain); one without goes through the search list, as glibc does.
    let query = if name.contains('.') && !name.ends_with('.') {
        format!("{name}.")
    } else {
        name.to_string()
    };
    let mut tries = 0;
    loop {
        let error = match resolver.lookup_ip(query.as_str()).await {
            Ok(found) => {
                let addrs: Vec<IpAddr> = found.iter().collect();
                let ttl = found
                    .valid_until()
                    .saturating_duration_since(Instant::now());
                if !addrs.is_empty() {
                    let ttl = ttl.max(POSITIVE_TTL_MIN);
                    return Outcome::Found { addrs, ttl };
                }
                let why = format!("{name}: no address");
                return Outcome::NoAddress {
                    why,
                    ttl: NEGATIVE_TTL,
                };
            }
            Err(e) => e,
        };
        if let Some(outcome) = no_address(name, &error) {
            return outcome;
        }
        match BACK_OFF.get(tries).filter(|_| worth_trying_again(&error)) {
            Some(pause) => tokio::time::sleep(*pause).await,
            None => return Outcome::Failed(format!("{name}: {error}")),
        }
        tries += 1;
    }
}

/// A timeout, a lost connection or SERVFAIL may pass; a server that refuses (REFUSED, as
/// dnsmasq answers a name it does not know), or says the query is wrong or not implemented,
/// will answer the same at once.
fn worth_trying_again(error: &NetError) -> bool {
    match error {
        NetError::Dns(DnsError::ResponseCode(code)) => *code == ResponseCode::ServFail,
        _ => true,
    }
}

/// A definite "no address" (NXDOMAIN, or neither record type), with how long it holds.
fn no_address(name: &str, error: &NetError) -> Option<Outcome> {
    let NetError::Dns(DnsError::NoRecordsFound(none)) = error else {
        return None;
    };
    let ttl = none.negative_ttl.map_or(NEGATIVE_TTL, |secs| {
        Duration::from_secs(secs.into()).clamp(NEGATIVE_TTL_MIN, NEGATIVE_TTL_MAX)
    });
    let why = if error.is_nx_domain() {
        format!("{name}: no such name (NXDOMAIN)")
    } else {
        format!("{name}: no address")
    };
    Some(Outcome::NoAddress { why, ttl })
}
