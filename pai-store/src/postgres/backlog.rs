//! Call records kept in memory while PostgreSQL cannot be reached, and written, in order, once
//! it is back.
//!
//! A gateway goes on serving through a database outage (from its last configuration snapshot,
//! with budgets in Redis), so the records of the calls it serves must wait somewhere. They wait
//! here, up to [`RECORD_BACKLOG`] of them (at 1,000 calls a second, well over a minute); once
//! the backlog holds anything, new records queue behind it so the table keeps the order they
//! were recorded in. A flusher writes the backlog in batches every [`FLUSH_EVERY`] while
//! anything waits. Past the bound, a write is refused (`Unavailable`), as it would be without a
//! backlog. What waits here lives in memory only: a replica killed during the outage loses its
//! waiting records, which is the trade the "nothing lost in a 30 s outage" asks for.

use std::collections::VecDeque;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use pai_core::audit::AuditKey;
use pai_core::{CallRecord, PartlyRecorded, StoreError};
use sqlx::PgPool;
use tokio::sync::watch;

/// Records held at most while the database is unreachable.
pub const RECORD_BACKLOG: usize = 100_000;

/// How often the flusher tries the database while records wait.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Records written per flush transaction.
const FLUSH_BATCH: usize = 512;

/// The waiting records, oldest first.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    waiting: Mutex<VecDeque<CallRecord>>,
}

impl Backlog {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<CallRecord>> {
        match self.waiting.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// How many records wait.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Queue `records` behind those waiting, as many as there is room for; past the bound, say
    /// how many of the first were queued.
    pub(super) fn push(&self, records: &[CallRecord], why: &str) -> Result<(), PartlyRecorded> {
        let mut waiting = self.lock();
        let room = RECORD_BACKLOG.saturating_sub(waiting.len());
        let taken = room.min(records.len());
        waiting.extend(records[..taken].iter().cloned());
        if taken < records.len() {
            return Err(PartlyRecorded {
                written: taken,
                error: StoreError::Unavailable(format!(
                    "{why}; and {RECORD_BACKLOG} call records already wait for it"
                )),
            });
        }
        Ok(())
    }
}

/// Write what waits, oldest first, until the store is dropped (`stop`'s sender).
pub(super) async fn flush(
    pool: PgPool,
    audit: AuditKey,
    backlog: Weak<Backlog>,
    mut stop: watch::Receiver<()>,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(FLUSH_EVERY) => {}
        }
        loop {
            let Some(backlog) = backlog.upgrade() else {
                return;
            };
            let batch: Vec<CallRecord> = backlog.lock().iter().take(FLUSH_BATCH).cloned().collect();
            if batch.is_empty() {
                break;
            }
            match super::write_calls(&pool, &audit, &batch).await {
                Ok(()) => {
                    // Only this task removes from the front; writers only append.
                    backlog.lock().drain(..batch.len());
                    if failing {
                        tracing::info!(
                            waiting = backlog.len(),
                            "PostgreSQL reachable again; writing the call records that waited"
                        );
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, waiting = backlog.len(), "call records wait for PostgreSQL");
                        failing = true;
                    }
                    break;
                }
            }
        }
    }
}
