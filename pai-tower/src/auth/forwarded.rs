//! The client address behind trusted proxies, from `X-Forwarded-For`.
//!
//! Each proxy appends the address it saw to the header, so only the right end of the chain can
//! be believed: walking from the right, every entry that is a trusted proxy is skipped, and the
//! first one that is not is the client. Whatever stands to the left of it was written by the
//! client and is never read. An entry that is needed but cannot be read (not ASCII, not an
//! address, empty, `unknown`) makes the address unknown rather than falling back to the proxy's
//! own: the caller refuses keys with `allowedCIDRs` when it cannot tell (fail closed).
//!
//! Entries may carry a port (`203.0.113.5:4444`, `[2001:db8::5]:4444`), as some proxies write
//! them; several header lines form one list, in order.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use pai_core::net::Cidr;

/// The client address: the peer, unless the peer is a trusted proxy; then the right-most
/// `X-Forwarded-For` entry that is not a trusted proxy (or the left-most entry, when every one
/// is). `None` when the entry that decides cannot be parsed.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let lines: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    // The proxy itself is the client when nobody forwarded anything.
    let mut client = peer;
    for line in lines.iter().rev() {
        for entry in line.rsplit(|b| *b == b',') {
            let ip = parse_entry(entry)?;
            if !is_trusted(ip) {
                return Some(ip);
            }
            client = ip;
        }
    }
    Some(client)
}

/// One entry: an address, optionally with a port; surrounding spaces and tabs allowed.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    // `[v6]:port` and `v4:port`; a bracketed address without a port too.
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse::<IpAddr>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(lines: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in lines {
            h.append(
                "x-forwarded-for",
                http::HeaderValue::from_bytes(v).expect("test header"),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter()
            .map(|c| c.parse().expect("test range"))
            .collect()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let peer = ip("203.0.113.9");
        // An untrusted peer cannot claim another address.
        assert_eq!(
            client_ip(peer, &headers(&[b"192.168.1.1"]), &trusted),
            Some(peer)
        );
        // From a trusted proxy, the right-most untrusted address wins.
        let proxy = ip("10.1.1.1");
        let h = headers(&[b"1.1.1.1, 198.51.100.7", b"10.2.2.2"]);
        assert_eq!(client_ip(proxy, &h, &trusted), Some(ip("198.51.100.7")));
        // Nothing forwarded: the proxy itself.
        assert_eq!(client_ip(proxy, &headers(&[]), &trusted), Some(proxy));
        // Only proxies in the chain: the left-most of them is where the request began.
        let h = headers(&[b"10.9.9.9, 10.2.2.2"]);
        assert_eq!(client_ip(proxy, &h, &trusted), Some(ip("10.9.9.9")));
    }

    #[test]
    fn what_the_client_wrote_to_the_left_is_never_read() {
        let trusted = cidrs(&["127.0.0.2"]);
        let proxy = ip("127.0.0.2");
        let cases: [(&[&[u8]], Option<&str>); 10] = [
            (&[b"\x80, 203.0.113.5"], Some("203.0.113.5")),
            (&[b"garbage, 203.0.113.5"], Some("203.0.113.5")),
            (&[b"127.0.0.1", b"203.0.113.5"], Some("203.0.113.5")),
            (&[b"203.0.113.5:4444"], Some("203.0.113.5")),
            (&[b"[2001:db8::5]:4444"], Some("2001:db8::5")),
            (&[b"[2001:db8::5]"], Some("2001:db8::5")),
            (&[b" 203.0.113.5\t,127.0.0.2 "], Some("203.0.113.5")),
            // The entry that decides is unreadable: unknown, never the proxy's address.
            (&[b"203.0.113.5, garbage"], None),
            (&[b"203.0.113.5,"], None),
            (&[b"unknown"], None),
        ];
        for (lines, want) in cases {
            assert_eq!(
                client_ip(proxy, &headers(lines), &trusted),
                want.map(ip),
                "{lines:?}"
            );
        }
    }

    /// One forwarded entry as a proxy or a client might write it.
    #[derive(Clone, Debug)]
    enum Entry {
        Trusted(u8),
        Client(u8),
        Garbage(Vec<u8>),
    }

    impl Entry {
        fn text(&self, with_port: bool) -> Vec<u8> {
            let addr = match self {
                Entry::Trusted(n) => format!("10.0.0.{n}"),
                Entry::Client(n) => format!("198.51.100.{n}"),
                Entry::Garbage(bytes) => return bytes.clone(),
            };
            let text = if with_port {
                format!("{addr}:443")
            } else {
                addr
            };
            text.into_bytes()
        }
    }

    fn entry() -> impl Strategy<Value = Entry> {
        prop_oneof![
            any::<u8>().prop_map(Entry::Trusted),
            any::<u8>().prop_map(Entry::Client),
            // Header-legal bytes (visible ASCII, space, tab, obs-text) without commas.
            proptest::collection::vec(
                prop_oneof![Just(b'\t'), 0x20u8..0x2c, 0x2du8..0x7f, 0x80u8..=0xff],
                0..12
            )
            .prop_map(Entry::Garbage),
        ]
    }

    proptest! {
        /// Against a model of the rule: from the right, skip trusted proxies; the first other
        /// entry decides, and an unreadable one makes the answer unknown. However the entries
        /// are spread over header lines.
        #[test]
        fn the_right_end_of_the_chain_decides(
            chain in proptest::collection::vec((entry(), any::<bool>()), 0..8),
            cuts in proptest::collection::vec(any::<bool>(), 0..8),
        ) {
            let trusted = cidrs(&["10.0.0.0/8"]);
            let proxy = ip("10.255.255.255");
            let mut lines: Vec<Vec<u8>> = vec![Vec::new()];
            let mut first_in_line = true;
            for (i, (e, port)) in chain.iter().enumerate() {
                let line = lines.last_mut().expect("one line at least");
                if !first_in_line {
                    line.extend_from_slice(b", ");
                }
                line.extend_from_slice(&e.text(*port));
                first_in_line = false;
                if cuts.get(i).copied().unwrap_or(false) && i + 1 < chain.len() {
                    lines.push(Vec::new());
                    first_in_line = true;
                }
            }
            if chain.is_empty() {
                lines.clear();
            }
            let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            let got = client_ip(proxy, &headers(&refs), &trusted);

            let mut want = Some(proxy);
            for (e, _) in chain.iter().rev() {
                match e {
                    Entry::Trusted(n) => want = Some(ip(&format!("10.0.0.{n}"))),
                    Entry::Client(n) => { want = Some(ip(&format!("198.51.100.{n}"))); break; }
                    Entry::Garbage(bytes) => {
                        want = parse_entry(bytes);
                        match want {
                            Some(found) if trusted.iter().any(|c| c.contains(found)) => continue,
                            _ => break,
                        }
                    }
                }
            }
            prop_assert_eq!(got, want);
            // Never the proxy's own address when anything untrusted was forwarded.
            if chain.iter().any(|(e, _)| matches!(e, Entry::Client(_))) {
                prop_assert_ne!(got, Some(proxy));
            }
        }

        /// Arbitrary header bytes: no panic, and an answer is always an address that was written
        /// or the peer.
        #[test]
        fn arbitrary_headers_never_panic(
            lines in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff], 0..40),
                0..4,
            )
        ) {
            let trusted = cidrs(&["0.0.0.0/0"]);
            let proxy = ip("192.0.2.1");
            let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            let _ = client_ip(proxy, &headers(&refs), &trusted);
        }
    }
}
