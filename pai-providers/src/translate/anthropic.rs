//! Reading and writing the Anthropic Messages dialect.
//!
//! Read from clients: `system` (a string or text blocks), `messages` with text, image
//! (base64 or URL), `tool_use` and `tool_result` blocks, custom `tools`, `tool_choice` (with
//! `disable_parallel_tool_use`), `max_tokens`, `stop_sequences`, `temperature`, `top_p`,
//! `top_k`, `metadata.user_id`, `output_config.format` (JSON Schema; the older top-level
//! `output_format` too), `thinking` (`enabled` with `budget_tokens`, `adaptive`, `disabled`)
//! and `output_config.effort`. `thinking` blocks in the history are dropped (no other dialect can
//! carry their signatures); `cache_control` marks are dropped; server tools (`web_search_…`,
//! `bash_…`) and document blocks are refused.
//!
//! Written to Anthropic upstreams: `max_tokens` is required there, so a request that names no
//! limit gets [`super::DEFAULT_MAX_TOKENS`]. `temperature` above 1 (OpenAI allows up to 2) is
//! lowered to 1, Anthropic's maximum. A JSON Schema becomes `output_config.format`, fitted by
//! [`super::schema::for_anthropic`]; `json_object` (Messages has no "any object" mode) becomes
//! an instruction appended to the system prompt. A reasoning effort becomes
//! `thinking: {type: enabled, budget_tokens}` with the effort's budget, kept within three
//! quarters of `max_tokens` (which counts thinking), so the output bound the gateway reserved
//! for still holds; a bound too small for Anthropic's minimum budget of 1024 is refused with a
//! 400. With thinking on, `temperature`, `top_p` and `top_k` are left out (the API refuses them
//! then).

use pai_core::{Error, Usage};
use serde_json::{json, Map, Value};

use super::ir::{
    anthropic_usage, status_for_error_type, str_field, stream_error, strings, Delta, Effort,
    Finish, Image, Message, Part, Reasoning, Request, Response, ResponseFormat, Role, Tool,
    ToolChoice,
};
use super::openai::push;
use super::DEFAULT_MAX_TOKENS;
use crate::anthropic::usage::WireUsage;
use crate::errors::describe_value;

// === reading requests ===

/// A client's Messages body.
pub(crate) fn read_request(body: &Map<String, Value>) -> Result<Request, Error> {
    let mut req = Request {
        max_tokens: body.get("max_tokens").and_then(Value::as_u64),
        stop: body.get("stop_sequences").map(strings).unwrap_or_default(),
        temperature: body.get("temperature").and_then(Value::as_f64),
        top_p: body.get("top_p").and_then(Value::as_f64),
        top_k: body.get("top_k").and_then(Value::as_u64),
        user: body
            .get("metadata")
            .and_then(|m| str_field(m, "user_id"))
            .map(str::to_owned),
        stream: body.get("stream").and_then(Value::as_bool) == Some(true),
        ..Request::default()
    };
    match body.get("system") {
        Some(Value::String(s)) if !s.is_empty() => req.system.push(s.clone()),
        Some(Value::Array(blocks)) => {
            let text: Vec<&str> = blocks.iter().filter_map(|b| str_field(b, "text")).collect();
            if !text.is_empty() {
                req.system.push(text.join("\n\n"));
            }
        }
        _ => {}
    }
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid_param("messages", "messages must be an array"))?;
    for message in messages {
        let role = match str_field(message, "role") {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            // Claude Code puts a system message inside `messages` for models it does not know
            // (a beta the real API accepts); it joins the system prompt.
            Some("system") => {
                let text = match message.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(blocks)) => blocks
                        .iter()
                        .filter_map(|b| str_field(b, "text"))
                        .collect::<Vec<_>>()
                        .join("\n\n"),
                    _ => String::new(),
                };
                if !text.is_empty() {
                    req.system.push(text);
                }
                continue;
            }
            other => {
                return Err(Error::invalid_param(
                    "messages",
                    format!(
                        "messages.role must be \"user\", \"assistant\" or \"system\", not {:?}",
                        other.unwrap_or("")
                    ),
                ))
            }
        };
        let parts = read_blocks(message.get("content"))?;
        push(&mut req, role, parts);
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        for tool in tools {
            match str_field(tool, "type") {
                None | Some("custom") => {}
                Some(other) => {
                    return Err(Error::invalid_param(
                        "tools",
                        format!(
                            "server tools such as {other:?} are not supported by this provider"
                        ),
                    ))
                }
            }
            let name = str_field(tool, "name")
                .ok_or_else(|| Error::invalid_param("tools", "tools.name is required"))?;
            req.tools.push(Tool {
                name: name.to_owned(),
                description: str_field(tool, "description").map(str::to_owned),
                parameters: tool
                    .get("input_schema")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
        }
    }
    let config = body.get("output_config").filter(|c| !c.is_null());
    let format = config
        .and_then(|c| c.get("format"))
        .or_else(|| body.get("output_format"))
        .filter(|f| !f.is_null());
    if let Some(format) = format {
        req.response_format = match str_field(format, "type") {
            Some("json_schema") => Some(ResponseFormat::JsonSchema {
                name: "response".to_owned(),
                schema: format.get("schema").cloned().ok_or_else(|| {
                    Error::invalid_param("output_config", "output_config.format.schema is required")
                })?,
                strict: None,
            }),
            other => {
                return Err(Error::invalid_param(
                    "output_config",
                    format!(
                        "output_config.format of type {:?} is not supported",
                        other.unwrap_or("")
                    ),
                ))
            }
        };
    }
    let effort = match config
        .and_then(|c| c.get("effort"))
        .filter(|e| !e.is_null())
    {
        None => None,
        Some(e) => Some(e.as_str().and_then(Effort::parse).ok_or_else(|| {
            Error::invalid_param(
                "output_config",
                "output_config.effort must be one of low, medium, high, xhigh, max",
            )
        })?),
    };
    req.reasoning = match body.get("thinking").and_then(|t| str_field(t, "type")) {
        Some("enabled") => Some(Reasoning::Budget(
            body.get("thinking")
                .and_then(|t| t.get("budget_tokens"))
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    Error::invalid_param("thinking", "thinking.budget_tokens is required")
                })?,
        )),
        Some("disabled") => Some(Reasoning::Off),
        // Adaptive thinking thinks as much as the effort says; Anthropic's default is high.
        Some(_) => Some(Reasoning::Effort(effort.unwrap_or(Effort::High))),
        None => effort.map(Reasoning::Effort),
    };
    if let Some(choice) = body.get("tool_choice").filter(|c| c.is_object()) {
        req.tool_choice = match str_field(choice, "type") {
            Some("any") => Some(ToolChoice::Required),
            Some("none") => Some(ToolChoice::None),
            Some("tool") => Some(ToolChoice::Tool(
                str_field(choice, "name").unwrap_or("").to_owned(),
            )),
            _ => Some(ToolChoice::Auto),
        };
        if choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true)
        {
            req.parallel_tool_calls = Some(false);
        }
    }
    Ok(req)
}

fn read_image(source: Option<&Value>) -> Result<Image, Error> {
    let source = source.unwrap_or(&Value::Null);
    match str_field(source, "type") {
        Some("base64") => Ok(Image::Base64 {
            media_type: str_field(source, "media_type")
                .unwrap_or("image/png")
                .to_owned(),
            data: str_field(source, "data").unwrap_or("").to_owned(),
        }),
        Some("url") => Ok(Image::Url(
            str_field(source, "url").unwrap_or("").to_owned(),
        )),
        other => Err(Error::invalid_param(
            "messages",
            format!(
                "image sources of type {:?} are not supported by this provider",
                other.unwrap_or("")
            ),
        )),
    }
}

fn read_blocks(content: Option<&Value>) -> Result<Vec<Part>, Error> {
    let blocks = match content {
        Some(Value::String(s)) => return Ok(vec![Part::Text(s.clone())]),
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(Error::invalid_param(
                "messages",
                "message content must be a string or an array of content blocks",
            ))
        }
    };
    let mut parts = Vec::with_capacity(blocks.len());
    for block in blocks {
        match str_field(block, "type") {
            Some("text") => parts.push(Part::Text(
                str_field(block, "text").unwrap_or("").to_owned(),
            )),
            Some("image") => parts.push(Part::Image(read_image(block.get("source"))?)),
            Some("tool_use") => parts.push(Part::ToolCall {
                id: str_field(block, "id").unwrap_or("").to_owned(),
                name: str_field(block, "name").unwrap_or("").to_owned(),
                arguments: block.get("input").cloned().unwrap_or_else(|| json!({})),
            }),
            Some("tool_result") => {
                let content = match block.get("content") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::String(s)) => vec![Part::Text(s.clone())],
                    Some(Value::Array(items)) => {
                        let mut content = Vec::new();
                        for item in items {
                            match str_field(item, "type") {
                                Some("text") => content.push(Part::Text(
                                    str_field(item, "text").unwrap_or("").to_owned(),
                                )),
                                Some("image") => {
                                    content.push(Part::Image(read_image(item.get("source"))?))
                                }
                                _ => {}
                            }
                        }
                        content
                    }
                    Some(_) => Vec::new(),
                };
                parts.push(Part::ToolResult {
                    id: str_field(block, "tool_use_id").unwrap_or("").to_owned(),
                    content,
                    is_error: block.get("is_error").and_then(Value::as_bool) == Some(true),
                });
            }
            // Signed reasoning only Anthropic can verify; other upstreams get the answer alone.
            Some("thinking" | "redacted_thinking") => {}
            other => {
                return Err(Error::invalid_param(
                    "messages",
                    format!(
                        "content blocks of type {:?} are not supported by this provider",
                        other.unwrap_or("")
                    ),
                ))
            }
        }
    }
    Ok(parts)
}

// === writing requests ===

/// Anthropic's smallest `thinking.budget_tokens`.
const MIN_THINKING_BUDGET: u64 = 1024;

/// What a Messages request gets in its system prompt for OpenAI's `json_object`.
pub(crate) const JSON_OBJECT_INSTRUCTION: &str =
    "Answer with one JSON object and nothing else: no prose before or after it, no Markdown code \
     fence.";

fn image_block(image: &Image) -> Value {
    match image {
        Image::Base64 { media_type, data } => json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }),
        Image::Url(url) => json!({"type": "image", "source": {"type": "url", "url": url}}),
    }
}

fn write_blocks(message: &Message) -> Vec<Value> {
    let mut results = Vec::new();
    let mut rest = Vec::new();
    for part in &message.parts {
        match part {
            Part::Text(t) if t.is_empty() => {}
            Part::Text(t) => rest.push(json!({"type": "text", "text": t})),
            // Anthropic takes back only reasoning it signed.
            Part::Thinking { signature, .. } if signature.is_empty() => {}
            Part::Thinking { text, signature } => {
                rest.push(json!({"type": "thinking", "thinking": text, "signature": signature}))
            }
            Part::Image(image) => rest.push(image_block(image)),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => {
                let input = match arguments {
                    Value::Object(_) => arguments.clone(),
                    other => json!({ "value": other }),
                };
                rest.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
            }
            Part::ToolResult {
                id,
                content,
                is_error,
            } => {
                let blocks: Vec<Value> = content
                    .iter()
                    .filter_map(|c| match c {
                        Part::Text(t) if !t.is_empty() => Some(json!({"type": "text", "text": t})),
                        Part::Image(image) => Some(image_block(image)),
                        _ => None,
                    })
                    .collect();
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": id, "content": blocks});
                if *is_error {
                    block["is_error"] = json!(true);
                }
                // Tool results must open the user turn that answers the calls.
                results.push(block);
            }
        }
    }
    results.extend(rest);
    results
}

/// A Messages body for an Anthropic upstream.
pub(crate) fn write_request(req: &Request, model: &str) -> Result<Value, Error> {
    let max_tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let thinking = match req.reasoning {
        None => None,
        Some(Reasoning::Off) => Some(json!({"type": "disabled"})),
        Some(reasoning) => {
            let wanted = reasoning.budget().unwrap_or(MIN_THINKING_BUDGET);
            // Thinking counts in max_tokens: leave a quarter of it for the answer.
            let budget = wanted
                .max(MIN_THINKING_BUDGET)
                .min(max_tokens.saturating_mul(3) / 4);
            if budget < MIN_THINKING_BUDGET {
                return Err(Error::invalid_param(
                    "reasoning_effort",
                    format!(
                        "reasoning with this provider needs room for at least {MIN_THINKING_BUDGET} \
                         thinking tokens within the output limit; raise max_completion_tokens to \
                         at least {} or leave reasoning_effort out",
                        MIN_THINKING_BUDGET * 4 / 3 + 1
                    ),
                ));
            }
            Some(json!({"type": "enabled", "budget_tokens": budget}))
        }
    };
    let thinking_on = thinking
        .as_ref()
        .is_some_and(|t| str_field(t, "type") == Some("enabled"));
    let mut system = req.system.clone();
    let mut output_config = Map::new();
    match &req.response_format {
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            output_config.insert(
                "format".into(),
                json!({"type": "json_schema",
                    "schema": super::schema::for_anthropic(schema, "response_format")?}),
            );
        }
        Some(ResponseFormat::JsonObject) => system.push(JSON_OBJECT_INSTRUCTION.to_owned()),
        None => {}
    }
    let mut messages: Vec<Value> = Vec::new();
    let mut last_role = None;
    for message in &req.messages {
        let blocks = write_blocks(message);
        if blocks.is_empty() {
            continue;
        }
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        if last_role == Some(role) {
            if let Some(Value::Array(content)) =
                messages.last_mut().and_then(|m| m.get_mut("content"))
            {
                content.extend(blocks);
                continue;
            }
        }
        last_role = Some(role);
        messages.push(json!({"role": role, "content": blocks}));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("max_tokens".into(), json!(max_tokens));
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    body.insert("messages".into(), Value::Array(messages));
    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(req.stop));
    }
    if !thinking_on {
        if let Some(t) = req.temperature {
            body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
        }
        if let Some(p) = req.top_p {
            body.insert("top_p".into(), json!(p));
        }
        if let Some(k) = req.top_k {
            body.insert("top_k".into(), json!(k));
        }
    }
    if let Some(thinking) = thinking {
        body.insert("thinking".into(), thinking);
    }
    if !output_config.is_empty() {
        body.insert("output_config".into(), Value::Object(output_config));
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut tool = json!({"name": t.name, "input_schema": t.parameters});
                if let Some(d) = &t.description {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        let mut choice = match &req.tool_choice {
            None | Some(ToolChoice::Auto) => json!({"type": "auto"}),
            Some(ToolChoice::Required) => json!({"type": "any"}),
            Some(ToolChoice::None) => json!({"type": "none"}),
            Some(ToolChoice::Tool(name)) => json!({"type": "tool", "name": name}),
        };
        let parallel_off = req.parallel_tool_calls == Some(false);
        if parallel_off && req.tool_choice != Some(ToolChoice::None) {
            choice["disable_parallel_tool_use"] = json!(true);
        }
        if req.tool_choice.is_some() || parallel_off {
            body.insert("tool_choice".into(), choice);
        }
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
    }
    Ok(Value::Object(body))
}

// === responses ===

fn read_finish(reason: Option<&str>, sequence: Option<&str>) -> Finish {
    match reason {
        Some("max_tokens" | "model_context_window_exceeded") => Finish::Length,
        Some("tool_use") => Finish::ToolCalls,
        Some("refusal") => Finish::ContentFilter,
        Some("stop_sequence") => Finish::StopSequence(sequence.map(str::to_owned)),
        _ => Finish::Stop,
    }
}

fn wire_usage(v: Option<&Value>) -> Option<WireUsage> {
    v.and_then(|u| serde_json::from_value::<WireUsage>(u.clone()).ok())
}

/// A complete Messages response.
pub(crate) fn read_response(body: &[u8]) -> Result<Response, Error> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::Internal(format!("the upstream's response is not valid JSON: {e}")))?;
    let mut parts = Vec::new();
    for block in v
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match str_field(block, "type") {
            Some("text") => parts.push(Part::Text(
                str_field(block, "text").unwrap_or("").to_owned(),
            )),
            Some("thinking") => parts.push(Part::Thinking {
                text: str_field(block, "thinking").unwrap_or("").to_owned(),
                signature: str_field(block, "signature").unwrap_or("").to_owned(),
            }),
            Some("tool_use") => parts.push(Part::ToolCall {
                id: str_field(block, "id").unwrap_or("").to_owned(),
                name: str_field(block, "name").unwrap_or("").to_owned(),
                arguments: block.get("input").cloned().unwrap_or_else(|| json!({})),
            }),
            _ => {}
        }
    }
    Ok(Response {
        id: str_field(&v, "id").unwrap_or("").to_owned(),
        model: str_field(&v, "model").unwrap_or("").to_owned(),
        parts,
        finish: read_finish(str_field(&v, "stop_reason"), str_field(&v, "stop_sequence")),
        usage: wire_usage(v.get("usage"))
            .map(WireUsage::to_usage)
            .unwrap_or_default(),
    })
}

/// A Messages response for an Anthropic client.
pub(crate) fn write_response(resp: &Response, model: &str) -> Value {
    let content: Vec<Value> = resp
        .parts
        .iter()
        .filter_map(|part| match part {
            Part::Text(t) if !t.is_empty() => Some(json!({"type": "text", "text": t})),
            Part::Thinking { text, signature } => {
                Some(json!({"type": "thinking", "thinking": text, "signature": signature}))
            }
            Part::ToolCall {
                id,
                name,
                arguments,
            } => Some(json!({"type": "tool_use", "id": id, "name": name, "input": arguments})),
            _ => None,
        })
        .collect();
    json!({
        "id": resp.id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": resp.finish.anthropic(),
        "stop_sequence": resp.finish.stop_sequence(),
        "usage": anthropic_usage(&resp.usage),
    })
}

// === streams ===

/// Reads an Anthropic upstream's events as [`Delta`]s. Usage is cumulative: each report
/// replaces the last.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    usage: WireUsage,
    error: Option<String>,
}

impl Decoder {
    pub fn usage(&self) -> Option<Usage> {
        (!self.usage.is_empty()).then(|| self.usage.to_usage())
    }

    pub fn error(&self) -> Option<String> {
        self.error.clone()
    }

    pub fn decode(&mut self, name: Option<&str>, data: &str, out: &mut Vec<Delta>) {
        if matches!(name, Some("ping")) || data.trim().is_empty() {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match name.or_else(|| str_field(&v, "type")) {
            Some("message_start") => {
                let message = v.get("message").unwrap_or(&Value::Null);
                if let Some(u) = wire_usage(message.get("usage")) {
                    self.usage.update(&u);
                }
                out.push(Delta::Start {
                    id: str_field(message, "id").map(str::to_owned),
                    model: str_field(message, "model").map(str::to_owned),
                });
            }
            Some("content_block_start") => {
                let block = v.get("content_block").unwrap_or(&Value::Null);
                match str_field(block, "type") {
                    Some("text") => {
                        if let Some(t) = str_field(block, "text").filter(|t| !t.is_empty()) {
                            out.push(Delta::Text(t.to_owned()));
                        }
                    }
                    Some("thinking") => {
                        if let Some(t) = str_field(block, "thinking").filter(|t| !t.is_empty()) {
                            out.push(Delta::Thinking(t.to_owned()));
                        }
                    }
                    Some("tool_use") => {
                        out.push(Delta::ToolStart {
                            key: index,
                            id: str_field(block, "id").unwrap_or("").to_owned(),
                            name: str_field(block, "name").unwrap_or("").to_owned(),
                        });
                        if let Some(input) = block
                            .get("input")
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                        {
                            out.push(Delta::ToolArgs {
                                key: index,
                                json: input.to_string(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            Some("content_block_delta") => {
                let delta = v.get("delta").unwrap_or(&Value::Null);
                match str_field(delta, "type") {
                    Some("text_delta") => {
                        if let Some(t) = str_field(delta, "text").filter(|t| !t.is_empty()) {
                            out.push(Delta::Text(t.to_owned()));
                        }
                    }
                    Some("thinking_delta") => {
                        if let Some(t) = str_field(delta, "thinking").filter(|t| !t.is_empty()) {
                            out.push(Delta::Thinking(t.to_owned()));
                        }
                    }
                    Some("signature_delta") => {
                        if let Some(s) = str_field(delta, "signature").filter(|s| !s.is_empty()) {
                            out.push(Delta::ThinkingSignature(s.to_owned()));
                        }
                    }
                    Some("input_json_delta") => {
                        if let Some(j) = str_field(delta, "partial_json").filter(|j| !j.is_empty())
                        {
                            out.push(Delta::ToolArgs {
                                key: index,
                                json: j.to_owned(),
                            });
                        }
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                if let Some(u) = wire_usage(v.get("usage")) {
                    self.usage.update(&u);
                }
                let delta = v.get("delta").unwrap_or(&Value::Null);
                if let Some(reason) = str_field(delta, "stop_reason") {
                    out.push(Delta::Finish(read_finish(
                        Some(reason),
                        str_field(delta, "stop_sequence"),
                    )));
                }
            }
            Some("message_stop") => out.push(Delta::Done),
            Some("error") => {
                let error = v.get("error").unwrap_or(&Value::Null);
                let message = describe_value(error).unwrap_or_default();
                let error = stream_error(
                    status_for_error_type(str_field(error, "type").unwrap_or("")),
                    &message,
                );
                self.error.get_or_insert_with(|| error.to_string());
                out.push(Delta::Error(error));
            }
            _ => {}
        }
    }
}

/// The content block open in the client's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    Text(u64),
    Thinking(u64),
    Tool { key: u64, index: u64 },
}

/// Writes [`Delta`]s as Messages events for an Anthropic client: every event with its `event:`
/// line, a content block opened and closed at every switch between text and tool calls, and the
/// stop reason and real usage in `message_delta` once the upstream is done.
#[derive(Debug)]
pub(crate) struct Encoder {
    id: String,
    model: String,
    started: bool,
    block: Option<Block>,
    next_index: u64,
    finish: Option<Finish>,
    ended: bool,
}

impl Encoder {
    /// `model` is reported until the upstream names its own.
    pub fn new(model: &str) -> Encoder {
        Encoder {
            id: super::ir::fresh_id("msg_"),
            model: model.to_owned(),
            started: false,
            block: None,
            next_index: 0,
            finish: None,
            ended: false,
        }
    }

    fn ensure_started(&mut self, usage: Option<Usage>, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let mut usage = usage.unwrap_or_default();
        usage.output = 0;
        event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": anthropic_usage(&usage),
            }}),
            out,
        );
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some(block) = self.block.take() {
            let index = match block {
                Block::Text(index) | Block::Thinking(index) | Block::Tool { index, .. } => index,
            };
            event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
                out,
            );
        }
    }

    fn open_block(&mut self, block: Value, out: &mut Vec<u8>) -> u64 {
        self.close_block(out);
        let index = self.next_index;
        self.next_index += 1;
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
            out,
        );
        index
    }

    /// Write `delta` for the client; where the stream's final event (`message_stop`) begins in
    /// `out`, when this wrote it.
    pub fn push(&mut self, delta: Delta, usage: Option<Usage>, out: &mut Vec<u8>) -> Option<usize> {
        if self.ended {
            return None;
        }
        match delta {
            Delta::Start { id, model } => {
                if let Some(id) = id.filter(|s| !s.is_empty()) {
                    self.id = id;
                }
                if let Some(model) = model.filter(|s| !s.is_empty()) {
                    self.model = model;
                }
                self.ensure_started(usage, out);
            }
            Delta::Text(text) => {
                self.ensure_started(usage, out);
                let index = match self.block {
                    Some(Block::Text(index)) => index,
                    _ => {
                        let index = self.open_block(json!({"type": "text", "text": ""}), out);
                        self.block = Some(Block::Text(index));
                        index
                    }
                };
                event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": text}}),
                    out,
                );
            }
            Delta::Thinking(text) => {
                self.ensure_started(usage, out);
                let index = match self.block {
                    Some(Block::Thinking(index)) => index,
                    _ => {
                        let index = self.open_block(
                            json!({"type": "thinking", "thinking": "", "signature": ""}),
                            out,
                        );
                        self.block = Some(Block::Thinking(index));
                        index
                    }
                };
                event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "thinking_delta", "thinking": text}}),
                    out,
                );
            }
            Delta::ThinkingSignature(signature) => {
                if let Some(Block::Thinking(index)) = self.block {
                    event(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "signature_delta", "signature": signature}}),
                        out,
                    );
                }
            }
            Delta::ToolStart { key, id, name } => {
                self.ensure_started(usage, out);
                let index = self.open_block(
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    out,
                );
                self.block = Some(Block::Tool { key, index });
            }
            Delta::ToolArgs { key, json } => {
                // Arguments of a call whose block is already closed cannot be delivered;
                // upstreams send each call's arguments before the next call begins.
                if let Some(Block::Tool { key: open, index }) = self.block {
                    if open == key {
                        event(
                            "content_block_delta",
                            &json!({"type": "content_block_delta", "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": json}}),
                            out,
                        );
                    }
                }
            }
            Delta::Finish(finish) => {
                self.finish.get_or_insert(finish);
            }
            Delta::Error(error) => {
                out.extend_from_slice(&error.sse_event(pai_core::Dialect::Anthropic));
                self.ended = true;
            }
            Delta::Done => {
                self.ended = true;
                let Some(finish) = self.finish.take() else {
                    let error =
                        stream_error(502, "the upstream ended the stream before it was complete");
                    out.extend_from_slice(&error.sse_event(pai_core::Dialect::Anthropic));
                    return None;
                };
                self.ensure_started(usage, out);
                self.close_block(out);
                event(
                    "message_delta",
                    &json!({"type": "message_delta",
                        "delta": {"stop_reason": finish.anthropic(), "stop_sequence": finish.stop_sequence()},
                        "usage": anthropic_usage(&usage.unwrap_or_default())}),
                    out,
                );
                let at = out.len();
                event("message_stop", &json!({"type": "message_stop"}), out);
                return Some(at);
            }
        }
        None
    }
}

fn event(name: &str, data: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}
