//! Walks the call's candidates — the model asked for, then its fallbacks — until one answers.
//!
//! The candidates come from the caller ([`Principal`]) and the model the [`Call`] names: for an
//! access key, its provider's model then the provider's `spec.fallbacks`; for an agent, the
//! model asked for then the rest of its list. Each is handed to the inner service as the
//! request's [`Candidate`] extension, with the call's model rewritten to the candidate's. An
//! error marked [`Next::Final`] ends the walk (no other model would fix the request); any
//! other moves on, and one that says the candidate itself failed counts towards its cooldown
//! ([`crate::reliability`]): a candidate that keeps failing is skipped for a while, unless every
//! candidate is cooling down. The call's [`Deadline`] is set here, once for all candidates.
//!
//! # Example
//!
//! ```
//! # use pai_tower::FallbackLayer;
//! # fn _f(snapshot: pai_tower::SharedSnapshot) {
//! // After ParseLayer (it needs the Call), around the per-candidate layers.
//! let _layer = FallbackLayer::new(snapshot, pai_tower::Reliability::default());
//! # }
//! ```

mod candidates;

pub use candidates::Candidate;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use pai_core::{Call, Error};
use tower::{Layer, Service};

use crate::auth::Principal;
use crate::call_log::CallLog;
use crate::error::{CallError, Next};
use crate::reliability::{Cooldowns, Reliability};
use crate::rescue::Journey;
use crate::snapshot::SharedSnapshot;

/// When the whole call must be done, in the request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(pub Instant);

/// Tries the call's candidates in order. See the module docs.
#[derive(Clone, Debug)]
pub struct FallbackLayer {
    snapshot: SharedSnapshot,
    reliability: Arc<Reliability>,
    cooldowns: Arc<Cooldowns>,
}

impl FallbackLayer {
    /// Candidates from `snapshot`; cooldowns and the total time limit from `reliability`.
    pub fn new(snapshot: SharedSnapshot, reliability: Reliability) -> FallbackLayer {
        FallbackLayer {
            snapshot,
            reliability: Arc::new(reliability),
            cooldowns: Arc::new(Cooldowns::default()),
        }
    }
}

impl<S> Layer<S> for FallbackLayer {
    type Service = Fallback<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback {
            inner,
            // One Arc for the whole configuration: a service is cloned per call.
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service [`FallbackLayer`] produces.
#[derive(Clone, Debug)]
pub struct Fallback<S> {
    inner: S,
    layer: Arc<FallbackLayer>,
}

/// A copy of a request's head and body, for one more candidate.
fn copy<B: Clone>(parts: &http::request::Parts, body: &B) -> Request<B> {
    let mut req = Request::new(body.clone());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    *req.extensions_mut() = parts.extensions.clone();
    req
}

impl<S, B, RB> Service<Request<B>> for Fallback<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<CallError>,
    S::Future: Send + 'static,
    B: Clone + Send + 'static,
    RB: Send + 'static,
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
            let (mut parts, body) = req.into_parts();
            let principal = parts
                .extensions
                .get::<Principal>()
                .cloned()
                .ok_or(Error::MissingKey)?;
            let mut base: Option<Arc<Call>> = parts.extensions.remove::<Arc<Call>>();
            let Some(model) = base.as_ref().map(|c| c.model.clone()) else {
                return Err(Error::Internal(
                    "FallbackLayer needs the parsed call: put ParseLayer outside it".to_owned(),
                )
                .into());
            };
            let log = parts.extensions.get::<CallLog>().cloned();
            let journey = parts.extensions.get::<Journey>().cloned();
            let snapshot = layer.snapshot.current();
            let candidates = candidates::for_principal(&principal, &model, &snapshot)?;
            drop(snapshot);
            parts
                .extensions
                .insert(Deadline(Instant::now() + layer.reliability.total_timeout));
            let cooldowns = &layer.cooldowns;
            let every_one_cooling = candidates.iter().all(|c| cooldowns.cooling(&c.label));
            let primary = candidates.first().map(|c| c.label.clone());
            let count = candidates.len();
            let mut parts = Some(parts);
            let mut body = Some(body);
            let mut last_error: Option<CallError> = None;

            for (i, mut candidate) in candidates.into_iter().enumerate() {
                if !every_one_cooling && cooldowns.cooling(&candidate.label) {
                    tracing::debug!(candidate = %candidate.label, "skipped: cooling down");
                    last_error.get_or_insert_with(|| {
                        CallError::next_candidate(
                            Error::Unavailable(format!(
                                "{} is cooling down after repeated failures",
                                candidate.label
                            )),
                            false,
                        )
                    });
                    continue;
                }
                // The last candidate takes the call itself, so the common single-candidate
                // call never copies the body; the others take a copy.
                let last = i + 1 == count;
                let (mut req, mut call): (Request<B>, Option<Arc<Call>>) =
                    match (last, parts.as_ref(), body.as_ref()) {
                        (false, Some(p), Some(b)) => (copy(p, b), base.clone()),
                        _ => match (parts.take(), body.take()) {
                            (Some(p), Some(b)) => (Request::from_parts(p, b), base.take()),
                            _ => break,
                        },
                    };
                let Some(mut call) = call.take() else { break };
                if call.model != candidate.model {
                    Arc::make_mut(&mut call).model = candidate.model.clone();
                }
                candidate.position = i;
                if i > 0 {
                    candidate.fell_back_from = primary.clone();
                }
                if let Some(log) = &log {
                    log.record(|r| {
                        r.provider = candidate.provider.resource.metadata.name.clone();
                        r.model = candidate.model.clone();
                        r.binding = candidate
                            .binding
                            .as_ref()
                            .map(|b| b.resource.metadata.name.clone());
                    });
                }
                let label = candidate.label.clone();
                req.extensions_mut().insert(call);
                req.extensions_mut().insert(candidate);
                // The readiness the caller drove was for the first try; the others wait here.
                if i > 0 {
                    std::future::poll_fn(|cx| inner.poll_ready(cx))
                        .await
                        .map_err(Into::into)?;
                }
                match inner.call(req).await.map_err(Into::into) {
                    Ok(res) => {
                        cooldowns.success(&label);
                        // The answer names the model it replaces (the upstream leaf also does
                        // as it tries one, so an error after a fallback names it too).
                        if let (Some(journey), true) = (&journey, i > 0) {
                            if let Some(primary) = &primary {
                                journey.fell_back_from(primary);
                            }
                        }
                        return Ok(res);
                    }
                    Err(e) => {
                        if let Some(log) = &log {
                            log.release_candidate().await;
                        }
                        let cool = match e.next {
                            Next::Final => return Err(e),
                            Next::Retry { .. } => true,
                            Next::NextCandidate { cool } => cool,
                        };
                        if cool && cooldowns.failure(&label, &layer.reliability) {
                            tracing::warn!(candidate = %label, cooldown_s = layer.reliability.cooldown.as_secs(), "candidate keeps failing; cooling down");
                        }
                        tracing::info!(candidate = %label, error = %e.error, "candidate failed; trying the next");
                        last_error = Some(e);
                    }
                }
            }
            Err(last_error.unwrap_or_else(|| {
                Error::Unavailable("no model could take the call".to_owned()).into()
            }))
        })
    }
}

#[cfg(test)]
mod tests;
