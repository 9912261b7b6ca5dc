//! [`MeterLayer`]: reads what an upstream answer used as it passes, and finishes the call.
//!
//! A buffered answer is translated to the client's dialect and gets `x-pai-input-tokens`,
//! `x-pai-output-tokens`, `x-pai-cached-input-tokens` and `x-pai-cost-usd`; a stream passes
//! through event by event under a [`MeterBody`], which finishes the
//! call when the stream ends, breaks or is dropped. Either way the call's [`CallLog`] entry is
//! taken here and finished once, with the usage the adapter read: the budget settled, the cost
//! priced, the record sent. When the guard layer above hands down guards for the answer
//! (`scan.responses`), a buffered answer is scanned here before it is returned and a streamed
//! one as it passes (see `crate::guard`'s answers), before the record is sent. Every answer names the model that answered (`x-pai-model-id`) and,
//! when a `maxTokensPerRequest` bounded the output, the bound (`x-pai-max-output-tokens`).
//!
//! The layers below it (retry and upstream) get a lean request: the candidate, the call, the
//! deadline and the journey, nothing else, so a retry's copy of it is cheap.
//!
//! # Example
//!
//! ```
//! # use pai_tower::MeterLayer;
//! // Per candidate, around the retry layer and the upstream leaf.
//! let _layer = MeterLayer::new(None, pai_tower::Reliability::default());
//! ```

mod body;
mod sink;

pub use body::MeterBody;
pub use sink::{CallSink, RecordSlot, DEFAULT_RECORD_BACKLOG, RECORD_BATCH};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use pai_core::{Call, Error, PriceTable};
use tower::{Layer, Service};

use crate::body::{full, ResponseBody};
use crate::budget::OutputBound;
use crate::call_log::{cost, set_usage_headers, CallLog};
use crate::error::CallError;
use crate::fallback::{Candidate, Deadline};
use crate::guard::{verdicts, AnswerGuards};
use crate::reliability::Reliability;
use crate::rescue::Journey;
use crate::upstream::{Answer, AnswerKind};

/// Meters upstream answers. See the module docs.
#[derive(Clone)]
pub struct MeterLayer {
    prices: Option<Arc<dyn PriceTable>>,
    reliability: Arc<Reliability>,
}

impl std::fmt::Debug for MeterLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeterLayer").finish_non_exhaustive()
    }
}

impl MeterLayer {
    /// Costs from `prices`; stream timeouts and pings from `reliability`.
    pub fn new(prices: Option<Arc<dyn PriceTable>>, reliability: Reliability) -> MeterLayer {
        MeterLayer {
            prices,
            reliability: Arc::new(reliability),
        }
    }
}

impl<S> Layer<S> for MeterLayer {
    type Service = Meter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Meter {
            inner,
            // One Arc for the whole configuration: a service is cloned per call.
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service [`MeterLayer`] produces.
#[derive(Clone, Debug)]
pub struct Meter<S> {
    inner: S,
    layer: Arc<MeterLayer>,
}

impl<S, B> Service<Request<B>> for Meter<S>
where
    S: Service<Request<B>, Response = Response<Answer>>,
    S::Error: Into<CallError>,
    S::Future: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, CallError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let ext = &mut parts.extensions;
        let call = ext.get::<Arc<Call>>().cloned();
        let log = ext.remove::<CallLog>();
        let answers = ext.remove::<Arc<AnswerGuards>>();
        let bound = ext.remove::<OutputBound>();
        let deadline = ext.get::<Deadline>().map(|d| d.0);
        // The retry and the upstream below read only these; the retry copies the request
        // before each try, so it gets nothing else.
        let mut lean = Request::new(body);
        *lean.method_mut() = parts.method;
        *lean.uri_mut() = parts.uri;
        let keep = lean.extensions_mut();
        if let Some(c) = ext.remove::<Candidate>() {
            keep.insert(c);
        }
        if let Some(c) = ext.remove::<Arc<Call>>() {
            keep.insert(c);
        }
        if let Some(d) = ext.remove::<Deadline>() {
            keep.insert(d);
        }
        if let Some(j) = ext.remove::<Journey>() {
            keep.insert(j);
        }
        if let Some(t) = ext.remove::<crate::trace::CallTrace>() {
            keep.insert(t);
        }
        let layer = self.layer.clone();
        let fut = self.inner.call(lean);
        Box::pin(async move {
            let answered = fut.await.map_err(Into::into)?;
            let Some(call) = call else {
                return Err(Error::Internal(
                    "MeterLayer needs the parsed call: put ParseLayer outside it".to_owned(),
                )
                .into());
            };
            let (mut head, answer) = answered.into_parts();
            let mut entry = log.and_then(|l| l.take());
            if let Some(e) = entry.as_mut() {
                e.set_status(head.status.as_u16());
            }
            if let Ok(v) = HeaderValue::from_str(&call.model) {
                head.headers.insert(crate::headers::MODEL_ID, v);
            }
            if let Some(OutputBound(n)) = bound {
                head.headers
                    .insert(crate::headers::MAX_OUTPUT_TOKENS, HeaderValue::from(n));
            }
            let Answer { adapter, kind } = answer;
            let body = match kind {
                AnswerKind::Stream {
                    body,
                    parser,
                    first,
                } => {
                    head.headers.insert(
                        http::header::CACHE_CONTROL,
                        HeaderValue::from_static("no-cache"),
                    );
                    let deadline = deadline
                        .unwrap_or_else(|| Instant::now() + layer.reliability.total_timeout);
                    MeterBody::new(
                        body,
                        parser,
                        first,
                        adapter.stream_observer(&call),
                        call.client,
                        entry,
                        answers.map(|a| a.stream(call.client, &call.model)),
                        (layer.prices.clone(), call.model.clone()),
                        deadline,
                        &layer.reliability,
                    )
                    .boxed_unsync()
                }
                AnswerKind::Json(bytes) => {
                    let bytes = bytes.unwrap_or_default();
                    let usage = adapter.usage(&call, &bytes);
                    let translated = adapter.response_body(&call, bytes);
                    let body = match translated {
                        Ok(body) => body,
                        Err(e) => {
                            if let Some(mut entry) = entry {
                                entry.fail(&e);
                            }
                            return Err(e.into());
                        }
                    };
                    head.headers.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    if let Some(u) = &usage {
                        let cost = cost(layer.prices.as_ref(), &call.model, u);
                        set_usage_headers(&mut head.headers, u, cost);
                    }
                    if let Some(answers) = answers {
                        let (found, refusal) = answers.check(call.client, &call.model, &body).await;
                        if let Some(h) = verdicts::header(&found) {
                            head.headers.insert(crate::headers::GUARD, h);
                        }
                        if let Some(e) = entry.as_mut() {
                            e.add_guards(found);
                        }
                        if let Some(refusal) = refusal {
                            // Refused, but the model produced it: its tokens are charged.
                            if let Some(mut entry) = entry {
                                entry.set_status(refusal.status().as_u16());
                                entry.finish(usage, Some(refusal.to_string()));
                            }
                            return Err(refusal.into());
                        }
                    }
                    if let Some(mut entry) = entry {
                        entry.finish(usage, None);
                    }
                    full(body)
                }
            };
            Ok(Response::from_parts(head, body))
        })
    }
}
