//! Watching an Anthropic Messages stream as it passes.
//!
//! `message_start` carries the prompt's usage (input, cache writes, cache reads) and an initial
//! `output_tokens`; `message_delta` carries the output so far. Both are cumulative: each value
//! replaces the last, nothing is added. Newer API versions repeat the input and cache fields in
//! `message_delta`; when present they replace the earlier ones too.
//!
//! Only `message_start`, `message_delta` and `error` events are parsed; content deltas and pings,
//! the bulk of a stream, are forwarded on their event name alone. Every event is forwarded
//! unchanged: an `event: error` after the 200 is recorded as the stream's error and passed on,
//! since Anthropic clients know how to read it.
//!
//! For the meter, every event passed is marked: whether it carries generated content (a
//! `content_block_delta` of text, tool input or thinking: [`carries_content`]), and whether it
//! is the stream's final event (`message_stop`).

use memchr::memmem::find;
use pai_core::{Passed, SseEvent, StreamObserver, Usage};
use serde::Deserialize;
use serde_json::Value;

use super::usage::WireUsage;
use crate::errors::describe_value;
use crate::redact::redact;
use crate::scan::mentions;

/// The [`StreamObserver`] of Anthropic Messages streams. See the module docs.
#[derive(Debug, Default)]
pub struct AnthropicStreamObserver {
    usage: WireUsage,
    error: Option<String>,
}

impl AnthropicStreamObserver {
    /// An observer for one stream.
    pub fn new() -> AnthropicStreamObserver {
        AnthropicStreamObserver::default()
    }
}

/// The parts of a stream event the observer reads.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    usage: Option<WireUsage>,
}

impl StreamObserver for AnthropicStreamObserver {
    fn on_event(&mut self, event: &SseEvent) -> Passed {
        match event.event.as_deref() {
            Some("message_start" | "message_delta" | "error") => {}
            Some("message_stop") => return Passed::forward().final_at(0),
            Some("content_block_delta") => {
                return Passed::forward().with_content(carries_content(event.data.as_bytes()))
            }
            Some(_) => return Passed::forward(),
            // Clients need event names, so Anthropic always sends them; an event without one
            // is looked at only if it might matter.
            None => {
                let seen = mentions(event.data.as_bytes());
                if !seen.live_usage && !seen.error {
                    return Passed::forward().with_content(carries_content(event.data.as_bytes()));
                }
            }
        }
        self.read(event);
        Passed::forward()
    }

    fn usage(&self) -> Option<Usage> {
        (!self.usage.is_empty()).then(|| self.usage.to_usage())
    }

    fn stream_error(&self) -> Option<String> {
        self.error.clone()
    }
}

impl AnthropicStreamObserver {
    /// Take the usage or the error out of an event that may carry them.
    fn read(&mut self, event: &SseEvent) {
        let Ok(parsed) = serde_json::from_str::<Event>(&event.data) else {
            return;
        };
        let kind = event.event.as_deref().or(parsed.kind.as_deref());
        match kind {
            Some("message_start") => {
                if let Some(usage) = parsed.message.as_ref().and_then(|m| m.usage.as_ref()) {
                    self.usage.update(usage);
                }
            }
            Some("message_delta") => {
                if let Some(usage) = &parsed.usage {
                    self.usage.update(usage);
                }
            }
            Some("error") if self.error.is_none() => {
                self.error = Some(match &parsed.error {
                    Some(error) => redact(&describe_error(error)),
                    None => "the upstream reported an error in the stream".to_owned(),
                });
            }
            _ => {}
        }
    }
}

/// Whether a `content_block_delta`'s data carries generated content: a `text_delta`,
/// `input_json_delta` or `thinking_delta` (not a `signature_delta`). A byte search, no parsing:
/// it runs on every delta.
pub fn carries_content(data: &[u8]) -> bool {
    find(data, b"_delta\"").is_some()
        && [
            &b"\"text_delta\""[..],
            &b"\"input_json_delta\""[..],
            &b"\"thinking_delta\""[..],
        ]
        .iter()
        .any(|needle| find(data, needle).is_some())
}

/// `overloaded_error: Overloaded`, from `{"type":"overloaded_error","message":"Overloaded"}`.
fn describe_error(error: &Value) -> String {
    let message = describe_value(error).unwrap_or_else(|| error.to_string());
    match error.get("type").and_then(Value::as_str) {
        Some(kind) if kind != message => format!("{kind}: {message}"),
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;

    fn run(stream: &[u8]) -> (AnthropicStreamObserver, Vec<u8>) {
        let mut parser = SseParser::new();
        let mut events = parser.push(stream);
        events.extend(parser.finish());
        let mut observer = AnthropicStreamObserver::new();
        let mut out = Vec::new();
        for event in &events {
            assert_eq!(
                observer.on_event(event).action,
                pai_core::EventAction::Forward
            );
            out.extend_from_slice(&event.raw);
        }
        (observer, out)
    }

    #[test]
    fn content_and_the_final_event_are_marked() {
        let mut parser = SseParser::new();
        let events = parser.push(STREAM);
        let mut observer = AnthropicStreamObserver::new();
        let passed: Vec<Passed> = events.iter().map(|e| observer.on_event(e)).collect();
        let content: Vec<bool> = passed.iter().map(|p| p.content).collect();
        assert_eq!(
            content,
            [false, false, false, true, false, false, false, false]
        );
        let finals: Vec<Option<usize>> = passed.iter().map(|p| p.final_at).collect();
        assert_eq!(finals.last(), Some(&Some(0)));
        assert!(finals[..finals.len() - 1].iter().all(Option::is_none));
    }

    #[test]
    fn content_deltas_are_recognised() {
        assert!(carries_content(
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" hi"}}"#
        ));
        assert!(carries_content(
            br#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a"}}"#
        ));
        assert!(carries_content(
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#
        ));
        assert!(!carries_content(
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"x"}}"#
        ));
        assert!(!carries_content(
            br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"}}"#
        ));
        assert!(!carries_content(br#"{"type": "ping"}"#));
    }

    const STREAM: &[u8] = b"event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},\"usage\":{\"output_tokens\":10}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn cumulative_output_is_taken_last_never_summed() {
        let (observer, out) = run(STREAM);
        assert_eq!(out, STREAM);
        assert_eq!(
            observer.usage(),
            Some(Usage::from_anthropic(25, 15, 100, 2000))
        );
        assert_eq!(observer.stream_error(), None);
    }

    #[test]
    fn newer_deltas_that_repeat_the_prompt_usage_replace_it() {
        let stream = b"event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"input_tokens\":30,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":7,\"output_tokens\":9}}\n\n";
        let (observer, _) = run(stream);
        assert_eq!(observer.usage(), Some(Usage::from_anthropic(30, 9, 0, 7)));
    }

    #[test]
    fn a_mid_stream_error_is_recorded_and_forwarded() {
        let stream = b"event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
event: error\n\
data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let (observer, out) = run(stream);
        assert_eq!(out, stream);
        assert_eq!(
            observer.stream_error().as_deref(),
            Some("overloaded_error: Overloaded")
        );
        assert_eq!(observer.usage().map(|u| u.input), Some(5));
    }

    #[test]
    fn no_usage_seen_is_none() {
        let (observer, _) = run(b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
        assert_eq!(observer.usage(), None);
    }

    #[test]
    fn events_without_names_are_read_by_their_type() {
        let stream = b"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n\
data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":6}}\n\n";
        let (observer, _) = run(stream);
        assert_eq!(observer.usage(), Some(Usage::from_anthropic(4, 6, 0, 0)));
    }
}
