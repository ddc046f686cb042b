//! RLIMIT_NOFILE: raise the soft limit to the hard limit before spawning (workers inherit it),
//! and refuse a run whose sockets can't fit before any request is made.
//!
//! The limit is per process, so what must fit is one worker's share: `concurrency` sockets (plus
//! one being replaced after an error, and with `--bodies-dir` the file a body is spooled to) and
//! a margin for the runtime, pipes and std streams. The whole run (`shards × concurrency`) must
//! also fit the kernel's system-wide `fs.file-max`.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

pub use crate::runtime::{MARGIN_PER_PROCESS, files_per_slot};

/// What the run asks for: in-flight requests per worker (`auto`: `--concurrency auto`'s most),
/// and the descriptors each holds.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    pub concurrency: usize,
    pub auto: bool,
    pub files_each: u64,
}

/// Descriptors one worker needs.
pub fn per_worker_need(slots: Slots) -> u64 {
    slots.files_each * slots.concurrency as u64 + MARGIN_PER_PROCESS
}

/// Descriptors the whole run holds at once.
pub fn run_need(shards: usize, slots: Slots) -> u64 {
    shards as u64 * per_worker_need(slots) + MARGIN_PER_PROCESS
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error(
        "--concurrency {concurrency}: each worker needs {need} open files but the hard limit is {hard}; \
         lower --concurrency or raise the limit (check `ulimit -Hn`, set `ulimit -n {need}` as root or in limits.conf)"
    )]
    PerWorker {
        /// As given: a number, or `auto (up to N)`.
        concurrency: String,
        need: u64,
        hard: u64,
    },
    #[error(
        "--shards {shards} × --concurrency {concurrency}: the run needs {need} open files but the system allows {max} (fs.file-max); \
         lower --shards or --concurrency"
    )]
    System {
        shards: usize,
        concurrency: String,
        need: u64,
        max: u64,
    },
    #[error("reading or raising RLIMIT_NOFILE: {0}")]
    Sys(#[from] nix::Error),
}

/// `--concurrency` as the user gave it, for messages: `auto` is not the most it may reach.
fn shown(concurrency: usize, auto: bool) -> String {
    if auto {
        format!("auto (up to {concurrency})")
    } else {
        concurrency.to_string()
    }
}

/// Checks the arithmetic against a hard limit and the system-wide maximum.
pub fn check(shards: usize, slots: Slots, hard: u64, system_max: u64) -> Result<(), LimitError> {
    let need = per_worker_need(slots);
    if need > hard {
        return Err(LimitError::PerWorker {
            concurrency: shown(slots.concurrency, slots.auto),
            need,
            hard,
        });
    }
    let total = run_need(shards, slots);
    if total > system_max {
        return Err(LimitError::System {
            shards,
            concurrency: shown(slots.concurrency, slots.auto),
            need: total,
            max: system_max,
        });
    }
    Ok(())
}

fn system_file_max() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/file-max")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(u64::MAX)
}

/// The most a process may raise its hard limit to, when it may raise it at all (`fs.nr_open`).
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Raises the soft limit to the hard limit (what children inherit) after checking the run fits.
/// When a worker needs more than the hard limit, a process that may (root) raises the hard
/// limit too, as far as `fs.nr_open` allows. Returns the new soft limit.
pub fn raise_nofile(shards: usize, slots: Slots) -> Result<u64, LimitError> {
    let (_soft, mut hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let need = per_worker_need(slots);
    if need > hard
        && let Some(most) = nr_open()
        && setrlimit(Resource::RLIMIT_NOFILE, need.min(most), need.min(most)).is_ok()
    {
        hard = need.min(most);
    }
    check(shards, slots, hard, system_file_max())?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// Local ports the kernel hands to outgoing connections, from `net.ipv4.ip_local_port_range`.
fn local_port_range() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = text.split_whitespace().map(str::parse::<u32>);
    match (bounds.next(), bounds.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => Some((low, high)),
        _ => None,
    }
}

/// Advice when `connections` to one address take more than half the local port range: the
/// kernel first tries the even ports for `connect()` and only then the odd ones, scanning the
/// whole half for each connect past that. Measured: 16,384 connections with the default
/// 32768–60999 made some connects take 2.5 s and the p99 3 s instead of 1.1 s.
pub fn port_advice(connections: u64, range: Option<(u32, u32)>) -> Option<String> {
    let (low, high) = range?;
    let ports = u64::from(high - low) + 1;
    (connections > ports / 2).then(|| {
        format!(
            "ringscrape: {connections} connections to one address need more than half of the \
             {ports} local ports (net.ipv4.ip_local_port_range = {low} {high}), and connects slow \
             down past half; spread them over several source addresses (--local-addr \
             127.0.0.0/29 on loopback), widen the range (sysctl -w \
             net.ipv4.ip_local_port_range='1024 65535') or lower --concurrency"
        )
    })
}

/// [`port_advice`] for this machine's port range.
pub fn port_advice_here(connections: u64) -> Option<String> {
    port_advice(connections, local_port_range())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advises_on_ports_past_half_the_range() {
        assert_eq!(port_advice(14_000, Some((32768, 60999))), None);
        let advice = port_advice(16_384, Some((32768, 60999))).expect("past half of 28232");
        assert!(advice.contains("28232 local ports"), "{advice}");
        assert!(advice.contains("--local-addr"), "{advice}");
        assert_eq!(port_advice(16_384, Some((1024, 65535))), None);
        assert_eq!(port_advice(1 << 20, None), None);
    }

    #[test]
    fn need_grows_with_concurrency_and_shards() {
        assert_eq!(per_worker_need(plain(256)), 576);
        assert_eq!(run_need(4, plain(256)), 4 * 576 + 64);
        let spooling = Slots {
            files_each: files_per_slot(true),
            ..plain(256)
        };
        assert_eq!(per_worker_need(spooling), 3 * 256 + 64);
    }

    /// `concurrency` slots of a run without `--bodies-dir`.
    fn plain(concurrency: usize) -> Slots {
        Slots {
            concurrency,
            auto: false,
            files_each: files_per_slot(false),
        }
    }

    #[test]
    fn refuses_a_worker_that_cannot_fit_the_hard_limit() {
        assert_eq!(check(4, plain(256), 1024, u64::MAX), Ok(()));
        let err = check(1, plain(1000), 1024, u64::MAX).expect_err("2064 > 1024");
        assert_eq!(
            err,
            LimitError::PerWorker {
                concurrency: "1000".into(),
                need: 2064,
                hard: 1024
            }
        );
        assert!(err.to_string().contains("ulimit -Hn"));
        let most = Slots {
            auto: true,
            ..plain(1024)
        };
        let auto = check(1, most, 1024, u64::MAX).expect_err("auto's most");
        assert!(
            auto.to_string()
                .starts_with("--concurrency auto (up to 1024): "),
            "{auto}"
        );
    }

    #[test]
    fn refuses_a_run_that_cannot_fit_the_system() {
        let err = check(8, plain(1000), 1 << 20, 10_000).expect_err("8 workers × 2064 > 10000");
        assert!(matches!(err, LimitError::System { need: 16_576, .. }));
    }
}
