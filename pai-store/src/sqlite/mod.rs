//! The embedded default store: one SQLite file.
//!
//! Durability: the file is opened in WAL mode with `synchronous=FULL`, so each commit fsyncs the
//! write-ahead log before the write returns; a crash of the process (or of the machine) after
//! `Ok` loses nothing. Writes that read before they write (`apply`, `delete`) run in
//! `BEGIN IMMEDIATE` transactions, which take the write lock up front instead of failing when
//! another writer commits between the read and the write.
//!
//! Secrets: a Secret's `data` is sealed ([`SecretBox`]) and only its metadata is stored as
//! JSON, so the values never reach the file, its WAL or its free pages in plain text.
//!
//! `watch` counts the changes made through this `SqliteStore`; it starts at 0 on every open and
//! does not see writes another process makes to the same file.

mod audit;
mod rows;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use pai_core::audit::{AuditEnds, AuditEvents, AuditKey, AuditSeal, Positioned};
use pai_core::{
    Applied, AuditEvent, CallRecord, Kind, PartlyRecorded, Resource, Store, StoreError, Stored,
    UsageTotals, WorkloadTotals,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::watch;

use crate::access_keys::{accepts, conflict, indexed_hashes};
use crate::apply::same_json;
use crate::totals::{UsageTally, WorkloadTally};
use crate::{unix_now, Revision, SecretBox};

pub(crate) use rows::statement_runs;
use rows::{db_error, insert_calls, to_db, CALL_COLUMNS, RESOURCE_COLUMNS};

static MIGRATOR: Migrator = sqlx::migrate!();

/// How long a statement waits for another connection's write lock before the store is
/// reported unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections in the pool: WAL lets readers run beside the one writer.
const MAX_CONNECTIONS: u32 = 4;

/// A [`Store`] in one SQLite file: the embedded default.
///
/// ```no_run
/// # async fn example() -> Result<(), pai_core::StoreError> {
/// use pai_core::Store;
///
/// // Keep the key outside the file: whoever holds both can read every secret.
/// let secret_key = [0u8; 32];
/// let store = pai_store::SqliteStore::open("/var/lib/pai/pai.db".as_ref(), secret_key).await?;
/// let providers = store.list(pai_core::Kind::ModelProvider).await?;
/// # let _ = providers;
/// store.close().await;
/// # Ok(())
/// # }
/// ```
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
    secrets: SecretBox,
    audit: AuditKey,
    revision: Revision,
}

impl SqliteStore {
    /// Open the store at `path`, creating the file (mode `0600`) and its parent directory (mode
    /// `0700`) if missing, and bringing its schema up to date.
    ///
    /// `secret_key` seals Secret values; opening an existing file with a different key succeeds,
    /// but reading its secrets then answers [`StoreError::Corrupt`]. A path that cannot be opened
    /// answers [`StoreError::Unavailable`], a file that is not a pai database
    /// [`StoreError::Corrupt`].
    pub async fn open(path: &Path, secret_key: [u8; 32]) -> Result<SqliteStore, StoreError> {
        let secrets = SecretBox::new(&secret_key)?;
        prepare_file(path).await?;
        let at = |e: StoreError| match e {
            StoreError::Corrupt(m) => StoreError::Corrupt(format!("{}: {m}", path.display())),
            StoreError::Unavailable(m) => {
                StoreError::Unavailable(format!("{}: {m}", path.display()))
            }
            other => other,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| at(db_error(e)))?;
        MIGRATOR.run(&pool).await.map_err(|e| {
            at(match e {
                sqlx::migrate::MigrateError::Execute(e) => db_error(e),
                other => StoreError::Unavailable(format!("schema migration failed: {other}")),
            })
        })?;
        tracing::debug!(path = %path.display(), "opened SQLite store");
        Ok(SqliteStore {
            pool,
            path: path.to_owned(),
            secrets,
            audit: AuditKey::derive(&secret_key),
            revision: Revision::new(),
        })
    }

    /// The connection pool, shared with a `SqliteLedger` on the same file.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Close every connection, checkpointing the write-ahead log into the file. Later calls
    /// answer [`StoreError::Unavailable`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)
    }

    /// Replace the hashes `name` answers to, refusing hashes another key holds.
    async fn index_key_hashes(
        tx: &mut Transaction<'static, Sqlite>,
        name: &str,
        key: &pai_core::resource::AccessKey,
    ) -> Result<(), StoreError> {
        let hashes = indexed_hashes(key);
        for (hash, _) in &hashes {
            let owner: Option<String> = sqlx::query_scalar(
                "SELECT name FROM access_key_hashes WHERE hash = ? AND name <> ?",
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
        sqlx::query("DELETE FROM access_key_hashes WHERE name = ?")
            .bind(name)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        for (hash, expires_at) in hashes {
            sqlx::query("INSERT INTO access_key_hashes (hash, name, expires_at) VALUES (?, ?, ?)")
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

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Create the parent directory and the file with owner-only permissions before SQLite does, so
/// the file never exists readable by others; tighten an existing file the same way.
async fn prepare_file(path: &Path) -> Result<(), StoreError> {
    let unavailable = |what: &str, e: std::io::Error| {
        StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut dir = tokio::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        dir.mode(0o700);
        dir.create(parent)
            .await
            .map_err(|e| unavailable("cannot create the directory of", e))?;
    }
    let mut file = tokio::fs::OpenOptions::new();
    file.read(true).write(true).create(true);
    #[cfg(unix)]
    file.mode(0o600);
    file.open(path)
        .await
        .map_err(|e| unavailable("cannot open", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .await
            .map_err(|e| unavailable("cannot restrict the permissions of", e))?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn apply(&self, resource: &Resource) -> Result<Applied, StoreError> {
        let (kind, name) = (resource.kind(), resource.name());
        let (json, sealed) = crate::resource_row::encode(resource, &self.secrets)?;
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE kind = ? AND name = ?"
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, 1) \
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
        tx.commit().await.map_err(db_error)?;
        self.revision.bump();
        Ok(applied)
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Option<Stored>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE kind = ? AND name = ?"
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
        let rows = sqlx::query(&format!(
            "SELECT name, {RESOURCE_COLUMNS} FROM resources WHERE kind = ? ORDER BY name"
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
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM resources WHERE kind = ? AND name = ?")
            .bind(kind.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected()
            > 0;
        if kind == Kind::AccessKey {
            sqlx::query("DELETE FROM access_key_hashes WHERE name = ?")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        if removed {
            self.revision.bump();
        }
        Ok(removed)
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    async fn access_key_by_hash(&self, hash: &str) -> Result<Option<Stored>, StoreError> {
        let now = unix_now();
        let row = sqlx::query(
            "SELECT r.name AS name, r.json AS json, r.sealed AS sealed, \
             r.created_at AS created_at, r.updated_at AS updated_at, r.generation AS generation \
             FROM access_key_hashes h JOIN resources r ON r.kind = ? AND r.name = h.name \
             WHERE h.hash = ? AND (h.expires_at IS NULL OR h.expires_at > ?)",
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
        // One transaction: one commit and one fsync for the whole batch, not one per call, with
        // the calls' audit entries. It is all or none, so a failure has written nothing.
        let none = |error: StoreError| PartlyRecorded { written: 0, error };
        let mut tx = self.begin_write().await.map_err(none)?;
        for chunk in statement_runs(records) {
            insert_calls(chunk)
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| none(db_error(e)))?;
        }
        // The audit entries serialise the records where they are: no copy of each.
        let events = AuditEvents::Calls(records);
        audit::append(&mut tx, &self.audit, crate::audit::now_ms(), events)
            .await
            .map_err(none)?;
        tx.commit().await.map_err(|e| none(db_error(e)))?;
        Ok(())
    }

    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        audit::append(&mut tx, &self.audit, crate::audit::now_ms(), events.into()).await?;
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
        // One read transaction, so the head and the last position agree.
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        audit::ends(&mut tx).await
    }

    async fn prune_audit(&self, before_ms: u64) -> Result<Option<(u64, AuditSeal)>, StoreError> {
        let mut tx = self.begin_write().await?;
        let pruned = audit::prune(&mut tx, &self.audit, crate::audit::now_ms(), before_ms).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(pruned)
    }

    async fn usage_since(&self, since_ms: u64) -> Result<Vec<UsageTotals>, StoreError> {
        // Streamed and summed here, not in SQL: costs are u128 decimal strings, which SQLite
        // cannot add exactly. Memory stays one entry per provider and access key.
        let select = format!("SELECT {CALL_COLUMNS} FROM calls WHERE started_at_ms >= ?");
        let mut calls = sqlx::query(&select).bind(to_db(since_ms)).fetch(&self.pool);
        let mut totals = UsageTally::default();
        while let Some(row) = calls.try_next().await.map_err(db_error)? {
            totals.add(&rows::call(&row)?);
        }
        Ok(totals.finish())
    }

    async fn usage_by_workload(&self, since_ms: u64) -> Result<Vec<WorkloadTotals>, StoreError> {
        // Counts, tokens and the latest call are grouped in SQL. Costs are u128 decimal
        // strings, which SQLite cannot add exactly, so the priced calls' costs are streamed and
        // summed here. Both reads run in one read transaction, so they see the same calls.
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let mut groups = WorkloadTally::default();
        {
            let mut rows = sqlx::query(
                "SELECT workload, provider, model, binding, COUNT(*) AS requests, \
                 COALESCE(SUM(usage_input), 0) AS usage_input, \
                 COALESCE(SUM(usage_cached_input), 0) AS usage_cached_input, \
                 COALESCE(SUM(usage_cache_write), 0) AS usage_cache_write, \
                 COALESCE(SUM(usage_output), 0) AS usage_output, \
                 COALESCE(SUM(usage_reasoning), 0) AS usage_reasoning, \
                 COALESCE(SUM(cost_pico_usd IS NULL AND usage_input + usage_cached_input \
                     + usage_cache_write + usage_output > 0), 0) AS unpriced_requests, \
                 MAX(started_at_ms) AS last_used_ms \
                 FROM calls WHERE started_at_ms >= ? \
                 GROUP BY workload, provider, model, binding",
            )
            .bind(to_db(since_ms))
            .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await.map_err(db_error)? {
                groups.group(rows::workload_group(&row)?);
            }
        }
        {
            let mut costs = sqlx::query(
                "SELECT workload, provider, model, binding, cost_pico_usd FROM calls \
                 WHERE started_at_ms >= ? AND cost_pico_usd IS NOT NULL",
            )
            .bind(to_db(since_ms))
            .fetch(&mut *tx);
            while let Some(row) = costs.try_next().await.map_err(db_error)? {
                let key = (
                    row.try_get("workload").map_err(db_error)?,
                    row.try_get("provider").map_err(db_error)?,
                    row.try_get("model").map_err(db_error)?,
                    row.try_get("binding").map_err(db_error)?,
                );
                let cost: String = row.try_get("cost_pico_usd").map_err(db_error)?;
                let cost = rows::parse_cost(&cost)?;
                let Some(totals) = groups.get_mut(&key) else {
                    return Err(StoreError::Corrupt(
                        "a priced call outside every group of its period".into(),
                    ));
                };
                totals.cost_pico_usd = totals.cost_pico_usd.saturating_add(cost);
            }
        }
        tx.rollback().await.map_err(db_error)?;
        Ok(groups.finish())
    }

    async fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CALL_COLUMNS} FROM calls ORDER BY started_at_ms DESC, rowid DESC LIMIT ?"
        ))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(rows::call).collect()
    }
}
