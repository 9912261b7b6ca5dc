//! Applying resources: `POST /admin/v1/apply`, and `pai serve -f` at start.
//!
//! A ModelProvider whose `spec.provider` names no adapter of the gateway's (the `pai` binary has
//! pai's own only) is refused before anything is stored, the message naming the ones there are.
//! An AccessKey's `status` belongs to the server: applying a key keeps the status already
//! stored (its key hash above all), and a key applied from a file never gets a hash from it, so
//! it cannot be used until `pai access-key rotate` mints one. A ModelBinding that could never be
//! called (what it calls, or its key, missing from both the store and the same apply) is
//! refused before anything is stored, and so is a guard that could never run: a GuardBinding
//! of a kind the binary does not have ([`GUARD_KINDS`]), or a ModelProvider or Agent whose
//! `spec.guards` names a GuardBinding that is neither stored nor in the same apply. After
//! applying, other references to resources that do
//! not exist are reported as warnings, since the order of documents or files may be about to
//! fix them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use pai_core::resource::suggest::close_matches;
use pai_core::resource::{AccessKeyStatus, BindingTarget, Loaded};
use pai_core::{Kind, Resource, Store, StoreError};
use pai_providers::Adapters;

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
    let response = apply_loaded(state.store.as_ref(), &state.adapters, loaded).await?;
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
/// happened with the loader's warnings and any dangling references. ModelProviders must name a
/// provider `adapters` has.
pub async fn apply_loaded(
    store: &dyn Store,
    adapters: &Adapters,
    loaded: Loaded,
) -> Result<ApplyResponse, ApplyError> {
    let mut problems = redacted_placeholders(&loaded.resources);
    problems.extend(uncallable_providers(adapters, &loaded.resources));
    let mut warnings = loaded.warnings;
    uncallable_bindings(store, &loaded.resources, &mut problems, &mut warnings).await?;
    unrunnable_guards(store, &loaded.resources, &mut problems).await?;
    if !problems.is_empty() {
        return Err(ApplyError::Invalid(problems));
    }
    let mut response = ApplyResponse {
        results: Vec::with_capacity(loaded.resources.len()),
        warnings,
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

/// A ModelProvider naming a provider the gateway has no adapter for could never be called:
/// accepted means enforced, so it is refused.
fn uncallable_providers(adapters: &Adapters, resources: &[Resource]) -> Vec<String> {
    resources
        .iter()
        .filter_map(|r| match r {
            Resource::ModelProvider(p) => adapters
                .check(&p.spec.provider)
                .err()
                .map(|why| format!("{}: spec.provider: {why}", r.describe())),
            _ => None,
        })
        .collect()
}

/// The guard kinds the `pai` binary runs (`serve` registers each).
pub const GUARD_KINDS: &[&str] = &[pai_guard::KIND, pai_core::resource::HTTP_GUARD];

/// A guard that could never run is refused: accepted means enforced, and a call it guards
/// would only ever fail closed.
async fn unrunnable_guards(
    store: &dyn Store,
    resources: &[Resource],
    problems: &mut Vec<String>,
) -> Result<(), StoreError> {
    for resource in resources {
        let who = resource.describe();
        let refs = match resource {
            Resource::GuardBinding(g) => {
                let kind = g.spec.guard.as_str();
                if !GUARD_KINDS.contains(&kind) {
                    let near = close_matches(kind, GUARD_KINDS.iter().copied());
                    let hint = near
                        .first()
                        .map(|k| format!("did you mean {k:?}? "))
                        .unwrap_or_default();
                    problems.push(format!(
                        "{who}: spec.guard: this gateway has no guard kind {kind:?}; {hint}it has {}",
                        GUARD_KINDS.join(", ")
                    ));
                }
                // A key that is not there would fail every call it guards (closed, 503).
                if let Some(r) = &g.spec.api_key_secret_ref {
                    let hint =
                        |one: &str| format!("`apiKeySecretRef: {{name: {}, key: {one}}}`", r.name);
                    missing_secret(store, resources, &who, (&r.name, &r.key), hint, problems)
                        .await?;
                }
                continue;
            }
            Resource::ModelProvider(p) => &p.spec.guards,
            Resource::Agent(a) => &a.spec.guards,
            _ => continue,
        };
        for (i, g) in refs.iter().enumerate() {
            let in_batch = resources
                .iter()
                .any(|r| r.kind() == Kind::GuardBinding && r.name() == g.binding);
            if in_batch || store.get(Kind::GuardBinding, &g.binding).await?.is_some() {
                continue;
            }
            problems.push(format!(
                "{who}: spec.guards[{i}].binding names GuardBinding {:?}, which does not exist; apply it first or in the same file (kind: GuardBinding, spec: {{guard: {}}})",
                g.binding,
                pai_guard::KIND
            ));
        }
    }
    Ok(())
}

/// A ModelBinding that could never be called is refused, saying what is missing: what its
/// `spec.provider` names (a ModelProvider, stored or in this apply, else a provider type with a
/// public endpoint), and its key — which a binding calling a type directly must have — in a
/// Secret that exists with that key. A model missing from pai's catalogue of the type is only
/// a warning: the catalogue may be older than the provider's newest model.
async fn uncallable_bindings(
    store: &dyn Store,
    resources: &[Resource],
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<(), StoreError> {
    for resource in resources {
        let Resource::ModelBinding(b) = resource else {
            continue;
        };
        let who = resource.describe();
        let name = &b.metadata.name;
        let in_batch = resources
            .iter()
            .any(|r| r.kind() == Kind::ModelProvider && r.name() == b.spec.provider);
        let stored = in_batch
            || store
                .get(Kind::ModelProvider, &b.spec.provider)
                .await?
                .is_some();
        let target = b.target(|_| stored);
        match &target {
            BindingTarget::Unresolved(why) => {
                problems.push(format!("{who}: spec.provider: {why}"));
            }
            BindingTarget::ProviderType(kind) => {
                if b.spec.api_key_secret_ref.is_none() {
                    problems.push(format!(
                        "{who} calls provider type {kind} directly, so it needs its own key: set spec.apiKeySecretRef (`pai add model {name} --provider {kind} --api-key SECRET`)"
                    ));
                }
                if pai_core::catalog::knows(*kind, b.model()) == Some(false) {
                    let listed = pai_core::catalog::catalogue(*kind).unwrap_or(&[]);
                    let near = close_matches(b.model(), listed.iter().copied());
                    let hint = near
                        .first()
                        .map(|m| format!(" (did you mean {m:?}? set it with --model)"))
                        .unwrap_or_default();
                    warnings.push(format!(
                        "{who}: model {:?} is not in pai's {kind} catalogue{hint}; calls send it to {kind} as written",
                        b.model()
                    ));
                }
            }
            BindingTarget::ModelProvider(_) => {}
        }
        if let Some(r) = &b.spec.api_key_secret_ref {
            let hint = |one: &str| format!("`--api-key {}:{one}`", r.name);
            missing_secret(store, resources, &who, (&r.name, &r.key), hint, problems).await?;
        }
    }
    Ok(())
}

/// The problem with `{who}`'s `spec.apiKeySecretRef` (`secret`: its name and key), if the
/// Secret is neither stored nor in this apply, or lacks the key. `hint` writes how to name
/// the one key a Secret has.
async fn missing_secret(
    store: &dyn Store,
    resources: &[Resource],
    who: &str,
    secret: (&str, &str),
    hint: impl Fn(&str) -> String,
    problems: &mut Vec<String>,
) -> Result<(), StoreError> {
    let (name, key) = secret;
    let found = match resources
        .iter()
        .find(|x| x.kind() == Kind::Secret && x.name() == name)
    {
        Some(found) => Some(found.clone()),
        None => store.get(Kind::Secret, name).await?.map(|s| s.resource),
    };
    match found {
        Some(Resource::Secret(s)) if s.data.contains_key(key) => {}
        Some(Resource::Secret(s)) => {
            let keys: Vec<&str> = s.data.keys().map(String::as_str).collect();
            let hint = match keys.as_slice() {
                [one] => format!("; name it with apiKeySecretRef.key: {one} ({})", hint(one)),
                _ => String::new(),
            };
            problems.push(format!(
                "{who}: spec.apiKeySecretRef names key {key:?} of Secret {name:?}, which has no such key (it has {}){hint}",
                if keys.is_empty() { "none".to_owned() } else { keys.join(", ") }
            ));
        }
        _ => problems.push(format!(
            "{who}: spec.apiKeySecretRef names Secret {name:?}, which does not exist; add it first (`pai add secret {name} --from-literal {key}=…`) or in the same file"
        )),
    }
    Ok(())
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
        }
        // Checked before storing: a binding that could never be called is refused.
        Resource::ModelBinding(_) => {}
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
