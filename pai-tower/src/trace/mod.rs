//! OpenTelemetry traces of calls, exported over OTLP/HTTP: [`TraceLayer`] and [`Tracer`].
//!
//! Each call gets one SERVER span, from the moment the request arrives to the moment the call
//! is finished — the end of the response body for answers and streams, the client going
//! away, or the error — named `{operation} {model}` (`chat gpt-4o-mini`) and carrying the
//! OpenTelemetry GenAI attributes (`gen_ai.operation.name`, `gen_ai.provider.name` and the
//! older `gen_ai.system` — `openai`, `anthropic`, `gcp.gemini`, `azure.ai.openai`, or the
//! provider type's name —, `gen_ai.request.model`, `gen_ai.response.model`,
//! `gen_ai.request.max_tokens`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
//! `error.type`) and pai's own (`pai.call_id`, `pai.workload`, `pai.access_key` — the key's
//! name —, `pai.provider`, `pai.model_binding`, `pai.cost_usd` when the model is priced,
//! `pai.guard.verdicts`, `pai.stream`, `http.response.status_code`). Its children:
//!
//! - `guard {binding}` for each guard that ran (`pai.guard.binding`, `.verdict`,
//!   `.enforcement`, `.score`);
//! - `candidate {provider}/{model}` for each candidate of the fallback walk
//!   (`pai.candidate.position`, `pai.fallback.from`), ended with an error when the walk moved
//!   on from it;
//! - under its candidate, one CLIENT span per try of the upstream, `{operation} {model}`
//!   (`server.address`, `server.port`, `pai.attempt` counting from 1, and on a retry
//!   `pai.retry.reason`: the error code of the try before), ended when it failed or, for the
//!   try that answered, when the call ends.
//!
//! A failed span has status ERROR and `error.type` set to an error code or a status; its
//! message is made from those alone, never from an upstream's text, so no span holds key
//! material, prompt or completion text.
//!
//! **Context.** A valid `traceparent` from the client is continued: the call span has its
//! trace id and, as its parent, the client's span; its `tracestate` is kept. Otherwise the
//! call starts a new trace (and a `tracestate` without a valid `traceparent` is dropped, as
//! the W3C rules say). A client's unsampled flag is honoured: nothing is exported, but ids are
//! still passed on. Every try upstream carries `traceparent` with the try's own span id in
//! place of the client's. Without a [`TraceLayer`] nothing of this runs: the layers below look
//! for a [`CallTrace`] in the request's extensions, find none, and do nothing more; the
//! client's `traceparent` and `tracestate` are then passed upstream as they came, like any
//! allowlisted header (see `pai_providers::headers`).
//!
//! **Export.** A [`Tracer`] batches finished spans (512 or 1 s by default) and posts them to
//! `{endpoint}/v1/traces` as `application/x-protobuf`, off the request path, through a bounded
//! queue; a full queue drops spans rather than slowing calls, counted in
//! `pai_trace_spans_dropped_total{reason}` (`queue_full`, `export_failed`), exported ones in
//! `pai_trace_spans_exported_total`. [`Tracer::flush`] sends what is queued at shutdown.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use http_body_util::Full;
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // Spans go to a collector's OTLP/HTTP port; this one is not listening, and calls do not
//! // notice.
//! let tracer = pai_tower::Tracer::otlp("http://127.0.0.1:9").start().unwrap();
//! let gateway = pai_tower::Gateway::builder()
//!     .store(Arc::new(pai_store::MemoryStore::new()))
//!     .key_hasher(pai_core::AccessKeyHasher::new(b"32 bytes of operator-held secret"))
//!     .tracer(tracer.clone())
//!     .build()
//!     .await
//!     .unwrap();
//! let req = http::Request::post("/v1/chat/completions")
//!     .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
//!     .body(Full::new(bytes::Bytes::from_static(b"{}")))
//!     .unwrap();
//! assert_eq!(gateway.oneshot(req).await.unwrap().status(), 401);
//! // At shutdown: send what is queued, within a bound.
//! tracer.flush(std::time::Duration::from_millis(100)).await;
//! # });
//! ```

mod call;
mod context;
mod exporter;
mod otlp;

pub use call::CallTrace;
pub use exporter::{
    TraceError, Tracer, TracerBuilder, DEFAULT_TRACE_BATCH, DEFAULT_TRACE_INTERVAL,
    DEFAULT_TRACE_QUEUE,
};

pub(crate) use call::now_ns;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use crate::call_id::CallId;

/// Starts a [`CallTrace`] for each request and puts it in the request's extensions. Put it
/// just inside [`crate::CallIdLayer`] (the span names the call id), outside everything else.
/// Built with no tracer ([`TraceLayer::off`]) it passes requests through untouched, with
/// nothing allocated.
#[derive(Clone, Debug, Default)]
pub struct TraceLayer {
    tracer: Option<Tracer>,
}

impl TraceLayer {
    /// Spans go to `tracer`.
    pub fn new(tracer: Tracer) -> TraceLayer {
        TraceLayer {
            tracer: Some(tracer),
        }
    }

    /// A layer that traces nothing.
    pub fn off() -> TraceLayer {
        TraceLayer { tracer: None }
    }

    /// Spans go to `tracer`, if there is one.
    pub fn optional(tracer: Option<Tracer>) -> TraceLayer {
        TraceLayer { tracer }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService {
            inner,
            tracer: self.tracer.clone(),
        }
    }
}

/// The service [`TraceLayer`] produces.
#[derive(Clone, Debug)]
pub struct TraceService<S> {
    inner: S,
    tracer: Option<Tracer>,
}

impl<S, B, RB> Service<Request<B>> for TraceService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let trace = self.tracer.as_ref().map(|tracer| start(tracer, &mut req));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            if let Some(trace) = trace {
                end_unlogged(&trace, res.as_ref().map(|r| r.status().as_u16()).ok());
            }
            res
        })
    }
}

/// Start `req`'s call span and put it in its extensions.
pub(crate) fn start<B>(tracer: &Tracer, req: &mut Request<B>) -> CallTrace {
    let call_id = req.extensions().get::<CallId>().map(|c| c.id.as_str());
    let trace = CallTrace::start(tracer, req.headers(), req.method(), call_id);
    req.extensions_mut().insert(trace.clone());
    trace
}

/// A call log ends its call's span when it finishes the call; anything else (a refusal
/// before the log opened, a public route) ends here, with the status answered (`None`: an
/// error that is no response).
pub(crate) fn end_unlogged(trace: &CallTrace, status: Option<u16>) {
    if !trace.claimed() {
        trace.finish_unlogged(status.unwrap_or(500));
    }
}
