//! Provider adapters, the SSE codec, usage extraction and the default upstream transport for
//! pai, an LLM gateway.
//!
//! [`pai_core`] names the contracts; this crate fulfils them for real providers. An adapter
//! ([`openai::OpenAiAdapter`] for OpenAI, OpenRouter and vLLM, [`anthropic::AnthropicAdapter`]
//! for Anthropic, [`gemini::GeminiAdapter`] for Gemini, [`azure::AzureOpenAiAdapter`] for Azure
//! OpenAI) builds the upstream request with the real key, reads usage out of JSON bodies and,
//! through a stream observer, out of SSE streams as they pass (saying which events carry
//! content and which one ends the stream, so the meter never reads the wire format), and turns
//! upstream errors of any shape into the gateway's [`pai_core::Error`] ([`errors`]). Adapters
//! are found by the name a ModelProvider gives in [`Adapters`], where a library user registers
//! adapters of their own. Every adapter serves both client dialects: when the client speaks another
//! dialect than the upstream, [`translate`] rewrites the request, the answer and the stream
//! (event by event, through [`translate::TranslatingObserver`]). The shared machinery sits beside the adapters: [`sse::SseParser`] frames streams
//! without re-encoding them, [`headers`] decides which headers cross the gateway, and
//! [`HttpTransport`] reaches the upstreams over hyper and rustls.
//!
//! The tower layers that drive all this per request live in `pai-tower`; stores live in
//! `pai-store`.
//!
//! # Example
//!
//! ```
//! use pai_core::{Dialect, ProviderKind};
//!
//! let adapters = pai_providers::Adapters::builtin();
//! let openrouter = adapters.get("openrouter").unwrap();
//! assert_eq!(openrouter.kind(), Some(ProviderKind::OpenRouter));
//! assert_eq!(openrouter.dialect(), Dialect::OpenAi);
//! let gemini = adapters.get("gemini").unwrap();
//! assert_eq!(gemini.dialect(), Dialect::Gemini);
//! ```

pub mod anthropic;
pub mod azure;
pub mod errors;
pub mod estimate;
pub mod gemini;
pub mod guard_input;
pub mod headers;
pub mod openai;
pub mod redact;
pub mod registry;
mod request;
mod scan;
pub mod sent_key;
pub mod sse;
mod tokens;
pub mod translate;
pub mod transport;

use std::sync::Arc;

use pai_core::{Provider, ProviderKind};

pub use anthropic::AnthropicAdapter;
pub use azure::AzureOpenAiAdapter;
pub use gemini::GeminiAdapter;
pub use openai::OpenAiAdapter;
pub use registry::{Adapters, InvalidProviderName};
pub use request::PAI_USER_AGENT;
pub use sse::SseParser;
pub use transport::{HttpTransport, TransportOptions};

/// pai's own adapter for a provider kind. Every kind has one; the `Option` leaves room for
/// kinds added to `pai-core` before their adapter exists. A gateway finds adapters by name in
/// [`Adapters`], which starts with these.
pub fn adapter_for(kind: ProviderKind) -> Option<Arc<dyn Provider>> {
    match kind {
        ProviderKind::Anthropic => Some(Arc::new(AnthropicAdapter::new())),
        ProviderKind::OpenAi | ProviderKind::OpenRouter | ProviderKind::Vllm => {
            Some(Arc::new(OpenAiAdapter::new(kind)))
        }
        ProviderKind::Gemini => Some(Arc::new(GeminiAdapter::new())),
        ProviderKind::AzureOpenAi => Some(Arc::new(AzureOpenAiAdapter::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pai_core::Dialect;

    #[test]
    fn every_kind_with_an_adapter_gets_the_right_one() {
        for kind in ProviderKind::ALL {
            let adapter = adapter_for(kind).unwrap();
            assert_eq!(adapter.kind(), Some(kind));
            assert_eq!(adapter.dialect(), kind.dialect());
        }
        let anthropic = adapter_for(ProviderKind::Anthropic).unwrap();
        assert_eq!(anthropic.dialect(), Dialect::Anthropic);
    }
}
