//! A provider pai has no adapter for, served through the gateway by an adapter of your own.
//!
//! Acme is a made-up LLM service with a wire format of its own:
//!
//! ```text
//! POST {endpoint}/v1/generate        x-acme-key: KEY
//! {"model": "acme-1", "turns": [{"speaker": "user", "text": "hi"}], "max_new_tokens": 64, "stream": false}
//!   → {"id": "gen-1", "text": "…", "stop": "done" | "limit", "tokens": {"read": 3, "written": 4}}
//! with "stream": true, server-sent events:
//!   event: piece   data: {"id": "gen-1", "text": "Acme "}            (one per word)
//!   event: done    data: {"stop": "done", "tokens": {"read": 3, "written": 4}}
//! ```
//!
//! [`AcmeAdapter`] implements [`pai_core::Provider`] for it and lets pai's translation do the
//! rest: it asks pai for the call as an OpenAI chat body, whichever dialect the client spoke,
//! rewrites that into Acme's, and rewrites Acme's answers, whole or streamed, as OpenAI's, which
//! pai hands back in the client's dialect. The gateway gets it with
//! `GatewayBuilder::provider("acme", …)`; a ModelProvider names it with `spec.provider: acme`.
//!
//! This program starts a small Acme server on 127.0.0.1, a gateway in front of it, and calls the
//! gateway as the OpenAI and Anthropic SDKs do, whole and streamed, checking every answer. It
//! exits non-zero if one is wrong; `tests/tests/custom_provider.rs` runs it in CI.
//!
//! ```sh
//! cargo run -p pai-examples --example custom_provider
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use pai_core::resource::{load, AccessKey, Resource};
use pai_core::{
    access_key, AccessKeyHasher, Call, Credentials, Dialect, Error, EventAction, Operation, Passed,
    Provider, SseEvent, Store, StreamObserver, Usage,
};
use pai_providers::openai::OpenAiStreamObserver;
use pai_providers::translate::{self, TranslatingObserver};
use pai_store::MemoryStore;
use pai_tower::Gateway;
use serde::Deserialize;
use serde_json::{json, Value};
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The model the demo provider offers.
pub const MODEL: &str = "acme-1";
/// The key Acme expects; the gateway holds it, clients never see it.
pub const ACME_KEY: &str = "acme-secret-key-0123";

// === The adapter ===

/// The adapter for Acme's wire format. See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcmeAdapter;

/// A complete Acme answer.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    id: String,
    text: String,
    stop: String,
    tokens: Tokens,
}

/// Acme's token counts.
#[derive(Clone, Copy, Deserialize)]
struct Tokens {
    read: u64,
    written: u64,
}

impl Tokens {
    /// As an OpenAI `usage` object, for pai to read and translate.
    fn openai(self) -> Value {
        json!({"prompt_tokens": self.read, "completion_tokens": self.written,
            "total_tokens": self.read + self.written})
    }
}

/// Acme's stop reason as an OpenAI finish reason.
fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "limit" => "length",
        _ => "stop",
    }
}

/// A message's text, whether its content is a string or a list of parts.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An answer from Acme that pai cannot read: the upstream's fault, so a 502.
fn unreadable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Upstream {
        status: StatusCode::BAD_GATEWAY,
        message: format!("acme sent {what} the gateway cannot read: {e}"),
        retry_after_secs: None,
    }
}

impl Provider for AcmeAdapter {
    // `kind` is left at its default (`None`): Acme is none of pai's own kinds.

    /// The bodies pai hands this adapter are OpenAI's; prompts are estimated as such.
    fn dialect(&self) -> Dialect {
        Dialect::OpenAi
    }

    fn build_request(
        &self,
        call: &Call,
        credentials: &Credentials,
    ) -> Result<http::Request<Bytes>, Error> {
        if !matches!(
            call.operation,
            Operation::ChatCompletions | Operation::Messages
        ) {
            return Err(Error::NotImplemented(
                "acme only generates text; it has no model listing or token counting".to_owned(),
            ));
        }
        // pai reads the client's body, in either dialect, into an OpenAI chat request.
        let chat: Value = serde_json::from_slice(&translate::to_openai(call, "max_tokens")?)
            .map_err(|e| Error::Internal(format!("the translated request is not JSON: {e}")))?;
        let turns: Vec<Value> = chat["messages"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let speaker = match m["role"].as_str() {
                    Some("assistant") => "bot",
                    Some("system" | "developer") => "system",
                    _ => "user",
                };
                json!({"speaker": speaker, "text": text_of(&m["content"])})
            })
            .collect();
        let body = json!({
            "model": call.model,
            "turns": turns,
            "max_new_tokens": chat.get("max_tokens"),
            "stream": call.stream,
        });
        let mut request = http::Request::post(format!("{}/v1/generate", credentials.endpoint))
            .header(CONTENT_TYPE, "application/json")
            // The gateway reads usage out of the answer as it passes: no compression.
            .header(ACCEPT_ENCODING, "identity");
        if let Some(key) = &credentials.api_key {
            let mut value = HeaderValue::from_str(key.expose())
                .map_err(|_| Error::Unavailable("the acme key is not a valid header".into()))?;
            value.set_sensitive(true);
            request = request.header("x-acme-key", value);
        }
        request
            .body(Bytes::from(body.to_string()))
            .map_err(|e| Error::Internal(format!("cannot build the acme request: {e}")))
    }

    fn response_body(&self, call: &Call, body: Bytes) -> Result<Bytes, Error> {
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| unreadable("a body", e))?;
        let chat = json!({
            "id": answer.id,
            "object": "chat.completion",
            "created": 0,
            "model": call.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                "finish_reason": finish_reason(&answer.stop)}],
            "usage": answer.tokens.openai(),
        });
        let chat = Bytes::from(chat.to_string());
        match call.client {
            Dialect::OpenAi => Ok(chat),
            // pai writes an OpenAI answer in the client's dialect.
            _ => translate::response(call, Dialect::OpenAi, &chat),
        }
    }

    fn usage(&self, _call: &Call, body: &[u8]) -> Option<Usage> {
        let answer: Answer = serde_json::from_slice(body).ok()?;
        Some(Usage::from_openai(
            answer.tokens.read,
            answer.tokens.written,
            0,
            0,
        ))
    }

    fn stream_observer(&self, call: &Call) -> Box<dyn StreamObserver> {
        // pai's own observers of an OpenAI stream, for the client's dialect.
        let openai: Box<dyn StreamObserver> = match call.client {
            Dialect::OpenAi => Box::new(OpenAiStreamObserver::new(call.client_wants_usage)),
            _ => Box::new(TranslatingObserver::new(call, Dialect::OpenAi)),
        };
        Box::new(AcmeStream {
            openai,
            id: String::new(),
            model: call.model.clone(),
        })
    }

    fn upstream_error(
        &self,
        call: &Call,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Error {
        // pai reads a message out of any error body and maps the status (a refused key
        // becomes a 502 that names the secret to check, not a 401 the client would blame
        // on its own key).
        pai_providers::errors::upstream_error(call.client, status, headers, body)
    }
}

/// Acme's stream rewritten as OpenAI chunks, which pai's observer of OpenAI streams reads for
/// usage and passes on (or translates) for the client.
struct AcmeStream {
    openai: Box<dyn StreamObserver>,
    /// The answer's id, from its first piece; empty until then.
    id: String,
    model: String,
}

impl AcmeStream {
    /// An OpenAI chunk of this stream.
    fn chunk(&self, choices: Value, usage: Option<Value>) -> String {
        let mut chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": 0,
            "model": self.model, "choices": choices});
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        chunk.to_string()
    }

    /// Show `chunks` to the OpenAI observer; what the client gets of them, marked as the
    /// observer marked each (content, and where the final event begins).
    fn pass(&mut self, chunks: Vec<String>) -> Passed {
        let mut out = Vec::new();
        let (mut content, mut final_at) = (false, None);
        for data in chunks {
            let event = SseEvent {
                event: None,
                raw: Bytes::from(format!("data: {data}\n\n")),
                data,
            };
            let passed = self.openai.on_event(&event);
            if let Some(bytes) = passed.bytes(&event.raw) {
                content |= passed.content;
                if let Some(at) = passed.final_at {
                    final_at.get_or_insert(out.len() + at);
                }
                out.extend_from_slice(&bytes);
            }
        }
        if out.is_empty() {
            return Passed::dropped();
        }
        let passed = Passed::replace(Bytes::from(out)).with_content(content);
        match final_at {
            Some(at) => passed.final_at(at),
            None => passed,
        }
    }
}

/// A `piece` event.
#[derive(Deserialize)]
struct Piece {
    id: String,
    text: String,
}

/// The `done` event.
#[derive(Deserialize)]
struct Done {
    stop: String,
    tokens: Tokens,
}

impl StreamObserver for AcmeStream {
    fn on_event(&mut self, event: &SseEvent) -> Passed {
        if event.is_comment_only() {
            // Keep-alive comments keep idle clients waiting.
            return EventAction::Forward.into();
        }
        let chunks = match event.event.as_deref() {
            Some("piece") => match serde_json::from_str::<Piece>(&event.data) {
                Ok(piece) => {
                    let mut delta = json!({"content": piece.text});
                    if self.id.is_empty() {
                        self.id = piece.id;
                        delta["role"] = json!("assistant");
                    }
                    let choice = json!({"index": 0, "delta": delta, "finish_reason": null});
                    vec![self.chunk(json!([choice]), None)]
                }
                Err(e) => vec![stream_error(&e)],
            },
            Some("done") => match serde_json::from_str::<Done>(&event.data) {
                Ok(done) => {
                    let finish = finish_reason(&done.stop);
                    let choice = json!({"index": 0, "delta": {}, "finish_reason": finish});
                    vec![
                        self.chunk(json!([choice]), None),
                        // pai's observer reads the usage, and withholds this chunk from a
                        // client that did not ask for it.
                        self.chunk(json!([]), Some(done.tokens.openai())),
                        "[DONE]".to_owned(),
                    ]
                }
                Err(e) => vec![stream_error(&e)],
            },
            _ => return Passed::dropped(),
        };
        self.pass(chunks)
    }

    fn on_end(&mut self) -> Passed {
        self.openai.on_end()
    }

    fn usage(&self) -> Option<Usage> {
        self.openai.usage()
    }

    fn stream_error(&self) -> Option<String> {
        self.openai.stream_error()
    }
}

/// An in-band OpenAI error for an Acme event that cannot be read.
fn stream_error(e: &serde_json::Error) -> String {
    json!({"error": {"message": format!("acme sent an event the gateway cannot read: {e}"),
        "type": "server_error"}})
    .to_string()
}

// === A small Acme server ===

/// Serve the Acme API on a loopback port: it echoes the last user turn, word by word.
pub async fn serve_acme() -> Result<SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/v1/generate", post(generate));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("acme server stopped: {e}");
        }
    });
    Ok(addr)
}

async fn generate(headers: AxumHeaders, Json(req): Json<Value>) -> Response {
    if headers.get("x-acme-key").and_then(|v| v.to_str().ok()) != Some(ACME_KEY) {
        let failure = Json(json!({"failure": "unknown key"}));
        return (AxumStatus::UNAUTHORIZED, failure).into_response();
    }
    let turns = req["turns"].as_array().cloned().unwrap_or_default();
    let read: usize = turns
        .iter()
        .filter_map(|t| t["text"].as_str())
        .map(|t| t.split_whitespace().count())
        .sum();
    let heard = turns
        .iter()
        .rev()
        .find(|t| t["speaker"] == "user")
        .and_then(|t| t["text"].as_str())
        .unwrap_or_default();
    let mut words: Vec<String> = format!("Acme heard: {heard}")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let limit = req["max_new_tokens"].as_u64().map(|n| n as usize);
    let stop = match limit {
        Some(n) if words.len() > n => {
            words.truncate(n);
            "limit"
        }
        _ => "done",
    };
    let tokens = json!({"read": read, "written": words.len()});
    if req["stream"] != true {
        let answer =
            json!({"id": "gen-1", "text": words.join(" "), "stop": stop, "tokens": tokens});
        return Json(answer).into_response();
    }
    let count = words.len();
    let mut events: Vec<Event> = words
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let text = if i + 1 < count { format!("{w} ") } else { w };
            Event::default()
                .event("piece")
                .data(json!({"id": "gen-1", "text": text}).to_string())
        })
        .collect();
    events.push(
        Event::default()
            .event("done")
            .data(json!({"stop": stop, "tokens": tokens}).to_string()),
    );
    let stream = futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>));
    Sse::new(stream).into_response()
}

// === The gateway and its callers ===

/// A gateway on `store` that calls Acme through [`AcmeAdapter`].
pub async fn gateway(
    store: Arc<MemoryStore>,
    hasher: AccessKeyHasher,
) -> Result<Gateway, BoxError> {
    Ok(Gateway::builder()
        .store(store)
        .key_hasher(hasher)
        .provider("acme", Arc::new(AcmeAdapter))
        .build()
        .await?)
}

/// The Acme ModelProvider (and the Secret with its key), for an Acme server at `addr`.
pub fn acme_provider_yaml(addr: SocketAddr) -> String {
    format!(
        r#"
apiVersion: pai.io/v1
kind: Secret
metadata: {{name: acme-key}}
data: {{api-key: {ACME_KEY}}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: acme}}
spec:
  provider: acme
  endpoint: http://{addr}
  apiKeySecretRef: {{name: acme-key}}
  allowedModels: [{MODEL}]
  externalAccess: {{enabled: true}}
"#
    )
}

/// Store the resources of `yaml`, refusing a ModelProvider the gateway has no adapter for.
pub async fn apply(gateway: &Gateway, store: &MemoryStore, yaml: &str) -> Result<(), BoxError> {
    for resource in load(yaml)?.resources {
        if let Resource::ModelProvider(p) = &resource {
            gateway.adapters().check(&p.spec.provider)?;
        }
        store.apply(&resource).await?;
    }
    // Return once the gateway acts on what was stored.
    gateway.caught_up().await?;
    Ok(())
}

/// Mint an access key for the ModelProvider `provider`; the raw key, shown once.
pub async fn mint(
    gateway: &Gateway,
    store: &MemoryStore,
    hasher: &AccessKeyHasher,
    provider: &str,
) -> Result<String, BoxError> {
    let raw = access_key::generate().map_err(|_| "no randomness")?;
    let mut key: AccessKey = serde_json::from_value(json!({
        "metadata": {"name": format!("{provider}-demo")},
        "spec": {"modelProvider": provider},
    }))?;
    key.status.key_hash = Some(hasher.hash(&raw).0);
    store.apply(&Resource::AccessKey(key)).await?;
    gateway.caught_up().await?;
    Ok(raw)
}

/// A client dialect, as the SDKs call the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// `POST /v1/chat/completions`, `Authorization: Bearer`.
    OpenAi,
    /// `POST /v1/messages`, `x-api-key`.
    Anthropic,
}

/// Call the gateway as `client` with one user message; the status and the body's text.
pub async fn ask(
    gateway: &Gateway,
    key: &str,
    client: Client,
    text: &str,
    stream: bool,
    max_tokens: u64,
) -> Result<(StatusCode, String), BoxError> {
    let messages = json!([{"role": "user", "content": text}]);
    let request = match client {
        Client::OpenAi => {
            let mut body = json!({"model": MODEL, "messages": messages, "max_tokens": max_tokens});
            if stream {
                body["stream"] = json!(true);
                body["stream_options"] = json!({"include_usage": true});
            }
            http::Request::post("/v1/chat/completions")
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))?
        }
        Client::Anthropic => {
            let body = json!({"model": MODEL, "messages": messages, "max_tokens": max_tokens,
                "stream": stream});
            http::Request::post("/v1/messages")
                .header("x-api-key", key)
                .header("anthropic-version", "2023-06-01")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))?
        }
    };
    let response = gateway.clone().oneshot(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// The events of an SSE stream: the `event:` name if any, and the `data:` (or the comment).
pub fn sse_events(stream: &str) -> Vec<(Option<&str>, &str)> {
    stream
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = e;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n);
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d;
                }
            }
            (name, data)
        })
        .collect()
}

/// Refuse with `what` unless `ok`.
fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), BoxError> {
    if ok {
        Ok(())
    } else {
        Err(what().into())
    }
}

/// One answer in both dialects, whole and streamed, each checked.
pub async fn demo() -> Result<(), BoxError> {
    let acme = serve_acme().await?;
    let store = Arc::new(MemoryStore::new());
    // In production the hashing secret is operator-held and stable across restarts.
    let hasher = AccessKeyHasher::new(b"example secret, 32 bytes or more");
    let gateway = gateway(store.clone(), hasher.clone()).await?;
    apply(&gateway, &store, &acme_provider_yaml(acme)).await?;
    let key = mint(&gateway, &store, &hasher, "acme").await?;
    let want = "Acme heard: hello from pai";

    // The OpenAI SDK's request, whole.
    let (status, body) = ask(&gateway, &key, Client::OpenAi, "hello from pai", false, 64).await?;
    check(status == StatusCode::OK, || {
        format!("openai: {status} {body}")
    })?;
    let answer: Value = serde_json::from_str(&body)?;
    let text = &answer["choices"][0]["message"]["content"];
    check(text == want, || format!("openai: {body}"))?;
    check(answer["usage"]["completion_tokens"] == 5, || {
        format!("openai: {body}")
    })?;
    println!("OpenAI dialect:    {}", text.as_str().unwrap_or_default());

    // The Anthropic SDK's request, whole.
    let (status, body) = ask(
        &gateway,
        &key,
        Client::Anthropic,
        "hello from pai",
        false,
        64,
    )
    .await?;
    check(status == StatusCode::OK, || {
        format!("anthropic: {status} {body}")
    })?;
    let answer: Value = serde_json::from_str(&body)?;
    let text = &answer["content"][0]["text"];
    check(text == want && answer["stop_reason"] == "end_turn", || {
        format!("anthropic: {body}")
    })?;
    check(answer["usage"]["output_tokens"] == 5, || {
        format!("anthropic: {body}")
    })?;
    println!("Anthropic dialect: {}", text.as_str().unwrap_or_default());

    // Streamed, OpenAI: the content deltas, the usage chunk asked for, pai's usage comment
    // right before `[DONE]`.
    let (status, body) = ask(&gateway, &key, Client::OpenAi, "hello from pai", true, 64).await?;
    check(status == StatusCode::OK, || {
        format!("openai stream: {status} {body}")
    })?;
    let events = sse_events(&body);
    let mut streamed = String::new();
    for (_, data) in &events {
        if let Ok(chunk) = serde_json::from_str::<Value>(data) {
            streamed.push_str(
                chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or(""),
            );
        }
    }
    check(streamed == want, || format!("openai stream: {body}"))?;
    let n = events.len();
    check(
        n >= 2 && events[n - 1].1 == "[DONE]" && events[n - 2].1.starts_with(": pai-usage "),
        || format!("openai stream ends: {body}"),
    )?;
    check(body.contains("\"completion_tokens\":5"), || {
        format!("openai stream usage: {body}")
    })?;
    println!("OpenAI stream:     {streamed}");

    // Streamed, Anthropic: Messages events with their names, `message_stop` last.
    let (status, body) = ask(
        &gateway,
        &key,
        Client::Anthropic,
        "hello from pai",
        true,
        64,
    )
    .await?;
    check(status == StatusCode::OK, || {
        format!("anthropic stream: {status} {body}")
    })?;
    let events = sse_events(&body);
    let mut streamed = String::new();
    for (name, data) in &events {
        if *name == Some("content_block_delta") {
            let delta: Value = serde_json::from_str(data)?;
            streamed.push_str(delta["delta"]["text"].as_str().unwrap_or(""));
        }
    }
    check(streamed == want, || format!("anthropic stream: {body}"))?;
    let n = events.len();
    check(
        events.first().map(|e| e.0) == Some(Some("message_start"))
            && n >= 2
            && events[n - 1].0 == Some("message_stop")
            && events[n - 2].1.starts_with(": pai-usage "),
        || format!("anthropic stream events: {body}"),
    )?;
    println!("Anthropic stream:  {streamed}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    demo().await
}
