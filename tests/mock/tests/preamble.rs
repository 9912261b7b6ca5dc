//! `[mock:tool,preamble,tools=2]`: text before the tool calls, and more than one call, in every
//! dialect, whole and streamed.

#[cfg(test)]
mod common;

use common::{anthropic_request, mock, openai_request, post_json};
use serde_json::{json, Value};

const PROMPT: &str = "Weather in Paris and Berlin? [mock:tool,preamble,tools=2]";
const PREAMBLE: &str = "Let me check the weather.";
const GEMINI: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
const GEMINI_SSE: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
const AZURE: &str = "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21";

fn openai_tools() -> Value {
    json!({"tools": [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
    ]})
}

fn anthropic_tools() -> Value {
    json!({"tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]})
}

fn gemini_request() -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
    })
}

/// The calls in an OpenAI message or gathered stream: (id, name, arguments).
fn expected_openai_calls(first_id: &str) -> Value {
    json!([
        {"id": first_id, "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": format!("{first_id}_2"), "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Berlin\"}"}},
    ])
}

#[tokio::test]
async fn openai_says_the_preamble_then_calls_twice() {
    let mock = mock().await;
    let body = post_json(
        mock.addr(),
        "/v1/chat/completions",
        &[],
        &openai_request(PROMPT, openai_tools()),
    )
    .await
    .json();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], PREAMBLE);
    assert_eq!(
        choice["message"]["tool_calls"],
        expected_openai_calls("call_mock_1")
    );
    assert_eq!(body["usage"]["completion_tokens"], 5 + 3 + 3);
}

/// Streams an OpenAI-shaped reply and checks it: text deltas first, then each call opened by
/// its own delta with a per-call index, its arguments under the same index.
async fn check_openai_stream(path: &str, headers: &[(&str, &str)]) {
    let mock = mock().await;
    let mut extra = openai_tools();
    extra["stream"] = json!(true);
    extra["stream_options"] = json!({"include_usage": true});
    let events = post_json(mock.addr(), path, headers, &openai_request(PROMPT, extra))
        .await
        .events();
    assert_eq!(events.last().map(|e| e.data.as_str()), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    let mut text = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut text_after_calls = false;
    let mut finishes = Vec::new();
    let mut usage = Value::Null;
    for chunk in &chunks {
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        if let Some(finish) = choice["finish_reason"].as_str() {
            finishes.push(finish.to_owned());
        }
        let delta = &choice["delta"];
        if let Some(piece) = delta["content"].as_str().filter(|p| !p.is_empty()) {
            text_after_calls |= !calls.is_empty();
            text.push_str(piece);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index =
                usize::try_from(call["index"].as_u64().unwrap_or(u64::MAX)).unwrap_or(usize::MAX);
            if index == calls.len() {
                assert!(call["id"].is_string(), "a call opens with its id: {call}");
                calls.push((
                    call["id"].as_str().unwrap_or_default().to_owned(),
                    call["function"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    String::new(),
                ));
            }
            assert!(index < calls.len(), "index {index} skips ahead");
            calls[index].2 += call["function"]["arguments"].as_str().unwrap_or_default();
        }
    }
    assert_eq!(text, PREAMBLE);
    assert!(!text_after_calls);
    assert_eq!(finishes, ["tool_calls"]);
    let ids: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(ids, ["call_mock_1", "call_mock_1_2"]);
    let rest: Vec<(&str, &str)> = calls.iter().map(|c| (c.1.as_str(), c.2.as_str())).collect();
    assert_eq!(
        rest,
        [
            ("get_weather", r#"{"city":"Paris"}"#),
            ("get_weather", r#"{"city":"Berlin"}"#)
        ]
    );
    assert_eq!(usage["completion_tokens"], 11);
}

#[tokio::test]
async fn an_openai_stream_indexes_calls_from_zero_after_the_text() {
    check_openai_stream("/v1/chat/completions", &[]).await;
}

#[tokio::test]
async fn an_azure_stream_does_the_same() {
    check_openai_stream(AZURE, &[]).await;
}

#[tokio::test]
async fn azure_whole_says_the_preamble_then_calls_twice() {
    let mock = mock().await;
    let body = post_json(
        mock.addr(),
        AZURE,
        &[],
        &openai_request(PROMPT, openai_tools()),
    )
    .await
    .json();
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["content"], PREAMBLE);
    assert_eq!(
        choice["message"]["tool_calls"],
        expected_openai_calls("call_mock_1")
    );
    assert_eq!(choice["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn without_a_preamble_two_calls_start_in_the_first_chunk() {
    let mock = mock().await;
    let mut extra = openai_tools();
    extra["stream"] = json!(true);
    let request = openai_request("[mock:tool,tools=2]", extra);
    let events = post_json(mock.addr(), "/v1/chat/completions", &[], &request)
        .await
        .events();
    // head with call 0, 3 pieces, call 1 opens, 3 pieces, finish, [DONE]
    assert_eq!(events.len(), 10);
    assert_eq!(
        events[0].json()["choices"][0]["delta"]["tool_calls"][0]["index"],
        0
    );
    let opening = events[4].json();
    let call = &opening["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(call["index"], 1);
    assert_eq!(call["id"], "call_mock_1_2");
    assert_eq!(
        call["function"],
        json!({"name": "get_weather", "arguments": ""})
    );
}

#[tokio::test]
async fn anthropic_whole_is_a_text_block_then_two_tool_uses() {
    let mock = mock().await;
    let body = post_json(
        mock.addr(),
        "/v1/messages",
        &[],
        &anthropic_request(PROMPT, anthropic_tools()),
    )
    .await
    .json();
    assert_eq!(
        body["content"],
        json!([
            {"type": "text", "text": PREAMBLE},
            {"type": "tool_use", "id": "toolu_mock_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_mock_1_2", "name": "get_weather", "input": {"city": "Berlin"}},
        ])
    );
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(body["usage"]["output_tokens"], 11);
}

#[tokio::test]
async fn an_anthropic_stream_starts_and_stops_every_block() {
    let mock = mock().await;
    let mut extra = anthropic_tools();
    extra["stream"] = json!(true);
    let events = post_json(
        mock.addr(),
        "/v1/messages",
        &[],
        &anthropic_request(PROMPT, extra),
    )
    .await
    .events();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(["content_block_delta"; 5]);
    for _ in 0..2 {
        expected.extend(["content_block_stop", "content_block_start"]);
        expected.extend(["content_block_delta"; 3]);
    }
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);

    // Rebuild the blocks from the events, checking that every index opens before it is used.
    let mut blocks: Vec<Value> = Vec::new();
    let mut open: Option<u64> = None;
    for event in &events {
        let data = event.json();
        match data["type"].as_str().unwrap() {
            "content_block_start" => {
                assert_eq!(open, None);
                assert_eq!(data["index"], blocks.len());
                open = data["index"].as_u64();
                let mut block = data["content_block"].clone();
                block["partial"] = json!("");
                blocks.push(block);
            }
            "content_block_delta" => {
                assert_eq!(data["index"].as_u64(), open);
                let block = blocks.last_mut().unwrap();
                let piece = data["delta"]["text"]
                    .as_str()
                    .or(data["delta"]["partial_json"].as_str())
                    .unwrap();
                let partial = format!("{}{piece}", block["partial"].as_str().unwrap());
                block["partial"] = json!(partial);
            }
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open);
                open = None;
            }
            "message_delta" => {
                assert_eq!(data["delta"]["stop_reason"], "tool_use");
                assert_eq!(data["usage"]["output_tokens"], 11);
            }
            _ => {}
        }
    }
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0]["type"], "text");
    assert_eq!(blocks[0]["partial"], PREAMBLE);
    assert_eq!(blocks[1]["id"], "toolu_mock_1");
    assert_eq!(blocks[1]["partial"], r#"{"city":"Paris"}"#);
    assert_eq!(blocks[2]["id"], "toolu_mock_1_2");
    assert_eq!(blocks[2]["name"], "get_weather");
    assert_eq!(blocks[2]["partial"], r#"{"city":"Berlin"}"#);
}

#[tokio::test]
async fn gemini_whole_is_a_text_part_then_two_function_calls() {
    let mock = mock().await;
    let body = post_json(mock.addr(), GEMINI, &[], &gemini_request())
        .await
        .json();
    let candidate = &body["candidates"][0];
    assert_eq!(
        candidate["content"]["parts"],
        json!([
            {"text": PREAMBLE},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Berlin"}}},
        ])
    );
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(body["usageMetadata"]["candidatesTokenCount"], 11);
}

#[tokio::test]
async fn a_gemini_stream_sends_the_words_then_each_call_whole() {
    let mock = mock().await;
    let events = post_json(mock.addr(), GEMINI_SSE, &[], &gemini_request())
        .await
        .events();
    assert_eq!(events.len(), 5 + 2);
    let chunks: Vec<Value> = events.iter().map(|e| e.json()).collect();
    let text: String = chunks[..5]
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(text, PREAMBLE);
    assert_eq!(
        chunks[5]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"],
        json!({"city": "Paris"})
    );
    assert_eq!(
        chunks[6]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"],
        json!({"city": "Berlin"})
    );
    let finishes = chunks
        .iter()
        .filter(|c| c["candidates"][0]["finishReason"].is_string())
        .count();
    assert_eq!(finishes, 1);
    assert_eq!(chunks[6]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(chunks[6]["usageMetadata"]["candidatesTokenCount"], 11);
}

#[tokio::test]
async fn a_preamble_stream_breaks_only_where_a_content_delta_would_go() {
    let mock = mock().await;
    let mut extra = anthropic_tools();
    extra["stream"] = json!(true);
    // 11 content deltas: the error takes the place of the 6th, the first call's first piece,
    // after the text block stopped and the tool_use block started.
    let prompt = format!("{PROMPT} [mock:midstream_error]");
    let events = post_json(
        mock.addr(),
        "/v1/messages",
        &[],
        &anthropic_request(&prompt, extra),
    )
    .await
    .events();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(["content_block_delta"; 5]);
    expected.extend(["content_block_stop", "content_block_start", "error"]);
    assert_eq!(names, expected);
}
