//! Provider types and model references.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::dialect::Dialect;

/// The kind of service a ModelProvider talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProviderKind {
    /// Anthropic's Messages API.
    #[serde(rename = "anthropic")]
    Anthropic,
    /// Google's Gemini API.
    #[serde(rename = "gemini")]
    Gemini,
    /// OpenAI, or any OpenAI-compatible endpoint.
    #[serde(rename = "openai")]
    OpenAi,
    /// OpenRouter.
    #[serde(rename = "openrouter")]
    OpenRouter,
    /// Azure OpenAI.
    #[serde(rename = "azure-openai")]
    AzureOpenAi,
    /// A vLLM server.
    #[serde(rename = "vllm")]
    Vllm,
}

impl ProviderKind {
    /// Every kind, in the order users see them listed.
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::OpenAi,
        ProviderKind::OpenRouter,
        ProviderKind::AzureOpenAi,
        ProviderKind::Vllm,
    ];

    /// The kinds with a public endpoint, which a ModelBinding may call directly.
    pub const DIRECT: [ProviderKind; 4] = [
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::OpenAi,
        ProviderKind::OpenRouter,
    ];

    /// The name users write in `spec.provider`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::OpenAi => "openai",
            ProviderKind::OpenRouter => "openrouter",
            ProviderKind::AzureOpenAi => "azure-openai",
            ProviderKind::Vllm => "vllm",
        }
    }

    /// The dialect the provider's API speaks.
    pub fn dialect(self) -> Dialect {
        match self {
            ProviderKind::Anthropic => Dialect::Anthropic,
            ProviderKind::Gemini => Dialect::Gemini,
            ProviderKind::OpenAi
            | ProviderKind::OpenRouter
            | ProviderKind::AzureOpenAi
            | ProviderKind::Vllm => Dialect::OpenAi,
        }
    }

    /// The endpoint used when a ModelProvider names none; `None` where one is required.
    pub fn default_endpoint(self) -> Option<&'static str> {
        match self {
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::Gemini => Some("https://generativelanguage.googleapis.com"),
            ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
            ProviderKind::OpenRouter => Some("https://openrouter.ai/api/v1"),
            ProviderKind::AzureOpenAi | ProviderKind::Vllm => None,
        }
    }

    /// Whether calls need an API key. A vLLM server may run without one.
    pub fn requires_api_key(self) -> bool {
        !matches!(self, ProviderKind::Vllm)
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown provider {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// A model named as `provider/model-id`.
///
/// The provider is everything before the first `/`; the model id is the rest and may itself
/// contain slashes: `nvidia/meta/llama-3.1-70b-instruct` is provider `nvidia`, model
/// `meta/llama-3.1-70b-instruct`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelRef {
    /// The ModelProvider's name.
    pub provider: String,
    /// The model id as that provider knows it.
    pub model: String,
}

impl FromStr for ModelRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => Ok(ModelRef {
                provider: provider.to_owned(),
                model: model.to_owned(),
            }),
            _ => Err(format!(
                "{s:?} is not a model reference; write it as provider/model-id, e.g. openai/gpt-4o"
            )),
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kinds_called_directly_are_those_with_a_public_endpoint() {
        let public: Vec<ProviderKind> = ProviderKind::ALL
            .into_iter()
            .filter(|k| k.default_endpoint().is_some())
            .collect();
        assert_eq!(public, ProviderKind::DIRECT);
    }

    #[test]
    fn model_ids_keep_their_slashes() {
        let r: ModelRef = "nvidia/meta/llama-3.1-70b-instruct"
            .parse()
            .unwrap_or_else(|e: String| unreachable!("{e}"));
        assert_eq!(r.provider, "nvidia");
        assert_eq!(r.model, "meta/llama-3.1-70b-instruct");
        assert_eq!(r.to_string(), "nvidia/meta/llama-3.1-70b-instruct");
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in ["gpt-4o", "/gpt-4o", "openai/", ""] {
            assert!(bad.parse::<ModelRef>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn provider_kinds_round_trip() {
        for k in ProviderKind::ALL {
            assert_eq!(k.as_str().parse::<ProviderKind>(), Ok(k));
        }
        assert!("azure".parse::<ProviderKind>().is_err());
    }
}
