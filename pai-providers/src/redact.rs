//! Removing key material from text that came from an upstream.
//!
//! Upstream error messages may quote the key they were given ("Incorrect API key provided:
//! sk-abc***xyz"), even masked. The gateway's provider key must never reach a client or a log,
//! and a masked key still tells an attacker which key and which account, so anything that looks
//! like a key is replaced by `[redacted]` before a message leaves an adapter.
//!
//! Looks like a key: a word starting with a known key prefix (`sk-`, `pak_`, `AIza`, …), the
//! word after `Bearer`, or a long run of letters and digits of the kind Azure keys are (32 or
//! more, with both). Words with `-` or `_` inside that don't start with a key prefix (request
//! ids, UUIDs) are kept: they are what a user quotes to support.
//!
//! Shapes miss keys of no known shape; [`crate::sent_key`] removes the exact key the gateway
//! sent, and its masked forms, from everything an adapter returns.

/// What replaces a key.
pub const REDACTED: &str = "[redacted]";

/// Prefixes of provider and gateway keys. `sk-` covers OpenAI (`sk-proj-`), Anthropic
/// (`sk-ant-`) and OpenRouter (`sk-or-`) keys, and wrapped pai keys (`sk-ant-api03-pak-…`).
const KEY_PREFIXES: &[&str] = &[
    "sk-", "sk_", "pak_", "pak-", "AIza", "xai-", "gsk_", "hf_", "r8_", "ghp_", "key-",
];

/// `text` with every key-looking word replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_bearer = false;
    let mut rest = text;
    while !rest.is_empty() {
        let word_len = rest.find(|c: char| !is_key_char(c)).unwrap_or(rest.len());
        if word_len == 0 {
            let sep_len = rest.find(is_key_char).unwrap_or(rest.len());
            let (sep, tail) = rest.split_at(sep_len);
            // Only spaces or a colon may stand between "Bearer" and its token.
            if !sep.chars().all(|c| c == ' ' || c == ':') {
                after_bearer = false;
            }
            out.push_str(sep);
            rest = tail;
            continue;
        }
        if after_bearer {
            // A bearer token may hold dots (JWTs): it runs to the next space or quote.
            let token_len = rest
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ','))
                .unwrap_or(rest.len());
            let (token, tail) = rest.split_at(token_len);
            // "Invalid bearer token" names no token; credentials are long and hold digits.
            if token.len() >= 8 && token.chars().any(|c| c.is_ascii_digit()) {
                out.push_str(REDACTED);
                rest = tail;
                after_bearer = false;
                continue;
            }
        }
        let (word, tail) = rest.split_at(word_len);
        if looks_like_key(word) {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
        after_bearer = word.eq_ignore_ascii_case("bearer");
        rest = tail;
    }
    out
}

/// Characters keys are made of, masks included.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*')
}

fn looks_like_key(word: &str) -> bool {
    let prefixed = KEY_PREFIXES
        .iter()
        .any(|p| word.len() >= p.len() + 3 && word.starts_with(p));
    let long_token = word.len() >= 32
        && word.chars().all(|c| c.is_ascii_alphanumeric())
        && word.chars().any(|c| c.is_ascii_digit())
        && word.chars().any(|c| c.is_ascii_alphabetic());
    prefixed || long_token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_openai_keys_are_redacted() {
        let msg = "Incorrect API key provided: sk-proj-abc***************************xyz. \
                   You can find your API key at https://platform.openai.com/account/api-keys.";
        let out = redact(msg);
        assert_eq!(
            out,
            "Incorrect API key provided: [redacted]. You can find your API key at \
             https://platform.openai.com/account/api-keys."
        );
    }

    #[test]
    fn every_kind_of_key_is_redacted() {
        for key in [
            "sk-ant-api03-AbC_dEf-123",
            "pak_0123456789abcdef",
            "sk-ant-api03-pak-0123abcd-AA",
            "AIzaSyA-1234567890abcdef",
            "sk-or-v1-0123456789abcdef",
            "0123456789abcdef0123456789abcdef",
        ] {
            let out = redact(&format!("bad key '{key}' given"));
            assert_eq!(out, "bad key '[redacted]' given", "{key}");
        }
        assert_eq!(
            redact("header Authorization: Bearer eyJ0.eyJ1.sig, then"),
            "header Authorization: Bearer [redacted], then"
        );
    }

    #[test]
    fn ordinary_words_and_ids_survive() {
        for text in [
            "max_tokens: Field required",
            "request req_011CSHoEeqs5C35K2UUqR7Fy failed",
            "id 123e4567-e89b-12d3-a456-426614174000",
            "the task-runner said sk",
            "Overloaded",
            "Invalid bearer token",
        ] {
            assert_eq!(redact(text), text);
        }
    }
}
