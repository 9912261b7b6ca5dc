//! What the stores' audit chains share: the events they append themselves.

use pai_core::audit::{AdminChange, AuditEvent, AuditSeal};
use pai_core::{CallRecord, Clock};

/// The call entries for `records`, in order.
pub(crate) fn calls(records: &[CallRecord]) -> Vec<AuditEvent> {
    records.iter().cloned().map(AuditEvent::Call).collect()
}

/// The entry that records a retention pruning.
pub(crate) fn pruned(removed: u64, seal: &AuditSeal) -> AuditEvent {
    AuditEvent::Admin(AdminChange {
        actor: "retention".into(),
        action: "prune-audit".into(),
        outcome: Some(format!(
            "removed {removed} entries through entry {}",
            seal.through
        )),
        ..AdminChange::default()
    })
}

/// Unix milliseconds now: when an entry is appended.
pub(crate) fn now_ms() -> u64 {
    pai_core::SystemClock.unix_millis()
}
