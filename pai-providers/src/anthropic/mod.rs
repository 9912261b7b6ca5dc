//! The adapter for Anthropic's Messages API.
//!
//! Messages go to `POST {endpoint}/v1/messages` (an endpoint that already ends in `/v1` is not
//! given a second one), token counts to `/v1/messages/count_tokens`, model listings to
//! `GET /v1/models`; the client's query string (`beta=true` from Claude Code) comes along. The
//! key goes in `x-api-key`; `anthropic-version` is the client's, or `2023-06-01` when it sent
//! none, and `anthropic-beta` passes as the client sent it. The body passes through as it came,
//! except for `model`.
//!
//! OpenAI-dialect clients (`/chat/completions`) are served too: their request is translated into
//! a Messages request (with [`crate::translate::DEFAULT_MAX_TOKENS`] when it names no limit),
//! and the answer, complete or streamed, back into a chat completion ([`crate::translate`]).
//! Their query string is not forwarded.
//!
//! # Example
//!
//! ```
//! use pai_core::{Call, Credentials, Dialect, JsonObject, Operation, Provider};
//! use pai_core::provider::ApiKey;
//! use pai_providers::anthropic::AnthropicAdapter;
//!
//! let call = Call {
//!     operation: Operation::Messages,
//!     client: Dialect::Anthropic,
//!     model: "claude-sonnet-4-5".into(),
//!     stream: true,
//!     client_wants_usage: false,
//!     body: JsonObject::from_slice(br#"{"model":"sonnet","max_tokens":64,"messages":[]}"#).unwrap(),
//!     headers: Default::default(),
//!     query: Some("beta=true".into()),
//! };
//! let credentials = Credentials {
//!     endpoint: "https://api.anthropic.com".into(),
//!     api_key: Some(ApiKey::new("sk-ant-real")),
//! };
//! let request = AnthropicAdapter::new().build_request(&call, &credentials).unwrap();
//! assert_eq!(request.uri(), "https://api.anthropic.com/v1/messages?beta=true");
//! assert_eq!(request.headers()["anthropic-version"], "2023-06-01");
//! ```

pub mod stream;
pub(crate) mod usage;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use pai_core::{
    Call, Credentials, Dialect, Error, Operation, Provider, ProviderKind, StreamObserver, Usage,
};

pub use self::stream::AnthropicStreamObserver;
use crate::errors::upstream_error;
use crate::headers::known_query_parameters;
use crate::request::{base_headers, body_with_model, finish, secret_value};
use crate::translate::{self, TranslatingObserver};

/// The `anthropic-version` sent when the client named none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");

/// The adapter for Anthropic upstreams. See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct AnthropicAdapter;

impl AnthropicAdapter {
    /// The adapter; endpoints and keys come with each call's credentials.
    pub fn new() -> AnthropicAdapter {
        AnthropicAdapter
    }
}

/// `{endpoint}/v1{path}`, where an endpoint ending in `/v1` already has its `/v1`.
fn url(endpoint: &str, path: &str, query: Option<&str>) -> String {
    let base = endpoint.trim_end_matches('/');
    let version = if base.ends_with("/v1") { "" } else { "/v1" };
    match query
        .map(|q| q.trim_start_matches('?'))
        .filter(|q| !q.is_empty())
    {
        Some(query) => format!("{base}{version}{path}?{query}"),
        None => format!("{base}{version}{path}"),
    }
}

impl Provider for AnthropicAdapter {
    fn kind(&self) -> Option<ProviderKind> {
        Some(ProviderKind::Anthropic)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Anthropic
    }

    fn build_request(
        &self,
        call: &Call,
        credentials: &Credentials,
    ) -> Result<http::Request<Bytes>, Error> {
        let mut headers = base_headers(call);
        if let Some(key) = &credentials.api_key {
            headers.insert(X_API_KEY, secret_value("", key)?);
        }
        if !headers.contains_key(&ANTHROPIC_VERSION) {
            headers.insert(
                ANTHROPIC_VERSION,
                HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION),
            );
        }
        let translated = call.client != Dialect::Anthropic;
        // Only Claude Code's `beta`, even if the caller built the call itself.
        let query = if translated {
            None
        } else {
            call.query.as_deref().and_then(known_query_parameters)
        };
        let (method, path) = match call.operation {
            Operation::Messages | Operation::ChatCompletions => (Method::POST, "/messages"),
            Operation::CountTokens => (Method::POST, "/messages/count_tokens"),
            Operation::ListModels => (Method::GET, "/models"),
        };
        let url = url(&credentials.endpoint, path, query.as_deref());
        let body = if method != Method::POST {
            Bytes::new()
        } else if translated {
            translate::to_anthropic(call)?
        } else {
            Bytes::from(body_with_model(call)?.to_vec())
        };
        finish(method, &url, headers, body)
    }

    fn usage(&self, call: &Call, body: &[u8]) -> Option<Usage> {
        match call.operation {
            // Counting tokens consumes none.
            Operation::Messages | Operation::ChatCompletions => usage::from_body(body),
            _ => None,
        }
    }

    fn response_body(&self, call: &Call, body: Bytes) -> Result<Bytes, Error> {
        if call.client == Dialect::Anthropic || call.operation != Operation::ChatCompletions {
            return Ok(body);
        }
        translate::response(call, Dialect::Anthropic, &body)
    }

    fn stream_observer(&self, call: &Call) -> Box<dyn StreamObserver> {
        if call.client == Dialect::Anthropic {
            Box::new(AnthropicStreamObserver::new())
        } else {
            Box::new(TranslatingObserver::new(call, Dialect::Anthropic))
        }
    }

    fn upstream_error(
        &self,
        call: &Call,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Error {
        upstream_error(call.client, status, headers, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pai_core::provider::ApiKey;
    use pai_core::JsonObject;
    use serde_json::Value;

    fn call(operation: Operation) -> Call {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "sk-ant-api03-pak-client-AA".parse().unwrap());
        headers.insert("authorization", "Bearer pak_client".parse().unwrap());
        headers.insert(
            "anthropic-beta",
            "interleaved-thinking-2025-05-14".parse().unwrap(),
        );
        headers.insert("anthropic-version", "2023-01-01".parse().unwrap());
        Call {
            operation,
            client: Dialect::Anthropic,
            model: "claude-sonnet-4-5-20250929".into(),
            stream: false,
            client_wants_usage: false,
            body: JsonObject::from_slice(
                br#"{"model":"sonnet","max_tokens":1024,"system":"Be brief.","messages":[{"role":"user","content":"hi"}]}"#,
            )
            .unwrap(),
            headers,
            query: None,
        }
    }

    fn credentials(endpoint: &str) -> Credentials {
        Credentials {
            endpoint: endpoint.into(),
            api_key: Some(ApiKey::new("sk-ant-real-key")),
        }
    }

    #[test]
    fn requests_carry_the_real_key_and_the_clients_protocol_headers() {
        let r = AnthropicAdapter
            .build_request(
                &call(Operation::Messages),
                &credentials("https://api.anthropic.com"),
            )
            .unwrap();
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.uri(), "https://api.anthropic.com/v1/messages");
        let h = r.headers();
        assert_eq!(h["x-api-key"], "sk-ant-real-key");
        assert!(h["x-api-key"].is_sensitive());
        assert_eq!(h.get_all("x-api-key").iter().count(), 1);
        assert!(h.get("authorization").is_none());
        assert_eq!(h["anthropic-version"], "2023-01-01");
        assert_eq!(h["anthropic-beta"], "interleaved-thinking-2025-05-14");
        assert_eq!(h["accept-encoding"], "identity");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["user-agent"], concat!("pai/", env!("CARGO_PKG_VERSION")));
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["max_tokens"], 1024);
    }

    #[test]
    fn the_version_defaults_and_v1_is_never_doubled() {
        let mut c = call(Operation::CountTokens);
        c.headers.remove("anthropic-version");
        c.query = Some("beta=true".into());
        for endpoint in [
            "https://proxy.example/anthropic/v1/",
            "https://proxy.example/anthropic",
        ] {
            let r = AnthropicAdapter
                .build_request(&c, &credentials(endpoint))
                .unwrap();
            assert_eq!(
                r.uri(),
                "https://proxy.example/anthropic/v1/messages/count_tokens?beta=true"
            );
            assert_eq!(r.headers()["anthropic-version"], DEFAULT_ANTHROPIC_VERSION);
        }
        let r = AnthropicAdapter
            .build_request(
                &call(Operation::ListModels),
                &credentials("https://api.anthropic.com"),
            )
            .unwrap();
        assert_eq!(r.method(), Method::GET);
        assert_eq!(r.uri(), "https://api.anthropic.com/v1/models");
        assert!(r.body().is_empty());
    }

    #[test]
    fn openai_clients_are_translated_to_messages() {
        let mut c = call(Operation::ChatCompletions);
        c.client = Dialect::OpenAi;
        c.query = Some("api-version=1".into());
        c.body = JsonObject::from_slice(
            br#"{"model":"fast","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let r = AnthropicAdapter
            .build_request(&c, &credentials("https://api.anthropic.com"))
            .unwrap();
        assert_eq!(r.uri(), "https://api.anthropic.com/v1/messages");
        assert_eq!(r.headers()["x-api-key"], "sk-ant-real-key");
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"model": "claude-sonnet-4-5-20250929", "max_tokens": 4096,
                "system": "Be brief.", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
        );
        let answer = Bytes::from_static(
            br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi!"}],"stop_reason":"max_tokens","usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":5}}"#,
        );
        assert_eq!(
            AnthropicAdapter.usage(&c, &answer),
            Some(Usage::from_anthropic(3, 4, 0, 5))
        );
        let body: Value =
            serde_json::from_slice(&AnthropicAdapter.response_body(&c, answer).unwrap()).unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["choices"][0]["message"]["content"], "Hi!");
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        assert_eq!(body["usage"]["prompt_tokens"], 8);
        assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
    }

    #[test]
    fn usage_comes_from_messages_but_not_from_token_counts() {
        let body = br#"{"usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":5}}"#;
        assert_eq!(
            AnthropicAdapter.usage(&call(Operation::Messages), body),
            Some(Usage::from_anthropic(3, 4, 0, 5))
        );
        assert_eq!(
            AnthropicAdapter.usage(&call(Operation::CountTokens), br#"{"input_tokens":12}"#),
            None
        );
    }

    #[test]
    fn upstream_errors_render_for_anthropic_clients() {
        let e = AnthropicAdapter.upstream_error(
            &call(Operation::Messages),
            StatusCode::from_u16(529).unwrap(),
            &HeaderMap::new(),
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(e.status(), 529);
        let body: Value = serde_json::from_slice(&e.body(Dialect::Anthropic)).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "overloaded_error");
        assert_eq!(body["error"]["message"], "Overloaded");

        let e = AnthropicAdapter.upstream_error(
            &call(Operation::Messages),
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        );
        assert_eq!(e.status(), 502);
        let body: Value = serde_json::from_slice(&e.body(Dialect::Anthropic)).unwrap();
        assert_eq!(body["error"]["type"], "api_error");
    }
}
