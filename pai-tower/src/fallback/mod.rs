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
use crate::service::copy_request;
use crate::snapshot::SharedSnapshot;
use crate::trace::CallTrace;

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
        let (mut parts, body) = req.into_parts();
        let Some(principal) = parts.extensions.get::<Principal>().cloned() else {
            return Box::pin(async { Err(Error::MissingKey.into()) });
        };
        let Some(base) = parts.extensions.remove::<Arc<Call>>() else {
            return Box::pin(async {
                Err(Error::Internal(
                    "FallbackLayer needs the parsed call: put ParseLayer outside it".to_owned(),
                )
                .into())
            });
        };
        let snapshot = self.layer.snapshot.current();
        let candidates = match candidates::for_principal(&principal, &base.model, &snapshot) {
            Ok(c) => c,
            Err(e) => return Box::pin(async move { Err(e.into()) }),
        };
        drop(snapshot);
        parts.extensions.insert(Deadline(
            Instant::now() + self.layer.reliability.total_timeout,
        ));
        let trace = parts.extensions.get::<CallTrace>().cloned();
        if let Some(trace) = &trace {
            trace.request(&base);
        }
        let walk = Walk {
            trace,
            log: parts.extensions.get::<CallLog>().cloned(),
            journey: parts.extensions.get::<Journey>().cloned(),
            primary: candidates.first().map(|c| c.label.clone()),
            layer: self.layer.clone(),
        };
        // One candidate (the common case): no copy of the request, nor of the services below.
        if candidates.len() == 1 {
            let Some(candidate) = candidates.into_iter().next() else {
                return Box::pin(async { Err(no_model()) });
            };
            let (req, label) = walk.prepare(candidate, 0, Request::from_parts(parts, body), base);
            let fut = self.inner.call(req);
            return Box::pin(async move {
                match fut.await.map_err(Into::into) {
                    Ok(res) => Ok(walk.answered(&label, 0, res)),
                    Err(e) => Err(walk.failed(&label, e).await.unwrap_or_else(|e| e)),
                }
            });
        }
        let mut inner = crate::service::take_ready(&mut self.inner);
        Box::pin(async move {
            let cooldowns = &walk.layer.cooldowns;
            let every_one_cooling = candidates.iter().all(|c| cooldowns.cooling(&c.label));
            let count = candidates.len();
            let mut pending = Some(Request::from_parts(parts, body));
            let mut base = Some(base);
            let mut last_error: Option<CallError> = None;
            for (i, candidate) in candidates.into_iter().enumerate() {
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
                // The last candidate takes the call itself; the others take a copy.
                let (req, call) = match (i + 1 == count, &pending, &base) {
                    (false, Some(req), Some(call)) => (copy_request(req), call.clone()),
                    _ => match (pending.take(), base.take()) {
                        (Some(req), Some(call)) => (req, call),
                        _ => break,
                    },
                };
                let (req, label) = walk.prepare(candidate, i, req, call);
                // The readiness the caller drove was for the first try; the others wait here.
                if i > 0 {
                    std::future::poll_fn(|cx| inner.poll_ready(cx))
                        .await
                        .map_err(Into::into)?;
                }
                match inner.call(req).await.map_err(Into::into) {
                    Ok(res) => return Ok(walk.answered(&label, i, res)),
                    Err(e) => last_error = Some(walk.failed(&label, e).await?),
                }
            }
            Err(last_error.unwrap_or_else(no_model))
        })
    }
}

fn no_model() -> CallError {
    Error::Unavailable("no model could take the call".to_owned()).into()
}

/// What one call's walk over its candidates shares.
struct Walk {
    trace: Option<CallTrace>,
    log: Option<CallLog>,
    journey: Option<Journey>,
    primary: Option<String>,
    layer: Arc<FallbackLayer>,
}

impl Walk {
    /// `req` for `candidate`, the `i`th: the call's model rewritten to the candidate's, the
    /// candidate in the extensions and in the record.
    fn prepare<B>(
        &self,
        mut candidate: Candidate,
        i: usize,
        mut req: Request<B>,
        mut call: Arc<Call>,
    ) -> (Request<B>, String) {
        if call.model != candidate.model {
            Arc::make_mut(&mut call).model = candidate.model.clone();
        }
        candidate.position = i;
        if i > 0 {
            candidate.fell_back_from = self.primary.clone();
        }
        if let Some(log) = &self.log {
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
        if let Some(trace) = &self.trace {
            trace.candidate(&candidate);
        }
        req.extensions_mut().insert(call);
        req.extensions_mut().insert(candidate);
        (req, label)
    }

    /// The `i`th candidate answered.
    fn answered<R>(&self, label: &str, i: usize, res: R) -> R {
        self.layer.cooldowns.success(label);
        // The answer names the model it replaces (the upstream leaf also does as it tries
        // one, so an error after a fallback names it too).
        if let (Some(journey), Some(primary), true) = (&self.journey, &self.primary, i > 0) {
            journey.fell_back_from(primary);
        }
        res
    }

    /// A candidate failed with `e`: what it held is given back, and its failure counted.
    /// `Ok(e)` when the next candidate may try, `Err(e)` when the call is refused for good.
    async fn failed(&self, label: &str, e: CallError) -> Result<CallError, CallError> {
        if let Some(trace) = &self.trace {
            trace.candidate_failed(&e.error);
        }
        if let Some(log) = &self.log {
            log.release_candidate().await;
        }
        let cool = match e.next {
            Next::Final => return Err(e),
            Next::Retry { .. } => true,
            Next::NextCandidate { cool } => cool,
        };
        let reliability = &self.layer.reliability;
        if cool && self.layer.cooldowns.failure(label, reliability) {
            tracing::warn!(candidate = %label, cooldown_s = reliability.cooldown.as_secs(), "candidate keeps failing; cooling down");
        }
        tracing::info!(candidate = %label, error = %e.error, "candidate failed; trying the next");
        Ok(e)
    }
}

#[cfg(test)]
mod tests;
