//! Summing calls into per-provider, per-access-key totals, the same way in every store.

use std::collections::BTreeMap;

use pai_core::{CallRecord, Usage, UsageTotals};

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

fn add_usage(sum: &mut Usage, usage: &Usage) {
    sum.input = sum.input.saturating_add(usage.input);
    sum.cached_input = sum.cached_input.saturating_add(usage.cached_input);
    sum.cache_write = sum.cache_write.saturating_add(usage.cache_write);
    sum.output = sum.output.saturating_add(usage.output);
    sum.reasoning = sum.reasoning.saturating_add(usage.reasoning);
}
