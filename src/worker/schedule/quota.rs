//! Rate-limit headers, read and obeyed: what an answer says of its server's quota
//! ([`Reading`]: the IETF draft's `RateLimit-Limit/-Remaining/-Reset` up to draft 07, its
//! `RateLimit-Policy` and `RateLimit` structured fields from draft 08 on, and the
//! `X-RateLimit-*` that GitHub and many others send), and the pacing that uses such a quota
//! without overrunning it ([`QuotaSchedule`]: the requests left spread over the time to the
//! reset, none while nothing is left). Pure: the callers read the clocks.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// A reset above this many seconds is a Unix time (GitHub's `X-RateLimit-Reset`), not a delay:
/// 10⁹ s is 31 years, longer than any window, and the Unix time passed it in 2001.
const EPOCH_ABOVE: u64 = 1_000_000_000;
/// …and above this, a Unix time in milliseconds.
const EPOCH_MS_ABOVE: u64 = 100_000_000_000;
/// A reset in whole seconds may have been rounded up (most servers send the ceiling): the
/// requests left are spread over this much less than it says, or a short window is under-used
/// (by a fifth, for a window of 2 s). The wait for a quota used up takes the reset as said.
const ROUNDING: Duration = Duration::from_millis(500);
/// A quota used up with its reset said to be now waits at least this long before trying.
const MIN_EXHAUSTED_WAIT: Duration = Duration::from_millis(250);
/// What is said on stderr with `-v`: at most one line per this long…
const SAY_EVERY: Duration = Duration::from_secs(1);
/// …and only when the spacing changed by more than this share (or a wait began).
const SAY_CHANGE: f64 = 0.25;

/// Which rate-limit header a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Limit(Family),
    Remaining(Family),
    Reset(Family),
    /// `RateLimit-Policy` (draft 08 on): `"name";q=100;w=60`, one or more.
    Policy,
    /// `RateLimit` (draft 08 on): `"name";r=37;t=12`, one or more.
    Current,
}

/// The two families of three headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `RateLimit-Limit`, `-Remaining`, `-Reset` (IETF draft up to 07).
    Draft,
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset`.
    X,
}

impl Field {
    /// The field `name` (any case) is, if a rate-limit header. Cheap for the other names: most
    /// fail on their length or first byte.
    pub fn of(name: &[u8]) -> Option<Field> {
        if !(9..=21).contains(&name.len()) || !matches!(name[0], b'r' | b'R' | b'x' | b'X') {
            return None;
        }
        let (family, rest) = match name.split_at_checked(2) {
            Some((x, rest)) if x.eq_ignore_ascii_case(b"x-") => (Family::X, rest),
            _ => (Family::Draft, name),
        };
        let (ratelimit, tail) = rest.split_at_checked(9)?;
        if !ratelimit.eq_ignore_ascii_case(b"ratelimit") {
            return None;
        }
        let is = |known: &[u8]| tail.eq_ignore_ascii_case(known);
        Some(match family {
            Family::Draft if tail.is_empty() => Field::Current,
            Family::Draft if is(b"-policy") => Field::Policy,
            _ if is(b"-limit") => Field::Limit(family),
            _ if is(b"-remaining") => Field::Remaining(family),
            _ if is(b"-reset") => Field::Reset(family),
            _ => return None,
        })
    }
}

/// What one answer's rate-limit headers said (nothing when it had none). Small and `Copy`:
/// read into the answer without allocating.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// Some rate-limit header was there (one test per answer, not a comparison of the whole).
    said: bool,
    draft: Counts,
    x: Counts,
    /// `RateLimit`: the most constraining (remaining, reset seconds) of its list.
    current: Option<(u64, Option<u64>)>,
    /// `RateLimit-Policy`: the most constraining (quota, window seconds) of its list.
    policy: Option<(u64, u64)>,
}

/// One family's three headers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counts {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<u64>,
}

/// A quota as read: requests left and the time until they are renewed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    pub remaining: u64,
    pub reset: Duration,
    /// The reset was said in whole seconds from now (maybe rounded up), not as a Unix time.
    pub rounded: bool,
    /// Requests per window, when said.
    pub limit: Option<u64>,
}

impl Reading {
    pub fn is_empty(&self) -> bool {
        !self.said
    }

    /// Takes the value of header `field`; a value that does not read is ignored.
    pub fn take(&mut self, field: Field, value: &[u8]) {
        self.said = true;
        match field {
            Field::Limit(family) => self.counts(family).limit = decimal(value),
            Field::Remaining(family) => self.counts(family).remaining = decimal(value),
            Field::Reset(family) => self.counts(family).reset = decimal(value),
            Field::Policy => {
                for member in members(value) {
                    let (q, w) = (param(member, b"q"), param(member, b"w"));
                    if let (Some(q), Some(w)) = (q, w.filter(|w| *w > 0)) {
                        let tighter = self.policy.is_none_or(|(q0, w0)| q * w0 < q0 * w);
                        if tighter {
                            self.policy = Some((q, w));
                        }
                    }
                }
            }
            Field::Current => self.take_current(value),
        }
    }

    fn counts(&mut self, family: Family) -> &mut Counts {
        match family {
            Family::Draft => &mut self.draft,
            Family::X => &mut self.x,
        }
    }

    /// `RateLimit`: draft 08's list of `"name";r=…;t=…`, or drafts 05–07's dictionary
    /// `limit=…, remaining=…, reset=…` (taken as the three headers of the draft family).
    fn take_current(&mut self, value: &[u8]) {
        for member in members(value) {
            let (key, number) = match split_once(member, b'=') {
                Some((key, number)) => (key.trim_ascii(), decimal(number)),
                None => (&b""[..], None),
            };
            match key {
                b"limit" => self.draft.limit = number,
                b"remaining" => self.draft.remaining = number,
                b"reset" => self.draft.reset = number,
                _ => {
                    let Some(r) = param(member, b"r") else {
                        continue;
                    };
                    let t = param(member, b"t");
                    let tighter = self.current.is_none_or(|(r0, t0)| {
                        constrains_more((r, t.unwrap_or(u64::MAX)), (r0, t0.unwrap_or(u64::MAX)))
                    });
                    if tighter {
                        self.current = Some((r, t));
                    }
                }
            }
        }
    }

    /// The most constraining quota the answer said, `unix_now` being the time since the Unix
    /// epoch (for resets given as a Unix time). `retry_after` gives a used-up quota whose reset
    /// was not said its time. A reset further off than `max_wait` (`--max-retry-after`, as
    /// for `Retry-After`) is taken as `max_wait`: a reset of 99999999999 (a Unix time three
    /// thousand years ahead, or a typo) stopped its host for good and the run never ended.
    /// `None`: nothing to pace by.
    pub fn state(
        &self,
        unix_now: Duration,
        retry_after: Option<Duration>,
        max_wait: Duration,
    ) -> Option<State> {
        let mut state = self.said(unix_now, retry_after)?;
        state.reset = state.reset.min(max_wait);
        Some(state)
    }

    fn said(&self, unix_now: Duration, retry_after: Option<Duration>) -> Option<State> {
        let window = self.policy.map(|(_, w)| w);
        let current = self.current.and_then(|(r, t)| {
            let limit = self.policy.map(|(q, _)| q);
            state_of(Some(r), t.or(window), limit, unix_now, retry_after)
        });
        let families = [self.draft, self.x].map(|c| {
            let limit = c.limit.or(self.policy.map(|(q, _)| q));
            state_of(c.remaining, c.reset, limit, unix_now, retry_after)
        });
        // Only a policy: its quota over its window, as if the window had just begun.
        let policy = self.policy.map(|(q, w)| State {
            remaining: q,
            reset: Duration::from_secs(w),
            rounded: false,
            limit: Some(q),
        });
        let said = [current, families[0], families[1]];
        said.into_iter()
            .flatten()
            .reduce(|a, b| if b.constrains_more(&a) { b } else { a })
            .or(policy)
    }
}

impl State {
    /// Allows fewer requests per second than `other`; of two used up, the later reset.
    fn constrains_more(&self, other: &State) -> bool {
        match (self.remaining, other.remaining) {
            (0, 0) => self.reset > other.reset,
            (0, _) => true,
            (_, 0) => false,
            (mine, theirs) => {
                let (a, b) = (self.reset.as_secs_f64(), other.reset.as_secs_f64());
                (mine as f64) * b < (theirs as f64) * a
            }
        }
    }
}

/// `(remaining, reset seconds)` allows fewer requests per second than `other`.
fn constrains_more((r, t): (u64, u64), (r0, t0): (u64, u64)) -> bool {
    u128::from(r) * u128::from(t0) < u128::from(r0) * u128::from(t)
}

fn state_of(
    remaining: Option<u64>,
    reset: Option<u64>,
    limit: Option<u64>,
    unix_now: Duration,
    retry_after: Option<Duration>,
) -> Option<State> {
    let remaining = remaining?;
    let (reset, rounded) = match reset {
        Some(ms) if ms > EPOCH_MS_ABOVE => {
            (Duration::from_millis(ms).saturating_sub(unix_now), false)
        }
        Some(at) if at > EPOCH_ABOVE => (Duration::from_secs(at).saturating_sub(unix_now), false),
        Some(secs) => (Duration::from_secs(secs), true),
        None if remaining == 0 => (retry_after?, true),
        None => return None,
    };
    Some(State {
        remaining,
        reset,
        rounded,
        limit,
    })
}

/// The members of a list field (commas outside quoted strings part them), trimmed.
fn members(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut quoted = false;
    let mut escaped = false;
    value
        .split(move |&b| {
            let part = b == b',' && !quoted;
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                _ => {}
            }
            part
        })
        .map(<[u8]>::trim_ascii)
        .filter(|m| !m.is_empty())
}

/// The integer parameter `key` of a list member (`"name";key=12;other=3`); the member's own
/// value (before the first `;`) is not a parameter.
fn param(member: &[u8], key: &[u8]) -> Option<u64> {
    let name_end = match member.first() {
        // A quoted name may hold a `;`.
        Some(b'"') => 1 + member[1..].iter().position(|&b| b == b'"')?,
        _ => 0,
    };
    member[name_end..]
        .split(|&b| b == b';')
        .skip(1)
        .find_map(|p| {
            let (k, v) = split_once(p, b'=')?;
            (k.trim_ascii() == key).then(|| decimal(v)).flatten()
        })
}

/// The bytes before and after the first `at`.
fn split_once(bytes: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = bytes.iter().position(|&b| b == at)?;
    Some((&bytes[..i], &bytes[i + 1..]))
}

/// `  42 ` → 42: decimal digits between blanks; anything else does not read.
fn decimal(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// How requests are paced to a quota: none before `not_before`, then one every `spacing`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    pub not_before: Instant,
    pub spacing: Duration,
}

/// The pacing policy of one gate (a worker's, or a host's) that sees `share` of the requests
/// sent to a server (1/N when N workers all send to it: each sees the same quota).
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    share: f64,
}

impl Quota {
    pub fn new(share: f64) -> Quota {
        Quota {
            share: share.clamp(1e-6, 1.0),
        }
    }

    /// The pacing `state` calls for, read at `now` with `in_flight` requests of this gate sent
    /// and not yet answered (the server has not counted them yet): this gate's share of the
    /// requests left spread evenly until the reset, or none until then when its share is
    /// taken by what is in flight.
    pub fn pacing(&self, state: &State, now: Instant, in_flight: usize) -> Pacing {
        let mine = state.remaining as f64 * self.share - in_flight as f64;
        if mine < 1.0 {
            let wait = state.reset.max(MIN_EXHAUSTED_WAIT);
            // After the reset, at the quota's pace when known (the answers then say more).
            let per_window = state.limit.map_or(1.0, |l| l as f64 * self.share).max(1.0);
            return Pacing {
                not_before: now + wait,
                spacing: wait.div_f64(per_window),
            };
        }
        let over = match state.rounded {
            true => state.reset.saturating_sub(ROUNDING),
            false => state.reset,
        };
        Pacing {
            not_before: now,
            spacing: over.div_f64(mine),
        }
    }
}

/// A gate's schedule under the quota its server says: when the next request may go, and the
/// time requests waited for it.
#[derive(Debug)]
pub struct QuotaSchedule {
    quota: Quota,
    pacing: Cell<Option<Pacing>>,
    next_at: Cell<Option<Instant>>,
    /// Time during which some request waited for the quota, and where that time was counted to.
    waited: Cell<Duration>,
    counted_to: Cell<Option<Instant>>,
    /// When a change was last said (`-v`), and the spacing it said.
    said: Cell<Option<(Instant, Duration)>>,
}

impl QuotaSchedule {
    pub fn new(quota: Quota) -> QuotaSchedule {
        QuotaSchedule {
            quota,
            pacing: Cell::new(None),
            next_at: Cell::new(None),
            waited: Cell::new(Duration::ZERO),
            counted_to: Cell::new(None),
            said: Cell::new(None),
        }
    }

    /// An answer said `state`: the pacing from now on. Returns it when it is worth saying
    /// (`-v`): pacing began, a wait for the reset began, or the spacing changed by more than a
    /// quarter — at most once per second.
    pub fn observe(&self, state: &State, now: Instant, in_flight: usize) -> Option<Pacing> {
        let pacing = self.quota.pacing(state, now, in_flight);
        self.pacing.set(Some(pacing));
        if pacing.not_before > now {
            // Requests already scheduled wait for the reset too.
            self.next_at.set(Some(pacing.not_before));
        } else if let Some(next) = self.next_at.get() {
            // A shorter spacing applies from the next request on, not after the old one.
            self.next_at.set(Some(next.min(now + pacing.spacing)));
        }
        let changed = match self.said.get() {
            None => true,
            Some((at, spacing)) => {
                let ratio = pacing.spacing.as_secs_f64() / spacing.as_secs_f64().max(1e-9);
                now.duration_since(at) >= SAY_EVERY
                    && (pacing.not_before > now || (ratio - 1.0).abs() > SAY_CHANGE)
            }
        };
        changed.then(|| {
            self.said.set(Some((now, pacing.spacing)));
            pacing
        })
    }

    /// The time a request that could go at `at` (read at `now`) may go under the quota; it
    /// takes its place in the schedule.
    pub fn hold(&self, at: Instant, now: Instant) -> Instant {
        let Some(pacing) = self.pacing.get() else {
            return at;
        };
        let due = self
            .next_at
            .get()
            .map_or(at, |next| next.max(at))
            .max(pacing.not_before);
        self.next_at.set(Some(due + pacing.spacing));
        if due > at {
            // Counted once however many requests wait at the same time.
            let from = self.counted_to.get().map_or(at, |c| c.max(at)).max(now);
            if due > from {
                self.waited.set(self.waited.get() + (due - from));
                self.counted_to.set(Some(due));
            }
        }
        due
    }

    /// The quota holds requests back until then (a request woken earlier waits again).
    pub fn not_before(&self) -> Option<Instant> {
        self.pacing.get().map(|p| p.not_before)
    }

    /// Time during which some request waited because of the quota.
    pub fn waited(&self) -> Duration {
        self.waited.get()
    }
}

/// The line `-v` prints when pacing to `host`'s quota begins or changes.
/// Now as a Unix time: a reset may be one. Read only for answers that have these headers.
pub fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

pub fn describe(host: &str, state: &State, pacing: &Pacing, now: Instant) -> String {
    let wait = pacing.not_before.saturating_duration_since(now);
    let pace = if wait > Duration::ZERO {
        format!("none for {:.1} s", wait.as_secs_f64())
    } else {
        format!("one every {:.1} ms", pacing.spacing.as_secs_f64() * 1e3)
    };
    format!(
        "ringscrape: {host} says {} requests left, reset in {:.1} s: {pace} from this worker",
        state.remaining,
        state.reset.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_UNIX: Duration = Duration::from_secs(1_765_000_000);

    fn read(headers: &[(&str, &str)]) -> Reading {
        let mut reading = Reading::default();
        for (name, value) in headers {
            if let Some(field) = Field::of(name.as_bytes()) {
                reading.take(field, value.as_bytes());
            }
        }
        reading
    }

    fn state(headers: &[(&str, &str)]) -> Option<State> {
        read(headers).state(NOW_UNIX, None, Duration::MAX)
    }

    fn left(remaining: u64, reset_s: u64, rounded: bool, limit: Option<u64>) -> State {
        State {
            remaining,
            reset: Duration::from_secs(reset_s),
            rounded,
            limit,
        }
    }

    #[test]
    fn names_are_told_apart_in_any_case_and_others_are_not_taken() {
        assert_eq!(Field::of(b"RateLimit"), Some(Field::Current));
        assert_eq!(Field::of(b"ratelimit-policy"), Some(Field::Policy));
        assert_eq!(
            Field::of(b"RateLimit-Remaining"),
            Some(Field::Remaining(Family::Draft))
        );
        assert_eq!(
            Field::of(b"x-ratelimit-reset"),
            Some(Field::Reset(Family::X))
        );
        assert_eq!(
            Field::of(b"X-RATELIMIT-LIMIT"),
            Some(Field::Limit(Family::X))
        );
        for other in [
            "x-ratelimit",
            "x-ratelimit-policy",
            "ratelimit-used",
            "retry-after",
            "content-length",
            "x-ratelimit-resource",
            "r",
            "",
        ] {
            assert_eq!(Field::of(other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn draft_07_headers_give_remaining_and_a_delay() {
        let said = state(&[
            ("RateLimit-Limit", "100"),
            ("RateLimit-Remaining", "37"),
            ("RateLimit-Reset", " 12 "),
        ]);
        assert_eq!(said, Some(left(37, 12, true, Some(100))));
        // The dictionary of drafts 05–07 in one field says the same.
        let dict = state(&[("RateLimit", "limit=100, remaining=37, reset=12")]);
        assert_eq!(dict, said);
    }

    #[test]
    fn draft_08_fields_give_the_most_constraining_policy() {
        let said = state(&[
            (
                "RateLimit-Policy",
                r#""burst";q=100;w=1, "day";q=1000;w=86400"#,
            ),
            ("RateLimit", r#""burst";r=37;t=1, "day";r=10;t=3600"#),
        ]);
        // 10 in an hour constrains more than 37 in a second.
        assert_eq!(said, Some(left(10, 3600, true, Some(1000))));
        // A policy alone: its quota over its window; the tighter of two.
        let policy = state(&[("RateLimit-Policy", r#"a;q=100;w=60, "b;x";q=10;w=60"#)]);
        assert_eq!(policy, Some(left(10, 60, false, Some(10))));
        // No `t`: the policy's window.
        let no_t = state(&[
            ("RateLimit-Policy", r#""p";q=50;w=30"#),
            ("RateLimit", r#""p";r=5"#),
        ]);
        assert_eq!(no_t, Some(left(5, 30, true, Some(50))));
    }

    #[test]
    fn x_headers_with_a_unix_time_reset_are_a_delay_from_now() {
        let reset = (NOW_UNIX.as_secs() + 42).to_string();
        let said = state(&[
            ("X-RateLimit-Limit", "5000"),
            ("X-RateLimit-Remaining", "4999"),
            ("X-RateLimit-Reset", &reset),
        ]);
        assert_eq!(said, Some(left(4999, 42, false, Some(5000))));
        // Milliseconds too; a reset already passed is now.
        let ms = (NOW_UNIX.as_millis() + 1500).to_string();
        let in_ms = state(&[("x-ratelimit-remaining", "3"), ("x-ratelimit-reset", &ms)]);
        assert_eq!(in_ms.map(|s| s.reset), Some(Duration::from_millis(1500)));
        let past = (NOW_UNIX.as_secs() - 10).to_string();
        let gone = state(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &past)]);
        assert_eq!(gone.map(|s| s.reset), Some(Duration::ZERO));
        // Others send a delay in the same header.
        let delay = state(&[("x-ratelimit-remaining", "9"), ("x-ratelimit-reset", "60")]);
        assert_eq!(delay, Some(left(9, 60, true, None)));
    }

    #[test]
    fn malformed_values_are_ignored() {
        for headers in [
            &[("RateLimit-Remaining", "-1"), ("RateLimit-Reset", "5")][..],
            &[("RateLimit-Remaining", "ten"), ("RateLimit-Reset", "5")],
            &[
                ("RateLimit-Remaining", "99999999999999999999999"),
                ("RateLimit-Reset", "5"),
            ],
            &[("RateLimit", r#""p";r=;t=5"#)],
            &[("RateLimit", r#""p;r=3;t=5"#)],
            &[("RateLimit-Policy", r#""p";q=10;w=0"#)],
            &[("RateLimit-Remaining", "5")],
            &[("RateLimit-Reset", "5")],
            &[("X-RateLimit-Remaining", "")],
        ] {
            assert_eq!(state(headers), None, "{headers:?}");
        }
        // A good family beside a bad one still reads.
        let mixed = state(&[
            ("RateLimit-Remaining", "x"),
            ("X-RateLimit-Remaining", "4"),
            ("X-RateLimit-Reset", "2"),
        ]);
        assert_eq!(mixed, Some(left(4, 2, true, None)));
    }

    #[test]
    fn families_and_retry_after_combine() {
        // Several families: the one that allows least.
        let both = state(&[
            ("RateLimit-Remaining", "50"),
            ("RateLimit-Reset", "10"),
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", "3"),
        ]);
        assert_eq!(both, Some(left(0, 3, true, None)));
        // Used up with no reset said: `Retry-After` says when.
        let reading = read(&[("RateLimit-Remaining", "0")]);
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            reading.state(NOW_UNIX, wait, Duration::MAX),
            Some(left(0, 7, true, None))
        );
        assert_eq!(reading.state(NOW_UNIX, None, Duration::MAX), None);
        assert!(Reading::default().is_empty() && !reading.is_empty());
    }

    #[test]
    fn a_reset_further_off_than_the_longest_wait_is_the_longest_wait() {
        let max = Duration::from_secs(60);
        // A Unix time three thousand years ahead, and a delay of three years.
        for headers in [
            [
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "99999999999"),
            ],
            [
                ("RateLimit", "\"p\";r=0;t=99999999"),
                ("RateLimit-Policy", "\"p\";q=10;w=1"),
            ],
        ] {
            let said = read(&headers).state(NOW_UNIX, None, max);
            assert_eq!(
                said.map(|s| (s.remaining, s.reset)),
                Some((0, max)),
                "{headers:?}"
            );
        }
        // A reset within it is kept as said.
        let near = read(&[("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "7")]);
        let said = near.state(NOW_UNIX, None, max);
        assert_eq!(said.map(|s| s.reset), Some(Duration::from_secs(7)));
    }

    #[test]
    fn the_share_left_is_spread_until_the_reset_and_none_go_when_it_is_used() {
        let now = Instant::now();
        // 2 workers, 101 left over 10 s (maybe rounded up: 9.5 s), 0.5 in flight here.
        let pacing = Quota::new(0.5).pacing(&left(101, 10, true, Some(200)), now, 0);
        assert_eq!(pacing.not_before, now);
        assert_eq!(pacing.spacing, Duration::from_secs_f64(9.5 / 50.5));
        let exact = Quota::new(1.0).pacing(&left(11, 10, false, None), now, 1);
        assert_eq!(exact.spacing, Duration::from_secs(1));
        // This worker's share is in flight already: none until the reset, then at the quota's
        // pace.
        let used = Quota::new(0.5).pacing(&left(4, 2, true, Some(100)), now, 2);
        assert_eq!(used.not_before, now + Duration::from_secs(2));
        assert_eq!(used.spacing, Duration::from_millis(40));
        let gone = Quota::new(1.0).pacing(&left(0, 0, true, None), now, 0);
        assert_eq!(gone.not_before, now + MIN_EXHAUSTED_WAIT);
    }

    #[test]
    fn the_schedule_spaces_requests_waits_for_the_reset_and_counts_the_wait() {
        let schedule = QuotaSchedule::new(Quota::new(1.0));
        let now = Instant::now();
        assert_eq!(schedule.hold(now, now), now, "no quota said: no pacing");
        let said = schedule.observe(&left(10, 1, false, None), now, 0);
        assert!(said.is_some(), "pacing began: said");
        let ms = Duration::from_millis;
        assert_eq!(schedule.hold(now, now), now);
        assert_eq!(schedule.hold(now, now), now + ms(100));
        assert_eq!(schedule.hold(now, now), now + ms(200));
        // Two waited at once: counted once, to the later one's time.
        assert_eq!(schedule.waited(), ms(200));
        // Used up: the next goes at the reset, and the wait is counted.
        let t = now + ms(250);
        assert!(
            schedule.observe(&left(0, 2, false, None), t, 0).is_none(),
            "said <1 s ago"
        );
        assert_eq!(schedule.not_before(), Some(t + ms(2000)));
        assert_eq!(schedule.hold(t, t), t + ms(2000));
        assert_eq!(schedule.waited(), ms(200) + ms(2000));
        // A second later, a change is said again.
        let later = now + ms(1300);
        assert!(
            schedule
                .observe(&left(0, 1, false, None), later, 0)
                .is_some()
        );
        // Idle time saves up no burst.
        let idle = now + Duration::from_secs(10);
        schedule.observe(&left(100, 10, false, None), idle, 0);
        assert_eq!(schedule.hold(idle, idle), idle);
        assert_eq!(schedule.hold(idle, idle), idle + ms(100));
    }

    #[test]
    fn the_line_said_names_the_host_and_the_pace() {
        let now = Instant::now();
        let state = left(37, 12, true, None);
        let paced = Pacing {
            not_before: now,
            spacing: Duration::from_millis(250),
        };
        let line = describe("api.example", &state, &paced, now);
        assert_eq!(
            line,
            "ringscrape: api.example says 37 requests left, reset in 12.0 s: \
             one every 250.0 ms from this worker"
        );
        let waits = Pacing {
            not_before: now + Duration::from_secs(3),
            ..paced
        };
        assert!(describe("h", &state, &waits, now).contains("none for 3.0 s"));
    }
}
