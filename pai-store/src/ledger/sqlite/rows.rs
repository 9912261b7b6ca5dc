//! Between the ledger tables and the ledger's types: scope lists as JSON, u128 as decimal text,
//! scope kinds back to `&'static str`.

use std::sync::{Mutex, PoisonError};

use pai_core::{LedgerError, ScopeKey, ScopeLimit};
use serde::{Deserialize, Serialize};

/// One entry of `ledger_reservations.scopes`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredScope {
    kind: String,
    name: String,
    /// Decimal: JSON numbers do not hold a u128 exactly everywhere.
    amount: String,
}

/// A reservation's scopes as stored: what expiring it would charge, and where.
pub(super) fn encode_scopes(scopes: &[ScopeLimit]) -> Result<String, String> {
    let stored: Vec<StoredScope> = scopes
        .iter()
        .map(|s| StoredScope {
            kind: s.key.kind.to_owned(),
            name: s.key.name.clone(),
            amount: s.amount.to_string(),
        })
        .collect();
    serde_json::to_string(&stored).map_err(|e| e.to_string())
}

/// The scopes and amounts of a stored reservation.
pub(super) fn decode_scopes(json: &str) -> Result<Vec<(ScopeKey, u128)>, LedgerError> {
    let stored: Vec<StoredScope> = serde_json::from_str(json).map_err(|e| {
        corrupt(format!(
            "ledger_reservations.scopes is not a scope list: {e}"
        ))
    })?;
    stored
        .into_iter()
        .map(|s| {
            let amount = parse_amount(&s.amount, "ledger_reservations.scopes")?;
            Ok((key(&s.kind, s.name), amount))
        })
        .collect()
}

/// A decimal u128 column.
pub(super) fn parse_amount(text: &str, column: &str) -> Result<u128, LedgerError> {
    text.parse()
        .map_err(|_| corrupt(format!("{column} holds {text:?}, not an amount")))
}

/// A scope key read back from a row.
pub(super) fn key(kind: &str, name: String) -> ScopeKey {
    ScopeKey {
        kind: intern(kind),
        name,
    }
}

/// `ScopeKey::kind` is `&'static str`: the kinds pai uses map to their constants; any other
/// kind an embedder used is leaked once per distinct string, for the life of the process.
fn intern(kind: &str) -> &'static str {
    const KNOWN: [&str; 5] = [
        "provider",
        "provider-external",
        "access-key",
        "model-binding",
        "agent-cost",
    ];
    static OTHERS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    if let Some(known) = KNOWN.iter().find(|k| **k == kind) {
        return known;
    }
    let mut others = OTHERS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(other) = others.iter().find(|k| **k == kind) {
        return other;
    }
    let leaked: &'static str = Box::leak(kind.to_owned().into_boxed_str());
    others.push(leaked);
    leaked
}

pub(super) fn corrupt(message: String) -> LedgerError {
    LedgerError::Unavailable(format!("budget ledger tables are damaged: {message}"))
}

pub(super) fn db_error(e: sqlx::Error) -> LedgerError {
    LedgerError::Unavailable(format!("budget ledger: {e}"))
}

/// SQLite integers are signed; days and ids beyond `i64::MAX` do not occur.
pub(super) fn to_db(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
