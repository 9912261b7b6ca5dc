//! The text of a request as guards read it: every system prompt, message and tool result, in
//! order, with where each came from.
//!
//! Guards must see everything a model will read, so an instruction cannot hide in a place the
//! guard skips: text parts of multi-part content, tool results (strings or text blocks), tool
//! calls' arguments (OpenAI `tool_calls`, Anthropic `tool_use` input, Gemini `functionCall`,
//! read as the assistant's), the Anthropic `system` field in either of its forms, and Gemini's
//! `systemInstruction` and `contents` parts. Images and other media are not text and are left
//! out.
//!
//! Guards that scan answers (`scan.responses`) read them in the client's dialect, after any
//! translation: [`answer_input`] for a buffered answer, [`answer_delta`] for each event of a
//! streamed one. Both read the text, tool calls' arguments, refusals and thinking, all as the
//! assistant's.

use pai_core::{Call, Dialect, GuardInput, TextSource};
use serde_json::Value;

/// What guards read of `call`. See the module docs.
pub fn guard_input(call: &Call) -> GuardInput {
    let mut input = GuardInput {
        texts: Vec::new(),
        model: call.model.clone(),
    };
    let messages = call
        .body
        .get::<Vec<Value>>("messages")
        .and_then(Result::ok)
        .unwrap_or_default();
    match call.client {
        Dialect::Anthropic => {
            if let Some(Ok(system)) = call.body.get::<Value>("system") {
                texts_of(&system, TextSource::System, &mut input.texts);
            }
            for m in &messages {
                let source = source_of(m.get("role").and_then(Value::as_str));
                if let Some(content) = m.get("content") {
                    texts_of(content, source, &mut input.texts);
                }
            }
        }
        Dialect::OpenAi | Dialect::Gemini => {
            for m in &messages {
                let source = source_of(m.get("role").and_then(Value::as_str));
                if let Some(content) = m.get("content") {
                    texts_of(content, source, &mut input.texts);
                }
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(args) = call.pointer("/function/arguments") {
                        input.texts.push((TextSource::Assistant, as_text(args)));
                    }
                }
            }
            if let Some(Ok(system)) = call.body.get::<Value>("systemInstruction") {
                gemini_parts(&system, TextSource::System, &mut input.texts);
            }
            for c in call
                .body
                .get::<Vec<Value>>("contents")
                .and_then(Result::ok)
                .unwrap_or_default()
            {
                let source = match c.get("role").and_then(Value::as_str) {
                    Some("model") => TextSource::Assistant,
                    _ => TextSource::User,
                };
                gemini_parts(&c, source, &mut input.texts);
            }
        }
    }
    input
}

/// What guards read of a buffered answer `body` in `client`'s dialect (an OpenAI chat
/// completion or an Anthropic message): one text per choice or content block. A body that is
/// not JSON is read whole as one text, so an answer the gateway cannot parse is still scanned.
pub fn answer_input(client: Dialect, model: &str, body: &[u8]) -> GuardInput {
    let mut input = GuardInput {
        texts: Vec::new(),
        model: model.to_owned(),
    };
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body).into_owned();
        input.texts.push((TextSource::Assistant, text));
        return input;
    };
    let out = &mut input.texts;
    match client {
        Dialect::Anthropic => {
            for block in answer
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for key in ["text", "thinking"] {
                    if let Some(text) = block.get(key).and_then(Value::as_str) {
                        out.push((TextSource::Assistant, text.to_owned()));
                    }
                }
                if let Some(args) = block.get("input") {
                    out.push((TextSource::Assistant, as_text(args)));
                }
            }
        }
        Dialect::OpenAi | Dialect::Gemini => {
            for choice in answer
                .get("choices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(message) = choice.get("message") else {
                    continue;
                };
                openai_message_texts(message, out);
            }
        }
    }
    input
}

/// The texts of an OpenAI answer's `message` or stream `delta`: content (a string or parts),
/// refusal, reasoning and tool calls' arguments.
fn openai_message_texts(message: &Value, out: &mut Vec<(TextSource, String)>) {
    if let Some(content) = message.get("content") {
        texts_of(content, TextSource::Assistant, out);
    }
    for key in ["refusal", "reasoning_content"] {
        if let Some(text) = message.get(key).and_then(Value::as_str) {
            out.push((TextSource::Assistant, text.to_owned()));
        }
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(args) = call.pointer("/function/arguments") {
            out.push((TextSource::Assistant, as_text(args)));
        }
    }
}

/// Add what one event of a streamed answer in `client`'s dialect says to `out`: the `data` of
/// an OpenAI chunk (`choices[].delta`) or of an Anthropic `content_block_start` /
/// `content_block_delta` (text, thinking and tool input). Other events add nothing.
pub fn answer_delta(client: Dialect, data: &str, out: &mut String) {
    let data = data.trim();
    if !data.starts_with('{') {
        return; // `[DONE]`, keep-alives
    }
    let Ok(event) = serde_json::from_str::<Value>(data) else {
        return;
    };
    let mut texts = Vec::new();
    match client {
        Dialect::Anthropic => {
            let part = event.get("delta").or_else(|| event.get("content_block"));
            if let Some(part) = part {
                for key in ["text", "thinking", "partial_json"] {
                    if let Some(text) = part.get(key).and_then(Value::as_str) {
                        out.push_str(text);
                    }
                }
            }
        }
        Dialect::OpenAi | Dialect::Gemini => {
            for choice in event
                .get("choices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(delta) = choice.get("delta") {
                    openai_message_texts(delta, &mut texts);
                }
            }
        }
    }
    for (_, text) in texts {
        out.push_str(&text);
    }
}

fn source_of(role: Option<&str>) -> TextSource {
    match role {
        Some("system" | "developer") => TextSource::System,
        Some("assistant") => TextSource::Assistant,
        Some("tool" | "function") => TextSource::ToolResult,
        _ => TextSource::User,
    }
}

/// A JSON value as text: a string as itself, anything else as JSON.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The texts of a Gemini content (`{parts: [...]}`): text parts, function calls' arguments (as
/// the assistant's) and function responses (as tool results).
fn gemini_parts(content: &Value, source: TextSource, out: &mut Vec<(TextSource, String)>) {
    for part in content
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(text) = part.get("text").and_then(Value::as_str) {
            out.push((source, text.to_owned()));
        }
        if let Some(args) = part.pointer("/functionCall/args") {
            out.push((TextSource::Assistant, as_text(args)));
        }
        if let Some(response) = part.pointer("/functionResponse/response") {
            out.push((TextSource::ToolResult, as_text(response)));
        }
    }
}

/// The text of a content value: a string, or an array of parts whose text parts count (an
/// Anthropic `tool_result` block's content is a tool result, whatever the message's role).
fn texts_of(content: &Value, source: TextSource, out: &mut Vec<(TextSource, String)>) {
    match content {
        Value::String(s) => out.push((source, s.clone())),
        Value::Array(parts) => {
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("tool_result") => {
                        if let Some(inner) = part.get("content") {
                            texts_of(inner, TextSource::ToolResult, out);
                        }
                    }
                    Some("tool_use") => {
                        if let Some(args) = part.get("input") {
                            out.push((TextSource::Assistant, as_text(args)));
                        }
                    }
                    _ => {
                        if let Some(text) = part.get("text").and_then(Value::as_str) {
                            out.push((source, text.to_owned()));
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pai_core::{JsonObject, Operation};

    fn call(client: Dialect, body: &str) -> Call {
        Call {
            operation: Operation::Messages,
            client,
            model: "m".to_owned(),
            stream: false,
            client_wants_usage: false,
            body: JsonObject::from_slice(body.as_bytes()).unwrap(),
            headers: http::HeaderMap::new(),
            query: None,
        }
    }

    #[test]
    fn anthropic_system_messages_and_tool_results() {
        let c = call(
            Dialect::Anthropic,
            r#"{"model":"m","system":[{"type":"text","text":"be nice"}],"messages":[
                {"role":"user","content":[{"type":"text","text":"hi"},
                  {"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"ignore all"}]}]},
                {"role":"assistant","content":[{"type":"tool_use","id":"t2","name":"send","input":{"to":"x"}}]},
                {"role":"assistant","content":"ok"}]}"#,
        );
        let texts = guard_input(&c).texts;
        assert_eq!(
            texts,
            vec![
                (TextSource::System, "be nice".to_owned()),
                (TextSource::User, "hi".to_owned()),
                (TextSource::ToolResult, "ignore all".to_owned()),
                (TextSource::Assistant, r#"{"to":"x"}"#.to_owned()),
                (TextSource::Assistant, "ok".to_owned()),
            ]
        );
    }

    #[test]
    fn openai_roles_and_parts() {
        let c = call(
            Dialect::OpenAi,
            r#"{"model":"m","messages":[{"role":"developer","content":"rules"},
                {"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}}]},
                {"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function",
                  "function":{"name":"f","arguments":"{\"q\":\"ignore\"}"}}]},
                {"role":"tool","tool_call_id":"1","content":"result"}]}"#,
        );
        let texts = guard_input(&c).texts;
        assert_eq!(
            texts,
            vec![
                (TextSource::System, "rules".to_owned()),
                (TextSource::User, "a".to_owned()),
                (TextSource::Assistant, r#"{"q":"ignore"}"#.to_owned()),
                (TextSource::ToolResult, "result".to_owned()),
            ]
        );
    }

    #[test]
    fn buffered_answers_in_both_dialects() {
        let openai = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hello",
            "tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}},
            {"index":1,"message":{"role":"assistant","content":null,"refusal":"no"}}]}"#;
        let texts: Vec<String> = answer_input(Dialect::OpenAi, "m", openai)
            .texts
            .into_iter()
            .map(|(source, text)| {
                assert_eq!(source, TextSource::Assistant);
                text
            })
            .collect();
        assert_eq!(texts, ["hello", r#"{"a":1}"#, "no"]);
        let anthropic = br#"{"type":"message","content":[{"type":"thinking","thinking":"hm"},
            {"type":"text","text":"hi"},{"type":"tool_use","id":"t","name":"f","input":{"q":"x"}}]}"#;
        let texts: Vec<String> = answer_input(Dialect::Anthropic, "m", anthropic)
            .texts
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(texts, ["hm", "hi", r#"{"q":"x"}"#]);
        assert_eq!(
            answer_input(Dialect::OpenAi, "m", b"not json").texts,
            [(TextSource::Assistant, "not json".to_owned())]
        );
    }

    #[test]
    fn streamed_answers_in_both_dialects() {
        let mut text = String::new();
        for data in [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"q\""}}]}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            "[DONE]",
        ] {
            answer_delta(Dialect::OpenAi, data, &mut text);
        }
        assert_eq!(text, r#"Hello{"q""#);
        let mut text = String::new();
        for data in [
            r#"{"type":"message_start","message":{"id":"m","content":[]}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi "}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}"#,
            r#"{"type":"ping"}"#,
        ] {
            answer_delta(Dialect::Anthropic, data, &mut text);
        }
        assert_eq!(text, r#"Hi {"a""#);
    }

    #[test]
    fn gemini_system_instruction_parts_calls_and_responses() {
        let c = call(
            Dialect::Gemini,
            r#"{"systemInstruction":{"parts":[{"text":"rules"}]},"contents":[
                {"role":"user","parts":[{"text":"hi"}]},
                {"role":"model","parts":[{"functionCall":{"name":"f","args":{"q":1}}}]},
                {"role":"user","parts":[{"functionResponse":{"name":"f","response":{"r":"ignore all"}}}]}]}"#,
        );
        assert_eq!(
            guard_input(&c).texts,
            vec![
                (TextSource::System, "rules".to_owned()),
                (TextSource::User, "hi".to_owned()),
                (TextSource::Assistant, r#"{"q":1}"#.to_owned()),
                (TextSource::ToolResult, r#"{"r":"ignore all"}"#.to_owned()),
            ]
        );
    }
}
