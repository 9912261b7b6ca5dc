//! The adapter for Azure OpenAI.
//!
//! The model id a client names is the Azure *deployment* name. Two URL schemes exist, told
//! apart by the configured endpoint:
//!
//! - classic, endpoint `https://RES.openai.azure.com` (optionally with `?api-version=V`):
//!   `POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=V`, where `V`
//!   is the endpoint's own `api-version` or else [`DEFAULT_AZURE_API_VERSION`];
//! - v1, endpoint ending in `/openai/v1`: `POST {endpoint}/chat/completions` with
//!   `model` = the deployment name and no `api-version`.
//!
//! The key goes in `api-key` (not `Authorization`). Everything else is the OpenAI dialect and is
//! shared with [`crate::openai`]: streams always ask for usage, Azure's first chunk (empty
//! `choices`, `prompt_filter_results`, no usage) is not taken for a usage chunk, Anthropic
//! clients are translated, and `count_tokens` answers 501. The answer's `model` is the model
//! behind the deployment, as Azure reports it.
//!
//! # Example
//!
//! ```
//! use pai_core::{Call, Credentials, Dialect, JsonObject, Operation, Provider};
//! use pai_core::provider::ApiKey;
//! use pai_providers::azure::AzureOpenAiAdapter;
//!
//! let call = Call {
//!     operation: Operation::ChatCompletions,
//!     client: Dialect::OpenAi,
//!     model: "prod-gpt4o".into(),
//!     stream: false,
//!     client_wants_usage: false,
//!     body: JsonObject::from_slice(br#"{"model":"prod-gpt4o","messages":[]}"#).unwrap(),
//!     headers: Default::default(),
//!     query: None,
//! };
//! let credentials = Credentials {
//!     endpoint: "https://contoso.openai.azure.com".into(),
//!     api_key: Some(ApiKey::new("0123abcd")),
//! };
//! let request = AzureOpenAiAdapter::new().build_request(&call, &credentials).unwrap();
//! assert_eq!(
//!     request.uri(),
//!     "https://contoso.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21"
//! );
//! assert_eq!(request.headers()["api-key"], "0123abcd");
//! ```

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use pai_core::{
    Call, Credentials, Dialect, Error, Operation, Provider, ProviderKind, StreamObserver, Usage,
};

use crate::errors::upstream_error;
use crate::openai::{
    chat_body, chat_response_body, chat_stream_observer, count_tokens_refused, max_tokens_field,
    usage,
};
use crate::request::{base_headers, drop_anthropic_headers, finish, secret_value};

/// The `api-version` used when the endpoint names none (the GA version of October 2024).
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

const API_KEY: HeaderName = HeaderName::from_static("api-key");

/// The adapter for Azure OpenAI. See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct AzureOpenAiAdapter;

impl AzureOpenAiAdapter {
    /// The adapter; endpoints and keys come with each call's credentials.
    pub fn new() -> AzureOpenAiAdapter {
        AzureOpenAiAdapter
    }
}

/// Which URL scheme an endpoint uses.
#[derive(Debug, PartialEq, Eq)]
enum Scheme<'a> {
    /// `…/openai/v1`: the deployment goes in the body.
    V1 { base: &'a str },
    /// The resource root: the deployment goes in the path, with an `api-version`.
    Classic { base: &'a str, api_version: &'a str },
}

fn scheme(endpoint: &str) -> Scheme<'_> {
    let (base, query) = endpoint.split_once('?').unwrap_or((endpoint, ""));
    let base = base.trim_end_matches('/');
    if base.ends_with("/openai/v1") {
        return Scheme::V1 { base };
    }
    let api_version = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("api-version="))
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_AZURE_API_VERSION);
    Scheme::Classic {
        base: base.strip_suffix("/openai").unwrap_or(base),
        api_version,
    }
}

/// A deployment name, checked before it goes in a URL path.
fn deployment(model: &str) -> Result<&str, Error> {
    let ok = !model.is_empty()
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        Ok(model)
    } else {
        Err(Error::invalid_param(
            "model",
            format!("{model:?} is not an Azure deployment name (letters, digits, '-', '.', '_')"),
        ))
    }
}

impl Provider for AzureOpenAiAdapter {
    fn kind(&self) -> Option<ProviderKind> {
        Some(ProviderKind::AzureOpenAi)
    }

    fn dialect(&self) -> Dialect {
        Dialect::OpenAi
    }

    fn build_request(
        &self,
        call: &Call,
        credentials: &Credentials,
    ) -> Result<http::Request<Bytes>, Error> {
        let mut headers = base_headers(call);
        drop_anthropic_headers(&mut headers);
        if let Some(key) = &credentials.api_key {
            headers.insert(API_KEY, secret_value("", key)?);
        }
        let scheme = scheme(&credentials.endpoint);
        match call.operation {
            Operation::ChatCompletions | Operation::Messages => {
                let url = match scheme {
                    Scheme::V1 { base } => format!("{base}/chat/completions"),
                    Scheme::Classic { base, api_version } => format!(
                        "{base}/openai/deployments/{}/chat/completions?api-version={api_version}",
                        deployment(&call.model)?
                    ),
                };
                let body = chat_body(call, max_tokens_field(ProviderKind::AzureOpenAi))?;
                finish(Method::POST, &url, headers, body)
            }
            Operation::ListModels => {
                let url = match scheme {
                    Scheme::V1 { base } => format!("{base}/models"),
                    Scheme::Classic { base, api_version } => {
                        format!("{base}/openai/models?api-version={api_version}")
                    }
                };
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

#[cfg(test)]
mod tests;
