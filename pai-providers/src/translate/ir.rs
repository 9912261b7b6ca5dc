//! The intermediate representation every dialect is read into and written out of.
//!
//! Three dialects in, three out would be nine translations; through this small common shape it
//! is one reader and one writer per dialect. The shape holds what the dialects share (text,
//! images, tool calls and their results, the generation limits) and nothing the gateway would
//! have to invent; what one dialect has and the others lack is dropped or refused where it is
//! read, and the module of that dialect says which.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use pai_core::{Error, Usage};
use serde_json::{json, Map, Value};

/// A chat request, whatever dialect it came in.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Request {
    /// System (and developer) instructions, in order.
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)` when the client asked for at most one tool call per turn.
    pub parallel_tool_calls: Option<bool>,
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    /// An end-user id (`user`, `metadata.user_id`).
    pub user: Option<String>,
    pub response_format: Option<ResponseFormat>,
    /// How much the model should think before it answers.
    pub reasoning: Option<Reasoning>,
    pub stream: bool,
}

/// Who said it. System text lives in [`Request::system`]; tool results are the user's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    User,
    Assistant,
}

/// One turn of the conversation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

/// One piece of a turn.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Part {
    Text(String),
    Image(Image),
    /// A call the assistant made; `arguments` is a JSON value (an object, normally).
    ToolCall {
        id: String,
        name: String,
        arguments: Value,
    },
    /// Reasoning the model showed before its answer; `signature` is Anthropic's proof that it
    /// wrote it (empty from other upstreams).
    Thinking {
        text: String,
        signature: String,
    },
    /// The answer to a tool call; `content` holds text and images.
    ToolResult {
        id: String,
        content: Vec<Part>,
        is_error: bool,
    },
}

/// An image, inline or by URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Image {
    Base64 { media_type: String, data: String },
    Url(String),
}

impl Image {
    /// From an OpenAI `image_url.url`: a `data:` URL becomes inline bytes.
    pub fn from_url(url: &str) -> Result<Image, Error> {
        let Some(rest) = url.strip_prefix("data:") else {
            return Ok(Image::Url(url.to_owned()));
        };
        match rest.split_once(',') {
            Some((meta, data)) if meta.ends_with(";base64") => Ok(Image::Base64 {
                media_type: meta.trim_end_matches(";base64").to_owned(),
                data: data.to_owned(),
            }),
            _ => Err(Error::invalid(
                "only base64 data URLs (data:image/png;base64,…) are supported for inline images",
            )),
        }
    }

    /// As an OpenAI `image_url.url`.
    pub fn to_url(&self) -> String {
        match self {
            Image::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
            Image::Url(url) => url.clone(),
        }
    }
}

/// A function the model may call.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

/// Whether and which tool the model must call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    Auto,
    /// Some tool, the model picks.
    Required,
    None,
    /// This one.
    Tool(String),
}

/// A constraint on the shape of the answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ResponseFormat {
    /// Any JSON object (OpenAI `json_object`).
    JsonObject,
    /// JSON that follows `schema`. `name` is OpenAI's label for it; `strict` whether the client
    /// asked the schema to be enforced exactly (Anthropic always enforces it).
    JsonSchema {
        name: String,
        schema: Value,
        strict: Option<bool>,
    },
}

/// How much the model should reason: off, a named effort, or a token budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reasoning {
    Off,
    Effort(Effort),
    /// At most this many thinking tokens (Anthropic `budget_tokens`, Gemini `thinkingBudget`).
    Budget(u64),
}

/// A named reasoning effort, from least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Effort {
    Minimal,
    Low,
    Medium,
    High,
    XHigh,
    Max,
}

impl Effort {
    /// From the names OpenAI's `reasoning_effort` and Anthropic's `output_config.effort` use.
    pub fn parse(name: &str) -> Option<Effort> {
        Some(match name {
            "minimal" => Effort::Minimal,
            "low" => Effort::Low,
            "medium" => Effort::Medium,
            "high" => Effort::High,
            "xhigh" => Effort::XHigh,
            "max" => Effort::Max,
            _ => return None,
        })
    }

    /// OpenAI's `reasoning_effort` (which has no `max`: the highest it has is `xhigh`).
    pub fn openai(self) -> &'static str {
        match self {
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::XHigh | Effort::Max => "xhigh",
        }
    }

    /// The thinking budget in tokens an effort stands for, where an upstream takes a budget.
    pub fn budget(self) -> u64 {
        match self {
            Effort::Minimal | Effort::Low => 1024,
            Effort::Medium => 4096,
            Effort::High => 16_384,
            Effort::XHigh => 24_576,
            Effort::Max => 32_768,
        }
    }

    /// The effort a token budget stands for, where an upstream takes a name.
    pub fn from_budget(budget: u64) -> Effort {
        match budget {
            0..=2047 => Effort::Low,
            2048..=8191 => Effort::Medium,
            _ => Effort::High,
        }
    }
}

impl Reasoning {
    /// The thinking budget this asks for; `None` when off.
    pub fn budget(self) -> Option<u64> {
        match self {
            Reasoning::Off => None,
            Reasoning::Effort(e) => Some(e.budget()),
            Reasoning::Budget(n) => Some(n),
        }
    }
}

/// Why generation stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    Stop,
    /// A stop sequence matched (Anthropic says which).
    StopSequence(Option<String>),
    Length,
    ToolCalls,
    ContentFilter,
}

impl Finish {
    /// OpenAI's `finish_reason`.
    pub fn openai(&self) -> &'static str {
        match self {
            Finish::Stop | Finish::StopSequence(_) => "stop",
            Finish::Length => "length",
            Finish::ToolCalls => "tool_calls",
            Finish::ContentFilter => "content_filter",
        }
    }

    /// Anthropic's `stop_reason`.
    pub fn anthropic(&self) -> &'static str {
        match self {
            Finish::Stop => "end_turn",
            Finish::StopSequence(_) => "stop_sequence",
            Finish::Length => "max_tokens",
            Finish::ToolCalls => "tool_use",
            Finish::ContentFilter => "refusal",
        }
    }

    /// The stop sequence that matched, if known.
    pub fn stop_sequence(&self) -> Option<&str> {
        match self {
            Finish::StopSequence(s) => s.as_deref(),
            _ => None,
        }
    }
}

/// A complete (non-streamed) answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Response {
    pub id: String,
    /// The model the upstream says answered; empty when it did not say.
    pub model: String,
    /// Text and tool calls, in order.
    pub parts: Vec<Part>,
    pub finish: Finish,
    pub usage: Usage,
}

/// One step of a streamed answer, as the upstream's events are read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Delta {
    /// The answer began; id and model when the upstream says them.
    Start {
        id: Option<String>,
        model: Option<String>,
    },
    Text(String),
    /// A piece of the model's shown reasoning.
    Thinking(String),
    /// Anthropic's signature of the reasoning just shown.
    ThinkingSignature(String),
    /// A tool call began. `key` tells the upstream's tool calls apart (its block or tool index).
    ToolStart {
        key: u64,
        id: String,
        name: String,
    },
    /// A piece of the JSON arguments of the tool call `key`.
    ToolArgs {
        key: u64,
        json: String,
    },
    Finish(Finish),
    /// The upstream reported an error inside the stream.
    Error(Error),
    /// The upstream's stream is complete.
    Done,
}

/// Anthropic's usage object for `usage`; the thinking part of the output, when there is one,
/// in `output_tokens_details.thinking_tokens`.
pub(crate) fn anthropic_usage(u: &Usage) -> Value {
    let mut v = json!({
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cached_input,
        "output_tokens": u.output,
    });
    if u.reasoning > 0 {
        v["output_tokens_details"] = json!({"thinking_tokens": u.reasoning});
    }
    v
}

/// OpenAI's usage object for `usage`: the prompt includes the cache, completion the reasoning.
pub(crate) fn openai_usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens(),
        "completion_tokens": u.output,
        "total_tokens": u.total_tokens(),
        "prompt_tokens_details": {"cached_tokens": u.cached_input},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    })
}

/// Seconds since the epoch, for OpenAI's `created`.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh id with `prefix`, unique within the process and unlikely to repeat across restarts;
/// for upstreams that name no id (Gemini tool calls, messages).
pub(crate) fn fresh_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}{:x}{nanos:08x}{n:x}", unix_now())
}

/// The body of a call as a JSON object.
pub(crate) fn body_map(body: &pai_core::JsonObject) -> Result<Map<String, Value>, Error> {
    serde_json::from_slice(&body.to_vec())
        .map_err(|e| Error::invalid(format!("the request body is not a valid JSON object: {e}")))
}

/// A string field, when it is one.
pub(crate) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `[text]` from a string or an array of strings.
pub(crate) fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A tool call's arguments from the JSON text OpenAI sends them as. Empty text is `{}`; text
/// that is not JSON is refused, since no other dialect could carry it.
pub(crate) fn parse_arguments(text: &str, name: &str) -> Result<Value, Error> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_str(text).map_err(|_| {
        Error::invalid_param(
            "messages",
            format!("the arguments of the tool call {name:?} are not valid JSON"),
        )
    })
}

/// Arguments read out of a response: JSON when they parse, else kept as text under `"_raw"` so
/// nothing the model produced is lost.
pub(crate) fn lenient_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Object(Map::new());
    }
    serde_json::from_str(text).unwrap_or_else(|_| json!({ "_raw": text }))
}

/// Whether `n` asks for more than one choice.
pub(crate) fn refuse_many_choices(body: &Map<String, Value>) -> Result<(), Error> {
    match body.get("n").and_then(Value::as_u64) {
        Some(n) if n > 1 => Err(Error::invalid_param(
            "n",
            "n > 1 is not supported by this provider",
        )),
        _ => Ok(()),
    }
}

/// An upstream's error type or status code read as the HTTP status it stands for.
pub(crate) fn status_for_error_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" | "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => 400,
        "authentication_error" | "UNAUTHENTICATED" => 401,
        "permission_error" | "PERMISSION_DENIED" => 403,
        "not_found_error" | "NOT_FOUND" => 404,
        "request_too_large" => 413,
        "rate_limit_error"
        | "rate_limit_exceeded"
        | "RESOURCE_EXHAUSTED"
        | "insufficient_quota" => 429,
        "timeout_error" | "DEADLINE_EXCEEDED" => 504,
        "overloaded_error" | "UNAVAILABLE" => 529,
        _ => 500,
    }
}

/// The error the client hears for an error the upstream reported inside a stream.
pub(crate) fn stream_error(status: u16, message: &str) -> Error {
    let status = http::StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let message = if message.trim().is_empty() {
        "the upstream reported an error in the stream".to_owned()
    } else {
        crate::redact::redact(message)
    };
    Error::Upstream {
        status,
        message,
        retry_after_secs: None,
    }
}
