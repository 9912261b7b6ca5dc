//! The OpenAI Chat Completions dialect: keys, requests, replies, streams and errors.

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use crate::completion::Dialect;
use crate::config::MockConfig;
use crate::prompt::Prompt;
use crate::reply::{Call, Piece, Reply, ReplyBody};
use crate::response::{self, MockResponse, Refusal};
use crate::sse::{Event, Phase, Script};

/// The OpenAI Chat Completions dialect.
pub(crate) struct OpenAi;

impl Dialect for OpenAi {
    fn authorize(&self, config: &MockConfig, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(expected) = &config.openai_key else {
            return Ok(());
        };
        match bearer(headers) {
            Some(key) if key == expected => Ok(()),
            Some(key) => Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                &format!("Incorrect API key provided: {}.", mask(key)),
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ))),
            None => Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "You didn't provide an API key. You need to provide your API key in an \
                 Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
                None,
            ))),
        }
    }

    fn malformed(&self, _: &serde_json::Error) -> MockResponse {
        *invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but \
             what was sent was not valid JSON.)",
            None,
            None,
        )
    }

    fn read_prompt(&self, request: &Value) -> Result<Prompt, Refusal> {
        let Some(model) = request["model"].as_str().filter(|m| !m.is_empty()) else {
            return Err(invalid("you must provide a model parameter", None, None));
        };
        read_chat(request, model)
    }

    fn failure(&self, status: StatusCode) -> MockResponse {
        failure(status)
    }

    fn complete(&self, reply: &Reply, prompt: &Prompt) -> Value {
        complete(reply, prompt)
    }

    fn stream(&self, reply: &Reply, prompt: &Prompt) -> Script {
        stream(reply, prompt)
    }
}

/// Validates a chat request whose model is `model` (from the body, or from the path as Azure
/// has it) and reads what the reply depends on.
pub(crate) fn read_chat(request: &Value, model: &str) -> Result<Prompt, Refusal> {
    let messages = match &request["messages"] {
        Value::Array(messages) if messages.is_empty() => {
            return Err(invalid(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, \
                     but got an empty array instead.",
                Some("messages"),
                Some("empty_array"),
            ))
        }
        Value::Array(messages) => messages,
        Value::Null => {
            return Err(invalid(
                "Missing required parameter: 'messages'.",
                Some("messages"),
                Some("missing_required_parameter"),
            ))
        }
        _ => {
            return Err(invalid(
                "Invalid type for 'messages': expected an array of objects.",
                Some("messages"),
                Some("invalid_type"),
            ))
        }
    };
    let chars = messages
        .iter()
        .map(|m| text(&m["content"]).chars().count())
        .sum();
    // A tool result is the user's turn: it ends the directives of the prompt before it,
    // as it does once translated into an Anthropic user turn.
    let directive_text = messages
        .iter()
        .rev()
        .find(|m| matches!(m["role"].as_str(), Some("user" | "tool")))
        .filter(|m| m["role"] == "user")
        .map(|m| text(&m["content"]))
        .unwrap_or_default();
    Ok(Prompt {
        model: model.to_owned(),
        stream: request["stream"].as_bool().unwrap_or(false),
        include_usage: request["stream_options"]["include_usage"].as_bool() == Some(true),
        chars,
        directive_text,
        first_tool: request["tools"][0]["function"]["name"]
            .as_str()
            .map(str::to_owned),
        shape: crate::shape::from_openai(request),
    })
}

/// The error a `status=S` directive answers with.
pub(crate) fn failure(status: StatusCode) -> MockResponse {
    let (message, kind, code) = match status.as_u16() {
        401 => (
            "Incorrect API key provided: mock***ed.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => (
            "Country, region, or territory not supported",
            "request_forbidden",
            Some("unsupported_country_region_territory"),
        ),
        404 => (
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        429 => (
            "Rate limit reached for requests (mock).",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        500..=599 => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        _ => (
            "The mock upstream rejected the request.",
            "invalid_request_error",
            None,
        ),
    };
    error(status, message, kind, None, code)
}

/// The whole answer of a non-streaming request.
pub(crate) fn complete(reply: &Reply, prompt: &Prompt) -> Value {
    let (message, finish_reason) = match &reply.body {
        ReplyBody::Text { .. } => (
            json!({"role": "assistant", "content": reply.text(), "refusal": null}),
            "stop",
        ),
        ReplyBody::Tool { preamble, .. } => {
            let calls: Vec<Value> = reply
                .calls()
                .iter()
                .map(|call| {
                    json!({
                        "id": tool_call_id(reply, call),
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments()},
                    })
                })
                .collect();
            let content = if *preamble {
                json!(reply.text())
            } else {
                Value::Null
            };
            (
                json!({
                    "role": "assistant",
                    "content": content,
                    "tool_calls": calls,
                    "refusal": null,
                }),
                "tool_calls",
            )
        }
    };
    let mut message = message;
    // Reasoning shown the way OpenAI-compatible servers (vLLM, DeepSeek) show it.
    if reply.thinks() {
        message["reasoning_content"] = json!(reply.thinking_text());
    }
    json!({
        "id": completion_id(reply),
        "object": "chat.completion",
        "created": now(),
        "model": prompt.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": usage(reply),
        "system_fingerprint": "fp_mock",
    })
}

/// The events of a streaming answer. A tool call opens with a delta carrying its `index` (per
/// call, from 0), `id`, `type` and `name` with empty `arguments`, in the first chunk when the
/// reply starts with it, else in a chunk of its own; its arguments follow under the same index.
pub(crate) fn stream(reply: &Reply, prompt: &Prompt) -> Script {
    let chunks = Chunks {
        id: completion_id(reply),
        created: now(),
        model: prompt.model.clone(),
        include_usage: prompt.include_usage,
    };
    let calls = reply.calls();
    let header = {
        let seq = reply.seq;
        move |call: &Call| {
            json!({
                "index": call.index,
                "id": format!("call_mock_{seq}{}", call.id_suffix()),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            })
        }
    };
    // The first chunk opens the first call when there is nothing to say before it.
    let said_first = reply.preamble() || reply.thinks();
    let (first_delta, finish_reason, mut opened) = match (calls.first(), said_first) {
        (Some(first), false) => (
            json!({"role": "assistant", "content": null, "tool_calls": [header(first)]}),
            "tool_calls",
            Some(0),
        ),
        (Some(_), true) => (
            json!({"role": "assistant", "content": ""}),
            "tool_calls",
            None,
        ),
        (None, _) => (json!({"role": "assistant", "content": ""}), "stop", None),
    };
    let mut head = vec![chunks.event(Phase::Head, first_delta, Value::Null)];
    // Reasoning first, the way OpenAI-compatible servers (vLLM, DeepSeek) stream it.
    head.extend(reply.thinking.iter().map(|word| {
        chunks.event(
            Phase::Content,
            json!({"reasoning_content": word}),
            Value::Null,
        )
    }));
    let mut tail = vec![chunks.event(Phase::Tail, json!({}), json!(finish_reason))];
    if prompt.include_usage {
        tail.push(chunks.usage(usage(reply)));
    }
    tail.push(Event::new(Phase::Tail, None, "[DONE]"));
    let content = reply.pieces().flat_map(move |piece| {
        let mut events = Vec::with_capacity(2);
        match piece {
            Piece::Text(text) => {
                events.push(chunks.event(Phase::Content, json!({"content": text}), Value::Null));
            }
            Piece::Arguments { call, json } => {
                if opened != Some(call) {
                    opened = Some(call);
                    let delta = json!({"tool_calls": [header(&calls[call])]});
                    events.push(chunks.event(Phase::Boundary, delta, Value::Null));
                }
                let delta =
                    json!({"tool_calls": [{"index": call, "function": {"arguments": json}}]});
                events.push(chunks.event(Phase::Content, delta, Value::Null));
            }
        }
        events
    });
    Script {
        events: Box::new(head.into_iter().chain(content).chain(tail)),
        content_total: reply.thinking.len() + reply.piece_count(),
        error: Event::new(
            Phase::Tail,
            None,
            json!({"error": {"message": "mock upstream failure", "type": "server_error"}})
                .to_string(),
        ),
        crlf: false,
    }
}

/// `GET /v1/models`.
pub(crate) fn models() -> MockResponse {
    let model = |id: &str, created: u64| json!({"id": id, "object": "model", "created": created, "owned_by": "system"});
    response::json(
        StatusCode::OK,
        &json!({
            "object": "list",
            "data": [model("gpt-4o", 1_715_367_049), model("gpt-4o-mini", 1_721_172_741)],
        }),
    )
}

/// An error in OpenAI's shape.
pub(crate) fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> MockResponse {
    response::json(
        status,
        &json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
    )
}

fn invalid(message: &str, param: Option<&str>, code: Option<&str>) -> Refusal {
    Box::new(error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        param,
        code,
    ))
}

/// The chunks of one stream, which share an id, a timestamp and a model.
struct Chunks {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl Chunks {
    fn base(&self, choices: Value) -> Map<String, Value> {
        let mut chunk = Map::new();
        chunk.insert("id".into(), json!(self.id));
        chunk.insert("object".into(), json!("chat.completion.chunk"));
        chunk.insert("created".into(), json!(self.created));
        chunk.insert("model".into(), json!(self.model));
        chunk.insert("system_fingerprint".into(), json!("fp_mock"));
        chunk.insert("choices".into(), choices);
        chunk
    }

    fn event(&self, phase: Phase, delta: Value, finish_reason: Value) -> Event {
        let choice = json!({
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        });
        let mut chunk = self.base(json!([choice]));
        if self.include_usage {
            chunk.insert("usage".into(), Value::Null);
        }
        Event::new(phase, None, Value::Object(chunk).to_string())
    }

    fn usage(&self, usage: Value) -> Event {
        let mut chunk = self.base(json!([]));
        chunk.insert("usage".into(), usage);
        Event::new(Phase::Tail, None, Value::Object(chunk).to_string())
    }
}

fn usage(reply: &Reply) -> Value {
    let usage = reply.usage;
    // OpenAI has no cache-write field: written tokens are simply part of the prompt.
    let prompt = usage.prompt_total();
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": usage.output,
        "total_tokens": prompt.saturating_add(usage.output),
        "prompt_tokens_details": {"cached_tokens": usage.cache_read},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
    })
}

fn completion_id(reply: &Reply) -> String {
    format!("chatcmpl-mock-{}", reply.seq)
}

fn tool_call_id(reply: &Reply, call: &Call) -> String {
    format!("call_mock_{}{}", reply.seq, call.id_suffix())
}

/// The text of a message's content: the string, or its `text` parts joined.
fn text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|part| part["type"] == "text")
            .filter_map(|part| part["text"].as_str())
            .collect(),
        _ => String::new(),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// A key as OpenAI echoes it in a 401: `sk-ab***yz`.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 8 {
        return key.to_owned();
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}***{tail}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keys_like_openai() {
        assert_eq!(mask("sk-abcdefghxyz"), "sk-ab***yz");
        assert_eq!(mask("short"), "short");
    }

    #[test]
    fn directives_come_from_the_last_user_turn_only() {
        let request = json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "[mock:tool] go"}]},
                {"role": "assistant", "content": null, "tool_calls": []},
                {"role": "tool", "tool_call_id": "c", "content": "sunny"},
            ],
        });
        let prompt = OpenAi.read_prompt(&request).ok().unwrap();
        assert_eq!(prompt.directive_text, "");
        assert_eq!(prompt.chars, 3 + 14 + 5);
    }
}
