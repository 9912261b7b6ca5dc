//! The innermost service: one try of the current candidate's upstream, through its adapter and
//! the transport.
//!
//! It builds the upstream request from the parsed [`Call`] and the [`Candidate`]'s credentials,
//! sends it, and answers with the upstream's status and the headers a client may see. A try
//! succeeds when the upstream answers 2xx and, for a stream, its first event has arrived: until
//! then nothing has gone to the client, so any failure may still be retried or fallen back.
//! Failures are typed for the layers above: connection errors, timeouts, 408/429/5xx/529 and a
//! stream that breaks before its first event are [`Next::Retry`] (with the upstream's
//! `retry-after`); a client error (400, 413, 422) is [`Next::Final`]; anything else gives the
//! candidate up ([`Next::NextCandidate`]). Whatever comes back is cleaned of the key sent.
//!
//! The answer's body is an [`Answer`]: the upstream's bytes as they are, with what the meter
//! needs to read them (the adapter, and for a stream the SSE parser and first events).
//!
//! # Example
//!
//! ```
//! # use pai_tower::Upstream;
//! # fn _f(transport: std::sync::Arc<dyn pai_core::Transport>) {
//! // The leaf of the stack, under the retry layer.
//! let _leaf = Upstream::new(transport, pai_tower::Reliability::default());
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pai_core::{
    BoxError, Call, Error, Provider, SseEvent, Transport, TransportError, UpstreamBody,
};
use pai_providers::headers::client_response_headers;
use pai_providers::sent_key::Scrubbed;
use pai_providers::sse::{EventTooLong, SseParser};
use tower::Service;

use crate::error::CallError;
use crate::fallback::{Candidate, Deadline};
use crate::parse::{read_limited, ReadError};
use crate::reliability::{retry_after, retryable_status, Reliability};
use crate::rescue::Journey;
use crate::trace::CallTrace;

const MAX_UPSTREAM_ERROR_BYTES: usize = 1 << 20;
const MAX_UPSTREAM_BODY_BYTES: usize = 256 << 20;

/// Calls the current candidate's upstream once. See the module docs.
#[derive(Clone)]
pub struct Upstream {
    transport: Arc<dyn Transport>,
    reliability: Arc<Reliability>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").finish_non_exhaustive()
    }
}

impl Upstream {
    /// Send through `transport`, with the timeouts and limits of `reliability`.
    pub fn new(transport: Arc<dyn Transport>, reliability: Reliability) -> Upstream {
        Upstream {
            transport,
            reliability: Arc::new(reliability),
        }
    }
}

/// An upstream's answer as its body: the bytes as they came, and what reading them takes.
pub struct Answer {
    pub(crate) adapter: Arc<dyn Provider>,
    pub(crate) kind: AnswerKind,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer").finish_non_exhaustive()
    }
}

pub(crate) enum AnswerKind {
    /// A complete JSON answer (taken once sent).
    Json(Option<Bytes>),
    /// A stream whose first events have arrived.
    Stream {
        body: UpstreamBody,
        parser: SseParser,
        first: Vec<SseEvent>,
    },
}

impl Body for Answer {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            AnswerKind::Json(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            AnswerKind::Stream { body, first, .. } => {
                if !first.is_empty() {
                    let raw: Vec<Bytes> = first.drain(..).map(|e| e.raw).collect();
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(raw.concat())))));
                }
                Pin::new(body).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            AnswerKind::Json(bytes) => bytes.is_none(),
            AnswerKind::Stream { body, first, .. } => first.is_empty() && body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            AnswerKind::Json(Some(b)) => SizeHint::with_exact(b.len() as u64),
            AnswerKind::Json(None) => SizeHint::with_exact(0),
            AnswerKind::Stream { .. } => SizeHint::default(),
        }
    }
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

impl From<Miss> for CallError {
    fn from(miss: Miss) -> CallError {
        if miss.retry {
            return CallError::retry(miss.error, miss.wait);
        }
        match miss.error.status().as_u16() {
            400 | 413 | 422 => CallError::refused(miss.error),
            _ => CallError::next_candidate(miss.error, true),
        }
    }
}

impl<B> Service<Request<B>> for Upstream {
    type Response = Response<Answer>;
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Answer>, CallError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let ext = req.extensions();
        let candidate = ext.get::<Candidate>().cloned();
        let call = ext.get::<Arc<Call>>().cloned();
        let deadline = ext.get::<Deadline>().map(|d| d.0);
        let journey = ext.get::<Journey>().cloned();
        let trace = ext.get::<CallTrace>().cloned();
        let this = self.clone();
        Box::pin(async move {
            let (Some(candidate), Some(call)) = (candidate, call) else {
                return Err(Error::Internal(
                    "Upstream needs a Candidate and the parsed call: put FallbackLayer and ParseLayer outside it".to_owned(),
                )
                .into());
            };
            let deadline =
                deadline.unwrap_or_else(|| Instant::now() + this.reliability.total_timeout);
            let entry = &candidate.provider;
            let name = &entry.resource.metadata.name;
            let adapter = entry.adapter.clone().ok_or_else(|| {
                CallError::next_candidate(
                    Error::NotImplemented(format!(
                        "ModelProvider {name:?} names provider {}, which this gateway has no adapter for",
                        entry.resource.spec.provider
                    )),
                    true,
                )
            })?;
            let credentials = candidate.credentials().as_ref().map_err(|why| {
                CallError::next_candidate(
                    Error::Unavailable(format!("the gateway cannot call this provider: {why}")),
                    true,
                )
            })?;
            // Whatever comes back is cleaned of the key sent: errors (and so records and
            // logs), bodies, stream events.
            let adapter = Scrubbed::wrap(adapter, credentials);
            let mut request = adapter
                .build_request(&call, credentials)
                .map_err(CallError::refused)?;
            if let Some(trace) = &trace {
                trace.attempt(&candidate, &mut request);
            }
            if let (Some(journey), Some(from)) = (&journey, &candidate.fell_back_from) {
                journey.fell_back_from(from);
            }
            let answer = try_once(&this, &adapter, &call, request, deadline).await;
            if let Some(trace) = &trace {
                match &answer {
                    Ok(res) => trace.attempt_answered(res.status().as_u16()),
                    Err(miss) => trace.attempt_failed(&miss.error),
                }
            }
            Ok(answer?)
        })
    }
}

async fn try_once(
    upstream: &Upstream,
    adapter: &Arc<dyn Provider>,
    call: &Call,
    request: http::Request<Bytes>,
    deadline: Instant,
) -> Result<Response<Answer>, Miss> {
    let policy = &upstream.reliability;
    let first_byte_by = (Instant::now() + policy.first_byte_timeout).min(deadline);
    let sent =
        tokio::time::timeout_at(first_byte_by.into(), upstream.transport.send(request)).await;
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
        let kind = AnswerKind::Stream {
            body,
            parser,
            first,
        };
        return Ok(answered(&head, adapter, kind));
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let read = tokio::time::timeout_at(
        deadline.into(),
        read_limited(body, MAX_UPSTREAM_BODY_BYTES, policy.idle_timeout, left),
    )
    .await;
    match read {
        Ok(Ok(bytes)) => Ok(answered(&head, adapter, AnswerKind::Json(Some(bytes)))),
        Ok(Err(ReadError::TimedOut)) | Err(_) => Err(Miss::retry(Error::UpstreamTimeout(
            "the upstream response did not finish in time".to_owned(),
        ))),
        Ok(Err(e)) => Err(Miss::retry(Error::UpstreamUnreachable(format!(
            "the upstream response broke off: {e}"
        )))),
    }
}

/// The client's view of an upstream answer: its status, the headers a client may see, and
/// the body as an [`Answer`].
fn answered(
    head: &http::response::Parts,
    adapter: &Arc<dyn Provider>,
    kind: AnswerKind,
) -> Response<Answer> {
    let mut res = Response::new(Answer {
        adapter: adapter.clone(),
        kind,
    });
    *res.status_mut() = head.status;
    *res.headers_mut() = client_response_headers(&head.headers);
    res
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
