//! Between PostgreSQL rows and the store's types: resources (sealing and opening secrets on the
//! way), call records, and the integer and error conversions both need.

use pai_core::{CallRecord, Kind, StoreError, Stored, Usage};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};

use crate::call_columns::{self, from_db, USAGE_COLUMNS};
use crate::{resource_row, SecretBox};

/// The columns `stored` reads.
pub(crate) const RESOURCE_COLUMNS: &str = "json, sealed, created_at, updated_at, generation";

/// The columns `call` reads and `bind_call` binds, in that order.
pub(crate) const CALL_COLUMNS: &str = "call_id, started_at_ms, workload, provider, access_key, \
     model, operation, stream, status, usage_input, usage_cached_input, usage_cache_write, \
     usage_output, usage_reasoning, cost_pico_usd, duration_ms, client_ip, error, binding, guards";

/// The placeholders of one call's row, `$1` … `$20`.
pub(crate) const CALL_VALUES: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20";

/// What a failed statement means to the gateway: rows it cannot decode are `Corrupt`;
/// everything else (a lost connection, a server that is down or restarting, a pool that timed
/// out) is `Unavailable`. The message is sqlx's, which never holds bound values.
pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => StoreError::Corrupt(e.to_string()),
        e => StoreError::Unavailable(e.to_string()),
    }
}

/// PostgreSQL integers are signed; counts and timestamps beyond `i64::MAX` do not occur, and
/// saturating keeps comparisons in SQL right if one ever did.
pub(crate) fn to_db(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn column<'r, T>(row: &'r PgRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(name).map_err(db_error)
}

/// A `resources` row read back, checked to be the `kind` and `name` asked for, secrets opened.
pub(crate) fn stored(
    row: &PgRow,
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

/// Bind a call's columns, in `CALL_COLUMNS` order, to an insert.
pub(crate) fn bind_call<'q>(
    query: Query<'q, Postgres, PgArguments>,
    call: &'q CallRecord,
) -> Query<'q, Postgres, PgArguments> {
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
        .bind(i32::from(call.status))
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
        .bind(call_columns::encode_guards(&call.guards))
}

/// A `calls` row read back.
pub(crate) fn call(row: &PgRow) -> Result<CallRecord, StoreError> {
    let status: i32 = column(row, "status")?;
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
        status: from_db(i64::from(status), "status")?,
        usage: usage(row)?,
        cost_pico_usd: column::<Option<String>>(row, "cost_pico_usd")?
            .map(|c| {
                c.parse::<u128>()
                    .map_err(|_| StoreError::Corrupt(format!("cost_pico_usd holds {c:?}")))
            })
            .transpose()?,
        duration_ms: from_db(column(row, "duration_ms")?, "duration_ms")?,
        client_ip: column(row, "client_ip")?,
        error: column(row, "error")?,
        guards: call_columns::decode_guards(column(row, "guards")?)?,
    })
}

fn usage(row: &PgRow) -> Result<Option<Usage>, StoreError> {
    let mut values = [None; 5];
    for (value, name) in values.iter_mut().zip(USAGE_COLUMNS) {
        *value = column::<Option<i64>>(row, name)?;
    }
    call_columns::usage(values)
}
