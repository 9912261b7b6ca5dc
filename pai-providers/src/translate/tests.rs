//! Every translation direction: requests, complete answers and streams.

use bytes::Bytes;
use pai_core::{Call, Dialect, JsonObject, Operation, Passed, StreamObserver, Usage};
use serde_json::{json, Value};

use super::*;
use crate::sse::SseParser;

pub(super) fn call(client: Dialect, body: Value) -> Call {
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let wants_usage = stream
        && body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true);
    Call {
        operation: match client {
            Dialect::Anthropic => Operation::Messages,
            _ => Operation::ChatCompletions,
        },
        client,
        model: "upstream-model".into(),
        stream,
        client_wants_usage: wants_usage,
        body: JsonObject::from_slice(body.to_string().as_bytes()).unwrap(),
        headers: Default::default(),
        query: None,
    }
}

pub(super) fn json_of(b: Bytes) -> Value {
    serde_json::from_slice(&b).unwrap()
}

/// Run a stream through the parser and the observer, in pieces of `step` bytes; returns what
/// the client receives.
pub(super) fn run(observer: &mut dyn StreamObserver, stream: &[u8], step: usize) -> String {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    let mut events = Vec::new();
    for piece in stream.chunks(step) {
        events.extend(parser.push(piece));
    }
    events.extend(parser.finish());
    let mut finals = 0;
    let mut check = |passed: &Passed, bytes: &[u8]| {
        // A final event marked is the client's last: `[DONE]` or `message_stop`.
        if let Some(at) = passed.final_at {
            finals += 1;
            let last = &bytes[at..];
            assert!(
                last == b"data: [DONE]\n\n" || last.starts_with(b"event: message_stop\n"),
                "{}",
                String::from_utf8_lossy(last)
            );
        }
    };
    for event in &events {
        let passed = observer.on_event(event);
        if let Some(bytes) = passed.bytes(&event.raw) {
            check(&passed, &bytes);
            out.extend_from_slice(&bytes);
        }
    }
    let tail = observer.on_end();
    if let Some(bytes) = tail.replacement() {
        check(&tail, bytes);
        out.extend_from_slice(bytes);
    }
    assert!(finals <= 1, "{finals} final events");
    String::from_utf8(out).unwrap()
}

/// Every event the observer passes, with its marks, and the tail at the end.
fn passed_all(observer: &mut dyn StreamObserver, stream: &[u8]) -> Vec<Passed> {
    let mut parser = SseParser::new();
    let mut events = parser.push(stream);
    events.extend(parser.finish());
    let mut all: Vec<Passed> = events.iter().map(|e| observer.on_event(e)).collect();
    all.push(observer.on_end());
    all
}

/// The client's stream cut into (event name, JSON or `[DONE]`) pairs.
pub(super) fn parse_events(stream: &str) -> Vec<(Option<String>, Value)> {
    let mut parser = SseParser::new();
    let mut events = parser.push(stream.as_bytes());
    events.extend(parser.finish());
    events
        .into_iter()
        .filter(|e| !e.is_comment_only())
        .map(|e| {
            let data = if e.data == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(&e.data).unwrap()
            };
            (e.event, data)
        })
        .collect()
}

// === requests: OpenAI client → Anthropic upstream ===

#[test]
fn openai_requests_become_messages() {
    let c = call(
        Dialect::OpenAi,
        json!({
            "model": "fast",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "developer", "content": [{"type": "text", "text": "Use celsius."}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "22C"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "And this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
                ]}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "stop": "END",
            "max_completion_tokens": 300,
            "max_tokens": 100,
            "temperature": 1.7,
            "user": "u-42",
            "seed": 7
        }),
    );
    let body = json_of(to_anthropic(&c).unwrap());
    assert_eq!(
        body,
        json!({
            "model": "upstream-model",
            "max_tokens": 300,
            "system": "You are terse.\n\nUse celsius.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "18C"}]},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "22C"}]},
                    {"type": "text", "text": "And this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                ]}
            ],
            "stop_sequences": ["END"],
            "temperature": 1.0,
            "metadata": {"user_id": "u-42"},
            "tools": [{"name": "weather", "description": "Current weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
        })
    );
}

#[test]
fn tool_choices_and_limits_map_both_ways() {
    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let cases = [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
    ];
    for (openai, anthropic) in cases {
        let c = call(
            Dialect::OpenAi,
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools, "tool_choice": openai}),
        );
        let body = json_of(to_anthropic(&c).unwrap());
        assert_eq!(body["tool_choice"], anthropic);
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);

        let back = call(
            Dialect::Anthropic,
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                "tools": [{"name": "f", "input_schema": {"type": "object"}}], "tool_choice": anthropic}),
        );
        let body = json_of(to_openai(&back, "max_tokens").unwrap());
        assert_eq!(body["tool_choice"], openai);
        assert_eq!(body["max_tokens"], 5);
    }
    let old = call(
        Dialect::OpenAi,
        json!({"model": "m", "max_tokens": 77, "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(json_of(to_anthropic(&old).unwrap())["max_tokens"], 77);
}

#[test]
fn many_choices_and_unknown_parts_are_refused_clearly() {
    let c = call(
        Dialect::OpenAi,
        json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
    );
    for e in [to_anthropic(&c).unwrap_err(), to_gemini(&c).unwrap_err()] {
        assert_eq!(e.status(), 400);
        assert_eq!(e.to_string(), "n > 1 is not supported by this provider");
    }
    let audio = call(
        Dialect::OpenAi,
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
    );
    let e = to_anthropic(&audio).unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("input_audio"), "{e}");

    let bad_args = call(
        Dialect::OpenAi,
        json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}),
    );
    assert!(to_anthropic(&bad_args)
        .unwrap_err()
        .to_string()
        .contains("not valid JSON"));

    let schema = call(
        Dialect::OpenAi,
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format":
            {"type": "json_schema", "json_schema": {"name": "x", "schema":
                {"type": "object", "properties": {"anything": {}}}}}}),
    );
    let e = to_anthropic(&schema).unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("schema.properties.anything"), "{e}");
}

// === requests: Anthropic client → OpenAI upstream ===

#[test]
fn messages_requests_become_chat_completions() {
    let c = call(
        Dialect::Anthropic,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "stream": true,
            "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "List files"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.txt\nb.txt"},
                    {"type": "text", "text": "Thanks"}
                ]}
            ],
            "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "stop_sequences": ["\n\nHuman:"],
            "metadata": {"user_id": "user_abc"},
            "thinking": {"type": "enabled", "budget_tokens": 1024}
        }),
    );
    let body = json_of(to_openai(&c, "max_completion_tokens").unwrap());
    assert_eq!(
        body,
        json!({
            "model": "upstream-model",
            "messages": [
                {"role": "system", "content": "You are Claude Code."},
                {"role": "user", "content": "List files"},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "toolu_01", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_01", "content": "a.txt\nb.txt"},
                {"role": "user", "content": "Thanks"}
            ],
            "max_completion_tokens": 1024,
            "stop": ["\n\nHuman:"],
            "user": "user_abc",
            "tools": [{"type": "function", "function": {"name": "Bash", "description": "Run a command",
                "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}],
            "tool_choice": "auto",
            "parallel_tool_calls": false,
            "reasoning_effort": "low",
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

#[test]
fn images_travel_both_ways_and_server_tools_are_refused() {
    let c = call(
        Dialect::Anthropic,
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
            {"type": "text", "text": "What is this?"}
        ]}]}),
    );
    let body = json_of(to_openai(&c, "max_tokens").unwrap());
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
            {"type": "text", "text": "What is this?"}
        ])
    );
    let server = call(
        Dialect::Anthropic,
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
    );
    let e = to_openai(&server, "max_tokens").unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("web_search_20250305"));
}

// === complete answers ===

#[test]
fn anthropic_answers_become_chat_completions_with_cache_in_the_prompt() {
    let c = call(
        Dialect::OpenAi,
        json!({"model": "sonnet", "messages": [{"role": "user", "content": "x"}]}),
    );
    let upstream = br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
        "content":[{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris"}}],
        "stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":10,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000,"output_tokens":20}}"#;
    let body = json_of(response(&c, Dialect::Anthropic, upstream).unwrap());
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["id"], "msg_01");
    assert_eq!(body["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], "Checking.");
    assert_eq!(
        message["tool_calls"],
        json!([{"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}])
    );
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 1110, "completion_tokens": 20, "total_tokens": 1130,
            "prompt_tokens_details": {"cached_tokens": 1000}, "completion_tokens_details": {"reasoning_tokens": 0}})
    );

    for (reason, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ] {
        let upstream = json!({"id": "m", "content": [], "stop_reason": reason, "usage": {"input_tokens": 1, "output_tokens": 1}});
        let body =
            json_of(response(&c, Dialect::Anthropic, upstream.to_string().as_bytes()).unwrap());
        assert_eq!(body["choices"][0]["finish_reason"], finish, "{reason}");
    }
}

#[test]
fn chat_completions_become_anthropic_answers_with_cache_outside_the_input() {
    let c = call(
        Dialect::Anthropic,
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
    );
    let upstream = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06",
        "choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
            "finish_reason":"tool_calls"}],
        "usage":{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,
            "prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":256}}}"#;
    let body = json_of(response(&c, Dialect::OpenAi, upstream).unwrap());
    assert_eq!(
        body,
        json!({
            "id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-4o-2024-08-06",
            "content": [{"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 176, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024, "output_tokens": 300,
                "output_tokens_details": {"thinking_tokens": 256}}
        })
    );
    for (finish, reason) in [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
    ] {
        let upstream = json!({"choices": [{"message": {"content": "x"}, "finish_reason": finish}]});
        let body = json_of(response(&c, Dialect::OpenAi, upstream.to_string().as_bytes()).unwrap());
        assert_eq!(body["stop_reason"], reason);
        assert_eq!(
            body["model"], "upstream-model",
            "no model named: the call's"
        );
    }
}

// === streams: Anthropic upstream → OpenAI client ===

const ANTHROPIC_TOOL_STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking \"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"both.\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_A\",\"name\":\"weather\",\"input\":{}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_B\",\"name\":\"weather\",\"input\":{}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Rome\\\"}\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":2}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":58}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

fn openai_stream_call(include_usage: bool) -> Call {
    let mut body =
        json!({"model": "sonnet", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    call(Dialect::OpenAi, body)
}

#[test]
fn anthropic_streams_become_chunks_with_per_tool_indexes() {
    for step in [usize::MAX, 7] {
        let c = openai_stream_call(false);
        let mut observer = TranslatingObserver::new(&c, Dialect::Anthropic);
        let out = run(
            &mut observer,
            ANTHROPIC_TOOL_STREAM.as_bytes(),
            step.min(4096),
        );
        assert!(!out.contains("event:"), "OpenAI chunks have no event names");
        assert!(!out.contains("usage"), "no usage unless asked: {out}");
        assert!(out.ends_with("data: [DONE]\n\n"));
        let chunks: Vec<Value> = parse_events(&out).into_iter().map(|(_, v)| v).collect();
        let deltas: Vec<&Value> = chunks
            .iter()
            .filter(|c| c.is_object())
            .map(|c| &c["choices"][0]["delta"])
            .collect();
        assert_eq!(*deltas[0], json!({"role": "assistant", "content": ""}));
        assert_eq!(*deltas[1], json!({"content": "Checking "}));
        assert_eq!(*deltas[2], json!({"content": "both."}));
        assert_eq!(
            *deltas[3],
            json!({"tool_calls": [{"index": 0, "id": "toolu_A", "type": "function", "function": {"name": "weather", "arguments": ""}}]})
        );
        assert_eq!(
            *deltas[4],
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"Par"}}]})
        );
        assert_eq!(
            *deltas[5],
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "is\"}"}}]})
        );
        assert_eq!(deltas[6]["tool_calls"][0]["index"], 1);
        assert_eq!(deltas[6]["tool_calls"][0]["id"], "toolu_B");
        assert_eq!(deltas[7]["tool_calls"][0]["index"], 1);
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(*deltas[8], json!({}));
        assert_eq!(chunks.last(), Some(&json!("[DONE]")));
        for chunk in chunks.iter().filter(|c| c.is_object()) {
            assert_eq!(chunk["id"], "msg_01");
            assert_eq!(chunk["model"], "claude-sonnet-4-5-20250929");
            assert_eq!(chunk["object"], "chat.completion.chunk");
        }
        assert_eq!(
            observer.usage(),
            Some(Usage::from_anthropic(12, 58, 100, 2000))
        );
        assert_eq!(observer.stream_error(), None);
    }
}

#[test]
fn the_usage_chunk_comes_only_when_asked_and_counts_the_cache() {
    let c = openai_stream_call(true);
    let mut observer = TranslatingObserver::new(&c, Dialect::Anthropic);
    let out = run(&mut observer, ANTHROPIC_TOOL_STREAM.as_bytes(), 4096);
    let chunks: Vec<Value> = parse_events(&out).into_iter().map(|(_, v)| v).collect();
    let usage_chunk = &chunks[chunks.len() - 2];
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": 2112, "completion_tokens": 58, "total_tokens": 2170,
            "prompt_tokens_details": {"cached_tokens": 2000}, "completion_tokens_details": {"reasoning_tokens": 0}})
    );
    for chunk in &chunks[..chunks.len() - 2] {
        assert_eq!(chunk["usage"], Value::Null);
        assert!(
            chunk.get("usage").is_some(),
            "usage: null on every other chunk"
        );
    }
    assert_eq!(chunks.last(), Some(&json!("[DONE]")));
}

#[test]
fn translated_events_say_which_carry_content_and_where_the_final_one_begins() {
    // Anthropic → OpenAI: the text and argument deltas are content; the finish, the usage
    // chunk and `[DONE]` come in one replacement, `[DONE]` marked where it begins.
    let c = openai_stream_call(true);
    let mut observer = TranslatingObserver::new(&c, Dialect::Anthropic);
    let passed = passed_all(&mut observer, ANTHROPIC_TOOL_STREAM.as_bytes());
    let content = passed.iter().filter(|p| p.content).count();
    // "Checking ", "both.", two pieces of A's arguments, one of B's.
    assert_eq!(content, 5, "{passed:?}");
    let last = passed.iter().rev().find(|p| p.final_at.is_some()).unwrap();
    let bytes = last.replacement().unwrap();
    let at = last.final_at.unwrap();
    assert!(at > 0, "the usage chunk comes first");
    assert_eq!(&bytes[at..], b"data: [DONE]\n\n");
    assert_eq!(passed.iter().filter(|p| p.final_at.is_some()).count(), 1);

    // Gemini → Anthropic: the end is written only when the body ends, by `on_end`.
    let c = anthropic_stream_call();
    let mut observer = TranslatingObserver::new(&c, Dialect::Gemini);
    let passed = passed_all(&mut observer, GEMINI_STREAM.as_bytes());
    let (tail, events) = passed.split_last().unwrap();
    assert!(events.iter().all(|p| p.final_at.is_none()));
    assert!(events.iter().any(|p| p.content));
    let bytes = tail.replacement().unwrap();
    let at = tail.final_at.unwrap();
    assert!(bytes[..at].starts_with(b"event: content_block_stop\n"));
    assert!(bytes[at..].starts_with(b"event: message_stop\n"));
    assert!(!tail.content);
}

#[test]
fn a_translated_stream_cut_short_marks_no_final_event() {
    let c = anthropic_stream_call();
    let mut observer = TranslatingObserver::new(&c, Dialect::OpenAi);
    let cut =
        b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    let passed = passed_all(&mut observer, cut);
    assert!(passed[0].content);
    // The end is an in-band error, not a clean stop.
    let tail = passed.last().unwrap();
    assert_eq!(tail.final_at, None);
    assert!(String::from_utf8_lossy(tail.replacement().unwrap()).contains("event: error"));
}

#[test]
fn anthropic_mid_stream_errors_become_openai_error_chunks() {
    let stream = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n\
event: error\n\
data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let c = openai_stream_call(false);
    let mut observer = TranslatingObserver::new(&c, Dialect::Anthropic);
    let out = run(&mut observer, stream.as_bytes(), 4096);
    let chunks: Vec<Value> = parse_events(&out).into_iter().map(|(_, v)| v).collect();
    let last = chunks.last().unwrap();
    assert_eq!(last["error"]["message"], "Overloaded");
    assert_eq!(last["error"]["type"], "api_error");
    assert!(!out.contains("[DONE]"));
    assert!(observer.stream_error().unwrap().contains("Overloaded"));
    assert_eq!(observer.usage().map(|u| u.input), Some(5));
}

// === streams: OpenAI upstream → Anthropic client ===

const OPENAI_TOOL_STREAM: &str = "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Let me check.\"},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_A\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"ci\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\":\\\"Paris\\\"}\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_B\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"{\\\"city\\\":\\\"Rome\\\"}\"}}]},\"finish_reason\":null}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n\
data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,\"completion_tokens\":40,\"total_tokens\":1240,\"prompt_tokens_details\":{\"cached_tokens\":1024},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n\
data: [DONE]\n\n";

fn anthropic_stream_call() -> Call {
    call(
        Dialect::Anthropic,
        json!({"model": "m", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
    )
}

#[test]
fn openai_streams_become_messages_events_with_blocks_opened_and_closed() {
    for step in [4096, 5] {
        let c = anthropic_stream_call();
        let mut observer = TranslatingObserver::new(&c, Dialect::OpenAi);
        let out = run(&mut observer, OPENAI_TOOL_STREAM.as_bytes(), step);
        let events = parse_events(&out);
        let names: Vec<&str> = events
            .iter()
            .map(|(name, _)| name.as_deref().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        for (name, data) in &events {
            assert_eq!(
                data["type"],
                name.as_deref().unwrap(),
                "type matches event name"
            );
        }
        let start = &events[0].1["message"];
        assert_eq!(start["id"], "chatcmpl-9");
        assert_eq!(start["model"], "gpt-4o-2024-08-06");
        assert_eq!(start["role"], "assistant");
        assert_eq!(
            events[1].1["content_block"],
            json!({"type": "text", "text": ""})
        );
        assert_eq!(
            events[2].1["delta"],
            json!({"type": "text_delta", "text": "Let me check."})
        );
        assert_eq!(events[3].1["index"], 0);
        assert_eq!(
            events[4].1,
            json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": "call_A", "name": "weather", "input": {}}})
        );
        assert_eq!(
            events[5].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "{\"ci"})
        );
        assert_eq!(events[6].1["delta"]["partial_json"], "ty\":\"Paris\"}");
        assert_eq!(events[8].1["index"], 2);
        assert_eq!(events[8].1["content_block"]["id"], "call_B");
        assert_eq!(events[9].1["index"], 2);
        assert_eq!(
            events[11].1,
            json!({"type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"input_tokens": 176, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024, "output_tokens": 40}})
        );
        assert_eq!(
            observer.usage(),
            Some(Usage::from_openai(1200, 40, 1024, 0))
        );
    }
}

#[test]
fn switching_back_from_tools_to_text_opens_a_new_text_block() {
    let stream = "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n\
data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"done\"}}]}\n\n\
data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";
    let c = anthropic_stream_call();
    let mut observer = TranslatingObserver::new(&c, Dialect::OpenAi);
    let out = run(&mut observer, stream.as_bytes(), 4096);
    let events = parse_events(&out);
    let blocks: Vec<(String, Value)> = events
        .iter()
        .filter(|(n, _)| n.as_deref() == Some("content_block_start"))
        .map(|(_, v)| {
            (
                v["content_block"]["type"].as_str().unwrap().to_owned(),
                v["index"].clone(),
            )
        })
        .collect();
    assert_eq!(
        blocks,
        vec![
            ("tool_use".to_owned(), json!(0)),
            ("text".to_owned(), json!(1))
        ]
    );
    let delta = &events[events.len() - 2].1;
    // Some OpenAI-compatible servers say "stop" after tool calls; the client must still run them.
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        delta["usage"]["output_tokens"], 0,
        "no usage seen upstream: zeros, not made up"
    );
}

#[test]
fn openai_mid_stream_errors_become_anthropic_error_events() {
    let stream = "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n\
: OPENROUTER PROCESSING\n\n\
data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"error\":{\"code\":502,\"message\":\"Provider disconnected\"},\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n";
    let c = anthropic_stream_call();
    let mut observer = TranslatingObserver::new(&c, Dialect::OpenAi);
    let out = run(&mut observer, stream.as_bytes(), 4096);
    assert!(
        out.contains(": OPENROUTER PROCESSING\n\n"),
        "keep-alives pass"
    );
    let events = parse_events(&out);
    let (name, data) = events.last().unwrap();
    assert_eq!(name.as_deref(), Some("error"));
    assert_eq!(
        *data,
        json!({"type": "error", "error": {"type": "api_error", "message": "Provider disconnected"}})
    );
    assert!(!out.contains("message_stop"));
    assert_eq!(
        observer.stream_error().as_deref(),
        Some("Provider disconnected")
    );

    let rate =
        "data: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_error\"}}\n\n";
    let mut observer = TranslatingObserver::new(&c, Dialect::OpenAi);
    let out = run(&mut observer, rate.as_bytes(), 4096);
    assert_eq!(parse_events(&out)[0].1["error"]["type"], "rate_limit_error");
}

#[test]
fn a_stream_cut_short_ends_in_an_error_not_a_clean_stop() {
    let cut = "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    let c = anthropic_stream_call();
    let mut observer = TranslatingObserver::new(&c, Dialect::OpenAi);
    let out = run(&mut observer, cut.as_bytes(), 4096);
    let (name, data) = parse_events(&out).pop().unwrap();
    assert_eq!(name.as_deref(), Some("error"));
    assert!(data["error"]["message"]
        .as_str()
        .unwrap()
        .contains("before it was complete"));

    let cut = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":1}}}\n\n";
    let c = openai_stream_call(true);
    let mut observer = TranslatingObserver::new(&c, Dialect::Anthropic);
    let out = run(&mut observer, cut.as_bytes(), 4096);
    assert!(out.contains("\"error\""));
    assert!(!out.contains("[DONE]"));
}

// === Gemini ===

#[test]
fn gemini_requests_from_both_dialects() {
    let c = call(
        Dialect::OpenAi,
        json!({
            "model": "flash",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":18}"},
                {"role": "tool", "tool_call_id": "call_x", "content": "plain text"}
            ],
            "tools": [{"type": "function", "function": {"name": "weather",
                "parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": false,
                    "properties": {"city": {"type": ["string", "null"], "description": "City"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "max_tokens": 256,
            "stop": ["END"],
            "temperature": 0.2,
            "response_format": {"type": "json_object"}
        }),
    );
    let body = json_of(to_gemini(&c).unwrap());
    assert_eq!(
        body,
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "weather", "response": {"temp": 18}}},
                    {"functionResponse": {"name": "call_x", "response": {"content": "plain text"}}}
                ]}
            ],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "generationConfig": {"maxOutputTokens": 256, "stopSequences": ["END"], "temperature": 0.2,
                "responseMimeType": "application/json"},
            "tools": [{"functionDeclarations": [
                {"name": "weather", "parameters": {"type": "object",
                    "properties": {"city": {"type": "string", "nullable": true, "description": "City"}}, "required": ["city"]}},
                {"name": "now"}
            ]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}}
        })
    );

    let a = call(
        Dialect::Anthropic,
        json!({"model": "m", "max_tokens": 64, "system": "Sys", "messages": [
            {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA="}}, {"type": "text", "text": "What?"}]}
        ], "tool_choice": {"type": "any"}, "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}]}),
    );
    let body = json_of(to_gemini(&a).unwrap());
    assert_eq!(
        body["contents"][0]["parts"],
        json!([{"inlineData": {"mimeType": "image/png", "data": "AAA="}}, {"text": "What?"}])
    );
    assert_eq!(body["generationConfig"], json!({"maxOutputTokens": 64}));
    assert_eq!(
        body["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY"})
    );

    let url = call(
        Dialect::OpenAi,
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}),
    );
    let e = to_gemini(&url).unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("image URLs are not supported"));
}

const GEMINI_BODY: &[u8] = br#"{"candidates":[{"content":{"parts":[{"text":"thinking...","thought":true},{"text":"Hello there."}],"role":"model"},"finishReason":"STOP","index":0}],
"usageMetadata":{"promptTokenCount":100,"cachedContentTokenCount":40,"candidatesTokenCount":20,"thoughtsTokenCount":30,"totalTokenCount":150},
"modelVersion":"gemini-2.5-flash","responseId":"resp-1"}"#;

#[test]
fn gemini_answers_for_both_dialects_with_thoughts_as_output() {
    assert_eq!(
        gemini_usage(GEMINI_BODY),
        Some(Usage {
            input: 60,
            cached_input: 40,
            cache_write: 0,
            output: 50,
            reasoning: 30
        })
    );
    let o = call(
        Dialect::OpenAi,
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
    );
    let body = json_of(response(&o, Dialect::Gemini, GEMINI_BODY).unwrap());
    assert_eq!(body["id"], "resp-1");
    assert_eq!(body["model"], "gemini-2.5-flash");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello there.");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 40}, "completion_tokens_details": {"reasoning_tokens": 30}})
    );

    let a = anthropic_stream_call();
    let calls = br#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"weather","args":{"city":"Paris"}}}],"role":"model"},"finishReason":"STOP"}],
        "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":15},"modelVersion":"gemini-2.5-pro"}"#;
    let body = json_of(response(&a, Dialect::Gemini, calls).unwrap());
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(body["content"][0]["type"], "tool_use");
    assert_eq!(body["content"][0]["input"], json!({"city": "Paris"}));
    assert!(body["content"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("call_"));
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 5})
    );

    for (reason, openai, anthropic) in [
        ("MAX_TOKENS", "length", "max_tokens"),
        ("SAFETY", "content_filter", "refusal"),
        ("RECITATION", "content_filter", "refusal"),
    ] {
        let b = json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}).to_string();
        assert_eq!(
            json_of(response(&o, Dialect::Gemini, b.as_bytes()).unwrap())["choices"][0]
                ["finish_reason"],
            openai
        );
        assert_eq!(
            json_of(response(&a, Dialect::Gemini, b.as_bytes()).unwrap())["stop_reason"],
            anthropic
        );
    }
}

const GEMINI_STREAM: &str = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":100,\"cachedContentTokenCount\":40,\"candidatesTokenCount\":1,\"totalTokenCount\":101},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r-1\"}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":100,\"cachedContentTokenCount\":40,\"candidatesTokenCount\":2,\"totalTokenCount\":102},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r-1\"}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"weather\",\"args\":{\"city\":\"Paris\"}}}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":100,\"cachedContentTokenCount\":40,\"candidatesTokenCount\":9,\"thoughtsTokenCount\":12,\"totalTokenCount\":121},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r-1\"}\r\n\r\n";

#[test]
fn gemini_streams_for_openai_clients_take_the_last_running_total() {
    let c = openai_stream_call(true);
    let mut observer = TranslatingObserver::new(&c, Dialect::Gemini);
    let out = run(&mut observer, GEMINI_STREAM.as_bytes(), 11);
    let chunks: Vec<Value> = parse_events(&out).into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hel");
    assert_eq!(chunks[2]["choices"][0]["delta"]["content"], "lo");
    let call_delta = &chunks[3]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(call_delta["index"], 0);
    assert_eq!(call_delta["function"]["name"], "weather");
    assert_eq!(
        chunks[4]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks[6]["usage"]["prompt_tokens"], 100);
    assert_eq!(chunks[6]["usage"]["completion_tokens"], 21);
    assert_eq!(
        chunks[6]["usage"]["prompt_tokens_details"]["cached_tokens"],
        40
    );
    assert_eq!(chunks[7], json!("[DONE]"));
    assert_eq!(chunks[1]["model"], "gemini-2.5-flash");
    assert_eq!(chunks[1]["id"], "r-1");
    assert_eq!(
        observer.usage(),
        Some(Usage {
            input: 60,
            cached_input: 40,
            cache_write: 0,
            output: 21,
            reasoning: 12
        })
    );
}

#[test]
fn gemini_streams_for_anthropic_clients_end_with_the_real_usage() {
    let c = anthropic_stream_call();
    let mut observer = TranslatingObserver::new(&c, Dialect::Gemini);
    let out = run(&mut observer, GEMINI_STREAM.as_bytes(), 4096);
    let events = parse_events(&out);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 60);
    assert_eq!(
        events[0].1["message"]["usage"]["cache_read_input_tokens"],
        40
    );
    assert_eq!(
        events[8].1["usage"],
        json!({"input_tokens": 60, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 40, "output_tokens": 21,
            "output_tokens_details": {"thinking_tokens": 12}})
    );
    assert_eq!(events[8].1["delta"]["stop_reason"], "tool_use");
}

#[test]
fn gemini_stream_errors_are_translated() {
    let stream = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]}}]}\r\n\r\n\
data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try again later.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n";
    let c = anthropic_stream_call();
    let mut observer = TranslatingObserver::new(&c, Dialect::Gemini);
    let out = run(&mut observer, stream.as_bytes(), 4096);
    let (name, data) = parse_events(&out).pop().unwrap();
    assert_eq!(name.as_deref(), Some("error"));
    assert_eq!(data["error"]["type"], "overloaded_error");
    assert_eq!(
        data["error"]["message"],
        "The model is overloaded. Please try again later."
    );
    assert!(observer.stream_error().is_some());

    let c = openai_stream_call(false);
    let mut observer = TranslatingObserver::new(&c, Dialect::Gemini);
    let out = run(&mut observer, stream.as_bytes(), 4096);
    let chunks: Vec<Value> = parse_events(&out).into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        chunks.last().unwrap()["error"]["message"],
        "The model is overloaded. Please try again later."
    );
    assert!(!out.contains("[DONE]"));
}

#[test]
fn a_system_message_inside_messages_joins_the_system_prompt() {
    // What Claude Code sends for a model name it does not know.
    let c = call(
        Dialect::Anthropic,
        json!({
            "model": "gpt-4o-mini",
            "max_tokens": 100,
            "system": "You are Claude Code.",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": [{"type": "text", "text": "Tools changed.", "cache_control": {"type": "ephemeral"}}]}
            ]
        }),
    );
    let body = json_of(to_openai(&c, "max_tokens").unwrap());
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    assert!(
        system.contains("You are Claude Code.") && system.contains("Tools changed."),
        "{system}"
    );
    assert_eq!(messages.iter().filter(|m| m["role"] == "system").count(), 1);
    assert_eq!(messages[1]["role"], "user");
}

// === Gemini thought signatures ride in tool-call ids ===

/// Like a real signature: standard base64 with `+`, `/` and padding.
const SIGNATURE: &str = "CiQBjz1rX+4/aGVsbG8gd29ybGQ=";

fn signed_call_body() -> Vec<u8> {
    json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE},
        {"functionCall": {"name": "weather", "args": {"city": "Berlin"}}}
    ]}, "finishReason": "STOP"}], "modelVersion": "gemini-3-pro"})
    .to_string()
    .into_bytes()
}

fn assert_signed(id: &str) {
    let (plain, encoded) = id.split_once("__ts_").expect(id);
    assert!(plain.starts_with("call_"), "{id}");
    assert!(!encoded.is_empty());
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{id}"
    );
}

/// The Gemini request a follow-up carrying `id` (signed) and `plain` (unsigned) becomes.
fn assert_signature_returned(follow_up: &Call) {
    let body = json_of(to_gemini(follow_up).unwrap());
    let contents = body["contents"].as_array().unwrap();
    assert_eq!(contents[1]["role"], "model");
    let calls = &contents[1]["parts"];
    assert_eq!(
        calls[0],
        json!({"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE})
    );
    assert_eq!(
        calls[1],
        json!({"functionCall": {"name": "weather", "args": {"city": "Berlin"}}})
    );
    assert_eq!(contents[2]["role"], "user");
    let results = &contents[2]["parts"];
    assert_eq!(results[0]["functionResponse"]["name"], "weather");
    assert_eq!(results[1]["functionResponse"]["name"], "weather");
    assert!(!body.to_string().contains("__ts_"));
}

#[test]
fn signature_ids_round_trip_and_plain_ids_pass() {
    for sig in ["", "a", "ab", "abc", "abcd", SIGNATURE, "ünïcødé+/="] {
        let id = gemini::signed_id("call_1".into(), Some(sig));
        let (plain, back) = gemini::split_id(&id);
        assert_eq!(plain, "call_1");
        assert_eq!(back.as_deref(), (!sig.is_empty()).then_some(sig));
    }
    assert_eq!(gemini::split_id("toolu_01abc"), ("toolu_01abc", None));
    assert_eq!(gemini::split_id("call__ts_!!"), ("call__ts_!!", None));
    assert_eq!(gemini::signed_id("x".into(), None), "x");
}

#[test]
fn gemini_thought_signatures_survive_an_openai_round_trip() {
    let o = call(
        Dialect::OpenAi,
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
    );
    let body = json_of(response(&o, Dialect::Gemini, &signed_call_body()).unwrap());
    let calls = &body["choices"][0]["message"]["tool_calls"];
    let signed = calls[0]["id"].as_str().unwrap().to_owned();
    let plain = calls[1]["id"].as_str().unwrap().to_owned();
    assert_signed(&signed);
    assert!(!plain.contains("__ts_"));

    let follow_up = call(
        Dialect::OpenAi,
        json!({"model": "m", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": signed, "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": plain, "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Berlin\"}"}}
            ]},
            {"role": "tool", "tool_call_id": signed, "content": "sunny"},
            {"role": "tool", "tool_call_id": plain, "content": "rainy"}
        ]}),
    );
    assert_signature_returned(&follow_up);
}

#[test]
fn gemini_thought_signatures_survive_an_anthropic_round_trip() {
    let a = call(
        Dialect::Anthropic,
        json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "x"}]}),
    );
    let body = json_of(response(&a, Dialect::Gemini, &signed_call_body()).unwrap());
    let signed = body["content"][0]["id"].as_str().unwrap().to_owned();
    let plain = body["content"][1]["id"].as_str().unwrap().to_owned();
    assert_signed(&signed);
    assert!(!plain.contains("__ts_"));

    let follow_up = call(
        Dialect::Anthropic,
        json!({"model": "m", "max_tokens": 100, "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": signed, "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": plain, "name": "weather", "input": {"city": "Berlin"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": signed, "content": "sunny"},
                {"type": "tool_result", "tool_use_id": plain, "content": "rainy"}
            ]}
        ]}),
    );
    assert_signature_returned(&follow_up);
}

#[test]
fn gemini_thought_signatures_ride_in_streamed_ids() {
    let stream = format!(
        "data: {}\r\n\r\n",
        String::from_utf8(signed_call_body()).unwrap()
    );

    let c = openai_stream_call(false);
    let mut observer = TranslatingObserver::new(&c, Dialect::Gemini);
    let out = run(&mut observer, stream.as_bytes(), 13);
    let ids: Vec<String> = parse_events(&out)
        .into_iter()
        .filter_map(|(_, v)| {
            v["choices"][0]["delta"]["tool_calls"][0]["id"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert_signed(&ids[0]);
    assert!(!ids[1].contains("__ts_"));
    let (_, sig) = gemini::split_id(&ids[0]);
    assert_eq!(sig.as_deref(), Some(SIGNATURE));

    let c = anthropic_stream_call();
    let mut observer = TranslatingObserver::new(&c, Dialect::Gemini);
    let out = run(&mut observer, stream.as_bytes(), 4096);
    let ids: Vec<String> = parse_events(&out)
        .into_iter()
        .filter(|(name, _)| name.as_deref() == Some("content_block_start"))
        .filter_map(|(_, v)| v["content_block"]["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 2);
    assert_signed(&ids[0]);
    assert!(!ids[1].contains("__ts_"));
    let (_, sig) = gemini::split_id(&ids[0]);
    assert_eq!(sig.as_deref(), Some(SIGNATURE));
}
