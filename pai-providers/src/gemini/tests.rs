use super::*;
use pai_core::provider::ApiKey;
use pai_core::JsonObject;
use serde_json::{json, Value};

fn call(client: Dialect, stream: bool) -> Call {
    let body = match client {
        Dialect::Anthropic => {
            json!({"model": "flash", "max_tokens": 50, "stream": stream, "messages": [{"role": "user", "content": "Hi"}]})
        }
        _ => {
            json!({"model": "flash", "stream": stream, "messages": [{"role": "user", "content": "Hi"}]})
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert("anthropic-version", "2023-06-01".parse().unwrap());
    headers.insert("x-goog-api-key", "client-key".parse().unwrap());
    Call {
        operation: if client == Dialect::Anthropic {
            Operation::Messages
        } else {
            Operation::ChatCompletions
        },
        client,
        model: "models/gemini-2.5-flash".into(),
        stream,
        client_wants_usage: false,
        body: JsonObject::from_slice(body.to_string().as_bytes()).unwrap(),
        headers,
        query: Some("beta=true".into()),
    }
}

fn credentials(endpoint: &str) -> Credentials {
    Credentials {
        endpoint: endpoint.into(),
        api_key: Some(ApiKey::new("AIzaRealKey")),
    }
}

#[test]
fn both_dialects_reach_generate_content_with_the_real_key() {
    for client in [Dialect::OpenAi, Dialect::Anthropic] {
        let r = GeminiAdapter
            .build_request(
                &call(client, false),
                &credentials("https://generativelanguage.googleapis.com/"),
            )
            .unwrap();
        assert_eq!(r.method(), Method::POST);
        assert_eq!(
            r.uri(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        let h = r.headers();
        assert_eq!(h["x-goog-api-key"], "AIzaRealKey");
        assert!(h["x-goog-api-key"].is_sensitive());
        assert_eq!(h.get_all("x-goog-api-key").iter().count(), 1);
        assert!(h.get("anthropic-version").is_none());
        assert!(h.get("authorization").is_none());
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            body["contents"],
            json!([{"role": "user", "parts": [{"text": "Hi"}]}])
        );
        assert!(body.get("model").is_none());
    }
}

#[test]
fn streams_use_sse_and_versions_are_not_doubled() {
    for endpoint in [
        "https://generativelanguage.googleapis.com",
        "https://generativelanguage.googleapis.com/v1beta/",
    ] {
        let r = GeminiAdapter
            .build_request(&call(Dialect::OpenAi, true), &credentials(endpoint))
            .unwrap();
        assert_eq!(
            r.uri(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
    }
    let r = GeminiAdapter
        .build_request(
            &call(Dialect::Anthropic, true),
            &credentials("https://proxy.example/google/v1"),
        )
        .unwrap();
    assert_eq!(
        r.uri(),
        "https://proxy.example/google/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    let mut bad = call(Dialect::OpenAi, false);
    bad.model = "gemini/../x?y".into();
    let e = GeminiAdapter
        .build_request(
            &bad,
            &credentials("https://generativelanguage.googleapis.com"),
        )
        .unwrap_err();
    assert_eq!(e.status(), 400);
}

#[test]
fn listings_and_token_counts() {
    let mut c = call(Dialect::OpenAi, false);
    c.operation = Operation::ListModels;
    let r = GeminiAdapter
        .build_request(
            &c,
            &credentials("https://generativelanguage.googleapis.com"),
        )
        .unwrap();
    assert_eq!(r.method(), Method::GET);
    assert_eq!(
        r.uri(),
        "https://generativelanguage.googleapis.com/v1beta/models"
    );
    let mut c = call(Dialect::Anthropic, false);
    c.operation = Operation::CountTokens;
    let e = GeminiAdapter
        .build_request(
            &c,
            &credentials("https://generativelanguage.googleapis.com"),
        )
        .unwrap_err();
    assert_eq!(e.status(), 501);
    let body: Value = serde_json::from_slice(&e.body(Dialect::Anthropic)).unwrap();
    assert_eq!(body["type"], "error");
}

#[test]
fn usage_and_answers_come_back_in_the_clients_dialect() {
    let upstream = Bytes::from_static(br#"{"candidates":[{"content":{"parts":[{"text":"Hi!"}],"role":"model"},"finishReason":"STOP"}],
        "usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":3,"totalTokenCount":11},"modelVersion":"gemini-2.5-flash"}"#);
    let c = call(Dialect::Anthropic, false);
    assert_eq!(
        GeminiAdapter.usage(&c, &upstream),
        Some(Usage::from_openai(8, 3, 0, 0))
    );
    let body: Value =
        serde_json::from_slice(&GeminiAdapter.response_body(&c, upstream).unwrap()).unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"], json!([{"type": "text", "text": "Hi!"}]));
    assert_eq!(body["stop_reason"], "end_turn");
}

#[test]
fn gemini_errors_are_normalised() {
    let c = call(Dialect::OpenAi, false);
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", "30".parse().unwrap());
    let e = GeminiAdapter.upstream_error(
        &c,
        StatusCode::TOO_MANY_REQUESTS,
        &headers,
        br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#,
    );
    assert_eq!(e.status(), 429);
    assert_eq!(e.retry_after_secs(), Some(30));
    let body: Value = serde_json::from_slice(&e.body(Dialect::OpenAi)).unwrap();
    assert_eq!(
        body["error"]["message"],
        "Resource has been exhausted (e.g. check quota)."
    );
    assert_eq!(body["error"]["type"], "rate_limit_error");

    let a = call(Dialect::Anthropic, false);
    let e = GeminiAdapter.upstream_error(
        &a,
        StatusCode::BAD_REQUEST,
        &HeaderMap::new(),
        br#"[{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}]"#,
    );
    let body: Value = serde_json::from_slice(&e.body(Dialect::Anthropic)).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(
        body["error"]["message"],
        "API key not valid. Please pass a valid API key."
    );
}
