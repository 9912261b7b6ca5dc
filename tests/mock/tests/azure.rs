//! The Azure OpenAI dialect, end to end over HTTP.

#[cfg(test)]
mod common;

use common::{get, mock, mock_with, openai_request, openai_text, post_json};
use pai_mock::{MockConfig, MockUpstream};
use serde_json::{json, Value};

const CLASSIC: &str = "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21";
const V1: &str = "/openai/v1/chat/completions";

async fn keyed() -> MockUpstream {
    mock_with(MockConfig::default().with_azure_key("azure-mock-key")).await
}

fn tool_request(prompt: &str, extra: Value) -> Value {
    let mut request = openai_request(prompt, extra);
    request["tools"] = json!([{"type": "function", "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }}]);
    request
}

#[tokio::test]
async fn a_classic_call_answers_with_the_model_behind_the_deployment() {
    let mock = keyed().await;
    // The body's model is ignored: the path names the deployment.
    let request =
        json!({"messages": [{"role": "user", "content": "Say hi [mock:words=4,cached=2]"}]});
    let answer = post_json(
        mock.addr(),
        CLASSIC,
        &[("api-key", "azure-mock-key")],
        &request,
    )
    .await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["model"], "gpt-4o-2024-11-20");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply: alpha beta"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["choices"][0]["content_filter_results"]["hate"]["filtered"],
        false
    );
    assert_eq!(body["prompt_filter_results"][0]["prompt_index"], 0);
    // 30 characters = 8 tokens, plus 2 cached.
    assert_eq!(body["usage"]["prompt_tokens"], 10);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    assert_eq!(body["usage"]["completion_tokens"], 4);
    let recorded = &mock.requests()[0];
    assert_eq!(
        recorded.path,
        "/openai/deployments/gpt4o-prod/chat/completions"
    );
    assert_eq!(recorded.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(recorded.header("api-key"), Some("azure-mock-key"));
}

#[tokio::test]
async fn the_v1_route_takes_the_deployment_from_the_body() {
    let mock = keyed().await;
    let request = openai_request("hi", json!({"model": "gpt4o-mini-v1"}));
    let answer = post_json(mock.addr(), V1, &[("api-key", "azure-mock-key")], &request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["model"], "gpt-4o-mini-2024-07-18");
    // As the OpenAI SDK sends it.
    let bearer = post_json(
        mock.addr(),
        V1,
        &[("authorization", "Bearer azure-mock-key")],
        &request,
    )
    .await;
    assert_eq!(bearer.status, 200);
    let no_model = post_json(
        mock.addr(),
        V1,
        &[("api-key", "azure-mock-key")],
        &json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(no_model.status, 404);
    assert_eq!(no_model.json()["error"]["code"], "DeploymentNotFound");
}

#[tokio::test]
async fn keys_and_api_versions_are_checked_like_azure() {
    let mock = keyed().await;
    let request = openai_request("hi", json!({}));
    let missing_version = post_json(
        mock.addr(),
        "/openai/deployments/gpt4o-prod/chat/completions",
        &[("api-key", "azure-mock-key")],
        &request,
    )
    .await;
    assert_eq!(missing_version.status, 404);
    assert_eq!(
        missing_version.json(),
        json!({"error": {"code": "404", "message": "Resource not found"}})
    );
    let bad_version = post_json(
        mock.addr(),
        "/openai/deployments/gpt4o-prod/chat/completions?api-version=latest",
        &[("api-key", "azure-mock-key")],
        &request,
    )
    .await;
    assert_eq!(bad_version.status, 400);

    let wrong = post_json(mock.addr(), CLASSIC, &[("api-key", "nope")], &request).await;
    assert_eq!(wrong.status, 401);
    let error = &wrong.json()["error"];
    assert_eq!(error["code"], "401");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .starts_with("Access denied"));
    assert!(error.get("type").is_none());
    // Classic deployments take the key header only.
    let bearer = post_json(
        mock.addr(),
        CLASSIC,
        &[("authorization", "Bearer azure-mock-key")],
        &request,
    )
    .await;
    assert_eq!(bearer.status, 401);
}

#[tokio::test]
async fn a_stream_opens_with_prompt_filter_results_that_are_not_usage() {
    let mock = mock().await;
    let request = openai_request("hi [mock:words=3]", json!({"stream": true}));
    let answer = post_json(mock.addr(), CLASSIC, &[], &request).await;
    assert_eq!(answer.status, 200);
    let events = answer.events();
    // filter chunk, role chunk, 3 words, finish chunk, [DONE]
    assert_eq!(events.len(), 7);
    let first = events[0].json();
    assert_eq!(first["choices"], json!([]));
    assert!(first.get("usage").is_none());
    assert_eq!(first["prompt_filter_results"][0]["prompt_index"], 0);
    assert_eq!(openai_text(&events[1..]), "mock reply: alpha");
    let second = events[1].json();
    assert_eq!(second["model"], "gpt-4o-2024-11-20");
    assert_eq!(second["choices"][0]["content_filter_results"], json!({}));
    assert_eq!(
        events[2].json()["choices"][0]["content_filter_results"]["violence"]["severity"],
        "safe"
    );
    assert_eq!(events[5].json()["choices"][0]["finish_reason"], "stop");
    assert!(events
        .iter()
        .take(6)
        .all(|e| e.json().get("usage").is_none()));
    assert_eq!(events[6].data, "[DONE]");
}

#[tokio::test]
async fn the_usage_chunk_comes_only_with_include_usage() {
    let mock = mock().await;
    let request = openai_request(
        "hi [mock:words=3]",
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let events = post_json(mock.addr(), CLASSIC, &[], &request)
        .await
        .events();
    assert_eq!(events.len(), 8);
    let usage_chunks: Vec<Value> = events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| e.json())
        .filter(|c| c.get("usage").is_some_and(|u| !u.is_null()))
        .collect();
    assert_eq!(usage_chunks.len(), 1);
    assert_eq!(usage_chunks[0]["choices"], json!([]));
    assert_eq!(usage_chunks[0]["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn tool_calls_and_failures() {
    let mock = mock().await;
    let answer = post_json(
        mock.addr(),
        CLASSIC,
        &[],
        &tool_request("Weather? [mock:tool]", json!({})),
    )
    .await;
    let choice = &answer.json()["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );

    let limited = post_json(
        mock.addr(),
        CLASSIC,
        &[],
        &openai_request("[mock:status=429,retry_after=2]", json!({})),
    )
    .await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("2"));
    assert_eq!(limited.json()["error"]["code"], "429");
    let server = post_json(
        mock.addr(),
        CLASSIC,
        &[],
        &openai_request("[mock:status=500]", json!({})),
    )
    .await;
    assert_eq!(server.status, 500);
    assert_eq!(server.json()["error"]["type"], "server_error");

    let request = openai_request("[mock:words=4,midstream_error]", json!({"stream": true}));
    let events = post_json(mock.addr(), CLASSIC, &[], &request)
        .await
        .events();
    assert_eq!(
        events.last().unwrap().json()["error"]["type"],
        "server_error"
    );
}

#[tokio::test]
async fn unknown_azure_paths_are_azures_404() {
    let mock = mock().await;
    let answer = get(
        mock.addr(),
        "/openai/deployments/x/embeddings?api-version=2024-10-21",
        &[],
    )
    .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"]["message"], "Resource not found");
    let wrong_method = get(mock.addr(), CLASSIC, &[]).await;
    assert_eq!(wrong_method.status, 405);
}
