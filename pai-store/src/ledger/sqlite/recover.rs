//! Opening the ledger: charge what a previous process left open, load today's spend.

use std::collections::HashMap;

use pai_core::{LedgerError, ScopeKey};
use sqlx::{Row, SqlitePool};

use super::rows::{db_error, decode_scopes, key, parse_amount, to_db};

/// In one transaction: add every open reservation's full amount to the spend of its scopes on
/// its day and delete it; then read today's spend per scope.
pub(super) async fn recover(
    pool: &SqlitePool,
    today: u64,
) -> Result<Vec<(ScopeKey, u128)>, LedgerError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
    let open = sqlx::query("SELECT id, day, scopes FROM ledger_reservations")
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
    let mut charges: HashMap<(ScopeKey, i64), u128> = HashMap::new();
    for row in &open {
        let day: i64 = row.try_get("day").map_err(db_error)?;
        let scopes: String = row.try_get("scopes").map_err(db_error)?;
        for (key, amount) in decode_scopes(&scopes)? {
            let charge = charges.entry((key, day)).or_default();
            *charge = charge.saturating_add(amount);
        }
    }
    for ((key, day), charge) in &charges {
        let spent: Option<String> = sqlx::query_scalar(
            "SELECT spent FROM ledger_spent WHERE scope_kind = ? AND scope_name = ? AND day = ?",
        )
        .bind(key.kind)
        .bind(&key.name)
        .bind(day)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let spent = match spent {
            Some(text) => parse_amount(&text, "ledger_spent.spent")?,
            None => 0,
        };
        sqlx::query(
            "INSERT INTO ledger_spent (scope_kind, scope_name, day, spent) VALUES (?, ?, ?, ?) \
             ON CONFLICT (scope_kind, scope_name, day) DO UPDATE SET spent = excluded.spent",
        )
        .bind(key.kind)
        .bind(&key.name)
        .bind(day)
        .bind(spent.saturating_add(*charge).to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    }
    sqlx::query("DELETE FROM ledger_reservations")
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let rows = sqlx::query("SELECT scope_kind, scope_name, spent FROM ledger_spent WHERE day = ?")
        .bind(to_db(today))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
    let mut spent = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get("scope_kind").map_err(db_error)?;
        let name: String = row.try_get("scope_name").map_err(db_error)?;
        let text: String = row.try_get("spent").map_err(db_error)?;
        spent.push((key(&kind, name), parse_amount(&text, "ledger_spent.spent")?));
    }
    tx.commit().await.map_err(db_error)?;
    if !open.is_empty() {
        tracing::warn!(
            reservations = open.len(),
            "charged in full the budget reservations a previous process left open"
        );
    }
    Ok(spent)
}
