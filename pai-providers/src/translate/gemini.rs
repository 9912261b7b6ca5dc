//! Writing Gemini `generateContent` requests and reading its answers.
//!
//! Requests: the system text becomes `systemInstruction`; turns become `contents` with roles
//! `user` and `model`; text, inline images (`inlineData`), `functionCall` and
//! `functionResponse` parts (the function's name is found from the call the result answers;
//! a result that is a JSON object is passed as the response, other text as
//! `{"content": text}`); limits go in `generationConfig` (`maxOutputTokens`, `stopSequences`,
//! `temperature`, `topP`, `topK`; `responseMimeType: application/json` for JSON answers, with
//! the client's JSON Schema as it is in `responseJsonSchema`; a reasoning effort or budget as
//! `thinkingConfig.thinkingBudget` with `includeThoughts`, kept within three quarters of
//! `maxOutputTokens` (which counts thoughts) when the client set one, and reasoning off as
//! `thinkingBudget: 0`);
//! tools become one `functionDeclarations` list with their schemas cut down to the OpenAPI
//! subset Gemini accepts; `tool_choice` becomes `toolConfig.functionCallingConfig`. Image URLs
//! are refused (Gemini takes only inline bytes or its own file URIs).
//!
//! Answers: the first candidate's text, thought summaries (`thought: true` parts) as reasoning,
//! and function calls, which get
//! fresh ids since Gemini names none. `finishReason` STOP is `stop` (or `tool_calls` when the
//! model called a function), MAX_TOKENS `length`, SAFETY, RECITATION and the other blocking
//! reasons `content_filter`. `usageMetadata.promptTokenCount` includes
//! `cachedContentTokenCount`; output is `candidatesTokenCount + thoughtsTokenCount` and reasoning
//! is the thoughts. Streams repeat `usageMetadata` as running totals; the last one is taken.
//! Streams have no event names and no `[DONE]`: the end of the body ends the answer.
//!
//! **Thought signatures.** Gemini puts an opaque `thoughtSignature` on `functionCall` parts
//! (always with thinking on Gemini 3, sometimes on 2.5) and refuses (400) a later request whose
//! history has that call without it. The client dialects have no field for it, but every client
//! echoes tool-call ids back (OpenAI `tool_calls[].id` / `tool_call_id`, Anthropic
//! `tool_use.id` / `tool_result.tool_use_id`), so the signature rides in the id:
//! `<id>__ts_<signature as URL-safe base64 without padding>` ([`signed_id`]). Anthropic ids must
//! match `^[a-zA-Z0-9_-]+$`, which that alphabet keeps. Requests split such ids again
//! ([`split_id`]) and put the signature back on the `functionCall` part; ids without the marker
//! pass unchanged. Signatures run to a few KB, so such ids do too; both SDKs and APIs take ids of
//! that length (neither limits them), and the id only travels between the client and the gateway.

use pai_core::{Error, Usage};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::ir::{
    fresh_id, status_for_error_type, str_field, stream_error, Delta, Finish, Image, Part,
    Reasoning, Request, Response, ResponseFormat, Role, ToolChoice,
};
use crate::errors::describe_value;
use crate::tokens::{value, Count};

// === thought signatures in tool-call ids ===

/// What separates a tool-call id from the thought signature carried in it.
const SIGNATURE_MARK: &str = "__ts_";
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// URL-safe base64 without padding.
fn b64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(B64[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

/// The bytes of URL-safe base64 without padding; `None` when it is not that.
fn b64_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = B64.iter().position(|b| b == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// A tool-call id for the client that carries Gemini's `thoughtSignature`, when there is one.
pub(crate) fn signed_id(id: String, signature: Option<&str>) -> String {
    match signature {
        Some(sig) if !sig.is_empty() => {
            format!("{id}{SIGNATURE_MARK}{}", b64_encode(sig.as_bytes()))
        }
        _ => id,
    }
}

/// A client's tool-call id split into the plain id and the thought signature it carries. An id
/// without the marker, or with something after it that is not an encoded signature, is plain.
pub(crate) fn split_id(id: &str) -> (&str, Option<String>) {
    if let Some((plain, encoded)) = id.split_once(SIGNATURE_MARK) {
        if let Some(sig) = b64_decode(encoded).and_then(|b| String::from_utf8(b).ok()) {
            if !sig.is_empty() {
                return (plain, Some(sig));
            }
        }
    }
    (id, None)
}

// === requests ===

/// The JSON Schema keywords Gemini's `Schema` accepts; others are cut out.
const SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// A JSON Schema cut down to what Gemini accepts.
pub(crate) fn schema(v: &Value) -> Value {
    let Value::Object(map) = v else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        if !SCHEMA_KEYS.contains(&k.as_str()) {
            continue;
        }
        let v = match k.as_str() {
            "properties" => match v {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, s)| (name.clone(), schema(s)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "items" => schema(v),
            "anyOf" => match v {
                Value::Array(items) => Value::Array(items.iter().map(schema).collect()),
                other => other.clone(),
            },
            // `["string","null"]` is JSON Schema's nullable; Gemini wants one type.
            "type" => match v {
                Value::Array(types) => {
                    if types.iter().any(|t| t == "null") {
                        out.insert("nullable".into(), json!(true));
                    }
                    types
                        .iter()
                        .find(|t| *t != "null")
                        .cloned()
                        .unwrap_or_else(|| json!("string"))
                }
                other => other.clone(),
            },
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

fn image_part(image: &Image) -> Result<Value, Error> {
    match image {
        Image::Base64 { media_type, data } => {
            Ok(json!({"inlineData": {"mimeType": media_type, "data": data}}))
        }
        Image::Url(_) => Err(Error::invalid_param(
            "messages",
            "image URLs are not supported by this provider; send the image inline as a base64 \
             data URL or block",
        )),
    }
}

/// A `generateContent` body.
pub(crate) fn write_request(req: &Request) -> Result<Value, Error> {
    // Gemini answers a function by name; the results name only the call's id.
    // Matched on the plain id, so a signature lost from one of the two ids does not matter.
    let mut names: Vec<(&str, &str)> = Vec::new();
    for message in &req.messages {
        for part in &message.parts {
            if let Part::ToolCall { id, name, .. } = part {
                names.push((split_id(id).0, name.as_str()));
            }
        }
    }
    let mut contents: Vec<Value> = Vec::new();
    for message in &req.messages {
        let mut parts = Vec::new();
        for part in &message.parts {
            match part {
                Part::Text(t) if t.is_empty() => {}
                Part::Text(t) => parts.push(json!({"text": t})),
                // Gemini's own reasoning comes back only as signatures (carried in tool-call ids).
                Part::Thinking { .. } => {}
                Part::Image(image) => parts.push(image_part(image)?),
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    let mut part = json!({"functionCall": {"name": name, "args": arguments}});
                    if let (_, Some(sig)) = split_id(id) {
                        part["thoughtSignature"] = json!(sig);
                    }
                    parts.push(part);
                }
                Part::ToolResult {
                    id,
                    content,
                    is_error,
                } => {
                    let plain = split_id(id).0;
                    let name = names
                        .iter()
                        .find(|(call, _)| *call == plain)
                        .map_or(plain, |(_, name)| name);
                    let mut text = String::new();
                    let mut images = Vec::new();
                    for c in content {
                        match c {
                            Part::Text(t) => text.push_str(t),
                            Part::Image(image) => images.push(image_part(image)?),
                            _ => {}
                        }
                    }
                    let response = match serde_json::from_str::<Value>(&text) {
                        Ok(object @ Value::Object(_)) if !is_error => object,
                        _ if *is_error => json!({ "error": text }),
                        _ => json!({ "content": text }),
                    };
                    parts.push(json!({"functionResponse": {"name": name, "response": response}}));
                    parts.extend(images);
                }
            }
        }
        if parts.is_empty() {
            continue;
        }
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        match contents.last_mut() {
            Some(last) if str_field(last, "role") == Some(role) => {
                if let Some(Value::Array(existing)) = last.get_mut("parts") {
                    existing.extend(parts);
                }
            }
            _ => contents.push(json!({"role": role, "parts": parts})),
        }
    }
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !req.system.is_empty() {
        body.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": req.system.join("\n\n")}]}),
        );
    }
    let mut config = Map::new();
    if let Some(n) = req.max_tokens {
        config.insert("maxOutputTokens".into(), json!(n));
    }
    if !req.stop.is_empty() {
        config.insert("stopSequences".into(), json!(req.stop));
    }
    if let Some(t) = req.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(k) = req.top_k {
        config.insert("topK".into(), json!(k));
    }
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            config.insert("responseMimeType".into(), json!("application/json"));
            config.insert("responseJsonSchema".into(), schema.clone());
        }
        None => {}
    }
    match req.reasoning {
        None => {}
        Some(Reasoning::Off) => {
            config.insert("thinkingConfig".into(), json!({"thinkingBudget": 0}));
        }
        Some(reasoning) => {
            let wanted = reasoning.budget().unwrap_or(0);
            let budget = match req.max_tokens {
                Some(max) => wanted.min(max.saturating_mul(3) / 4),
                None => wanted,
            };
            config.insert(
                "thinkingConfig".into(),
                json!({"thinkingBudget": budget, "includeThoughts": true}),
            );
        }
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    if !req.tools.is_empty() {
        let declarations: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut d = json!({"name": t.name});
                if let Some(desc) = &t.description {
                    d["description"] = json!(desc);
                }
                // A function without parameters must not declare an empty object schema.
                let empty = t
                    .parameters
                    .get("properties")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty);
                if !empty {
                    d["parameters"] = schema(&t.parameters);
                }
                d
            })
            .collect();
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(choice) = &req.tool_choice {
            let config = match choice {
                ToolChoice::Auto => json!({"mode": "AUTO"}),
                ToolChoice::Required => json!({"mode": "ANY"}),
                ToolChoice::None => json!({"mode": "NONE"}),
                ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
            };
            body.insert(
                "toolConfig".into(),
                json!({ "functionCallingConfig": config }),
            );
        }
    }
    Ok(Value::Object(body))
}

// === usage ===

/// `usageMetadata` as Gemini sends it.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: Option<Count>,
    #[serde(default)]
    cached_content_token_count: Option<Count>,
    #[serde(default)]
    candidates_token_count: Option<Count>,
    #[serde(default)]
    thoughts_token_count: Option<Count>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<Count>,
}

/// Usage from a `usageMetadata` value. The prompt includes the cached part; tool-use prompt
/// tokens are billed as input; thoughts are output and reasoning.
pub(crate) fn usage(meta: &Value) -> Option<Usage> {
    let w: WireUsage = serde_json::from_value(meta.clone()).ok()?;
    let prompt = value(w.prompt_token_count);
    let cached = value(w.cached_content_token_count).min(prompt);
    let thoughts = value(w.thoughts_token_count);
    Some(Usage {
        input: (prompt - cached).saturating_add(value(w.tool_use_prompt_token_count)),
        cached_input: cached,
        cache_write: 0,
        output: value(w.candidates_token_count).saturating_add(thoughts),
        reasoning: thoughts,
    })
}

/// Usage from a complete `generateContent` body.
pub(crate) fn usage_from_body(body: &[u8]) -> Option<Usage> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("usageMetadata").and_then(usage)
}

// === responses ===

fn read_finish(reason: &str, called: bool) -> Finish {
    match reason {
        "MAX_TOKENS" => Finish::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => Finish::ContentFilter,
        _ if called => Finish::ToolCalls,
        _ => Finish::Stop,
    }
}

/// The parts of the first candidate, as [`Part`]s; thought summaries as [`Part::Thinking`].
fn candidate_parts(candidate: &Value) -> Vec<Part> {
    let mut parts = Vec::new();
    for part in candidate
        .get("content")
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            if let Some(text) = str_field(part, "text").filter(|t| !t.is_empty()) {
                parts.push(Part::Thinking {
                    text: text.to_owned(),
                    signature: String::new(),
                });
            }
            continue;
        }
        if let Some(text) = str_field(part, "text") {
            parts.push(Part::Text(text.to_owned()));
        } else if let Some(call) = part.get("functionCall") {
            let id = str_field(call, "id")
                .map(str::to_owned)
                .unwrap_or_else(|| fresh_id("call_"));
            parts.push(Part::ToolCall {
                id: signed_id(id, str_field(part, "thoughtSignature")),
                name: str_field(call, "name").unwrap_or("").to_owned(),
                arguments: call.get("args").cloned().unwrap_or_else(|| json!({})),
            });
        }
    }
    parts
}

/// A complete `generateContent` response.
pub(crate) fn read_response(body: &[u8]) -> Result<Response, Error> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Error::Internal(format!("the upstream's response is not valid JSON: {e}")))?;
    let candidate = v
        .get("candidates")
        .and_then(|c| c.get(0))
        .unwrap_or(&Value::Null);
    let parts = candidate_parts(candidate);
    let called = parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
    let finish = match str_field(candidate, "finishReason") {
        Some(reason) => read_finish(reason, called),
        // No candidate at all: the prompt itself was blocked.
        None if v
            .get("promptFeedback")
            .and_then(|f| f.get("blockReason"))
            .is_some() =>
        {
            Finish::ContentFilter
        }
        None => read_finish("STOP", called),
    };
    Ok(Response {
        id: str_field(&v, "responseId")
            .map(str::to_owned)
            .unwrap_or_else(|| fresh_id("gen-")),
        model: str_field(&v, "modelVersion").unwrap_or("").to_owned(),
        parts,
        finish,
        usage: v.get("usageMetadata").and_then(usage).unwrap_or_default(),
    })
}

// === streams ===

/// Reads a Gemini stream's chunks as [`Delta`]s.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    started: bool,
    calls: u64,
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
        let Ok(v) = serde_json::from_str::<Value>(data.trim()) else {
            return;
        };
        // An error may come alone or as the one element of an array.
        let error = v
            .get("error")
            .or_else(|| v.get(0).and_then(|e| e.get("error")));
        if let Some(error) = error {
            let status = match error.get("code").and_then(Value::as_u64) {
                Some(code) => code as u16,
                None => status_for_error_type(str_field(error, "status").unwrap_or("")),
            };
            let message = describe_value(error).unwrap_or_default();
            let error = stream_error(status, &message);
            self.error.get_or_insert_with(|| error.to_string());
            out.push(Delta::Error(error));
            return;
        }
        if let Some(u) = v.get("usageMetadata").and_then(usage) {
            self.usage = Some(u);
        }
        if !self.started {
            self.started = true;
            out.push(Delta::Start {
                id: str_field(&v, "responseId").map(str::to_owned),
                model: str_field(&v, "modelVersion").map(str::to_owned),
            });
        }
        let candidate = v
            .get("candidates")
            .and_then(|c| c.get(0))
            .unwrap_or(&Value::Null);
        for part in candidate_parts(candidate) {
            match part {
                Part::Text(t) if !t.is_empty() => out.push(Delta::Text(t)),
                Part::Thinking { text, .. } => out.push(Delta::Thinking(text)),
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    let key = self.calls;
                    self.calls += 1;
                    out.push(Delta::ToolStart { key, id, name });
                    out.push(Delta::ToolArgs {
                        key,
                        json: arguments.to_string(),
                    });
                }
                _ => {}
            }
        }
        if let Some(reason) = str_field(candidate, "finishReason") {
            out.push(Delta::Finish(read_finish(reason, self.calls > 0)));
        } else if v
            .get("promptFeedback")
            .and_then(|f| f.get("blockReason"))
            .is_some()
        {
            out.push(Delta::Finish(Finish::ContentFilter));
        }
    }
}
