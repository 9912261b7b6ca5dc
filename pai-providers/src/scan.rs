//! Byte searches for the hot path.
//!
//! Stream observers look at every event of every stream, so they decide with a single pass over
//! the bytes whether an event is worth parsing at all. These loops compile down to tight scans
//! over slices and never allocate.

/// The first position at or after `from` holding `a` or `b`.
pub(crate) fn find_either(haystack: &[u8], from: usize, a: u8, b: u8) -> Option<usize> {
    haystack
        .get(from..)?
        .iter()
        .position(|&x| x == a || x == b)
        .map(|at| from + at)
}

/// What a JSON text mentions, as far as a cheap scan can tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mentions {
    /// A `"usage"` key whose value is not `null`.
    pub live_usage: bool,
    /// The string `"error"`, as a key or a value (`"finish_reason":"error"`).
    pub error: bool,
}

/// Scan a JSON text once for `"usage"` (not followed by `null`) and `"error"`.
///
/// Quotes inside JSON strings are escaped (`\"error\"`), so text a model generated never
/// matches; only keys and whole string values do.
pub(crate) fn mentions(json: &[u8]) -> Mentions {
    let mut found = Mentions::default();
    let mut from = 0;
    while let Some(off) = json
        .get(from..)
        .and_then(|h| h.iter().position(|&x| x == b'"'))
    {
        let at = from + off;
        let rest = json.get(at + 1..).unwrap_or_default();
        if let Some(after) = rest.strip_prefix(b"usage\"") {
            if !is_null_value(after) {
                found.live_usage = true;
            }
        } else if rest.starts_with(b"error\"") {
            found.error = true;
        }
        if found.live_usage && found.error {
            break;
        }
        from = at + 1;
    }
    found
}

/// Whether the text after a key is `: null`.
fn is_null_value(after_key: &[u8]) -> bool {
    let rest = trim_start(after_key);
    match rest.strip_prefix(b":") {
        Some(value) => trim_start(value).starts_with(b"null"),
        // Not followed by a colon: a string value, not a key. Nothing to parse.
        None => true,
    }
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .count();
    bytes.get(skip..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_either_byte() {
        assert_eq!(find_either(b"ab\r\ncd", 0, b'\n', b'\r'), Some(2));
        assert_eq!(find_either(b"ab\r\ncd", 3, b'\n', b'\r'), Some(3));
        assert_eq!(find_either(b"abcd", 0, b'\n', b'\r'), None);
        assert_eq!(find_either(b"ab", 5, b'\n', b'\r'), None);
    }

    #[test]
    fn null_usage_is_not_worth_parsing() {
        let m = mentions(br#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#);
        assert_eq!(m, Mentions::default());
        let m = mentions(br#"{"choices":[],"usage" : {"prompt_tokens":3}}"#);
        assert!(m.live_usage);
        assert!(!m.error);
    }

    #[test]
    fn errors_are_seen_as_keys_and_values_but_not_in_generated_text() {
        assert!(mentions(br#"{"error":{"message":"x"}}"#).error);
        assert!(mentions(br#"{"choices":[{"finish_reason":"error"}]}"#).error);
        let m =
            mentions(br#"{"choices":[{"delta":{"content":"say \"error\" and \"usage\": 1"}}]}"#);
        assert_eq!(m, Mentions::default());
    }
}
