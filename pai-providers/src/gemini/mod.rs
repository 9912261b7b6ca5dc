//! The adapter for Google's Gemini API.
//!
//! Gemini speaks neither client dialect, so every call is translated ([`crate::translate`]):
//! chat completions and Messages calls go to
//! `POST {endpoint}/v1beta/models/{model}:generateContent`, or, streamed,
//! `:streamGenerateContent?alt=sse`, with the key in `x-goog-api-key`; answers come back in the
//! client's dialect. An endpoint that already ends in a version (`/v1beta`, `/v1`) keeps it; a
//! model id may be written with or without its `models/` prefix. Model listings go to
//! `GET {endpoint}/v1beta/models`; `count_tokens` answers 501.
//!
//! Errors (`{"error":{"code","message","status"}}`, or a JSON array of them) are read by
//! [`crate::errors::upstream_error`] and rendered in the client's dialect.
//!
//! # Example
//!
//! ```
//! use pai_core::{Call, Credentials, Dialect, JsonObject, Operation, Provider};
//! use pai_core::provider::ApiKey;
//! use pai_providers::gemini::GeminiAdapter;
//!
//! let call = Call {
//!     operation: Operation::ChatCompletions,
//!     client: Dialect::OpenAi,
//!     model: "gemini-2.5-flash".into(),
//!     stream: true,
//!     client_wants_usage: false,
//!     body: JsonObject::from_slice(
//!         br#"{"model":"flash","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#,
//!     ).unwrap(),
//!     headers: Default::default(),
//!     query: None,
//! };
//! let credentials = Credentials {
//!     endpoint: "https://generativelanguage.googleapis.com".into(),
//!     api_key: Some(ApiKey::new("AIza-real")),
//! };
//! let request = GeminiAdapter::new().build_request(&call, &credentials).unwrap();
//! assert_eq!(
//!     request.uri(),
//!     "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
//! );
//! assert_eq!(request.headers()["x-goog-api-key"], "AIza-real");
//! ```

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use pai_core::{
    Call, Credentials, Dialect, Error, Operation, Provider, ProviderKind, StreamObserver, Usage,
};

use crate::errors::upstream_error;
use crate::openai::count_tokens_refused;
use crate::request::{base_headers, drop_anthropic_headers, finish, secret_value};
use crate::translate::{self, TranslatingObserver};

const X_GOOG_API_KEY: HeaderName = HeaderName::from_static("x-goog-api-key");

/// The adapter for Gemini upstreams. See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct GeminiAdapter;

impl GeminiAdapter {
    /// The adapter; endpoints and keys come with each call's credentials.
    pub fn new() -> GeminiAdapter {
        GeminiAdapter
    }
}

/// `{endpoint}/v1beta`, unless the endpoint already names a version.
fn versioned(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    let has_version = base
        .rsplit('/')
        .next()
        .is_some_and(|last| last.starts_with("v1"));
    if has_version {
        base.to_owned()
    } else {
        format!("{base}/v1beta")
    }
}

/// The model id as it goes in the path: without `models/`, and only characters a path segment
/// may hold as they are.
fn model_segment(model: &str) -> Result<&str, Error> {
    let model = model.strip_prefix("models/").unwrap_or(model);
    let ok = !model.is_empty()
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(model)
    } else {
        Err(Error::invalid_param(
            "model",
            format!("{model:?} is not a Gemini model id (letters, digits, '-', '.', '_')"),
        ))
    }
}

/// Whether the call is a chat turn (as opposed to a listing or a count).
fn is_chat(call: &Call) -> bool {
    matches!(
        call.operation,
        Operation::ChatCompletions | Operation::Messages
    )
}

impl Provider for GeminiAdapter {
    fn kind(&self) -> Option<ProviderKind> {
        Some(ProviderKind::Gemini)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Gemini
    }

    fn build_request(
        &self,
        call: &Call,
        credentials: &Credentials,
    ) -> Result<http::Request<Bytes>, Error> {
        let mut headers = base_headers(call);
        drop_anthropic_headers(&mut headers);
        if let Some(key) = &credentials.api_key {
            headers.insert(X_GOOG_API_KEY, secret_value("", key)?);
        }
        let base = versioned(&credentials.endpoint);
        match call.operation {
            Operation::ChatCompletions | Operation::Messages => {
                let model = model_segment(&call.model)?;
                let url = if call.stream {
                    format!("{base}/models/{model}:streamGenerateContent?alt=sse")
                } else {
                    format!("{base}/models/{model}:generateContent")
                };
                finish(Method::POST, &url, headers, translate::to_gemini(call)?)
            }
            Operation::ListModels => finish(
                Method::GET,
                &format!("{base}/models"),
                headers,
                Bytes::new(),
            ),
            Operation::CountTokens => Err(count_tokens_refused()),
        }
    }

    fn response_body(&self, call: &Call, body: Bytes) -> Result<Bytes, Error> {
        if !is_chat(call) {
            return Ok(body);
        }
        translate::response(call, Dialect::Gemini, &body)
    }

    fn usage(&self, call: &Call, body: &[u8]) -> Option<Usage> {
        if !is_chat(call) {
            return None;
        }
        translate::gemini_usage(body)
    }

    fn stream_observer(&self, call: &Call) -> Box<dyn StreamObserver> {
        Box::new(TranslatingObserver::new(call, Dialect::Gemini))
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
mod tests;
