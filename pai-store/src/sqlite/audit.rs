//! The audit chain in SQLite: the `audit` and `audit_ends` tables (migration 0005).
//!
//! Every append runs inside a write transaction (`BEGIN IMMEDIATE`) that reads the head, adds
//! the entries after it and moves the head, so entries and head change together or not at all.

use pai_core::audit::{
    AuditEnds, AuditEvents, AuditHead, AuditKey, AuditSeal, ChainPosition, Positioned,
};
use pai_core::StoreError;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::rows::{db_error, statement_runs, to_db};
use crate::call_columns::from_db;

/// The head the next append starts from: the stored head, else an empty chain.
async fn position(conn: &mut SqliteConnection) -> Result<ChainPosition, StoreError> {
    let row = sqlx::query("SELECT head_seq, head_hash FROM audit_ends WHERE id = 1")
        .fetch_optional(conn)
        .await
        .map_err(db_error)?;
    match row {
        None => Ok(ChainPosition::genesis()),
        Some(row) => Ok(ChainPosition {
            seq: from_db(row.try_get("head_seq").map_err(db_error)?, "head_seq")?,
            hash: row.try_get("head_hash").map_err(db_error)?,
        }),
    }
}

/// Append `events` after the head, in the caller's transaction.
pub(super) async fn append(
    conn: &mut SqliteConnection,
    key: &AuditKey,
    at_ms: u64,
    events: AuditEvents<'_>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut at = position(&mut *conn).await?;
    let entries = key.append(&mut at, at_ms, events);
    for run in statement_runs(&entries) {
        let mut insert: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("INSERT INTO audit (seq, at_ms, prev, body, mac) ");
        insert.push_values(run, |mut row, e| {
            row.push_bind(to_db(e.seq))
                .push_bind(to_db(e.at_ms))
                .push_bind(&e.prev)
                .push_bind(&e.body)
                .push_bind(&e.mac);
        });
        insert.build().execute(&mut *conn).await.map_err(db_error)?;
    }
    let head = key.head(&at);
    sqlx::query(
        "INSERT INTO audit_ends (id, head_seq, head_hash, head_mac) VALUES (1, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET head_seq = excluded.head_seq, \
         head_hash = excluded.head_hash, head_mac = excluded.head_mac",
    )
    .bind(to_db(head.seq))
    .bind(&head.hash)
    .bind(&head.mac)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

fn positioned(row: &SqliteRow) -> Result<Positioned, StoreError> {
    crate::audit::positioned(row, db_error)
}

/// Up to `limit` entries after position `after`.
pub(super) async fn page(
    conn: &mut SqliteConnection,
    after: u64,
    limit: usize,
) -> Result<Vec<Positioned>, StoreError> {
    sqlx::query(
        "SELECT pos, seq, at_ms, prev, body, mac FROM audit WHERE pos > ? ORDER BY pos LIMIT ?",
    )
    .bind(to_db(after))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(conn)
    .await
    .map_err(db_error)?
    .iter()
    .map(positioned)
    .collect()
}

/// The head, the seal and the last position.
pub(super) async fn ends(conn: &mut SqliteConnection) -> Result<AuditEnds, StoreError> {
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(pos) FROM audit")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
    let row = sqlx::query(
        "SELECT head_seq, head_hash, head_mac, seal_through, seal_hash, seal_mac \
         FROM audit_ends WHERE id = 1",
    )
    .fetch_optional(conn)
    .await
    .map_err(db_error)?;
    let mut ends = AuditEnds {
        last_pos: from_db(last.unwrap_or(0), "pos")?,
        ..AuditEnds::default()
    };
    if let Some(row) = row {
        ends.head = Some(AuditHead {
            seq: from_db(row.try_get("head_seq").map_err(db_error)?, "head_seq")?,
            hash: row.try_get("head_hash").map_err(db_error)?,
            mac: row.try_get("head_mac").map_err(db_error)?,
        });
        let through: Option<i64> = row.try_get("seal_through").map_err(db_error)?;
        if let Some(through) = through {
            ends.seal = Some(AuditSeal {
                through: from_db(through, "seal_through")?,
                hash: row
                    .try_get::<Option<String>, _>("seal_hash")
                    .map_err(db_error)?
                    .unwrap_or_default(),
                mac: row
                    .try_get::<Option<String>, _>("seal_mac")
                    .map_err(db_error)?
                    .unwrap_or_default(),
            });
        }
    }
    Ok(ends)
}

/// Remove the entries before the last checkpoint appended before `before_ms`, seal them, and
/// record the pruning in the chain, all in the caller's transaction.
pub(super) async fn prune(
    conn: &mut SqliteConnection,
    key: &AuditKey,
    now_ms: u64,
    before_ms: u64,
) -> Result<Option<(u64, AuditSeal)>, StoreError> {
    let cut = sqlx::query(
        "SELECT pos, seq, prev FROM audit WHERE at_ms < ? AND body LIKE '{\"checkpoint\":%' \
         ORDER BY pos DESC LIMIT 1",
    )
    .bind(to_db(before_ms))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    let Some(cut) = cut else { return Ok(None) };
    let pos: i64 = cut.try_get("pos").map_err(db_error)?;
    let seq: u64 = from_db(cut.try_get("seq").map_err(db_error)?, "seq")?;
    let prev: String = cut.try_get("prev").map_err(db_error)?;
    let removed = sqlx::query("DELETE FROM audit WHERE pos < ?")
        .bind(pos)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?
        .rows_affected();
    if removed == 0 {
        return Ok(None);
    }
    let seal = key.seal(seq.saturating_sub(1), &prev);
    sqlx::query("UPDATE audit_ends SET seal_through = ?, seal_hash = ?, seal_mac = ? WHERE id = 1")
        .bind(to_db(seal.through))
        .bind(&seal.hash)
        .bind(&seal.mac)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    let pruned = [crate::audit::pruned(removed, &seal)];
    append(conn, key, now_ms, AuditEvents::Events(&pruned)).await?;
    Ok(Some((removed, seal)))
}
