//! [`Tracer`]: a bounded queue of finished spans and the task that exports them over
//! OTLP/HTTP, off the request path.
//!
//! A request never waits for the exporter: a finished span is offered to the queue with
//! `try_send`; when the queue is full the span is dropped and counted
//! (`pai_trace_spans_dropped_total{reason="queue_full"}`). The export task sends a batch when it
//! holds [`TracerBuilder::batch`]'s count or its oldest span has waited the batch interval;
//! a batch the collector refuses with 429, 502, 503 or 504 (OTLP/HTTP's retryable statuses) is
//! sent once more after its `Retry-After` (at most 5 s) or 1 s, then dropped and counted
//! (`reason="export_failed"`). [`Tracer::flush`] sends what is queued, for graceful shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pai_core::Transport;
use tokio::sync::{mpsc, oneshot};

use super::context::Ids;
use super::otlp::{self, Resource, SpanData};
use crate::metrics::Metrics;

/// Spans waiting to be exported, at most (default).
pub const DEFAULT_TRACE_QUEUE: usize = 4096;
/// Spans sent in one export, at most (default).
pub const DEFAULT_TRACE_BATCH: usize = 512;
/// How long a span waits for its batch to fill, at most (default).
pub const DEFAULT_TRACE_INTERVAL: Duration = Duration::from_secs(1);

/// The longest `Retry-After` honoured before the one retry of a batch.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);
/// The largest collector answer read (to reuse the connection).
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// Why a tracer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The endpoint is not an `http://` or `https://` URL.
    #[error("the OTLP endpoint {0:?} is not an http:// or https:// URL")]
    Endpoint(String),
    /// The default transport could not be built.
    #[error(transparent)]
    Transport(#[from] pai_core::TransportError),
}

/// Exports the spans of the calls it traces to an OTLP/HTTP collector. Clones share the queue;
/// hand one to [`crate::GatewayBuilder::tracer`] or [`super::TraceLayer::new`]. See the
/// module docs.
#[derive(Clone)]
pub struct Tracer {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    queue: mpsc::Sender<Msg>,
    pub ids: Ids,
    metrics: Metrics,
    dropped: AtomicU64,
    exported: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    endpoint: String,
}

enum Msg {
    Span(Box<SpanData>),
    Flush(oneshot::Sender<()>),
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("endpoint", &self.shared.endpoint)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Tracer`].
pub struct TracerBuilder {
    endpoint: String,
    service_name: String,
    service_version: String,
    transport: Option<Arc<dyn Transport>>,
    queue: usize,
    batch: usize,
    interval: Duration,
    export_timeout: Duration,
    metrics: Option<Metrics>,
}

impl Tracer {
    /// A tracer that exports to the OTLP/HTTP collector at `endpoint`: a base URL
    /// (`http://collector:4318`, to which `/v1/traces` is added) or the full traces URL (one
    /// whose path ends in `/v1/traces`, taken as it is).
    pub fn otlp(endpoint: &str) -> TracerBuilder {
        TracerBuilder {
            endpoint: traces_url(endpoint),
            service_name: "pai".to_owned(),
            service_version: env!("CARGO_PKG_VERSION").to_owned(),
            transport: None,
            queue: DEFAULT_TRACE_QUEUE,
            batch: DEFAULT_TRACE_BATCH,
            interval: DEFAULT_TRACE_INTERVAL,
            export_timeout: Duration::from_secs(10),
            metrics: None,
        }
    }

    /// The traces URL from the standard environment: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as
    /// it is, else `OTEL_EXPORTER_OTLP_ENDPOINT` with `/v1/traces` added; `None` when neither
    /// is set.
    pub fn endpoint_from_env() -> Option<String> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(url) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            return Some(url);
        }
        get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    }

    /// The URL spans are posted to.
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    /// Spans dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Spans the collector accepted so far.
    pub fn exported(&self) -> u64 {
        self.shared.exported.load(Ordering::Relaxed)
    }

    /// Spans given up after the collector refused or could not be reached.
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Export everything queued before this call, waiting at most `timeout`; whether it was
    /// all sent (accepted or given up). Call it at shutdown, after the calls have finished.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        let asked = tokio::time::timeout(timeout, self.shared.queue.send(Msg::Flush(tx)));
        let deadline = tokio::time::Instant::now() + timeout;
        if !matches!(asked.await, Ok(Ok(()))) {
            return false;
        }
        matches!(tokio::time::timeout_at(deadline, rx).await, Ok(Ok(())))
    }

    /// Offer a finished span to the queue; never waits.
    pub(crate) fn submit(&self, span: SpanData) {
        if let Err(mpsc::error::TrySendError::Full(_) | mpsc::error::TrySendError::Closed(_)) =
            self.shared.queue.try_send(Msg::Span(Box::new(span)))
        {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.shared.metrics.add(
                "pai_trace_spans_dropped_total",
                &[("reason", "queue_full")],
                1.0,
            );
        }
    }
}

impl TracerBuilder {
    /// `service.name` of the spans' resource. Default `pai`, or `OTEL_SERVICE_NAME` when
    /// [`TracerBuilder::service_name_from_env`] is called.
    pub fn service_name(mut self, name: &str) -> Self {
        self.service_name = name.to_owned();
        self
    }

    /// Take `service.name` from `OTEL_SERVICE_NAME` when it is set.
    pub fn service_name_from_env(mut self) -> Self {
        if let Some(name) = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            self.service_name = name;
        }
        self
    }

    /// `service.version` of the spans' resource. Default: pai-tower's version.
    pub fn service_version(mut self, version: &str) -> Self {
        self.service_version = version.to_owned();
        self
    }

    /// Send exports through `transport` (default: `pai_providers::HttpTransport`).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// At most `spans` wait to be exported (default [`DEFAULT_TRACE_QUEUE`]); past that, new
    /// spans are dropped and counted.
    pub fn max_queue(mut self, spans: usize) -> Self {
        self.queue = spans.max(1);
        self
    }

    /// Export when `spans` are waiting (default [`DEFAULT_TRACE_BATCH`]) or the oldest has
    /// waited `interval` (default [`DEFAULT_TRACE_INTERVAL`]).
    pub fn batch(mut self, spans: usize, interval: Duration) -> Self {
        self.batch = spans.max(1);
        self.interval = interval;
        self
    }

    /// How long one export may take (default 10 s).
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = timeout;
        self
    }

    /// Count dropped and exported spans into `metrics` (the gateway's, so `/metrics` shows
    /// them).
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Start the export task. Must be called inside a tokio runtime.
    pub fn start(self) -> Result<Tracer, TraceError> {
        let uri: http::Uri = self
            .endpoint
            .parse()
            .map_err(|_| TraceError::Endpoint(self.endpoint.clone()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(TraceError::Endpoint(self.endpoint));
        }
        let transport: Arc<dyn Transport> = match self.transport {
            Some(t) => t,
            None => Arc::new(pai_providers::HttpTransport::new(
                pai_providers::TransportOptions {
                    connect_timeout: self.export_timeout.min(Duration::from_secs(5)),
                    response_timeout: self.export_timeout,
                    ..Default::default()
                },
            )?),
        };
        let (queue, rx) = mpsc::channel(self.queue);
        let metrics = self.metrics.unwrap_or_default();
        let exported = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let task = Export {
            uri,
            transport,
            resource: Resource {
                service_name: self.service_name,
                service_version: self.service_version,
            },
            batch: self.batch,
            interval: self.interval,
            timeout: self.export_timeout,
            metrics: metrics.clone(),
            exported: exported.clone(),
            failed: failed.clone(),
        };
        tokio::spawn(task.run(rx));
        Ok(Tracer {
            shared: Arc::new(Shared {
                queue,
                ids: Ids::new(),
                metrics,
                dropped: AtomicU64::new(0),
                exported,
                failed,
                endpoint: self.endpoint,
            }),
        })
    }
}

/// `endpoint` with `/v1/traces` added unless its path already ends so.
fn traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim().trim_end_matches('/');
    if trimmed.ends_with("/v1/traces") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

/// The export task's state.
struct Export {
    uri: http::Uri,
    transport: Arc<dyn Transport>,
    resource: Resource,
    batch: usize,
    interval: Duration,
    timeout: Duration,
    metrics: Metrics,
    exported: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Export {
    async fn run(self, mut rx: mpsc::Receiver<Msg>) {
        let mut spans: Vec<SpanData> = Vec::with_capacity(self.batch);
        loop {
            // Wait for the first span of a batch, then fill it until it is full or due.
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut waiters = Vec::new();
            match first {
                Msg::Span(s) => spans.push(*s),
                Msg::Flush(done) => waiters.push(done),
            }
            let due = tokio::time::Instant::now() + self.interval;
            while waiters.is_empty() && spans.len() < self.batch {
                match tokio::time::timeout_at(due, rx.recv()).await {
                    Ok(Some(Msg::Span(s))) => spans.push(*s),
                    Ok(Some(Msg::Flush(done))) => waiters.push(done),
                    Ok(None) | Err(_) => break,
                }
            }
            // A flush sends everything queued before it, in batches.
            if !waiters.is_empty() {
                while let Ok(msg) = rx.try_recv() {
                    match msg {
                        Msg::Span(s) => spans.push(*s),
                        Msg::Flush(done) => waiters.push(done),
                    }
                    if spans.len() >= self.batch {
                        self.send(&mut spans).await;
                    }
                }
            }
            if !spans.is_empty() {
                self.send(&mut spans).await;
            }
            for done in waiters {
                let _ = done.send(());
            }
        }
    }

    /// Export `spans` (emptied either way): once, and once more on a retryable answer.
    async fn send(&self, spans: &mut Vec<SpanData>) {
        let body = Bytes::from(otlp::encode(&self.resource, spans));
        let count = spans.len();
        spans.clear();
        let mut outcome = self.post(body.clone()).await;
        if let Err(Some(wait)) = outcome {
            tokio::time::sleep(wait).await;
            outcome = self.post(body).await;
        }
        match outcome {
            Ok(()) => {
                self.exported.fetch_add(count as u64, Ordering::Relaxed);
                self.metrics
                    .add("pai_trace_spans_exported_total", &[], count as f64);
            }
            Err(_) => {
                self.failed.fetch_add(count as u64, Ordering::Relaxed);
                self.metrics.add(
                    "pai_trace_spans_dropped_total",
                    &[("reason", "export_failed")],
                    count as f64,
                );
            }
        }
    }

    /// One POST; `Err(Some(wait))` when it may be retried after `wait`.
    async fn post(&self, body: Bytes) -> Result<(), Option<Duration>> {
        let request = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .map_err(|_| None)?;
        let sent = tokio::time::timeout(self.timeout, self.transport.send(request)).await;
        let response = match sent {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "OTLP export failed");
                return Err(Some(Duration::from_secs(1)));
            }
            Err(_) => {
                tracing::warn!("OTLP export timed out");
                return Err(None);
            }
        };
        let status = response.status();
        let wait = crate::reliability::retry_after(response.headers());
        // Read the (small) answer so the connection can be reused; its content is not needed.
        let _ = crate::parse::read_limited(
            response.into_body(),
            MAX_ANSWER_BYTES,
            self.timeout,
            self.timeout,
        )
        .await;
        if status.is_success() {
            return Ok(());
        }
        tracing::warn!(status = status.as_u16(), "OTLP collector refused spans");
        match status.as_u16() {
            429 | 502 | 503 | 504 => Err(Some(
                wait.unwrap_or(Duration::from_secs(1)).min(MAX_RETRY_WAIT),
            )),
            _ => Err(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_traces_path_once() {
        assert_eq!(
            traces_url("http://c:4318"),
            "http://c:4318/v1/traces".to_owned()
        );
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c/v1/traces"), "http://c/v1/traces");
    }
}
