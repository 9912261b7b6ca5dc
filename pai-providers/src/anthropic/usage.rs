//! Anthropic's `usage` object.
//!
//! `input_tokens` excludes cache reads and writes, which come as `cache_read_input_tokens` and
//! `cache_creation_input_tokens`; [`Usage::from_anthropic`] keeps the three apart.

use pai_core::Usage;
use serde::Deserialize;

use crate::tokens::{value, Count};

/// `usage` as Anthropic sends it; every field may be missing or null.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<Count>,
    #[serde(default)]
    pub output_tokens: Option<Count>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<Count>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<Count>,
    /// `output_tokens_details.thinking_tokens`: the part of the output spent thinking.
    #[serde(default)]
    pub output_tokens_details: Option<OutputDetails>,
}

/// `usage.output_tokens_details`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub(crate) struct OutputDetails {
    #[serde(default)]
    pub thinking_tokens: Option<Count>,
}

impl WireUsage {
    /// Fields present in `newer` replace those here; absent ones stay. Streams report usage
    /// cumulatively, so the latest value is the total and nothing is ever added.
    pub(crate) fn update(&mut self, newer: &WireUsage) {
        let fields = [
            (&mut self.input_tokens, newer.input_tokens),
            (&mut self.output_tokens, newer.output_tokens),
            (
                &mut self.cache_creation_input_tokens,
                newer.cache_creation_input_tokens,
            ),
            (
                &mut self.cache_read_input_tokens,
                newer.cache_read_input_tokens,
            ),
        ];
        for (field, newer) in fields {
            if newer.is_some() {
                *field = newer;
            }
        }
        if newer.output_tokens_details.is_some() {
            self.output_tokens_details = newer.output_tokens_details;
        }
    }

    /// Whether any count was seen.
    pub(crate) fn is_empty(&self) -> bool {
        self.input_tokens.is_none()
            && self.output_tokens.is_none()
            && self.cache_creation_input_tokens.is_none()
            && self.cache_read_input_tokens.is_none()
    }

    /// In the gateway's own terms.
    pub(crate) fn to_usage(self) -> Usage {
        let mut usage = Usage::from_anthropic(
            value(self.input_tokens),
            value(self.output_tokens),
            value(self.cache_creation_input_tokens),
            value(self.cache_read_input_tokens),
        );
        usage.reasoning =
            value(self.output_tokens_details.and_then(|d| d.thinking_tokens)).min(usage.output);
        usage
    }
}

/// The usage in a complete Messages response body, if it has one.
pub(crate) fn from_body(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        usage: Option<WireUsage>,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    body.usage.map(WireUsage::to_usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_reads_and_writes_stay_apart() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Hi"}],
            "stop_reason":"end_turn","usage":{"input_tokens":12,"cache_creation_input_tokens":200,
            "cache_read_input_tokens":1000,"output_tokens":30,"service_tier":"standard"}}"#;
        let u = from_body(body).unwrap();
        assert_eq!(u, Usage::from_anthropic(12, 30, 200, 1000));
        assert_eq!(u.prompt_tokens(), 1212);
    }

    #[test]
    fn nulls_and_missing_fields_are_zero() {
        let body =
            br#"{"usage":{"input_tokens":3,"output_tokens":1,"cache_creation_input_tokens":null}}"#;
        assert_eq!(from_body(body), Some(Usage::from_anthropic(3, 1, 0, 0)));
        assert_eq!(from_body(br#"{"input_tokens":3}"#), None);
    }
}
