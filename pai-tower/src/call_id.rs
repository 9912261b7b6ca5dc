//! Names every call and times it: `x-pai-call-id` and `x-pai-duration-ms` on every response.
//!
//! The id is a random prefix, drawn once per [`CallIdLayer`], and a counter of that layer, so
//! minting one costs an atomic add, and it is unique across gateways, replicas and restarts
//! with overwhelming probability. The layer owns both: nothing is shared process-wide. When the
//! call arrived (`started_at_ms`, what records and budget windows go by) is read from the
//! layer's [`Clock`], so tests can move it. The duration is the time until the response head is
//! ready: the whole call for buffered answers, the time to first event for streams.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, UNIX_EPOCH};

use http::{HeaderValue, Request, Response};
use pai_core::{Clock, SystemClock};
use tower::{Layer, Service};

use crate::trace::Tracer;

/// The id of one call, in the request's extensions for the layers below.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallId {
    /// The id as sent in `x-pai-call-id`.
    pub id: String,
    /// When the call arrived.
    pub started: Instant,
    /// Unix milliseconds when the call arrived.
    pub started_at_ms: u64,
}

impl CallId {
    /// A fresh id from a generator of its own, on the system clock. A gateway mints its ids
    /// with its [`CallIdLayer`] instead; this is for a service used without one.
    pub fn new() -> CallId {
        CallIdLayer::new().mint()
    }
}

impl Default for CallId {
    fn default() -> Self {
        CallId::new()
    }
}

/// Adds a [`CallId`] to each request and the `x-pai-call-id` / `x-pai-duration-ms` headers to
/// each response. Clones share the prefix and the counter.
#[derive(Clone)]
pub struct CallIdLayer {
    minter: Arc<Minter>,
    tracer: Option<Tracer>,
}

/// What ids are made from.
struct Minter {
    prefix: String,
    counter: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CallIdLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallIdLayer")
            .field("prefix", &self.minter.prefix)
            .finish_non_exhaustive()
    }
}

impl Default for CallIdLayer {
    fn default() -> Self {
        CallIdLayer::new()
    }
}

impl CallIdLayer {
    /// A layer with a fresh random prefix, on the system clock.
    pub fn new() -> CallIdLayer {
        CallIdLayer::with_clock(Arc::new(SystemClock))
    }

    /// A layer with a fresh random prefix that reads the time calls arrive from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> CallIdLayer {
        let mut bytes = [0u8; 6];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        CallIdLayer {
            minter: Arc::new(Minter {
                prefix: pai_core::access_key::hex(&bytes),
                counter: AtomicU64::new(0),
                clock,
            }),
            tracer: None,
        }
    }

    /// Also start each call's span, exported by `tracer` (what [`crate::TraceLayer`] does,
    /// here where the call is named: the gateway's stack gets tracing without a layer more).
    pub fn tracer(mut self, tracer: Option<Tracer>) -> CallIdLayer {
        self.tracer = tracer;
        self
    }

    /// The next id, arriving now.
    pub fn mint(&self) -> CallId {
        let m = &self.minter;
        let n = m.counter.fetch_add(1, Ordering::Relaxed);
        CallId {
            id: format!("call_{}{n:08x}", m.prefix),
            started: Instant::now(),
            started_at_ms: m
                .clock
                .now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }
}

impl<S> Layer<S> for CallIdLayer {
    type Service = CallIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallIdService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`CallIdLayer`] produces.
#[derive(Clone, Debug)]
pub struct CallIdService<S> {
    inner: S,
    layer: CallIdLayer,
}

impl<S, B, RB> Service<Request<B>> for CallIdService<S>
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
        let call = match req.extensions().get::<CallId>() {
            Some(call) => call.clone(),
            None => self.layer.mint(),
        };
        req.extensions_mut().insert(call.clone());
        let trace = self
            .layer
            .tracer
            .as_ref()
            .map(|tracer| crate::trace::start(tracer, &mut req));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            if let Some(trace) = trace {
                crate::trace::end_unlogged(&trace, res.as_ref().map(|r| r.status().as_u16()).ok());
            }
            let mut res = res?;
            let headers = res.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&call.id) {
                headers.insert(crate::headers::CALL_ID, v);
            }
            headers.insert(
                crate::headers::DURATION_MS,
                HeaderValue::from(call.started.elapsed().as_millis() as u64),
            );
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pai_core::ManualClock;
    use std::time::Duration;

    #[test]
    fn ids_count_up_per_layer_and_arrive_on_its_clock() {
        let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000)));
        let layer = CallIdLayer::with_clock(clock.clone());
        let first = layer.mint();
        clock.advance(Duration::from_millis(1_500));
        let second = layer.clone().mint();
        assert_eq!(first.started_at_ms, 1_000_000);
        assert_eq!(second.started_at_ms, 1_001_500);
        let prefix = &first.id[..first.id.len() - 8];
        assert_eq!(first.id, format!("{prefix}00000000"));
        assert_eq!(second.id, format!("{prefix}00000001"));
        // Another layer has a prefix and a count of its own.
        let other = CallIdLayer::new().mint();
        assert!(other.id.ends_with("00000000"), "{}", other.id);
        assert_ne!(other.id, first.id);
    }
}
