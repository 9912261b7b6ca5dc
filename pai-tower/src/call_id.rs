//! Names every call and times it: `x-pai-call-id` and `x-pai-duration-ms` on every response.
//!
//! The id is a per-process random prefix and a counter, so minting one costs an atomic add, and
//! it is unique across replicas and restarts with overwhelming probability. The duration is the
//! time until the response head is ready: the whole call for buffered answers, the time to first
//! event for streams.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

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
    /// A fresh id.
    pub fn new() -> CallId {
        static PREFIX: OnceLock<String> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = PREFIX.get_or_init(|| {
            let mut bytes = [0u8; 6];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
            pai_core::access_key::hex(&bytes)
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        CallId {
            id: format!("call_{prefix}{n:08x}"),
            started: Instant::now(),
            started_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }
}

impl Default for CallId {
    fn default() -> Self {
        CallId::new()
    }
}

/// Adds a [`CallId`] to each request and the `x-pai-call-id` / `x-pai-duration-ms` headers to
/// each response.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallIdLayer;

impl<S> Layer<S> for CallIdLayer {
    type Service = CallIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CallIdService { inner }
    }
}

/// The service [`CallIdLayer`] produces.
#[derive(Clone, Debug)]
pub struct CallIdService<S> {
    inner: S,
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
        let call = req
            .extensions()
            .get::<CallId>()
            .cloned()
            .unwrap_or_default();
        req.extensions_mut().insert(call.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            let headers = res.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&call.id) {
                headers.insert("x-pai-call-id", v);
            }
            headers.insert(
                "x-pai-duration-ms",
                HeaderValue::from(call.started.elapsed().as_millis() as u64),
            );
            Ok(res)
        })
    }
}
