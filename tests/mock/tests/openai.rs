//! The OpenAI Chat Completions dialect, end to end over HTTP.

#[cfg(test)]
mod common;

use common::{get, mock, openai_request, openai_text, post_json};
use serde_json::{json, Value};

#[tokio::test]
async fn a_completion_echoes_the_model_and_counts_tokens() {
    let mock = mock().await;
    let request = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Say hi"}]},
        ],
    });
    let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    assert_eq!(body["id"], "chatcmpl-mock-1");
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["system_fingerprint"], "fp_mock");
    assert_eq!(
        body["choices"],
        json!([{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "mock reply: alpha beta gamma delta epsilon zeta",
                "refusal": null,
            },
            "logprobs": null,
            "finish_reason": "stop",
        }])
    );
    // "You are terse." (14) + "Say hi" (6) = 20 characters = 5 tokens; 8 words out.
    assert_eq!(
        body["usage"],
        json!({
            "prompt_tokens": 5,
            "completion_tokens": 8,
            "total_tokens": 13,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        })
    );
}

#[tokio::test]
async fn prompt_tokens_include_cached_tokens_and_ids_count_up() {
    let mock = mock().await;
    let prompt = "abcd [mock:cached=100,words=3]"; // 30 characters = 8 tokens
    let first = post_json(
        mock.addr(),
        "/chat/completions",
        &[],
        &openai_request(prompt, json!({})),
    )
    .await;
    let body = first.json();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply: alpha"
    );
    assert_eq!(body["usage"]["prompt_tokens"], 108);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
    assert_eq!(body["usage"]["completion_tokens"], 3);
    assert_eq!(body["usage"]["total_tokens"], 111);
    let second = post_json(
        mock.addr(),
        "/chat/completions",
        &[],
        &openai_request(prompt, json!({})),
    )
    .await;
    assert_eq!(second.json()["id"], "chatcmpl-mock-2");
}

#[tokio::test]
async fn a_stream_without_include_usage_has_no_usage_at_all() {
    let mock = mock().await;
    let request = openai_request("hi", json!({"stream": true}));
    let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    let events = answer.events();
    assert!(
        events.iter().all(|e| e.event.is_none()),
        "OpenAI streams name no events"
    );
    // role chunk, 8 words, finish chunk, [DONE]
    assert_eq!(events.len(), 11);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..10].iter().map(|e| e.json()).collect();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], "chatcmpl-mock-1");
        assert_eq!(chunk["model"], "gpt-4o-mini");
        assert!(
            chunk.get("usage").is_none(),
            "no usage key without include_usage: {chunk}"
        );
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks[1]["choices"][0]["delta"], json!({"content": "mock"}));
    assert_eq!(
        chunks[2]["choices"][0]["delta"],
        json!({"content": " reply:"})
    );
    assert_eq!(chunks[9]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[9]["choices"][0]["finish_reason"], "stop");
    assert!(chunks[..9]
        .iter()
        .all(|c| c["choices"][0]["finish_reason"].is_null()));
    assert_eq!(
        openai_text(&events),
        "mock reply: alpha beta gamma delta epsilon zeta"
    );
}

#[tokio::test]
async fn a_stream_with_include_usage_ends_with_a_usage_chunk() {
    let mock = mock().await;
    let request = openai_request(
        "12345678 [mock:words=2,cached=4]",
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &request).await;
    let events = answer.events();
    // role chunk, 2 words, finish chunk, usage chunk, [DONE]
    assert_eq!(events.len(), 6);
    assert_eq!(events[5].data, "[DONE]");
    for event in &events[..4] {
        let chunk = event.json();
        assert_eq!(chunk["usage"], Value::Null);
        assert!(chunk.get("usage").is_some(), "usage: null is present");
    }
    let usage_chunk = events[4].json();
    assert_eq!(usage_chunk["choices"], json!([]));
    // 32 characters = 8 tokens, plus 4 cached.
    assert_eq!(
        usage_chunk["usage"],
        json!({
            "prompt_tokens": 12,
            "completion_tokens": 2,
            "total_tokens": 14,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 0},
        })
    );
    assert_eq!(openai_text(&events), "mock reply:");
}

fn weather_tools() -> Value {
    json!({"tools": [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
    ]})
}

#[tokio::test]
async fn the_tool_directive_calls_the_first_tool() {
    let mock = mock().await;
    let request = openai_request("Weather? [mock:tool]", weather_tools());
    let body = post_json(mock.addr(), "/v1/chat/completions", &[], &request)
        .await
        .json();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(
        message["tool_calls"],
        json!([{
            "id": "call_mock_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
        }])
    );
    assert_eq!(body["usage"]["completion_tokens"], 3);

    // Without tools the directive is ignored.
    let plain = post_json(
        mock.addr(),
        "/v1/chat/completions",
        &[],
        &openai_request("[mock:tool]", json!({})),
    )
    .await;
    assert_eq!(plain.json()["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn a_streamed_tool_call_sends_the_arguments_in_three_pieces() {
    let mock = mock().await;
    let mut extra = weather_tools();
    extra["stream"] = json!(true);
    let request = openai_request("[mock:tool]", extra);
    let events = post_json(mock.addr(), "/v1/chat/completions", &[], &request)
        .await
        .events();
    // head with the call, 3 argument pieces, finish chunk, [DONE]
    assert_eq!(events.len(), 6);
    let first = events[0].json();
    assert_eq!(
        first["choices"][0]["delta"],
        json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "index": 0,
                "id": "call_mock_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }],
        })
    );
    let arguments: String = events[1..4]
        .iter()
        .map(|e| {
            let chunk = e.json();
            let call = &chunk["choices"][0]["delta"]["tool_calls"][0];
            assert_eq!(call["index"], 0);
            call["function"]["arguments"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(arguments, r#"{"city":"Paris"}"#);
    assert_eq!(
        events[4].json()["choices"][0]["finish_reason"],
        "tool_calls"
    );
    assert_eq!(events[5].data, "[DONE]");
}

#[tokio::test]
async fn after_a_tool_result_the_directives_of_the_earlier_prompt_are_gone() {
    let mock = mock().await;
    let mut request = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": "[mock:tool]"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_mock_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_mock_1", "content": "sunny"},
        ],
    });
    request["tools"] = weather_tools()["tools"].clone();
    let body = post_json(mock.addr(), "/v1/chat/completions", &[], &request)
        .await
        .json();
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // "[mock:tool]" (11) + "sunny" (5) = 16 characters = 4 tokens.
    assert_eq!(body["usage"]["prompt_tokens"], 4);
}

#[tokio::test]
async fn bad_requests_get_openai_shaped_400s() {
    let mock = mock().await;
    let malformed = common::send(
        mock.addr(),
        http::Method::POST,
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        "{not json",
    )
    .await;
    assert_eq!(malformed.status, 400);
    let error = &malformed.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("could not parse the JSON body"));
    assert_eq!(error["param"], Value::Null);

    let missing = post_json(
        mock.addr(),
        "/v1/chat/completions",
        &[],
        &json!({"model": "m"}),
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json(),
        json!({"error": {
            "message": "Missing required parameter: 'messages'.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "missing_required_parameter",
        }})
    );

    let not_an_object = post_json(mock.addr(), "/v1/chat/completions", &[], &json!([1, 2])).await;
    assert_eq!(not_an_object.status, 400);
}

#[tokio::test]
async fn models_are_listed() {
    let mock = mock().await;
    for path in ["/v1/models", "/models"] {
        let body = get(mock.addr(), path, &[]).await.json();
        assert_eq!(body["object"], "list");
        assert_eq!(body["data"][0]["object"], "model");
        assert!(body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "gpt-4o-mini"));
    }
}

#[tokio::test]
async fn a_reasoning_stream_sends_reasoning_content_before_the_content() {
    let mock = mock().await;
    let request = openai_request(
        "[mock:words=2]",
        json!({
            "stream": true,
            "stream_options": {"include_usage": true},
            "reasoning_effort": "low",
        }),
    );
    let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &request).await;
    let events = answer.events();
    // role chunk, 4 reasoning words, 2 words, finish chunk, usage chunk, [DONE]
    assert_eq!(events.len(), 10);
    let deltas: Vec<Value> = events[..7]
        .iter()
        .map(|e| e.json()["choices"][0]["delta"].clone())
        .collect();
    assert_eq!(
        deltas,
        [
            json!({"role": "assistant", "content": ""}),
            json!({"reasoning_content": "Thinking"}),
            json!({"reasoning_content": " step1"}),
            json!({"reasoning_content": " step2"}),
            json!({"reasoning_content": " step3"}),
            json!({"content": "mock"}),
            json!({"content": " reply:"}),
        ]
    );
    assert_eq!(openai_text(&events), "mock reply:");
    assert_eq!(
        events[8].json()["usage"]["completion_tokens"],
        json!(4 + 2),
        "reasoning counts as completion"
    );
    assert_eq!(
        events[8].json()["usage"]["completion_tokens_details"],
        json!({"reasoning_tokens": 4})
    );
}

#[tokio::test]
async fn a_reasoning_stream_opens_its_tool_call_after_the_reasoning() {
    let mock = mock().await;
    let mut request = openai_request("[mock:tool]", weather_tools());
    request["stream"] = json!(true);
    request["reasoning_effort"] = json!("minimal");
    let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &request).await;
    let events = answer.events();
    let deltas: Vec<Value> = events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| e.json()["choices"][0]["delta"].clone())
        .collect();
    assert_eq!(deltas[0], json!({"role": "assistant", "content": ""}));
    assert_eq!(deltas[1], json!({"reasoning_content": "Thinking"}));
    assert_eq!(deltas[2], json!({"reasoning_content": " step1"}));
    assert_eq!(deltas[3]["tool_calls"][0]["id"], "call_mock_1");
    assert_eq!(deltas[3]["tool_calls"][0]["function"]["arguments"], "");
    let arguments: String = deltas[4..]
        .iter()
        .filter_map(|d| d["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, r#"{"city":"Paris"}"#);
}
