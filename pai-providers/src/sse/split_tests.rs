//! The parser must give the same events however the network splits a stream.
//!
//! Each realistic stream is cut at every byte boundary into two chunks, and fed one byte at a
//! time; the events and the concatenated raw bytes must match an unsplit parse, and the raw
//! bytes must reproduce the input exactly. Property tests then do the same for arbitrary bytes
//! and arbitrary splits, with and without a limit on the event length.

use bytes::Bytes;
use pai_core::SseEvent;

use super::SseParser;

const OPENAI: &[u8] = b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Caf\xC3\xA9 \xE2\x98\x95\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}\n\n\
data: [DONE]\n\n";

const ANTHROPIC: &[u8] = b"event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

const GEMINI_CRLF: &[u8] = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}],\"role\": \"model\"}}],\"usageMetadata\": {\"promptTokenCount\": 4,\"totalTokenCount\": 4}}\r\n\r\n\
data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" there\"}],\"role\": \"model\"},\"finishReason\": \"STOP\"}],\"usageMetadata\": {\"promptTokenCount\": 4,\"candidatesTokenCount\": 2,\"totalTokenCount\": 6}}\r\n\r\n";

const OPENROUTER: &[u8] = b": OPENROUTER PROCESSING\n\n\
: OPENROUTER PROCESSING\n\n\
data: {\"id\":\"gen-1\",\"provider\":\"Together\",\"model\":\"meta-llama/llama-3.1-70b-instruct\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"gen-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"stop\"}]}\n\n\
data: {\"id\":\"gen-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6,\"cost\":0.00001}}\n\n\
data: [DONE]\n\n";

/// Everything at once: a BOM, every separator, multi-line data, no space after the colon, a
/// stray blank line, and a last event with no blank line before the end.
const MIXED: &[u8] = b"\xEF\xBB\xBFevent: a\r\ndata:1\r\ndata: 2\r\n\r\n\
: keep-alive\r\r\
id: 9\rdata: three\r\r\
data: four\n\r\n\
\n\
retry: 5\ndata:five";

fn parse_whole(input: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = parser.push(input);
    events.extend(parser.finish());
    events
}

fn parse_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for chunk in chunks {
        events.extend(parser.push(chunk));
    }
    events.extend(parser.finish());
    events
}

fn raw_of(events: &[SseEvent]) -> Vec<u8> {
    events.iter().flat_map(|e| e.raw.iter().copied()).collect()
}

fn check_every_split(name: &str, input: &[u8]) -> Vec<SseEvent> {
    let whole = parse_whole(input);
    assert_eq!(
        raw_of(&whole),
        input,
        "{name}: raw bytes of an unsplit parse"
    );
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        let events = parse_chunks([a, b]);
        assert_eq!(events, whole, "{name}: split at byte {split}");
    }
    let bytewise = parse_chunks(input.chunks(1));
    assert_eq!(bytewise, whole, "{name}: one byte at a time");
    assert_eq!(
        raw_of(&bytewise),
        input,
        "{name}: raw bytes one byte at a time"
    );
    whole
}

fn data_of(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.data.as_str()).collect()
}

#[test]
fn openai_streams_split_anywhere() {
    let events = check_every_split("openai", OPENAI);
    assert_eq!(events.len(), 5);
    assert!(events[1].data.contains("Café ☕"));
    assert_eq!(events[4].data, "[DONE]");
    assert!(events.iter().all(|e| e.event.is_none()));
}

#[test]
fn anthropic_streams_split_anywhere() {
    let events = check_every_split("anthropic", ANTHROPIC);
    let names: Vec<_> = events.iter().map(|e| e.event.as_deref()).collect();
    assert_eq!(
        names,
        vec![
            Some("message_start"),
            Some("content_block_start"),
            Some("ping"),
            Some("content_block_delta"),
            Some("content_block_stop"),
            Some("message_delta"),
            Some("message_stop"),
        ]
    );
    assert_eq!(events[2].data, "{\"type\": \"ping\"}");
}

#[test]
fn gemini_crlf_streams_split_anywhere() {
    let events = check_every_split("gemini", GEMINI_CRLF);
    assert_eq!(events.len(), 2);
    assert!(events[1].data.ends_with("\"totalTokenCount\": 6}}"));
    assert!(events[1].raw.ends_with(b"}}\r\n\r\n"));
}

#[test]
fn openrouter_comments_split_anywhere() {
    let events = check_every_split("openrouter", OPENROUTER);
    assert_eq!(events.len(), 6);
    assert!(events[0].is_comment_only());
    assert!(events[1].is_comment_only());
    assert_eq!(
        events[0].raw,
        Bytes::from_static(b": OPENROUTER PROCESSING\n\n")
    );
    assert_eq!(events[5].data, "[DONE]");
}

#[test]
fn mixed_separators_split_anywhere_even_in_three() {
    let events = check_every_split("mixed", MIXED);
    assert_eq!(
        data_of(&events),
        vec!["1\n2", "", "three", "four", "", "five"]
    );
    assert_eq!(events[0].event.as_deref(), Some("a"));
    assert!(events[1].is_comment_only());
    assert!(events[4].is_comment_only());
    assert_eq!(events[4].raw, Bytes::from_static(b"\n"));

    let whole = parse_whole(MIXED);
    for i in 0..=MIXED.len() {
        for j in i..=MIXED.len() {
            let events = parse_chunks([&MIXED[..i], &MIXED[i..j], &MIXED[j..]]);
            assert_eq!(events, whole, "mixed: split at bytes {i} and {j}");
        }
    }
}

// === Property tests ===

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Bytes that look like SSE often enough to exercise every branch: field names, colons,
    /// every line ending, a BOM, and stray bytes.
    fn sse_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(&b"data:"[..]),
            Just(&b"data: "[..]),
            Just(&b"event: e"[..]),
            Just(&b": c"[..]),
            Just(&b"id: 1"[..]),
            Just(&b"\n"[..]),
            Just(&b"\r"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"\n\n"[..]),
            Just(&b"\xEF\xBB\xBF"[..]),
            Just(&b"x"[..]),
            Just(&b"\xE2\x98"[..]),
        ];
        let pieces = prop::collection::vec(piece, 0..64).prop_map(|ps| ps.concat());
        prop_oneof![pieces, prop::collection::vec(any::<u8>(), 0..512)]
    }

    /// `input` cut at the given points (taken modulo its length, in order).
    fn cut(input: &[u8], points: &[usize]) -> Vec<Vec<u8>> {
        let mut at: Vec<usize> = points.iter().map(|p| p % (input.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for to in at.into_iter().chain([input.len()]) {
            chunks.push(input[from..to].to_vec());
            from = to;
        }
        chunks
    }

    /// The events, and whether the parser gave up, feeding `chunks` to a parser with `limit`;
    /// checks after every push that the parser holds no more than the limit.
    fn feed(limit: usize, chunks: &[Vec<u8>]) -> (Vec<SseEvent>, bool) {
        let mut parser = SseParser::with_limit(limit);
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(parser.push(chunk));
            assert!(
                parser.buffered() <= limit,
                "{} > {limit}",
                parser.buffered()
            );
        }
        let too_long = parser.too_long().is_some();
        events.extend(parser.finish());
        (events, too_long)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_split_gives_the_same_events(
            input in sse_like(),
            points in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let whole = feed(usize::MAX, std::slice::from_ref(&input));
            let split = feed(usize::MAX, &cut(&input, &points));
            prop_assert_eq!(&split, &whole);
            // Without a limit nothing is lost: the raw bytes are the input.
            prop_assert_eq!(raw_of(&whole.0), input);
        }

        #[test]
        fn with_a_limit_the_buffer_is_bounded_and_any_split_agrees(
            input in sse_like(),
            points in prop::collection::vec(any::<usize>(), 0..8),
            limit in 1usize..48,
        ) {
            let whole = feed(limit, std::slice::from_ref(&input));
            let split = feed(limit, &cut(&input, &points));
            let bytewise = feed(limit, &input.chunks(1).map(<[u8]>::to_vec).collect::<Vec<_>>());
            prop_assert_eq!(&split, &whole);
            prop_assert_eq!(&bytewise, &whole);
            for event in &whole.0 {
                prop_assert!(event.raw.len() <= limit, "an event of {} bytes passed", event.raw.len());
            }
            // What was not refused is the input, byte for byte.
            if !whole.1 {
                prop_assert_eq!(raw_of(&whole.0), input);
            }
        }
    }
}
