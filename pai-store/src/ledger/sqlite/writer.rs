//! The write-behind task: batches of changes, one transaction each.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::rows::{encode_scopes, to_db};
use super::{Shared, FLUSH_INTERVAL};
use crate::ledger::core::Batch;
use crate::sqlite::statement_runs;

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

/// One batch, one transaction, one fsync; a statement per kind of change (per run of
/// [`statement_runs`]), not per row, so a busy ledger's batches cost few hand-offs to
/// the connection's thread.
async fn write(pool: &SqlitePool, batch: &Batch) -> Result<(), String> {
    let db = |e: sqlx::Error| e.to_string();
    let opened = batch
        .opened
        .iter()
        .map(|(r, expires_at_ms)| Ok((r, *expires_at_ms, encode_scopes(&r.scopes)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    for rows in statement_runs(&batch.spent) {
        let mut upsert: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO ledger_spent (scope_kind, scope_name, day, spent) ");
        upsert.push_values(rows, |mut row, (key, day, spent)| {
            row.push_bind(key.kind)
                .push_bind(&key.name)
                .push_bind(to_db(*day))
                .push_bind(spent.to_string());
        });
        upsert.push(
            " ON CONFLICT (scope_kind, scope_name, day) DO UPDATE SET spent = excluded.spent",
        );
        upsert.build().execute(&mut *tx).await.map_err(db)?;
    }
    for rows in statement_runs(&opened) {
        let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT OR REPLACE INTO ledger_reservations (id, day, expires_at_ms, scopes) ",
        );
        insert.push_values(rows, |mut row, (r, expires_at_ms, scopes)| {
            row.push_bind(to_db(r.id))
                .push_bind(to_db(r.day))
                .push_bind(to_db(*expires_at_ms))
                .push_bind(scopes.as_str());
        });
        insert.build().execute(&mut *tx).await.map_err(db)?;
    }
    for ids in statement_runs(&batch.closed) {
        let mut delete: QueryBuilder<Sqlite> =
            QueryBuilder::new("DELETE FROM ledger_reservations WHERE id IN (");
        let mut list = delete.separated(", ");
        for id in ids {
            list.push_bind(to_db(*id));
        }
        delete.push(")");
        delete.build().execute(&mut *tx).await.map_err(db)?;
    }
    tx.commit().await.map_err(db)
}
