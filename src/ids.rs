//! Id ranges: parsing `START..END` (half-open) and splitting a range across shards.
//!
//! A job is a sequence of items, each with an index (`u64`, its place in the job) and a key (the
//! text that replaces `{id}`). For a numeric range the index *is* the id, so the key is its decimal
//! form; later id sources (a file of lines) keep the same index-based splitting and resume bitmap.

use std::fmt;

use roaring::RoaringTreemap;
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
        (0..parts).map(|k| self.part(k, parts)).collect()
    }

    /// Part `k` of `parts` (`k < parts`) as [`IdRange::split`] cuts it, without cutting the
    /// others: what one node of many takes.
    pub fn part(&self, k: u64, parts: u64) -> IdRange {
        let parts = parts.max(1);
        let (base, extra) = (self.len() / parts, self.len() % parts);
        // The parts before `k`: `k` of size `base`, plus one extra id for each of them below `extra`.
        let start = self.start + k * base + k.min(extra);
        IdRange::new(start, start + base + u64::from(k < extra))
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
            if s.trim().is_empty() {
                return Err(IdRangeError::Syntax(text.to_string()));
            }
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

/// A set of ids within a range, compressed (a roaring bitmap): memory follows the ids in the
/// set, not the width of the range, so `--resume` works over `0..2^64-1` as over `0..1000`.
/// Resume uses it for the ids that already have a row; workers get it compressed.
#[derive(Debug, Clone, PartialEq)]
pub struct IdSet {
    range: IdRange,
    ids: RoaringTreemap,
}

impl IdSet {
    pub fn new(range: IdRange) -> Self {
        Self {
            range,
            ids: RoaringTreemap::new(),
        }
    }

    pub fn range(&self) -> IdRange {
        self.range
    }

    /// Adds `id` (which must be in the range); returns false if it was already there.
    pub fn insert(&mut self, id: u64) -> bool {
        debug_assert!(self.range.contains(id));
        self.ids.insert(id)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.range.contains(id) && self.ids.contains(id)
    }

    /// Every id of `range` but those of `left_out`.
    pub fn all_but(range: IdRange, left_out: &[u64]) -> IdSet {
        let mut ids = RoaringTreemap::new();
        ids.insert_range(range.start..range.end);
        for id in left_out {
            ids.remove(*id);
        }
        IdSet { range, ids }
    }

    /// Number of ids in the set.
    pub fn count(&self) -> u64 {
        self.ids.len()
    }

    /// Adds every id of `other`, a set over the same range.
    pub fn union_with(&mut self, other: &IdSet) {
        debug_assert_eq!(self.range, other.range);
        self.ids |= &other.ids;
    }

    /// Ids of `sub` that are in the set, as a new set over `sub`.
    pub fn restrict(&self, sub: IdRange) -> IdSet {
        let inside = self
            .ids
            .iter()
            .skip_while(|&id| id < sub.start)
            .take_while(|&id| id < sub.end);
        IdSet {
            range: sub,
            ids: RoaringTreemap::from_sorted_iter(inside).expect("ids come out sorted"),
        }
    }

    /// Ids of the range not in the set, up to and including `id`.
    fn missing_through(&self, id: u64) -> u64 {
        let before_start = if self.range.start == 0 {
            0
        } else {
            self.ids.rank(self.range.start - 1)
        };
        (id - self.range.start + 1) - (self.ids.rank(id) - before_start)
    }

    /// The smallest id with `n` ids of the range not in the set up to and including it.
    fn nth_missing(&self, n: u64) -> u64 {
        let (mut low, mut high) = (self.range.start, self.range.end - 1);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.missing_through(mid) >= n {
                high = mid;
            } else {
                low = mid + 1;
            }
        }
        low
    }

    /// Splits the range into `parts` contiguous sub-ranges holding about the same number of ids
    /// *not* in the set, so a resumed run spreads the remaining work evenly over its shards.
    /// Works from ranks (a binary search per cut), never id by id.
    pub fn split_remaining(&self, parts: usize) -> Vec<IdRange> {
        let parts = parts.max(1) as u64;
        let remaining = self.range.len() - self.count();
        let mut cuts = Vec::with_capacity(parts as usize + 1);
        cuts.push(self.range.start);
        for part in 1..parts {
            // The share of the first `part` parts, in 128 bits: `remaining × part` can pass 2^64.
            let share = (u128::from(remaining) * u128::from(part) / u128::from(parts)) as u64;
            let cut = if share == 0 {
                self.range.start
            } else {
                // Cut after the id that completes this share.
                self.nth_missing(share) + 1
            };
            cuts.push(cut.max(*cuts.last().unwrap_or(&self.range.start)));
        }
        cuts.push(self.range.end);
        cuts.windows(2).map(|w| IdRange::new(w[0], w[1])).collect()
    }

    /// The ids of the set as maximal runs of consecutive ids, in order.
    pub fn runs(&self) -> impl Iterator<Item = IdRange> + '_ {
        let mut ids = self.ids.iter().peekable();
        std::iter::from_fn(move || {
            let start = ids.next()?;
            let mut end = start + 1;
            while ids.next_if(|&id| id == end).is_some() {
                end += 1;
            }
            Some(IdRange::new(start, end))
        })
    }

    /// The ids of the range *not* in the set, as maximal runs, in order.
    pub fn gaps(&self) -> impl Iterator<Item = IdRange> + '_ {
        let range = self.range;
        let mut next = range.start;
        let mut runs = self.runs().fuse();
        std::iter::from_fn(move || {
            loop {
                match runs.next() {
                    Some(run) if run.start > next => {
                        let gap = IdRange::new(next, run.start);
                        next = run.end;
                        return Some(gap);
                    }
                    Some(run) => next = run.end,
                    None if next < range.end => {
                        let gap = IdRange::new(next, range.end);
                        next = range.end;
                        return Some(gap);
                    }
                    None => return None,
                }
            }
        })
    }

    /// The set, compressed (roaring's portable format): what a worker receives on stdin.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ids.serialized_size());
        self.ids
            .serialize_into(&mut out)
            .expect("writing to a Vec cannot fail");
        out
    }

    /// Rebuilds a set over `range` from [`IdSet::to_bytes`]; `None` if the bytes are not one,
    /// or hold an id outside the range.
    pub fn from_bytes(range: IdRange, bytes: &[u8]) -> Option<IdSet> {
        let ids = RoaringTreemap::deserialize_from(bytes).ok()?;
        let inside = ids
            .min()
            .zip(ids.max())
            .is_none_or(|(min, max)| range.contains(min) && range.contains(max));
        inside.then_some(IdSet { range, ids })
    }

    /// A set over `range` from words of bits (bit k of word w: id `range.start + 64w + k`), as
    /// built by a reader that did not know the range's length up front.
    pub fn from_words(range: IdRange, words: &[u64]) -> IdSet {
        let mut set = IdSet::new(range);
        for (w, word) in words.iter().enumerate() {
            let mut bits = *word;
            while bits != 0 {
                let k = u64::from(bits.trailing_zeros());
                let id = range.start + 64 * w as u64 + k;
                if range.contains(id) {
                    set.ids.insert(id);
                }
                bits &= bits - 1;
            }
        }
        set
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
        assert_eq!(IdSet::from_bytes(range, &bytes), Some(set.clone()));
        assert_eq!(
            IdSet::from_bytes(range, &bytes[..bytes.len() - 1]),
            None,
            "torn"
        );
        assert_eq!(
            IdSet::from_bytes(IdRange::new(0, 200), &bytes),
            None,
            "299 is outside"
        );
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

    #[test]
    fn a_set_over_the_widest_range_stays_small_and_splits_by_rank() {
        let range = IdRange::new(0, u64::MAX);
        let mut set = IdSet::new(range);
        for id in 0..1000 {
            set.insert(id);
        }
        set.insert(u64::MAX - 1);
        assert!(
            set.to_bytes().len() < 4096,
            "{} bytes",
            set.to_bytes().len()
        );
        let parts = set.split_remaining(4);
        assert_eq!((parts[0].start, parts[3].end), (0, u64::MAX));
        for pair in parts.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        // The first part starts with the 1000 done ids, then a quarter of the rest.
        let remaining = u64::MAX - 1001;
        let first = parts[0].len() - 1000;
        assert!(
            first.abs_diff(remaining / 4) <= 1,
            "{first} vs {}",
            remaining / 4
        );
        assert_eq!(set.restrict(parts[0]).count(), 1000);
        assert!(set.restrict(parts[3]).contains(u64::MAX - 1));
    }

    #[test]
    fn a_part_is_what_split_cuts() {
        for (start, len, parts) in [
            (0u64, 10u64, 3u64),
            (7, 1000, 7),
            (0, 2, 5),
            (u64::MAX - 9, 9, 4),
        ] {
            let range = IdRange::new(start, start + len);
            let split = range.split(parts as usize);
            for k in 0..parts {
                assert_eq!(
                    range.part(k, parts),
                    split[k as usize],
                    "{range} part {k} of {parts}"
                );
            }
        }
    }

    #[test]
    fn runs_and_gaps_partition_the_range() {
        let mut set = IdSet::new(IdRange::new(10, 30));
        for id in [10, 11, 12, 15, 20, 21, 29] {
            set.insert(id);
        }
        let runs: Vec<String> = set.runs().map(|r| r.to_string()).collect();
        assert_eq!(runs, ["10..13", "15..16", "20..22", "29..30"]);
        let gaps: Vec<String> = set.gaps().map(|r| r.to_string()).collect();
        assert_eq!(gaps, ["13..15", "16..20", "22..29"]);
        let empty = IdSet::new(IdRange::new(0, 5));
        assert_eq!(empty.gaps().collect::<Vec<_>>(), [IdRange::new(0, 5)]);
        assert_eq!(empty.runs().count(), 0);
    }
}
