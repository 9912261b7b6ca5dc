//! The audit chain through the admin API: every change made here becomes an entry, and the
//! chain can be read and verified.
//!
//! ```text
//! GET /admin/v1/audit?after=POS&limit=N&since_ms=&until_ms=   entries in stored order
//! GET /admin/v1/audit/tail?limit=N                            the last N entries
//! GET /admin/v1/audit/verify                                  walk the chain, name the first break
//! ```
//!
//! Changes are caught where they reach the store ([`AuditedWrites`]), so every write path
//! (apply, delete, minting and rotating keys) is recorded with who made it, from where, and
//! keyed digests of the resource before and after, never its values. A change whose entry
//! cannot be written is still made (it is already stored) but answered with 503 saying so.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use pai_core::audit::{
    self, AdminChange, AuditEnds, AuditEvent, AuditKey, AuditSeal, Positioned, Tamper, Verified,
};
use pai_core::{
    Applied, CallRecord, Kind, PartlyRecorded, Resource, Store, StoreError, Stored, UsageTotals,
    WorkloadTotals,
};
use serde::{Deserialize, Serialize};

use super::{AdminState, ApiError};

/// Entries one page holds at most.
pub const MAX_PAGE: usize = 1_000;

tokio::task_local! {
    /// Who is making the changes of the request being served.
    static ACTOR: Actor;
}

/// Who made a change, as its audit entry names them.
#[derive(Clone, Debug)]
pub struct Actor {
    /// `admin-token`, `pai serve -f`, …
    pub name: String,
    /// Where the request came from.
    pub client_ip: Option<String>,
}

/// Runs an admin request with its actor known: the bearer of the admin token, from its peer.
pub(super) async fn as_admin(request: Request, next: Next) -> Response {
    let client_ip = request
        .extensions()
        .get::<pai_tower::PeerAddr>()
        .map(|p| p.0.ip().to_string());
    let actor = Actor {
        name: "admin-token".into(),
        client_ip,
    };
    ACTOR.scope(actor, next.run(request)).await
}

/// Run `f` with the changes it makes recorded as made by `actor`.
pub async fn as_actor<F: std::future::Future>(actor: Actor, f: F) -> F::Output {
    ACTOR.scope(actor, f).await
}

/// A [`Store`] that appends an admin entry to the audit chain after every change.
pub struct AuditedWrites {
    inner: Arc<dyn Store>,
    key: AuditKey,
}

impl AuditedWrites {
    /// Record the changes made through `inner`, digesting resources under `key`.
    pub fn new(inner: Arc<dyn Store>, key: AuditKey) -> AuditedWrites {
        AuditedWrites { inner, key }
    }

    fn digest(&self, resource: &Resource) -> Option<String> {
        serde_json::to_vec(resource)
            .ok()
            .map(|json| self.key.digest(&json))
    }

    async fn record(&self, change: AdminChange) -> Result<(), StoreError> {
        let actor = ACTOR.try_with(Actor::clone).unwrap_or(Actor {
            name: "unknown".into(),
            client_ip: None,
        });
        let change = AdminChange {
            actor: actor.name,
            client_ip: actor.client_ip,
            ..change
        };
        let what = format!(
            "{} {}",
            change.action,
            change.name.as_deref().unwrap_or_default()
        );
        self.inner
            .append_audit(&[AuditEvent::Admin(change)])
            .await
            .map_err(|e| {
                tracing::error!(error = %e, change = %what, "a change was stored but its audit entry was not");
                StoreError::Unavailable(format!(
                    "the change ({what}) was stored, but its audit entry could not be written: {e}"
                ))
            })
    }
}

#[async_trait]
impl Store for AuditedWrites {
    async fn apply(&self, resource: &Resource) -> Result<Applied, StoreError> {
        let before = self.inner.get(resource.kind(), resource.name()).await?;
        let applied = self.inner.apply(resource).await?;
        let outcome = match applied {
            Applied::Unchanged => return Ok(applied),
            Applied::Created => "created",
            Applied::Configured => "configured",
        };
        self.record(AdminChange {
            action: "apply".into(),
            kind: Some(resource.kind().to_string()),
            name: Some(resource.name().to_owned()),
            outcome: Some(outcome.into()),
            before: before.and_then(|s| self.digest(&s.resource)),
            after: self.digest(resource),
            ..AdminChange::default()
        })
        .await?;
        Ok(applied)
    }

    async fn delete(&self, kind: Kind, name: &str) -> Result<bool, StoreError> {
        let before = self.inner.get(kind, name).await?;
        if !self.inner.delete(kind, name).await? {
            return Ok(false);
        }
        self.record(AdminChange {
            action: "delete".into(),
            kind: Some(kind.to_string()),
            name: Some(name.to_owned()),
            outcome: Some("deleted".into()),
            before: before.and_then(|s| self.digest(&s.resource)),
            ..AdminChange::default()
        })
        .await?;
        Ok(true)
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Option<Stored>, StoreError> {
        self.inner.get(kind, name).await
    }

    async fn list(&self, kind: Kind) -> Result<Vec<Stored>, StoreError> {
        self.inner.list(kind).await
    }

    fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.watch()
    }

    async fn access_key_by_hash(&self, hash: &str) -> Result<Option<Stored>, StoreError> {
        self.inner.access_key_by_hash(hash).await
    }

    async fn record_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        self.inner.record_call(record).await
    }

    async fn record_calls(&self, records: &[CallRecord]) -> Result<(), PartlyRecorded> {
        self.inner.record_calls(records).await
    }

    async fn usage_since(&self, since_ms: u64) -> Result<Vec<UsageTotals>, StoreError> {
        self.inner.usage_since(since_ms).await
    }

    async fn usage_by_workload(&self, since_ms: u64) -> Result<Vec<WorkloadTotals>, StoreError> {
        self.inner.usage_by_workload(since_ms).await
    }

    async fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        self.inner.recent_calls(limit).await
    }

    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.inner.append_audit(events).await
    }

    async fn audit_page(
        &self,
        after_pos: u64,
        limit: usize,
    ) -> Result<Vec<Positioned>, StoreError> {
        self.inner.audit_page(after_pos, limit).await
    }

    async fn audit_ends(&self) -> Result<AuditEnds, StoreError> {
        self.inner.audit_ends().await
    }

    async fn prune_audit(&self, before_ms: u64) -> Result<Option<(u64, AuditSeal)>, StoreError> {
        self.inner.prune_audit(before_ms).await
    }
}

/// One entry as the API shows it: where it is stored, the entry, its hash and its event.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryView {
    /// The store's position of the row.
    pub pos: u64,
    /// The entry as stored.
    #[serde(flatten)]
    pub entry: audit::AuditEntry,
    /// Its SHA-256.
    pub hash: String,
}

impl From<Positioned> for EntryView {
    fn from(p: Positioned) -> EntryView {
        EntryView {
            pos: p.pos,
            hash: p.entry.hash(),
            entry: p.entry,
        }
    }
}

/// A page of entries.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryPage {
    /// The entries, in stored order.
    pub entries: Vec<EntryView>,
    /// Where the next page starts (`after=`); absent when this was the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// `?after=&limit=&since_ms=&until_ms=`.
#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
}

/// `GET /admin/v1/audit`: entries after a position, optionally only those appended in
/// `[since_ms, until_ms)`. A page reads at most `limit` rows, so a filtered page may hold fewer
/// and still have a `next`.
pub(super) async fn page(
    State(state): State<AdminState>,
    Query(q): Query<PageQuery>,
) -> Result<Json<EntryPage>, ApiError> {
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let rows = state.store.audit_page(q.after, limit).await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.pos))
        .flatten();
    let within = |at: u64| q.since_ms.is_none_or(|s| at >= s) && q.until_ms.is_none_or(|u| at < u);
    let entries = rows
        .into_iter()
        .filter(|r| within(r.entry.at_ms))
        .map(EntryView::from)
        .collect();
    Ok(Json(EntryPage { entries, next }))
}

/// `?limit=`.
#[derive(Debug, Deserialize)]
pub(super) struct TailQuery {
    limit: Option<usize>,
}

/// `GET /admin/v1/audit/tail`: the last `limit` entries (20 by default), oldest first.
pub(super) async fn tail(
    State(state): State<AdminState>,
    Query(q): Query<TailQuery>,
) -> Result<Json<EntryPage>, ApiError> {
    let limit = q.limit.unwrap_or(20).clamp(1, MAX_PAGE);
    let ends = state.store.audit_ends().await?;
    // Positions are dense unless rows were removed; read back further until there are enough.
    let mut back = limit as u64;
    loop {
        let after = ends.last_pos.saturating_sub(back);
        let rows = state.store.audit_page(after, MAX_PAGE).await?;
        if rows.len() >= limit || after == 0 || back >= 16 * MAX_PAGE as u64 {
            let skip = rows.len().saturating_sub(limit);
            let entries = rows.into_iter().skip(skip).map(EntryView::from).collect();
            return Ok(Json(EntryPage {
                entries,
                next: None,
            }));
        }
        back *= 4;
    }
}

/// What `GET /admin/v1/audit/verify` answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Whether the chain is exactly as pai wrote it.
    pub ok: bool,
    /// For a chain that verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verified>,
    /// For one that did not: the first break.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tamper: Option<Tamper>,
}

/// `GET /admin/v1/audit/verify`.
pub(super) async fn verify(
    State(state): State<AdminState>,
) -> Result<Json<VerifyReport>, ApiError> {
    let key = state.audit.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "this admin API was built without the audit key, so it cannot verify the chain",
        )
    })?;
    state.calls_finished().await;
    Ok(Json(
        match audit::verify(state.store.as_ref(), key).await? {
            Ok(verified) => VerifyReport {
                ok: true,
                verified: Some(verified),
                tamper: None,
            },
            Err(tamper) => VerifyReport {
                ok: false,
                verified: None,
                tamper: Some(tamper),
            },
        },
    ))
}
