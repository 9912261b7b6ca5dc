//! Routing: which handler answers which method and path, after the request is recorded.
//!
//! Fixed paths are matched as written; Gemini and Azure name the model or the deployment in
//! the path, so their routes are parsed ([`Gemini::route`], [`Azure::route`]).

use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::anthropic::{self, Anthropic};
use crate::azure::{self, Azure};
use crate::completion::{self, Dialect};
use crate::gemini::{self, Gemini};
use crate::guard;
use crate::openai::{self, OpenAi};
use crate::record::RecordedRequest;
use crate::response::{self, MockResponse};
use crate::state::Shared;

/// The largest request body the mock reads; larger ones get a 413.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Every path the mock serves, for telling a wrong method (405) from a wrong path (404).
const PATHS: [&str; 12] = [
    "/v1/chat/completions",
    "/chat/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/models",
    "/models",
    "/v1beta/models",
    "/_mock/requests",
    "/_mock/reset",
    "/predict",
    "/contentsafety/text:shieldPrompt",
    "/v2/guard",
];

/// Answers one request.
pub(crate) async fn handle(shared: &Shared, request: Request<Incoming>) -> MockResponse {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let query = parts.uri.query();
    let family = Family::of(path, &parts.headers);
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return family.refuse(StatusCode::PAYLOAD_TOO_LARGE, "Request too large.")
        }
        Err(_) => return family.refuse(StatusCode::BAD_REQUEST, "Unreadable body."),
    };
    if !path.starts_with("/_mock/") {
        shared.record(RecordedRequest {
            method: parts.method.to_string(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect(),
            body: body.clone(),
        });
    }

    let headers = &parts.headers;
    let method = &parts.method;
    if let Some(call) = Gemini::route(path, query) {
        if method == Method::POST {
            return completion::complete(&call, shared, headers, &body).await;
        }
        return family.refuse(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed.");
    }
    if let Some(call) = Azure::route(path, query) {
        if method == Method::POST {
            return completion::complete(&call, shared, headers, &body).await;
        }
        return family.refuse(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed.");
    }
    match (method, path) {
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => {
            completion::complete(&OpenAi, shared, headers, &body).await
        }
        (&Method::POST, "/v1/messages") => {
            completion::complete(&Anthropic, shared, headers, &body).await
        }
        (&Method::POST, "/predict") => guard::tei(shared, headers, &body).await,
        (&Method::POST, "/contentsafety/text:shieldPrompt") => {
            guard::shield_prompt(shared, headers, query, &body).await
        }
        (&Method::POST, "/v2/guard") => guard::lakera(shared, headers, &body).await,
        (&Method::POST, "/v1/messages/count_tokens") => count_tokens(shared, headers, &body),
        (&Method::GET, "/v1/models" | "/models") => models(shared, headers, family),
        (&Method::GET, "/v1beta/models") => gemini::models(&shared.config, headers, query),
        (&Method::GET, "/_mock/requests") => {
            let listed: Vec<Value> = shared.requests().iter().map(|r| r.to_json()).collect();
            response::json(StatusCode::OK, &Value::Array(listed))
        }
        (&Method::POST, "/_mock/reset") => {
            shared.reset();
            response::json(StatusCode::OK, &json!({"ok": true}))
        }
        (method, path) if PATHS.contains(&path) => family.refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("Invalid URL ({method} {path})"),
        ),
        (method, path) => family.refuse(
            StatusCode::NOT_FOUND,
            &format!("Invalid URL ({method} {path})"),
        ),
    }
}

fn count_tokens(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> MockResponse {
    if let Err(refusal) = Anthropic.authorize(&shared.config, headers) {
        return *refusal;
    }
    match serde_json::from_slice(body) {
        Ok(request) => anthropic::count_tokens(&request),
        Err(error) => Anthropic.malformed(&error),
    }
}

fn models(shared: &Shared, headers: &HeaderMap, family: Family) -> MockResponse {
    let authorized = if family == Family::Anthropic {
        Anthropic.authorize(&shared.config, headers)
    } else {
        OpenAi.authorize(&shared.config, headers)
    };
    match authorized {
        Ok(()) if family == Family::Anthropic => anthropic::models(),
        Ok(()) => openai::models(),
        Err(refusal) => *refusal,
    }
}

/// Whose error shape a request gets when no dialect handler has read it yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    OpenAi,
    Anthropic,
    Gemini,
    Azure,
}

impl Family {
    /// By the path, or by Anthropic's headers on a path the dialects share.
    fn of(path: &str, headers: &HeaderMap) -> Self {
        if path.starts_with("/v1/messages") {
            Self::Anthropic
        } else if path.starts_with("/v1beta/") || Gemini::route(path, None).is_some() {
            Self::Gemini
        } else if path.starts_with("/openai/") {
            Self::Azure
        } else if headers.contains_key("anthropic-version") || headers.contains_key("x-api-key") {
            Self::Anthropic
        } else {
            Self::OpenAi
        }
    }

    /// A refusal in this family's shape. OpenAI's 404 says `Invalid URL (METHOD PATH)`, which
    /// `message` carries; the others word their 404s their own way.
    fn refuse(self, status: StatusCode, message: &str) -> MockResponse {
        match self {
            Self::Anthropic => {
                let kind = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
                    StatusCode::NOT_FOUND => "not_found_error",
                    _ => "invalid_request_error",
                };
                let message = match status {
                    StatusCode::NOT_FOUND => "Not Found",
                    StatusCode::METHOD_NOT_ALLOWED => "Method Not Allowed",
                    _ => message,
                };
                anthropic::error(status, kind, message)
            }
            Self::Gemini => {
                let message = match status {
                    StatusCode::NOT_FOUND => "Requested entity was not found.",
                    _ => message,
                };
                gemini::error(status, message)
            }
            Self::Azure if status == StatusCode::NOT_FOUND => azure::not_found(),
            Self::Azure => azure::error(status, &status.as_u16().to_string(), message),
            Self::OpenAi => openai::error(status, message, "invalid_request_error", None, None),
        }
    }
}
