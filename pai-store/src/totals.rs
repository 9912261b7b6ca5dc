//! Summing calls into per-provider, per-access-key totals and per-workload totals, the same
//! way in every store.

use std::collections::BTreeMap;

use pai_core::{CallRecord, Usage, UsageTotals, WorkloadTotals};

/// Running totals, keyed so that they come out sorted by provider, then access key (keyless
/// calls first).
#[derive(Debug, Default)]
pub(crate) struct Totals {
    groups: BTreeMap<(String, Option<String>), UsageTotals>,
}

impl Totals {
    /// Count one call.
    pub(crate) fn add(&mut self, call: &CallRecord) {
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
    pub(crate) fn finish(self) -> Vec<UsageTotals> {
        self.groups.into_values().collect()
    }
}

/// The key of [`WorkloadTotals`]: workload, provider, model, binding.
pub(crate) type WorkloadKey = (String, String, String, Option<String>);

/// Running totals per workload, provider, model and binding, keyed so that they come out
/// sorted by those (calls without a binding first).
#[derive(Debug, Default)]
pub(crate) struct WorkloadGroups {
    groups: BTreeMap<WorkloadKey, WorkloadTotals>,
}

impl WorkloadGroups {
    /// Count one call.
    pub(crate) fn add(&mut self, call: &CallRecord) {
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
    pub(crate) fn get_mut(&mut self, key: &WorkloadKey) -> Option<&mut WorkloadTotals> {
        self.groups.get_mut(key)
    }

    /// The totals, sorted.
    pub(crate) fn finish(self) -> Vec<WorkloadTotals> {
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
