//! Reading a request body once, and what policy needs from it.

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt;
use pai_core::{BoxError, Call, Dialect, Error, JsonObject, UpstreamBody};
use pai_providers::headers::{forwardable_query, forwardable_request_headers};

use crate::route::Route;

/// Parse what policy needs from the body, once.
pub(crate) fn parse_call(
    route: Route,
    dialect: Dialect,
    bytes: Bytes,
    parts: &http::request::Parts,
) -> Result<Call, Error> {
    let body = JsonObject::from_slice(&bytes)
        .map_err(|e| Error::invalid(format!("the request body is not a valid JSON object: {e}")))?;
    let model = match body.get::<String>("model") {
        Some(Ok(m)) if !m.trim().is_empty() => m,
        Some(Ok(_)) | None => return Err(Error::invalid_param("model", "model is required")),
        Some(Err(_)) => return Err(Error::invalid_param("model", "model must be a string")),
    };
    let stream = match body.get::<bool>("stream") {
        None => false,
        Some(Ok(b)) => b,
        Some(Err(_)) => {
            return Err(Error::invalid_param(
                "stream",
                "stream must be true or false",
            ))
        }
    };
    match body.raw("messages") {
        Some(raw) if raw.get().trim_start().starts_with('[') => {}
        _ => {
            return Err(Error::invalid_param(
                "messages",
                "messages is required and must be an array",
            ))
        }
    }
    if route == Route::Messages {
        match body.get::<u64>("max_tokens") {
            Some(Ok(n)) if n >= 1 => {}
            Some(_) => {
                return Err(Error::invalid_param(
                    "max_tokens",
                    "max_tokens must be a positive integer",
                ))
            }
            None => {
                return Err(Error::invalid_param(
                    "max_tokens",
                    "max_tokens: Field required",
                ))
            }
        }
    }
    let client_wants_usage = route == Route::ChatCompletions
        && stream
        && body
            .get::<serde_json::Value>("stream_options")
            .and_then(Result::ok)
            .and_then(|v| v.get("include_usage").and_then(serde_json::Value::as_bool))
            == Some(true);
    Ok(Call {
        operation: route.operation(),
        client: dialect,
        model,
        stream: stream && route != Route::CountTokens,
        client_wants_usage,
        body,
        headers: forwardable_request_headers(&parts.headers),
        query: forwardable_query(parts.uri.query(), &parts.headers),
    })
}

/// The output bound the client asked for, in whichever field its dialect uses.
pub(crate) fn output_bound(call: &Call) -> Option<u64> {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|f| call.body.get::<u64>(f).and_then(Result::ok))
}

/// Bound the output so that input plus output stays within `limit`; the bound that applies.
///
/// Refuses a request whose input alone is over the limit. The client's own bound is kept when
/// it is tighter; otherwise the dialect's own field is set (`max_tokens` for Anthropic clients,
/// the field the client used — or `max_completion_tokens` — for OpenAI clients).
pub(crate) fn bound_output(
    call: &mut Call,
    estimated_input: u64,
    limit: u64,
    limit_name: &str,
) -> Result<u64, Error> {
    if estimated_input >= limit {
        return Err(Error::invalid(format!(
            "the request's input is about {estimated_input} tokens, over the {limit} tokens that {limit_name} allows per request"
        )));
    }
    let room = limit - estimated_input;
    let asked = output_bound(call);
    let bound = asked.map_or(room, |a| a.min(room));
    if asked != Some(bound) {
        let field = match call.client {
            Dialect::Anthropic => "max_tokens",
            _ if call.body.contains("max_tokens")
                && !call.body.contains("max_completion_tokens") =>
            {
                "max_tokens"
            }
            _ => "max_completion_tokens",
        };
        call.body
            .set(field, &bound)
            .map_err(|e| Error::Internal(format!("cannot bound {field}: {e}")))?;
    }
    Ok(bound)
}

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("body exceeds the limit")]
    TooLarge,
    #[error("{0}")]
    Body(BoxError),
}

/// Read a body whole, refusing it as soon as it passes `limit` bytes.
pub(crate) async fn read_limited(mut body: UpstreamBody, limit: usize) -> Result<Bytes, ReadError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Body)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(ReadError::TooLarge);
            }
            if buf.is_empty() && body.is_end_stream() {
                return Ok(data);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
