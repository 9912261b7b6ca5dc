//! OpenAI's `usage` object.
//!
//! `prompt_tokens` includes `prompt_tokens_details.cached_tokens` and `completion_tokens`
//! includes `completion_tokens_details.reasoning_tokens`; [`Usage::from_openai`] carves them
//! out. OpenRouter adds `cost`, which the gateway recomputes from its own price table instead.

use pai_core::Usage;
use serde::Deserialize;

use crate::tokens::{value, Count};

/// `usage` as OpenAI-compatible servers send it; every field may be missing or null.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<Count>,
    #[serde(default)]
    completion_tokens: Option<Count>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<Count>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<Count>,
}

impl WireUsage {
    /// In the gateway's own terms.
    pub(crate) fn to_usage(&self) -> Usage {
        Usage::from_openai(
            value(self.prompt_tokens),
            value(self.completion_tokens),
            value(
                self.prompt_tokens_details
                    .as_ref()
                    .and_then(|d| d.cached_tokens),
            ),
            value(
                self.completion_tokens_details
                    .as_ref()
                    .and_then(|d| d.reasoning_tokens),
            ),
        )
    }
}

/// The usage in a complete chat completion body, if it has one.
pub(crate) fn from_body(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        usage: Option<WireUsage>,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    body.usage.map(|u| u.to_usage())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_and_reasoning_tokens_are_carved_out() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,
                     "prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},
                     "completion_tokens_details":{"reasoning_tokens":256,"audio_tokens":0}}}"#;
        let u = from_body(body).unwrap();
        assert_eq!(u.input, 176);
        assert_eq!(u.cached_input, 1024);
        assert_eq!(u.output, 300);
        assert_eq!(u.reasoning, 256);
        assert_eq!(u.total_tokens(), 1500);
    }

    #[test]
    fn nulls_and_missing_fields_are_zero() {
        let body = br#"{"usage":{"prompt_tokens":10,"completion_tokens":null,"prompt_tokens_details":null}}"#;
        assert_eq!(from_body(body), Some(Usage::from_openai(10, 0, 0, 0)));
        assert_eq!(from_body(br#"{"choices":[]}"#), None);
        assert_eq!(from_body(br#"{"usage":null}"#), None);
        assert_eq!(from_body(b"not json"), None);
    }
}
