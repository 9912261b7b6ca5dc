//! Usage totals: per provider and access key (what the store sums), and per workload and model
//! (summed here from the call records).
//!
//! The [`Store`] trait sums only per provider and access key, so totals per workload (an agent,
//! or `ext:<key>`) and model are summed from the call records of the period, read newest first
//! with [`Store::recent_calls`] in growing pages until a page reaches back past the start. That
//! is exact, because records are ordered by start time, but it reads the period's records into
//! memory: fine for a day of an admin's gateway, and the place to switch to a store-side query
//! when one exists.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use pai_core::{CallRecord, Store, Usage};
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
    let items = state.store.usage_since(since_ms).await?;
    Ok(Json(UsageReport {
        since_ms,
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// `GET /admin/v1/usage/workloads?since_ms=`: totals per workload, provider and model.
pub(super) async fn workloads(
    State(state): State<AdminState>,
    query: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Json<WorkloadUsageReport>, ApiError> {
    let since_ms = since(&state, query)?;
    let calls = calls_since(state.store.as_ref(), since_ms).await?;
    Ok(Json(WorkloadUsageReport {
        since_ms,
        items: by_workload(&calls)
            .into_values()
            .map(WorkloadTotals::into_report)
            .collect(),
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

/// Every call started at or after `since_ms`, newest first.
pub(super) async fn calls_since(
    store: &dyn Store,
    since_ms: u64,
) -> Result<Vec<CallRecord>, ApiError> {
    let mut limit = 1_024usize;
    loop {
        let calls = store.recent_calls(limit).await?;
        let reaches_back = calls.len() < limit
            || calls.last().is_some_and(|c| c.started_at_ms < since_ms)
            || limit == usize::MAX;
        if reaches_back {
            return Ok(calls
                .into_iter()
                .take_while(|c| c.started_at_ms >= since_ms)
                .collect());
        }
        limit = limit.saturating_mul(4);
    }
}

/// Running totals of one workload on one provider's model.
#[derive(Debug, Default)]
pub(super) struct WorkloadTotals {
    pub(super) workload: String,
    pub(super) provider: String,
    pub(super) model: String,
    pub(super) requests: u64,
    pub(super) usage: Usage,
    pub(super) cost_pico_usd: u128,
    pub(super) unpriced_requests: u64,
    pub(super) last_used_ms: u64,
}

impl WorkloadTotals {
    fn add(&mut self, call: &CallRecord) {
        self.requests = self.requests.saturating_add(1);
        if let Some(u) = &call.usage {
            let sum = &mut self.usage;
            sum.input = sum.input.saturating_add(u.input);
            sum.cached_input = sum.cached_input.saturating_add(u.cached_input);
            sum.cache_write = sum.cache_write.saturating_add(u.cache_write);
            sum.output = sum.output.saturating_add(u.output);
            sum.reasoning = sum.reasoning.saturating_add(u.reasoning);
        }
        match call.cost_pico_usd {
            Some(cost) => self.cost_pico_usd = self.cost_pico_usd.saturating_add(cost),
            None if call.usage.is_some_and(|u| u.total_tokens() > 0) => {
                self.unpriced_requests = self.unpriced_requests.saturating_add(1);
            }
            None => {}
        }
        self.last_used_ms = self.last_used_ms.max(call.started_at_ms);
    }

    fn into_report(self) -> WorkloadUsage {
        WorkloadUsage {
            cost_usd: usd(self.cost_pico_usd),
            workload: self.workload,
            provider: self.provider,
            model: self.model,
            requests: self.requests,
            usage: self.usage,
            cost_pico_usd: self.cost_pico_usd,
            unpriced_requests: self.unpriced_requests,
            last_used_ms: self.last_used_ms,
        }
    }
}

/// Calls summed per (workload, provider, model), sorted by those.
pub(super) fn by_workload(
    calls: &[CallRecord],
) -> BTreeMap<(String, String, String), WorkloadTotals> {
    let mut groups: BTreeMap<(String, String, String), WorkloadTotals> = BTreeMap::new();
    for call in calls {
        let key = (
            call.workload.clone(),
            call.provider.clone(),
            call.model.clone(),
        );
        groups
            .entry(key)
            .or_insert_with(|| WorkloadTotals {
                workload: call.workload.clone(),
                provider: call.provider.clone(),
                model: call.model.clone(),
                ..WorkloadTotals::default()
            })
            .add(call);
    }
    groups
}
