//! The Anthropic Messages dialect: keys, requests, replies, streams and errors.

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::completion::Dialect;
use crate::config::MockConfig;
use crate::prompt::Prompt;
use crate::reply::{Call, Piece, Reply, ReplyBody};
use crate::response::{self, MockResponse, Refusal};
use crate::sse::{Event, Phase, Script};

/// The Anthropic Messages dialect.
pub(crate) struct Anthropic;

impl Dialect for Anthropic {
    fn authorize(&self, config: &MockConfig, headers: &HeaderMap) -> Result<(), Refusal> {
        if config.require_anthropic_version && !headers.contains_key("anthropic-version") {
            return Err(invalid("anthropic-version: header is required"));
        }
        let Some(expected) = &config.anthropic_key else {
            return Ok(());
        };
        match key(headers) {
            Some(key) if key == expected => Ok(()),
            Some(_) => Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid x-api-key",
            ))),
            None => Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "x-api-key header is required",
            ))),
        }
    }

    fn malformed(&self, error: &serde_json::Error) -> MockResponse {
        *invalid(&format!(
            "There was an issue with the request body: {error}"
        ))
    }

    fn read_prompt(&self, request: &Value) -> Result<Prompt, Refusal> {
        let prompt = read_counted(request)?;
        match &request["max_tokens"] {
            Value::Null => Err(invalid("max_tokens: Field required")),
            Value::Number(n) if n.is_u64() => Ok(prompt),
            _ => Err(invalid("max_tokens: Input should be a valid integer")),
        }
    }

    fn failure(&self, status: StatusCode) -> MockResponse {
        let (kind, message) = match status.as_u16() {
            400 => (
                "invalid_request_error",
                "The mock upstream rejected the request.",
            ),
            401 => ("authentication_error", "invalid x-api-key"),
            403 => (
                "permission_error",
                "Your API key does not have permission to use the specified resource.",
            ),
            404 => (
                "not_found_error",
                "The requested resource could not be found.",
            ),
            413 => (
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes.",
            ),
            429 => (
                "rate_limit_error",
                "Number of requests has exceeded your rate limit (mock).",
            ),
            504 => ("timeout_error", "Request timed out."),
            529 => ("overloaded_error", "Overloaded"),
            500..=599 => ("api_error", "Internal server error"),
            _ => (
                "invalid_request_error",
                "The mock upstream rejected the request.",
            ),
        };
        error(status, kind, message)
    }

    fn complete(&self, reply: &Reply, prompt: &Prompt) -> Value {
        let mut content = Vec::new();
        if reply.thinks() {
            content.push(
                json!({"type": "thinking", "thinking": reply.thinking_text(),
                "signature": signature(reply)}),
            );
        }
        if matches!(reply.body, ReplyBody::Text { .. }) || reply.preamble() {
            content.push(json!({"type": "text", "text": reply.text()}));
        }
        for call in reply.calls() {
            content.push(json!({
                "type": "tool_use",
                "id": tool_use_id(reply, &call),
                "name": call.name,
                "input": call.input(),
            }));
        }
        let stop_reason = match reply.body {
            ReplyBody::Text { .. } => "end_turn",
            ReplyBody::Tool { .. } => "tool_use",
        };
        let mut usage = json!({
            "input_tokens": reply.usage.input,
            "output_tokens": reply.usage.output,
            "cache_creation_input_tokens": reply.usage.cache_write,
            "cache_read_input_tokens": reply.usage.cache_read,
        });
        with_thinking_tokens(&mut usage, reply.usage.reasoning);
        json!({
            "id": message_id(reply),
            "type": "message",
            "role": "assistant",
            "model": prompt.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": usage,
        })
    }

    fn stream(&self, reply: &Reply, prompt: &Prompt) -> Script {
        let usage = reply.usage;
        let mut delta_usage = json!({"output_tokens": usage.output});
        with_thinking_tokens(&mut delta_usage, usage.reasoning);
        let message_start = json!({
            "type": "message_start",
            "message": {
                "id": message_id(reply),
                "type": "message",
                "role": "assistant",
                "model": prompt.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {
                    "input_tokens": usage.input,
                    "cache_creation_input_tokens": usage.cache_write,
                    "cache_read_input_tokens": usage.cache_read,
                    "output_tokens": 1,
                },
            },
        });
        let calls = reply.calls();
        let preamble = reply.preamble();
        // Reasoning comes first, in a block of its own: the answer's blocks follow it.
        let thinks = reply.thinks();
        let offset = usize::from(thinks);
        let block = {
            let seq = reply.seq;
            move |index: usize| match index.checked_sub(usize::from(preamble)) {
                Some(call) if call < calls.len() => {
                    let call = &calls[call];
                    json!({
                        "type": "tool_use",
                        "id": format!("toolu_mock_{seq}{}", call.id_suffix()),
                        "name": call.name,
                        "input": {},
                    })
                }
                _ => json!({"type": "text", "text": ""}),
            }
        };
        let stop_reason = match reply.body {
            ReplyBody::Text { .. } => "end_turn",
            ReplyBody::Tool { .. } => "tool_use",
        };
        let blocks = reply.calls().len() + usize::from(preamble || reply.calls().is_empty());
        let first_block = if thinks {
            json!({"type": "thinking", "thinking": "", "signature": ""})
        } else {
            block(0)
        };
        let mut head = vec![
            event(Phase::Head, "message_start", &message_start),
            event(
                Phase::Head,
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0, "content_block": first_block}),
            ),
            event(Phase::Head, "ping", &json!({"type": "ping"})),
        ];
        if thinks {
            head.extend(thinking_events(reply));
            head.push(event(
                Phase::Boundary,
                "content_block_start",
                &json!({"type": "content_block_start", "index": 1, "content_block": block(0)}),
            ));
        }
        // Every switch of block stops the one before and starts the next.
        let mut current = 0;
        let content = reply.pieces().flat_map(move |piece| {
            let index = piece.block(preamble);
            let mut events = Vec::with_capacity(3);
            if index != current {
                events.push(event(
                    Phase::Boundary,
                    "content_block_stop",
                    &json!({"type": "content_block_stop", "index": current + offset}),
                ));
                events.push(event(
                    Phase::Boundary,
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index + offset, "content_block": block(index)}),
                ));
                current = index;
            }
            let delta = match piece {
                Piece::Text(text) => json!({"type": "text_delta", "text": text}),
                Piece::Arguments { json, .. } => {
                    json!({"type": "input_json_delta", "partial_json": json})
                }
            };
            events.push(event(
                Phase::Content,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index + offset, "delta": delta}),
            ));
            events
        });
        let tail = [
            event(
                Phase::Tail,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": blocks - 1 + offset}),
            ),
            event(
                Phase::Tail,
                "message_delta",
                &json!({
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                    "usage": delta_usage,
                }),
            ),
            event(
                Phase::Tail,
                "message_stop",
                &json!({"type": "message_stop"}),
            ),
        ];
        Script {
            events: Box::new(head.into_iter().chain(content).chain(tail)),
            content_total: reply.thinking.len() + reply.piece_count(),
            error: event(
                Phase::Tail,
                "error",
                &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
            crlf: false,
        }
    }
}

/// `POST /v1/messages/count_tokens`.
pub(crate) fn count_tokens(request: &Value) -> MockResponse {
    match read_counted(request) {
        Ok(prompt) => response::json(
            StatusCode::OK,
            &json!({"input_tokens": prompt.input_tokens()}),
        ),
        Err(refusal) => *refusal,
    }
}

/// `GET /v1/models`.
pub(crate) fn models() -> MockResponse {
    let model = |id: &str, name: &str, created: &str| json!({"type": "model", "id": id, "display_name": name, "created_at": created});
    response::json(
        StatusCode::OK,
        &json!({
            "data": [
                model("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
                model("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
            ],
            "has_more": false,
            "first_id": "claude-sonnet-4-5",
            "last_id": "claude-haiku-4-5",
        }),
    )
}

/// An error in Anthropic's shape.
pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> MockResponse {
    response::json(
        status,
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

fn invalid(message: &str) -> Refusal {
    Box::new(error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
    ))
}

/// The fields `messages` and `count_tokens` share: model, messages, system and tools.
fn read_counted(request: &Value) -> Result<Prompt, Refusal> {
    let model = match &request["model"] {
        Value::String(model) if !model.is_empty() => model,
        Value::Null => return Err(invalid("model: Field required")),
        _ => return Err(invalid("model: Input should be a valid string")),
    };
    let messages = match &request["messages"] {
        Value::Array(messages) if messages.is_empty() => {
            return Err(invalid("messages: at least one message is required"))
        }
        Value::Array(messages) => messages,
        Value::Null => return Err(invalid("messages: Field required")),
        _ => return Err(invalid("messages: Input should be a valid list")),
    };
    let chars = text(&request["system"], false).chars().count()
        + messages
            .iter()
            .map(|m| text(&m["content"], true).chars().count())
            .sum::<usize>();
    let directive_text = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| text(&m["content"], false))
        .unwrap_or_default();
    Ok(Prompt {
        model: model.clone(),
        stream: request["stream"].as_bool().unwrap_or(false),
        include_usage: false,
        chars,
        directive_text,
        first_tool: request["tools"][0]["name"].as_str().map(str::to_owned),
        shape: crate::shape::from_anthropic(request, &text(&request["system"], false)),
    })
}

/// The text of a `system` or message `content`: the string, or its `text` blocks joined (and,
/// with `tool_results`, the text of `tool_result` blocks).
fn text(content: &Value, tool_results: bool) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|block| match block["type"].as_str() {
                Some("text") => block["text"].as_str().unwrap_or_default().to_owned(),
                Some("tool_result") if tool_results => text(&block["content"], false),
                _ => String::new(),
            })
            .collect(),
        _ => String::new(),
    }
}

fn key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key") {
        return key.to_str().ok();
    }
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn event(phase: Phase, name: &'static str, data: &Value) -> Event {
    Event::new(phase, Some(name), data.to_string())
}

fn message_id(reply: &Reply) -> String {
    format!("msg_mock_{}", reply.seq)
}

/// The signature of the reply's reasoning, which Anthropic clients send back with it.
fn signature(reply: &Reply) -> String {
    format!("mock-signature-{}", reply.seq)
}

/// The reasoning of a stream in block 0, as the API sends it: its words as `thinking_delta`s,
/// then the signature in a `signature_delta` just before the block stops.
fn thinking_events(reply: &Reply) -> Vec<Event> {
    let delta = |phase, delta: Value| {
        event(
            phase,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        )
    };
    let mut events: Vec<Event> = reply
        .thinking
        .iter()
        .map(|word| {
            delta(
                Phase::Content,
                json!({"type": "thinking_delta", "thinking": word}),
            )
        })
        .collect();
    events.push(delta(
        Phase::Boundary,
        json!({"type": "signature_delta", "signature": signature(reply)}),
    ));
    events.push(event(
        Phase::Boundary,
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events
}

fn tool_use_id(reply: &Reply, call: &Call) -> String {
    format!("toolu_mock_{}{}", reply.seq, call.id_suffix())
}

/// `output_tokens_details.thinking_tokens`, sent only when the reply thought, as the API does
/// for models and requests without extended thinking.
fn with_thinking_tokens(usage: &mut serde_json::Value, thinking: u64) {
    if thinking > 0 {
        usage["output_tokens_details"] = json!({ "thinking_tokens": thinking });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_system_text_and_tool_results_but_reads_directives_from_text_only() {
        let request = json!({
            "model": "m",
            "max_tokens": 10,
            "system": [{"type": "text", "text": "be brief"}],
            "messages": [
                {"role": "user", "content": "[mock:tool]"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "sunny"}]},
            ],
        });
        let prompt = Anthropic.read_prompt(&request).ok().unwrap();
        assert_eq!(prompt.chars, 8 + 11 + 5);
        assert_eq!(prompt.directive_text, "");
        assert_eq!(crate::prompt::input_tokens(prompt.chars), 6);
    }
}
