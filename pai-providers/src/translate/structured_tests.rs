//! Structured output and reasoning in every direction: requests, answers and streams.

use pai_core::Dialect;
use serde_json::{json, Value};

use super::tests::{call, json_of, parse_events, run};
use super::*;

fn person_schema() -> Value {
    json!({"type": "object", "title": "Person",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"], "additionalProperties": false})
}

fn openai_request(extra: Value) -> Call {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "Who?"}]});
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    call(Dialect::OpenAi, body)
}

fn anthropic_request(extra: Value) -> Call {
    let mut body = json!({"model": "m", "max_tokens": 8000,
        "messages": [{"role": "user", "content": "Who?"}]});
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    call(Dialect::Anthropic, body)
}

#[test]
fn json_schemas_from_openai_clients_reach_anthropic_and_gemini() {
    let c = openai_request(json!({"response_format": {"type": "json_schema",
        "json_schema": {"name": "Person", "strict": true, "schema": person_schema()}}}));
    let body = json_of(to_anthropic(&c).unwrap());
    assert_eq!(
        body["output_config"],
        json!({"format": {"type": "json_schema", "schema": {"type": "object", "title": "Person",
            "properties": {"name": {"type": "string"},
                "age": {"type": "integer", "description": "{minimum: 0}"}},
            "additionalProperties": false, "required": ["name", "age"]}}})
    );
    let body = json_of(to_gemini(&c).unwrap());
    assert_eq!(
        body["generationConfig"],
        json!({"responseMimeType": "application/json", "responseJsonSchema": person_schema()})
    );

    let object = openai_request(json!({"response_format": {"type": "json_object"}}));
    let body = json_of(to_anthropic(&object).unwrap());
    assert!(body.get("output_config").is_none());
    assert!(body["system"].as_str().unwrap().contains("one JSON object"));
    let body = json_of(to_gemini(&object).unwrap());
    assert_eq!(
        body["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
    let text = openai_request(json!({"response_format": {"type": "text"}}));
    assert!(json_of(to_anthropic(&text).unwrap())
        .get("output_config")
        .is_none());
}

#[test]
fn output_config_formats_from_anthropic_clients_reach_openai_and_gemini() {
    let c = anthropic_request(
        json!({"output_config": {"format": {"type": "json_schema", "schema": person_schema()}}}),
    );
    let body = json_of(to_openai(&c, "max_completion_tokens").unwrap());
    assert_eq!(
        body["response_format"],
        json!({"type": "json_schema",
            "json_schema": {"name": "response", "schema": person_schema(), "strict": true}})
    );
    // A schema OpenAI's strict mode would refuse (an optional property) goes non-strict.
    let mut loose = person_schema();
    loose["required"] = json!(["name"]);
    let c = anthropic_request(
        json!({"output_config": {"format": {"type": "json_schema", "schema": loose}}}),
    );
    let body = json_of(to_openai(&c, "max_completion_tokens").unwrap());
    assert_eq!(body["response_format"]["json_schema"]["strict"], false);
    let body = json_of(to_gemini(&c).unwrap());
    assert_eq!(
        body["generationConfig"]["responseJsonSchema"]["required"],
        json!(["name"])
    );
    let bad = anthropic_request(json!({"output_config": {"format": {"type": "xml"}}}));
    assert_eq!(to_openai(&bad, "max_tokens").unwrap_err().status(), 400);
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget_within_the_output_bound() {
    let c = openai_request(json!({"reasoning_effort": "high", "temperature": 0.2}));
    let body = json_of(to_anthropic(&c).unwrap());
    // No bound from the client: the default max_tokens holds the budget and the answer.
    assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": DEFAULT_MAX_TOKENS * 3 / 4})
    );
    assert!(body.get("temperature").is_none());
    let c = openai_request(json!({"reasoning_effort": "medium", "max_completion_tokens": 20000}));
    let body = json_of(to_anthropic(&c).unwrap());
    assert_eq!(body["max_tokens"], 20000);
    assert_eq!(body["thinking"]["budget_tokens"], 4096);
    let body = json_of(to_gemini(&c).unwrap());
    assert_eq!(
        body["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 4096, "includeThoughts": true})
    );
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 20000);

    let tight = openai_request(json!({"reasoning_effort": "low", "max_completion_tokens": 500}));
    let e = to_anthropic(&tight).unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("max_completion_tokens"), "{e}");
    let none = openai_request(json!({"reasoning_effort": "none"}));
    assert_eq!(
        json_of(to_anthropic(&none).unwrap())["thinking"],
        json!({"type": "disabled"})
    );
    assert_eq!(
        json_of(to_gemini(&none).unwrap())["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 0})
    );
    let odd = openai_request(json!({"reasoning_effort": "extreme"}));
    assert_eq!(to_anthropic(&odd).unwrap_err().status(), 400);
}

#[test]
fn anthropic_thinking_and_effort_become_reasoning_effort_and_thinking_config() {
    for (extra, effort) in [
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
            "low",
        ),
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": 6000}}),
            "medium",
        ),
        (
            json!({"thinking": {"type": "enabled", "budget_tokens": 30000}}),
            "high",
        ),
        (
            json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}),
            "low",
        ),
        (json!({"thinking": {"type": "adaptive"}}), "high"),
        (json!({"output_config": {"effort": "max"}}), "xhigh"),
    ] {
        let body = json_of(to_openai(&anthropic_request(extra.clone()), "max_tokens").unwrap());
        assert_eq!(body["reasoning_effort"], effort, "{extra}");
    }
    let off = anthropic_request(json!({"thinking": {"type": "disabled"}}));
    assert!(json_of(to_openai(&off, "max_tokens").unwrap())
        .get("reasoning_effort")
        .is_none());
    let budget = anthropic_request(json!({"thinking": {"type": "enabled", "budget_tokens": 2048}}));
    assert_eq!(
        json_of(to_gemini(&budget).unwrap())["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 2048, "includeThoughts": true})
    );
}

#[test]
fn thinking_comes_back_in_answers_with_its_tokens() {
    let upstream = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",
        "content":[{"type":"thinking","thinking":"Let me think.","signature":"sig"},
                   {"type":"text","text":"{\"name\":\"Ada\"}"}],
        "stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":50,
        "output_tokens_details":{"thinking_tokens":30}}}"#;
    let body = json_of(response(&openai_request(json!({})), Dialect::Anthropic, upstream).unwrap());
    assert_eq!(
        body["choices"][0]["message"]["reasoning_content"],
        "Let me think."
    );
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "{\"name\":\"Ada\"}"
    );
    assert_eq!(body["usage"]["completion_tokens"], 50);
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        30
    );

    let upstream = br#"{"choices":[{"message":{"role":"assistant","content":"hi",
        "reasoning_content":"Thought."},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":5,"completion_tokens":40,"completion_tokens_details":{"reasoning_tokens":32}}}"#;
    let body = json_of(response(&anthropic_request(json!({})), Dialect::OpenAi, upstream).unwrap());
    assert_eq!(
        body["content"],
        json!([{"type": "thinking", "thinking": "Thought.", "signature": ""},
               {"type": "text", "text": "hi"}])
    );
    assert_eq!(body["usage"]["output_tokens"], 40);
    assert_eq!(
        body["usage"]["output_tokens_details"]["thinking_tokens"],
        32
    );

    let upstream = br#"{"candidates":[{"content":{"role":"model","parts":[
        {"text":"Pondering.","thought":true},{"text":"hi"}]},"finishReason":"STOP"}],
        "usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"thoughtsTokenCount":20}}"#;
    let body = json_of(response(&anthropic_request(json!({})), Dialect::Gemini, upstream).unwrap());
    assert_eq!(body["content"][0]["thinking"], "Pondering.");
    assert_eq!(body["usage"]["output_tokens"], 22);
    assert_eq!(
        body["usage"]["output_tokens_details"]["thinking_tokens"],
        20
    );
}

const ANTHROPIC_THINKING_STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Hmm.\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":1}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":25,\"output_tokens_details\":{\"thinking_tokens\":20}}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

#[test]
fn streamed_thinking_crosses_dialects_with_its_tokens() {
    let c = call(
        Dialect::OpenAi,
        json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "x"}]}),
    );
    let mut observer = TranslatingObserver::new(&c, Dialect::Anthropic);
    let out = run(&mut observer, ANTHROPIC_THINKING_STREAM.as_bytes(), 7);
    let chunks: Vec<Value> = parse_events(&out).into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        chunks[1]["choices"][0]["delta"],
        json!({"reasoning_content": "Hmm."})
    );
    assert_eq!(chunks[2]["choices"][0]["delta"], json!({"content": "Hi"}));
    let usage = &chunks[chunks.len() - 2]["usage"];
    assert_eq!(usage["completion_tokens"], 25);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 20);

    // And back: an OpenAI-compatible upstream's reasoning_content becomes a thinking block.
    let upstream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning_content\":\"Hmm.\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":25,\"completion_tokens_details\":{\"reasoning_tokens\":20}}}\n\n\
data: [DONE]\n\n";
    let c = call(
        Dialect::Anthropic,
        json!({"model": "m", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
    );
    let mut observer = TranslatingObserver::new(&c, Dialect::OpenAi);
    let events = parse_events(&run(&mut observer, upstream.as_bytes(), 9));
    let names: Vec<&str> = events.iter().filter_map(|(n, _)| n.as_deref()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[1].1["content_block"]["type"], "thinking");
    assert_eq!(
        events[2].1["delta"],
        json!({"type": "thinking_delta", "thinking": "Hmm."})
    );
    assert_eq!(
        events[7].1["usage"]["output_tokens_details"]["thinking_tokens"],
        20
    );
}
