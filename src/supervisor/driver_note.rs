//! Says once per run on stderr that the workers run on epoll, and why (`RINGSCRAPE_DRIVER=epoll`,
//! or io_uring refused, as in most containers), from the drivers the workers' stats carry: a
//! worker does not say it itself, so eight shards do not say it eight times. The summary's
//! `driver` line says it again at the end (`report::driver`).

use std::cell::Cell;

use super::pipes::StatsBoard;

/// Whether the epoll line has been said.
#[derive(Debug, Default)]
pub(super) struct DriverNote {
    said: Cell<bool>,
}

impl DriverNote {
    /// Hands `say` the first epoll line of a worker on the board, unless one was said already.
    pub(super) fn look(&self, board: &StatsBoard, say: impl FnOnce(&str)) {
        if self.said.get() {
            return;
        }
        let line = board.lock().ok().and_then(|board| {
            board
                .iter()
                .find_map(|stats| stats.driver.as_ref()?.epoll_line())
        });
        if let Some(line) = line {
            self.said.set(true);
            say(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::runtime::DriverChoice;
    use crate::stats::WorkerStats;

    fn board(drivers: &[Option<DriverChoice>]) -> StatsBoard {
        let stats = drivers.iter().map(|driver| WorkerStats {
            driver: driver.clone(),
            ..WorkerStats::new()
        });
        Arc::new(Mutex::new(stats.collect()))
    }

    fn said(note: &DriverNote, board: &StatsBoard) -> Vec<String> {
        let mut lines = Vec::new();
        note.look(board, |line| lines.push(line.to_string()));
        lines
    }

    #[test]
    fn a_fallback_is_said_once_however_many_workers_fell_back() {
        let refused = DriverChoice::EpollFallback("Operation not permitted".into());
        let board = board(&[
            None,
            Some(DriverChoice::IoUring),
            Some(refused.clone()),
            Some(refused),
        ]);
        let note = DriverNote::default();
        let first = said(&note, &board);
        assert_eq!(first.len(), 1);
        assert!(
            first[0].contains("io_uring unavailable (Operation not permitted)"),
            "{first:?}"
        );
        assert!(said(&note, &board).is_empty(), "said again");
    }

    #[test]
    fn io_uring_is_not_news_and_a_later_fallback_still_is() {
        let note = DriverNote::default();
        assert!(said(&note, &board(&[Some(DriverChoice::IoUring), None])).is_empty());
        let later = board(&[Some(DriverChoice::IoUring), Some(DriverChoice::EpollForced)]);
        assert_eq!(
            said(&note, &later),
            ["ringscrape: RINGSCRAPE_DRIVER=epoll; using the epoll driver"]
        );
    }
}
