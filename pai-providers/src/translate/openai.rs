//! Reading and writing the OpenAI Chat Completions dialect.
//!
//! Read from clients: `messages` of every role (`system` and `developer` anywhere become the
//! system text; consecutive `tool` messages become one user turn of tool results), text and
//! image parts (data URLs become inline images), `tools`, `tool_choice`, `parallel_tool_calls`,
//! `max_completion_tokens` (preferred) or `max_tokens`, `stop`, `temperature`, `top_p`, `user`,
//! `response_format` (`json_schema` with its name and `strict`, `json_object`, `text`) and
//! `reasoning_effort` (`none` turns reasoning off). `n > 1` is refused; audio and file parts are refused; sampling knobs no
//! other dialect has (`seed`, `logprobs`, penalties, `logit_bias`) are dropped.

use pai_core::{Error, Usage};
use serde_json::{json, Map, Value};

use super::ir::{
    lenient_arguments, openai_usage, parse_arguments, refuse_many_choices, status_for_error_type,
    str_field, stream_error, strings, unix_now, Delta, Effort, Finish, Image, Message, Part,
    Reasoning, Request, ResponseFormat, Role, Tool, ToolChoice,
};
use crate::errors::describe_value;
use crate::openai::usage::WireUsage;

// === reading requests ===

/// A client's Chat Completions body.
pub(crate) fn read_request(body: &Map<String, Value>) -> Result<Request, Error> {
    refuse_many_choices(body)?;
    let mut req = Request {
        max_tokens: body
            .get("max_completion_tokens")
            .and_then(Value::as_u64)
            .or_else(|| body.get("max_tokens").and_then(Value::as_u64)),
        stop: body.get("stop").map(strings).unwrap_or_default(),
        temperature: body.get("temperature").and_then(Value::as_f64),
        top_p: body.get("top_p").and_then(Value::as_f64),
        user: body.get("user").and_then(Value::as_str).map(str::to_owned),
        stream: body.get("stream").and_then(Value::as_bool) == Some(true),
        parallel_tool_calls: body.get("parallel_tool_calls").and_then(Value::as_bool),
        ..Request::default()
    };
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid_param("messages", "messages must be an array"))?;
    for message in messages {
        read_message(message, &mut req)?;
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        for tool in tools {
            req.tools.push(read_tool(tool)?);
        }
    }
    req.tool_choice = match body.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "required" => ToolChoice::Required,
            "none" => ToolChoice::None,
            _ => ToolChoice::Auto,
        }),
        Some(choice) => {
            let name = choice
                .get("function")
                .and_then(|f| str_field(f, "name"))
                .ok_or_else(|| {
                    Error::invalid_param("tool_choice", "tool_choice.function.name is required")
                })?;
            Some(ToolChoice::Tool(name.to_owned()))
        }
    };
    req.response_format = read_response_format(body.get("response_format"))?;
    req.reasoning = match body.get("reasoning_effort") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "none" => Some(Reasoning::Off),
        Some(Value::String(s)) => Some(Reasoning::Effort(Effort::parse(s).ok_or_else(|| {
            Error::invalid_param(
                "reasoning_effort",
                format!(
                    "reasoning_effort {s:?} is not one of none, minimal, low, medium, high, xhigh"
                ),
            )
        })?)),
        Some(_) => {
            return Err(Error::invalid_param(
                "reasoning_effort",
                "reasoning_effort must be a string",
            ))
        }
    };
    Ok(req)
}

/// `response_format`: `text` asks for nothing; `json_schema` needs its `schema`.
fn read_response_format(format: Option<&Value>) -> Result<Option<ResponseFormat>, Error> {
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match str_field(format, "type") {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => {
            let spec = format.get("json_schema").unwrap_or(&Value::Null);
            let schema = spec.get("schema").cloned().ok_or_else(|| {
                Error::invalid_param(
                    "response_format",
                    "response_format.json_schema.schema is required",
                )
            })?;
            Ok(Some(ResponseFormat::JsonSchema {
                name: str_field(spec, "name").unwrap_or("response").to_owned(),
                schema,
                strict: spec.get("strict").and_then(Value::as_bool),
            }))
        }
        other => Err(Error::invalid_param(
            "response_format",
            format!(
                "response_format of type {:?} is not supported by this provider",
                other.unwrap_or("")
            ),
        )),
    }
}

fn read_tool(tool: &Value) -> Result<Tool, Error> {
    let function = match str_field(tool, "type") {
        Some("function") | None => tool.get("function"),
        Some(other) => {
            return Err(Error::invalid_param(
                "tools",
                format!("tools of type {other:?} are not supported by this provider"),
            ))
        }
    };
    let function =
        function.ok_or_else(|| Error::invalid_param("tools", "tool.function is required"))?;
    let name = str_field(function, "name")
        .ok_or_else(|| Error::invalid_param("tools", "tool.function.name is required"))?;
    Ok(Tool {
        name: name.to_owned(),
        description: str_field(function, "description").map(str::to_owned),
        parameters: function
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    })
}

/// Text, images and refusals of a `content` that may be a string, null or an array of parts.
fn read_content(content: Option<&Value>) -> Result<Vec<Part>, Error> {
    let mut parts = Vec::new();
    match content {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => parts.push(Part::Text(s.clone())),
        Some(Value::Array(items)) => {
            for item in items {
                match str_field(item, "type") {
                    Some("text") => {
                        parts.push(Part::Text(str_field(item, "text").unwrap_or("").to_owned()))
                    }
                    Some("refusal") => parts.push(Part::Text(
                        str_field(item, "refusal").unwrap_or("").to_owned(),
                    )),
                    Some("image_url") => {
                        let url = item
                            .get("image_url")
                            .and_then(|i| i.as_str().or_else(|| str_field(i, "url")))
                            .ok_or_else(|| {
                                Error::invalid_param("messages", "image_url.url is required")
                            })?;
                        parts.push(Part::Image(Image::from_url(url)?));
                    }
                    other => {
                        return Err(Error::invalid_param(
                            "messages",
                            format!(
                                "content parts of type {:?} are not supported by this provider",
                                other.unwrap_or("")
                            ),
                        ))
                    }
                }
            }
        }
        Some(_) => {
            return Err(Error::invalid_param(
                "messages",
                "message content must be a string or an array of parts",
            ))
        }
    }
    Ok(parts)
}

/// The text of a `content`, for places that only take text (system, tool results).
fn content_text(content: Option<&Value>) -> Result<String, Error> {
    let mut text = String::new();
    for part in read_content(content)? {
        match part {
            Part::Text(t) => text.push_str(&t),
            _ => {
                return Err(Error::invalid_param(
                    "messages",
                    "system and tool messages may hold text only",
                ))
            }
        }
    }
    Ok(text)
}

fn read_message(message: &Value, req: &mut Request) -> Result<(), Error> {
    let content = message.get("content");
    match str_field(message, "role") {
        Some("system" | "developer") => {
            req.system.push(content_text(content)?);
        }
        Some("user") => push(req, Role::User, read_content(content)?),
        Some("assistant") => {
            let mut parts = read_content(content)?;
            if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    let function = call.get("function").unwrap_or(&Value::Null);
                    let name = str_field(function, "name").unwrap_or("").to_owned();
                    let arguments = match function.get("arguments") {
                        Some(Value::String(s)) => parse_arguments(s, &name)?,
                        Some(v @ Value::Object(_)) => v.clone(),
                        _ => Value::Object(Map::new()),
                    };
                    parts.push(Part::ToolCall {
                        id: str_field(call, "id").unwrap_or("").to_owned(),
                        name,
                        arguments,
                    });
                }
            }
            push(req, Role::Assistant, parts);
        }
        Some("tool") => {
            let id = str_field(message, "tool_call_id").unwrap_or("").to_owned();
            let content = vec![Part::Text(content_text(content)?)];
            push(
                req,
                Role::User,
                vec![Part::ToolResult {
                    id,
                    content,
                    is_error: false,
                }],
            );
        }
        other => {
            return Err(Error::invalid_param(
                "messages",
                format!(
                    "messages with role {:?} are not supported by this provider",
                    other.unwrap_or("")
                ),
            ))
        }
    }
    Ok(())
}

/// Append a turn, merging it into the last one when the role repeats (consecutive tool
/// messages make one turn of results).
pub(crate) fn push(req: &mut Request, role: Role, parts: Vec<Part>) {
    match req.messages.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => req.messages.push(Message { role, parts }),
    }
}

// === writing requests ===

/// A Chat Completions body for an OpenAI-dialect upstream. `max_tokens_field` is
/// `max_completion_tokens` for OpenAI itself and `max_tokens` for servers that may not know the
/// newer name.
pub(crate) fn write_request(req: &Request, model: &str, max_tokens_field: &str) -> Value {
    let mut messages = Vec::new();
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": req.system.join("\n\n")}));
    }
    for message in &req.messages {
        match message.role {
            Role::Assistant => {
                let mut text = String::new();
                let mut calls = Vec::new();
                for part in &message.parts {
                    match part {
                        Part::Text(t) => text.push_str(t),
                        Part::ToolCall {
                            id,
                            name,
                            arguments,
                        } => calls.push(json!({
                            "id": id,
                            "type": "function",
                            "function": {"name": name, "arguments": arguments.to_string()},
                        })),
                        // Chat Completions takes no reasoning back.
                        Part::Image(_) | Part::ToolResult { .. } | Part::Thinking { .. } => {}
                    }
                }
                let mut m = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
                if !calls.is_empty() {
                    m["tool_calls"] = Value::Array(calls);
                }
                messages.push(m);
            }
            Role::User => {
                // Tool results are their own messages and must come right after the assistant's
                // calls; images inside them go in a user message after them.
                let mut user = Vec::new();
                for part in &message.parts {
                    match part {
                        Part::ToolResult {
                            id,
                            content,
                            is_error,
                        } => {
                            let mut text = String::new();
                            if *is_error {
                                text.push_str("[tool error] ");
                            }
                            for c in content {
                                match c {
                                    Part::Text(t) => text.push_str(t),
                                    Part::Image(image) => user.push(image_part(image)),
                                    _ => {}
                                }
                            }
                            messages
                                .push(json!({"role": "tool", "tool_call_id": id, "content": text}));
                        }
                        Part::Text(t) => user.push(json!({"type": "text", "text": t})),
                        Part::Image(image) => user.push(image_part(image)),
                        Part::ToolCall { .. } | Part::Thinking { .. } => {}
                    }
                }
                if user.is_empty() {
                    continue;
                }
                let only_text = user.iter().all(|p| str_field(p, "type") == Some("text"));
                let content = if only_text {
                    Value::String(
                        user.iter()
                            .filter_map(|p| str_field(p, "text"))
                            .collect::<Vec<_>>()
                            .join("\n\n"),
                    )
                } else {
                    Value::Array(user)
                };
                messages.push(json!({"role": "user", "content": content}));
            }
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    if let Some(n) = req.max_tokens {
        body.insert(max_tokens_field.into(), json!(n));
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), json!(req.stop));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(user) = &req.user {
        body.insert("user".into(), json!(user));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut function = json!({"name": t.name, "parameters": t.parameters});
                if let Some(d) = &t.description {
                    function["description"] = json!(d);
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &req.tool_choice {
            body.insert(
                "tool_choice".into(),
                match choice {
                    ToolChoice::Auto => json!("auto"),
                    ToolChoice::Required => json!("required"),
                    ToolChoice::None => json!("none"),
                    ToolChoice::Tool(name) => {
                        json!({"type": "function", "function": {"name": name}})
                    }
                },
            );
        }
        if req.parallel_tool_calls == Some(false) {
            body.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            body.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            // Schemas from Anthropic clients name no strictness; Anthropic always enforces
            // them, so they go strict whenever OpenAI's strict mode takes them as they are.
            let strict = strict.unwrap_or_else(|| super::schema::openai_strict(schema));
            body.insert(
                "response_format".into(),
                json!({"type": "json_schema",
                    "json_schema": {"name": name, "schema": schema, "strict": strict}}),
            );
        }
        None => {}
    }
    match req.reasoning {
        Some(Reasoning::Effort(e)) => {
            body.insert("reasoning_effort".into(), json!(e.openai()));
        }
        Some(Reasoning::Budget(n)) => {
            body.insert(
                "reasoning_effort".into(),
                json!(Effort::from_budget(n).openai()),
            );
        }
        // Models that do not reason refuse even `none`; leaving it out is off for them and the
        // model's default for the others.
        Some(Reasoning::Off) | None => {}
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(body)
}

fn image_part(image: &Image) -> Value {
    json!({"type": "image_url", "image_url": {"url": image.to_url()}})
}

// === responses ===

/// OpenAI's `finish_reason` read.
fn read_finish(reason: Option<&str>, has_tool_calls: bool) -> Finish {
    match reason {
        Some("length") => Finish::Length,
        Some("tool_calls" | "function_call") => Finish::ToolCalls,
        Some("content_filter") => Finish::ContentFilter,
        _ if has_tool_calls => Finish::ToolCalls,
        _ => Finish::Stop,
    }
}

/// The reasoning an OpenAI-compatible server shows in a message or delta: `reasoning_content`
/// (DeepSeek, vLLM) or `reasoning` (OpenRouter, Ollama). OpenAI itself shows none.
fn reasoning_text(message: &Value) -> Option<&str> {
    str_field(message, "reasoning_content")
        .or_else(|| str_field(message, "reasoning"))
        .filter(|t| !t.is_empty())
}

/// A complete Chat Completions response.
pub(crate) fn read_response(body: &[u8]) -> Result<super::ir::Response, Error> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::Internal(format!("the upstream's response is not valid JSON: {e}")))?;
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .unwrap_or(&Value::Null);
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut parts = Vec::new();
    if let Some(thinking) = reasoning_text(message) {
        parts.push(Part::Thinking {
            text: thinking.to_owned(),
            signature: String::new(),
        });
    }
    match message.get("content") {
        Some(Value::String(s)) if !s.is_empty() => parts.push(Part::Text(s.clone())),
        Some(Value::Array(items)) => parts.extend(
            items
                .iter()
                .filter_map(|i| str_field(i, "text"))
                .map(|t| Part::Text(t.to_owned())),
        ),
        _ => {}
    }
    let refusal = str_field(message, "refusal").filter(|r| !r.is_empty());
    if let Some(r) = refusal {
        parts.push(Part::Text(r.to_owned()));
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let function = call.get("function").unwrap_or(&Value::Null);
        parts.push(Part::ToolCall {
            id: str_field(call, "id").unwrap_or("").to_owned(),
            name: str_field(function, "name").unwrap_or("").to_owned(),
            arguments: match function.get("arguments") {
                Some(Value::String(s)) => lenient_arguments(s),
                Some(v @ Value::Object(_)) => v.clone(),
                _ => Value::Object(Map::new()),
            },
        });
    }
    let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let finish = if refusal.is_some() {
        Finish::ContentFilter
    } else {
        read_finish(str_field(choice, "finish_reason"), has_calls)
    };
    let usage = v
        .get("usage")
        .and_then(|u| serde_json::from_value::<WireUsage>(u.clone()).ok())
        .map(|u| u.to_usage())
        .unwrap_or_default();
    Ok(super::ir::Response {
        id: str_field(&v, "id").unwrap_or("").to_owned(),
        model: str_field(&v, "model").unwrap_or("").to_owned(),
        parts,
        finish,
        usage,
    })
}

/// A Chat Completions response for an OpenAI client.
pub(crate) fn write_response(resp: &super::ir::Response, model: &str) -> Value {
    let mut text = String::new();
    let mut thinking = String::new();
    let mut calls = Vec::new();
    for part in &resp.parts {
        match part {
            Part::Text(t) => text.push_str(t),
            Part::Thinking { text: t, .. } => thinking.push_str(t),
            Part::ToolCall {
                id,
                name,
                arguments,
            } => calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()},
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    // Chat Completions has no field for shown reasoning; the one OpenAI-compatible servers use.
    if !thinking.is_empty() {
        message["reasoning_content"] = Value::String(thinking);
    }
    json!({
        "id": resp.id,
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": resp.finish.openai(),
        }],
        "usage": openai_usage(&resp.usage),
    })
}

// === streams ===

/// Reads an OpenAI-dialect upstream's chunks as [`Delta`]s.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    started: bool,
    /// Upstream tool indexes whose call has begun.
    tools: Vec<u64>,
    usage: Option<Usage>,
    error: Option<String>,
}

impl Decoder {
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    pub fn error(&self) -> Option<String> {
        self.error.clone()
    }

    pub fn decode(&mut self, data: &str, out: &mut Vec<Delta>) {
        let data = data.trim();
        if data.is_empty() {
            return;
        }
        if data == "[DONE]" {
            out.push(Delta::Done);
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            if let Ok(u) = serde_json::from_value::<WireUsage>(u.clone()) {
                self.usage = Some(u.to_usage());
            }
        }
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = describe_value(error).unwrap_or_else(|| error.to_string());
            let status = match error.get("code") {
                Some(Value::Number(n)) => n.as_u64().unwrap_or(500) as u16,
                _ => status_for_error_type(
                    str_field(error, "type")
                        .or_else(|| str_field(error, "code"))
                        .unwrap_or(""),
                ),
            };
            let error = stream_error(status, &message);
            self.error.get_or_insert_with(|| error.to_string());
            out.push(Delta::Error(error));
            return;
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            // Usage-only chunks and Azure's prompt-filter chunk.
            return;
        };
        if !self.started {
            self.started = true;
            out.push(Delta::Start {
                id: str_field(&chunk, "id")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                model: str_field(&chunk, "model")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            });
        }
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(thinking) = reasoning_text(delta) {
            out.push(Delta::Thinking(thinking.to_owned()));
        }
        if let Some(text) = str_field(delta, "content").filter(|t| !t.is_empty()) {
            out.push(Delta::Text(text.to_owned()));
        }
        for (position, call) in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let key = call
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(position as u64);
            let function = call.get("function").unwrap_or(&Value::Null);
            if !self.tools.contains(&key) {
                self.tools.push(key);
                out.push(Delta::ToolStart {
                    key,
                    id: str_field(call, "id")
                        .map(str::to_owned)
                        .unwrap_or_else(|| super::ir::fresh_id("call_")),
                    name: str_field(function, "name").unwrap_or("").to_owned(),
                });
            }
            if let Some(args) = str_field(function, "arguments").filter(|a| !a.is_empty()) {
                out.push(Delta::ToolArgs {
                    key,
                    json: args.to_owned(),
                });
            }
        }
        match str_field(choice, "finish_reason") {
            None => {}
            Some("error") => {
                let error = stream_error(502, "the upstream ended the stream with an error");
                self.error.get_or_insert_with(|| error.to_string());
                out.push(Delta::Error(error));
            }
            Some(reason) => out.push(Delta::Finish(read_finish(
                Some(reason),
                !self.tools.is_empty(),
            ))),
        }
    }
}

/// Writes [`Delta`]s as Chat Completions chunks for an OpenAI client.
#[derive(Debug)]
pub(crate) struct Encoder {
    include_usage: bool,
    id: String,
    model: String,
    created: u64,
    started: bool,
    /// Upstream tool keys, in the order their calls began: the position is the client's index.
    tools: Vec<u64>,
    finished: bool,
    ended: bool,
}

impl Encoder {
    /// `include_usage`: whether the client asked for `stream_options.include_usage`; `model`
    /// is reported until the upstream names its own.
    pub fn new(include_usage: bool, model: &str) -> Encoder {
        Encoder {
            include_usage,
            id: super::ir::fresh_id("chatcmpl-"),
            model: model.to_owned(),
            created: unix_now(),
            started: false,
            tools: Vec::new(),
            finished: false,
            ended: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        data(&chunk, out);
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            self.chunk(json!({"role": "assistant", "content": ""}), None, out);
        }
    }

    /// Write `delta` for the client; where the stream's final event (`data: [DONE]`) begins
    /// in `out`, when this wrote it.
    pub fn push(&mut self, delta: Delta, usage: Option<Usage>, out: &mut Vec<u8>) -> Option<usize> {
        if self.ended {
            return None;
        }
        match delta {
            Delta::Start { id, model } => {
                if let Some(id) = id {
                    self.id = id;
                }
                if let Some(model) = model {
                    self.model = model;
                }
                self.ensure_started(out);
            }
            Delta::Text(text) => {
                self.ensure_started(out);
                self.chunk(json!({"content": text}), None, out);
            }
            Delta::Thinking(text) => {
                self.ensure_started(out);
                self.chunk(json!({"reasoning_content": text}), None, out);
            }
            Delta::ThinkingSignature(_) => {}
            Delta::ToolStart { key, id, name } => {
                self.ensure_started(out);
                let index = self.tools.len();
                self.tools.push(key);
                self.chunk(
                    json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                        "function": {"name": name, "arguments": ""}}]}),
                    None,
                    out,
                );
            }
            Delta::ToolArgs { key, json } => {
                if let Some(index) = self.tools.iter().position(|k| *k == key) {
                    self.chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": json}}]}),
                        None,
                        out,
                    );
                }
            }
            Delta::Finish(finish) => {
                if !self.finished {
                    self.ensure_started(out);
                    self.finished = true;
                    self.chunk(json!({}), Some(finish.openai()), out);
                }
            }
            Delta::Error(error) => {
                out.extend_from_slice(&error.sse_event(pai_core::Dialect::OpenAi));
                self.ended = true;
            }
            Delta::Done => {
                if !self.finished {
                    let error =
                        stream_error(502, "the upstream ended the stream before it was complete");
                    out.extend_from_slice(&error.sse_event(pai_core::Dialect::OpenAi));
                    self.ended = true;
                    return None;
                }
                if self.include_usage {
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": openai_usage(&usage.unwrap_or_default()),
                    });
                    data(&chunk, out);
                }
                let at = out.len();
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.ended = true;
                return Some(at);
            }
        }
        None
    }
}

fn data(value: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(value.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}
