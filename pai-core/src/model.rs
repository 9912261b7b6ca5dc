//! Provider types and model references.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::dialect::Dialect;

/// A kind of service pai has an adapter for built in.
///
/// A ModelProvider names one in `spec.provider`, or the name of an adapter a library user
/// registered with the gateway: see [`ProviderType`].
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

/// The longest name an adapter may be registered under.
pub const MAX_PROVIDER_NAME_LEN: usize = 63;

/// What a ModelProvider's `spec.provider` names: one of pai's built-in kinds, or an adapter a
/// library user registered with the gateway under that name (`acme`).
///
/// Either way it is written as the bare name, so a built-in type reads and writes exactly as a
/// [`ProviderKind`] does. Any well-formed name parses: whether an adapter of that name exists is
/// known only where the adapters are (`pai_providers::Adapters`), which refuses a resource
/// naming an unknown one at apply time and leaves a stored one uncallable.
///
/// ```
/// use pai_core::model::{ProviderKind, ProviderType};
///
/// assert_eq!("openai".parse(), Ok(ProviderType::BuiltIn(ProviderKind::OpenAi)));
/// assert_eq!("acme".parse(), Ok(ProviderType::Custom("acme".to_owned())));
/// assert!("Acme Corp".parse::<ProviderType>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ProviderType {
    /// A kind pai has built in.
    BuiltIn(ProviderKind),
    /// An adapter registered by a library user, by the name it was registered under.
    Custom(String),
}

impl ProviderType {
    /// The name as written in `spec.provider`.
    pub fn as_str(&self) -> &str {
        match self {
            ProviderType::BuiltIn(kind) => kind.as_str(),
            ProviderType::Custom(name) => name,
        }
    }

    /// The built-in kind, if it is one.
    pub fn kind(&self) -> Option<ProviderKind> {
        match self {
            ProviderType::BuiltIn(kind) => Some(*kind),
            ProviderType::Custom(_) => None,
        }
    }

    /// The endpoint used when a ModelProvider names none; `None` where one is required, which
    /// is always for a custom adapter (pai knows no public endpoint for it).
    pub fn default_endpoint(&self) -> Option<&'static str> {
        self.kind().and_then(ProviderKind::default_endpoint)
    }

    /// Whether pai requires a ModelProvider of this type to name an API key. A custom adapter
    /// decides for itself whether it needs one.
    pub fn requires_api_key(&self) -> bool {
        self.kind().is_some_and(ProviderKind::requires_api_key)
    }
}

/// Whether `name` may name an adapter: lower-case letters, digits, `-`, `_` or `.`, starting
/// and ending with a letter or digit, at most [`MAX_PROVIDER_NAME_LEN`] bytes.
pub fn valid_provider_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    name.len() <= MAX_PROVIDER_NAME_LEN
        && edge(bytes.first())
        && edge(bytes.last())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

impl From<ProviderKind> for ProviderType {
    fn from(kind: ProviderKind) -> ProviderType {
        ProviderType::BuiltIn(kind)
    }
}

impl PartialEq<ProviderKind> for ProviderType {
    fn eq(&self, other: &ProviderKind) -> bool {
        self.kind() == Some(*other)
    }
}

impl fmt::Display for ProviderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(kind) = s.parse::<ProviderKind>() {
            return Ok(ProviderType::BuiltIn(kind));
        }
        if valid_provider_name(s) {
            return Ok(ProviderType::Custom(s.to_owned()));
        }
        let names: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
        Err(format!(
            "{s:?} is not a provider name: write one of {}, or the name of an adapter registered with the gateway (lower-case letters, digits, '-', '_' or '.', at most {MAX_PROVIDER_NAME_LEN} characters)",
            names.join(", ")
        ))
    }
}

impl TryFrom<String> for ProviderType {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ProviderType> for String {
    fn from(t: ProviderType) -> String {
        match t {
            ProviderType::BuiltIn(kind) => kind.as_str().to_owned(),
            ProviderType::Custom(name) => name,
        }
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

    #[test]
    fn provider_types_read_and_write_as_bare_names() {
        for k in ProviderKind::ALL {
            let t: ProviderType = serde_json::from_value(serde_json::json!(k.as_str()))
                .unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(t, ProviderType::BuiltIn(k));
            assert_eq!(t, k);
            assert_eq!(
                serde_json::to_value(&t).ok(),
                Some(serde_json::json!(k.as_str()))
            );
        }
        let acme: ProviderType = serde_json::from_value(serde_json::json!("acme"))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(acme, ProviderType::Custom("acme".to_owned()));
        assert_eq!(acme.kind(), None);
        assert_eq!(acme.default_endpoint(), None);
        assert!(!acme.requires_api_key());
        assert_eq!(
            serde_json::to_value(&acme).ok(),
            Some(serde_json::json!("acme"))
        );
    }

    #[test]
    fn provider_names_are_bounded_and_plain() {
        for good in ["acme", "acme-2", "a", "corp.llm_v1"] {
            assert!(good.parse::<ProviderType>().is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_PROVIDER_NAME_LEN + 1);
        for bad in [
            "",
            "Acme",
            "acme corp",
            "-acme",
            "acme-",
            "ac/me",
            "é",
            long.as_str(),
        ] {
            let e = bad.parse::<ProviderType>().unwrap_err();
            assert!(e.contains("anthropic, gemini, openai"), "{e}");
        }
        assert!(serde_json::from_value::<ProviderType>(serde_json::json!("Bad Name")).is_err());
    }
}
