//! Provider adapters, the SSE codec, usage extraction and the default upstream transport for
//! pai, an LLM gateway.
//!
//! [`pai_core`] names the contracts; this crate fulfils them for real providers. An adapter
//! ([`openai::OpenAiAdapter`] for OpenAI, OpenRouter and vLLM, [`anthropic::AnthropicAdapter`]
//! for Anthropic; [`adapter_for`] picks one by provider kind) builds the upstream request with the
//! real key, reads usage out of JSON bodies and, through a stream observer, out of SSE streams as
//! they pass, and turns upstream errors of any shape into the gateway's [`pai_core::Error`]
//! ([`errors`]). The shared machinery sits beside the adapters: [`sse::SseParser`] frames streams
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
//! assert!(pai_providers::adapter_for(ProviderKind::Gemini).is_none());
//! ```

pub mod anthropic;
pub mod errors;
pub mod headers;
pub mod openai;
pub mod redact;
mod request;
mod scan;
pub mod sse;
mod tokens;
pub mod transport;

use std::sync::Arc;

use pai_core::{Provider, ProviderKind};

pub use anthropic::AnthropicAdapter;
pub use openai::OpenAiAdapter;
pub use request::PAI_USER_AGENT;
pub use sse::SseParser;
pub use transport::{HttpTransport, TransportOptions};

/// The adapter for a provider kind, or `None` for kinds without one yet (Gemini and Azure
/// OpenAI).
pub fn adapter_for(kind: ProviderKind) -> Option<Arc<dyn Provider>> {
    match kind {
        ProviderKind::Anthropic => Some(Arc::new(AnthropicAdapter::new())),
        ProviderKind::OpenAi | ProviderKind::OpenRouter | ProviderKind::Vllm => {
            Some(Arc::new(OpenAiAdapter::new(kind)))
        }
        ProviderKind::Gemini | ProviderKind::AzureOpenAi => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pai_core::Dialect;

    #[test]
    fn every_kind_with_an_adapter_gets_the_right_one() {
        for kind in ProviderKind::ALL {
            match adapter_for(kind) {
                Some(adapter) => {
                    assert_eq!(adapter.kind(), kind);
                    assert_eq!(adapter.dialect(), kind.dialect());
                }
                None => assert!(matches!(
                    kind,
                    ProviderKind::Gemini | ProviderKind::AzureOpenAi
                )),
            }
        }
        let anthropic = adapter_for(ProviderKind::Anthropic).unwrap();
        assert_eq!(anthropic.dialect(), Dialect::Anthropic);
    }
}
