//! The write-behind task: batches of changes, one transaction each.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;

use super::rows::{encode_scopes, to_db};
use super::{Shared, FLUSH_INTERVAL};
use crate::ledger::core::Batch;

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Wait for a change, let more gather for `FLUSH_INTERVAL`, commit them; until the ledger is
/// dropped, then commit what is left and stop.
pub(super) async fn run(shared: Arc<Shared>, pool: SqlitePool) {
    loop {
        shared.wake.notified().await;
        let closing = shared.closing.load(Ordering::Acquire);
        if !closing {
            tokio::time::sleep(FLUSH_INTERVAL).await;
        }
        let batch = shared.core.take_batch();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let result = if batch.is_empty() {
                Ok(())
            } else {
                write(&pool, &batch).await
            };
            match result {
                Ok(()) => {
                    shared.failing.store(false, Ordering::Release);
                    shared.durable.send_modify(|d| {
                        d.seq = d.seq.max(batch.seq);
                        d.error = None;
                    });
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot persist the budget ledger; retrying");
                    shared.failing.store(true, Ordering::Release);
                    shared.durable.send_modify(|d| d.error = Some(error));
                    if shared.closing.load(Ordering::Acquire) {
                        tracing::error!(
                            "budget ledger closed with changes that could not be persisted"
                        );
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if closing {
            return;
        }
    }
}

/// One batch, one transaction, one fsync.
async fn write(pool: &SqlitePool, batch: &Batch) -> Result<(), String> {
    let db = |e: sqlx::Error| e.to_string();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    for (key, day, spent) in &batch.spent {
        sqlx::query(
            "INSERT INTO ledger_spent (scope_kind, scope_name, day, spent) VALUES (?, ?, ?, ?) \
             ON CONFLICT (scope_kind, scope_name, day) DO UPDATE SET spent = excluded.spent",
        )
        .bind(key.kind)
        .bind(&key.name)
        .bind(to_db(*day))
        .bind(spent.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    for (reservation, expires_at_ms) in &batch.opened {
        sqlx::query(
            "INSERT OR REPLACE INTO ledger_reservations (id, day, expires_at_ms, scopes) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(to_db(reservation.id))
        .bind(to_db(reservation.day))
        .bind(to_db(*expires_at_ms))
        .bind(encode_scopes(&reservation.scopes)?)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    for id in &batch.closed {
        sqlx::query("DELETE FROM ledger_reservations WHERE id = ?")
            .bind(to_db(*id))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}
