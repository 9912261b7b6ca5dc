//! What of the client's request reaches the upstream: an allowlist of protocol and tracing
//! headers, the `beta` query parameter, and never the client's access key in any form.

// Test code: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use pai_core::access_key;
use tower::ServiceExt;

use common::{collect, harness};

/// Headers a client might send beside its key: some an upstream needs, some it must not see.
fn with_client_headers(builder: http::request::Builder, key: &str) -> http::request::Builder {
    builder
        .header("content-type", "application/json")
        .header("ocp-apim-subscription-key", key)
        .header("x-custom-client-secret", "s3cret-of-the-client")
        .header("x-debug", format!("token={key}"))
        .header("cookie", "session=abc")
        .header("openai-organization", "org-client")
        .header("x-forwarded-for", "10.1.2.3")
        .header("user-agent", "OpenAI/Python 1.50.0")
        .header("x-stainless-lang", "python")
        .header("x-stainless-retry-count", "0")
        .header("openai-beta", "assistants=v2")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("tracestate", "vendor=1")
        .header("x-request-id", "req-42")
}

/// Header names the upstream may see: the allowlist, plus what the gateway sets itself.
const ALLOWED: &[&str] = &[
    "accept-encoding",
    "anthropic-beta",
    "anthropic-version",
    "authorization",
    "content-length",
    "content-type",
    "host",
    "openai-beta",
    "traceparent",
    "tracestate",
    "user-agent",
    "x-api-key",
    "x-request-id",
    "x-stainless-lang",
    "x-stainless-retry-count",
];

fn check(seen: &pai_mock::RecordedRequest, secret_part: &str) {
    let leaked: Vec<String> = seen
        .headers
        .iter()
        .filter(|(name, value)| !ALLOWED.contains(&name.as_str()) || value.contains(secret_part))
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    assert!(leaked.is_empty(), "went upstream: {leaked:#?}");
    for name in [
        "x-stainless-lang",
        "traceparent",
        "tracestate",
        "x-request-id",
    ] {
        assert!(seen.header(name).is_some(), "{name} was not forwarded");
    }
    assert_eq!(
        seen.header("user-agent"),
        Some(concat!(
            "OpenAI/Python 1.50.0 pai/",
            env!("CARGO_PKG_VERSION")
        ))
    );
    assert!(
        !seen.query.as_deref().unwrap_or("").contains(secret_part),
        "{:?}",
        seen.query
    );
}

#[tokio::test]
async fn only_allowlisted_headers_and_known_query_parameters_go_upstream() {
    let h = harness().await;

    // OpenAI dialect, raw key as a bearer token.
    let key = h.openai_key.clone();
    let body = serde_json::json!({"model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}]});
    let req = with_client_headers(
        Request::post(format!("/ext/v1/chat/completions?key={key}&debug=1")),
        &key,
    )
    .header("authorization", format!("Bearer {key}"))
    .body(Full::new(Bytes::from(body.to_string())))
    .unwrap();
    let (status, _, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200);
    let seen = h.mock.requests().pop().unwrap();
    check(&seen, key.trim_start_matches("pak_"));
    assert_eq!(seen.header("openai-beta"), Some("assistants=v2"));
    assert_eq!(seen.query, None);

    // Anthropic dialect, the wrapped key in x-api-key, the raw one elsewhere, `beta` kept.
    let key = h.anthropic_key.clone();
    let body = serde_json::json!({"model": "claude-sonnet-4-6", "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}]});
    let req = with_client_headers(
        Request::post(format!("/ext/v1/messages?beta=true&key={key}&foo=bar")),
        &key,
    )
    .header("x-api-key", access_key::wrap(&key))
    .header("anthropic-version", "2023-06-01")
    .body(Full::new(Bytes::from(body.to_string())))
    .unwrap();
    let (status, _, _) = collect(h.gateway.clone().oneshot(req).await.unwrap()).await;
    assert_eq!(status, 200);
    let seen = h.mock.requests().pop().unwrap();
    check(&seen, key.trim_start_matches("pak_"));
    assert_eq!(seen.query.as_deref(), Some("beta=true"));
    assert_eq!(
        seen.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
    assert_eq!(seen.header("x-api-key"), Some("sk-real-anthropic"));
}
