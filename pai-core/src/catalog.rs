//! The models pai knows for providers with a public catalogue.
//!
//! For anthropic, openai and gemini an unknown model name is refused before any upstream call,
//! with the close matches listed. Dated snapshots (`claude-sonnet-4-5-20250929`,
//! `gpt-4o-2024-08-06`) and `-latest` aliases of a listed model are accepted too.

use crate::model::ProviderKind;

/// Anthropic models as of 2026-11.
pub const ANTHROPIC: &[&str] = &[
    "claude-opus-5-5",
    "claude-sonnet-5-5",
    "claude-haiku-5-5",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-haiku-4-5",
    "claude-opus-4-5",
    "claude-sonnet-4-5",
    "claude-opus-4-1",
    "claude-opus-4-0",
    "claude-sonnet-4-0",
    "claude-3-7-sonnet",
    "claude-3-5-haiku",
    "claude-opus-4",
    "claude-sonnet-4",
];

/// OpenAI models as of 2026-11.
pub const OPENAI: &[&str] = &[
    "gpt-4o",
    "gpt-4o-mini",
    "o1",
    "o1-mini",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5.1",
];

/// Gemini models as of 2026-11.
pub const GEMINI: &[&str] = &[
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-2.0-flash-lite",
];

/// The catalogue of a provider kind, if pai keeps one.
pub fn catalogue(kind: ProviderKind) -> Option<&'static [&'static str]> {
    match kind {
        ProviderKind::Anthropic => Some(ANTHROPIC),
        ProviderKind::OpenAi => Some(OPENAI),
        ProviderKind::Gemini => Some(GEMINI),
        ProviderKind::OpenRouter | ProviderKind::AzureOpenAi | ProviderKind::Vllm => None,
    }
}

/// Whether `model` is `listed` itself, a dated snapshot of it, or its `-latest` alias.
pub fn names(listed: &str, model: &str) -> bool {
    let Some(rest) = model.strip_prefix(listed) else {
        return false;
    };
    if rest.is_empty() || rest == "-latest" {
        return true;
    }
    // -20250929 (Anthropic) or -2024-08-06 (OpenAI)
    let digits = rest.trim_start_matches('-');
    rest.starts_with('-')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && digits.bytes().filter(u8::is_ascii_digit).count() == 8
}

/// Whether the catalogue of `kind` knows `model`. `None` when pai keeps no catalogue.
pub fn knows(kind: ProviderKind, model: &str) -> Option<bool> {
    catalogue(kind).map(|list| list.iter().any(|m| names(m, model)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_and_aliases_count() {
        assert_eq!(
            knows(ProviderKind::Anthropic, "claude-sonnet-4-5-20250929"),
            Some(true)
        );
        assert_eq!(
            knows(ProviderKind::Anthropic, "claude-3-7-sonnet-latest"),
            Some(true)
        );
        assert_eq!(knows(ProviderKind::OpenAi, "gpt-4o-2024-08-06"), Some(true));
        assert_eq!(knows(ProviderKind::OpenAi, "gpt-4o-mini"), Some(true));
        assert_eq!(knows(ProviderKind::OpenAi, "gpt-4o-minx"), Some(false));
        assert_eq!(knows(ProviderKind::Vllm, "anything"), None);
    }
}
