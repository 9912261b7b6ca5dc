//! The store replicas share: PostgreSQL.
//!
//! Every replica of a gateway connects to the same database. Resources, sealed secrets, the
//! access-key hash index, call records and the ledger's counters live there; the schema is
//! brought up to date on connect (the migrations take a lock, so replicas starting together
//! migrate once).
//!
//! **Changes reach every replica.** Each write that changes a resource bumps one revision row
//! in its own transaction and sends `NOTIFY pai_changes`, delivered on commit. Every
//! `PostgresStore` listens on a connection of its own and, on a notification, reads the
//! revision and moves its `watch`; so each replica's gateway reloads its snapshot within
//! milliseconds of a write anywhere. Notifications are not queued for a listener that is
//! disconnected, so the revision is also read every [`RESYNC_INTERVAL`]: a change reaches every
//! replica within that interval plus one snapshot load, even when its notification was lost.
//!
//! **Read your writes.** The replica that took a write moves its own `watch` to the revision
//! the write committed before the write returns, so `Gateway::caught_up` waits for a snapshot
//! that includes it.
//!
//! **Writes serialize on the revision row**, taken first in every write transaction: `apply`
//! answers `Created`, `Configured` or `Unchanged` exactly under concurrent admin calls on any
//! replica, and an unchanged `apply` (rolled back) does not move the revision. Admin writes
//! are rare; call records and the ledger do not touch that row.
//!
//! **Outages.** A gateway keeps serving from its last snapshot while the database is down;
//! call records wait in a bounded in-memory backlog and are written in order when it is back
//! (see `backlog`). Reads and admin writes answer [`StoreError::Unavailable`] meanwhile.
//!
//! **Secrets** are sealed ([`SecretBox`]) before they leave the process: the database, its WAL
//! and its backups hold only ciphertext. Access keys reach it only as hashes.

mod audit;
mod backlog;
mod follow;
mod rows;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use pai_core::audit::{AuditEnds, AuditKey, AuditSeal, Positioned};
use pai_core::{
    Applied, AuditEvent, CallRecord, Kind, PartlyRecorded, Resource, Store, StoreError, Stored,
    UsageTotals, WorkloadTotals,
};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tokio::sync::watch;

use crate::access_keys::{accepts, conflict, indexed_hashes};
use crate::apply::same_json;
use crate::totals::{UsageTally, WorkloadTally};
use crate::{unix_now, SecretBox};

use rows::{bind_call, db_error, to_db, CALL_COLUMNS, CALL_VALUES, RESOURCE_COLUMNS};

pub use backlog::RECORD_BACKLOG;

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations-postgres");

/// How often each replica reads the revision even without a notification: the bound on how
/// late a change whose notification was lost reaches it.
pub const RESYNC_INTERVAL: Duration = Duration::from_millis(500);

/// How long a statement waits for a pooled connection before the store is reported
/// unavailable: short, so an outage answers 503 promptly instead of holding requests.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections in the pool of one replica.
const MAX_CONNECTIONS: u32 = 8;

/// The channel every write notifies on commit.
const CHANNEL: &str = "pai_changes";

/// A [`Store`] in PostgreSQL, shared by every replica of a gateway.
///
/// ```no_run
/// # async fn example() -> Result<(), pai_core::StoreError> {
/// use pai_core::Store;
///
/// // Every replica holds the same key: it seals and opens the Secrets they share.
/// let secret_key = [0u8; 32];
/// let store =
///     pai_store::PostgresStore::connect("postgres://pai@db.internal/pai", secret_key).await?;
/// let providers = store.list(pai_core::Kind::ModelProvider).await?;
/// # let _ = providers;
/// # Ok(())
/// # }
/// ```
pub struct PostgresStore {
    pool: PgPool,
    secrets: SecretBox,
    audit: AuditKey,
    revision: Arc<watch::Sender<u64>>,
    backlog: Arc<backlog::Backlog>,
    /// Dropped with the store, which stops its follower tasks.
    _stop: watch::Sender<()>,
}

impl PostgresStore {
    /// Connect to the database at `url` (`postgres://user@host:port/db`), bring its schema up
    /// to date, and start following changes other replicas make. Every replica must use the
    /// same `secret_key`, which seals Secret values.
    pub async fn connect(url: &str, secret_key: [u8; 32]) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with(connect_options(url)?, secret_key).await
    }

    /// [`Self::connect`] with options built by the caller (TLS, a schema on the search path).
    pub async fn connect_with(
        options: PgConnectOptions,
        secret_key: [u8; 32],
    ) -> Result<PostgresStore, StoreError> {
        let secrets = SecretBox::new(&secret_key)?;
        let pool = pool(options, MAX_CONNECTIONS, ACQUIRE_TIMEOUT).await?;
        migrate(&pool).await?;
        let now = follow::read_revision(&pool).await?;
        let revision = Arc::new(watch::Sender::new(now));
        let (stop, stopped) = watch::channel(());
        follow::spawn(pool.clone(), Arc::downgrade(&revision), stopped.clone());
        let backlog = Arc::new(backlog::Backlog::default());
        let audit = AuditKey::derive(&secret_key);
        tokio::spawn(backlog::flush(
            pool.clone(),
            audit.clone(),
            Arc::downgrade(&backlog),
            stopped,
        ));
        tracing::debug!("connected to the PostgreSQL store at revision {now}");
        Ok(PostgresStore {
            pool,
            secrets,
            audit,
            revision,
            backlog,
            _stop: stop,
        })
    }

    /// The connection pool, for a [`crate::PostgresLedger`] on the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Close every connection. Later calls answer [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Call records waiting for the database to come back.
    pub fn records_waiting(&self) -> usize {
        self.backlog.len()
    }

    /// Move the watch forward to `revision` (never back).
    fn advance(&self, revision: u64) {
        follow::advance(&self.revision, revision);
    }

    /// Begin a write: take the revision row (serializing writes) and the revision this write
    /// commits as.
    async fn begin_write(&self) -> Result<(Transaction<'static, Postgres>, u64), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let revision: i64 =
            sqlx::query_scalar("UPDATE revision SET revision = revision + 1 RETURNING revision")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
        let revision = u64::try_from(revision)
            .map_err(|_| StoreError::Corrupt(format!("the revision is {revision}")))?;
        Ok((tx, revision))
    }

    /// Announce `revision` to every replica and commit.
    async fn commit(
        &self,
        mut tx: Transaction<'static, Postgres>,
        revision: u64,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(revision.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        self.advance(revision);
        Ok(())
    }

    /// Replace the hashes `name` answers to, refusing hashes another key holds.
    async fn index_key_hashes(
        tx: &mut Transaction<'static, Postgres>,
        name: &str,
        key: &pai_core::resource::AccessKey,
    ) -> Result<(), StoreError> {
        let hashes = indexed_hashes(key);
        for (hash, _) in &hashes {
            let owner: Option<String> = sqlx::query_scalar(
                "SELECT name FROM access_key_hashes WHERE hash = $1 AND name <> $2",
            )
            .bind(*hash)
            .bind(name)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_error)?;
            if let Some(owner) = owner {
                return Err(conflict(name, &owner));
            }
        }
        sqlx::query("DELETE FROM access_key_hashes WHERE name = $1")
            .bind(name)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        for (hash, expires_at) in hashes {
            sqlx::query(
                "INSERT INTO access_key_hashes (hash, name, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(hash)
            .bind(name)
            .bind(expires_at.map(to_db))
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        }
        Ok(())
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The options may hold a password: never print them.
        f.debug_struct("PostgresStore")
            .field("revision", &*self.revision.borrow())
            .finish_non_exhaustive()
    }
}

/// Options from a `postgres://` URL. The error never repeats the URL, which may hold a
/// password.
pub(crate) fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url).map_err(|_| {
        StoreError::Unavailable(
            "not a PostgreSQL URL (expected postgres://user@host:port/database)".into(),
        )
    })
}

/// A pool on `options` of up to `max_connections`, connected once to prove the server is
/// there; a call waits up to `acquire_timeout` for a connection before it is unavailable.
pub(crate) async fn pool(
    options: PgConnectOptions,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))
}

/// Bring the schema up to date; replicas starting together wait for the first.
pub(crate) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(e) => db_error(e),
        other => StoreError::Unavailable(format!("schema migration failed: {other}")),
    })
}

/// Write `records` in one transaction: one commit for the batch, all or none. A record whose
/// call id is already stored is skipped, so writing a batch again after an ambiguous failure
/// (the connection dropped with the commit's answer) records each call once.
async fn write_calls(
    pool: &PgPool,
    key: &AuditKey,
    records: &[CallRecord],
) -> Result<(), StoreError> {
    let insert = format!(
        "INSERT INTO calls ({CALL_COLUMNS}) VALUES ({CALL_VALUES}) \
         ON CONFLICT (call_id) WHERE call_id <> '' DO NOTHING"
    );
    let mut tx = pool.begin().await.map_err(db_error)?;
    // A batch retried after a commit whose answer was lost inserts nothing twice, and adds no
    // second audit entry for what it skips.
    let mut inserted = Vec::with_capacity(records.len());
    for record in records {
        let done = bind_call(sqlx::query(&insert), record)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if done.rows_affected() == 1 {
            inserted.push(AuditEvent::Call(record.clone()));
        }
    }
    audit::append(&mut tx, key, crate::audit::now_ms(), &inserted).await?;
    tx.commit().await.map_err(db_error)
}

#[async_trait]
impl Store for PostgresStore {
    async fn apply(&self, resource: &Resource) -> Result<Applied, StoreError> {
        let (kind, name) = (resource.kind(), resource.name());
        let (json, sealed) = crate::resource_row::encode(resource, &self.secrets)?;
        let (mut tx, revision) = self.begin_write().await?;
        let existing = sqlx::query(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE kind = $1 AND name = $2"
        ))
        .bind(kind.as_str())
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let applied = match existing.map(|row| rows::stored(&row, kind, name, &self.secrets)) {
            None => Applied::Created,
            Some(Ok(old)) if same_json(&old.resource, resource) => {
                tx.rollback().await.map_err(db_error)?;
                return Ok(Applied::Unchanged);
            }
            Some(Ok(_)) => Applied::Configured,
            // Applying is how an operator repairs a row that cannot be read (or re-keys a
            // secret after losing the old key), so it replaces it.
            Some(Err(e)) => {
                tracing::warn!(%kind, name, error = %e, "replacing a stored resource that cannot be read");
                Applied::Configured
            }
        };
        if let Resource::AccessKey(key) = resource {
            Self::index_key_hashes(&mut tx, name, key).await?;
        }
        let now = to_db(unix_now());
        sqlx::query(
            "INSERT INTO resources (kind, name, json, sealed, created_at, updated_at, generation) \
             VALUES ($1, $2, $3, $4, $5, $5, 1) \
             ON CONFLICT (kind, name) DO UPDATE SET json = excluded.json, \
             sealed = excluded.sealed, updated_at = excluded.updated_at, \
             generation = resources.generation + 1",
        )
        .bind(kind.as_str())
        .bind(name)
        .bind(json)
        .bind(sealed)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        self.commit(tx, revision).await?;
        Ok(applied)
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Option<Stored>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE kind = $1 AND name = $2"
        ))
        .bind(kind.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(|row| rows::stored(&row, kind, name, &self.secrets))
            .transpose()
    }

    async fn list(&self, kind: Kind) -> Result<Vec<Stored>, StoreError> {
        // `COLLATE "C"`: sorted by bytes, as the other stores sort, whatever the database's
        // collation.
        let rows = sqlx::query(&format!(
            "SELECT name, {RESOURCE_COLUMNS} FROM resources WHERE kind = $1 \
             ORDER BY name COLLATE \"C\""
        ))
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let name: String = sqlx::Row::try_get(row, "name").map_err(db_error)?;
                rows::stored(row, kind, &name, &self.secrets)
            })
            .collect()
    }

    async fn delete(&self, kind: Kind, name: &str) -> Result<bool, StoreError> {
        let (mut tx, revision) = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM resources WHERE kind = $1 AND name = $2")
            .bind(kind.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected()
            > 0;
        if !removed {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        if kind == Kind::AccessKey {
            sqlx::query("DELETE FROM access_key_hashes WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        self.commit(tx, revision).await?;
        Ok(true)
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    async fn access_key_by_hash(&self, hash: &str) -> Result<Option<Stored>, StoreError> {
        let now = unix_now();
        let row = sqlx::query(
            "SELECT r.name AS name, r.json AS json, r.sealed AS sealed, \
             r.created_at AS created_at, r.updated_at AS updated_at, r.generation AS generation \
             FROM access_key_hashes h JOIN resources r ON r.kind = $1 AND r.name = h.name \
             WHERE h.hash = $2 AND (h.expires_at IS NULL OR h.expires_at > $3)",
        )
        .bind(Kind::AccessKey.as_str())
        .bind(hash)
        .bind(to_db(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let name: String = sqlx::Row::try_get(&row, "name").map_err(db_error)?;
        let stored = rows::stored(&row, Kind::AccessKey, &name, &self.secrets)?;
        // The index is derived from the resource; trust the resource if they ever disagree.
        match &stored.resource {
            Resource::AccessKey(key) if accepts(key, hash, now) => Ok(Some(stored)),
            _ => {
                tracing::warn!(name, "access key hash index disagrees with the AccessKey");
                Ok(None)
            }
        }
    }

    async fn record_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        self.record_calls(std::slice::from_ref(record))
            .await
            .map_err(|e| e.error)
    }

    async fn record_calls(&self, records: &[CallRecord]) -> Result<(), PartlyRecorded> {
        // Behind records already waiting, so the table keeps the order they came in.
        if self.backlog.len() > 0 {
            return self.backlog.push(records, "PostgreSQL is unreachable");
        }
        match write_calls(&self.pool, &self.audit, records).await {
            Ok(()) => Ok(()),
            Err(StoreError::Unavailable(why)) => self.backlog.push(records, &why),
            Err(error) => Err(PartlyRecorded { written: 0, error }),
        }
    }

    async fn usage_since(&self, since_ms: u64) -> Result<Vec<UsageTotals>, StoreError> {
        // Streamed and summed here: costs are u128, summed exactly in Rust. Memory stays one
        // entry per provider and access key.
        let select = format!("SELECT {CALL_COLUMNS} FROM calls WHERE started_at_ms >= $1");
        let mut calls = sqlx::query(&select).bind(to_db(since_ms)).fetch(&self.pool);
        let mut totals = UsageTally::default();
        while let Some(row) = calls.try_next().await.map_err(db_error)? {
            totals.add(&rows::call(&row)?);
        }
        Ok(totals.finish())
    }

    async fn usage_by_workload(&self, since_ms: u64) -> Result<Vec<WorkloadTotals>, StoreError> {
        let select = format!("SELECT {CALL_COLUMNS} FROM calls WHERE started_at_ms >= $1");
        let mut calls = sqlx::query(&select).bind(to_db(since_ms)).fetch(&self.pool);
        let mut totals = WorkloadTally::default();
        while let Some(row) = calls.try_next().await.map_err(db_error)? {
            totals.add(&rows::call(&row)?);
        }
        Ok(totals.finish())
    }

    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        audit::append(&mut tx, &self.audit, crate::audit::now_ms(), events).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn audit_page(
        &self,
        after_pos: u64,
        limit: usize,
    ) -> Result<Vec<Positioned>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        audit::page(&mut conn, after_pos, limit).await
    }

    async fn audit_ends(&self) -> Result<AuditEnds, StoreError> {
        // REPEATABLE READ: the head and the last position come from one snapshot.
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        audit::ends(&mut tx).await
    }

    async fn prune_audit(&self, before_ms: u64) -> Result<Option<(u64, AuditSeal)>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(audit::APPEND_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let pruned = audit::prune(&mut tx, &self.audit, crate::audit::now_ms(), before_ms).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(pruned)
    }

    async fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM calls ORDER BY started_at_ms DESC, seq DESC LIMIT $1"
        ))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(rows::call).collect()
    }
}
