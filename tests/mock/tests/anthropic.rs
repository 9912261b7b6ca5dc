//! The Anthropic Messages dialect, end to end over HTTP.

#[cfg(test)]
mod common;

use common::{anthropic_request, anthropic_text, get, mock, post_json};
use pai_mock::{MockConfig, MockUpstream};
use serde_json::{json, Value};

const VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

#[tokio::test]
async fn a_message_counts_input_without_the_cache() {
    let mock = mock().await;
    let request = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello [mock:cached=40,cache_write=7]"}]}],
    });
    let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &request).await;
    assert_eq!(answer.status, 200);
    // "Be brief." (9) + "Hello [mock:cached=40,cache_write=7]" (36) = 45 characters = 12 tokens.
    assert_eq!(
        answer.json(),
        json!({
            "id": "msg_mock_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "mock reply: alpha beta gamma delta epsilon zeta"}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 12,
                "output_tokens": 8,
                "cache_creation_input_tokens": 7,
                "cache_read_input_tokens": 40,
            },
        })
    );
}

#[tokio::test]
async fn a_stream_sends_the_named_events_in_order() {
    let mock = mock().await;
    let request = anthropic_request("[mock:words=4,cached=3]", json!({"stream": true}));
    let answer = post_json(mock.addr(), "/v1/messages?beta=true", &[VERSION], &request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    let events = answer.events();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for event in &events {
        assert_eq!(
            event.json()["type"],
            event.event.as_deref().unwrap(),
            "type matches the event name"
        );
    }
    let start = events[0].json();
    assert_eq!(start["message"]["id"], "msg_mock_1");
    assert_eq!(start["message"]["model"], "claude-sonnet-4-5");
    assert_eq!(start["message"]["content"], json!([]));
    // "[mock:words=4,cached=3]" is 23 characters = 6 tokens.
    assert_eq!(
        start["message"]["usage"],
        json!({"input_tokens": 6, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3, "output_tokens": 1})
    );
    assert_eq!(
        events[1].json()["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(
        events[3].json()["delta"],
        json!({"type": "text_delta", "text": "mock"})
    );
    assert_eq!(anthropic_text(&events), "mock reply: alpha beta");
    assert_eq!(events[7].json()["index"], 0);
    assert_eq!(
        events[8].json(),
        json!({
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": 4},
        })
    );
    // The query string does not change the route, and is recorded.
    assert_eq!(mock.requests()[0].query.as_deref(), Some("beta=true"));
}

#[tokio::test]
async fn a_thinking_stream_signs_its_thinking_block_before_the_text_block() {
    let mock = mock().await;
    // 512 tokens of budget: two words of thinking.
    let request = anthropic_request(
        "[mock:words=2]",
        json!({"stream": true, "thinking": {"type": "enabled", "budget_tokens": 512}}),
    );
    let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &request).await;
    assert_eq!(answer.status, 200);
    let events = answer.events();
    let shapes: Vec<(String, Value)> = events
        .iter()
        .map(|e| {
            let data = e.json();
            let detail = match e.event.as_deref() {
                Some("content_block_start") => data["content_block"].clone(),
                Some("content_block_delta") => data["delta"].clone(),
                _ => Value::Null,
            };
            let index = data.get("index").cloned().unwrap_or(Value::Null);
            (e.event.clone().unwrap(), json!([index, detail]))
        })
        .collect();
    let expected = [
        ("message_start", json!([null, null])),
        (
            "content_block_start",
            json!([0, {"type": "thinking", "thinking": "", "signature": ""}]),
        ),
        ("ping", json!([null, null])),
        (
            "content_block_delta",
            json!([0, {"type": "thinking_delta", "thinking": "Thinking"}]),
        ),
        (
            "content_block_delta",
            json!([0, {"type": "thinking_delta", "thinking": " step1"}]),
        ),
        (
            "content_block_delta",
            json!([0, {"type": "signature_delta", "signature": "mock-signature-1"}]),
        ),
        ("content_block_stop", json!([0, null])),
        (
            "content_block_start",
            json!([1, {"type": "text", "text": ""}]),
        ),
        (
            "content_block_delta",
            json!([1, {"type": "text_delta", "text": "mock"}]),
        ),
        (
            "content_block_delta",
            json!([1, {"type": "text_delta", "text": " reply:"}]),
        ),
        ("content_block_stop", json!([1, null])),
        ("message_delta", json!([null, null])),
        ("message_stop", json!([null, null])),
    ]
    .map(|(name, detail)| (name.to_owned(), detail));
    assert_eq!(shapes, expected);
    // The final usage counts the thinking, and says how much of the output it was.
    assert_eq!(
        events[11].json()["usage"],
        json!({"output_tokens": 2 + 2, "output_tokens_details": {"thinking_tokens": 2}})
    );
}

#[tokio::test]
async fn a_thinking_stream_before_a_tool_call_shifts_the_blocks_by_one() {
    let mock = mock().await;
    let request = anthropic_request(
        "[mock:tool,preamble]",
        json!({
            "stream": true,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        }),
    );
    let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &request).await;
    let events = answer.events();
    let blocks: Vec<(i64, String)> = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_start"))
        .map(|e| {
            let data = e.json();
            let kind = data["content_block"]["type"].as_str().unwrap().to_owned();
            (data["index"].as_i64().unwrap(), kind)
        })
        .collect();
    assert_eq!(
        blocks,
        [(0, "thinking"), (1, "text"), (2, "tool_use")].map(|(i, k)| (i, k.to_owned()))
    );
    let stops: Vec<i64> = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_stop"))
        .map(|e| e.json()["index"].as_i64().unwrap())
        .collect();
    assert_eq!(stops, [0, 1, 2]);
    assert_eq!(anthropic_text(&events), "Let me check the weather.");
    let last_usage = events[events.len() - 2].json()["usage"].clone();
    assert_eq!(
        last_usage,
        json!({"output_tokens": 4 + 5 + 3, "output_tokens_details": {"thinking_tokens": 4}})
    );
}

#[tokio::test]
async fn without_thinking_a_stream_has_no_thinking_block_or_details() {
    let mock = mock().await;
    let request = anthropic_request("[mock:words=2]", json!({"stream": true}));
    let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &request).await;
    let events = answer.events();
    assert!(events.iter().all(|e| !e.data.contains("thinking")));
    let delta = events
        .iter()
        .find(|e| e.event.as_deref() == Some("message_delta"))
        .unwrap();
    assert_eq!(delta.json()["usage"], json!({"output_tokens": 2}));
}

#[tokio::test]
async fn max_tokens_is_required() {
    let mock = mock().await;
    let request =
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]});
    let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &request).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json(),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}})
    );

    let malformed = common::send(
        mock.addr(),
        http::Method::POST,
        "/v1/messages",
        &[VERSION],
        "{\"model\":",
    )
    .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["type"], "error");
    assert_eq!(malformed.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn the_tool_directive_answers_with_a_tool_use_block() {
    let mock = mock().await;
    let tools = json!({"tools": [
        {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}},
        {"name": "get_time", "input_schema": {"type": "object"}},
    ]});
    let request = anthropic_request("Weather in Paris? [mock:tool]", tools.clone());
    let body = post_json(mock.addr(), "/v1/messages", &[VERSION], &request)
        .await
        .json();
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(
        body["content"],
        json!([{"type": "tool_use", "id": "toolu_mock_1", "name": "get_weather", "input": {"city": "Paris"}}])
    );
    assert_eq!(body["usage"]["output_tokens"], 3);

    let mut streamed = tools;
    streamed["stream"] = json!(true);
    let request = anthropic_request("Weather in Paris? [mock:tool]", streamed);
    let events = post_json(mock.addr(), "/v1/messages", &[VERSION], &request)
        .await
        .events();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(names.len(), 9);
    assert_eq!(
        events[1].json()["content_block"],
        json!({"type": "tool_use", "id": "toolu_mock_2", "name": "get_weather", "input": {}})
    );
    let partial: String = events[3..6]
        .iter()
        .map(|e| {
            let delta = e.json()["delta"].clone();
            assert_eq!(delta["type"], "input_json_delta");
            delta["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(partial, r#"{"city":"Paris"}"#);
    assert_eq!(events[7].json()["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[7].json()["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn after_tool_results_there_are_no_directives() {
    let mock = mock().await;
    let request = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "[mock:tool]"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_mock_1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_mock_1", "content": "sunny"}]},
        ],
    });
    let body = post_json(mock.addr(), "/v1/messages", &[VERSION], &request)
        .await
        .json();
    assert_eq!(body["stop_reason"], "end_turn");
    // Same count as the OpenAI form of this conversation: 16 characters = 4 tokens.
    assert_eq!(body["usage"]["input_tokens"], 4);
}

#[tokio::test]
async fn count_tokens_counts_like_messages() {
    let mock = mock().await;
    let request = json!({
        "model": "claude-sonnet-4-5",
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    });
    let answer = post_json(
        mock.addr(),
        "/v1/messages/count_tokens",
        &[VERSION],
        &request,
    )
    .await;
    assert_eq!(answer.status, 200);
    // 9 + 30 = 39 characters = 10 tokens.
    assert_eq!(answer.json(), json!({"input_tokens": 10}));

    let missing = post_json(
        mock.addr(),
        "/v1/messages/count_tokens",
        &[VERSION],
        &json!({"model": "m"}),
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json()["error"]["message"],
        "messages: Field required"
    );
}

#[tokio::test]
async fn models_are_listed_in_anthropic_shape_for_anthropic_clients() {
    let mock = mock().await;
    let body = get(mock.addr(), "/v1/models", &[VERSION]).await.json();
    assert_eq!(body["has_more"], false);
    let first = &body["data"][0];
    assert_eq!(first["type"], "model");
    assert!(first["display_name"].is_string());
    assert!(first["created_at"].is_string());
    assert_eq!(body["object"], Value::Null);
}

#[tokio::test]
async fn the_version_header_can_be_required() {
    let config = MockConfig {
        require_anthropic_version: true,
        ..MockConfig::default()
    };
    let mock = MockUpstream::start(config).await.unwrap();
    let request = anthropic_request("hi", json!({}));
    let without = post_json(mock.addr(), "/v1/messages", &[], &request).await;
    assert_eq!(without.status, 400);
    assert_eq!(
        without.json()["error"]["message"],
        "anthropic-version: header is required"
    );
    let with = post_json(mock.addr(), "/v1/messages", &[VERSION], &request).await;
    assert_eq!(with.status, 200);
}
