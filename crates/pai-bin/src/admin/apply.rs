//! Applying resources: `POST /admin/v1/apply`, and `pai serve -f` at start.
//!
//! An AccessKey's `status` belongs to the server: applying a key keeps the status already
//! stored (its key hash above all), and a key applied from a file never gets a hash from it, so
//! it cannot be used until `pai access-key rotate` mints one. After applying, references to
//! resources that do not exist are reported as warnings, since the order of documents or files
//! may be about to fix them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use pai_core::resource::{AccessKeyStatus, Loaded};
use pai_core::{Kind, Resource, Store, StoreError};

use super::{AdminState, ApiError};
use crate::api::{ApplyResponse, ApplyResult};

/// `POST /admin/v1/apply`: the body is YAML or JSON text, one or more documents.
pub(super) async fn handler(
    State(state): State<AdminState>,
    body: Bytes,
) -> Result<Json<ApplyResponse>, ApiError> {
    let text = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request body is not UTF-8 text",
        )
    })?;
    // Parsing a large document is CPU work: off the async runtime.
    let loaded = tokio::task::spawn_blocking(move || pai_core::resource::load(&text))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError::invalid(e.problems))?;
    if loaded.resources.is_empty() {
        return Err(ApiError::invalid(vec![
            "no resources found: the text holds no YAML or JSON documents".to_owned(),
        ]));
    }
    let response = apply_loaded(state.store.as_ref(), loaded).await?;
    for r in &response.results {
        tracing::info!(kind = %r.kind, name = %r.name, result = ?r.result, "applied");
    }
    Ok(Json(response))
}

/// Why loaded resources could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A document is unfit to store; nothing was written.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The store failed part-way.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> ApiError {
        match e {
            ApplyError::Invalid(problems) => ApiError::invalid(problems),
            ApplyError::Store(e) => e.into(),
        }
    }
}

/// Store every loaded resource in order, keeping stored AccessKey status, and report what
/// happened with the loader's warnings and any dangling references.
pub async fn apply_loaded(store: &dyn Store, loaded: Loaded) -> Result<ApplyResponse, ApplyError> {
    let problems = redacted_placeholders(&loaded.resources);
    if !problems.is_empty() {
        return Err(ApplyError::Invalid(problems));
    }
    let mut response = ApplyResponse {
        results: Vec::with_capacity(loaded.resources.len()),
        warnings: loaded.warnings,
    };
    let mut applied = Vec::with_capacity(loaded.resources.len());
    for mut resource in loaded.resources {
        if let Resource::AccessKey(key) = &mut resource {
            key.status = match store.get(Kind::AccessKey, &key.metadata.name).await? {
                Some(stored) => match stored.resource {
                    Resource::AccessKey(old) => old.status,
                    _ => AccessKeyStatus::default(),
                },
                None => AccessKeyStatus::default(),
            };
            if key.status.key_hash.is_none() {
                let name = &key.metadata.name;
                response.warnings.push(format!(
                    "AccessKey {name:?} has no key yet and cannot be used: keys are never read from files; mint one with `pai access-key rotate {name}`"
                ));
            }
        }
        let result = store.apply(&resource).await?;
        response.results.push(ApplyResult {
            kind: resource.kind(),
            name: resource.name().to_owned(),
            result,
        });
        applied.push(resource);
    }
    // Checked once everything is stored, so the order of documents does not matter.
    for resource in &applied {
        dangling_references(store, resource, &mut response.warnings).await?;
    }
    Ok(response)
}

/// A Secret value of `***` is the placeholder of a listing, not a value anyone meant to store:
/// applying it would silently replace the real key.
fn redacted_placeholders(resources: &[Resource]) -> Vec<String> {
    let mut problems = Vec::new();
    for r in resources {
        if let Resource::Secret(s) = r {
            for (k, v) in &s.data {
                if v == "***" {
                    problems.push(format!(
                        "{}: data.{k} is \"***\", the placeholder listings show in place of a secret value; give the real value",
                        r.describe()
                    ));
                }
            }
        }
    }
    problems
}

/// Warn about names this resource uses that name nothing stored.
async fn dangling_references(
    store: &dyn Store,
    resource: &Resource,
    warnings: &mut Vec<String>,
) -> Result<(), StoreError> {
    let who = resource.describe();
    let mut wanted: Vec<(Kind, &str, &str, Option<&str>)> = Vec::new();
    match resource {
        Resource::ModelProvider(p) => {
            if let Some(r) = &p.spec.api_key_secret_ref {
                wanted.push((Kind::Secret, &r.name, "spec.apiKeySecretRef", Some(&r.key)));
            }
            for g in &p.spec.guards {
                wanted.push((Kind::GuardBinding, g, "spec.guards", None));
            }
        }
        Resource::ModelBinding(b) => {
            wanted.push((Kind::ModelProvider, &b.spec.provider, "spec.provider", None));
            if let Some(r) = &b.spec.api_key_secret_ref {
                wanted.push((Kind::Secret, &r.name, "spec.apiKeySecretRef", Some(&r.key)));
            }
        }
        Resource::AccessKey(k) => {
            if let Some(p) = &k.spec.model_provider {
                wanted.push((Kind::ModelProvider, p, "spec.modelProvider", None));
            }
            if let Some(a) = &k.spec.agent {
                wanted.push((Kind::Agent, a, "spec.agent", None));
            }
        }
        Resource::Agent(a) => {
            for b in &a.spec.model_bindings {
                wanted.push((Kind::ModelBinding, b, "spec.modelBindings", None));
            }
            for g in &a.spec.guards {
                wanted.push((Kind::GuardBinding, g, "spec.guards", None));
            }
        }
        Resource::Secret(_) | Resource::GuardBinding(_) => {}
    }
    for (kind, name, field, secret_key) in wanted {
        match store.get(kind, name).await? {
            None => warnings.push(format!(
                "{who}: {field} names {kind} {name:?}, which does not exist"
            )),
            Some(stored) => {
                if let (Some(key), Resource::Secret(s)) = (secret_key, &stored.resource) {
                    if !s.data.contains_key(key) {
                        warnings.push(format!(
                            "{who}: {field} names key {key:?} of Secret {name:?}, which has no such key"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
