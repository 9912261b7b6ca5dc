//! Minting access keys: `POST /admin/v1/access-keys` and `…/{name}/rotate`.
//!
//! The raw key exists in exactly two places: the answer to the request that minted it, and the
//! memory of this handler while it answers. The store keeps only its keyed hash.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use pai_core::access_key;
use pai_core::resource::{
    AccessKey, AccessKeySpec, AccessKeyStatus, Limits, Metadata, Restrictions, API_VERSION,
};
use pai_core::{Kind, Resource};

use super::{json_body, AdminState, ApiError};
use crate::api::{CreateAccessKey, IssuedKey, RotateAccessKey};

/// `POST /admin/v1/access-keys`.
pub(super) async fn create(
    State(state): State<AdminState>,
    body: Bytes,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let req: CreateAccessKey = json_body(&body)?;
    let mut key = AccessKey {
        api_version: API_VERSION.to_owned(),
        metadata: Metadata {
            name: req.name,
            ..Metadata::default()
        },
        spec: AccessKeySpec {
            model_provider: req.model_provider,
            agent: req.agent,
            restrictions: Restrictions {
                allowed_models: req.allowed_models,
                allowed_cidrs: req.allowed_cidrs,
            },
            limits: Limits {
                max_tokens_per_day: req.max_tokens_per_day,
                max_requests_per_minute: req.max_requests_per_minute,
            },
        },
        status: AccessKeyStatus::default(),
    };
    validate(&key)?;
    let name = key.metadata.name.clone();
    if state.store.get(Kind::AccessKey, &name).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "AccessKey {name:?} already exists; rotate it with `pai access-key rotate {name}` or delete it first"
            ),
        ));
    }
    let warnings = check_target(&state, &key.spec).await?;
    let raw = mint()?;
    key.status.key_hash = Some(state.hasher.hash(&raw).0);
    state.store.apply(&Resource::AccessKey(key)).await?;
    tracing::info!(%name, "access key created");
    Ok((
        StatusCode::CREATED,
        Json(IssuedKey {
            name,
            wrapped: access_key::wrap(&raw),
            key: raw,
            previous_key_expires_at: None,
            warnings,
        }),
    ))
}

/// The longest an old key may keep working after a rotation: one week. A rotated-out key that
/// never dies is a revocation that never happens.
pub const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;

/// `POST /admin/v1/access-keys/{name}/rotate`.
pub(super) async fn rotate(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<IssuedKey>, ApiError> {
    let req: RotateAccessKey = json_body(&body)?;
    if req.grace_seconds > MAX_GRACE_SECONDS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "graceSeconds {} is too long: the old key may keep working for at most {MAX_GRACE_SECONDS} seconds (one week); rotate again later if clients need longer",
                req.grace_seconds
            ),
        ));
    }
    let stored = state
        .store
        .get(Kind::AccessKey, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(Kind::AccessKey, &name))?;
    let Resource::AccessKey(mut key) = stored.resource else {
        return Err(ApiError::not_found(Kind::AccessKey, &name));
    };
    let raw = mint()?;
    let old = key.status.key_hash.take();
    let expires_at = state.clock.unix_secs().saturating_add(req.grace_seconds);
    let keep_old = req.grace_seconds > 0 && old.is_some();
    key.status.previous_key_hash = if keep_old { old } else { None };
    key.status.previous_key_expires_at = keep_old.then_some(expires_at);
    key.status.key_hash = Some(state.hasher.hash(&raw).0);
    let previous_key_expires_at = key.status.previous_key_expires_at;
    state.store.apply(&Resource::AccessKey(key)).await?;
    tracing::info!(%name, grace_seconds = req.grace_seconds, "access key rotated");
    Ok(Json(IssuedKey {
        name,
        wrapped: access_key::wrap(&raw),
        key: raw,
        previous_key_expires_at,
        warnings: Vec::new(),
    }))
}

fn mint() -> Result<String, ApiError> {
    access_key::generate().map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the operating system's random source failed",
        )
    })
}

/// The same checks `pai apply` makes: name format, exactly one target, CIDRs that parse.
fn validate(key: &AccessKey) -> Result<(), ApiError> {
    let text = serde_json::to_string(&Resource::AccessKey(key.clone()))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    pai_core::resource::load_one(&text)
        .map(|_| ())
        .map_err(|e| ApiError::invalid(e.problems))
}

/// The key's provider or agent must exist; a provider closed to external access is worth a
/// warning, since the key will be refused until it opens.
async fn check_target(state: &AdminState, spec: &AccessKeySpec) -> Result<Vec<String>, ApiError> {
    let mut warnings = Vec::new();
    if let Some(provider) = &spec.model_provider {
        let Some(stored) = state.store.get(Kind::ModelProvider, provider).await? else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("ModelProvider {provider:?} does not exist; create it first"),
            ));
        };
        if let Resource::ModelProvider(p) = stored.resource {
            // A key's restrictions can only narrow what its provider offers.
            for model in spec
                .restrictions
                .allowed_models
                .iter()
                .filter(|m| !m.ends_with('*'))
            {
                if let Err(e) = pai_tower::check_provider_model(&p, model) {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("--allowed-model {model:?} is outside what ModelProvider {provider:?} offers, and a key can only narrow it: {e}"),
                    ));
                }
            }
            if !p.spec.external_access.enabled {
                warnings.push(format!(
                    "ModelProvider {provider:?} has externalAccess.enabled false: this key is refused until it is enabled"
                ));
            }
        }
    }
    if let Some(agent) = &spec.agent {
        if state.store.get(Kind::Agent, agent).await?.is_none() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("Agent {agent:?} does not exist; create it first"),
            ));
        }
    }
    Ok(warnings)
}
