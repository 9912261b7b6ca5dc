//! Between SQLite rows and the store's types: resources (sealing and opening secrets on the
//! way), call records, and the integer and error conversions both need.

use std::collections::BTreeMap;

use pai_core::resource::Secret;
use pai_core::{
    CallRecord, GuardVerdict, Kind, Resource, StoreError, Stored, Usage, WorkloadTotals,
};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::SecretBox;

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

fn from_db<T: TryFrom<i64>>(n: i64, column: &str) -> Result<T, StoreError> {
    T::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} holds {n}, out of range")))
}

fn column<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name).map_err(db_error)
}

/// The associated data that binds a sealed value to one secret.
fn seal_context(name: &str) -> Vec<u8> {
    format!("{}/{name}", Kind::Secret).into_bytes()
}

/// The `json` and `sealed` columns for a resource: a Secret's values are sealed and left out
/// of its JSON.
pub(crate) fn encode(
    resource: &Resource,
    secrets: &SecretBox,
) -> Result<(String, Option<Vec<u8>>), StoreError> {
    let unencodable =
        |_| StoreError::Conflict(format!("{} cannot be stored as JSON", resource.describe()));
    match resource {
        Resource::Secret(secret) => {
            let data = serde_json::to_vec(&secret.data).map_err(unencodable)?;
            let sealed = secrets.seal(&seal_context(&secret.metadata.name), &data)?;
            let shell = Resource::Secret(Secret {
                data: BTreeMap::new(),
                ..secret.clone()
            });
            Ok((
                serde_json::to_string(&shell).map_err(unencodable)?,
                Some(sealed),
            ))
        }
        other => Ok((serde_json::to_string(other).map_err(unencodable)?, None)),
    }
}

/// A `resources` row read back, checked to be the `kind` and `name` asked for, secrets opened.
pub(crate) fn stored(
    row: &SqliteRow,
    kind: Kind,
    name: &str,
    secrets: &SecretBox,
) -> Result<Stored, StoreError> {
    let json: String = column(row, "json")?;
    let mut resource: Resource = serde_json::from_str(&json)
        .map_err(|e| StoreError::Corrupt(format!("{kind} {name:?} does not parse: {e}")))?;
    if resource.kind() != kind || resource.name() != name {
        return Err(StoreError::Corrupt(format!(
            "the row for {kind} {name:?} holds {}",
            resource.describe()
        )));
    }
    if let Resource::Secret(secret) = &mut resource {
        let sealed: Option<Vec<u8>> = column(row, "sealed")?;
        // Neither message says anything about the plaintext: a serde error would quote it.
        let unreadable = || {
            StoreError::Corrupt(format!(
                "Secret {name:?} cannot be decrypted: the store was opened with another secret \
                 key, or the row was altered"
            ))
        };
        let plaintext = sealed
            .and_then(|sealed| secrets.open(&seal_context(name), &sealed))
            .ok_or_else(unreadable)?;
        secret.data = serde_json::from_slice(&plaintext).map_err(|_| unreadable())?;
    }
    Ok(Stored {
        resource,
        created_at: from_db(column(row, "created_at")?, "created_at")?,
        updated_at: from_db(column(row, "updated_at")?, "updated_at")?,
        generation: from_db(column(row, "generation")?, "generation")?,
    })
}

/// Bind a call's columns, in `CALL_COLUMNS` order, to an insert.
pub(crate) fn bind_call<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    call: &'q CallRecord,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    let usage = call.usage.as_ref();
    query
        .bind(&call.call_id)
        .bind(to_db(call.started_at_ms))
        .bind(&call.workload)
        .bind(&call.provider)
        .bind(call.access_key.as_deref())
        .bind(&call.model)
        .bind(&call.operation)
        .bind(call.stream)
        .bind(i64::from(call.status))
        .bind(usage.map(|u| to_db(u.input)))
        .bind(usage.map(|u| to_db(u.cached_input)))
        .bind(usage.map(|u| to_db(u.cache_write)))
        .bind(usage.map(|u| to_db(u.output)))
        .bind(usage.map(|u| to_db(u.reasoning)))
        .bind(call.cost_pico_usd.map(|c| c.to_string()))
        .bind(to_db(call.duration_ms))
        .bind(call.client_ip.as_deref())
        .bind(call.error.as_deref())
        .bind(call.binding.as_deref())
        .bind(guards_json(&call.guards))
}

/// The `guards` column: the verdicts as a JSON array, NULL when no guard ran.
fn guards_json(guards: &[GuardVerdict]) -> Option<String> {
    if guards.is_empty() {
        return None;
    }
    serde_json::to_string(guards).ok()
}

/// The verdicts a `guards` column holds.
fn guards_of(row: &SqliteRow) -> Result<Vec<GuardVerdict>, StoreError> {
    match column::<Option<String>>(row, "guards")? {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("calls.guards does not hold verdicts: {e}"))),
    }
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
        guards: guards_of(row)?,
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
    let names = [
        "usage_input",
        "usage_cached_input",
        "usage_cache_write",
        "usage_output",
        "usage_reasoning",
    ];
    let mut values = [0u64; 5];
    let mut present = 0;
    for (value, name) in values.iter_mut().zip(names) {
        if let Some(n) = column::<Option<i64>>(row, name)? {
            *value = from_db(n, name)?;
            present += 1;
        }
    }
    match present {
        0 => Ok(None),
        5 => {
            let [input, cached_input, cache_write, output, reasoning] = values;
            Ok(Some(Usage {
                input,
                cached_input,
                cache_write,
                output,
                reasoning,
            }))
        }
        _ => Err(StoreError::Corrupt(
            "a call's usage columns are partly empty".into(),
        )),
    }
}
