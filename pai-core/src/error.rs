//! The one error type of the gateway.
//!
//! Every variant knows its HTTP status and renders in the caller's dialect: OpenAI-shaped for
//! `/chat/completions`, Anthropic-shaped for `/messages`. Messages never carry key material.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::dialect::Dialect;

/// Everything that can go wrong on the way through the gateway, as the client will hear it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Error {
    /// The request is malformed or asks for something invalid (400).
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong and how to fix it.
        message: String,
        /// The offending request field, when there is one.
        param: Option<String>,
    },
    /// No access key was presented (401).
    #[error("missing access key: send it as `x-api-key` or `Authorization: Bearer`")]
    MissingKey,
    /// The access key is unknown, revoked or rotated out (401).
    #[error("invalid access key")]
    InvalidKey,
    /// The caller is known but not allowed to do this (403).
    #[error("{0}")]
    PermissionDenied(String),
    /// The model does not exist or is not offered to this caller (404).
    #[error("{message}")]
    ModelNotFound {
        /// The model the caller named.
        model: String,
        /// The whole explanation, close matches included.
        message: String,
    },
    /// No such route (404).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request body exceeds the gateway's limit (413).
    #[error("request body is larger than the gateway's limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The client did not send its request in time: its body stalled (408).
    #[error("{0}")]
    RequestTimeout(String),
    /// A daily budget would be exceeded (429).
    #[error("{budget} is exhausted for today; it resets in {retry_after_secs} s at 00:00 UTC")]
    BudgetExceeded {
        /// Which budget, in the user's words (e.g. `ModelProvider "openai" maxTokensPerDay`).
        budget: String,
        /// Seconds until the budget resets.
        retry_after_secs: u64,
    },
    /// A rate limit was hit (429).
    #[error("{message}")]
    RateLimited {
        /// Which limit.
        message: String,
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// The operation is not offered for this provider (501).
    #[error("{0}")]
    NotImplemented(String),
    /// The upstream answered with an error; its status is passed on (4xx) or mapped (5xx).
    #[error("{message}")]
    Upstream {
        /// The status the client receives.
        status: StatusCode,
        /// The upstream's message, cleaned of anything secret.
        message: String,
        /// Seconds the upstream asked callers to wait, if it said.
        retry_after_secs: Option<u64>,
    },
    /// The upstream could not be reached (502).
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    /// The gateway cannot serve right now: store down, queue full (503).
    #[error("{0}")]
    Unavailable(String),
    /// The upstream did not answer in time (504).
    #[error("upstream timed out: {0}")]
    UpstreamTimeout(String),
    /// A bug or an unexpected state inside the gateway (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A 400 with a message.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::InvalidRequest {
            message: message.into(),
            param: None,
        }
    }

    /// A 400 about one request field.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Error {
        Error::InvalidRequest {
            message: message.into(),
            param: Some(param.to_owned()),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Error::MissingKey | Error::InvalidKey => StatusCode::UNAUTHORIZED,
            Error::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Error::ModelNotFound { .. } | Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::BudgetExceeded { .. } | Error::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Upstream { status, .. } => *status,
            Error::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error.type` of an OpenAI-shaped body.
    pub fn openai_type(&self) -> &'static str {
        match self.status().as_u16() {
            400 | 404 | 405 | 408 | 413 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            501 => "not_implemented_error",
            _ => "api_error",
        }
    }

    /// The `error.code` of an OpenAI-shaped body: a stable machine-readable name.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest { .. } => "invalid_request",
            Error::MissingKey => "missing_api_key",
            Error::InvalidKey => "invalid_api_key",
            Error::PermissionDenied(_) => "permission_denied",
            Error::ModelNotFound { .. } => "model_not_found",
            Error::NotFound(_) => "not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::PayloadTooLarge { .. } => "request_too_large",
            Error::RequestTimeout(_) => "request_timeout",
            Error::BudgetExceeded { .. } => "budget_exceeded",
            Error::RateLimited { .. } => "rate_limit_exceeded",
            Error::NotImplemented(_) => "not_implemented",
            Error::Upstream { .. } => "upstream_error",
            Error::UpstreamUnreachable(_) => "upstream_unreachable",
            Error::Unavailable(_) => "service_unavailable",
            Error::UpstreamTimeout(_) => "upstream_timeout",
            Error::Internal(_) => "internal_error",
        }
    }

    /// The `error.type` of an Anthropic-shaped body.
    pub fn anthropic_type(&self) -> &'static str {
        anthropic_type_for(self.status())
    }

    /// Seconds a client should wait before retrying, when the error says.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::BudgetExceeded {
                retry_after_secs, ..
            }
            | Error::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Error::Upstream {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => None,
        }
    }

    /// The JSON error body in `dialect`.
    pub fn body(&self, dialect: Dialect) -> Bytes {
        let message = self.to_string();
        let value = match dialect.client_error_dialect() {
            Dialect::Anthropic => json!({
                "type": "error",
                "error": {"type": self.anthropic_type(), "message": message},
            }),
            _ => {
                let param = match self {
                    Error::InvalidRequest { param, .. } => param.clone(),
                    Error::ModelNotFound { .. } => Some("model".to_owned()),
                    _ => None,
                };
                json!({
                    "error": {
                        "message": message,
                        "type": self.openai_type(),
                        "param": param,
                        "code": self.code(),
                    }
                })
            }
        };
        Bytes::from(value.to_string())
    }

    /// The whole HTTP response for a client speaking `dialect`.
    ///
    /// Budget refusals carry `x-should-retry: false`: the official SDKs would otherwise retry a
    /// budget that cannot recover before midnight. Rate-limit refusals do not: a per-minute
    /// limit frees up within seconds, and the SDKs' retry after `retry-after` is what a caller
    /// wants.
    pub fn to_response<B: From<Bytes>>(&self, dialect: Dialect) -> Response<B> {
        let mut response = Response::new(B::from(self.body(dialect)));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, Error::BudgetExceeded { .. }) {
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        response
    }

    /// The in-band error event that ends a stream already under way, in `dialect`.
    pub fn sse_event(&self, dialect: Dialect) -> Bytes {
        match dialect.client_error_dialect() {
            Dialect::Anthropic => {
                let body = json!({
                    "type": "error",
                    "error": {"type": self.anthropic_type(), "message": self.to_string()},
                });
                Bytes::from(format!("event: error\ndata: {body}\n\n"))
            }
            _ => {
                let body = String::from_utf8_lossy(&self.body(Dialect::OpenAi)).into_owned();
                Bytes::from(format!("data: {body}\n\n"))
            }
        }
    }
}

/// Anthropic's `error.type` for an HTTP status.
pub fn anthropic_type_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 405 | 408 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(b: Bytes) -> serde_json::Value {
        serde_json::from_slice(&b).unwrap()
    }

    #[test]
    fn openai_shape() {
        let e = Error::invalid_param("messages", "messages must be a list");
        let v = json(e.body(Dialect::OpenAi));
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "messages");
        assert_eq!(v["error"]["message"], "messages must be a list");
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn anthropic_shape() {
        let v = json(Error::InvalidKey.body(Dialect::Anthropic));
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
    }

    #[test]
    fn budget_refusals_say_when_to_come_back() {
        let e = Error::BudgetExceeded {
            budget: "AccessKey \"alice\" limits.maxTokensPerDay".into(),
            retry_after_secs: 3600,
        };
        let r: Response<Bytes> = e.to_response(Dialect::OpenAi);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "3600");
        assert_eq!(r.headers()["x-should-retry"], "false");
        assert!(e.to_string().contains("alice"));
    }

    #[test]
    fn rate_limit_refusals_may_be_retried_after_the_wait() {
        let e = Error::RateLimited {
            message: "AccessKey \"alice\" maxRequestsPerMinute (60)".into(),
            retry_after_secs: 2,
        };
        let r: Response<Bytes> = e.to_response(Dialect::Anthropic);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "2");
        assert!(!r.headers().contains_key("x-should-retry"));
    }

    #[test]
    fn anthropic_status_types() {
        assert_eq!(
            anthropic_type_for(StatusCode::from_u16(529).unwrap()),
            "overloaded_error"
        );
        assert_eq!(
            anthropic_type_for(StatusCode::PAYLOAD_TOO_LARGE),
            "request_too_large"
        );
        assert_eq!(
            anthropic_type_for(StatusCode::GATEWAY_TIMEOUT),
            "timeout_error"
        );
    }
}
