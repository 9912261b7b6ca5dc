//! The admin API: JSON over HTTP on its own listener, every route behind the admin token.
//!
//! ```text
//! POST   /admin/v1/apply                      YAML or JSON text, many documents
//! GET    /admin/v1/{plural}                   redacted listing, with usage for providers and keys
//! GET    /admin/v1/{plural}/{name}
//! DELETE /admin/v1/{plural}/{name}
//! POST   /admin/v1/access-keys                mint a key (returned once)
//! POST   /admin/v1/access-keys/{name}/rotate  mint a new key, keep the old one for a grace period
//! GET    /admin/v1/usage?since_ms=            totals per provider and access key, with costUsd
//! GET    /admin/v1/usage/workloads?since_ms=  totals per workload (agent or ext:key), provider, model
//! GET    /admin/v1/budgets                    every daily budget with a limit: spent today, limit
//! GET    /admin/v1/audit[/tail|/verify]       the audit chain (see the `audit` module)
//! ```
//!
//! Beside it, outside the token ([`public_router`]): `GET /metrics` ([`metrics`]) and
//! `GET /readyz` ([`probes`]); the listener itself answers `GET /healthz`.
//!
//! `{plural}` is [`Kind::plural`]: `model-providers`, `models`, `access-keys`, `secrets`,
//! `agents`, `guard-bindings`. Secret values and key hashes never leave this module; the raw
//! access key leaves it exactly once, in the answer that minted it.

mod access_keys;
pub mod apply;
pub mod audit;
mod budgets;
#[cfg(test)]
mod effect_tests;
pub mod metrics;
pub mod probes;
mod routes;
#[cfg(test)]
mod tests;
mod usage;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pai_core::{
    AccessKeyHasher, BudgetLedger, Clock, Kind, LedgerError, Store, StoreError, SystemClock,
};
use ring::digest;

use crate::api::{ErrorBody, ErrorDetail};

/// How long a usage view waits for the calls already answered to be recorded.
const FINISHED_CALLS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What every admin handler shares.
#[derive(Clone)]
pub struct AdminState {
    store: Arc<dyn Store>,
    /// The gateway's own ledger, so budgets show exactly what the gateway enforces.
    ledger: Arc<dyn BudgetLedger>,
    hasher: AccessKeyHasher,
    clock: Arc<dyn Clock>,
    /// SHA-256 of the admin token: comparing digests takes the same time whatever the
    /// presented token's length, and the token itself is not kept.
    token_digest: [u8; 32],
    /// The gateway serving from the same store: every write waits until it acts on it.
    gateway: Option<pai_tower::Gateway>,
    /// The adapters of that gateway: a ModelProvider must name one of them.
    adapters: Arc<pai_providers::Adapters>,
    /// The key of the store's audit chain, to verify it.
    audit: Option<pai_core::AuditKey>,
}

impl AdminState {
    /// State for a store, the gateway's budget ledger and access-key hasher, and the admin
    /// token.
    pub fn new(
        store: Arc<dyn Store>,
        ledger: Arc<dyn BudgetLedger>,
        hasher: AccessKeyHasher,
        admin_token: &str,
    ) -> AdminState {
        AdminState {
            store,
            ledger,
            hasher,
            clock: Arc::new(SystemClock),
            token_digest: sha256(admin_token.as_bytes()),
            gateway: None,
            adapters: Arc::new(pai_providers::Adapters::builtin()),
            audit: None,
        }
    }

    /// Record every change made through the admin API in the store's audit chain (who, from
    /// where, digests of before and after), and verify the chain under `key`: the key derived
    /// from the secret key the store was opened with ([`pai_core::AuditKey::derive`]).
    pub fn audit_key(mut self, key: pai_core::AuditKey) -> AdminState {
        self.store = Arc::new(audit::AuditedWrites::new(self.store, key.clone()));
        self.audit = Some(key);
        self
    }

    /// Read wall-clock time (a rotated key's grace, today's budgets) from `clock`; the
    /// gateway's and the ledger's, so all three agree. Default: the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> AdminState {
        self.clock = clock;
        self
    }

    /// Make every write (apply, delete, minting and rotating keys) return only once `gateway`,
    /// which serves from the same store, acts on it: a key minted can be used at once, and a key
    /// deleted or rotated out is refused at once. ModelProviders applied must name one of its
    /// adapters (without a gateway: one of pai's own).
    pub fn follow_gateway(mut self, gateway: pai_tower::Gateway) -> AdminState {
        self.adapters = Arc::new(gateway.adapters().clone());
        self.gateway = Some(gateway);
        self
    }

    /// Wait until every call the gateway has answered is recorded and settled, so the usage
    /// views show a call as soon as its client has the answer; bounded, and without a
    /// gateway in this process there is nothing to wait for.
    async fn calls_finished(&self) {
        if let Some(gateway) = &self.gateway {
            if !gateway.finished(FINISHED_CALLS_WAIT).await {
                tracing::warn!(
                    wait_ms = FINISHED_CALLS_WAIT.as_millis() as u64,
                    "call records are still being written; answering with those written so far"
                );
            }
        }
    }

    fn token_matches(&self, presented: &[u8]) -> bool {
        let presented = sha256(presented);
        // Fold every byte so the time taken does not depend on where the first difference is.
        let diff = presented
            .iter()
            .zip(self.token_digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// The admin API as an axum router, every route behind the admin token.
pub fn router(state: AdminState) -> Router {
    let v1 = Router::new()
        .route("/apply", post(apply::handler))
        .route("/usage", get(usage::totals))
        .route("/usage/workloads", get(usage::workloads))
        .route("/budgets", get(budgets::list))
        .route("/audit", get(audit::page))
        .route("/audit/tail", get(audit::tail))
        .route("/audit/verify", get(audit::verify))
        // Spelled out so the static segment does not shadow the generic routes below.
        .route(
            "/access-keys",
            get(routes::list_access_keys).post(access_keys::create),
        )
        .route(
            "/access-keys/{name}",
            get(routes::get_access_key).delete(routes::delete_access_key),
        )
        .route("/access-keys/{name}/rotate", post(access_keys::rotate))
        .route("/{plural}", get(routes::list))
        .route("/{plural}/{name}", get(routes::get).delete(routes::delete));
    Router::new()
        .nest(crate::api::PREFIX, v1)
        .fallback(routes::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            read_your_writes,
        ))
        .layer(middleware::from_fn(audit::as_admin))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// The routes beside the admin API that need no token, for scrapers and probes:
/// `GET /metrics` and `GET /readyz`. Merge it with [`router`].
pub fn public_router(state: AdminState, gateway_metrics: pai_tower::metrics::Metrics) -> Router {
    let scrape = Router::new()
        .route("/metrics", get(metrics::handler))
        .with_state(metrics::Scrape::new(state.clone(), gateway_metrics));
    let readyz = Router::new()
        .route("/readyz", get(probes::readyz))
        .with_state(probes::Probes::new(state));
    scrape.merge(readyz)
}

/// Refuses any request that does not carry `Authorization: Bearer <admin token>`.
async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        None => unauthorized(
            "missing admin token: send it as `Authorization: Bearer <token>` (pai serve wrote it to DATA_DIR/admin.token)",
        ),
        Some(token) if state.token_matches(token.as_bytes()) => next.run(request).await,
        Some(_) => unauthorized("invalid admin token"),
    }
}

/// After a write, wait until the gateway acts on it before answering. Should the gateway fail
/// to load the new configuration (its store unreadable), the answer is kept — it may hold a key
/// shown only once — and says so in `x-pai-not-in-effect`.
async fn read_your_writes(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD);
    let mut response = next.run(request).await;
    if let (true, Some(gateway)) = (writes, &state.gateway) {
        if let Err(e) = gateway.caught_up().await {
            tracing::error!(error = %e, "a change was stored but the gateway could not load it yet");
            response.headers_mut().insert(
                "x-pai-not-in-effect",
                HeaderValue::from_static(
                    "stored, but the gateway could not load it yet; it retries",
                ),
            );
        }
    }
    response
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// An admin API failure, rendered as `{"error":{"message":…}}` with its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    problems: Vec<String>,
}

impl ApiError {
    /// A failure with one message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            problems: Vec::new(),
        }
    }

    /// 400 listing every problem of an invalid document, one sentence each.
    pub fn invalid(problems: Vec<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: problems.join("\n"),
            problems,
        }
    }

    /// 404 for a resource that does not exist.
    pub fn not_found(kind: Kind, name: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{kind} {name:?} not found"))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let status = match e {
            StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
        };
        tracing::warn!(error = %e, "admin API store error");
        ApiError::new(status, e.to_string())
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> ApiError {
        tracing::warn!(error = %e, "admin API ledger error");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.message,
                problems: self.problems,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// Parse a JSON request body into `T`, answering 400 with serde's explanation otherwise.
fn json_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("request body is not valid: {e}"),
        )
    })
}

/// The kind a URL's `{plural}` names, or a 404 that lists the ones there are.
fn kind_of(plural: &str) -> Result<Kind, ApiError> {
    Kind::ALL
        .into_iter()
        .find(|k| k.plural() == plural)
        .ok_or_else(|| {
            let known: Vec<&str> = Kind::ALL.iter().map(|k| k.plural()).collect();
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown resource type {plural:?}; expected one of {}",
                    known.join(", ")
                ),
            )
        })
}
