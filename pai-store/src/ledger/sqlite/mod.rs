//! The embedded default ledger: answers from memory, writes behind to the store's SQLite file.
//!
//! What survives a crash is documented on [`SqliteLedger`], where users read it.

mod recover;
mod rows;
#[cfg(test)]
mod tests;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pai_core::{BudgetLedger, Clock, LedgerError, Reservation, ScopeKey, ScopeLimit};
use tokio::sync::{watch, Notify};

use super::core::Core;
use super::DEFAULT_RESERVATION_TTL;
use crate::SqliteStore;

/// How long the writer gathers changes before it commits them: the bound, with one commit's
/// time, on what a crash can lose.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(5);

/// A [`BudgetLedger`] that answers from memory and persists to the [`SqliteStore`]'s file.
///
/// # Durability
///
/// `reserve` and `settle` change the in-memory counters and return; they never wait on the
/// disk. A writer task takes a consistent snapshot of what changed (spent counters and opened
/// or closed reservations, all under one short lock hold) and commits it in one transaction
/// (WAL, `synchronous=FULL`: an fsync per commit). It takes its snapshot [`FLUSH_INTERVAL`]
/// after the first change since its previous snapshot, or as soon as the commit in progress
/// ends if that is later, so every change is on disk within `FLUSH_INTERVAL` plus two commits.
///
/// - **What a crash can lose**: the changes of that last window — about `FLUSH_INTERVAL` plus
///   two commit times (a few milliseconds on a local disk). A lost settle under-counts that
///   call's actual; a lost reservation means a call admitted in that window is not charged.
///   Everything older is exact.
/// - **What a crash cannot lose**: spent per scope and day as of the last commit, and every
///   reservation that was open then. Opening the ledger charges those reservations **in full**
///   (fail closed), exactly as if they had expired.
/// - [`SqliteLedger::flush`] returns once every change made before it was called is committed:
///   call it at shutdown (dropping the ledger also writes the last batch, if the runtime lives
///   long enough) and in tests.
/// - If a commit fails, the writer retries the batch (10 ms backoff doubling to 1 s), `flush`
///   answers [`LedgerError::Unavailable`], and so does `reserve` until a commit succeeds: the
///   gateway answers 503 rather than admit spend it cannot record. `settle` keeps counting in
///   memory.
///
/// A reservation opened and settled within one batch window never reaches the disk: only its
/// effect on `spent` does. One `SqliteLedger` owns the ledger tables of a file at a time: two
/// processes sharing a file would each count alone and overwrite each other's rows (sharing
/// budgets across replicas is the distributed backends' job).
///
/// # Example
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use pai_core::SystemClock;
///
/// let store = pai_store::SqliteStore::open("/var/lib/pai/pai.db".as_ref(), [0u8; 32]).await?;
/// let ledger = pai_store::SqliteLedger::open(&store, Arc::new(SystemClock)).await?;
/// // … serve …
/// ledger.flush().await?; // before closing the store: they share its connections
/// store.close().await;
/// # Ok(())
/// # }
/// ```
pub struct SqliteLedger {
    shared: Arc<Shared>,
}

/// What the ledger and its writer task share.
struct Shared {
    core: Core,
    /// Something changed, or a flush is waiting.
    wake: Notify,
    /// What is on disk: the journal `seq` of the last committed batch, and why the last
    /// commit failed if it did.
    durable: watch::Sender<Durable>,
    /// The last commit failed: refuse to admit spend that could not be recorded.
    failing: AtomicBool,
    /// The ledger was dropped: write what is left and stop.
    closing: AtomicBool,
}

#[derive(Clone, Debug, Default)]
struct Durable {
    seq: u64,
    error: Option<String>,
}

impl SqliteLedger {
    /// Open the ledger kept in `store`'s file (its tables come with the store's migrations),
    /// whose days turn at midnight UTC of `clock`.
    ///
    /// Charges every reservation a previous process left open in full, loads today's spend,
    /// and starts the writer task on the current tokio runtime. Unsettled reservations expire
    /// after 15 minutes (see [`SqliteLedger::with_reservation_ttl`]).
    pub async fn open(
        store: &SqliteStore,
        clock: Arc<dyn Clock>,
    ) -> Result<SqliteLedger, LedgerError> {
        let pool = store.pool().clone();
        let today = clock.utc_day().0;
        let spent = recover::recover(&pool, today).await?;
        let core = Core::new(clock, DEFAULT_RESERVATION_TTL, true);
        for (key, spent) in spent {
            core.load_spent(key, today, spent);
        }
        let shared = Arc::new(Shared {
            core,
            wake: Notify::new(),
            durable: watch::Sender::new(Durable::default()),
            failing: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        });
        tokio::spawn(writer::run(Arc::clone(&shared), pool));
        Ok(SqliteLedger { shared })
    }

    /// Expire unsettled reservations after `ttl` instead (set it before the first reservation;
    /// each reservation keeps the deadline it was made with).
    pub fn with_reservation_ttl(self, ttl: Duration) -> SqliteLedger {
        self.shared.core.set_ttl(ttl);
        self
    }

    /// Wait until every change made before this call is committed to the file.
    ///
    /// Answers [`LedgerError::Unavailable`] when the writer's last commit failed.
    pub async fn flush(&self) -> Result<(), LedgerError> {
        let target = self.shared.core.seq();
        let mut durable = self.shared.durable.subscribe();
        self.shared.wake.notify_one();
        loop {
            {
                let now = durable.borrow_and_update();
                if now.seq >= target {
                    return Ok(());
                }
                if let Some(e) = &now.error {
                    return Err(unavailable(e));
                }
            }
            // The sender lives in `shared`, which `self` holds: this only waits.
            if durable.changed().await.is_err() {
                return Err(LedgerError::Unavailable("ledger writer stopped".to_owned()));
            }
        }
    }

    /// Spent on a scope on a UTC day (days since the Unix epoch), as far as memory holds it:
    /// today (loaded at open), and earlier days while a reservation made on them is open.
    pub fn spent_on(&self, key: &ScopeKey, day: u64) -> u128 {
        self.shared.core.spent_on(key, day)
    }

    /// Charge every reservation older than the TTL in full now, rather than on the next call;
    /// how many there were.
    pub fn sweep(&self) -> usize {
        let expired = self.shared.core.sweep();
        if expired > 0 {
            self.shared.wake.notify_one();
        }
        expired
    }

    /// The reservations neither settled nor expired, oldest first.
    pub fn open_reservations(&self) -> Vec<Reservation> {
        self.shared.core.open_reservations()
    }
}

fn unavailable(error: &str) -> LedgerError {
    LedgerError::Unavailable(format!("cannot persist the budget ledger: {error}"))
}

impl Drop for SqliteLedger {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

impl std::fmt::Debug for SqliteLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLedger")
            .field("reservation_ttl", &self.shared.core.ttl())
            .field("durable", &*self.shared.durable.borrow())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl BudgetLedger for SqliteLedger {
    async fn reserve(&self, scopes: &[ScopeLimit]) -> Result<Reservation, LedgerError> {
        if self.shared.failing.load(Ordering::Acquire) {
            let error = self.shared.durable.borrow().error.clone();
            return Err(unavailable(
                error.as_deref().unwrap_or("the last commit failed"),
            ));
        }
        let reservation = self.shared.core.reserve(scopes)?;
        self.shared.wake.notify_one();
        Ok(reservation)
    }

    async fn settle(&self, reservation: Reservation, actual: &[u128]) -> Result<(), LedgerError> {
        // Even a settle that finds nothing open may have expired others on the way.
        self.shared.core.settle(reservation.id, actual);
        self.shared.wake.notify_one();
        Ok(())
    }

    async fn spent_today(&self, key: &ScopeKey) -> Result<u128, LedgerError> {
        let core = &self.shared.core;
        Ok(core.spent_on(key, core.today()))
    }

    fn reservation_ttl(&self) -> Duration {
        self.shared.core.ttl()
    }

    async fn flush(&self) -> Result<(), LedgerError> {
        SqliteLedger::flush(self).await
    }
}
