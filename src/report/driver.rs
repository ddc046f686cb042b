//! Which event loop the workers ran on, as the summary shows it: the `driver` line on stderr and
//! the `driver`, `driver_workers` and `driver_why` keys of `--summary-json` (docs/guide.md, "In
//! containers": most container runtimes refuse io_uring, and ringscrape then runs on epoll).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::runtime::DriverChoice;

/// What `driver` says when the workers did not all run on one driver.
const MIXED: &str = "mixed";

/// The workers' drivers, in the summary's words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverView {
    /// `io_uring` or `epoll` when every worker ran on it, `mixed` when they differ
    /// (`driver_workers` then says how many on each); `None` when no worker said (none started,
    /// or a document of before issue 40).
    #[serde(default)]
    pub driver: Option<String>,
    /// Workers (shards) by driver.
    #[serde(default)]
    pub driver_workers: BTreeMap<String, u64>,
    /// Why a worker was not on io_uring: `RINGSCRAPE_DRIVER=epoll`, or `io_uring unavailable:
    /// …` with the kernel's answer (`Operation not permitted` under a seccomp profile that
    /// blocks it). `None` when every worker ran on io_uring.
    #[serde(default)]
    pub driver_why: Option<String>,
}

impl DriverView {
    /// The view of the workers' choices (one per worker that said).
    pub fn of(choices: &[DriverChoice]) -> DriverView {
        let mut driver_workers = BTreeMap::new();
        for choice in choices {
            *driver_workers
                .entry(choice.driver().name().to_string())
                .or_default() += 1;
        }
        let driver = match driver_workers.len() {
            0 => None,
            1 => driver_workers.keys().next().cloned(),
            _ => Some(MIXED.to_string()),
        };
        // A refusal tells more than a forced epoll; both in one run would be odd.
        let refused = choices
            .iter()
            .find(|c| matches!(c, DriverChoice::EpollFallback(_)));
        let driver_why = refused
            .or_else(|| choices.iter().find(|c| **c != DriverChoice::IoUring))
            .and_then(DriverChoice::why_not_io_uring);
        DriverView {
            driver,
            driver_workers,
            driver_why,
        }
    }

    /// The summary's `driver` line (nothing when no worker said).
    pub fn write_text(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(driver) = &self.driver else {
            return Ok(());
        };
        write!(f, "  driver     ")?;
        if driver == MIXED {
            let each: Vec<String> = self
                .driver_workers
                .iter()
                .map(|(name, n)| format!("{name} on {n}"))
                .collect();
            write!(f, "mixed: {} workers", each.join(", "))?;
        } else {
            write!(f, "{driver}")?;
        }
        match &self.driver_why {
            Some(why) => writeln!(f, " ({why})"),
            None => writeln!(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Line<'a>(&'a DriverView);

    impl fmt::Display for Line<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.write_text(f)
        }
    }

    fn line(choices: &[DriverChoice]) -> String {
        Line(&DriverView::of(choices)).to_string()
    }

    #[test]
    fn one_driver_is_named_with_why_when_not_io_uring() {
        let refused = DriverChoice::EpollFallback("Operation not permitted".into());
        assert_eq!(
            line(&[DriverChoice::IoUring, DriverChoice::IoUring]),
            "  driver     io_uring\n"
        );
        assert_eq!(
            line(&[refused.clone(), refused]),
            "  driver     epoll (io_uring unavailable: Operation not permitted)\n"
        );
        assert_eq!(
            line(&[DriverChoice::EpollForced]),
            "  driver     epoll (RINGSCRAPE_DRIVER=epoll)\n"
        );
        assert_eq!(line(&[]), "", "no worker said: no line");
    }

    #[test]
    fn workers_on_different_drivers_are_counted_not_summed_up_as_one() {
        let refused = DriverChoice::EpollFallback("Operation not permitted".into());
        let choices = [
            DriverChoice::IoUring,
            DriverChoice::IoUring,
            DriverChoice::IoUring,
            refused,
        ];
        assert_eq!(
            line(&choices),
            "  driver     mixed: epoll on 1, io_uring on 3 workers \
             (io_uring unavailable: Operation not permitted)\n"
        );
        let view = DriverView::of(&choices);
        let json = serde_json::to_value(&view).expect("serialises");
        assert_eq!(json["driver"], "mixed");
        assert_eq!(json["driver_workers"]["io_uring"], 3);
        assert_eq!(json["driver_workers"]["epoll"], 1);
    }
}
