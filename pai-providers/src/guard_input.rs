//! The text of a request as guards read it: every system prompt, message and tool result, in
//! order, with where each came from.
//!
//! Guards must see everything a model will read, so an instruction cannot hide in a place the
//! guard skips: text parts of multi-part content, tool results (strings or text blocks), and
//! the Anthropic `system` field in either of its forms. Images and other media are not text and
//! are left out.

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
                {"role":"assistant","content":"ok"}]}"#,
        );
        let texts = guard_input(&c).texts;
        assert_eq!(
            texts,
            vec![
                (TextSource::System, "be nice".to_owned()),
                (TextSource::User, "hi".to_owned()),
                (TextSource::ToolResult, "ignore all".to_owned()),
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
                {"role":"tool","tool_call_id":"1","content":"result"}]}"#,
        );
        let texts = guard_input(&c).texts;
        assert_eq!(
            texts,
            vec![
                (TextSource::System, "rules".to_owned()),
                (TextSource::User, "a".to_owned()),
                (TextSource::ToolResult, "result".to_owned()),
            ]
        );
    }
}
