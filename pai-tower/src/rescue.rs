//! Renders any failure once, in the client's dialect: the outermost of pai's layers.
//!
//! The layers below return a typed [`CallError`]; this layer turns it into the response the
//! client's SDK understands (OpenAI-shaped for `/chat/completions`, Anthropic-shaped for
//! `/messages` or when the client sends `anthropic-version`), so its own error is
//! `Infallible` and the stack mounts in axum. It also carries the call's [`Journey`] (retries,
//! the model fallen back from) into `x-pai-retries` and `x-pai-fell-back-from`.
//!
//! # Example
//!
//! ```
//! use http_body_util::Full;
//! use pai_tower::{CallError, RescueLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let refuse = tower::service_fn(|_req: http::Request<Full<bytes::Bytes>>| async {
//!     Err::<http::Response<Full<bytes::Bytes>>, _>(CallError::from(pai_core::Error::MissingKey))
//! });
//! let service = ServiceBuilder::new().layer(RescueLayer::new()).service(refuse);
//! let req = http::Request::post("/v1/messages").body(Full::default()).unwrap();
//! let res = service.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 401);
//! # });
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use pai_core::BoxError;
use tower::{Layer, Service};

use crate::body::{error_response, ResponseBody};
use crate::error::CallError;
use crate::route::{dialect_of, Route};

/// Retries and fallbacks of one call, for its headers; shared through the request's
/// extensions.
#[derive(Clone, Debug, Default)]
pub struct Journey(Arc<JourneyState>);

#[derive(Debug, Default)]
struct JourneyState {
    engaged: AtomicBool,
    retries: AtomicU32,
    fell_back_from: OnceLock<String>,
}

impl Journey {
    /// The call began (it has a log): its answer names its retries, even none.
    pub(crate) fn engage(&self) {
        self.0.engaged.store(true, Ordering::Relaxed);
    }

    /// One more try of a candidate.
    pub(crate) fn retried(&self) {
        self.0.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// The call is answered by a fallback of `primary`.
    pub(crate) fn fell_back_from(&self, primary: &str) {
        let _ = self.0.fell_back_from.set(primary.to_owned());
    }

    fn write(&self, headers: &mut http::HeaderMap) {
        if !self.0.engaged.load(Ordering::Relaxed) {
            return;
        }
        headers.insert(
            "x-pai-retries",
            HeaderValue::from(self.0.retries.load(Ordering::Relaxed)),
        );
        if let Some(from) = self
            .0
            .fell_back_from
            .get()
            .and_then(|f| HeaderValue::from_str(f).ok())
        {
            headers.insert("x-pai-fell-back-from", from);
        }
    }
}

/// Renders [`CallError`]s in the client's dialect. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct RescueLayer {
    prefix: Arc<str>,
}

impl RescueLayer {
    /// A rescue layer for routes at the root of the path (or under `/ext`).
    pub fn new() -> RescueLayer {
        RescueLayer::default()
    }

    /// Where the gateway's routes sit ([`crate::GatewayBuilder::prefix`]), to tell the
    /// dialect from the path.
    pub fn prefix(mut self, prefix: &str) -> RescueLayer {
        self.prefix = Arc::from(prefix);
        self
    }
}

impl<S> Layer<S> for RescueLayer {
    type Service = Rescue<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Rescue {
            inner,
            prefix: self.prefix.clone(),
            not_ready: None,
        }
    }
}

/// The service [`RescueLayer`] produces.
#[derive(Clone, Debug)]
pub struct Rescue<S> {
    inner: S,
    prefix: Arc<str>,
    /// Why the inner service could not become ready; the next request is answered with it.
    not_ready: Option<CallError>,
}

impl<S, B, RB> Service<Request<B>> for Rescue<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<CallError>,
    S::Future: Send + 'static,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A service that cannot become ready is answered per request, below.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => {
                self.not_ready = Some(e.into());
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let dialect = dialect_of(Route::under(&self.prefix, req.uri().path()), req.headers());
        if let Some(e) = self.not_ready.take() {
            let res = error_response(&e.error, dialect);
            return Box::pin(async move { Ok(res) });
        }
        let journey = Journey::default();
        req.extensions_mut().insert(journey.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = match fut.await {
                Ok(res) => res.map(|b| b.map_err(Into::into).boxed_unsync()),
                Err(e) => {
                    let e: CallError = e.into();
                    tracing::debug!(code = e.error.code(), "call refused");
                    error_response(&e.error, dialect)
                }
            };
            journey.write(res.headers_mut());
            Ok(res)
        })
    }
}
