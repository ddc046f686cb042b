//! The "did you mean" of a usage error: the known name nearest to one mistyped, when it is near
//! enough to be the one meant (a typo: a letter missing, added, changed or two swapped).

/// The name of `known` nearest to `given` (case aside), when at most two edits away and nearer
/// than `given` is long (`x` is no typo of `id`); the first of the nearest on a tie.
pub fn nearest<'k>(given: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    let given_lower = given.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for name in known {
        let distance = strsim::osa_distance(&given_lower, &name.to_lowercase());
        if best.is_none_or(|(least, _)| distance < least) {
            best = Some((distance, name));
        }
    }
    best.filter(|&(distance, _)| distance <= 2 && distance < given.chars().count())
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_its_name_and_a_stranger_finds_none() {
        let known = ["id", "user", "tenant", "day"];
        assert_eq!(nearest("usr", known), Some("user"));
        assert_eq!(nearest("dya", known), Some("day"), "two letters swapped");
        assert_eq!(nearest("date", known), Some("day"));
        assert_eq!(nearest("ID", known), Some("id"), "case aside");
        assert_eq!(nearest("x", known), None);
        assert_eq!(nearest("database", ["concurrency", "data"]), None);
        assert_eq!(
            nearest("concurency", ["shards", "concurrency"]),
            Some("concurrency")
        );
    }
}
