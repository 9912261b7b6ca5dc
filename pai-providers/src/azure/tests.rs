use super::*;
use crate::sse::SseParser;
use pai_core::provider::ApiKey;
use pai_core::JsonObject;
use serde_json::{json, Value};

fn call(client: Dialect, stream: bool) -> Call {
    let body = match client {
        Dialect::Anthropic => json!({"model": "prod-gpt4o", "max_tokens": 50, "stream": stream,
            "messages": [{"role": "user", "content": "Hi"}]}),
        _ => {
            json!({"model": "prod-gpt4o", "stream": stream, "messages": [{"role": "user", "content": "Hi"}]})
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert("api-key", "client-key".parse().unwrap());
    headers.insert("authorization", "Bearer pak_client".parse().unwrap());
    Call {
        operation: if client == Dialect::Anthropic {
            Operation::Messages
        } else {
            Operation::ChatCompletions
        },
        client,
        model: "prod-gpt4o".into(),
        stream,
        client_wants_usage: false,
        body: JsonObject::from_slice(body.to_string().as_bytes()).unwrap(),
        headers,
        query: None,
    }
}

fn credentials(endpoint: &str) -> Credentials {
    Credentials {
        endpoint: endpoint.into(),
        api_key: Some(ApiKey::new("0123456789abcdef0123456789abcdef")),
    }
}

#[test]
fn classic_endpoints_put_the_deployment_in_the_path() {
    let cases = [
        (
            "https://contoso.openai.azure.com/",
            "https://contoso.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21",
        ),
        (
            "https://contoso.openai.azure.com/openai?api-version=2025-01-01-preview",
            "https://contoso.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions?api-version=2025-01-01-preview",
        ),
    ];
    for (endpoint, want) in cases {
        let r = AzureOpenAiAdapter
            .build_request(&call(Dialect::OpenAi, false), &credentials(endpoint))
            .unwrap();
        assert_eq!(r.uri(), want);
        let h = r.headers();
        assert_eq!(h["api-key"], "0123456789abcdef0123456789abcdef");
        assert!(h["api-key"].is_sensitive());
        assert_eq!(h.get_all("api-key").iter().count(), 1);
        assert!(h.get("authorization").is_none());
    }
}

#[test]
fn v1_endpoints_put_the_deployment_in_the_body() {
    let r = AzureOpenAiAdapter
        .build_request(
            &call(Dialect::OpenAi, true),
            &credentials("https://contoso.openai.azure.com/openai/v1/"),
        )
        .unwrap();
    assert_eq!(
        r.uri(),
        "https://contoso.openai.azure.com/openai/v1/chat/completions"
    );
    let body: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(body["model"], "prod-gpt4o");
    assert_eq!(body["stream_options"], json!({"include_usage": true}));

    let mut list = call(Dialect::OpenAi, false);
    list.operation = Operation::ListModels;
    let r = AzureOpenAiAdapter
        .build_request(
            &list,
            &credentials("https://contoso.openai.azure.com/openai/v1"),
        )
        .unwrap();
    assert_eq!(r.uri(), "https://contoso.openai.azure.com/openai/v1/models");
}

#[test]
fn anthropic_clients_are_translated_and_token_counts_refused() {
    let r = AzureOpenAiAdapter
        .build_request(
            &call(Dialect::Anthropic, true),
            &credentials("https://contoso.openai.azure.com"),
        )
        .unwrap();
    let body: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(body["messages"], json!([{"role": "user", "content": "Hi"}]));
    assert_eq!(body["max_completion_tokens"], 50);
    assert_eq!(body["stream_options"]["include_usage"], true);

    let mut count = call(Dialect::Anthropic, false);
    count.operation = Operation::CountTokens;
    let e = AzureOpenAiAdapter
        .build_request(&count, &credentials("https://contoso.openai.azure.com"))
        .unwrap_err();
    assert_eq!(e.status(), 501);

    let mut bad = call(Dialect::OpenAi, false);
    bad.model = "a/b".into();
    assert_eq!(
        AzureOpenAiAdapter
            .build_request(&bad, &credentials("https://contoso.openai.azure.com"))
            .unwrap_err()
            .status(),
        400
    );
}

#[test]
fn the_prompt_filter_chunk_is_not_usage_and_the_last_chunk_is() {
    let stream = b"data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"}}}]}\n\n\
data: {\"choices\":[{\"content_filter_results\":{},\"delta\":{\"content\":\"Hi\",\"role\":\"assistant\"},\"finish_reason\":null,\"index\":0}],\"created\":1,\"id\":\"chatcmpl-A\",\"model\":\"gpt-4o-2024-11-20\",\"object\":\"chat.completion.chunk\",\"usage\":null}\n\n\
data: {\"choices\":[{\"content_filter_results\":{},\"delta\":{},\"finish_reason\":\"stop\",\"index\":0}],\"created\":1,\"id\":\"chatcmpl-A\",\"model\":\"gpt-4o-2024-11-20\",\"object\":\"chat.completion.chunk\",\"usage\":null}\n\n\
data: {\"choices\":[],\"created\":1,\"id\":\"chatcmpl-A\",\"model\":\"gpt-4o-2024-11-20\",\"object\":\"chat.completion.chunk\",\"usage\":{\"completion_tokens\":2,\"prompt_tokens\":9,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n\
data: [DONE]\n\n";
    for client in [Dialect::OpenAi, Dialect::Anthropic] {
        let c = call(client, true);
        let mut observer = AzureOpenAiAdapter.stream_observer(&c);
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for event in parser.push(stream) {
            if let Some(bytes) = observer.on_event(&event).bytes(&event.raw) {
                out.extend_from_slice(&bytes);
            }
        }
        if let Some(tail) = observer.on_end().replacement() {
            out.extend_from_slice(tail);
        }
        let out = String::from_utf8(out).unwrap();
        assert_eq!(observer.usage(), Some(Usage::from_openai(9, 2, 0, 0)));
        assert!(!out.contains("\"prompt_tokens\""), "{client}: {out}");
        if client == Dialect::Anthropic {
            assert!(out.starts_with("event: message_start\n"));
            assert!(out.contains("\"model\":\"gpt-4o-2024-11-20\""));
            assert!(out.contains("\"input_tokens\":9"));
            assert!(out.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        } else {
            assert!(out.ends_with("data: [DONE]\n\n"));
        }
    }
}

#[test]
fn errors_render_in_the_clients_dialect() {
    let e = AzureOpenAiAdapter.upstream_error(
        &call(Dialect::Anthropic, false),
        StatusCode::BAD_REQUEST,
        &HeaderMap::new(),
        br#"{"error":{"code":"content_filter","message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","param":"prompt","status":400}}"#,
    );
    let body: Value = serde_json::from_slice(&e.body(Dialect::Anthropic)).unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("The response was filtered"));
}
