//! Usage totals: per provider and access key ([`pai_core::Store::usage_since`]), and per
//! workload, provider, model and ModelBinding ([`pai_core::Store::usage_by_workload`]); both
//! summed by the store, so nothing here reads the period's call records.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use pai_core::WorkloadTotals;
use serde::Deserialize;

use super::{AdminState, ApiError};
use crate::api::{usd, UsageReport, WorkloadUsage, WorkloadUsageReport};

/// The query of the usage routes.
#[derive(Debug, Deserialize)]
pub(super) struct UsageQuery {
    since_ms: Option<u64>,
}

/// `GET /admin/v1/usage?since_ms=`: totals per provider and access key since then (default:
/// 00:00 UTC today), each with its cost as `costUsd`.
pub(super) async fn totals(
    State(state): State<AdminState>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<UsageReport>, ApiError> {
    let since_ms = since(&state, query)?;
    state.calls_finished().await;
    let items = state.store.usage_since(since_ms).await?;
    Ok(Json(UsageReport {
        since_ms,
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// `GET /admin/v1/usage/workloads?since_ms=`: totals per workload, provider, model and binding.
pub(super) async fn workloads(
    State(state): State<AdminState>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<WorkloadUsageReport>, ApiError> {
    let since_ms = since(&state, query)?;
    state.calls_finished().await;
    let items = state.store.usage_by_workload(since_ms).await?;
    Ok(Json(WorkloadUsageReport {
        since_ms,
        items: items.into_iter().map(Into::into).collect(),
    }))
}

fn since(
    state: &AdminState,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<u64, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("since_ms must be Unix milliseconds: {e}"),
        )
    })?;
    Ok(query.since_ms.unwrap_or_else(|| start_of_day_ms(state)))
}

/// Unix milliseconds of the last 00:00 UTC.
pub(super) fn start_of_day_ms(state: &AdminState) -> u64 {
    state.clock.utc_day().0 * 86_400_000
}

impl From<WorkloadTotals> for WorkloadUsage {
    fn from(t: WorkloadTotals) -> WorkloadUsage {
        WorkloadUsage {
            cost_usd: usd(t.cost_pico_usd),
            workload: t.workload,
            provider: t.provider,
            model: t.model,
            binding: t.binding,
            requests: t.requests,
            usage: t.usage,
            cost_pico_usd: t.cost_pico_usd,
            unpriced_requests: t.unpriced_requests,
            last_used_ms: t.last_used_ms,
        }
    }
}
