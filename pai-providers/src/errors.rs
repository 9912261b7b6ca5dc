//! Upstream error responses, normalised into the gateway's [`Error`].
//!
//! Upstreams answer errors in many shapes: OpenAI's `{"error":{"message",…}}`, Anthropic's
//! `{"type":"error","error":{"type","message"}}`, vLLM's `{"error":"Unauthorized"}`, FastAPI's
//! `{"detail":…}`, a JSON array of errors (Gemini's OpenAI-compatible surface), or plain text and
//! HTML from a proxy in front of the model server. [`upstream_error`] reads the message out of
//! any of them and returns an [`Error::Upstream`], which the gateway renders in the client's own
//! dialect; the client never has to parse a foreign error shape.
//!
//! Two rules shape the status the client sees:
//!
//! - An upstream 401 or 403 means the gateway's provider key was refused. Passing it on would
//!   make the client believe *its* access key is wrong (and Claude Code would retry a 401 many
//!   times), so it becomes a 502 that says which secret to check.
//! - 529 (Anthropic's "overloaded") stays 529 for Anthropic clients, whose SDKs know it, and
//!   becomes 503 for OpenAI clients, whose SDKs retry 503.
//!
//! Every message goes through [`redact`] first, and is cut to about 300 characters.

use http::{HeaderMap, StatusCode};
use pai_core::{Dialect, Error};
use serde_json::Value;

use crate::redact::redact;

/// How much of an upstream's message the client gets, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// The error the client receives for an upstream error response. See the module docs.
pub fn upstream_error(
    client: Dialect,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Error {
    // Redact before cutting, so that a cut cannot leave half a key that no longer looks like one.
    let detail = clip(&redact(&describe_body(status, body)));
    let retry_after_secs = retry_after_secs(headers);
    let (status, message) = match status.as_u16() {
        401 | 403 => (
            StatusCode::BAD_GATEWAY,
            format!(
                "the upstream rejected the gateway's credentials for this provider \
                 (check its API key secret): {detail}"
            ),
        ),
        529 if client.client_error_dialect() == Dialect::OpenAi => {
            (StatusCode::SERVICE_UNAVAILABLE, detail)
        }
        400..=599 => (status, detail),
        _ => (
            StatusCode::BAD_GATEWAY,
            format!("the upstream answered with unexpected status {status}: {detail}"),
        ),
    };
    Error::Upstream {
        status,
        message,
        retry_after_secs,
    }
}

/// Seconds to wait, from `retry-after-ms` or `retry-after` (seconds; an HTTP date is ignored).
///
/// Fractions round up: a client told to wait 1.2 s that retries after 1 s fails again.
pub fn retry_after_secs(headers: &HeaderMap) -> Option<u64> {
    let number = |name: &str| -> Option<f64> {
        let n = headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()?;
        (n.is_finite() && n >= 0.0).then_some(n)
    };
    if let Some(ms) = number("retry-after-ms") {
        return Some((ms / 1000.0).ceil() as u64);
    }
    number("retry-after").map(|s| s.ceil() as u64)
}

/// The upstream's message, as plain text on one line (not yet redacted nor cut).
fn describe_body(status: StatusCode, body: &[u8]) -> String {
    let text = body.trim_ascii();
    if text.is_empty() {
        return format!("the upstream answered {status} with an empty body");
    }
    if matches!(text.first(), Some(b'{' | b'[')) {
        if let Ok(value) = serde_json::from_slice::<Value>(text) {
            let message = describe_value(&value).unwrap_or_else(|| value.to_string());
            return one_line(&message);
        }
    }
    let text = String::from_utf8_lossy(text);
    if text.starts_with('<') {
        return one_line(&html_text(&text));
    }
    one_line(&text)
}

/// The message inside an error value of any of the shapes in the module docs.
pub(crate) fn describe_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Array(items) => {
            let mut parts: Vec<String> = Vec::new();
            for part in items.iter().filter_map(describe_value) {
                if !parts.contains(&part) {
                    parts.push(part);
                }
            }
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        Value::Object(map) => [
            "error",
            "message",
            "msg",
            "detail",
            "error_description",
            "title",
        ]
        .iter()
        .find_map(|key| map.get(*key).and_then(describe_value))
        .or_else(|| {
            // A shape with no message at all still has a type or status worth showing.
            ["type", "status", "code"]
                .iter()
                .filter_map(|key| map.get(*key).and_then(Value::as_str))
                .find(|s| *s != "error")
                .map(str::to_owned)
        }),
        _ => None,
    }
}

/// The readable text of an HTML error page: its title if it has one, else its text.
fn html_text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    if let (Some(open), Some(close)) = (lower.find("<title>"), lower.find("</title>")) {
        if let Some(title) = html.get(open + "<title>".len()..close) {
            if !title.trim().is_empty() {
                return title.to_owned();
            }
        }
    }
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

/// Whitespace runs, newlines included, become single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or_default()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    fn upstream(client: Dialect, code: u16, body: &str) -> (u16, String, Option<u64>) {
        match upstream_error(client, status(code), &HeaderMap::new(), body.as_bytes()) {
            Error::Upstream {
                status,
                message,
                retry_after_secs,
            } => (status.as_u16(), message, retry_after_secs),
            other => panic!("not an upstream error: {other:?}"),
        }
    }

    #[test]
    fn every_body_shape_yields_its_message() {
        let cases = [
            (
                r#"{"error":{"message":"Invalid 'messages': empty array.","type":"invalid_request_error","param":"messages","code":"empty_array"}}"#,
                "Invalid 'messages': empty array.",
            ),
            (
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#,
                "max_tokens: Field required",
            ),
            (r#"{"error":"Unauthorized"}"#, "Unauthorized"),
            (
                r#"[{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT"}}]"#,
                "Request contains an invalid argument.",
            ),
            (
                r#"{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}"#,
                "This model's maximum context length is 4096 tokens.",
            ),
            (
                r#"{"detail":[{"loc":["body","messages"],"msg":"field required","type":"value_error.missing"}]}"#,
                "field required",
            ),
            (r#"{"error":{"type":"server_error"}}"#, "server_error"),
            (r#"{"unexpected":true}"#, r#"{"unexpected":true}"#),
            ("upstream connect error or disconnect/reset before headers\n", "upstream connect error or disconnect/reset before headers"),
            (
                "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center><h1>502 Bad Gateway</h1></center></body></html>",
                "502 Bad Gateway",
            ),
            ("<html><body><h1>Service down</h1>\n<p>try   later</p></body></html>", "Service down try later"),
        ];
        for (body, want) in cases {
            let (code, message, _) = upstream(Dialect::OpenAi, 400, body);
            assert_eq!(code, 400);
            assert_eq!(message, want, "{body}");
        }
        let (_, message, _) = upstream(Dialect::Anthropic, 500, "");
        assert_eq!(
            message,
            "the upstream answered 500 Internal Server Error with an empty body"
        );
    }

    #[test]
    fn refused_provider_keys_are_the_gateways_problem_not_the_clients() {
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-proj-ab**********************yz. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        for code in [401, 403] {
            let (status, message, _) = upstream(Dialect::OpenAi, code, body);
            assert_eq!(status, 502);
            assert!(message.starts_with(
                "the upstream rejected the gateway's credentials for this provider (check its API key secret): Incorrect API key provided: [redacted]."
            ), "{message}");
            assert!(!message.contains("sk-"));
            assert!(!message.contains("yz"));
        }
        let (status, message, _) = upstream(Dialect::Anthropic, 401, r#"{"error":"Unauthorized"}"#);
        assert_eq!(status, 502);
        assert!(message.ends_with(": Unauthorized"));
    }

    #[test]
    fn overloaded_is_529_for_anthropic_clients_and_503_for_openai_clients() {
        let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(upstream(Dialect::Anthropic, 529, body).0, 529);
        assert_eq!(upstream(Dialect::OpenAi, 529, body).0, 503);
        let e = upstream_error(
            Dialect::Anthropic,
            status(529),
            &HeaderMap::new(),
            body.as_bytes(),
        );
        assert_eq!(e.anthropic_type(), "overloaded_error");
    }

    #[test]
    fn other_statuses_pass_and_odd_ones_become_502() {
        for code in [400, 404, 408, 413, 422, 500, 502, 503, 504] {
            assert_eq!(upstream(Dialect::OpenAi, code, "x").0, code);
        }
        let (code, message, _) = upstream(Dialect::OpenAi, 302, "moved");
        assert_eq!(code, 502);
        assert!(message.contains("302"));
    }

    #[test]
    fn rate_limits_say_when_to_come_back() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        let e = upstream_error(
            Dialect::OpenAi,
            status(429),
            &headers,
            b"{\"error\":{\"message\":\"Rate limit reached\"}}",
        );
        assert_eq!(e.status(), 429);
        assert_eq!(e.retry_after_secs(), Some(7));
        assert_eq!(e.to_string(), "Rate limit reached");

        headers.insert("retry-after-ms", "1200".parse().unwrap());
        assert_eq!(retry_after_secs(&headers), Some(2));

        let mut dated = HeaderMap::new();
        dated.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after_secs(&dated), None);
        dated.insert("retry-after", "0.5".parse().unwrap());
        assert_eq!(retry_after_secs(&dated), Some(1));
    }

    #[test]
    fn long_and_foreign_messages_are_cut_and_cleaned() {
        let long = "é".repeat(1000);
        let (_, message, _) = upstream(Dialect::OpenAi, 500, &long);
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(message.ends_with('…'));

        let straddling = format!("{} sk-proj-0123456789abcdef", "word ".repeat(59));
        let (_, message, _) = upstream(Dialect::OpenAi, 400, &straddling);
        assert!(
            !message.contains("sk-") && !message.contains("0123"),
            "{message}"
        );

        let (_, message, _) = upstream(Dialect::OpenAi, 400, "bad key pak_0123456789abcdef\n");
        assert_eq!(message, "bad key [redacted]");
    }
}
