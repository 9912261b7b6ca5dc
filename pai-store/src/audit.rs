//! What the stores' audit chains share: the events they append themselves.

use pai_core::audit::{AdminChange, AuditEvent, AuditSeal};
use pai_core::Clock;

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

/// An `audit` row (`pos, seq, at_ms, prev, body, mac`) read back, in either SQL store.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn positioned<R>(
    row: &R,
    db_error: fn(sqlx::Error) -> pai_core::StoreError,
) -> Result<pai_core::audit::Positioned, pai_core::StoreError>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use crate::call_columns::from_db;
    let int = |name: &str| row.try_get::<i64, _>(name).map_err(db_error);
    let text = |name: &str| row.try_get::<String, _>(name).map_err(db_error);
    Ok(pai_core::audit::Positioned {
        pos: from_db(int("pos")?, "pos")?,
        entry: pai_core::audit::AuditEntry {
            seq: from_db(int("seq")?, "seq")?,
            at_ms: from_db(int("at_ms")?, "at_ms")?,
            prev: text("prev")?,
            body: text("body")?,
            mac: text("mac")?,
        },
    })
}
