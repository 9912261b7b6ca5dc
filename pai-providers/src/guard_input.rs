//! The text of a request as guards read it: every system prompt, message and tool result, in
//! order, with where each came from.
//!
//! Guards must see everything a model will read, so an instruction cannot hide in a place the
//! guard skips: text parts of multi-part content, tool results (strings or text blocks), tool
//! calls' arguments (OpenAI `tool_calls`, Anthropic `tool_use` input, Gemini `functionCall`,
//! read as the assistant's), the Anthropic `system` field in either of its forms, and Gemini's
//! `systemInstruction` and `contents` parts. Images and other media are not text and are left
//! out.

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
