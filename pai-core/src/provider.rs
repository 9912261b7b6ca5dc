//! The provider adapter contract.
//!
//! An adapter turns a parsed [`Call`] plus resolved [`Credentials`] into an upstream request, and
//! interprets what comes back: usage from a JSON body, an observer for a stream, errors mapped
//! into the client's dialect. Adapters are small; the transport, SSE framing, retries and
//! metering live outside them.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::dialect::{Dialect, Operation};
use crate::error::Error;
use crate::json::JsonObject;
use crate::model::ProviderKind;
use crate::sse::SseEvent;
use crate::usage::Usage;

/// One call as the gateway understood it, ready for an adapter.
#[derive(Clone, Debug)]
pub struct Call {
    /// What the client asked for.
    pub operation: Operation,
    /// The dialect the client speaks; responses and errors must come back in it.
    pub client: Dialect,
    /// The model id as the upstream knows it.
    pub model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// For OpenAI-dialect streams: whether the client itself asked for
    /// `stream_options.include_usage`. The gateway always asks upstream; it must not hand the
    /// client a usage chunk the client did not ask for.
    pub client_wants_usage: bool,
    /// The request body, parsed at the top level only.
    pub body: JsonObject,
    /// Client headers an adapter may forward (`anthropic-version`, `anthropic-beta`, …); never
    /// credentials or hop-by-hop headers.
    pub headers: HeaderMap,
    /// The client's query parameters that may go upstream, if any (`beta=true` from Claude
    /// Code); see `pai_providers::headers::forwardable_query`.
    pub query: Option<String>,
}

/// A provider API key. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wrap a key.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Where and as whom to call the provider.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Base URL, without a trailing slash (`https://api.openai.com/v1`).
    pub endpoint: String,
    /// The real provider key, if the provider needs one.
    pub api_key: Option<ApiKey>,
}

/// What to do with one upstream stream event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventAction {
    /// Pass the event's bytes to the client unchanged.
    Forward,
    /// Withhold it (a usage chunk the client did not ask for).
    Drop,
    /// Send these bytes instead (translation between dialects).
    Replace(Bytes),
}

/// What the client gets for one upstream event, and what the gateway's meter must know of it.
///
/// Only the observer knows the wire format, so it says what it passed: whether that carries
/// generated content, and where the stream's final event is. The meter charges a stream cut
/// short at least one output token per event with content the client got, and writes its
/// `: pai-usage` comment right before the final event (or, when no event passed was final, at
/// the end of the stream). An observer that says neither (`EventAction::…into()`) still works;
/// only those two refinements are lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passed {
    /// What the client gets.
    pub action: EventAction,
    /// Whether what the client gets carries generated content: text, tool-call arguments or
    /// shown reasoning (not a role, a finish reason, usage or a ping).
    pub content: bool,
    /// Where the stream's final event (`data: [DONE]`, `message_stop`) begins in what the
    /// client gets: 0 for a forwarded final event, or an offset into the bytes of a
    /// replacement whose last event ends the stream.
    pub final_at: Option<usize>,
}

impl Passed {
    /// The event goes to the client unchanged.
    pub fn forward() -> Passed {
        EventAction::Forward.into()
    }

    /// The client gets nothing for the event.
    pub fn dropped() -> Passed {
        EventAction::Drop.into()
    }

    /// The client gets `bytes` instead.
    pub fn replace(bytes: Bytes) -> Passed {
        EventAction::Replace(bytes).into()
    }

    /// Say whether what the client gets carries generated content.
    pub fn with_content(mut self, content: bool) -> Passed {
        self.content = content;
        self
    }

    /// Say that the stream's final event begins at `at` in what the client gets.
    pub fn final_at(mut self, at: usize) -> Passed {
        self.final_at = Some(at);
        self
    }

    /// The bytes of a replacement, if it is one: what an `on_end` appends.
    pub fn replacement(&self) -> Option<&Bytes> {
        match &self.action {
            EventAction::Replace(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The bytes the client gets, given the event's own.
    pub fn bytes(&self, raw: &Bytes) -> Option<Bytes> {
        match &self.action {
            EventAction::Forward => Some(raw.clone()),
            EventAction::Drop => None,
            EventAction::Replace(bytes) => Some(bytes.clone()),
        }
    }
}

impl From<EventAction> for Passed {
    fn from(action: EventAction) -> Passed {
        Passed {
            action,
            content: false,
            final_at: None,
        }
    }
}

/// Watches a streamed response event by event.
///
/// Contract: called once per complete event, in order; must not block. Usage that upstream
/// reports cumulatively (Anthropic `message_delta`, Gemini chunks) is taken last, never summed.
pub trait StreamObserver: Send + 'static {
    /// Look at one event and say what the client gets, and what that is ([`Passed`]).
    fn on_event(&mut self, event: &SseEvent) -> Passed;

    /// The stream ended cleanly: bytes to append, if any (`EventAction::Replace`, with
    /// `final_at` when they hold the final event). The default adds nothing; `Forward` is read
    /// as nothing too, since no upstream event is left to forward.
    fn on_end(&mut self) -> Passed {
        Passed::dropped()
    }

    /// The usage seen so far.
    fn usage(&self) -> Option<Usage>;

    /// An error the upstream reported inside the stream, if any.
    fn stream_error(&self) -> Option<String> {
        None
    }
}

/// A provider adapter. See the module docs.
///
/// Contract: given a parsed call and the resolved credentials, produce an upstream request and
/// interpret the response: status mapping, errors in the client's dialect, usage extraction for
/// JSON and SSE, and `count_tokens` where the provider has it (others answer 501).
///
/// The gateway finds an adapter by the name a ModelProvider's `spec.provider` gives; pai's own
/// are registered under their [`ProviderKind`] names, and a library user registers more (see
/// `pai_providers::Adapters` and `pai_tower::GatewayBuilder::provider`). What the gateway needs
/// to know of the upstream beyond that, it asks the adapter: its [`Provider::dialect`] (how
/// prompts are estimated before the call) and, for pai's own, its [`Provider::kind`].
pub trait Provider: Send + Sync + 'static {
    /// The built-in kind of provider this adapter speaks to; `None` (the default) for an
    /// adapter of a library user's own, which the gateway then knows by its dialect alone.
    fn kind(&self) -> Option<ProviderKind> {
        None
    }

    /// The dialect of the upstream API. For an adapter that is none of pai's own kinds, the
    /// gateway sizes a prompt by it before the call (a conservative count, plus Anthropic's
    /// tool-use prompt for [`Dialect::Anthropic`]); an adapter for a wire format of its own
    /// names the dialect nearest to it.
    fn dialect(&self) -> Dialect;

    /// Build the upstream request. The real key goes in here and nowhere else.
    fn build_request(
        &self,
        call: &Call,
        credentials: &Credentials,
    ) -> Result<http::Request<Bytes>, Error>;

    /// The client's body for a complete (non-streamed) successful response. Same-dialect
    /// adapters return it unchanged.
    fn response_body(&self, _call: &Call, body: Bytes) -> Result<Bytes, Error> {
        Ok(body)
    }

    /// Usage from a complete JSON response body, as upstream sent it.
    fn usage(&self, call: &Call, body: &[u8]) -> Option<Usage>;

    /// A fresh observer for one streamed response.
    fn stream_observer(&self, call: &Call) -> Box<dyn StreamObserver>;

    /// Map an upstream error response into the error the client receives.
    fn upstream_error(
        &self,
        call: &Call,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Error;
}
