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

/// Watches a streamed response event by event.
///
/// Contract: called once per complete event, in order; must not block. Usage that upstream
/// reports cumulatively (Anthropic `message_delta`, Gemini chunks) is taken last, never summed.
pub trait StreamObserver: Send + 'static {
    /// Look at one event and say what the client gets.
    fn on_event(&mut self, event: &SseEvent) -> EventAction;

    /// The stream ended cleanly; bytes to append, if any.
    fn on_end(&mut self) -> Option<Bytes> {
        None
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
pub trait Provider: Send + Sync + 'static {
    /// The kind of provider this adapter speaks to.
    fn kind(&self) -> ProviderKind;

    /// The dialect of the upstream API.
    fn dialect(&self) -> Dialect {
        self.kind().dialect()
    }

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
