//! Trying one candidate, with retries, until it answers or is given up.
//!
//! A try succeeds when the upstream answers 2xx and, for a stream, its first event has arrived:
//! until then nothing has gone to the client, so any failure may still be retried. Retryable
//! failures (connection errors, timeouts, 408/429/5xx/529, a stream that breaks before its first
//! event) wait a backoff with full jitter — or what `retry-after` asks, when that is reasonable —
//! and try again. A client error (400, 413, 422) is final: no other model would fix the request.
//! Anything else gives the candidate up so the next one can answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use pai_core::{Call, Error, Provider, SseEvent, TransportError, UpstreamBody};
use pai_providers::sent_key::Scrubbed;
use pai_providers::sse::{EventTooLong, SseParser};

use super::candidates::Candidate;
use super::parse::{read_limited, ReadError};
use super::{Inner, Journey};
use crate::reliability::{retry_after, retryable_status};

const MAX_UPSTREAM_ERROR_BYTES: usize = 1 << 20;
const MAX_UPSTREAM_BODY_BYTES: usize = 256 << 20;

/// What a successful try produced.
pub(crate) enum Answer {
    /// A stream whose first events have arrived.
    Stream {
        head: http::response::Parts,
        body: UpstreamBody,
        parser: SseParser,
        first: Vec<SseEvent>,
        adapter: Arc<dyn Provider>,
    },
    /// A complete JSON answer.
    Json {
        head: http::response::Parts,
        body: Bytes,
        adapter: Arc<dyn Provider>,
    },
}

/// Why a candidate did not answer.
pub(crate) enum Failure {
    /// The request itself is wrong; no candidate will do better.
    Final(Error),
    /// This candidate failed; the next may answer.
    Exhausted(Error),
}

/// One failed try: the error, and whether (and after how long) to try again.
struct Miss {
    error: Error,
    retry: bool,
    wait: Option<Duration>,
}

impl Miss {
    fn retry(error: Error) -> Miss {
        Miss {
            error,
            retry: true,
            wait: None,
        }
    }
}

pub(crate) async fn run(
    inner: &Inner,
    candidate: &Candidate,
    call: &Call,
    deadline: Instant,
    journey: &mut Journey,
) -> Result<Answer, Failure> {
    let entry = &candidate.provider;
    let name = &entry.resource.metadata.name;
    let adapter = entry.adapter.clone().ok_or_else(|| {
        Failure::Exhausted(Error::NotImplemented(format!(
            "ModelProvider {name:?} names provider {}, which this gateway has no adapter for",
            entry.resource.spec.provider
        )))
    })?;
    let credentials = candidate.credentials().as_ref().map_err(|why| {
        Failure::Exhausted(Error::Unavailable(format!(
            "the gateway cannot call this provider: {why}"
        )))
    })?;
    // Whatever comes back is cleaned of the key sent: errors (and so records and logs),
    // bodies, stream events.
    let adapter = Scrubbed::wrap(adapter, credentials);
    let policy = &inner.reliability;
    let mut last: Option<Error> = None;
    for attempt in 0..policy.max_attempts.max(1) {
        if attempt > 0 {
            journey.retries += 1;
        }
        let request = adapter
            .build_request(call, credentials)
            .map_err(Failure::Final)?;
        match try_once(inner, &adapter, call, request, deadline).await {
            Ok(answer) => return Ok(answer),
            Err(miss) if !miss.retry => {
                return Err(match miss.error.status().as_u16() {
                    400 | 413 | 422 => Failure::Final(miss.error),
                    _ => Failure::Exhausted(miss.error),
                })
            }
            Err(miss) => {
                if attempt + 1 >= policy.max_attempts.max(1) {
                    last = Some(miss.error);
                    break;
                }
                let wait = match miss.wait {
                    Some(asked) if asked > policy.max_retry_after => {
                        tracing::info!(candidate = %candidate.label, wait_s = asked.as_secs(), "upstream asks to wait longer than we hold a client; giving the candidate up");
                        return Err(Failure::Exhausted(miss.error));
                    }
                    Some(asked) => asked,
                    None => policy.backoff(attempt + 1),
                };
                if Instant::now() + wait >= deadline {
                    return Err(Failure::Exhausted(miss.error));
                }
                tracing::info!(candidate = %candidate.label, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, error = %miss.error, "retrying");
                tokio::time::sleep(wait).await;
                last = Some(miss.error);
            }
        }
    }
    Err(Failure::Exhausted(last.unwrap_or_else(|| {
        Error::Unavailable(format!("{} did not answer", candidate.label))
    })))
}

async fn try_once(
    inner: &Inner,
    adapter: &Arc<dyn Provider>,
    call: &Call,
    request: http::Request<Bytes>,
    deadline: Instant,
) -> Result<Answer, Miss> {
    let policy = &inner.reliability;
    let first_byte_by = (Instant::now() + policy.first_byte_timeout).min(deadline);
    let sent = tokio::time::timeout_at(first_byte_by.into(), inner.transport.send(request)).await;
    let response = match sent {
        Err(_) => {
            return Err(Miss::retry(Error::UpstreamTimeout(format!(
                "no response within {} s",
                policy.first_byte_timeout.as_secs()
            ))))
        }
        Ok(Err(TransportError::Timeout(why))) => {
            return Err(Miss::retry(Error::UpstreamTimeout(why)))
        }
        Ok(Err(TransportError::InvalidRequest(why))) => {
            return Err(Miss {
                error: Error::Internal(why),
                retry: false,
                wait: None,
            })
        }
        Ok(Err(e)) => return Err(Miss::retry(Error::UpstreamUnreachable(e.to_string()))),
        Ok(Ok(response)) => response,
    };
    let (head, body) = response.into_parts();
    let status = head.status;

    if !status.is_success() {
        // An error body that stalls must not hold the call: the idle timeout and the call's
        // deadline bound it too.
        let left = deadline.saturating_duration_since(Instant::now());
        let bytes = read_limited(body, MAX_UPSTREAM_ERROR_BYTES, policy.idle_timeout, left)
            .await
            .unwrap_or_default();
        let error = adapter.upstream_error(call, status, &head.headers, &bytes);
        return Err(Miss {
            error,
            retry: retryable_status(status),
            wait: retry_after(&head.headers),
        });
    }

    let is_sse = head
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if is_sse {
        let parser = SseParser::with_limit(policy.max_event_bytes);
        let (body, parser, first) = first_events(body, parser, first_byte_by).await?;
        return Ok(Answer::Stream {
            head,
            body,
            parser,
            first,
            adapter: adapter.clone(),
        });
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let read = tokio::time::timeout_at(
        deadline.into(),
        read_limited(body, MAX_UPSTREAM_BODY_BYTES, policy.idle_timeout, left),
    )
    .await;
    match read {
        Ok(Ok(bytes)) => Ok(Answer::Json {
            head,
            body: bytes,
            adapter: adapter.clone(),
        }),
        Ok(Err(ReadError::TimedOut)) | Err(_) => Err(Miss::retry(Error::UpstreamTimeout(
            "the upstream response did not finish in time".to_owned(),
        ))),
        Ok(Err(e)) => Err(Miss::retry(Error::UpstreamUnreachable(format!(
            "the upstream response broke off: {e}"
        )))),
    }
}

/// Hold a stream until its first event (comments aside) has arrived.
async fn first_events(
    mut body: UpstreamBody,
    mut parser: SseParser,
    by: Instant,
) -> Result<(UpstreamBody, SseParser, Vec<SseEvent>), Miss> {
    let mut events: Vec<SseEvent> = Vec::new();
    loop {
        let frame = match tokio::time::timeout_at(by.into(), body.frame()).await {
            Err(_) => {
                return Err(Miss::retry(Error::UpstreamTimeout(
                    "the stream sent no event in time".to_owned(),
                )))
            }
            Ok(None) => {
                if let Some(e) = parser.finish() {
                    events.push(e);
                }
                if events.iter().any(|e| !e.is_comment_only()) {
                    return Ok((body, parser, events));
                }
                return Err(Miss::retry(Error::UpstreamUnreachable(
                    "the stream ended before its first event".to_owned(),
                )));
            }
            Ok(Some(Err(e))) => {
                return Err(Miss::retry(Error::UpstreamUnreachable(format!(
                    "the stream broke before its first event: {e}"
                ))))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            events.extend(parser.push(&data));
            if let Some(too_long) = parser.too_long() {
                // The same upstream would likely do it again: give the candidate up.
                return Err(Miss {
                    error: too_long_error(too_long),
                    retry: false,
                    wait: None,
                });
            }
            if events.iter().any(|e| !e.is_comment_only()) {
                return Ok((body, parser, events));
            }
        }
    }
}

/// The error for a stream whose event outgrew the gateway's limit.
pub(crate) fn too_long_error(too_long: EventTooLong) -> Error {
    Error::Upstream {
        status: http::StatusCode::BAD_GATEWAY,
        message: format!("{too_long}; the gateway cut the stream there"),
        retry_after_secs: None,
    }
}
