//! The `calls.guards` column of the SQL stores: what each guard said about a call, as a JSON
//! array of [`GuardVerdict`]s; NULL when no guard ran (and for calls recorded before guards).

use pai_core::{GuardVerdict, StoreError};

/// The column's value for `guards`.
pub(crate) fn encode(guards: &[GuardVerdict]) -> Option<String> {
    if guards.is_empty() {
        return None;
    }
    serde_json::to_string(guards).ok()
}

/// The verdicts a column value holds.
pub(crate) fn decode(value: Option<String>) -> Result<Vec<GuardVerdict>, StoreError> {
    match value {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("calls.guards does not hold verdicts: {e}"))),
    }
}
