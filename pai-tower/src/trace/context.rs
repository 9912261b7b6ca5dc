//! W3C Trace Context: reading a client's `traceparent` / `tracestate`, writing ours, and
//! minting ids.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderValue};

/// The longest `tracestate` kept: the W3C minimum a vendor must propagate. A longer one is
/// dropped rather than cut (cutting could split a member).
const MAX_TRACESTATE: usize = 512;

/// A valid `traceparent` a client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Incoming {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

/// Parse a `traceparent` value; `None` for anything the W3C rules call invalid: a version
/// that is not two lower-case hex digits or is `ff`, version `00` with anything after the
/// flags, upper-case hex, an all-zero trace id or parent id, a missing dash.
pub(crate) fn parse_traceparent(value: &[u8]) -> Option<Incoming> {
    if value.len() < 55 {
        return None;
    }
    let version = hex_byte(&value[0..2])?;
    if version == 0xff || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    // Version 00 is exactly 55 characters; a later version may add fields after a dash.
    if (version == 0 && value.len() != 55) || (value.len() > 55 && value[55] != b'-') {
        return None;
    }
    let mut trace_id = [0u8; 16];
    for (i, b) in trace_id.iter_mut().enumerate() {
        *b = hex_byte(&value[3 + 2 * i..5 + 2 * i])?;
    }
    let mut parent_id = [0u8; 8];
    for (i, b) in parent_id.iter_mut().enumerate() {
        *b = hex_byte(&value[36 + 2 * i..38 + 2 * i])?;
    }
    let flags = hex_byte(&value[53..55])?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(Incoming {
        trace_id,
        parent_id,
        flags,
    })
}

/// The client's `tracestate`, its header lines joined, if it is short and printable ASCII.
pub(crate) fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all("tracestate").iter();
    let first = values.next()?;
    let mut joined: Option<Vec<u8>> = None;
    for more in values {
        let buf = joined.get_or_insert_with(|| first.as_bytes().to_vec());
        buf.push(b',');
        buf.extend_from_slice(more.as_bytes());
    }
    let value = match joined {
        None => first.clone(),
        Some(bytes) => HeaderValue::from_bytes(&bytes).ok()?,
    };
    let bytes = value.as_bytes();
    let printable = bytes.iter().all(|b| (0x20..0x7f).contains(b));
    (printable && !bytes.is_empty() && bytes.len() <= MAX_TRACESTATE).then_some(value)
}

/// `00-{trace id}-{span id}-{flags}`.
pub(crate) fn traceparent(trace_id: &[u8; 16], span_id: &[u8; 8], flags: u8) -> HeaderValue {
    let mut out = Vec::with_capacity(55);
    out.extend_from_slice(b"00-");
    push_hex(&mut out, trace_id);
    out.push(b'-');
    push_hex(&mut out, span_id);
    out.push(b'-');
    push_hex(&mut out, &[flags]);
    // Only hex digits and dashes: always a valid header value.
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 0xf) as usize]);
    }
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(pair[0])? << 4 | digit(pair[1])?)
}

/// Mints trace and span ids: a random seed drawn once, then SplitMix64 over a counter, so an
/// id costs an atomic add and never repeats within one generator. Ids need to be unique,
/// not secret.
pub(crate) struct Ids {
    seed: u64,
    counter: AtomicU64,
}

impl Ids {
    pub fn new() -> Ids {
        let mut bytes = [0u8; 8];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        Ids {
            seed: u64::from_le_bytes(bytes),
            counter: AtomicU64::new(1),
        }
    }

    fn next(&self) -> u64 {
        loop {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let mut z = self
                .seed
                .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    }

    pub fn span_id(&self) -> [u8; 8] {
        self.next().to_be_bytes()
    }

    pub fn trace_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&self.next().to_be_bytes());
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_valid_traceparent_is_read_and_written_back_the_same() {
        let t = parse_traceparent(GOOD.as_bytes()).unwrap();
        assert_eq!(hex(&t.trace_id), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(hex(&t.parent_id), "b7ad6b7169203331");
        assert_eq!(t.flags, 1);
        assert_eq!(traceparent(&t.trace_id, &t.parent_id, t.flags), GOOD);
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333g-01",
        ] {
            assert!(parse_traceparent(bad.as_bytes()).is_none(), "{bad}");
        }
        // A later version may carry more fields after a dash.
        let future = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what";
        assert!(parse_traceparent(future.as_bytes()).is_some());
    }

    #[test]
    fn tracestate_lines_are_joined_and_oversized_ones_dropped() {
        let mut h = HeaderMap::new();
        h.append("tracestate", HeaderValue::from_static("a=1"));
        h.append("tracestate", HeaderValue::from_static("b=2"));
        assert_eq!(tracestate(&h).unwrap(), "a=1,b=2");
        let mut h = HeaderMap::new();
        h.insert(
            "tracestate",
            HeaderValue::from_str(&"x".repeat(600)).unwrap(),
        );
        assert!(tracestate(&h).is_none());
    }

    #[test]
    fn ids_are_distinct_and_never_zero() {
        let ids = Ids::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = ids.span_id();
            assert_ne!(id, [0; 8]);
            assert!(seen.insert(id));
        }
    }
}
