//! Which budgets a call touches, and what it may cost on each.
//!
//! Before a candidate is called, the worst case it can cost — estimated input tokens plus the
//! request's output bound — is reserved on every scope with a limit, atomically
//! ([`pai_core::BudgetLedger::reserve`]). When the call ends (answered, broken, or abandoned by
//! the client) the reservation is settled with what was really used. A call with no output
//! bound is reserved at [`DEFAULT_OUTPUT_RESERVE`] tokens of output; what a provider returns
//! beyond the bound is the only way past a cap.

use std::sync::Arc;

use pai_core::ledger::Unit;
use pai_core::{
    BudgetLedger, Cost, Error, LedgerError, PriceTable, Reservation, ScopeKey, ScopeLimit, Usage,
};

use crate::auth::{Binding, Principal};
use crate::proxy::Candidate;

/// Output tokens reserved for a request that names no bound.
pub const DEFAULT_OUTPUT_RESERVE: u64 = 4096;

/// The scopes a call by `principal` through `candidate` touches, with the worst case on each:
/// `tokens` on token scopes, and for an agent with a dollar cap the worst-case cost of those
/// tokens at the candidate's price. An agent with a dollar cap cannot use a model without a
/// price: it would spend uncounted.
pub(crate) fn scopes_for(
    principal: &Principal,
    candidate: &Candidate,
    input: u64,
    output_bound: u64,
    prices: Option<&Arc<dyn PriceTable>>,
) -> Result<Vec<ScopeLimit>, Error> {
    let tokens = u128::from(input.saturating_add(output_bound));
    let mut scopes = Vec::new();
    let mut push = |kind: &'static str, name: &str, limit: Option<u64>| {
        if let Some(limit) = limit {
            scopes.push(ScopeLimit {
                key: ScopeKey {
                    kind,
                    name: name.to_owned(),
                },
                unit: Unit::Tokens,
                limit: u128::from(limit),
                amount: tokens,
            });
        }
    };
    let provider = &candidate.provider.resource;
    let pname = &provider.metadata.name;
    push("provider", pname, provider.spec.max_tokens_per_day);
    if matches!(principal.binding, Binding::Provider(_)) {
        push(
            "provider-external",
            pname,
            provider.spec.external_access.max_tokens_per_day,
        );
    }
    if let Some(key) = &principal.access_key {
        push(
            "access-key",
            &key.metadata.name,
            key.spec.limits.max_tokens_per_day,
        );
    }
    if let Some(binding) = &candidate.binding {
        push(
            "model-binding",
            &binding.resource.metadata.name,
            binding.resource.spec.max_tokens_per_day,
        );
    }
    if let Binding::Agent(agent) = &principal.binding {
        if let Some(usd) = agent.spec.rate_limits.max_cost_per_day_usd {
            let price = prices.and_then(|p| p.price(&candidate.model)).ok_or_else(|| {
                Error::PermissionDenied(format!(
                    "Agent {:?} has a daily dollar cap (rateLimits.maxCostPerDayUSD) and model {:?} has no price; add it to the gateway's modelPrices",
                    agent.metadata.name, candidate.model
                ))
            })?;
            let worst = price.cost(&Usage {
                input,
                output: output_bound,
                ..Usage::default()
            });
            scopes.push(ScopeLimit {
                key: ScopeKey {
                    kind: "agent-cost",
                    name: agent.metadata.name.clone(),
                },
                unit: Unit::PicoUsd,
                limit: Cost::from_usd(usd).pico_usd,
                amount: worst.pico_usd,
            });
        }
    }
    Ok(scopes)
}

/// Whether any budget applies to a call by `principal` through `candidate`: if none does, the
/// gateway skips estimating tokens.
pub(crate) fn any_budget(principal: &Principal, candidate: &Candidate) -> bool {
    let provider = &candidate.provider.resource.spec;
    provider.max_tokens_per_day.is_some()
        || (matches!(principal.binding, Binding::Provider(_))
            && provider.external_access.max_tokens_per_day.is_some())
        || principal
            .access_key
            .as_ref()
            .is_some_and(|k| k.spec.limits.max_tokens_per_day.is_some())
        || candidate
            .binding
            .as_ref()
            .is_some_and(|b| b.resource.spec.max_tokens_per_day.is_some())
        || matches!(&principal.binding, Binding::Agent(a) if a.spec.rate_limits.max_cost_per_day_usd.is_some())
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

    /// Settle with what was used; spawns, so it may be called from `Drop`.
    pub(crate) fn settle(mut self, usage: Option<&Usage>, cost_pico: Option<u128>) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        let usage = usage.copied().unwrap_or_default();
        let actual = actual_amounts(&reservation.scopes, &usage, cost_pico);
        let ledger = self.ledger.clone();
        let settle = async move {
            if let Err(e) = ledger.settle(reservation, &actual).await {
                tracing::error!(error = %e, "could not settle a budget reservation");
            }
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
