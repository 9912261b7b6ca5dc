//! Requests per minute on an AccessKey, an Agent and a ModelProvider.
//!
//! # Design
//!
//! Each limit is a GCRA limiter from `governor` (`Quota::per_minute(n)`: a burst of `n`, one
//! request's worth refilled every `60/n` s). A check is a few atomic operations on the
//! limiter's own state, so concurrent requests race on a compare-and-swap, never on a lock:
//! twenty concurrent requests against a limit of five admit exactly five.
//!
//! The snapshot is rebuilt on every store change, so the limiters cannot live in it: an
//! unrelated apply would reset every count. They live in [`RateLimits`], beside the snapshot,
//! keyed by what is limited and the limit's value — a changed limit starts a fresh limiter.
//! The map's lock is held only to find or insert a limiter (never across I/O or an `await`);
//! whenever a limiter is added, the map drops every limiter whose resource or limit the current
//! snapshot no longer has, so it never holds more than the configuration names.
//!
//! Limits are per gateway process: replicas each allow the full rate.
//!
//! The principal's limits (its key's, then its agent's) are checked once per call; a
//! provider's limit is checked per candidate, and like an exhausted budget it sends the call to
//! the next candidate. A refusal is [`Error::RateLimited`] (429 with `retry-after` in whole
//! seconds, at least 1), naming the limit.

//!
//! # Example
//!
//! ```
//! # use pai_tower::RateLimitLayer;
//! // In a stack: after `AuthLayer` (it needs the Principal), before the body is read.
//! # fn _f(snapshot: pai_tower::SharedSnapshot) {
//! let _layer = RateLimitLayer::new(snapshot);
//! # }
//! ```

mod limits;

pub(crate) use limits::{Owner, RateLimits};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pai_core::Error;
use tower::{Layer, Service};

use crate::auth::{Binding, Principal};
use crate::error::CallError;
use crate::snapshot::{SharedSnapshot, Snapshot};

/// Enforces the caller's requests per minute: its access key's, then its agent's.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    snapshot: SharedSnapshot,
    limits: Arc<RateLimits>,
}

impl RateLimitLayer {
    /// Limits as `snapshot` configures them.
    pub fn new(snapshot: SharedSnapshot) -> RateLimitLayer {
        RateLimitLayer {
            snapshot,
            limits: Arc::new(RateLimits::default()),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            // One Arc for the whole configuration: a service is cloned per call.
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service [`RateLimitLayer`] produces.
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    layer: Arc<RateLimitLayer>,
}

/// The caller's own limits: its access key's, then its agent's.
fn check(limits: &RateLimits, principal: &Principal, snapshot: &Snapshot) -> Result<(), Error> {
    if let Some(key) = &principal.access_key {
        if let Some(n) = key.spec.limits.max_requests_per_minute {
            limits.check(Owner::AccessKey, &key.metadata.name, n, snapshot)?;
        }
    }
    if let Binding::Agent(agent) = &principal.binding {
        if let Some(n) = agent.spec.rate_limits.max_requests_per_minute {
            limits.check(Owner::Agent, &agent.metadata.name, n, snapshot)?;
        }
    }
    Ok(())
}

impl<S, B, RB> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<CallError>,
    S::Future: Send + 'static,
{
    type Response = Response<RB>;
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, CallError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if let Some(principal) = req.extensions().get::<Principal>() {
            let snapshot = self.layer.snapshot.current();
            if let Err(e) = check(&self.layer.limits, principal, &snapshot) {
                return Box::pin(async move { Err(e.into()) });
            }
        }
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}
