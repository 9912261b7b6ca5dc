//! Between SQLite rows and the store's types: resources (sealing and opening secrets on the
//! way), call records, and the integer and error conversions both need.

use pai_core::{CallRecord, Kind, StoreError, Stored, Usage, WorkloadTotals};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::call_columns::{self, from_db, USAGE_COLUMNS};
use crate::{resource_row, SecretBox};

/// The columns `stored` reads, in a statement over `resources` aliased or not.
pub(crate) const RESOURCE_COLUMNS: &str = "json, sealed, created_at, updated_at, generation";

/// The columns `call` reads.
pub(crate) const CALL_COLUMNS: &str = "call_id, started_at_ms, workload, provider, access_key, \
     model, operation, stream, status, usage_input, usage_cached_input, usage_cache_write, \
     usage_output, usage_reasoning, cost_pico_usd, duration_ms, client_ip, error, binding, guards";

/// What a failed statement means to the gateway: damage it cannot read past is `Corrupt`,
/// everything else (I/O, locks held too long, a closed pool) is `Unavailable`.
pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    const SQLITE_CORRUPT: i32 = 11;
    const SQLITE_NOTADB: i32 = 26;
    let corrupt = match &e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, SQLITE_CORRUPT | SQLITE_NOTADB)),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => true,
        _ => false,
    };
    if corrupt {
        StoreError::Corrupt(e.to_string())
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

/// SQLite integers are signed; counts and timestamps beyond `i64::MAX` do not occur, and
/// saturating keeps comparisons in SQL right if one ever did.
pub(crate) fn to_db(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn column<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name).map_err(db_error)
}

/// A `resources` row read back, checked to be the `kind` and `name` asked for, secrets opened.
pub(crate) fn stored(
    row: &SqliteRow,
    kind: Kind,
    name: &str,
    secrets: &SecretBox,
) -> Result<Stored, StoreError> {
    let json: String = column(row, "json")?;
    let sealed: Option<Vec<u8>> = column(row, "sealed")?;
    let resource = resource_row::decode(&json, sealed.as_deref(), kind, name, secrets)?;
    Ok(Stored {
        resource,
        created_at: from_db(column(row, "created_at")?, "created_at")?,
        updated_at: from_db(column(row, "updated_at")?, "updated_at")?,
        generation: from_db(column(row, "generation")?, "generation")?,
    })
}

/// The most rows one multi-row statement takes.
const MAX_ROWS_PER_STATEMENT: usize = 64;

/// `items` in runs for multi-row statements: runs of [`MAX_ROWS_PER_STATEMENT`], then what is
/// left in runs of 32, 16, 8, 4, 2 and 1. A statement is prepared once per distinct length and
/// kept in the connection's cache, so only seven lengths ever occur, whatever the batch sizes.
pub(crate) fn statement_runs<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let len = match items.len() {
            n if n >= MAX_ROWS_PER_STATEMENT => MAX_ROWS_PER_STATEMENT,
            n => 1 << n.ilog2(),
        };
        let (run, rest) = items.split_at(len);
        items = rest;
        Some(run)
    })
}

/// One `INSERT INTO calls` for all of `calls` (a run of [`statement_runs`]): one statement, so
/// one hand-off to the connection's thread for the lot, not one per row.
pub(crate) fn insert_calls(calls: &[CallRecord]) -> QueryBuilder<'_, Sqlite> {
    let mut insert = QueryBuilder::new(format!("INSERT INTO calls ({CALL_COLUMNS}) "));
    insert.push_values(calls, |mut row, call| {
        let usage = call.usage.as_ref();
        row.push_bind(&call.call_id)
            .push_bind(to_db(call.started_at_ms))
            .push_bind(&call.workload)
            .push_bind(&call.provider)
            .push_bind(call.access_key.as_deref())
            .push_bind(&call.model)
            .push_bind(&call.operation)
            .push_bind(call.stream)
            .push_bind(i64::from(call.status))
            .push_bind(usage.map(|u| to_db(u.input)))
            .push_bind(usage.map(|u| to_db(u.cached_input)))
            .push_bind(usage.map(|u| to_db(u.cache_write)))
            .push_bind(usage.map(|u| to_db(u.output)))
            .push_bind(usage.map(|u| to_db(u.reasoning)))
            .push_bind(call.cost_pico_usd.map(|c| c.to_string()))
            .push_bind(to_db(call.duration_ms))
            .push_bind(call.client_ip.as_deref())
            .push_bind(call.error.as_deref())
            .push_bind(call.binding.as_deref())
            .push_bind(call_columns::encode_guards(&call.guards));
    });
    insert
}

/// A `calls` row read back.
pub(crate) fn call(row: &SqliteRow) -> Result<CallRecord, StoreError> {
    Ok(CallRecord {
        call_id: column(row, "call_id")?,
        started_at_ms: from_db(column(row, "started_at_ms")?, "started_at_ms")?,
        workload: column(row, "workload")?,
        provider: column(row, "provider")?,
        access_key: column(row, "access_key")?,
        model: column(row, "model")?,
        binding: column(row, "binding")?,
        operation: column(row, "operation")?,
        stream: column(row, "stream")?,
        status: from_db(column(row, "status")?, "status")?,
        usage: usage(row)?,
        cost_pico_usd: column::<Option<String>>(row, "cost_pico_usd")?
            .map(|c| parse_cost(&c))
            .transpose()?,
        duration_ms: from_db(column(row, "duration_ms")?, "duration_ms")?,
        client_ip: column(row, "client_ip")?,
        error: column(row, "error")?,
        guards: call_columns::decode_guards(column(row, "guards")?)?,
    })
}

/// A `cost_pico_usd` value: a u128 as a decimal string.
pub(crate) fn parse_cost(c: &str) -> Result<u128, StoreError> {
    c.parse::<u128>()
        .map_err(|_| StoreError::Corrupt(format!("cost_pico_usd holds {c:?}")))
}

/// A `usage_by_workload` group row: its key, counts and summed tokens; the cost is summed
/// apart, in Rust.
pub(crate) fn workload_group(row: &SqliteRow) -> Result<WorkloadTotals, StoreError> {
    let count = |name: &str| -> Result<u64, StoreError> { from_db(column(row, name)?, name) };
    Ok(WorkloadTotals {
        workload: column(row, "workload")?,
        provider: column(row, "provider")?,
        model: column(row, "model")?,
        binding: column(row, "binding")?,
        requests: count("requests")?,
        usage: Usage {
            input: count("usage_input")?,
            cached_input: count("usage_cached_input")?,
            cache_write: count("usage_cache_write")?,
            output: count("usage_output")?,
            reasoning: count("usage_reasoning")?,
        },
        cost_pico_usd: 0,
        unpriced_requests: count("unpriced_requests")?,
        last_used_ms: count("last_used_ms")?,
    })
}

fn usage(row: &SqliteRow) -> Result<Option<Usage>, StoreError> {
    let mut values = [None; 5];
    for (value, name) in values.iter_mut().zip(USAGE_COLUMNS) {
        *value = column::<Option<i64>>(row, name)?;
    }
    call_columns::usage(values)
}

#[cfg(test)]
mod runs_tests {
    use super::statement_runs;

    #[test]
    fn runs_cover_every_item_once_in_seven_lengths_at_most() {
        let mut lengths = std::collections::BTreeSet::new();
        for n in 0..300usize {
            let items: Vec<usize> = (0..n).collect();
            let runs: Vec<&[usize]> = statement_runs(&items).collect();
            assert_eq!(runs.concat(), items);
            lengths.extend(runs.iter().map(|r| r.len()));
        }
        assert_eq!(
            lengths.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64]
        );
    }
}
