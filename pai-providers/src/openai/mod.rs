//! The adapter for OpenAI and every OpenAI-compatible upstream: OpenAI itself, OpenRouter and
//! vLLM.
//!
//! Chat completions go to `POST {endpoint}/chat/completions` with `Authorization: Bearer <key>`
//! (vLLM may run without a key, and then gets none). The client's body passes through as it
//! came, except for `model` (the upstream's id) and, on streams, `stream_options.include_usage`,
//! which the gateway always turns on so that it can meter the stream; [`stream`] withholds the
//! usage chunk from clients that did not ask for it. Model listings go to `GET {endpoint}/models`.
//! `count_tokens` is an Anthropic operation and answers 501 here.
//!
//! Anthropic-dialect clients (`/v1/messages`) are served too: their request is translated into
//! a chat completion, and the answer, complete or streamed, back into a Messages answer
//! ([`crate::translate`]). The output limit goes upstream as `max_completion_tokens` to OpenAI
//! and as `max_tokens` to OpenRouter and vLLM, which may not know the newer name.
//!
//! # Example
//!
//! ```
//! use pai_core::{Call, Credentials, Dialect, JsonObject, Operation, Provider, ProviderKind};
//! use pai_core::provider::ApiKey;
//! use pai_providers::openai::OpenAiAdapter;
//!
//! let call = Call {
//!     operation: Operation::ChatCompletions,
//!     client: Dialect::OpenAi,
//!     model: "gpt-4o".into(),
//!     stream: false,
//!     client_wants_usage: false,
//!     body: JsonObject::from_slice(br#"{"model":"fast","messages":[]}"#).unwrap(),
//!     headers: Default::default(),
//!     query: None,
//! };
//! let credentials = Credentials {
//!     endpoint: "https://api.openai.com/v1".into(),
//!     api_key: Some(ApiKey::new("sk-real")),
//! };
//! let request = OpenAiAdapter::new(ProviderKind::OpenAi).build_request(&call, &credentials).unwrap();
//! assert_eq!(request.uri(), "https://api.openai.com/v1/chat/completions");
//! assert_eq!(request.body().as_ref(), br#"{"model":"gpt-4o","messages":[]}"#);
//! ```

pub mod stream;
pub(crate) mod usage;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, StatusCode};
use pai_core::{
    Call, Credentials, Dialect, Error, Operation, Provider, ProviderKind, StreamObserver, Usage,
};
use serde_json::{Map, Value};

pub use self::stream::OpenAiStreamObserver;
use crate::errors::upstream_error;
use crate::request::{
    base_headers, body_with_model, drop_anthropic_headers, finish, join, secret_value,
};
use crate::translate::{self, TranslatingObserver};

/// The adapter for OpenAI-dialect upstreams. See the module docs.
#[derive(Clone, Copy, Debug)]
pub struct OpenAiAdapter {
    kind: ProviderKind,
}

impl OpenAiAdapter {
    /// The adapter for `kind`, which should be a kind that speaks the OpenAI dialect (`openai`,
    /// `openrouter`, `vllm`); endpoints and keys come with each call's credentials.
    pub fn new(kind: ProviderKind) -> OpenAiAdapter {
        OpenAiAdapter { kind }
    }
}

impl Provider for OpenAiAdapter {
    fn kind(&self) -> Option<ProviderKind> {
        Some(self.kind)
    }

    fn dialect(&self) -> Dialect {
        Dialect::OpenAi
    }

    fn build_request(
        &self,
        call: &Call,
        credentials: &Credentials,
    ) -> Result<http::Request<Bytes>, Error> {
        if call.operation == Operation::CountTokens {
            return Err(count_tokens_refused());
        }
        let mut headers = base_headers(call);
        drop_anthropic_headers(&mut headers);
        if let Some(key) = &credentials.api_key {
            headers.insert(AUTHORIZATION, secret_value("Bearer ", key)?);
        }
        match call.operation {
            Operation::ChatCompletions | Operation::Messages => {
                let body = chat_body(call, max_tokens_field(self.kind))?;
                let url = join(&credentials.endpoint, "/chat/completions");
                finish(Method::POST, &url, headers, body)
            }
            Operation::ListModels => {
                let url = join(&credentials.endpoint, "/models");
                finish(Method::GET, &url, headers, Bytes::new())
            }
            Operation::CountTokens => Err(count_tokens_refused()),
        }
    }

    fn response_body(&self, call: &Call, body: Bytes) -> Result<Bytes, Error> {
        chat_response_body(call, body)
    }

    fn usage(&self, call: &Call, body: &[u8]) -> Option<Usage> {
        match call.operation {
            Operation::ChatCompletions | Operation::Messages => usage::from_body(body),
            _ => None,
        }
    }

    fn stream_observer(&self, call: &Call) -> Box<dyn StreamObserver> {
        chat_stream_observer(call)
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

/// Where the output limit goes for an upstream of `kind`: OpenAI (and Azure OpenAI) know
/// `max_completion_tokens`, which reasoning models require; other servers may know only
/// `max_tokens`.
pub(crate) fn max_tokens_field(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi | ProviderKind::AzureOpenAi => "max_completion_tokens",
        _ => "max_tokens",
    }
}

/// `count_tokens` asked of a provider without it.
pub(crate) fn count_tokens_refused() -> Error {
    Error::NotImplemented("count_tokens is offered by anthropic providers only".to_owned())
}

/// The Chat Completions body for the call: an OpenAI client's own body with the upstream's
/// model and, on streams, `stream_options.include_usage`; an Anthropic client's translated.
pub(crate) fn chat_body(call: &Call, max_tokens_field: &str) -> Result<Bytes, Error> {
    if call.client != Dialect::OpenAi {
        return translate::to_openai(call, max_tokens_field);
    }
    let mut body = body_with_model(call)?;
    if call.stream {
        let mut options = match body.get::<Value>("stream_options") {
            Some(Ok(Value::Object(options))) => options,
            _ => Map::new(),
        };
        options.insert("include_usage".to_owned(), Value::Bool(true));
        body.set("stream_options", &options).map_err(|e| {
            Error::Internal(format!("cannot set stream_options.include_usage: {e}"))
        })?;
    }
    Ok(Bytes::from(body.to_vec()))
}

/// A complete chat completion as the call's client reads it.
pub(crate) fn chat_response_body(call: &Call, body: Bytes) -> Result<Bytes, Error> {
    if call.client == Dialect::OpenAi {
        return Ok(body);
    }
    translate::response(call, Dialect::OpenAi, &body)
}

/// The observer of a chat completion stream for the call's client.
pub(crate) fn chat_stream_observer(call: &Call) -> Box<dyn StreamObserver> {
    if call.client == Dialect::OpenAi {
        Box::new(OpenAiStreamObserver::new(call.client_wants_usage))
    } else {
        Box::new(TranslatingObserver::new(call, Dialect::OpenAi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pai_core::provider::ApiKey;
    use pai_core::JsonObject;

    fn call(body: &str, stream: bool) -> Call {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer pak_client_key".parse().unwrap());
        headers.insert("x-request-id", "req-42".parse().unwrap());
        headers.insert("user-agent", "OpenAI/Python 1.50.0".parse().unwrap());
        headers.insert("accept-encoding", "gzip, br".parse().unwrap());
        Call {
            operation: Operation::ChatCompletions,
            client: Dialect::OpenAi,
            model: "gpt-4o-2024-08-06".into(),
            stream,
            client_wants_usage: false,
            body: JsonObject::from_slice(body.as_bytes()).unwrap(),
            headers,
            query: Some("ignored=1".into()),
        }
    }

    fn credentials(key: Option<&str>) -> Credentials {
        Credentials {
            endpoint: "https://api.openai.com/v1/".into(),
            api_key: key.map(ApiKey::new),
        }
    }

    fn adapter() -> OpenAiAdapter {
        OpenAiAdapter::new(ProviderKind::OpenAi)
    }

    #[test]
    fn requests_carry_the_real_key_and_never_the_clients() {
        let call = call(
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
            false,
        );
        let r = adapter()
            .build_request(&call, &credentials(Some("sk-real-key")))
            .unwrap();
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.uri(), "https://api.openai.com/v1/chat/completions");
        let h = r.headers();
        assert_eq!(h["authorization"], "Bearer sk-real-key");
        assert!(h["authorization"].is_sensitive());
        assert_eq!(h.get_all("authorization").iter().count(), 1);
        assert_eq!(h["accept-encoding"], "identity");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(
            h["user-agent"],
            concat!("OpenAI/Python 1.50.0 pai/", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(h["x-request-id"], "req-42");
        assert_eq!(h["content-length"], r.body().len().to_string().as_str());
        assert!(!format!("{h:?}").contains("pak_client_key"));
        assert_eq!(
            r.body().as_ref(),
            br#"{"model":"gpt-4o-2024-08-06","messages":[{"role":"user","content":"hi"}]}"#
        );
    }

    #[test]
    fn keyless_vllm_gets_no_authorization() {
        let call = call(r#"{"model":"m","messages":[]}"#, false);
        let r = OpenAiAdapter::new(ProviderKind::Vllm)
            .build_request(&call, &credentials(None))
            .unwrap();
        assert!(r.headers().get("authorization").is_none());
    }

    #[test]
    fn streams_always_ask_upstream_for_usage() {
        let call = call(
            r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_obfuscation":false},"messages":[]}"#,
            true,
        );
        let r = adapter()
            .build_request(&call, &credentials(Some("k")))
            .unwrap();
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["stream_options"]["include_obfuscation"], false);
        assert_eq!(body["stream"], true);

        let call = self::call(r#"{"model":"gpt-4o","stream":true,"messages":[]}"#, true);
        let r = adapter()
            .build_request(&call, &credentials(Some("k")))
            .unwrap();
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            body["stream_options"],
            serde_json::json!({"include_usage": true})
        );
    }

    #[test]
    fn model_listings_are_a_get() {
        let mut call = call("{}", false);
        call.operation = Operation::ListModels;
        let r = adapter()
            .build_request(&call, &credentials(Some("k")))
            .unwrap();
        assert_eq!(r.method(), Method::GET);
        assert_eq!(r.uri(), "https://api.openai.com/v1/models");
        assert!(r.body().is_empty());
        assert!(r.headers().get("content-type").is_none());
    }

    #[test]
    fn anthropic_clients_are_translated_and_count_tokens_refused() {
        let mut messages = call(
            r#"{"model":"x","max_tokens":5,"system":"Be brief.","messages":[{"role":"user","content":"hi"}]}"#,
            false,
        );
        messages.operation = Operation::Messages;
        messages.client = Dialect::Anthropic;
        messages
            .headers
            .insert("anthropic-version", "2023-06-01".parse().unwrap());
        let r = adapter()
            .build_request(&messages, &credentials(Some("k")))
            .unwrap();
        assert_eq!(r.uri(), "https://api.openai.com/v1/chat/completions");
        assert!(r.headers().get("anthropic-version").is_none());
        let body: Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"model": "gpt-4o-2024-08-06", "messages": [
                {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
                "max_completion_tokens": 5})
        );
        let vllm = OpenAiAdapter::new(ProviderKind::Vllm)
            .build_request(&messages, &credentials(None))
            .unwrap();
        let body: Value = serde_json::from_slice(vllm.body()).unwrap();
        assert_eq!(body["max_tokens"], 5);

        let answer = Bytes::from_static(
            br#"{"id":"chatcmpl-1","model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2}}"#,
        );
        assert_eq!(
            adapter().usage(&messages, &answer),
            Some(Usage::from_openai(9, 2, 0, 0))
        );
        let body: Value =
            serde_json::from_slice(&adapter().response_body(&messages, answer).unwrap()).unwrap();
        assert_eq!(body["type"], "message");
        assert_eq!(body["content"][0]["text"], "Hi!");
        assert_eq!(body["stop_reason"], "end_turn");

        messages.operation = Operation::CountTokens;
        let e = adapter()
            .build_request(&messages, &credentials(Some("k")))
            .unwrap_err();
        assert_eq!(
            e,
            Error::NotImplemented("count_tokens is offered by anthropic providers only".into())
        );
    }

    #[test]
    fn a_bad_endpoint_or_key_is_an_internal_error_that_shows_neither() {
        let call = call(r#"{"messages":[]}"#, false);
        let bad = Credentials {
            endpoint: "api.openai.com/v1?token=secret".into(),
            api_key: Some(ApiKey::new("k")),
        };
        let e = adapter().build_request(&call, &bad).unwrap_err();
        assert_eq!(e.status(), 500);
        assert!(!e.to_string().contains("secret"));

        let e = adapter()
            .build_request(&call, &credentials(Some("sk-key\n")))
            .unwrap_err();
        assert_eq!(e.status(), 500);
        assert!(!e.to_string().contains("sk-key"));
    }

    #[test]
    fn usage_comes_from_complete_bodies() {
        let call = call("{}", false);
        let body = br#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        assert_eq!(
            adapter().usage(&call, body),
            Some(Usage::from_openai(10, 2, 4, 0))
        );
    }

    #[test]
    fn upstream_errors_render_in_the_clients_dialect() {
        let call = call("{}", false);
        let e = adapter().upstream_error(
            &call,
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            br#"{"error":"Unauthorized"}"#,
        );
        assert_eq!(e.status(), 502);
        let body: Value = serde_json::from_slice(&e.body(Dialect::OpenAi)).unwrap();
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("check its API key secret"));
    }
}
