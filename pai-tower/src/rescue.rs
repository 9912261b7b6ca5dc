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
            crate::headers::RETRIES,
            HeaderValue::from(self.0.retries.load(Ordering::Relaxed)),
        );
        if let Some(from) = self
            .0
            .fell_back_from
            .get()
            .and_then(|f| HeaderValue::from_str(f).ok())
        {
            headers.insert(crate::headers::FELL_BACK_FROM, from);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::Full;
    use pai_core::Error;
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    use super::*;
    use crate::testing::{json_body, ok, Calls};

    /// The answer to `req` from a service that refuses with `error`.
    async fn refused(error: Error, req: Request<Full<Bytes>>) -> Response<ResponseBody> {
        let inner = service_fn(move |_req: Request<Full<Bytes>>| {
            let error = error.clone();
            async move { Err::<Response<Full<Bytes>>, _>(CallError::from(error)) }
        });
        RescueLayer::new().layer(inner).oneshot(req).await.unwrap()
    }

    fn post(path: &str) -> Request<Full<Bytes>> {
        Request::post(path).body(Full::default()).unwrap()
    }

    #[tokio::test]
    async fn chat_completions_hear_openai_and_messages_hear_anthropic() {
        let denied = || Error::PermissionDenied("not for you".to_owned());
        let res = refused(denied(), post("/v1/chat/completions")).await;
        assert_eq!(res.status(), 403);
        let v = json_body(res).await;
        assert_eq!(v["error"]["code"], "permission_denied");
        assert_eq!(v["error"]["type"], "permission_error");
        assert_eq!(v["error"]["message"], "not for you");

        let res = refused(denied(), post("/ext/v1/messages")).await;
        assert_eq!(res.status(), 403);
        let v = json_body(res).await;
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "permission_error");
        assert_eq!(v["error"]["message"], "not for you");
    }

    #[tokio::test]
    async fn other_paths_hear_anthropic_when_the_client_sends_anthropic_version() {
        let mut req = post("/summarize");
        req.headers_mut()
            .insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        let v = json_body(refused(Error::MissingKey, req).await).await;
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");

        let v = json_body(refused(Error::MissingKey, post("/summarize")).await).await;
        assert_eq!(v["error"]["code"], "missing_api_key");
    }

    #[tokio::test]
    async fn the_dialect_is_told_under_the_prefix() {
        let inner = service_fn(|_req: Request<Full<Bytes>>| async {
            Err::<Response<Full<Bytes>>, _>(CallError::from(Error::MissingKey))
        });
        let rescue = RescueLayer::new().prefix("/llm").layer(inner);
        let res = rescue.oneshot(post("/llm/v1/messages")).await.unwrap();
        assert_eq!(json_body(res).await["type"], "error");
    }

    #[tokio::test]
    async fn a_rate_limit_says_when_to_come_back() {
        let limited = Error::RateLimited {
            message: "AccessKey \"k\" maxRequestsPerMinute (3)".to_owned(),
            retry_after_secs: 7,
        };
        let res = refused(limited, post("/v1/chat/completions")).await;
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()["retry-after"], "7");
        assert_eq!(json_body(res).await["error"]["code"], "rate_limit_exceeded");
    }

    #[tokio::test]
    async fn the_journey_shows_only_once_the_call_began() {
        // Not engaged: a refusal before the call began names no retries.
        let res = refused(Error::MissingKey, post("/v1/chat/completions")).await;
        assert!(!res.headers().contains_key("x-pai-retries"));
        let plain = service_fn(|_req: Request<Full<Bytes>>| async { Ok::<_, CallError>(ok()) });
        let res = RescueLayer::new()
            .layer(plain)
            .oneshot(post("/v1/chat/completions"))
            .await
            .unwrap();
        assert!(!res.headers().contains_key("x-pai-retries"));

        // Engaged, answered: its retries (even none) and the model fallen back from.
        let answered = service_fn(|req: Request<Full<Bytes>>| async move {
            let journey = req.extensions().get::<Journey>().unwrap();
            journey.engage();
            journey.retried();
            journey.retried();
            journey.fell_back_from("oai/gpt-4o");
            Ok::<_, CallError>(ok())
        });
        let res = RescueLayer::new()
            .layer(answered)
            .oneshot(post("/v1/chat/completions"))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-pai-retries"], "2");
        assert_eq!(res.headers()["x-pai-fell-back-from"], "oai/gpt-4o");

        // Engaged, refused: the refusal carries them too.
        let failed = service_fn(|req: Request<Full<Bytes>>| async move {
            req.extensions().get::<Journey>().unwrap().engage();
            Err::<Response<Full<Bytes>>, _>(CallError::from(Error::Unavailable("down".into())))
        });
        let res = RescueLayer::new()
            .layer(failed)
            .oneshot(post("/v1/chat/completions"))
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["x-pai-retries"], "0");
        assert!(!res.headers().contains_key("x-pai-fell-back-from"));
    }

    /// A service that cannot become ready.
    #[derive(Clone)]
    struct Broken(Calls);

    impl Service<Request<Full<Bytes>>> for Broken {
        type Response = Response<Full<Bytes>>;
        type Error = CallError;
        type Future = std::future::Ready<Result<Response<Full<Bytes>>, CallError>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
            Poll::Ready(Err(
                Error::Unavailable("the recorder is gone".to_owned()).into()
            ))
        }

        fn call(&mut self, _req: Request<Full<Bytes>>) -> Self::Future {
            self.0.add();
            std::future::ready(Ok(ok()))
        }
    }

    #[tokio::test]
    async fn a_service_that_cannot_become_ready_is_answered_not_lost() {
        let calls = Calls::default();
        let mut rescue = ServiceBuilder::new()
            .layer(RescueLayer::new())
            .service(Broken(calls.clone()));
        let ready = tokio::time::timeout(Duration::from_secs(1), rescue.ready())
            .await
            .unwrap();
        assert!(ready.is_ok());
        let res = rescue.call(post("/v1/messages")).await.unwrap();
        assert_eq!(res.status(), 503);
        let v = json_body(res).await;
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["message"], "the recorder is gone");
        assert_eq!(calls.get(), 0, "the broken service is not called");
    }
}
