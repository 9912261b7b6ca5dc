//! What the classifier reads of a text: hashed word unigrams and bigrams and character 3-, 4-
//! and 5-grams of the normalised text, each an index into the weight table.
//!
//! Hashing keeps the model a fixed-size table with no vocabulary to ship or look up; the
//! character n-grams catch words split, misspelt or in languages the word features never saw.

/// The weight table has `1 << BITS` entries.
pub const BITS: u32 = 18;

const MASK: u64 = (1 << BITS) - 1;

/// Long texts are read in windows of this many bytes, each half overlapping the next, so an
/// instruction buried in a long document is not diluted by the rest of it.
pub const WINDOW: usize = 4096;

/// The windows of `text`: the whole of it when short, else overlapping windows cut at
/// character boundaries.
pub fn windows(text: &str) -> impl Iterator<Item = &str> {
    let step = WINDOW / 2;
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let end = floor_boundary(text, start + WINDOW);
        if end >= text.len() {
            done = true;
        }
        let window = &text[start..end];
        start = floor_boundary(text, start + step);
        Some(window)
    })
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    if i >= text.len() {
        return text.len();
    }
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// FNV-1a, seeded per kind of feature.
fn hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Call `f` with the index of every feature of `window` (a normalised text), repeats included.
pub fn for_each(window: &str, mut f: impl FnMut(usize)) {
    let mut previous: Option<u64> = None;
    for word in window
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = hash(1, word.as_bytes());
        f((h & MASK) as usize);
        if let Some(p) = previous {
            let pair = (h.rotate_left(17) ^ p).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            f(((pair >> 20) & MASK) as usize);
        }
        previous = Some(h);
    }
    // Character n-grams over the text with its spaces, starting at every character.
    let starts: Vec<usize> = window.char_indices().map(|(i, _)| i).collect();
    for (k, &s) in starts.iter().enumerate() {
        for (n, seed) in [(3, 3u64), (4, 4), (5, 5)] {
            let e = match starts.get(k + n) {
                Some(&e) => e,
                None if k + n == starts.len() => window.len(),
                None => break,
            };
            f((hash(seed, &window.as_bytes()[s..e]) & MASK) as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_one_window_and_long_ones_overlap() {
        assert_eq!(windows("hello").collect::<Vec<_>>(), ["hello"]);
        let long = "é".repeat(WINDOW);
        let ws: Vec<&str> = windows(&long).collect();
        assert!(ws.len() >= 3, "{}", ws.len());
        assert!(ws.iter().all(|w| w.len() <= WINDOW));
        assert!(ws.last().is_some_and(|w| long.ends_with(w)));
    }

    #[test]
    fn features_are_words_pairs_and_character_grams() {
        let mut n = 0;
        for_each("ab cd", |i| {
            assert!(i < 1 << BITS);
            n += 1;
        });
        // 2 words + 1 pair + (3 three-grams + 2 four-grams + 1 five-gram).
        assert_eq!(n, 9);
    }
}
