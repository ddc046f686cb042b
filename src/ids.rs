//! Id ranges: parsing `START..END` (half-open) and splitting a range across shards.
//!
//! A job is a sequence of items, each with an index (`u64`, its place in the job) and a key (the
//! text that replaces `{id}`). For a numeric range the index *is* the id, so the key is its decimal
//! form; later id sources (a file of lines) keep the same index-based splitting and resume bitmap.

use std::fmt;
use std::str::FromStr;

/// A half-open range of ids, `start..end`, never empty once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdRange {
    pub start: u64,
    pub end: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdRangeError {
    #[error("--ids {0}: expected START..END, e.g. 0..1000000")]
    Syntax(String),
    #[error("--ids {0}: {1} is not a whole number")]
    Number(String, String),
    #[error("--ids {0}: end is before start")]
    Reversed(String),
    #[error("--ids {0}: the range is empty")]
    Empty(String),
}

impl IdRange {
    pub fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// Number of ids in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    pub fn contains(&self, id: u64) -> bool {
        self.start <= id && id < self.end
    }

    /// Splits into `parts` contiguous sub-ranges whose sizes differ by at most one; the first
    /// `len % parts` get the extra id. Parts beyond the range's length come out empty, so the
    /// caller decides whether to run them (the supervisor never spawns more shards than ids).
    pub fn split(&self, parts: usize) -> Vec<IdRange> {
        let parts = parts.max(1) as u64;
        let base = self.len() / parts;
        let extra = self.len() % parts;
        let mut start = self.start;
        (0..parts)
            .map(|k| {
                let size = base + u64::from(k < extra);
                let part = IdRange::new(start, start + size);
                start += size;
                part
            })
            .collect()
    }
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

impl FromStr for IdRange {
    type Err = IdRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (a, b) = text
            .split_once("..")
            .ok_or_else(|| IdRangeError::Syntax(text.to_string()))?;
        let number = |s: &str| {
            s.trim()
                .replace('_', "")
                .parse::<u64>()
                .map_err(|_| IdRangeError::Number(text.to_string(), s.to_string()))
        };
        let (start, end) = (number(a)?, number(b)?);
        if end < start {
            return Err(IdRangeError::Reversed(text.to_string()));
        }
        if end == start {
            return Err(IdRangeError::Empty(text.to_string()));
        }
        Ok(IdRange::new(start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_half_open_ranges_with_underscores() {
        assert_eq!("0..1000".parse(), Ok(IdRange::new(0, 1000)));
        assert_eq!("5..50_000_000".parse(), Ok(IdRange::new(5, 50_000_000)));
    }

    #[test]
    fn rejects_bad_ranges_with_the_reason() {
        assert!(matches!(
            "abc".parse::<IdRange>(),
            Err(IdRangeError::Syntax(_))
        ));
        assert!(matches!(
            "a..5".parse::<IdRange>(),
            Err(IdRangeError::Number(..))
        ));
        assert!(matches!(
            "10..5".parse::<IdRange>(),
            Err(IdRangeError::Reversed(_))
        ));
        assert!(matches!(
            "7..7".parse::<IdRange>(),
            Err(IdRangeError::Empty(_))
        ));
        assert!(matches!(
            "-1..5".parse::<IdRange>(),
            Err(IdRangeError::Number(..))
        ));
    }

    #[test]
    fn split_covers_the_range_without_overlap_and_sizes_differ_by_at_most_one() {
        for (start, end, parts) in [
            (0, 20_000, 2),
            (3, 103, 7),
            (0, 5, 8),
            (10, 11, 3),
            (0, 1_000_003, 4),
        ] {
            let range = IdRange::new(start, end);
            let split = range.split(parts);
            assert_eq!(split.len(), parts);
            assert_eq!(split[0].start, start);
            assert_eq!(split.last().map(|r| r.end), Some(end));
            for pair in split.windows(2) {
                assert_eq!(pair[0].end, pair[1].start, "contiguous, no gap or overlap");
            }
            let sizes: Vec<u64> = split.iter().map(IdRange::len).collect();
            let (min, max) = (sizes.iter().min().copied(), sizes.iter().max().copied());
            assert!(
                max.zip(min).is_some_and(|(max, min)| max - min <= 1),
                "{sizes:?}"
            );
            assert_eq!(sizes.iter().sum::<u64>(), range.len());
        }
    }
}
