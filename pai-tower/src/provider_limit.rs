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
            layer: self.clone(),
        }
    }
}

/// The service [`ProviderLimitLayer`] produces.
#[derive(Clone, Debug)]
pub struct ProviderLimit<S> {
    inner: S,
    layer: ProviderLimitLayer,
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
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let Some(candidate) = req.extensions().get::<Candidate>().cloned() else {
                return Err(Error::Internal(
                    "ProviderLimitLayer needs a Candidate: put FallbackLayer outside it".to_owned(),
                )
                .into());
            };
            let provider = &candidate.provider.resource;
            let name = &provider.metadata.name;
            if let Some(n) = provider.spec.max_requests_per_minute {
                let snapshot = layer.snapshot.current();
                layer
                    .rates
                    .check(Owner::ModelProvider, name, n, &snapshot)
                    .map_err(|e| CallError::next_candidate(e, false))?;
            }
            let permit = layer
                .slots
                .acquire(name, &layer.reliability)
                .await
                .map_err(|e| CallError::next_candidate(e, false))?;
            // Kept until the call finishes; without a log, until the answer's head.
            let held = match req.extensions().get::<CallLog>() {
                Some(log) => {
                    log.permit(permit);
                    None
                }
                None => Some(permit),
            };
            let res = inner.call(req).await.map_err(Into::into);
            drop(held);
            res
        })
    }
}
