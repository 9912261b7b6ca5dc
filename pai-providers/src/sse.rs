//! Incremental Server-Sent Events framing.
//!
//! [`SseParser`] cuts a byte stream into [`SseEvent`]s as the bytes arrive, however the network
//! happened to split them: inside a line, between the `\r` and `\n` of a CRLF pair, or in the
//! middle of a UTF-8 character.
//!
//! The gateway forwards what upstream sent, not a re-encoding of it, so every byte of the input
//! belongs to exactly one event's [`SseEvent::raw`], separators and comments included:
//! concatenating the raw bytes of all events reproduces the stream byte for byte. Two choices
//! follow from that:
//!
//! - A block that holds only comments (`: OPENROUTER PROCESSING`), or even a stray blank line
//!   that servers send as a keep-alive, is still returned as an event (no `event:`, empty data),
//!   so the caller can forward it at once and keep idle clients from timing out.
//! - An event whose blank line never came (the stream ended first) is returned by
//!   [`SseParser::finish`], not dropped.
//!
//! Lines end in `\n`, `\r\n` or `\r`, freely mixed. Only the incomplete tail of the stream is
//! kept; a complete event's raw bytes are split off the buffer without copying.
//!
//! An upstream that never ends a line or an event must not make the gateway hold it all: the
//! event under way (and so any line of it) may grow to [`SseParser::with_limit`] bytes
//! ([`DEFAULT_MAX_EVENT_BYTES`] by default). Past that the parser drops what it holds, reads
//! nothing more, and says so through [`SseParser::too_long`]; the caller ends the stream.
//!
//! # Example
//!
//! ```
//! use pai_providers::sse::SseParser;
//!
//! let mut parser = SseParser::new();
//! assert!(parser.push(b"event: ping\r\ndata: {\"type\"").is_empty());
//! let events = parser.push(b":\"ping\"}\r\n\r\ndata: [DONE]");
//! assert_eq!(events[0].event.as_deref(), Some("ping"));
//! assert_eq!(events[0].data, "{\"type\":\"ping\"}");
//! assert_eq!(parser.finish().map(|e| e.data), Some("[DONE]".to_owned()));
//! ```

#[cfg(test)]
mod split_tests;

use std::mem;

use bytes::BytesMut;
use pai_core::SseEvent;

use crate::scan::find_either;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The longest event (or line) a parser holds unless told otherwise: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 << 20;

/// The event under way grew past the parser's limit without ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the upstream sent an event longer than {limit} bytes without ending it")]
pub struct EventTooLong {
    /// The limit, in bytes.
    pub limit: usize,
}

/// Cuts a byte stream into Server-Sent Events. See the module docs.
#[derive(Debug)]
pub struct SseParser {
    /// The most bytes `buf` may hold: an event longer than this is refused.
    limit: usize,
    /// Set once an event outgrew `limit`; the parser then reads nothing more.
    too_long: Option<EventTooLong>,
    /// The bytes of the event under way (its parsed lines included) and any unparsed tail.
    buf: BytesMut,
    /// Where the first line not yet parsed starts in `buf`.
    line_start: usize,
    /// Where the search for that line's end resumes, so a long line arriving in small pieces is
    /// scanned once.
    search_from: usize,
    /// Whether the start of the stream (and a byte order mark there) has been dealt with.
    started: bool,
    /// The `event:` field of the event under way.
    event: Option<String>,
    /// Its `data:` lines so far, joined with `\n`.
    data: String,
    /// Whether it had a `data:` line yet (an empty one counts).
    has_data: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser at the start of a stream, holding events of up to [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// A parser that holds events of up to `limit` bytes (at least 1).
    pub fn with_limit(limit: usize) -> SseParser {
        SseParser {
            limit: limit.max(1),
            too_long: None,
            buf: BytesMut::new(),
            line_start: 0,
            search_from: 0,
            started: false,
            event: None,
            data: String::new(),
            has_data: false,
        }
    }

    /// Feed the next bytes of the stream; returns every event they complete, in order.
    ///
    /// Once an event has grown past the limit, returns the events completed before it and
    /// nothing ever after; [`SseParser::too_long`] says why.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut rest = chunk;
        // Take the chunk in pieces that fit, so the buffer never holds more than the limit.
        while !rest.is_empty() && self.too_long.is_none() {
            let room = self.limit.saturating_sub(self.buf.len());
            if room == 0 {
                self.give_up();
                break;
            }
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.buf.extend_from_slice(now);
            self.parse_lines(false, &mut events);
            rest = later;
        }
        events
    }

    /// Why the parser stopped reading, if an event outgrew its limit.
    pub fn too_long(&self) -> Option<EventTooLong> {
        self.too_long
    }

    /// The bytes held for the event under way.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Drop the over-long event and refuse the rest of the stream.
    fn give_up(&mut self) {
        *self = SseParser {
            too_long: Some(EventTooLong { limit: self.limit }),
            ..SseParser::with_limit(self.limit)
        };
    }

    /// The stream ended: returns the event still under way, if any bytes are left.
    ///
    /// Such an event had no blank line after it; it is returned anyway so that no byte of the
    /// stream is lost. The parser is then ready for a new stream.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.too_long.is_some() {
            *self = SseParser::with_limit(self.limit);
            return None;
        }
        let mut events = Vec::new();
        self.parse_lines(true, &mut events);
        // Only the last line of the stream is still unparsed here, so at most one event can
        // complete (a final blank line that ended in a lone `\r`).
        let last = events.pop();
        let rest = if self.buf.is_empty() {
            None
        } else {
            Some(self.take_event(self.buf.len()))
        };
        *self = SseParser::with_limit(self.limit);
        last.or(rest)
    }

    /// Parse every complete line in the buffer, dispatching an event at each blank line. At the
    /// end of the stream, a lone `\r` at the end and an unterminated last line count as lines.
    fn parse_lines(&mut self, at_eof: bool, events: &mut Vec<SseEvent>) {
        if !self.started {
            let have = self.buf.len().min(BOM.len());
            if self.buf.get(..have) == BOM.get(..have) {
                if have < BOM.len() && !at_eof {
                    // Too few bytes yet to tell a byte order mark from data.
                    return;
                }
                if have == BOM.len() {
                    self.line_start = BOM.len();
                    self.search_from = BOM.len();
                }
            }
            self.started = true;
        }
        loop {
            let Some(end) = find_either(&self.buf, self.search_from, b'\n', b'\r') else {
                self.search_from = self.buf.len();
                break;
            };
            let next = if self.buf.get(end) == Some(&b'\r') {
                match self.buf.get(end + 1) {
                    Some(b'\n') => end + 2,
                    Some(_) => end + 1,
                    None if at_eof => end + 1,
                    None => {
                        // `\r` or `\r\n`: the next chunk decides where this line ends.
                        self.search_from = end;
                        break;
                    }
                }
            } else {
                end + 1
            };
            if end == self.line_start {
                let event = self.take_event(next);
                events.push(event);
            } else {
                self.apply_line(self.line_start, end);
                self.line_start = next;
                self.search_from = next;
            }
        }
        if at_eof && self.line_start < self.buf.len() {
            self.apply_line(self.line_start, self.buf.len());
            self.line_start = self.buf.len();
            self.search_from = self.buf.len();
        }
    }

    /// Apply the field on the line `buf[start..end]` to the event under way.
    fn apply_line(&mut self, start: usize, end: usize) {
        let line = self.buf.get(start..end).unwrap_or_default();
        if line.first() == Some(&b':') {
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = line.get(colon + 1..).unwrap_or_default();
                let value = value.strip_prefix(b" ").unwrap_or(value);
                (line.get(..colon).unwrap_or_default(), value)
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.has_data = true;
                self.data.push_str(&String::from_utf8_lossy(value));
            }
            b"event" => {
                self.event = if value.is_empty() {
                    None
                } else {
                    Some(String::from_utf8_lossy(value).into_owned())
                };
            }
            // `id:` and `retry:` matter to browsers reconnecting, not to a proxy; unknown fields
            // are ignored, as the spec says.
            _ => {}
        }
    }

    /// Split the first `len` bytes off as the event under way.
    fn take_event(&mut self, len: usize) -> SseEvent {
        let raw = self.buf.split_to(len).freeze();
        self.line_start = 0;
        self.search_from = 0;
        self.has_data = false;
        SseEvent {
            event: self.event.take(),
            data: mem::take(&mut self.data),
            raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = parser.push(input);
        events.extend(parser.finish());
        events
    }

    fn fields(events: &[SseEvent]) -> Vec<(Option<&str>, &str)> {
        events
            .iter()
            .map(|e| (e.event.as_deref(), e.data.as_str()))
            .collect()
    }

    #[test]
    fn every_separator_ends_an_event() {
        let events = parse_all(b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n\r\ndata: e\r\n\n");
        assert_eq!(
            fields(&events),
            vec![
                (None, "a"),
                (None, "b"),
                (None, "c"),
                (None, "d"),
                (None, "e")
            ]
        );
        assert_eq!(&events[2].raw[..], b"data: c\r\r");
    }

    #[test]
    fn data_lines_join_with_newlines_and_the_space_is_optional() {
        let events = parse_all(b"data:{\"a\":\ndata: 1}\ndata\ndata:  two spaces\n\n");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "{\"a\":\n1}\n\n two spaces");
    }

    #[test]
    fn event_names_ids_and_retries() {
        let events =
            parse_all(b"id: 7\nevent: message_stop\nretry: 100\ndata: {}\n\nevent:\ndata: x\n\n");
        assert_eq!(
            fields(&events),
            vec![(Some("message_stop"), "{}"), (None, "x")]
        );
    }

    #[test]
    fn comments_and_stray_blank_lines_come_back_as_empty_events() {
        let events = parse_all(b": OPENROUTER PROCESSING\n\n\ndata: x\n\n");
        assert_eq!(events.len(), 3);
        assert!(events[0].is_comment_only());
        assert_eq!(&events[0].raw[..], b": OPENROUTER PROCESSING\n\n");
        assert!(events[1].is_comment_only());
        assert_eq!(&events[1].raw[..], b"\n");
        assert_eq!(events[2].data, "x");
    }

    #[test]
    fn a_byte_order_mark_is_kept_in_raw_but_not_in_the_field_name() {
        let input = b"\xEF\xBB\xBFdata: x\n\n";
        for split in 0..input.len() {
            let mut parser = SseParser::new();
            let mut events = parser.push(&input[..split]);
            events.extend(parser.push(&input[split..]));
            events.extend(parser.finish());
            assert_eq!(fields(&events), vec![(None, "x")], "split at {split}");
            assert_eq!(&events[0].raw[..], &input[..]);
        }
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_ending() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"data: a\r").is_empty());
        assert!(parser.push(b"\n").is_empty());
        assert!(parser.push(b"data: b\r\n\r").is_empty());
        let events = parser.push(b"\n");
        assert_eq!(fields(&events), vec![(None, "a\nb")]);
        assert_eq!(&events[0].raw[..], b"data: a\r\ndata: b\r\n\r\n");
        assert_eq!(parser.finish(), None);
    }

    #[test]
    fn the_end_of_the_stream_completes_what_is_left() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"data: a\n\r").is_empty());
        let last = parser.finish();
        assert_eq!(last.as_ref().map(|e| e.data.as_str()), Some("a"));
        assert_eq!(
            last.map(|e| e.raw),
            Some(bytes::Bytes::from_static(b"data: a\n\r"))
        );

        let mut parser = SseParser::new();
        assert!(parser.push(b"data: [DONE]").is_empty());
        assert_eq!(parser.finish().map(|e| e.data), Some("[DONE]".to_owned()));
        assert_eq!(parser.finish(), None);
    }

    #[test]
    fn an_event_past_the_limit_is_refused_and_not_held() {
        const LIMIT: usize = 1 << 20;
        let mut parser = SseParser::with_limit(LIMIT);
        let mut events = parser.push(b"data: ok\n\ndata: ");
        let chunk = vec![b'a'; 64 << 10];
        let mut most = 0;
        // 64 MiB of one line, in the pieces a socket delivers.
        for _ in 0..1024 {
            events.extend(parser.push(&chunk));
            most = most.max(parser.buffered());
        }
        events.extend(parser.push(b"\n\ndata: after\n\n"));
        assert!(most <= LIMIT, "the parser held {most} bytes");
        assert_eq!(parser.buffered(), 0);
        assert_eq!(parser.too_long(), Some(EventTooLong { limit: LIMIT }));
        assert_eq!(fields(&events), vec![(None, "ok")]);
        assert_eq!(parser.finish(), None);
    }

    #[test]
    fn a_single_huge_chunk_is_refused_without_being_held() {
        let mut parser = SseParser::with_limit(1000);
        let mut input = b"data: a\n\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 1 << 20));
        let events = parser.push(&input);
        assert_eq!(fields(&events), vec![(None, "a")]);
        assert!(parser.too_long().is_some());
        assert_eq!(parser.buffered(), 0);
    }

    #[test]
    fn an_event_of_exactly_the_limit_passes() {
        let input = b"data: 12345\n\n";
        let mut parser = SseParser::with_limit(input.len());
        let events = parser.push(input);
        assert_eq!(fields(&events), vec![(None, "12345")]);
        assert_eq!(parser.too_long(), None);
    }

    #[test]
    fn invalid_utf8_does_not_stop_the_stream() {
        let events = parse_all(b"data: \xFF\xFEok\n\n");
        assert_eq!(events.len(), 1);
        assert!(events[0].data.ends_with("ok"));
        assert_eq!(&events[0].raw[..], b"data: \xFF\xFEok\n\n");
    }
}
