//! `GET /admin/v1/budgets`: every daily budget that has a limit, with what the gateway's own
//! ledger has settled on it today.
//!
//! The budgets are read from the stored resources, the same fields the gateway reserves on
//! (`pai_tower::budget`): a ModelProvider's `maxTokensPerDay` and
//! `externalAccess.maxTokensPerDay`, an AccessKey's `limits.maxTokensPerDay`, a ModelBinding's
//! `maxTokensPerDay` and an Agent's `rateLimits.maxCostPerDayUSD`. `spent` is what
//! [`pai_core::BudgetLedger::spent_today`] answers: settled calls, plus reservations that expired
//! unsettled and were charged in full; calls still in flight are not in it.

use axum::extract::State;
use axum::Json;
use pai_core::{Kind, Resource, ScopeKey};
use serde_json::Number;

use super::{AdminState, ApiError};
use crate::api::{Budget, BudgetReport, BudgetUnit};

/// One budget before its spend is known.
struct Wanted {
    key: ScopeKey,
    unit: BudgetUnit,
    limit: Number,
}

/// `GET /admin/v1/budgets`.
pub(super) async fn list(State(state): State<AdminState>) -> Result<Json<BudgetReport>, ApiError> {
    state.calls_finished().await;
    let items = collect(&state, usize::MAX).await?;
    Ok(Json(BudgetReport { items }))
}

/// Every daily budget with a limit, at most `max` of them (in the order providers, external
/// access, access keys, ModelBindings, agents), with what the ledger has settled on each today.
pub(super) async fn collect(state: &AdminState, max: usize) -> Result<Vec<Budget>, ApiError> {
    let mut wanted = Vec::new();
    let mut tokens = |kind: &'static str, name: &str, limit: Option<u64>| {
        if let Some(limit) = limit {
            wanted.push(Wanted {
                key: ScopeKey {
                    kind,
                    name: name.to_owned(),
                },
                unit: BudgetUnit::Tokens,
                limit: Number::from(limit),
            });
        }
    };
    let providers = state.store.list(Kind::ModelProvider).await?;
    for stored in &providers {
        if let Resource::ModelProvider(p) = &stored.resource {
            tokens("provider", &p.metadata.name, p.spec.max_tokens_per_day);
        }
    }
    for stored in &providers {
        if let Resource::ModelProvider(p) = &stored.resource {
            tokens(
                "provider-external",
                &p.metadata.name,
                p.spec.external_access.max_tokens_per_day,
            );
        }
    }
    for stored in state.store.list(Kind::AccessKey).await? {
        if let Resource::AccessKey(k) = &stored.resource {
            tokens(
                "access-key",
                &k.metadata.name,
                k.spec.limits.max_tokens_per_day,
            );
        }
    }
    for stored in state.store.list(Kind::ModelBinding).await? {
        if let Resource::ModelBinding(b) = &stored.resource {
            tokens("model-binding", &b.metadata.name, b.spec.max_tokens_per_day);
        }
    }
    for stored in state.store.list(Kind::Agent).await? {
        if let Resource::Agent(a) = &stored.resource {
            if let Some(usd) = a.spec.rate_limits.max_cost_per_day_usd {
                wanted.push(Wanted {
                    key: ScopeKey {
                        kind: "agent-cost",
                        name: a.metadata.name.clone(),
                    },
                    unit: BudgetUnit::Usd,
                    limit: dollars(usd),
                });
            }
        }
    }

    let resets_in_seconds = state.clock.utc_day().1;
    wanted.truncate(max);
    let mut items = Vec::with_capacity(wanted.len());
    for w in wanted {
        let spent = state.ledger.spent_today(&w.key).await?;
        items.push(Budget {
            scope: w.key.kind.to_owned(),
            budget: w.key.describe(),
            name: w.key.name,
            unit: w.unit,
            spent: match w.unit {
                BudgetUnit::Tokens => Number::from(u64::try_from(spent).unwrap_or(u64::MAX)),
                // The ledger counts pico-USD.
                BudgetUnit::Usd => dollars(spent as f64 / 1e12),
            },
            limit: w.limit,
            resets_in_seconds,
        });
    }
    Ok(items)
}

/// Dollars as a JSON number; a limit that is not a finite number shows as 0.
fn dollars(usd: f64) -> Number {
    Number::from_f64(usd).unwrap_or_else(|| Number::from(0))
}
