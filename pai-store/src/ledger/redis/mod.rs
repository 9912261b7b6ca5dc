//! A [`BudgetLedger`] in Redis, shared by every replica: one Lua script per reserve, per settle
//! and per read, so each is atomic on the server across all of its scopes.
//!
//! The scripts keep the contract the other ledgers keep, with the same arithmetic:
//! - counters (spent and reserved per scope) live in one hash per UTC day, which expires a day
//!   after its day ends, so the server holds about two days of counters;
//! - a reservation is kept with its deadline (now + the TTL, by the gateway's clock); the next
//!   script any replica runs charges in full those past it (at most 100 per script, so no call
//!   does unbounded work), so a replica killed mid-stream leaves no scope blocked for longer
//!   than the TTL, and its callers' spend is counted, not forgotten;
//! - amounts are u128 decimal strings, added and compared exactly in Lua.
//!
//! All keys share one hash tag (`{prefix}`), so the scripts touch one cluster slot.
//!
//! **Failure:** every command has a deadline ([`COMMAND_TIMEOUT`]); a server that does not
//! answer makes `reserve` answer [`LedgerError::Unavailable`], which the gateway turns into a 503
//! in the client's dialect (fail closed). The connection manager reconnects on its own, so
//! calls succeed again as soon as the server is back. A reserve whose answer was lost may have
//! been made: it is charged in full when its TTL passes (fail closed again).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use pai_core::{BudgetLedger, Clock, LedgerError, Refusal, Reservation, ScopeKey, ScopeLimit};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::DEFAULT_RESERVATION_TTL;

/// How long one script may take, the connection included, before the ledger is unavailable.
/// A script takes microseconds on the server; this covers a busy replica's scheduling too,
/// and is how long a call waits on a server that went silent before it is refused.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

const COMMON: &str = include_str!("common.lua");

struct Scripts {
    reserve: Script,
    settle: Script,
    spent: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let with_common = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Scripts {
            reserve: with_common(include_str!("reserve.lua")),
            settle: with_common(include_str!("settle.lua")),
            spent: with_common(include_str!("spent.lua")),
        }
    }
}

/// Daily budgets in Redis, exact across replicas.
///
/// ```no_run
/// # async fn example() -> Result<(), pai_core::LedgerError> {
/// use std::sync::Arc;
///
/// let clock = Arc::new(pai_core::SystemClock);
/// let ledger = pai_store::RedisLedger::connect("redis://127.0.0.1:6379", "pai", clock).await?;
/// # let _ = ledger;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisLedger {
    conn: ConnectionManager,
    prefix: Arc<str>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    scripts: Arc<Scripts>,
}

impl fmt::Debug for RedisLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLedger")
            .field("prefix", &self.prefix)
            .field("reservation_ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RedisLedger {
    /// Connect to the server at `url` (`redis://host:port/db`, `rediss://` for TLS). Every
    /// replica that shares budgets uses the same `prefix`; days and deadlines come from
    /// `clock`. The server must be reachable now; later outages are ridden out.
    pub async fn connect(
        url: &str,
        prefix: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<RedisLedger, LedgerError> {
        // The URL may hold a password: no error repeats it.
        let client = redis::Client::open(url).map_err(|_| {
            LedgerError::Unavailable("not a Redis URL (expected redis://host:port)".into())
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(COMMAND_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(1)
            .set_max_delay(500);
        let conn = tokio::time::timeout(
            COMMAND_TIMEOUT,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| LedgerError::Unavailable("cannot connect to Redis: no answer".into()))?
        .map_err(|e| LedgerError::Unavailable(format!("cannot connect to Redis: {e}")))?;
        Ok(RedisLedger {
            conn,
            prefix: prefix.into(),
            clock,
            ttl: DEFAULT_RESERVATION_TTL,
            scripts: Arc::new(Scripts::new()),
        })
    }

    /// Expire unsettled reservations after `ttl` instead. Every replica should use the same.
    pub fn with_reservation_ttl(mut self, ttl: Duration) -> RedisLedger {
        self.ttl = ttl;
        self
    }

    fn now_ms(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, LedgerError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(COMMAND_TIMEOUT, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(LedgerError::Unavailable(format!("Redis: {e}"))),
            Err(_) => Err(LedgerError::Unavailable(format!(
                "Redis did not answer within {COMMAND_TIMEOUT:?}"
            ))),
        }
    }
}

fn corrupt(what: &str) -> LedgerError {
    LedgerError::Unavailable(format!("the Redis ledger answered {what}"))
}

fn amount(s: &str) -> Result<u128, LedgerError> {
    s.parse()
        .map_err(|_| corrupt(&format!("{s:?} where an amount belongs")))
}

#[async_trait]
impl BudgetLedger for RedisLedger {
    async fn reserve(&self, scopes: &[ScopeLimit]) -> Result<Reservation, LedgerError> {
        let now_ms = self.now_ms();
        let (day, resets_in_secs) = self.clock.utc_day();
        let expires_at =
            now_ms.saturating_add(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX));
        let mut invocation = self.scripts.reserve.prepare_invoke();
        invocation
            .arg(&*self.prefix)
            .arg(now_ms)
            .arg(day)
            .arg(expires_at)
            .arg(scopes.len());
        for scope in scopes {
            invocation
                .arg(scope.key.kind)
                .arg(&scope.key.name)
                .arg(scope.limit.to_string())
                .arg(scope.amount.to_string());
        }
        let answer: Vec<String> = self.run(invocation).await?;
        match answer.as_slice() {
            [ok, id] if ok == "ok" => Ok(Reservation {
                id: id
                    .parse()
                    .map_err(|_| corrupt("a reservation id that is no number"))?,
                day,
                scopes: scopes.to_vec(),
            }),
            [refused, index, spent, reserved] if refused == "refused" => {
                let scope = index
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .and_then(|i| scopes.get(i))
                    .ok_or_else(|| corrupt("a refusal on a scope it was not asked about"))?;
                Err(LedgerError::Refused(Refusal {
                    scope: scope.key.clone(),
                    spent: amount(spent)?,
                    reserved: amount(reserved)?,
                    limit: scope.limit,
                    resets_in_secs,
                }))
            }
            _ => Err(corrupt("an answer it never gives")),
        }
    }

    async fn settle(&self, reservation: Reservation, actual: &[u128]) -> Result<(), LedgerError> {
        let mut invocation = self.scripts.settle.prepare_invoke();
        invocation
            .arg(&*self.prefix)
            .arg(self.now_ms())
            .arg(reservation.id);
        for used in actual.iter().take(reservation.scopes.len()) {
            invocation.arg(used.to_string());
        }
        let _closed: i64 = self.run(invocation).await?;
        Ok(())
    }

    async fn spent_today(&self, key: &ScopeKey) -> Result<u128, LedgerError> {
        let (day, _) = self.clock.utc_day();
        let mut invocation = self.scripts.spent.prepare_invoke();
        invocation
            .arg(&*self.prefix)
            .arg(self.now_ms())
            .arg(day)
            .arg(key.kind)
            .arg(&key.name);
        let spent: String = self.run(invocation).await?;
        amount(&spent)
    }

    fn reservation_ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests;
