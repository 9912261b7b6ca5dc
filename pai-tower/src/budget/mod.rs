//! Which budgets a call touches, and what it may cost on each.
//!
//! Before a candidate is called, the worst case it can cost — estimated input tokens plus the
//! request's output bound — is reserved on every scope with a limit, atomically
//! ([`pai_core::BudgetLedger::reserve`]). When the call ends (answered, broken, or abandoned by
//! the client) the reservation is settled with what was really used. A call with no output
//! bound is reserved at [`DEFAULT_OUTPUT_RESERVE`] tokens of output; what a provider returns
//! beyond the bound is the only way past a cap.
//!
//! [`BudgetLayer`] does this for each candidate: it sizes the call (and bounds its output to
//! the tightest `maxTokensPerRequest`), reserves, and leaves the reservation with the call's
//! [`CallLog`], whose finish settles it with the usage the call really had. It needs the
//! [`Principal`], the parsed call (`ParseLayer`) and a `CallLogLayer` outside it; the current
//! [`Candidate`] adds the provider's and the ModelBinding's budgets when there is one.
//!
//! # Example
//!
//! ```
//! # use pai_tower::BudgetLayer;
//! # fn _f(ledger: std::sync::Arc<dyn pai_core::BudgetLedger>) {
//! // Refuses with 429 once a daily budget is spent; without a ledger, a call that touches a
//! // budget is refused with 503 rather than let through uncounted.
//! let _layer = BudgetLayer::new(Some(ledger), None);
//! # }
//! ```

mod admit;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pai_core::Call;
use tower::{Layer, Service};

use self::admit::{admit, upstream_of, Admission, Refused};
use crate::call_log::CallLog;
use crate::error::CallError;

use std::sync::Arc;

use pai_core::ledger::Unit;
use pai_core::{
    BudgetLedger, Cost, Error, LedgerError, PriceTable, Reservation, ScopeKey, ScopeLimit, Usage,
};

use crate::auth::{Binding, Principal};
use crate::fallback::Candidate;
use crate::meter::CallSink;

/// Output tokens reserved for a request that names no bound.
pub const DEFAULT_OUTPUT_RESERVE: u64 = 4096;

/// The budgets a call by `principal` through `candidate` touches, each with its limit and an
/// amount of zero; [`size`] fills in the worst case once the input is estimated. Empty when no
/// budget applies, and then the gateway skips estimating altogether.
pub(crate) fn scopes_for(principal: &Principal, candidate: Option<&Candidate>) -> Vec<ScopeLimit> {
    let mut scopes = Vec::new();
    let mut push = |kind: &'static str, name: &str, unit: Unit, limit: Option<u128>| {
        if let Some(limit) = limit {
            scopes.push(ScopeLimit {
                key: ScopeKey {
                    kind,
                    name: name.to_owned(),
                },
                unit,
                limit,
                amount: 0,
            });
        }
    };
    let tokens = |limit: Option<u64>| limit.map(u128::from);
    // Without a candidate (around an application's own handler), a key's own provider.
    let provider = match (candidate, &principal.binding) {
        (Some(c), _) => Some(&c.provider.resource),
        (None, Binding::Provider(p)) => Some(&p.resource),
        (None, Binding::Agent(_)) => None,
    };
    if let Some(provider) = provider {
        let pname = &provider.metadata.name;
        push(
            "provider",
            pname,
            Unit::Tokens,
            tokens(provider.spec.max_tokens_per_day),
        );
        if matches!(principal.binding, Binding::Provider(_)) {
            let external = provider.spec.external_access.max_tokens_per_day;
            push("provider-external", pname, Unit::Tokens, tokens(external));
        }
    }
    if let Some(key) = &principal.access_key {
        let limit = tokens(key.spec.limits.max_tokens_per_day);
        push("access-key", &key.metadata.name, Unit::Tokens, limit);
    }
    if let Some(binding) = candidate.and_then(|c| c.binding.as_ref()) {
        let b = &binding.resource;
        push(
            "model-binding",
            &b.metadata.name,
            Unit::Tokens,
            tokens(b.spec.max_tokens_per_day),
        );
    }
    if let Binding::Agent(agent) = &principal.binding {
        let cap = agent.spec.rate_limits.max_cost_per_day_usd;
        let limit = cap.map(|usd| Cost::from_usd(usd).pico_usd);
        push("agent-cost", &agent.metadata.name, Unit::PicoUsd, limit);
    }
    scopes
}

/// Put the worst case of a call on each scope: `input + output_bound` tokens on token scopes,
/// and on a dollar scope what those tokens cost at `model`'s price. A dollar cap cannot be kept
/// for a model without a price, so such a call is refused rather than spent uncounted.
pub(crate) fn size(
    scopes: &mut [ScopeLimit],
    input: u64,
    output_bound: u64,
    model: &str,
    prices: Option<&Arc<dyn PriceTable>>,
) -> Result<(), Error> {
    for scope in scopes {
        scope.amount = match scope.unit {
            Unit::Tokens => u128::from(input.saturating_add(output_bound)),
            Unit::PicoUsd => {
                let price = prices.and_then(|p| p.price(model)).ok_or_else(|| {
                    Error::PermissionDenied(format!(
                        "{} is a dollar cap and model {model:?} has no price; add it to the gateway's modelPrices",
                        scope.key.describe()
                    ))
                })?;
                let worst = Usage {
                    input,
                    output: output_bound,
                    ..Usage::default()
                };
                price.cost(&worst).pico_usd
            }
        };
    }
    Ok(())
}

/// What a finished call really used, per scope, in the order the scopes were reserved.
pub(crate) fn actual_amounts(
    scopes: &[ScopeLimit],
    usage: &Usage,
    cost_pico: Option<u128>,
) -> Vec<u128> {
    scopes
        .iter()
        .map(|s| match s.unit {
            Unit::Tokens => u128::from(usage.total_tokens()),
            // A cost scope without a price is charged in full: fail closed.
            Unit::PicoUsd => cost_pico.unwrap_or(s.amount),
        })
        .collect()
}

/// A reservation and the ledger to settle it with, settled exactly once.
pub(crate) struct Hold {
    ledger: Arc<dyn BudgetLedger>,
    reservation: Option<Reservation>,
}

impl Hold {
    /// Reserve `scopes` on `ledger`; `None` when there is nothing to reserve.
    pub(crate) async fn reserve(
        ledger: Option<&Arc<dyn BudgetLedger>>,
        scopes: Vec<ScopeLimit>,
    ) -> Result<Option<Hold>, Error> {
        if scopes.is_empty() {
            return Ok(None);
        }
        let Some(ledger) = ledger else {
            return Err(Error::Unavailable(
                "a daily budget is configured but this gateway has no budget ledger; refusing rather than letting spend go uncounted".to_owned(),
            ));
        };
        match ledger.reserve(&scopes).await {
            Ok(reservation) => Ok(Some(Hold {
                ledger: ledger.clone(),
                reservation: Some(reservation),
            })),
            Err(LedgerError::Refused(r)) => Err(Error::BudgetExceeded {
                budget: r.scope.describe(),
                retry_after_secs: r.resets_in_secs,
            }),
            Err(LedgerError::Unavailable(why)) => Err(Error::Unavailable(format!(
                "the budget ledger cannot be reached: {why}"
            ))),
        }
    }

    /// Give the reservation back unused and return once it is: unlike a drop, which releases
    /// it later, so a reservation made next on the same budgets does not count it.
    pub(crate) async fn release(mut self) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let unused = vec![0; reservation.scopes.len()];
        let ledger = self.ledger.clone();
        // Spawned, so that it completes even if the call is dropped while it waits.
        let released = tokio::spawn(async move { ledger.settle(reservation, &unused).await });
        match released.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not release a budget reservation"),
            Err(e) => tracing::warn!(error = %e, "could not release a budget reservation"),
        }
    }

    /// Settle with what was used; spawns, so it may be called from `Drop`. The settle counts
    /// as work finishing the call on `sink` until it is done.
    pub(crate) fn settle(
        mut self,
        usage: Option<&Usage>,
        cost_pico: Option<u128>,
        sink: &CallSink,
    ) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let usage = usage.copied().unwrap_or_default();
        let actual = actual_amounts(&reservation.scopes, &usage, cost_pico);
        let ledger = self.ledger.clone();
        let finishing = sink.finishing();
        let settle = async move {
            if let Err(e) = ledger.settle(reservation, &actual).await {
                tracing::error!(error = %e, "could not settle a budget reservation");
            }
            drop(finishing);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(settle);
            }
            Err(_) => tracing::error!("no runtime to settle a budget reservation on"),
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // Dropped without an outcome (the call was cancelled before an answer): release it as
        // unused. Usage, if any flowed, is settled by the meter, which owns its Hold.
        if let Some(reservation) = self.reservation.take() {
            let actual = vec![0; reservation.scopes.len()];
            let ledger = self.ledger.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = ledger.settle(reservation, &actual).await;
                });
            }
        }
    }
}

/// Whether `req` touches no budget and no `maxTokensPerRequest`.
fn nothing_to_admit<B>(req: &Request<B>) -> bool {
    let ext = req.extensions();
    let (Some(principal), Some(call)) = (ext.get::<Principal>(), ext.get::<Arc<Call>>()) else {
        return false;
    };
    let candidate = ext.get::<Candidate>();
    let no_scopes = call.operation == pai_core::Operation::CountTokens
        || scopes_for(principal, candidate).is_empty();
    no_scopes
        && candidate
            .and_then(Candidate::max_tokens_per_request)
            .is_none()
}

/// The output bound a candidate's `maxTokensPerRequest` set, in the request's extensions (for
/// `x-pai-max-output-tokens`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputBound(pub u64);

/// Reserves each call's worst case on its budgets. See the module docs.
#[derive(Clone)]
pub struct BudgetLayer {
    ledger: Option<Arc<dyn BudgetLedger>>,
    prices: Option<Arc<dyn PriceTable>>,
}

impl std::fmt::Debug for BudgetLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetLayer")
            .field("ledger", &self.ledger.is_some())
            .finish_non_exhaustive()
    }
}

impl BudgetLayer {
    /// Budgets counted on `ledger`; dollar caps priced with `prices`.
    pub fn new(
        ledger: Option<Arc<dyn BudgetLedger>>,
        prices: Option<Arc<dyn PriceTable>>,
    ) -> BudgetLayer {
        BudgetLayer { ledger, prices }
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = Budget<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Budget {
            inner,
            // One Arc for the whole configuration: a service is cloned per call.
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service [`BudgetLayer`] produces.
#[derive(Clone, Debug)]
pub struct Budget<S> {
    inner: S,
    layer: Arc<BudgetLayer>,
}

impl<S, B, RB> Service<Request<B>> for Budget<S>
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

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if nothing_to_admit(&req) {
            // No budget and no bound: no reservation, and no copy of the services below.
            let fut = self.inner.call(req);
            return Box::pin(async move { fut.await.map_err(Into::into) });
        }
        let mut inner = crate::service::take_ready(&mut self.inner);
        let layer = self.layer.clone();
        Box::pin(async move {
            let ext = req.extensions();
            let principal = ext.get::<Principal>().ok_or(Error::MissingKey)?;
            let candidate = ext.get::<Candidate>();
            let Some(call) = ext.get::<Arc<Call>>() else {
                return Err(Error::Internal(
                    "BudgetLayer needs the parsed call: put ParseLayer outside it".to_owned(),
                )
                .into());
            };
            let scopes = if call.operation == pai_core::Operation::CountTokens {
                Vec::new()
            } else {
                scopes_for(principal, candidate)
            };
            let limit = candidate.and_then(Candidate::max_tokens_per_request);
            if scopes.is_empty() && limit.is_none() {
                // Nothing to reserve and nothing to bound.
                return inner.call(req).await.map_err(Into::into);
            }
            let bounded = limit.is_some();
            // Sized for whoever answers: the candidate's adapter, else the key's provider's,
            // else by the client's own dialect.
            let upstream = match (candidate, &principal.binding) {
                (Some(c), _) => upstream_of(c, call),
                (None, Binding::Provider(p)) => match p.adapter.as_deref() {
                    Some(adapter) => pai_providers::estimate::Upstream::of(adapter),
                    None => pai_providers::estimate::Upstream::Dialect(call.client),
                },
                (None, Binding::Agent(_)) => {
                    pai_providers::estimate::Upstream::Dialect(call.client)
                }
            };
            let log = ext.get::<CallLog>().cloned();
            if !scopes.is_empty() && log.is_none() {
                return Err(Error::Internal(
                    "BudgetLayer settles through the call log: put CallLogLayer outside it"
                        .to_owned(),
                )
                .into());
            }
            let first = candidate.is_none_or(|c| c.position == 0);
            // Taken out to be changed (its output bound) without a copy: nothing else holds it.
            let Some(mut call) = req.extensions_mut().remove::<Arc<Call>>() else {
                return Err(Error::Internal("the parsed call went missing".to_owned()).into());
            };
            let admitted = admit(
                layer.ledger.as_ref(),
                layer.prices.as_ref(),
                Arc::make_mut(&mut call),
                upstream,
                scopes,
                limit,
            )
            .await;
            let Admission { input, bound, hold } = match admitted {
                Ok(admission) => admission,
                Err(Refused::Limit(e)) if first => return Err(CallError::refused(e)),
                Err(Refused::Limit(e)) => return Err(CallError::next_candidate(e, false)),
                Err(Refused::Budget(e)) => return Err(CallError::next_candidate(e, false)),
                Err(Refused::Final(e)) => return Err(CallError::refused(e)),
            };
            let ext = req.extensions_mut();
            ext.insert(call);
            if let (true, Some(bound)) = (bounded, bound) {
                ext.insert(OutputBound(bound));
            }
            if let (Some(hold), Some(log)) = (hold, &log) {
                log.hold(hold, input);
            }
            inner.call(req).await.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests;
