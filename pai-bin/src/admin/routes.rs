//! Reading and deleting resources.
//!
//! Everything shown is redacted ([`Resource::redacted`]): secret values become `***` and access
//! key hashes are removed. Model providers and access keys carry today's tokens (since 00:00
//! UTC) and the time of their last call; agents carry today's tokens and cost, summed from
//! their call records (the workload of an agent's calls is its name).

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::Json;
use pai_core::{Kind, Resource, Stored};

use super::usage::start_of_day_ms;
use super::{kind_of, AdminState, ApiError};
use crate::api::{usd, Deleted, Item, ItemList};

/// `GET /admin/v1/{plural}`.
pub(super) async fn list(
    State(state): State<AdminState>,
    Path(plural): Path<String>,
) -> Result<Json<ItemList>, ApiError> {
    list_kind(&state, kind_of(&plural)?).await
}

/// `GET /admin/v1/access-keys`.
pub(super) async fn list_access_keys(
    State(state): State<AdminState>,
) -> Result<Json<ItemList>, ApiError> {
    list_kind(&state, Kind::AccessKey).await
}

/// `GET /admin/v1/{plural}/{name}`.
pub(super) async fn get(
    State(state): State<AdminState>,
    Path((plural, name)): Path<(String, String)>,
) -> Result<Json<Item>, ApiError> {
    get_kind(&state, kind_of(&plural)?, &name).await
}

/// `GET /admin/v1/access-keys/{name}`.
pub(super) async fn get_access_key(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Item>, ApiError> {
    get_kind(&state, Kind::AccessKey, &name).await
}

/// `DELETE /admin/v1/{plural}/{name}`.
pub(super) async fn delete(
    State(state): State<AdminState>,
    Path((plural, name)): Path<(String, String)>,
) -> Result<Json<Deleted>, ApiError> {
    delete_kind(&state, kind_of(&plural)?, name).await
}

/// `DELETE /admin/v1/access-keys/{name}`.
pub(super) async fn delete_access_key(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    delete_kind(&state, Kind::AccessKey, name).await
}

/// Any other path.
pub(super) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no admin route {method} {}; the routes are under {}",
            uri.path(),
            crate::api::PREFIX
        ),
    )
}

async fn list_kind(state: &AdminState, kind: Kind) -> Result<Json<ItemList>, ApiError> {
    let stored = state.store.list(kind).await?;
    let usage = Usage::load(state, kind).await?;
    let items = stored.into_iter().map(|s| usage.item(s)).collect();
    Ok(Json(ItemList { items }))
}

async fn get_kind(state: &AdminState, kind: Kind, name: &str) -> Result<Json<Item>, ApiError> {
    let stored = state
        .store
        .get(kind, name)
        .await?
        .ok_or_else(|| ApiError::not_found(kind, name))?;
    let usage = Usage::load(state, kind).await?;
    Ok(Json(usage.item(stored)))
}

async fn delete_kind(
    state: &AdminState,
    kind: Kind,
    name: String,
) -> Result<Json<Deleted>, ApiError> {
    if !state.store.delete(kind, &name).await? {
        return Err(ApiError::not_found(kind, &name));
    }
    tracing::info!(%kind, %name, "deleted");
    Ok(Json(Deleted {
        kind,
        name,
        result: "deleted".to_owned(),
    }))
}

/// Tokens today and the last call, per model provider or per access key; tokens and cost
/// today per agent.
#[derive(Default)]
struct Usage {
    kind: Option<Kind>,
    tokens_today: HashMap<String, u64>,
    last_used_ms: HashMap<String, u64>,
    cost_today_pico_usd: HashMap<String, u128>,
    /// For ModelBindings: the ModelProviders that exist.
    providers: HashSet<String>,
}

impl Usage {
    /// What listings of `kind` show; nothing for kinds that are not metered.
    async fn load(state: &AdminState, kind: Kind) -> Result<Usage, ApiError> {
        if kind == Kind::Agent {
            return Usage::load_agents(state).await;
        }
        if kind == Kind::ModelBinding {
            let providers = state.store.list(Kind::ModelProvider).await?;
            return Ok(Usage {
                kind: Some(kind),
                providers: providers
                    .into_iter()
                    .map(|p| p.resource.name().to_owned())
                    .collect(),
                ..Usage::default()
            });
        }
        if !matches!(kind, Kind::ModelProvider | Kind::AccessKey) {
            return Ok(Usage::default());
        }
        state.calls_finished().await;
        let owner = |t: &pai_core::UsageTotals| match kind {
            Kind::AccessKey => t.access_key.clone(),
            _ => Some(t.provider.clone()),
        };
        let mut usage = Usage {
            kind: Some(kind),
            ..Usage::default()
        };
        for t in state.store.usage_since(start_of_day_ms(state)).await? {
            if let Some(name) = owner(&t) {
                *usage.tokens_today.entry(name).or_default() += t.usage.total_tokens();
            }
        }
        // The last call may be older than today.
        for t in state.store.usage_since(0).await? {
            if let Some(name) = owner(&t) {
                let last = usage.last_used_ms.entry(name).or_default();
                *last = (*last).max(t.last_used_ms);
            }
        }
        Ok(usage)
    }

    /// Today's tokens and cost per agent, from the call records whose workload is the agent.
    async fn load_agents(state: &AdminState) -> Result<Usage, ApiError> {
        state.calls_finished().await;
        let totals = state
            .store
            .usage_by_workload(start_of_day_ms(state))
            .await?;
        let mut usage = Usage {
            kind: Some(Kind::Agent),
            ..Usage::default()
        };
        for t in totals {
            *usage.tokens_today.entry(t.workload.clone()).or_default() += t.usage.total_tokens();
            *usage.cost_today_pico_usd.entry(t.workload).or_default() += t.cost_pico_usd;
        }
        Ok(usage)
    }

    fn item(&self, stored: Stored) -> Item {
        let name = stored.resource.name().to_owned();
        let mut resource = stored.resource.redacted();
        let cost_today_usd = (self.kind == Some(Kind::Agent))
            .then(|| usd(self.cost_today_pico_usd.get(&name).copied().unwrap_or(0)));
        let calls = match &resource {
            Resource::ModelBinding(b) => Some(b.target(|p| self.providers.contains(p)).into()),
            _ => None,
        };
        let (last_used_ms, tokens_today) = match self.kind {
            Some(Kind::ModelBinding) | None => (None, None),
            Some(_) => (
                self.last_used_ms.get(&name).copied().filter(|ms| *ms > 0),
                Some(self.tokens_today.get(&name).copied().unwrap_or(0)),
            ),
        };
        if let (Resource::AccessKey(k), Some(tokens)) = (&mut resource, tokens_today) {
            k.status.tokens_today = tokens;
        }
        Item {
            resource,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
            generation: stored.generation,
            last_used_ms,
            tokens_today,
            cost_today_usd,
            calls,
        }
    }
}
