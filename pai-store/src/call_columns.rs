//! What the SQL stores share about a `calls` row: the integer conversion, the usage columns
//! (all five or none), and the `guards` column (a JSON array of [`GuardVerdict`]s; NULL when
//! no guard ran, and for calls recorded before guards).

use pai_core::{GuardVerdict, StoreError, Usage};

/// The usage columns, in the order [`usage`] takes their values.
pub(crate) const USAGE_COLUMNS: [&str; 5] = [
    "usage_input",
    "usage_cached_input",
    "usage_cache_write",
    "usage_output",
    "usage_reasoning",
];

/// A column's integer as the type it holds; out of range is corruption.
pub(crate) fn from_db<T: TryFrom<i64>>(n: i64, column: &str) -> Result<T, StoreError> {
    T::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} holds {n}, out of range")))
}

/// The usage the [`USAGE_COLUMNS`] hold: all NULL is unknown, some NULL is corruption.
pub(crate) fn usage(values: [Option<i64>; 5]) -> Result<Option<Usage>, StoreError> {
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut read = [0u64; 5];
    for ((out, value), name) in read.iter_mut().zip(values).zip(USAGE_COLUMNS) {
        let n = value
            .ok_or_else(|| StoreError::Corrupt("a call's usage columns are partly empty".into()))?;
        *out = from_db(n, name)?;
    }
    let [input, cached_input, cache_write, output, reasoning] = read;
    Ok(Some(Usage {
        input,
        cached_input,
        cache_write,
        output,
        reasoning,
    }))
}

/// The `guards` column's value for `guards`.
pub(crate) fn encode_guards(guards: &[GuardVerdict]) -> Option<String> {
    if guards.is_empty() {
        return None;
    }
    serde_json::to_string(guards).ok()
}

/// The verdicts a `guards` column holds.
pub(crate) fn decode_guards(value: Option<String>) -> Result<Vec<GuardVerdict>, StoreError> {
    match value {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("calls.guards does not hold verdicts: {e}"))),
    }
}
