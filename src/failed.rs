//! Which rows count as failed: what `--resume --retry-failed[=LIST]` fetches again, one
//! predicate for every reader of it. Bare, every row that is not a success (an error, or a
//! status other than 2xx); with a list, only the kinds named: `errors` (every error row), an
//! error kind (`dns`, `tls`, `timeout`…), a status class (`5xx`) or a status (`429`).
//! `--max-failed` counts rows the same way when `--retry-failed=LIST` is given, else
//! [`FailedRows::AT_LEAST_400`].

use crate::model::{ErrorKind, is_success};
use crate::stats::WorkerStats;

/// Statuses are three digits: one bit each below 1000.
const STATUS_WORDS: usize = 16;

/// `--max-failed`: the share of this run's rows allowed to fail, and which rows count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaxFailed {
    /// A ratio, 0 to 1.
    pub limit: f64,
    /// As `--retry-failed=LIST` counts them when given, else [`FailedRows::AT_LEAST_400`].
    pub counts: FailedRows,
}

/// A set of rows that count as failed, by error kind and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedRows {
    /// Bit `ErrorKind::slot` set: rows with that error count.
    error_kinds: u32,
    /// Bit `s` set: rows with status `s` (and no error) count.
    statuses: [u64; STATUS_WORDS],
    /// Rows with neither status nor error (none are written today) count.
    no_status: bool,
}

impl FailedRows {
    /// Error rows and statuses of 400 or more: what `--max-failed` counts by default and what
    /// the first rows' warning calls failed (a 3xx left by `--follow-redirects 0` is an
    /// answer, not a failure).
    pub const AT_LEAST_400: FailedRows = {
        let mut rows = FailedRows {
            error_kinds: u32::MAX,
            statuses: [0; STATUS_WORDS],
            no_status: false,
        };
        let mut status = 400;
        while status < 1000 {
            rows.statuses[status / 64] |= 1 << (status % 64);
            status += 1;
        }
        rows
    };

    /// Every row that is not a success: the bare `--retry-failed`.
    pub fn unsuccessful() -> FailedRows {
        let mut rows = FailedRows::none();
        rows.error_kinds = u32::MAX;
        rows.no_status = true;
        for status in (0..1000).filter(|s| !(200..300).contains(s)) {
            rows.add_status(status);
        }
        rows
    }

    fn none() -> FailedRows {
        FailedRows {
            error_kinds: 0,
            statuses: [0; STATUS_WORDS],
            no_status: false,
        }
    }

    fn add_status(&mut self, status: u16) {
        self.statuses[usize::from(status) / 64] |= 1 << (status % 64);
    }

    /// `LIST` of `--retry-failed=LIST` (comma-separated); empty is the bare flag.
    pub fn parse(list: &str) -> Result<FailedRows, String> {
        if list.trim().is_empty() {
            return Ok(FailedRows::unsuccessful());
        }
        let mut rows = FailedRows::none();
        for word in list.split(',').map(str::trim) {
            let class = word
                .strip_suffix("xx")
                .and_then(|digit| digit.parse::<u16>().ok())
                .filter(|digit| (1..=9).contains(digit));
            if word == "errors" {
                rows.error_kinds = u32::MAX;
            } else if let Some(kind) = ErrorKind::parse(word) {
                rows.error_kinds |= 1 << kind.slot();
            } else if let Some(digit) = class {
                (digit * 100..digit * 100 + 100).for_each(|s| rows.add_status(s));
            } else if let Some(status) =
                word.parse::<u16>().ok().filter(|s| (100..1000).contains(s))
            {
                rows.add_status(status);
            } else {
                return Err(format!(
                    "--retry-failed={list}: `{word}` is not errors, an error kind ({}), a status class (5xx) or a status (429)",
                    ErrorKind::ALL.map(ErrorKind::as_str).join(", ")
                ));
            }
        }
        Ok(rows)
    }

    /// True when a row of `status` and `error` counts as failed.
    pub fn counts(&self, status: Option<u16>, error: Option<ErrorKind>) -> bool {
        match (error, status) {
            (Some(kind), _) => self.error_kinds & (1 << kind.slot()) != 0,
            (None, Some(status)) if status < 1000 => {
                self.statuses[usize::from(status) / 64] & (1 << (status % 64)) != 0
            }
            (None, Some(_)) => !is_success(status, error),
            (None, None) => self.no_status,
        }
    }

    /// The rows of `labelled` that count as failed: counts by error kind or status as a resume
    /// tallies kept rows (`dns`, `404`, `none`: [`crate::output::resume::Resumed::kept_failed`]).
    pub fn count_labelled(&self, labelled: &std::collections::BTreeMap<String, u64>) -> u64 {
        labelled
            .iter()
            .filter(|(label, _)| match ErrorKind::parse(label) {
                Some(kind) => self.counts(None, Some(kind)),
                None => self.counts(label.parse().ok(), None),
            })
            .map(|(_, rows)| rows)
            .sum()
    }

    /// The rows of `stats` that count as failed, from its counts by error kind and status.
    pub fn count_in(&self, stats: &WorkerStats) -> u64 {
        let errors: u64 = ErrorKind::ALL
            .iter()
            .filter(|kind| self.error_kinds & (1 << kind.slot()) != 0)
            .map(|kind| stats.errors_by_kind[kind.slot()])
            .sum();
        let statuses: u64 = stats
            .statuses
            .iter()
            .filter(|&(&status, _)| self.counts(Some(status), None))
            .map(|(_, rows)| rows)
            .sum();
        errors + statuses
    }
}

impl Default for FailedRows {
    fn default() -> FailedRows {
        FailedRows::unsuccessful()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_counts_every_unsuccessful_row_and_a_list_only_what_it_names() {
        let bare = FailedRows::parse("").expect("bare");
        for (status, error) in [
            (Some(404), None),
            (Some(503), None),
            (None, Some(ErrorKind::Dns)),
            (Some(200), Some(ErrorKind::Decode)),
        ] {
            assert_eq!(bare.counts(status, error), !is_success(status, error));
        }
        assert!(!bare.counts(Some(204), None));
        let list = FailedRows::parse("errors,5xx,429").expect("list");
        assert!(list.counts(None, Some(ErrorKind::Tls)));
        assert!(list.counts(Some(503), None) && list.counts(Some(429), None));
        assert!(!list.counts(Some(404), None) && !list.counts(Some(200), None));
        let dns = FailedRows::parse("dns").expect("kind");
        assert!(dns.counts(None, Some(ErrorKind::Dns)));
        assert!(!dns.counts(None, Some(ErrorKind::Timeout)) && !dns.counts(Some(500), None));
        let err = FailedRows::parse("5xx,oops").expect_err("unknown word");
        assert!(err.contains("`oops` is not errors"), "{err}");
        assert!(FailedRows::parse("42").is_err());
    }

    #[test]
    fn at_least_400_counts_errors_and_4xx_5xx_not_3xx_and_tallies_agree_row_by_row() {
        let rule = FailedRows::AT_LEAST_400;
        assert!(rule.counts(Some(404), None) && rule.counts(Some(503), None));
        assert!(rule.counts(None, Some(ErrorKind::Timeout)));
        assert!(!rule.counts(Some(302), None) && !rule.counts(Some(200), None));
        let rows = [
            (Some(200), None),
            (Some(302), None),
            (Some(404), None),
            (Some(429), None),
            (Some(503), None),
            (None, Some(ErrorKind::Dns)),
            (Some(200), Some(ErrorKind::Decode)),
        ];
        let mut stats = WorkerStats::new();
        for (index, (status, error)) in rows.iter().enumerate() {
            stats.record(&crate::model::Record {
                index: index as u64,
                status: *status,
                error: *error,
                ..Default::default()
            });
        }
        for rule in [
            FailedRows::AT_LEAST_400,
            FailedRows::unsuccessful(),
            FailedRows::parse("errors,429").expect("list"),
            FailedRows::parse("5xx").expect("list"),
        ] {
            let by_row = rows.iter().filter(|(s, e)| rule.counts(*s, *e)).count();
            assert_eq!(rule.count_in(&stats), by_row as u64, "{rule:?}");
        }
    }
}
