//! Long texts cut into windows a classifier reads whole, and the pieces a scan sends.

use pai_core::TextSource;

/// One window of one text, to be classified.
#[derive(Clone, Copy, Debug)]
pub(super) struct Piece<'a> {
    pub text: &'a str,
    pub source: TextSource,
    /// Which text (of those the scan sends) it is part of.
    pub owner: usize,
}

/// `text` in windows of at most `size` bytes, each overlapping the one before by `overlap`
/// bytes so that an instruction cut by one boundary is whole in the next window. Boundaries
/// fall between characters; bytes bound characters and UTF-16 units alike, so a window of
/// `size` bytes is within a limit of `size` characters whichever way a service counts them.
pub(super) fn windows(text: &str, size: usize, overlap: usize) -> Vec<&str> {
    if text.len() <= size {
        return vec![text];
    }
    let size = size.max(8);
    let step = size.saturating_sub(overlap).max(size / 2);
    let mut out = Vec::with_capacity(text.len() / step + 1);
    let mut start = 0;
    loop {
        let end = floor_boundary(text, (start + size).min(text.len()));
        out.push(&text[start..end]);
        if end >= text.len() {
            return out;
        }
        let next = floor_boundary(text, start + step);
        // A window always moves on, even past a run of long characters.
        start = if next > start { next } else { end };
    }
}

/// The largest character boundary at or below `at`.
fn floor_boundary(text: &str, mut at: usize) -> usize {
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_one_window() {
        assert_eq!(windows("hello", 10, 2), vec!["hello"]);
    }

    #[test]
    fn long_texts_are_covered_whole_with_overlap() {
        let text: String = (0..100)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let w = windows(&text, 30, 10);
        assert!(w.iter().all(|w| w.len() <= 30));
        assert_eq!(w[0], &text[..30]);
        assert_eq!(w[1], &text[20..50]);
        assert!(text.ends_with(w[w.len() - 1]));
        // Every 10-byte stretch is whole in some window.
        for i in 0..=90 {
            assert!(w.iter().any(|w| w.contains(&text[i..i + 10])), "{i}");
        }
    }

    #[test]
    fn boundaries_fall_between_characters() {
        let text = "é".repeat(50);
        let w = windows(&text, 9, 3);
        assert!(w.iter().all(|w| w.len() <= 9 && !w.is_empty()));
        assert_eq!(w.concat().chars().filter(|c| *c != 'é').count(), 0);
    }
}
