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

/// A set of ids within a range, one bit per id: 50 million ids take 6.25 MB. Resume uses it for
/// the ids that already have a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdSet {
    range: IdRange,
    words: Vec<u64>,
}

impl IdSet {
    pub fn new(range: IdRange) -> Self {
        let words = usize::try_from(range.len().div_ceil(64)).expect("range fits in memory");
        Self {
            range,
            words: vec![0; words],
        }
    }

    pub fn range(&self) -> IdRange {
        self.range
    }

    fn slot(&self, id: u64) -> (usize, u64) {
        let offset = id - self.range.start;
        ((offset / 64) as usize, 1 << (offset % 64))
    }

    /// Adds `id` (which must be in the range); returns false if it was already there.
    pub fn insert(&mut self, id: u64) -> bool {
        debug_assert!(self.range.contains(id));
        let (word, bit) = self.slot(id);
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        fresh
    }

    pub fn contains(&self, id: u64) -> bool {
        if !self.range.contains(id) {
            return false;
        }
        let (word, bit) = self.slot(id);
        self.words[word] & bit != 0
    }

    /// Number of ids in the set.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Adds every id of `other`, a set over the same range.
    pub fn union_with(&mut self, other: &IdSet) {
        debug_assert_eq!(self.range, other.range);
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine |= theirs;
        }
    }

    /// Ids of `sub` that are in the set, as a new set over `sub`.
    pub fn restrict(&self, sub: IdRange) -> IdSet {
        let mut out = IdSet::new(sub);
        for id in sub.start..sub.end {
            if self.contains(id) {
                out.insert(id);
            }
        }
        out
    }

    /// Splits the range into `parts` contiguous sub-ranges holding about the same number of ids
    /// *not* in the set, so a resumed run spreads the remaining work evenly over its shards.
    pub fn split_remaining(&self, parts: usize) -> Vec<IdRange> {
        let parts = parts.max(1) as u64;
        let remaining = self.range.len() - self.count();
        let mut cuts = Vec::with_capacity(parts as usize + 1);
        cuts.push(self.range.start);
        let mut seen = 0u64;
        let mut next_part = 1u64;
        for id in self.range.start..self.range.end {
            if next_part >= parts {
                break;
            }
            if !self.contains(id) {
                seen += 1;
                // Cut after the id that completes this part's share.
                if seen == remaining * next_part / parts {
                    cuts.push(id + 1);
                    next_part += 1;
                }
            }
        }
        while cuts.len() < parts as usize {
            cuts.push(self.range.end);
        }
        cuts.push(self.range.end);
        cuts.windows(2).map(|w| IdRange::new(w[0], w[1])).collect()
    }

    /// A set over `range` from its words (bit k of word w: id `range.start + 64w + k`), as built
    /// by a reader that did not know the range's length up front. Missing words are empty.
    pub fn from_words(range: IdRange, mut words: Vec<u64>) -> IdSet {
        words.resize(range.len().div_ceil(64) as usize, 0);
        IdSet { range, words }
    }

    /// The set as little-endian 64-bit words (what a worker receives on stdin).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// Rebuilds a set over `range` from [`IdSet::to_bytes`]; `None` if the length is wrong.
    pub fn from_bytes(range: IdRange, bytes: &[u8]) -> Option<IdSet> {
        let mut set = IdSet::new(range);
        if bytes.len() != set.words.len() * 8 {
            return None;
        }
        for (word, chunk) in set.words.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(chunk.try_into().ok()?);
        }
        Some(set)
    }

    /// Byte length of [`IdSet::to_bytes`] for a set over `range`.
    pub fn byte_len(range: IdRange) -> usize {
        range.len().div_ceil(64) as usize * 8
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

    #[test]
    fn id_set_inserts_counts_and_round_trips_through_bytes() {
        let range = IdRange::new(100, 300);
        let mut set = IdSet::new(range);
        assert!(set.insert(100));
        assert!(set.insert(299));
        assert!(!set.insert(100), "second insert reports a duplicate");
        assert!(set.contains(299) && !set.contains(150) && !set.contains(5));
        assert_eq!(set.count(), 2);
        let bytes = set.to_bytes();
        assert_eq!(bytes.len(), IdSet::byte_len(range));
        assert_eq!(IdSet::from_bytes(range, &bytes), Some(set.clone()));
        assert_eq!(IdSet::from_bytes(range, &bytes[1..]), None);
        let sub = set.restrict(IdRange::new(250, 300));
        assert_eq!((sub.count(), sub.contains(299)), (1, true));
    }

    #[test]
    fn split_remaining_balances_the_ids_still_to_fetch() {
        let range = IdRange::new(0, 1000);
        let mut set = IdSet::new(range);
        // The first 900 are done: 100 remain, all at the end.
        for id in 0..900 {
            set.insert(id);
        }
        let parts = set.split_remaining(4);
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].start, 0);
        assert_eq!(parts[3].end, 1000);
        for pair in parts.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        let todo: Vec<u64> = parts
            .iter()
            .map(|p| (p.start..p.end).filter(|&id| !set.contains(id)).count() as u64)
            .collect();
        assert_eq!(todo, vec![25, 25, 25, 25]);
        // Nothing left: parts still cover the range.
        let mut full = IdSet::new(IdRange::new(0, 10));
        (0..10).for_each(|id| {
            full.insert(id);
        });
        let parts = full.split_remaining(3);
        assert_eq!((parts.len(), parts[0].start, parts[2].end), (3, 0, 10));
    }
}
