//! The Gemini native dialect: `models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, keys in `x-goog-api-key`, errors as
//! `{"error":{"code","message","status"}}`.
//!
//! Gemini differs from the chat dialects in ways a gateway must notice: the model and whether to
//! stream are in the path, not the body; the body is proto JSON, so an unknown field is a 400
//! (a gateway that forwards `max_tokens` or `stream` finds out at once); streams are `data:`
//! lines framed with `\r\n\r\n`, with no event names and no terminator; and every chunk repeats
//! `usageMetadata` as running totals, which must be taken last, never summed.

use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use crate::completion::Dialect;
use crate::config::MockConfig;
use crate::directive::Directives;
use crate::prompt::Prompt;
use crate::reply::{Call, Reply, ReplyBody, Usage};
use crate::response::{self, MockResponse, Refusal};
use crate::sse::{Event, Phase, Script};

/// The fields of a `GenerateContentRequest`, in proto JSON's camelCase (snake_case is accepted
/// too). `model` repeats the path's model and is tolerated.
const REQUEST_FIELDS: &[&str] = &[
    "contents",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "generationConfig",
    "cachedContent",
    "model",
];
/// The fields of a `GenerationConfig`.
const GENERATION_FIELDS: &[&str] = &[
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
];

/// One Gemini call, as its path names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gemini {
    model: String,
    /// `streamGenerateContent` rather than `generateContent`.
    stream: bool,
    /// `alt=sse`: the stream as server-sent events. Without it a stream is one JSON array.
    sse: bool,
    /// The key in `?key=`, which the API accepts as well as the header.
    query_key: Option<String>,
}

impl Gemini {
    /// The call `path` names: `/v1beta/models/{model}:generateContent` or
    /// `…:streamGenerateContent` (also under `/v1/`).
    pub(crate) fn route(path: &str, query: Option<&str>) -> Option<Self> {
        let rest = path
            .strip_prefix("/v1beta/models/")
            .or_else(|| path.strip_prefix("/v1/models/"))?;
        let (model, method) = rest.split_once(':')?;
        if model.is_empty() || model.contains('/') {
            return None;
        }
        let stream = match method {
            "generateContent" => false,
            "streamGenerateContent" => true,
            _ => return None,
        };
        Some(Self {
            model: model.to_owned(),
            stream,
            sse: stream && query_param(query, "alt") == Some("sse"),
            query_key: query_param(query, "key").map(str::to_owned),
        })
    }

    /// The chunks of a stream: the reasoning first, one `thought: true` part per word, then
    /// one chunk per word of the answer (the last carries `finishReason`), or each function call
    /// whole in one chunk, as Gemini never splits call arguments. `usageMetadata` counts the
    /// thoughts and the answer's tokens so far.
    fn chunks(
        &self,
        reply: &Reply,
        signed: bool,
    ) -> Box<dyn Iterator<Item = (Phase, Value)> + Send> {
        let chunk = Chunk {
            model: self.model.clone(),
            id: response_id(reply),
            usage: reply.usage,
        };
        let thoughts: Vec<(Phase, Value)> = reply
            .thinking
            .iter()
            .enumerate()
            .map(|(i, word)| {
                let seen = u64::try_from(i + 1).unwrap_or(u64::MAX);
                let part = json!({"text": word, "thought": true});
                (Phase::Content, chunk.render(json!([part]), false, seen))
            })
            .collect();
        let thought = reply.usage.reasoning;
        let answer: Box<dyn Iterator<Item = (Phase, Value)> + Send> = match &reply.body {
            ReplyBody::Tool { .. } => {
                // The preamble's words one chunk each, then each call whole in its own chunk.
                let mut parts: Vec<(Value, u64)> = reply
                    .text_pieces()
                    .map(|word| (json!({"text": word}), 1))
                    .collect();
                parts.extend(
                    reply
                        .calls()
                        .iter()
                        .map(|call| (function_call(call, signed), CALL_TOKENS)),
                );
                let total = parts.len();
                let mut seen = thought;
                let chunks: Vec<(Phase, Value)> = parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, (part, tokens))| {
                        seen = seen.saturating_add(tokens);
                        (
                            Phase::Content,
                            chunk.render(json!([part]), i + 1 == total, seen),
                        )
                    })
                    .collect();
                Box::new(chunks.into_iter())
            }
            ReplyBody::Text { .. } if reply.piece_count() == 0 => Box::new(std::iter::once((
                Phase::Tail,
                chunk.render(json!([{"text": ""}]), true, thought),
            ))),
            ReplyBody::Text { .. } => {
                let total = reply.piece_count();
                Box::new(reply.text_pieces().enumerate().map(move |(i, piece)| {
                    let seen = thought.saturating_add(u64::try_from(i + 1).unwrap_or(u64::MAX));
                    let value = chunk.render(json!([{"text": piece}]), i + 1 == total, seen);
                    (Phase::Content, value)
                }))
            }
        };
        Box::new(thoughts.into_iter().chain(answer))
    }
}

impl Dialect for Gemini {
    fn authorize(&self, config: &MockConfig, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(expected) = &config.gemini_key else {
            return Ok(());
        };
        let key = headers
            .get("x-goog-api-key")
            .and_then(|v| v.to_str().ok())
            .or(self.query_key.as_deref());
        match key {
            Some(key) if key == expected => Ok(()),
            Some(_) => Err(Box::new(detailed_error(
                StatusCode::BAD_REQUEST,
                "API key not valid. Please pass a valid API key.",
                json!([{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }]),
            ))),
            None => Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "Method doesn't allow unregistered callers (callers without established \
                 identity). Please use API Key or other form of API consumer identity to call \
                 this API.",
            ))),
        }
    }

    fn malformed(&self, _: &serde_json::Error) -> MockResponse {
        error(
            StatusCode::BAD_REQUEST,
            "Invalid JSON payload received. Unexpected token.",
        )
    }

    fn read_prompt(&self, request: &Value) -> Result<Prompt, Refusal> {
        let Some(fields) = request.as_object() else {
            return Err(invalid(
                "Invalid JSON payload received. Expected an object.",
            ));
        };
        unknown_field(fields, REQUEST_FIELDS, None)?;
        if let Some(Value::Object(config)) = field(request, "generationConfig") {
            unknown_field(config, GENERATION_FIELDS, Some("generation_config"))?;
        }
        let contents = match field(request, "contents") {
            Some(Value::Array(contents)) if !contents.is_empty() => contents,
            _ => {
                return Err(invalid(
                    "* GenerateContentRequest.contents: contents is not specified\n",
                ))
            }
        };
        for (i, content) in contents.iter().enumerate() {
            if !matches!(
                content["role"].as_str(),
                None | Some("user" | "model" | "function")
            ) {
                return Err(invalid("Please use a valid role: user, model."));
            }
            if content["parts"].as_array().is_none_or(|p| p.is_empty()) {
                return Err(invalid(&format!(
                    "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be \
                     empty.\n"
                )));
            }
        }
        check_signatures(contents)?;
        let chars = field(request, "systemInstruction").map_or(0, counted)
            + contents.iter().map(counted).sum::<usize>();
        // The last user turn; one of function responses (role `function`, or parts without
        // text) carries no directives, as after a tool result in the other dialects.
        let directive_text = contents
            .iter()
            .rev()
            .find(|c| matches!(c["role"].as_str(), None | Some("user" | "function")))
            .map(text)
            .unwrap_or_default();
        let first_tool = field(request, "tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|tool| field(tool, "functionDeclarations")?[0]["name"].as_str())
            .map(str::to_owned);
        Ok(Prompt {
            model: self.model.clone(),
            stream: self.sse,
            include_usage: false,
            chars,
            directive_text,
            first_tool,
            shape: crate::shape::from_gemini(request),
        })
    }

    fn failure(&self, status: StatusCode) -> MockResponse {
        let message = match status.as_u16() {
            400 => "Request contains an invalid argument.",
            401 => "Request had invalid authentication credentials.",
            403 => "The caller does not have permission",
            404 => "Requested entity was not found.",
            429 => {
                "You exceeded your current quota, please check your plan and billing details. \
                 (mock)"
            }
            503 => "The model is overloaded. Please try again later.",
            504 => "Deadline expired before operation could complete.",
            500..=599 => {
                "An internal error has occurred. Please retry or report in \
                 https://developers.generativeai.google/guide/troubleshooting"
            }
            _ => "The mock upstream rejected the request.",
        };
        error(status, message)
    }

    fn complete(&self, reply: &Reply, prompt: &Prompt) -> Value {
        let signed = Directives::parse(&prompt.directive_text).signature;
        if self.stream {
            // streamGenerateContent without alt=sse: the chunks as one JSON array.
            return Value::Array(self.chunks(reply, signed).map(|(_, chunk)| chunk).collect());
        }
        let mut parts = Vec::new();
        if reply.thinks() {
            parts.push(json!({"text": reply.thinking_text(), "thought": true}));
        }
        if matches!(reply.body, ReplyBody::Text { .. }) || reply.preamble() {
            parts.push(json!({"text": reply.text()}));
        }
        parts.extend(reply.calls().iter().map(|call| function_call(call, signed)));
        let chunk = Chunk {
            model: self.model.clone(),
            id: response_id(reply),
            usage: reply.usage,
        };
        chunk.render(Value::Array(parts), true, reply.usage.output)
    }

    fn stream(&self, reply: &Reply, prompt: &Prompt) -> Script {
        let chunks = self.chunks(reply, Directives::parse(&prompt.directive_text).signature);
        let content_total = reply.thinking.len()
            + match &reply.body {
                ReplyBody::Tool { .. } => reply.text_pieces().count() + reply.calls().len(),
                ReplyBody::Text { .. } => reply.piece_count(),
            };
        Script {
            events: Box::new(
                chunks.map(|(phase, chunk)| Event::new(phase, None, chunk.to_string())),
            ),
            content_total,
            error: Event::new(
                Phase::Tail,
                None,
                json!({"error": {
                    "code": 503,
                    "message": "The model is overloaded. Please try again later.",
                    "status": "UNAVAILABLE",
                }})
                .to_string(),
            ),
            crlf: true,
        }
    }
}

/// `GET /v1beta/models`: two models, behind the same key check as the calls.
pub(crate) fn models(
    config: &MockConfig,
    headers: &HeaderMap,
    query: Option<&str>,
) -> MockResponse {
    let listing = Gemini {
        model: String::new(),
        stream: false,
        sse: false,
        query_key: query_param(query, "key").map(str::to_owned),
    };
    if let Err(refusal) = listing.authorize(config, headers) {
        return *refusal;
    }
    let model = |id: &str, name: &str| {
        json!({
            "name": format!("models/{id}"),
            "version": "001",
            "displayName": name,
            "inputTokenLimit": 1_048_576,
            "outputTokenLimit": 65_536,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
        })
    };
    response::json(
        StatusCode::OK,
        &json!({"models": [
            model("gemini-2.5-flash", "Gemini 2.5 Flash"),
            model("gemini-2.5-pro", "Gemini 2.5 Pro"),
        ]}),
    )
}

/// An error in Gemini's shape, its `status` named after the HTTP status as Google names it.
pub(crate) fn error(status: StatusCode, message: &str) -> MockResponse {
    response::json(
        status,
        &json!({"error": {
            "code": status.as_u16(),
            "message": message,
            "status": status_name(status),
        }}),
    )
}

/// The `google.rpc.Code` name Google sends with an HTTP status.
fn status_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500..=599 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

/// An error in Gemini's shape with `details` (`google.rpc` messages).
fn detailed_error(status: StatusCode, message: &str, details: Value) -> MockResponse {
    response::json(
        status,
        &json!({"error": {
            "code": status.as_u16(),
            "message": message,
            "status": status_name(status),
            "details": details,
        }}),
    )
}

fn invalid(message: &str) -> Refusal {
    Box::new(error(StatusCode::BAD_REQUEST, message))
}

/// Refuses the first field of `fields` that `known` does not name, worded like the real API.
fn unknown_field(
    fields: &Map<String, Value>,
    known: &[&str],
    at: Option<&str>,
) -> Result<(), Refusal> {
    let Some(name) = fields
        .keys()
        .find(|name| !known.contains(&camel(name).as_str()))
    else {
        return Ok(());
    };
    let at = at.map(|at| format!(" at '{at}'")).unwrap_or_default();
    let message =
        format!("Invalid JSON payload received. Unknown name \"{name}\"{at}: Cannot find field.");
    let details = json!([{
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"description": message}],
    }]);
    Err(Box::new(detailed_error(
        StatusCode::BAD_REQUEST,
        &message,
        details,
    )))
}

/// A field by its camelCase name, or its snake_case one: proto JSON accepts both.
fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| object.get(snake(name)))
}

fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters the mock counts in a `Content`: its text parts and the strings inside function
/// responses (tool results). Function calls are not counted.
fn counted(content: &Value) -> usize {
    content["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(
            |part| match (part["text"].as_str(), field(part, "functionResponse")) {
                (Some(text), _) => text.chars().count(),
                (None, Some(response)) => strings(&response["response"]),
                (None, None) => 0,
            },
        )
        .sum()
}

/// Characters of every string inside `value`.
fn strings(value: &Value) -> usize {
    match value {
        Value::String(s) => s.chars().count(),
        Value::Array(items) => items.iter().map(strings).sum(),
        Value::Object(fields) => fields.values().map(strings).sum(),
        _ => 0,
    }
}

/// The text parts of a `Content`, joined.
fn text(content: &Value) -> String {
    content["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| part["text"].as_str())
        .collect()
}

/// The parts every chunk of one answer shares, and how it renders one.
#[derive(Clone)]
struct Chunk {
    model: String,
    id: String,
    usage: Usage,
}

impl Chunk {
    /// A `GenerateContentResponse` with `parts`, finished or not, after `output` tokens.
    fn render(&self, parts: Value, finished: bool, output: u64) -> Value {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if finished {
            candidate["finishReason"] = json!("STOP");
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": usage_metadata(self.usage, output),
            "modelVersion": self.model,
            "responseId": self.id,
        })
    }
}

/// The output tokens of one tool call (its three argument pieces in the other dialects).
const CALL_TOKENS: u64 = 3;

/// The `thoughtSignature` a `signature` directive puts on the first call of a reply: base64,
/// with the `+`, `/` and padding real ones have.
pub(crate) const THOUGHT_SIGNATURE: &str = "CiQBmock+thought/signature==";

/// A `functionCall` part; the first call of a reply signed when `signed`, as Gemini 3 signs the
/// first call of each step.
fn function_call(call: &Call, signed: bool) -> Value {
    let mut part = json!({"functionCall": {"name": call.name, "args": call.input()}});
    if signed && call.index == 0 {
        part["thoughtSignature"] = json!(THOUGHT_SIGNATURE);
    }
    part
}

/// When a user turn asks for `signature`, refuses (as Gemini 3 does) a history whose model
/// turns' first function call lacks the signature the mock issued.
fn check_signatures(contents: &[Value]) -> Result<(), Refusal> {
    let asked = contents
        .iter()
        .filter(|c| matches!(c["role"].as_str(), None | Some("user")))
        .any(|c| Directives::parse(&text(c)).signature);
    if !asked {
        return Ok(());
    }
    for (i, content) in contents.iter().enumerate() {
        if content["role"].as_str() != Some("model") {
            continue;
        }
        let parts = content["parts"].as_array().into_iter().flatten();
        let Some((j, first)) = parts
            .enumerate()
            .find(|(_, part)| field(part, "functionCall").is_some())
        else {
            continue;
        };
        if field(first, "thoughtSignature").and_then(Value::as_str) != Some(THOUGHT_SIGNATURE) {
            let name =
                field(first, "functionCall").map_or("", |c| c["name"].as_str().unwrap_or(""));
            return Err(invalid(&format!(
                "Function call is missing a thought_signature in functionCall parts. This is \
                 required for tools to work correctly, and missing thought_signature may lead \
                 to degraded model performance. Additional data, function call \
                 `default_api:{name}` , position {}. Please refer to \
                 https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                i * 100 + j + 1
            )));
        }
    }
    Ok(())
}

/// `usageMetadata` after `output` tokens: `promptTokenCount` includes the cached tokens, which
/// `cachedContentTokenCount` repeats (omitted when there are none, as Gemini does).
fn usage_metadata(usage: Usage, output: u64) -> Value {
    let prompt = usage.prompt_total();
    // Thoughts are reported apart from the candidates' tokens.
    let thoughts = usage.reasoning.min(output);
    let mut metadata = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": output - thoughts,
        "totalTokenCount": prompt.saturating_add(output),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    });
    if thoughts > 0 {
        metadata["thoughtsTokenCount"] = json!(thoughts);
    }
    if usage.cache_read > 0 {
        metadata["cachedContentTokenCount"] = json!(usage.cache_read);
        metadata["cacheTokensDetails"] =
            json!([{"modality": "TEXT", "tokenCount": usage.cache_read}]);
    }
    metadata
}

fn response_id(reply: &Reply) -> String {
    format!("mock-response-{}", reply.seq)
}

/// The value of `name` in a query string (not percent-decoded).
pub(crate) fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_the_model_and_the_stream_kind() {
        let call = Gemini::route(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            Some("alt=sse&key=k"),
        );
        assert_eq!(
            call,
            Some(Gemini {
                model: "gemini-2.5-flash".into(),
                stream: true,
                sse: true,
                query_key: Some("k".into()),
            })
        );
        assert!(Gemini::route("/v1beta/models/gemini-2.5-flash:countTokens", None).is_none());
        assert!(Gemini::route("/v1beta/models/:generateContent", None).is_none());
        assert!(
            !Gemini::route("/v1/models/g:streamGenerateContent", None)
                .unwrap()
                .sse
        );
    }

    #[test]
    fn proto_names_match_in_either_case() {
        assert_eq!(camel("max_output_tokens"), "maxOutputTokens");
        assert_eq!(snake("maxOutputTokens"), "max_output_tokens");
    }

    #[test]
    fn a_signature_directive_demands_the_signature_back() {
        let gemini = Gemini::route("/v1beta/models/g:generateContent", None).unwrap();
        let call = json!({"functionCall": {"name": "weather", "args": {"city": "Paris"}}});
        let mut signed = call.clone();
        signed["thoughtSignature"] = json!(THOUGHT_SIGNATURE);
        let history = |directive: &str, part: &Value| {
            json!({"contents": [
                {"role": "user", "parts": [{"text": format!("hi {directive}")}]},
                {"role": "model", "parts": [part]},
                {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"content": "sunny"}}}]}
            ]})
        };
        let refused = gemini
            .read_prompt(&history("[mock:tool,signature]", &call))
            .unwrap_err();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(gemini
            .read_prompt(&history("[mock:tool,signature]", &signed))
            .is_ok());
        assert!(gemini.read_prompt(&history("[mock:tool]", &call)).is_ok());

        let reply = Call {
            index: 0,
            name: "weather".into(),
            city: "Paris",
            json: None,
        };
        assert_eq!(function_call(&reply, true), signed);
        assert_eq!(function_call(&reply, false), call);
    }
}
