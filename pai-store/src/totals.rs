//! Summing calls into per-provider, per-access-key totals and per-workload totals, the same
//! way in every store.
//!
//! A store answers `usage_since` with a [`UsageTally`] and `usage_by_workload` with a
//! [`WorkloadTally`]: it adds every call started at or after the period's start, in any order,
//! and finishes the tally, which sorts the groups the way the `Store` contract says and sums
//! costs exactly (`u128` pico-USD, saturating). Memory stays one entry per group, so a store can
//! stream its calls through without loading a whole period.
//!
//! ```
//! use pai_core::{CallRecord, Usage};
//! use pai_store::totals::UsageTally;
//!
//! let call = |key: Option<&str>, output| CallRecord {
//!     provider: "openai".into(),
//!     access_key: key.map(str::to_owned),
//!     usage: Some(Usage { input: 10, output, ..Usage::default() }),
//!     ..CallRecord::default()
//! };
//! let mut tally = UsageTally::default();
//! for record in [call(Some("alice"), 5), call(None, 1), call(Some("alice"), 7)] {
//!     tally.add(&record);
//! }
//! let totals = tally.finish();
//! // Keyless calls first, then by access key.
//! assert_eq!(totals[0].access_key, None);
//! assert_eq!((totals[1].requests, totals[1].usage.output), (2, 12));
//! ```

use std::collections::BTreeMap;

use pai_core::{CallRecord, Usage, UsageTotals, WorkloadTotals};

/// Running totals per provider and access key, for `Store::usage_since`. They come out sorted
/// by provider, then access key (keyless calls first).
#[derive(Debug, Default)]
pub struct UsageTally {
    groups: BTreeMap<(String, Option<String>), UsageTotals>,
}

impl UsageTally {
    /// Count one call: one request, its usage if known, its cost if priced.
    pub fn add(&mut self, call: &CallRecord) {
        let key = (call.provider.clone(), call.access_key.clone());
        let totals = self.groups.entry(key).or_insert_with(|| UsageTotals {
            provider: call.provider.clone(),
            access_key: call.access_key.clone(),
            ..UsageTotals::default()
        });
        totals.requests = totals.requests.saturating_add(1);
        if let Some(usage) = &call.usage {
            add_usage(&mut totals.usage, usage);
        }
        if let Some(cost) = call.cost_pico_usd {
            totals.cost_pico_usd = totals.cost_pico_usd.saturating_add(cost);
        }
        totals.last_used_ms = totals.last_used_ms.max(call.started_at_ms);
    }

    /// The totals, sorted.
    pub fn finish(self) -> Vec<UsageTotals> {
        self.groups.into_values().collect()
    }
}

/// The key of [`WorkloadTotals`]: workload, provider, model, binding.
pub(crate) type WorkloadKey = (String, String, String, Option<String>);

/// Running totals per workload, provider, model and ModelBinding, for
/// `Store::usage_by_workload`. They come out sorted by those (calls without a binding first).
#[derive(Debug, Default)]
pub struct WorkloadTally {
    groups: BTreeMap<WorkloadKey, WorkloadTotals>,
}

impl WorkloadTally {
    /// Count one call: one request, its usage if known, and its cost if priced; a call that
    /// used tokens without a price counts as unpriced.
    pub fn add(&mut self, call: &CallRecord) {
        let totals = self.group(WorkloadTotals {
            workload: call.workload.clone(),
            provider: call.provider.clone(),
            model: call.model.clone(),
            binding: call.binding.clone(),
            ..WorkloadTotals::default()
        });
        totals.requests = totals.requests.saturating_add(1);
        if let Some(usage) = &call.usage {
            add_usage(&mut totals.usage, usage);
        }
        match call.cost_pico_usd {
            Some(cost) => totals.cost_pico_usd = totals.cost_pico_usd.saturating_add(cost),
            None if call.usage.is_some_and(|u| u.total_tokens() > 0) => {
                totals.unpriced_requests = totals.unpriced_requests.saturating_add(1);
            }
            None => {}
        }
        totals.last_used_ms = totals.last_used_ms.max(call.started_at_ms);
    }

    /// The running totals of the group `empty` names (its key fields), created from it if new.
    pub(crate) fn group(&mut self, empty: WorkloadTotals) -> &mut WorkloadTotals {
        let key = (
            empty.workload.clone(),
            empty.provider.clone(),
            empty.model.clone(),
            empty.binding.clone(),
        );
        self.groups.entry(key).or_insert(empty)
    }

    /// The running totals of an existing group.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn get_mut(&mut self, key: &WorkloadKey) -> Option<&mut WorkloadTotals> {
        self.groups.get_mut(key)
    }

    /// The totals, sorted.
    pub fn finish(self) -> Vec<WorkloadTotals> {
        self.groups.into_values().collect()
    }
}

fn add_usage(sum: &mut Usage, usage: &Usage) {
    sum.input = sum.input.saturating_add(usage.input);
    sum.cached_input = sum.cached_input.saturating_add(usage.cached_input);
    sum.cache_write = sum.cache_write.saturating_add(usage.cache_write);
    sum.output = sum.output.saturating_add(usage.output);
    sum.reasoning = sum.reasoning.saturating_add(usage.reasoning);
}
