//! Reading a request body once, and what policy needs from it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt;
use pai_core::{BoxError, Call, Dialect, Error, JsonObject, UpstreamBody};
use pai_providers::headers::{forwardable_query, forwardable_request_headers};

use crate::route::Route;

/// A request refused while parsing, with the model it named (cut to [`MAX_MODEL_BYTES`]) for
/// its record.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub error: Error,
    pub model: Option<String>,
}

/// Parse what policy needs from the body, once.
pub(crate) fn parse_call(
    route: Route,
    dialect: Dialect,
    bytes: Bytes,
    headers: &http::HeaderMap,
    uri: &http::Uri,
) -> Result<Call, Refusal> {
    let mut model = None;
    read_call(route, dialect, bytes, headers, uri, &mut model)
        .map_err(|error| Refusal { error, model })
}

/// `model` cut to at most [`MAX_MODEL_BYTES`] at a character boundary, as a record keeps it.
fn shown_model(model: &str) -> String {
    let mut end = model.len().min(MAX_MODEL_BYTES);
    while !model.is_char_boundary(end) {
        end -= 1;
    }
    model[..end].to_owned()
}

fn read_call(
    route: Route,
    dialect: Dialect,
    bytes: Bytes,
    headers: &http::HeaderMap,
    uri: &http::Uri,
    seen_model: &mut Option<String>,
) -> Result<Call, Error> {
    let body = JsonObject::from_slice(&bytes)
        .map_err(|e| Error::invalid(format!("the request body is not a valid JSON object: {e}")))?;
    let model = match body.get::<String>("model") {
        Some(Ok(m)) if !m.trim().is_empty() => m,
        Some(Ok(_)) | None => return Err(Error::invalid_param("model", "model is required")),
        Some(Err(_)) => return Err(Error::invalid_param("model", "model must be a string")),
    };
    *seen_model = Some(shown_model(&model));
    if model.len() > MAX_MODEL_BYTES {
        return Err(Error::invalid_param(
            "model",
            format!(
                "model is {} bytes long; a model name has at most {MAX_MODEL_BYTES}",
                model.len()
            ),
        ));
    }
    if model.chars().any(char::is_control) {
        return Err(Error::invalid_param(
            "model",
            "model must not contain control characters",
        ));
    }
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
    // Output bounds and choices are what budgets reserve: each must be a plain integer in
    // range, never read as absent when it is merely odd.
    let counts: &[(&str, u64)] = match route {
        Route::Messages => &[("max_tokens", MAX_OUTPUT_TOKENS)],
        Route::ChatCompletions => &[
            ("max_tokens", MAX_OUTPUT_TOKENS),
            ("max_completion_tokens", MAX_OUTPUT_TOKENS),
            ("n", MAX_CHOICES),
        ],
        _ => &[],
    };
    for (field, max) in counts {
        match body.get::<u64>(field) {
            Some(Ok(n)) if (1..=*max).contains(&n) => {}
            Some(_) => {
                return Err(Error::invalid_param(
                    field,
                    format!("{field} must be an integer from 1 to {max}"),
                ))
            }
            None if route == Route::Messages => {
                return Err(Error::invalid_param(
                    "max_tokens",
                    "max_tokens: Field required",
                ))
            }
            None => {}
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
        headers: forwardable_request_headers(headers),
        query: forwardable_query(uri.query(), headers),
    })
}

/// The longest model name pai reads; longer ones are refused before any lookup.
pub(crate) const MAX_MODEL_BYTES: usize = 256;
/// The largest output bound pai accepts; far above any model's.
pub(crate) const MAX_OUTPUT_TOKENS: u64 = 1_000_000_000;
/// The most choices (`n`) a chat completion may ask for, as OpenAI allows.
pub(crate) const MAX_CHOICES: u64 = 128;

/// The output bound per choice the client asked for, in whichever field its dialect uses
/// (checked by [`parse_call`]).
pub(crate) fn output_bound(call: &Call) -> Option<u64> {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|f| call.body.get::<u64>(f).and_then(Result::ok))
}

/// How many answers the call asks for (`n`, chat completions only); each may use the whole
/// output bound.
pub(crate) fn choices(call: &Call) -> u64 {
    call.body
        .get::<u64>("n")
        .and_then(Result::ok)
        .unwrap_or(1)
        .max(1)
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
    // Each of the `n` answers may use the whole bound.
    let room = (limit - estimated_input) / choices(call);
    if room == 0 {
        return Err(Error::invalid(format!(
            "the request's input is about {estimated_input} tokens and it asks for {} answers, which leaves no room for output within the {limit} tokens that {limit_name} allows per request",
            choices(call)
        )));
    }
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
    #[error("the body stalled")]
    TimedOut,
}

/// Read a body whole, refusing it as soon as it passes `limit` bytes, when no data comes for
/// `idle`, or when it is not all there within `total`.
pub(crate) async fn read_limited(
    mut body: UpstreamBody,
    limit: usize,
    idle: Duration,
    total: Duration,
) -> Result<Bytes, ReadError> {
    let until = tokio::time::Instant::now() + total;
    let mut buf = BytesMut::new();
    loop {
        let next = tokio::time::Instant::now() + idle;
        let frame = match tokio::time::timeout_at(next.min(until), body.frame()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => return Err(ReadError::TimedOut),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(route: Route, body: &str) -> Result<Call, Error> {
        let (parts, ()) = http::Request::new(()).into_parts();
        let dialect = route.operation().client_dialect();
        parse_call(
            route,
            dialect,
            Bytes::from(body.to_owned()),
            &parts.headers,
            &parts.uri,
        )
        .map_err(|r| r.error)
    }

    #[test]
    fn a_recorded_model_name_is_cut_at_a_character_boundary() {
        let long = "é".repeat(200);
        let shown = shown_model(&long);
        assert_eq!(shown.len(), 256);
        assert!(long.starts_with(&shown));
        assert_eq!(shown_model("gpt-4o"), "gpt-4o");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary JSON-ish bodies: an answer, never a panic, in bounded time; and what is
        /// accepted has a bounded model name and valid output bounds.
        #[test]
        fn any_body_is_parsed_or_refused(
            fields in "[\\[\\]{}\",:0-9a-z.eE+ -]{0,120}",
            model in "[a-z0-9\\r\\n-]{0,300}",
            max in prop_oneof![Just("10".to_owned()), Just("-5".to_owned()), Just("1e400".to_owned()), Just("1.5".to_owned()), Just("\"9\"".to_owned()), Just("0".to_owned())],
            messages in prop_oneof![Just("messages"), Just("n"), Just("max_tokens")],
        ) {
            let body = format!(r#"{{"model":"{model}","max_tokens":{max},"{messages}":[{fields}]}}"#);
            for route in [Route::ChatCompletions, Route::Messages] {
                let started = std::time::Instant::now();
                if let Ok(call) = parse(route, &body) {
                    prop_assert!(call.model.len() <= MAX_MODEL_BYTES);
                    prop_assert!(!call.model.chars().any(char::is_control));
                    prop_assert!(output_bound(&call).is_some_and(|b| b >= 1));
                    prop_assert!(choices(&call) >= 1);
                }
                prop_assert!(started.elapsed() < std::time::Duration::from_millis(200));
            }
        }
    }
}
