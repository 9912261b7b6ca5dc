//! Routing: which handler answers which method and path, after the request is recorded.

use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::anthropic::{self, Anthropic};
use crate::completion::{self, Dialect};
use crate::openai::{self, OpenAi};
use crate::record::RecordedRequest;
use crate::response::{self, MockResponse};
use crate::state::Shared;

/// The largest request body the mock reads; larger ones get a 413.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Every path the mock serves, for telling a wrong method (405) from a wrong path (404).
const PATHS: [&str; 8] = [
    "/v1/chat/completions",
    "/chat/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/models",
    "/models",
    "/_mock/requests",
    "/_mock/reset",
];

/// Answers one request.
pub(crate) async fn handle(shared: &Shared, request: Request<Incoming>) -> MockResponse {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let anthropic = is_anthropic(path, &parts.headers);
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return refuse(
                anthropic,
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request too large.",
            )
        }
        Err(_) => return refuse(anthropic, StatusCode::BAD_REQUEST, "Unreadable body."),
    };
    if !path.starts_with("/_mock/") {
        shared.record(RecordedRequest {
            method: parts.method.to_string(),
            path: path.to_owned(),
            query: parts.uri.query().map(str::to_owned),
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
    match (&parts.method, path) {
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => {
            completion::complete::<OpenAi>(shared, headers, &body).await
        }
        (&Method::POST, "/v1/messages") => {
            completion::complete::<Anthropic>(shared, headers, &body).await
        }
        (&Method::POST, "/v1/messages/count_tokens") => count_tokens(shared, headers, &body),
        (&Method::GET, "/v1/models" | "/models") => models(shared, headers, anthropic),
        (&Method::GET, "/_mock/requests") => {
            let listed: Vec<Value> = shared.requests().iter().map(|r| r.to_json()).collect();
            response::json(StatusCode::OK, &Value::Array(listed))
        }
        (&Method::POST, "/_mock/reset") => {
            shared.reset();
            response::json(StatusCode::OK, &json!({"ok": true}))
        }
        (method, path) => {
            let (status, message) = if PATHS.contains(&path) {
                (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
            } else {
                (StatusCode::NOT_FOUND, "Not Found")
            };
            if anthropic {
                let kind = if status == StatusCode::NOT_FOUND {
                    "not_found_error"
                } else {
                    "invalid_request_error"
                };
                anthropic::error(status, kind, message)
            } else {
                let message = format!("Invalid URL ({method} {path})");
                openai::error(status, &message, "invalid_request_error", None, None)
            }
        }
    }
}

fn count_tokens(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> MockResponse {
    if let Err(refusal) = Anthropic::authorize(&shared.config, headers) {
        return *refusal;
    }
    match serde_json::from_slice(body) {
        Ok(request) => anthropic::count_tokens(&request),
        Err(error) => Anthropic::malformed(&error),
    }
}

fn models(shared: &Shared, headers: &HeaderMap, anthropic: bool) -> MockResponse {
    let authorized = if anthropic {
        Anthropic::authorize(&shared.config, headers)
    } else {
        OpenAi::authorize(&shared.config, headers)
    };
    match authorized {
        Ok(()) if anthropic => anthropic::models(),
        Ok(()) => openai::models(),
        Err(refusal) => *refusal,
    }
}

/// Whether a request speaks Anthropic: by its path, or by Anthropic's headers on a shared path.
fn is_anthropic(path: &str, headers: &HeaderMap) -> bool {
    path.starts_with("/v1/messages")
        || headers.contains_key("anthropic-version")
        || headers.contains_key("x-api-key")
}

fn refuse(anthropic: bool, status: StatusCode, message: &str) -> MockResponse {
    if anthropic {
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request_too_large"
        } else {
            "invalid_request_error"
        };
        anthropic::error(status, kind, message)
    } else {
        openai::error(status, message, "invalid_request_error", None, None)
    }
}
