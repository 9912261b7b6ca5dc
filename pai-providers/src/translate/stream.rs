//! Translating a stream event by event.
//!
//! The upstream's events are read into [`Delta`]s by the decoder of its dialect and written
//! out by the encoder of the client's; one upstream event may become several client events
//! (a block closed and another opened) or none (`ping`, a usage-only chunk, a comment), so each
//! is answered with [`EventAction::Replace`] or [`EventAction::Drop`]. What the client needs
//! after the upstream's last event (OpenAI's usage chunk and `[DONE]`, Anthropic's
//! `message_delta` and `message_stop`) is written when the upstream says it is done, or at the
//! end of the body for upstreams that never say (Gemini).
//!
//! The observer writes every byte the client gets, so it knows what it wrote: whether the
//! events carry generated content (a non-empty text, reasoning or tool-argument delta), and
//! where the final event (`data: [DONE]`, `message_stop`) begins.

use bytes::Bytes;
use pai_core::{Call, Dialect, Passed, SseEvent, StreamObserver, Usage};

use super::ir::Delta;
use super::{anthropic, gemini, openai};

enum Decoder {
    OpenAi(openai::Decoder),
    Anthropic(anthropic::Decoder),
    Gemini(gemini::Decoder),
}

enum Encoder {
    OpenAi(openai::Encoder),
    Anthropic(anthropic::Encoder),
}

/// A [`StreamObserver`] that rewrites an upstream's stream into the client's dialect and meters
/// it on the way. See the module docs.
pub struct TranslatingObserver {
    decoder: Decoder,
    encoder: Encoder,
    deltas: Vec<Delta>,
    done: bool,
}

impl std::fmt::Debug for TranslatingObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TranslatingObserver")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl TranslatingObserver {
    /// An observer for one stream of `call` from an upstream speaking `upstream`. The client's
    /// dialect and whether it asked for a usage chunk come from the call.
    pub fn new(call: &Call, upstream: Dialect) -> TranslatingObserver {
        let decoder = match upstream {
            Dialect::OpenAi => Decoder::OpenAi(openai::Decoder::default()),
            Dialect::Anthropic => Decoder::Anthropic(anthropic::Decoder::default()),
            Dialect::Gemini => Decoder::Gemini(gemini::Decoder::default()),
        };
        let encoder = match call.client {
            Dialect::Anthropic => Encoder::Anthropic(anthropic::Encoder::new(&call.model)),
            Dialect::OpenAi | Dialect::Gemini => {
                Encoder::OpenAi(openai::Encoder::new(call.client_wants_usage, &call.model))
            }
        };
        TranslatingObserver {
            decoder,
            encoder,
            deltas: Vec::new(),
            done: false,
        }
    }

    /// Write the decoded deltas for the client: nothing, or bytes marked for the meter.
    fn encode(&mut self) -> Passed {
        let usage = self.usage();
        let mut out = Vec::new();
        let mut content = false;
        let mut final_at = None;
        for delta in self.deltas.drain(..) {
            if self.done {
                break;
            }
            if matches!(delta, Delta::Done | Delta::Error(_)) {
                self.done = true;
            }
            content |= match &delta {
                Delta::Text(s) | Delta::Thinking(s) => !s.is_empty(),
                Delta::ToolArgs { json, .. } => !json.is_empty(),
                _ => false,
            };
            let at = match &mut self.encoder {
                Encoder::OpenAi(e) => e.push(delta, usage, &mut out),
                Encoder::Anthropic(e) => e.push(delta, usage, &mut out),
            };
            final_at = final_at.or(at);
        }
        if out.is_empty() {
            return Passed::dropped();
        }
        let passed = Passed::replace(Bytes::from(out)).with_content(content);
        match final_at {
            Some(at) => passed.final_at(at),
            None => passed,
        }
    }
}

impl StreamObserver for TranslatingObserver {
    fn on_event(&mut self, event: &SseEvent) -> Passed {
        if self.done || event.is_comment_only() {
            // Keep-alive comments pass: they keep idle clients from timing out.
            return if self.done {
                Passed::dropped()
            } else {
                Passed::forward()
            };
        }
        match &mut self.decoder {
            Decoder::OpenAi(d) => d.decode(&event.data, &mut self.deltas),
            Decoder::Anthropic(d) => {
                d.decode(event.event.as_deref(), &event.data, &mut self.deltas)
            }
            Decoder::Gemini(d) => d.decode(&event.data, &mut self.deltas),
        }
        self.encode()
    }

    fn on_end(&mut self) -> Passed {
        if self.done {
            return Passed::dropped();
        }
        self.deltas.push(Delta::Done);
        self.encode()
    }

    fn usage(&self) -> Option<Usage> {
        match &self.decoder {
            Decoder::OpenAi(d) => d.usage(),
            Decoder::Anthropic(d) => d.usage(),
            Decoder::Gemini(d) => d.usage(),
        }
    }

    fn stream_error(&self) -> Option<String> {
        match &self.decoder {
            Decoder::OpenAi(d) => d.error(),
            Decoder::Anthropic(d) => d.error(),
            Decoder::Gemini(d) => d.error(),
        }
    }
}
