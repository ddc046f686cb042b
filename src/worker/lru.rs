//! Letting go of the least recently used entries of a worker's caches (names, robots.txt rules)
//! in bulk: each entry carries the cache's clock at its last use, and past its bound a cache drops
//! a share of its entries at once, so that the scan this takes comes once per that many new ones.

/// The stamp at or below which the `n` least recently used of `stamps` lie (the entries a cache
/// may drop: none still on its way); `None` when there are none to drop.
pub fn cutoff(stamps: impl Iterator<Item = u64>, n: usize) -> Option<u64> {
    let mut stamps: Vec<u64> = stamps.collect();
    let n = n.min(stamps.len());
    if n == 0 {
        return None;
    }
    let (_, cut, _) = stamps.select_nth_unstable(n - 1);
    Some(*cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_the_nth_least_recent_stamp() {
        assert_eq!(cutoff([9, 3, 7, 1, 5].into_iter(), 2), Some(3));
        assert_eq!(cutoff([9, 3].into_iter(), 5), Some(9));
        assert_eq!(cutoff([9, 3].into_iter(), 0), None);
        assert_eq!(cutoff(std::iter::empty(), 1), None);
    }
}
