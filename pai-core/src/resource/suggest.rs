//! "Did you mean …?" for misspelt field and model names.

/// Edit distance between two strings, by characters.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Words and candidates longer than this get no suggestions: the edit distance is quadratic.
pub const MAX_SUGGEST_CHARS: usize = 64;
/// At most this many candidates are compared.
pub const MAX_SUGGEST_CANDIDATES: usize = 1_000;

/// The candidates close to `word`, nearest first: within a third of its length, or sharing a
/// case-insensitive prefix of four characters. The work is bounded: nothing for a word over
/// [`MAX_SUGGEST_CHARS`] bytes, longer candidates skipped, and only the first
/// [`MAX_SUGGEST_CANDIDATES`] looked at.
pub fn close_matches<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Vec<&'a str> {
    if word.len() > MAX_SUGGEST_CHARS {
        return Vec::new();
    }
    let lower = word.to_ascii_lowercase();
    let budget = (word.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .take(MAX_SUGGEST_CANDIDATES)
        .filter(|c| c.len() <= MAX_SUGGEST_CHARS)
        .filter_map(|c| {
            let d = distance(&lower, &c.to_ascii_lowercase());
            // `get`: the fourth byte may fall inside a character.
            let shared_prefix = lower
                .get(..4)
                .is_some_and(|p| c.to_ascii_lowercase().starts_with(p));
            (d <= budget || shared_prefix).then_some((d, c))
        })
        .collect();
    scored.sort_by_key(|(d, c)| (*d, *c));
    scored.into_iter().map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_found() {
        assert_eq!(distance("endpont", "endpoint"), 1);
        assert_eq!(
            close_matches("endpont", ["provider", "endpoint"]),
            vec!["endpoint"]
        );
        assert_eq!(
            close_matches("maxtokensperday", ["maxTokensPerDay"]),
            vec!["maxTokensPerDay"]
        );
        assert!(close_matches("zzz", ["provider"]).is_empty());
    }

    #[test]
    fn long_words_cost_nothing() {
        let long = "a".repeat(1 << 20);
        let started = std::time::Instant::now();
        assert!(close_matches(&long, ["a", long.as_str()]).is_empty());
        assert!(close_matches("abcd", [long.as_str()]).is_empty());
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
    }
}
