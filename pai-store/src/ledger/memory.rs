//! The ledger that keeps its counters in the process.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pai_core::{BudgetLedger, Clock, LedgerError, Reservation, ScopeKey, ScopeLimit};

use super::core::Core;
use super::DEFAULT_RESERVATION_TTL;

/// A [`BudgetLedger`] held in memory: exact within one process, forgotten when it exits.
///
/// For tests, and for embedders that run one replica and can afford to start every process
/// with fresh daily counters. It never answers [`LedgerError::Unavailable`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::Arc;
/// use pai_core::ledger::Unit;
/// use pai_core::{BudgetLedger, LedgerError, ScopeKey, ScopeLimit, SystemClock};
///
/// let ledger = pai_store::MemoryLedger::new(Arc::new(SystemClock));
/// let key = ScopeKey { kind: "access-key", name: "alice".to_owned() };
/// let call = |amount| [ScopeLimit { key: key.clone(), unit: Unit::Tokens, limit: 1_000, amount }];
///
/// let held = ledger.reserve(&call(800)).await.unwrap();
/// // 800 are held, so a second worst case of 300 does not fit.
/// assert!(matches!(ledger.reserve(&call(300)).await, Err(LedgerError::Refused(_))));
/// // The call used 250: the other 550 come back.
/// ledger.settle(held, &[250]).await.unwrap();
/// assert!(ledger.reserve(&call(300)).await.is_ok());
/// assert_eq!(ledger.spent_today(&key).await.unwrap(), 250);
/// # }
/// ```
pub struct MemoryLedger {
    core: Core,
}

impl MemoryLedger {
    /// An empty ledger whose days turn at midnight UTC of `clock`, with unsettled reservations
    /// expiring after 15 minutes.
    pub fn new(clock: Arc<dyn Clock>) -> MemoryLedger {
        MemoryLedger {
            core: Core::new(clock, DEFAULT_RESERVATION_TTL, false),
        }
    }

    /// Expire unsettled reservations after `ttl` instead (set it before the first reservation;
    /// each reservation keeps the deadline it was made with).
    pub fn with_reservation_ttl(self, ttl: Duration) -> MemoryLedger {
        self.core.set_ttl(ttl);
        self
    }

    /// Spent on a scope on a UTC day (days since the Unix epoch), as far as this ledger still
    /// remembers: today, and earlier days while a reservation made on them is open.
    pub fn spent_on(&self, key: &ScopeKey, day: u64) -> u128 {
        self.core.spent_on(key, day)
    }

    /// Charge every reservation older than the TTL in full now, rather than on the next call;
    /// how many there were.
    pub fn sweep(&self) -> usize {
        self.core.sweep()
    }

    /// The reservations neither settled nor expired, oldest first.
    pub fn open_reservations(&self) -> Vec<Reservation> {
        self.core.open_reservations()
    }
}

impl std::fmt::Debug for MemoryLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLedger")
            .field("reservation_ttl", &self.core.ttl())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl BudgetLedger for MemoryLedger {
    async fn reserve(&self, scopes: &[ScopeLimit]) -> Result<Reservation, LedgerError> {
        Ok(self.core.reserve(scopes)?)
    }

    async fn settle(&self, reservation: Reservation, actual: &[u128]) -> Result<(), LedgerError> {
        self.core.settle(reservation.id, actual);
        Ok(())
    }

    async fn spent_today(&self, key: &ScopeKey) -> Result<u128, LedgerError> {
        Ok(self.core.spent_on(key, self.core.today()))
    }

    fn reservation_ttl(&self) -> Duration {
        self.core.ttl()
    }
}
