//! Watching an OpenAI-dialect stream as it passes.
//!
//! The gateway always asks upstream for `stream_options.include_usage`, so the last chunk
//! before `[DONE]` carries the usage (with `"choices": []`), and every other chunk carries
//! `"usage": null`. The observer records that usage; when the client did not ask for it, the
//! client does not get it: a usage-only chunk is dropped, and usage riding on a chunk that also
//! has choices (some servers do that) is cut out of it.
//!
//! This runs for every chunk of every stream, so a chunk is parsed only when a single scan of its
//! bytes finds a `"usage"` key that is not `null`, or the string `"error"`; the typical content
//! delta is forwarded without being parsed. Azure's first chunk (empty `choices`, no usage) is
//! forwarded as it is: only a non-null `usage` makes a usage chunk.
//!
//! Failures after a 200 arrive in-band, as `{"error":{…}}` or (OpenRouter) a chunk with
//! `finish_reason: "error"`; they are recorded for the call record and forwarded.
//!
//! For the meter, every chunk passed is marked: whether it carries generated content
//! ([`carries_content`], a byte search), and whether it is the stream's final event
//! (`data: [DONE]`).

use bytes::Bytes;
use memchr::memmem::find;
use pai_core::{EventAction, JsonObject, Passed, SseEvent, StreamObserver, Usage};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::usage::WireUsage;
use crate::errors::describe_value;
use crate::redact::redact;
use crate::scan::mentions;

/// The [`StreamObserver`] of OpenAI-dialect streams. See the module docs.
#[derive(Debug)]
pub struct OpenAiStreamObserver {
    client_wants_usage: bool,
    usage: Option<Usage>,
    error: Option<String>,
}

impl OpenAiStreamObserver {
    /// An observer for one stream; `client_wants_usage` is whether the client itself asked for
    /// `stream_options.include_usage`.
    pub fn new(client_wants_usage: bool) -> OpenAiStreamObserver {
        OpenAiStreamObserver {
            client_wants_usage,
            usage: None,
            error: None,
        }
    }

    /// Record the first in-band error of the stream.
    fn note_error(&mut self, chunk: &JsonObject, choices: &[Choice]) {
        if self.error.is_some() {
            return;
        }
        let message = chunk
            .get::<Value>("error")
            .and_then(Result::ok)
            .map(|e| describe_value(&e).unwrap_or_else(|| e.to_string()));
        let finished_in_error = choices
            .iter()
            .any(|c| c.finish_reason.as_deref() == Some("error"));
        self.error = match (message, finished_in_error) {
            (Some(message), _) => Some(redact(&message)),
            (None, true) => {
                Some("the upstream ended the stream with finish_reason \"error\"".to_owned())
            }
            (None, false) => None,
        };
    }
}

/// What the observer reads of a choice.
#[derive(Deserialize)]
struct Choice {
    // Everything else (the delta) is skipped without being built.
    #[serde(default)]
    finish_reason: Option<String>,
}

impl StreamObserver for OpenAiStreamObserver {
    fn on_event(&mut self, event: &SseEvent) -> Passed {
        if is_done(event) {
            return Passed::forward().final_at(0);
        }
        let content = carries_content(event.data.as_bytes());
        Passed::from(self.action(event)).with_content(content)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn stream_error(&self) -> Option<String> {
        self.error.clone()
    }
}

impl OpenAiStreamObserver {
    /// What the client gets of one chunk: the usage it did not ask for is withheld.
    fn action(&mut self, event: &SseEvent) -> EventAction {
        let seen = mentions(event.data.as_bytes());
        if !seen.live_usage && !seen.error {
            // Content deltas, `"usage": null` and comments.
            return EventAction::Forward;
        }
        let Ok(chunk) = JsonObject::from_slice(event.data.as_bytes()) else {
            return EventAction::Forward;
        };
        let choices: Option<Vec<Choice>> = chunk.get("choices").and_then(Result::ok);
        let has_error = chunk.get::<IgnoredAny>("error").is_some();
        if seen.error {
            self.note_error(&chunk, choices.as_deref().unwrap_or_default());
        }
        let Some(Ok(usage)) = chunk.get::<WireUsage>("usage") else {
            return EventAction::Forward;
        };
        self.usage = Some(usage.to_usage());
        if self.client_wants_usage || has_error {
            return EventAction::Forward;
        }
        match choices {
            Some(choices) if !choices.is_empty() => {
                EventAction::Replace(without_usage(event, chunk))
            }
            _ => EventAction::Drop,
        }
    }
}

/// Whether the event is `data: [DONE]`, the end of an OpenAI stream.
fn is_done(event: &SseEvent) -> bool {
    event.event.is_none() && event.data.trim() == "[DONE]"
}

/// Whether a chunk's data carries generated content: a non-empty `content`, tool-call
/// `arguments` or shown reasoning (`reasoning_content` as pai, DeepSeek and vLLM send it,
/// `reasoning` as OpenRouter does). A byte search, no parsing: it runs on every chunk.
pub fn carries_content(data: &[u8]) -> bool {
    if find(data, b"\"delta\"").is_none() {
        return false;
    }
    [
        &b"\"content\":\""[..],
        &b"\"arguments\":\""[..],
        &b"\"reasoning_content\":\""[..],
        &b"\"reasoning\":\""[..],
    ]
    .iter()
    .any(|needle| find(data, needle).is_some_and(|at| data.get(at + needle.len()) != Some(&b'"')))
}

/// The event again, its chunk without `usage`; untouched fields keep their bytes.
fn without_usage(event: &SseEvent, mut chunk: JsonObject) -> Bytes {
    chunk.remove("usage");
    let json = chunk.to_vec();
    let mut out = Vec::with_capacity(json.len() + 32);
    if let Some(name) = &event.event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::SseParser;

    const STREAM: &[u8] = b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"The \\\"usage\\\": {} and \\\"error\\\"\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n\
data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n\
data: [DONE]\n\n";

    /// Run a stream through parser and observer; returns what the client receives.
    fn run(observer: &mut OpenAiStreamObserver, stream: &[u8]) -> (Vec<u8>, Vec<EventAction>) {
        let (out, passed) = run_passed(observer, stream);
        (out, passed.into_iter().map(|p| p.action).collect())
    }

    fn run_passed(observer: &mut OpenAiStreamObserver, stream: &[u8]) -> (Vec<u8>, Vec<Passed>) {
        let mut parser = SseParser::new();
        let mut events = parser.push(stream);
        events.extend(parser.finish());
        let mut out = Vec::new();
        let mut passed = Vec::new();
        for event in &events {
            let p = observer.on_event(event);
            if let Some(bytes) = p.bytes(&event.raw) {
                out.extend_from_slice(&bytes);
            }
            passed.push(p);
        }
        (out, passed)
    }

    #[test]
    fn content_and_the_final_event_are_marked() {
        let mut observer = OpenAiStreamObserver::new(false);
        let (_, passed) = run_passed(&mut observer, STREAM);
        let content: Vec<bool> = passed.iter().map(|p| p.content).collect();
        // The role chunk, the text, the finish, the (dropped) usage, [DONE].
        assert_eq!(content, [false, true, false, false, false]);
        let finals: Vec<Option<usize>> = passed.iter().map(|p| p.final_at).collect();
        assert_eq!(finals, [None, None, None, None, Some(0)]);

        let mut observer = OpenAiStreamObserver::new(false);
        let (_, passed) = run_passed(&mut observer, b"data:[DONE]\r\n\r\n");
        assert_eq!(passed[0].final_at, Some(0));
        let (_, passed) = run_passed(&mut observer, b"data: {\"choices\":[]}\n\n");
        assert_eq!(passed[0].final_at, None);
    }

    #[test]
    fn content_deltas_are_recognised() {
        assert!(carries_content(
            br#"{"choices":[{"index":0,"delta":{"content":" hi"}}]}"#
        ));
        assert!(carries_content(
            br#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"a"}}]}}]}"#
        ));
        assert!(!carries_content(
            br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#
        ));
        // Shown reasoning is generated output too, whichever field carries it.
        assert!(carries_content(
            br#"{"choices":[{"index":0,"delta":{"reasoning_content":"Thinking"}}]}"#
        ));
        assert!(carries_content(
            br#"{"choices":[{"delta":{"content":null,"reasoning":" step1"}}]}"#
        ));
        assert!(!carries_content(
            br#"{"choices":[{"delta":{"content":"","reasoning_content":""}}]}"#
        ));
        assert!(!carries_content(
            br#"{"choices":[],"usage":{"prompt_tokens":1}}"#
        ));
        assert!(!carries_content(b"[DONE]"));
    }

    #[test]
    fn the_usage_chunk_is_dropped_when_the_client_did_not_ask() {
        let mut observer = OpenAiStreamObserver::new(false);
        let (out, actions) = run(&mut observer, STREAM);
        assert_eq!(observer.usage(), Some(Usage::from_openai(19, 10, 0, 0)));
        assert_eq!(actions[3], EventAction::Drop);
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("prompt_tokens"));
        assert!(out.ends_with("data: [DONE]\n\n"));
        assert_eq!(observer.stream_error(), None);
    }

    #[test]
    fn the_usage_chunk_is_kept_when_the_client_asked() {
        let mut observer = OpenAiStreamObserver::new(true);
        let (out, actions) = run(&mut observer, STREAM);
        assert!(actions.iter().all(|a| *a == EventAction::Forward));
        assert_eq!(out, STREAM);
        assert_eq!(observer.usage().map(|u| u.total_tokens()), Some(29));
    }

    #[test]
    fn usage_riding_on_a_content_chunk_is_cut_out_of_it() {
        let stream = b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
        let mut observer = OpenAiStreamObserver::new(false);
        let (out, actions) = run(&mut observer, stream);
        assert!(matches!(actions[0], EventAction::Replace(_)));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
        );
        assert_eq!(observer.usage(), Some(Usage::from_openai(5, 1, 0, 0)));
    }

    #[test]
    fn azure_prompt_filter_chunks_and_openrouter_comments_pass() {
        let stream = b": OPENROUTER PROCESSING\n\n\
data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"index\":0}],\"usage\":null}\n\n\
data: [DONE]\n\n";
        let mut observer = OpenAiStreamObserver::new(false);
        let (out, _) = run(&mut observer, stream);
        assert_eq!(out, stream);
        assert_eq!(observer.usage(), None);
    }

    #[test]
    fn in_band_errors_are_recorded_and_forwarded() {
        let stream = b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n\
data: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\"}}\n\n";
        let mut observer = OpenAiStreamObserver::new(false);
        let (out, _) = run(&mut observer, stream);
        assert_eq!(out, stream);
        assert_eq!(
            observer.stream_error().as_deref(),
            Some("The server had an error while processing your request.")
        );

        let openrouter = b"data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"error\":{\"code\":502,\"message\":\"Provider disconnected\"},\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n";
        let mut observer = OpenAiStreamObserver::new(false);
        let (out, _) = run(&mut observer, openrouter);
        assert_eq!(out, openrouter);
        assert_eq!(
            observer.stream_error().as_deref(),
            Some("Provider disconnected")
        );

        let bare = b"data: {\"id\":\"gen-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"error\"}]}\n\n";
        let mut observer = OpenAiStreamObserver::new(false);
        run(&mut observer, bare);
        assert!(observer.stream_error().unwrap().contains("finish_reason"));
    }

    #[test]
    fn the_last_usage_wins() {
        let stream =
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7}}\n\n";
        let mut observer = OpenAiStreamObserver::new(false);
        let (out, _) = run(&mut observer, stream);
        assert!(out.is_empty());
        assert_eq!(observer.usage().map(|u| u.output), Some(7));
    }
}
