//! What the stores' audit chains share: the events they append themselves.

use pai_core::audit::{AdminChange, AuditEvent, AuditSeal};
use pai_core::CallRecord;

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

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
