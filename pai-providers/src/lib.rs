//! Provider adapters, the SSE codec, usage extraction and the default upstream transport for
//! pai, an LLM gateway.
//!
//! [`pai_core`] names the contracts; this crate fulfils them for real providers. An adapter
//! ([`openai::OpenAiAdapter`] for OpenAI, OpenRouter and vLLM, [`anthropic::AnthropicAdapter`]
//! for Anthropic, [`gemini::GeminiAdapter`] for Gemini, [`azure::AzureOpenAiAdapter`] for Azure
//! OpenAI; [`adapter_for`] picks one by provider kind) builds the upstream request with the
//! real key, reads usage out of JSON bodies and, through a stream observer, out of SSE streams as
//! they pass, and turns upstream errors of any shape into the gateway's [`pai_core::Error`]
//! ([`errors`]). Every adapter serves both client dialects: when the client speaks another
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
//! let openrouter = pai_providers::adapter_for(ProviderKind::OpenRouter).unwrap();
//! assert_eq!(openrouter.kind(), ProviderKind::OpenRouter);
//! assert_eq!(openrouter.dialect(), Dialect::OpenAi);
//! let gemini = pai_providers::adapter_for(ProviderKind::Gemini).unwrap();
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
pub use request::PAI_USER_AGENT;
pub use sse::SseParser;
pub use transport::{HttpTransport, TransportOptions};

/// The adapter for a provider kind. Every kind has one; the `Option` leaves room for kinds
/// added to `pai-core` before their adapter exists.
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
            assert_eq!(adapter.kind(), kind);
            assert_eq!(adapter.dialect(), kind.dialect());
        }
        let anthropic = adapter_for(ProviderKind::Anthropic).unwrap();
        assert_eq!(anthropic.dialect(), Dialect::Anthropic);
    }
}
