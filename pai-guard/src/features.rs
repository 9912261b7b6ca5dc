//! What the classifier reads of a text: hashed word unigrams and bigrams and character 3-, 4-
//! and 5-grams of the normalised text, each an index into the weight table.
//!
//! Hashing keeps the model a fixed-size table with no vocabulary to ship or look up; the
//! character n-grams catch words split, misspelt or in languages the word features never saw.

/// The weight table has `1 << BITS` entries.
pub const BITS: u32 = 19;

const MASK: u64 = (1 << BITS) - 1;

/// Long texts are read in windows of this many bytes, each half overlapping the next, so an
/// instruction buried in a long document is not diluted by the rest of it.
pub const WINDOW: usize = 4096;

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

/// Call `f` with the index of every feature of `text` (normalised), repeats included.
pub fn for_each(text: &str, mut f: impl FnMut(usize)) {
    for_each_at(text, |_, i| f(i));
}

/// Call `f` with the byte offset where each feature of `text` starts and its index: a word's
/// and a pair's at the (second) word, an n-gram's at its first character. A window's features
/// are those that start in it ([`window_bounds`]), so every window of a long text is scored
/// from one pass over it.
pub fn for_each_at(text: &str, mut f: impl FnMut(usize, usize)) {
    let mut previous: Option<u64> = None;
    let base = text.as_ptr() as usize;
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let start = word.as_ptr() as usize - base;
        let h = hash(1, word.as_bytes());
        f(start, (h & MASK) as usize);
        if let Some(p) = previous {
            let pair = (h.rotate_left(17) ^ p).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            f(start, ((pair >> 20) & MASK) as usize);
        }
        previous = Some(h);
    }
    // Character n-grams over the text with its spaces, starting at every character: the ends
    // of the next five characters, kept in a ring as the text is walked once.
    let bytes = text.as_bytes();
    let mut ends = text
        .char_indices()
        .map(|(i, _)| i)
        .skip(1)
        .chain(std::iter::once(text.len()));
    let mut ring = [0usize; 5];
    let mut have = 0;
    for slot in ring.iter_mut() {
        match ends.next() {
            Some(e) => {
                *slot = e;
                have += 1;
            }
            None => break,
        }
    }
    let mut start = 0;
    let mut head = 0;
    while have > 0 {
        // ring[head + k] is the end of the (k+1)-th character from `start`.
        for (n, seed) in [(3usize, 3u64), (4, 4), (5, 5)] {
            if n > have {
                break;
            }
            let end = ring[(head + n - 1) % 5];
            f(start, (hash(seed, &bytes[start..end]) & MASK) as usize);
        }
        start = ring[head];
        match ends.next() {
            Some(e) => ring[head] = e,
            None => have -= 1,
        }
        head = (head + 1) % 5;
    }
}

/// The windows of `text` as byte ranges: the whole of it when short, else [`WINDOW`] bytes
/// each half overlapping the next, cut at character boundaries.
pub fn window_bounds(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = floor_boundary(text, start + WINDOW);
        out.push((start, end));
        if end >= text.len() {
            return out;
        }
        start = floor_boundary(text, start + WINDOW / 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_one_window_and_long_ones_overlap() {
        assert_eq!(window_bounds("hello"), [(0, 5)]);
        let long = "é".repeat(WINDOW);
        let ws = window_bounds(&long);
        assert!(ws.len() >= 3, "{}", ws.len());
        assert!(ws
            .iter()
            .all(|(s, e)| e - s <= WINDOW && long.is_char_boundary(*s)));
        assert_eq!(ws.last().map(|w| w.1), Some(long.len()));
        assert!(ws.windows(2).all(|p| p[1].0 < p[0].1), "windows overlap");
    }

    #[test]
    fn features_start_where_they_are_and_match_a_plain_walk() {
        let text = "héllo wörld ab";
        let mut at = Vec::new();
        for_each_at(text, |pos, i| at.push((pos, i)));
        // Every character n-gram, computed the plain way.
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut want = Vec::new();
        for k in 0..chars.len() {
            for (n, seed) in [(3, 3u64), (4, 4), (5, 5)] {
                if k + n > chars.len() {
                    break;
                }
                let end = chars.get(k + n).map_or(text.len(), |c| c.0);
                want.push((
                    chars[k].0,
                    (hash(seed, &text.as_bytes()[chars[k].0..end]) & MASK) as usize,
                ));
            }
        }
        let grams: Vec<(usize, usize)> = at[5..].to_vec();
        assert_eq!(grams, want);
        // Words at their starts: héllo at 0, wörld (and the pair) at 7, ab (and the pair) at 14.
        assert_eq!(
            at[..5].iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            [0, 7, 7, 14, 14]
        );
        // A separator of several bytes does not shift what follows.
        let mut at = Vec::new();
        for_each_at("a—bc", |pos, _| at.push(pos));
        assert_eq!(&at[..3], [0, 4, 4]);
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
