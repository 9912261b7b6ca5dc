//! Holds back calls towards a ModelProvider that is at its limits: its requests per minute
//! (`spec.maxRequestsPerMinute`) and the calls in flight towards it
//! ([`Reliability::max_concurrency`], with a bounded queue).
//!
//! It runs per candidate, inside the fallback layer: a provider at its rate, or whose queue is
//! full, sends the call on to the next candidate ([`Next::NextCandidate`], not counted towards
//! a cooldown). The slot is kept with the call's [`CallLog`] until the call finishes — for a
//! stream, until its last byte — so a provider's concurrency counts streams in flight.
//!
//! # Example
//!
//! ```
//! # use pai_tower::ProviderLimitLayer;
//! # fn _f(snapshot: pai_tower::SharedSnapshot) {
//! // Inside FallbackLayer (it needs the Candidate).
//! let _layer = ProviderLimitLayer::new(snapshot, pai_tower::Reliability::default());
//! # }
//! ```
//!
//! [`Next::NextCandidate`]: crate::Next::NextCandidate

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pai_core::Error;
use tokio::sync::OwnedSemaphorePermit;
use tower::{Layer, Service};

use crate::call_log::CallLog;
use crate::error::CallError;
use crate::fallback::Candidate;
use crate::rate_limit::{Owner, RateLimits};
use crate::reliability::{Reliability, Slots};
use crate::snapshot::SharedSnapshot;

/// Limits calls towards each ModelProvider. See the module docs.
#[derive(Clone, Debug)]
pub struct ProviderLimitLayer {
    snapshot: SharedSnapshot,
    reliability: Arc<Reliability>,
    rates: Arc<RateLimits>,
    slots: Arc<Slots>,
}

impl ProviderLimitLayer {
    /// Rates from `snapshot`; concurrency and queue from `reliability`.
    pub fn new(snapshot: SharedSnapshot, reliability: Reliability) -> ProviderLimitLayer {
        ProviderLimitLayer {
            snapshot,
            reliability: Arc::new(reliability),
            rates: Arc::new(RateLimits::default()),
            slots: Arc::new(Slots::default()),
        }
    }
}

impl<S> Layer<S> for ProviderLimitLayer {
    type Service = ProviderLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProviderLimit {
            inner,
            // One Arc for the whole configuration: a service is cloned per call.
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service [`ProviderLimitLayer`] produces.
#[derive(Clone, Debug)]
pub struct ProviderLimit<S> {
    inner: S,
    layer: Arc<ProviderLimitLayer>,
}

impl<S, B, RB> Service<Request<B>> for ProviderLimit<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<CallError>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<RB>;
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, CallError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Some(candidate) = req.extensions().get::<Candidate>() else {
            return Box::pin(async {
                Err(Error::Internal(
                    "ProviderLimitLayer needs a Candidate: put FallbackLayer outside it".to_owned(),
                )
                .into())
            });
        };
        let provider = &candidate.provider.resource;
        let name = provider.metadata.name.clone();
        if let Some(n) = provider.spec.max_requests_per_minute {
            let snapshot = self.layer.snapshot.current();
            if let Err(e) = self
                .layer
                .rates
                .check(Owner::ModelProvider, &name, n, &snapshot)
            {
                return Box::pin(async move { Err(CallError::next_candidate(e, false)) });
            }
        }
        // A free slot (the common case): no wait, and no copy of the services below.
        if let Some(permit) = self.layer.slots.try_acquire(&name, &self.layer.reliability) {
            let held = hold(&req, permit);
            let fut = self.inner.call(req);
            return Box::pin(async move {
                let res = fut.await.map_err(Into::into);
                drop(held);
                res
            });
        }
        let mut inner = crate::service::take_ready(&mut self.inner);
        let layer = self.layer.clone();
        Box::pin(async move {
            let permit = layer
                .slots
                .acquire(&name, &layer.reliability)
                .await
                .map_err(|e| CallError::next_candidate(e, false))?;
            let held = hold(&req, permit);
            let res = inner.call(req).await.map_err(Into::into);
            drop(held);
            res
        })
    }
}

/// Keep `permit` until the call finishes: with its log, or (without one) until the answer's
/// head, which is returned to drop then.
fn hold<B>(req: &Request<B>, permit: OwnedSemaphorePermit) -> Option<OwnedSemaphorePermit> {
    match req.extensions().get::<CallLog>() {
        Some(log) => {
            log.permit(permit);
            None
        }
        None => Some(permit),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use serde_json::json;
    use tokio::sync::oneshot;
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    use super::*;
    use crate::call_log::CallLogLayer;
    use crate::error::Next;
    use crate::meter::CallSink;
    use crate::testing::{
        agent_principal, candidate, ok, provider, refused, request, snapshot, Calls,
    };

    /// A request for `p/m`, as the fallback layer hands it down.
    fn for_candidate(snapshot: &SharedSnapshot) -> Request<Full<Bytes>> {
        let mut req = request(
            "/v1/chat/completions",
            Some(agent_principal(json!({}))),
            None,
        );
        req.extensions_mut().insert(candidate(snapshot, "p", "m"));
        req
    }

    #[tokio::test]
    async fn past_the_providers_rate_the_call_goes_to_the_next_candidate() {
        let snapshot = snapshot(&[provider(
            "p",
            json!({"allowedModels": ["m"], "maxRequestsPerMinute": 2}),
        )])
        .await;
        let calls = Calls::default();
        let counted = calls.clone();
        let inner = service_fn(move |_req: Request<Full<Bytes>>| {
            counted.add();
            async { Ok::<_, Infallible>(ok()) }
        });
        let service =
            ProviderLimitLayer::new(snapshot.clone(), Reliability::default()).layer(inner);
        for _ in 0..2 {
            let res = service.clone().oneshot(for_candidate(&snapshot)).await;
            assert_eq!(res.unwrap().status(), 200);
        }
        let e = service.oneshot(for_candidate(&snapshot)).await.unwrap_err();
        assert_eq!(e.error.status(), 429);
        assert!(e.error.retry_after_secs().is_some());
        assert_eq!(e.next, Next::NextCandidate { cool: false });
        assert_eq!(calls.get(), 2);
    }

    fn one_at_a_time() -> Reliability {
        Reliability {
            max_concurrency: 1,
            max_queue: 0,
            queue_timeout: Duration::from_millis(20),
            ..Reliability::default()
        }
    }

    #[tokio::test]
    async fn a_call_past_the_providers_concurrency_goes_to_the_next_candidate() {
        let snapshot = snapshot(&[provider("p", json!({"allowedModels": ["m"]}))]).await;
        let (release, held) = oneshot::channel::<()>();
        let held = Arc::new(std::sync::Mutex::new(Some(held)));
        let inner = service_fn(move |_req: Request<Full<Bytes>>| {
            let wait = held.lock().unwrap().take();
            async move {
                if let Some(wait) = wait {
                    let _ = wait.await;
                }
                Ok::<_, Infallible>(ok())
            }
        });
        let service = ProviderLimitLayer::new(snapshot.clone(), one_at_a_time()).layer(inner);
        let first = tokio::spawn(service.clone().oneshot(for_candidate(&snapshot)));
        tokio::time::sleep(Duration::from_millis(10)).await;

        let e = service
            .clone()
            .oneshot(for_candidate(&snapshot))
            .await
            .unwrap_err();
        assert_eq!(e.error.status(), 503);
        assert_eq!(e.next, Next::NextCandidate { cool: false });

        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status(), 200);
        // The slot is free again.
        let res = service.oneshot(for_candidate(&snapshot)).await.unwrap();
        assert_eq!(res.status(), 200);
    }

    #[tokio::test]
    async fn with_a_call_log_the_slot_is_held_until_the_call_finishes() {
        let snapshot = snapshot(&[provider("p", json!({"allowedModels": ["m"]}))]).await;
        let sink = CallSink::spawn(Arc::new(pai_store::MemoryStore::new()));
        let inner = service_fn(|_req: Request<Full<Bytes>>| async { Ok::<_, Infallible>(ok()) });
        let service = ServiceBuilder::new()
            .layer(CallLogLayer::new(sink))
            .layer(ProviderLimitLayer::new(snapshot.clone(), one_at_a_time()))
            .service(inner);
        let answered = service
            .clone()
            .oneshot(for_candidate(&snapshot))
            .await
            .unwrap();
        // The answer's head is out, its body is not: the call still holds its slot.
        let e = refused(service.clone().oneshot(for_candidate(&snapshot)).await);
        assert_eq!(e.error.status(), 503);
        answered.into_body().collect().await.unwrap();
        let res = service.oneshot(for_candidate(&snapshot)).await.unwrap();
        assert_eq!(res.status(), 200);
    }

    #[tokio::test]
    async fn a_request_without_a_candidate_is_refused() {
        let snapshot = snapshot(&[]).await;
        let inner = service_fn(|_req: Request<Full<Bytes>>| async { Ok::<_, Infallible>(ok()) });
        let service = ProviderLimitLayer::new(snapshot, Reliability::default()).layer(inner);
        let e = service
            .oneshot(request("/v1/chat/completions", None, None))
            .await
            .unwrap_err();
        assert_eq!(e.error.status(), 500);
    }
}
