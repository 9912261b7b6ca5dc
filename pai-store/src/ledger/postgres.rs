//! A [`BudgetLedger`] in PostgreSQL, shared by every replica: each reserve, settle and read is
//! one call of a function the migrations install, so one transaction and one round trip.
//!
//! `pai_ledger_reserve` inserts the counter rows it needs, locks them in key order (so two
//! reserves on overlapping scopes never deadlock), checks `spent + reserved + amount <= limit`
//! on each scope in the order given (the arithmetic of [`super::admit`]), and only then adds the
//! amounts and records the reservation with its deadline. Every function first charges in full
//! the reservations past their deadline (at most 1,000 per call, skipping rows another
//! transaction holds), so a replica that died mid-stream leaves no scope blocked longer than
//! the TTL. Amounts are `NUMERIC(39,0)`: u128, exact. Days and deadlines come from the
//! gateway's clock, not the server's.
//!
//! A transaction that loses a deadlock or a serialization race (possible only while expiring
//! another replica's reservations) is retried. A database that cannot be reached answers
//! [`LedgerError::Unavailable`]: the gateway refuses budgeted calls with 503 (fail closed).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use pai_core::{BudgetLedger, Clock, LedgerError, Refusal, Reservation, ScopeKey, ScopeLimit};
use sqlx::postgres::{PgConnectOptions, PgPool};

use super::DEFAULT_RESERVATION_TTL;

/// Tries of one ledger call that loses a deadlock or serialization race.
const TRIES: usize = 5;

/// Connections of one replica's ledger. Reserves on one scope queue on its row lock in the
/// server, so more connections do not add throughput; they keep other scopes moving.
const MAX_CONNECTIONS: u32 = 16;

/// How long a call waits for a connection: under a burst, calls queue here rather than in
/// the server; past it the call is refused with 503, never let through.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Daily budgets in PostgreSQL, exact across replicas.
#[derive(Clone)]
pub struct PostgresLedger {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    ttl: Duration,
}

impl fmt::Debug for PostgresLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLedger")
            .field("reservation_ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: pai_core::StoreError) -> LedgerError {
    LedgerError::Unavailable(e.to_string())
}

impl PostgresLedger {
    /// Connect to the database at `url` with a pool of its own and bring its schema up to date.
    pub async fn connect(url: &str, clock: Arc<dyn Clock>) -> Result<PostgresLedger, LedgerError> {
        let options = crate::postgres::connect_options(url).map_err(unavailable)?;
        PostgresLedger::connect_with(options, clock).await
    }

    /// [`Self::connect`] with options built by the caller.
    pub async fn connect_with(
        options: PgConnectOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<PostgresLedger, LedgerError> {
        // Commits return once PostgreSQL has them, not once its WAL is on disk: a reserve holds
        // its scope's row lock until commit, so waiting for the disk would make the disk the
        // throughput of every budget. A crash of this process loses nothing; a crash of the
        // database server can lose its last few hundred milliseconds of ledger changes (the
        // embedded SqliteLedger makes the same trade, writing behind by a few milliseconds).
        let options = options.options([("synchronous_commit", "off")]);
        let pool = crate::postgres::pool(options, MAX_CONNECTIONS, ACQUIRE_TIMEOUT)
            .await
            .map_err(unavailable)?;
        crate::postgres::migrate(&pool).await.map_err(unavailable)?;
        Ok(PostgresLedger::on_pool(pool, clock))
    }

    /// A ledger on a pool whose schema is up to date, e.g. a [`crate::PostgresStore`]'s.
    pub fn on_pool(pool: PgPool, clock: Arc<dyn Clock>) -> PostgresLedger {
        PostgresLedger {
            pool,
            clock,
            ttl: DEFAULT_RESERVATION_TTL,
        }
    }

    /// Expire unsettled reservations after `ttl` instead. Every replica should use the same.
    pub fn with_reservation_ttl(mut self, ttl: Duration) -> PostgresLedger {
        self.ttl = ttl;
        self
    }

    fn now_ms(&self) -> i64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// Whether a failed call may be run again: it lost a deadlock or a serialization race, so it
/// changed nothing.
fn retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}

fn db_error(e: sqlx::Error) -> LedgerError {
    LedgerError::Unavailable(format!("PostgreSQL: {e}"))
}

fn day_to_db(day: u64) -> i64 {
    i64::try_from(day).unwrap_or(i64::MAX)
}

fn amount(s: &str) -> Result<u128, LedgerError> {
    s.parse().map_err(|_| {
        LedgerError::Unavailable(format!("the PostgreSQL ledger answered {s:?} as an amount"))
    })
}

/// Run `call` up to [`TRIES`] times while it loses races.
macro_rules! with_retries {
    ($call:expr) => {{
        let mut tries = 0;
        loop {
            tries += 1;
            match $call {
                Err(e) if tries < TRIES && retryable(&e) => continue,
                other => break other.map_err(db_error),
            }
        }
    }};
}

#[async_trait]
impl BudgetLedger for PostgresLedger {
    async fn reserve(&self, scopes: &[ScopeLimit]) -> Result<Reservation, LedgerError> {
        let now_ms = self.now_ms();
        let (day, resets_in_secs) = self.clock.utc_day();
        let expires_at =
            now_ms.saturating_add(i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX));
        let kinds: Vec<&str> = scopes.iter().map(|s| s.key.kind).collect();
        let names: Vec<&str> = scopes.iter().map(|s| s.key.name.as_str()).collect();
        let limits: Vec<String> = scopes.iter().map(|s| s.limit.to_string()).collect();
        let amounts: Vec<String> = scopes.iter().map(|s| s.amount.to_string()).collect();
        let row: (Option<i64>, i32, Option<String>, Option<String>) = with_retries!(
            sqlx::query_as(
                "SELECT out_id, out_refused, out_spent, out_reserved FROM pai_ledger_reserve(\
                 $1::TEXT[], $2::TEXT[], $3::TEXT[]::NUMERIC[], $4::TEXT[]::NUMERIC[], $5, $6, $7)"
            )
            .bind(&kinds)
            .bind(&names)
            .bind(&limits)
            .bind(&amounts)
            .bind(day_to_db(day))
            .bind(expires_at)
            .bind(now_ms)
            .fetch_one(&self.pool)
            .await
        )?;
        match row {
            (Some(id), _, _, _) => Ok(Reservation {
                id: u64::try_from(id).map_err(|_| {
                    LedgerError::Unavailable(format!("the PostgreSQL ledger answered id {id}"))
                })?,
                day,
                scopes: scopes.to_vec(),
            }),
            (None, index, Some(spent), Some(reserved)) => {
                let scope = usize::try_from(index)
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .and_then(|i| scopes.get(i))
                    .ok_or_else(|| {
                        LedgerError::Unavailable(
                            "the PostgreSQL ledger refused a scope it was not asked about".into(),
                        )
                    })?;
                Err(LedgerError::Refused(Refusal {
                    scope: scope.key.clone(),
                    spent: amount(&spent)?,
                    reserved: amount(&reserved)?,
                    limit: scope.limit,
                    resets_in_secs,
                }))
            }
            _ => Err(LedgerError::Unavailable(
                "the PostgreSQL ledger answered neither a reservation nor a refusal".into(),
            )),
        }
    }

    async fn settle(&self, reservation: Reservation, actual: &[u128]) -> Result<(), LedgerError> {
        let id = i64::try_from(reservation.id).unwrap_or(i64::MAX);
        let actual: Vec<String> = actual
            .iter()
            .take(reservation.scopes.len())
            .map(u128::to_string)
            .collect();
        let now_ms = self.now_ms();
        with_retries!(
            sqlx::query("SELECT pai_ledger_settle($1, $2::TEXT[]::NUMERIC[], $3)")
                .bind(id)
                .bind(&actual)
                .bind(now_ms)
                .execute(&self.pool)
                .await
        )?;
        Ok(())
    }

    async fn spent_today(&self, key: &ScopeKey) -> Result<u128, LedgerError> {
        let (day, _) = self.clock.utc_day();
        let now_ms = self.now_ms();
        let spent: String = with_retries!(
            sqlx::query_scalar("SELECT pai_ledger_spent($1, $2, $3, $4)")
                .bind(key.kind)
                .bind(&key.name)
                .bind(day_to_db(day))
                .bind(now_ms)
                .fetch_one(&self.pool)
                .await
        )?;
        amount(&spent)
    }

    fn reservation_ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pai_core::BudgetLedger;

    use super::PostgresLedger;
    use crate::ledger_contract;
    use crate::test_servers::PgSchema;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn keeps_the_ledger_contract() {
        let Some(first) = PgSchema::create("postgres ledger contract").await else {
            return;
        };
        // Each check on a schema of its own: a fresh, empty ledger.
        let mut schemas = vec![first];
        for _ in 1..7 {
            schemas.push(PgSchema::create("postgres ledger contract").await.unwrap());
        }
        let urls: Vec<String> = schemas.iter().map(|s| s.url.clone()).collect();
        let mut next = urls.into_iter();
        ledger_contract::run_all(|clock| {
            let url = next.next().unwrap();
            async move {
                Arc::new(PostgresLedger::connect(&url, clock).await.unwrap())
                    as Arc<dyn BudgetLedger>
            }
        })
        .await;
        for schema in schemas {
            schema.drop().await;
        }
    }
}
