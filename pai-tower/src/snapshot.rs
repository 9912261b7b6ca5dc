//! The configuration a request is checked against, held in memory.
//!
//! The hot path never touches the store: every request reads one [`Snapshot`] (an `Arc` clone
//! under a read lock held for nanoseconds), built from the store at start and rebuilt whenever
//! the store's watch reports a change. Secrets are resolved into provider credentials and
//! `spec.provider` into the adapter registered under that name ([`Adapters`]) while building,
//! so a request needs no lookup at all; a provider whose adapter is not registered is kept,
//! marked uncallable.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use pai_core::provider::ApiKey;
use pai_core::resource::{
    AccessKey, Agent, BindingTarget, ExternalAccess, GuardBinding, Metadata, ModelBinding,
    ModelProvider, ModelProviderSpec, Secret,
};
use pai_core::{Credentials, Kind, Provider, ProviderKind, Resource, Store, StoreError};
use pai_providers::Adapters;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// A ModelProvider ready to be called.
pub struct ProviderEntry {
    /// The resource as applied.
    pub resource: ModelProvider,
    /// Its adapter: the one registered under its `spec.provider`, if the gateway has one.
    pub adapter: Option<Arc<dyn Provider>>,
    /// Its credentials, or why they could not be resolved (never containing the key).
    pub credentials: Result<Credentials, String>,
    /// Unix seconds when it was created.
    pub created_at: u64,
}

impl std::fmt::Debug for ProviderEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderEntry")
            .field("name", &self.resource.metadata.name)
            .field("kind", &self.resource.spec.provider)
            .finish_non_exhaustive()
    }
}

/// A ModelBinding ready to be called: its own credentials when it names a secret.
#[derive(Debug)]
pub struct BindingEntry {
    /// The resource as applied.
    pub resource: ModelBinding,
    /// Its own key (overriding its provider's), or why it could not be resolved.
    pub credentials: Option<Result<Credentials, String>>,
    /// What it calls: a ModelProvider's name, a provider type called directly (then
    /// `direct` holds the provider it calls), or why it calls nothing.
    pub target: BindingTarget,
    /// For a binding that calls a provider type directly: that type's adapter and public
    /// endpoint (or its override), with the binding's key and no limits of its own.
    pub direct: Option<Arc<ProviderEntry>>,
}

impl BindingEntry {
    /// The model id at the provider.
    pub fn model(&self) -> &str {
        self.resource.model()
    }
}

/// Base URLs that replace the public endpoint of a provider type for ModelBindings that call
/// the type directly: for tests against a mock upstream, or an egress proxy.
#[derive(Clone, Debug, Default)]
pub struct ProviderEndpoints(HashMap<ProviderKind, String>);

impl ProviderEndpoints {
    /// Call `kind`'s direct bindings at `endpoint` instead of its public endpoint.
    pub fn set(&mut self, kind: ProviderKind, endpoint: &str) {
        self.0
            .insert(kind, endpoint.trim_end_matches('/').to_owned());
    }

    /// The endpoint direct bindings of `kind` call.
    pub fn endpoint(&self, kind: ProviderKind) -> Option<String> {
        self.0
            .get(&kind)
            .cloned()
            .or_else(|| kind.default_endpoint().map(str::to_owned))
    }
}

/// An access key as the auth layer needs it.
#[derive(Clone, Debug)]
pub(crate) struct KeyEntry {
    pub key: Arc<AccessKey>,
    /// Unix seconds after which this hash no longer works (a rotated-out key in its grace).
    pub expires_at: Option<u64>,
}

/// Everything a request is checked against.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub(crate) providers: HashMap<String, Arc<ProviderEntry>>,
    pub(crate) keys: HashMap<String, KeyEntry>,
    pub(crate) agents: HashMap<String, Arc<Agent>>,
    pub(crate) bindings: HashMap<String, Arc<BindingEntry>>,
    pub(crate) guard_bindings: HashMap<String, Arc<GuardBinding>>,
    /// The keys GuardBindings name in `spec.apiKeySecretRef`, or why one could not be resolved.
    pub(crate) guard_keys: HashMap<String, Result<ApiKey, String>>,
    /// The store's revision this was built from.
    pub revision: u64,
}

impl Snapshot {
    /// Every model name the configuration names: providers' allowed models and catalogues,
    /// agents' models, ModelBindings and the models they call.
    pub(crate) fn model_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for p in self.providers.values() {
            let spec = &p.resource.spec;
            names.extend(
                spec.allowed_models
                    .iter()
                    .filter(|m| !m.ends_with('*'))
                    .cloned(),
            );
            if spec.allowed_models.is_empty() {
                let catalogue = spec
                    .provider
                    .kind()
                    .and_then(pai_core::catalog::catalogue)
                    .unwrap_or(&[]);
                names.extend(catalogue.iter().map(|m| (*m).to_owned()));
            }
        }
        for a in self.agents.values() {
            names.extend(a.spec.models.iter().cloned());
            names.extend(a.spec.model_bindings.iter().cloned());
        }
        for b in self.bindings.values() {
            names.push(b.resource.metadata.name.clone());
            names.push(b.model().to_owned());
        }
        names
    }

    /// Build from the store with pai's own adapters, direct ModelBindings calling their type's
    /// public endpoint.
    pub async fn load(store: &dyn Store, revision: u64) -> Result<Snapshot, StoreError> {
        Snapshot::load_with(
            store,
            revision,
            &ProviderEndpoints::default(),
            &Adapters::builtin(),
        )
        .await
    }

    /// Build from the store, providers called through `adapters`, direct ModelBindings calling
    /// `endpoints` where they say.
    pub async fn load_with(
        store: &dyn Store,
        revision: u64,
        endpoints: &ProviderEndpoints,
        adapters: &Adapters,
    ) -> Result<Snapshot, StoreError> {
        let secrets: HashMap<String, Secret> = store
            .list(Kind::Secret)
            .await?
            .into_iter()
            .filter_map(|s| match s.resource {
                Resource::Secret(secret) => Some((secret.metadata.name.clone(), secret)),
                _ => None,
            })
            .collect();

        let mut providers = HashMap::new();
        for stored in store.list(Kind::ModelProvider).await? {
            let Resource::ModelProvider(p) = stored.resource else {
                continue;
            };
            let credentials = resolve_credentials(&p, &secrets);
            if let Err(why) = adapters.check(&p.spec.provider) {
                tracing::warn!(provider = %p.metadata.name, "{why}; calls to it are refused");
            }
            let entry = ProviderEntry {
                adapter: adapters.for_type(&p.spec.provider),
                credentials,
                created_at: stored.created_at,
                resource: p,
            };
            providers.insert(entry.resource.metadata.name.clone(), Arc::new(entry));
        }

        let mut keys = HashMap::new();
        for stored in store.list(Kind::AccessKey).await? {
            let Resource::AccessKey(k) = stored.resource else {
                continue;
            };
            let k = Arc::new(k);
            if let Some(hash) = &k.status.key_hash {
                keys.insert(
                    hash.clone(),
                    KeyEntry {
                        key: k.clone(),
                        expires_at: None,
                    },
                );
            }
            if let (Some(hash), Some(until)) = (
                &k.status.previous_key_hash,
                k.status.previous_key_expires_at,
            ) {
                keys.insert(
                    hash.clone(),
                    KeyEntry {
                        key: k.clone(),
                        expires_at: Some(until),
                    },
                );
            }
        }
        let mut agents = HashMap::new();
        for stored in store.list(Kind::Agent).await? {
            if let Resource::Agent(a) = stored.resource {
                agents.insert(a.metadata.name.clone(), Arc::new(a));
            }
        }
        let mut bindings = HashMap::new();
        for stored in store.list(Kind::ModelBinding).await? {
            let Resource::ModelBinding(b) = stored.resource else {
                continue;
            };
            let entry = binding_entry(
                b,
                &providers,
                &secrets,
                (endpoints, adapters),
                stored.created_at,
            );
            bindings.insert(entry.resource.metadata.name.clone(), Arc::new(entry));
        }
        let mut guard_bindings = HashMap::new();
        let mut guard_keys = HashMap::new();
        for stored in store.list(Kind::GuardBinding).await? {
            if let Resource::GuardBinding(g) = stored.resource {
                if let Some(r) = &g.spec.api_key_secret_ref {
                    let key = secrets
                        .get(&r.name)
                        .and_then(|s| s.data.get(&r.key))
                        .map(|value| ApiKey::new(value.clone()))
                        .ok_or_else(|| {
                            format!(
                                "names key {:?} of Secret {:?} in spec.apiKeySecretRef, which does not exist",
                                r.key, r.name
                            )
                        });
                    guard_keys.insert(g.metadata.name.clone(), key);
                }
                guard_bindings.insert(g.metadata.name.clone(), Arc::new(g));
            }
        }
        Ok(Snapshot {
            providers,
            keys,
            agents,
            bindings,
            guard_bindings,
            guard_keys,
            revision,
        })
    }

    /// An agent by name.
    pub fn agent(&self, name: &str) -> Option<&Arc<Agent>> {
        self.agents.get(name)
    }

    /// A model binding by name.
    pub fn binding(&self, name: &str) -> Option<&Arc<BindingEntry>> {
        self.bindings.get(name)
    }

    /// A GuardBinding by name.
    pub fn guard_binding(&self, name: &str) -> Option<&Arc<GuardBinding>> {
        self.guard_bindings.get(name)
    }

    /// The key GuardBinding `name` names in `spec.apiKeySecretRef`: `None` when it names none,
    /// else the key or why it could not be resolved (never containing the key).
    pub fn guard_key(&self, name: &str) -> Option<&Result<ApiKey, String>> {
        self.guard_keys.get(name)
    }

    /// A ModelProvider by name.
    pub fn provider(&self, name: &str) -> Option<&Arc<ProviderEntry>> {
        self.providers.get(name)
    }
}

/// A binding resolved: against the ModelProvider it names, else the provider type it names.
fn binding_entry(
    b: ModelBinding,
    providers: &HashMap<String, Arc<ProviderEntry>>,
    secrets: &HashMap<String, Secret>,
    (endpoints, adapters): (&ProviderEndpoints, &Adapters),
    created_at: u64,
) -> BindingEntry {
    let target = b.target(|name| providers.contains_key(name));
    let own_key = |endpoint: String| -> Result<Credentials, String> {
        let Some(r) = &b.spec.api_key_secret_ref else {
            return Err(format!(
                "ModelBinding {:?} calls provider type {:?} directly and needs its own key in spec.apiKeySecretRef",
                b.metadata.name, b.spec.provider
            ));
        };
        let value = secrets
            .get(&r.name)
            .and_then(|s| s.data.get(&r.key))
            .ok_or_else(|| {
                format!(
                    "ModelBinding {:?} names key {:?} of Secret {:?}, which does not exist",
                    b.metadata.name, r.key, r.name
                )
            })?;
        Ok(Credentials {
            endpoint,
            api_key: Some(ApiKey::new(value.clone())),
        })
    };
    let (credentials, direct) = match &target {
        BindingTarget::ModelProvider(name) => {
            let provider = providers.get(name);
            let credentials = b.spec.api_key_secret_ref.as_ref().map(|_| {
                let endpoint = provider
                    .and_then(|p| p.resource.endpoint())
                    .ok_or_else(|| {
                        format!(
                            "ModelBinding {:?} names ModelProvider {name:?}, which has no endpoint",
                            b.metadata.name
                        )
                    })?;
                own_key(endpoint)
            });
            (credentials, None)
        }
        BindingTarget::ProviderType(kind) => {
            let credentials = endpoints
                .endpoint(*kind)
                .ok_or_else(|| format!("provider type {kind} has no endpoint"))
                .and_then(own_key);
            let direct = ProviderEntry {
                resource: direct_provider(*kind),
                adapter: adapters.get(kind.as_str()).cloned(),
                credentials: credentials.clone(),
                created_at,
            };
            (Some(credentials), Some(Arc::new(direct)))
        }
        BindingTarget::Unresolved(why) => (
            Some(Err(format!("ModelBinding {:?}: {why}", b.metadata.name))),
            None,
        ),
    };
    BindingEntry {
        resource: b,
        credentials,
        target,
        direct,
    }
}

/// The provider a direct binding calls: named after its type, public endpoint, no lists, no
/// limits (the binding's own apply), closed to access keys.
fn direct_provider(kind: ProviderKind) -> ModelProvider {
    ModelProvider {
        api_version: pai_core::resource::API_VERSION.to_owned(),
        metadata: Metadata {
            name: kind.as_str().to_owned(),
            ..Metadata::default()
        },
        spec: ModelProviderSpec {
            provider: kind.into(),
            api_key_secret_ref: None,
            endpoint: None,
            allowed_models: Vec::new(),
            denied_models: Vec::new(),
            max_tokens_per_day: None,
            max_tokens_per_request: None,
            max_requests_per_minute: None,
            guards: Vec::new(),
            external_access: ExternalAccess::default(),
            fallbacks: Vec::new(),
        },
    }
}

fn resolve_credentials(
    p: &ModelProvider,
    secrets: &HashMap<String, Secret>,
) -> Result<Credentials, String> {
    let endpoint = p
        .endpoint()
        .ok_or_else(|| format!("ModelProvider {:?} has no endpoint", p.metadata.name))?;
    let api_key = match &p.spec.api_key_secret_ref {
        None => None,
        Some(r) => {
            let secret = secrets.get(&r.name).ok_or_else(|| {
                format!(
                    "ModelProvider {:?} names Secret {:?}, which does not exist",
                    p.metadata.name, r.name
                )
            })?;
            let value = secret.data.get(&r.key).ok_or_else(|| {
                format!(
                    "Secret {:?} has no key {:?} (needed by ModelProvider {:?})",
                    r.name, r.key, p.metadata.name
                )
            })?;
            Some(ApiKey::new(value.clone()))
        }
    };
    Ok(Credentials { endpoint, api_key })
}

/// The current snapshot, swapped atomically on reload.
///
/// Swaps only ever move forward: a snapshot built from an older store revision than the one
/// installed is dropped, so a slow reload cannot undo a newer one. The revision installed is
/// published, so an admin write can wait until the gateway acts on it ([`Self::caught_up`]).
#[derive(Clone, Debug)]
pub struct SharedSnapshot {
    inner: Arc<RwLock<Arc<Snapshot>>>,
    installed: Arc<watch::Sender<u64>>,
    endpoints: Arc<ProviderEndpoints>,
    adapters: Arc<Adapters>,
    /// The metrics whose `model` labels follow this configuration, if any.
    metrics: Option<Metrics>,
}

impl Default for SharedSnapshot {
    fn default() -> SharedSnapshot {
        SharedSnapshot::new(Snapshot::default())
    }
}

impl SharedSnapshot {
    /// Hold `snapshot`.
    pub fn new(snapshot: Snapshot) -> SharedSnapshot {
        let revision = snapshot.revision;
        SharedSnapshot {
            inner: Arc::new(RwLock::new(Arc::new(snapshot))),
            installed: Arc::new(watch::channel(revision).0),
            endpoints: Arc::default(),
            adapters: Arc::default(),
            metrics: None,
        }
    }

    /// Let the models this configuration names, now and after every reload, appear as
    /// `model` labels in `metrics` (any other model is counted as `other`).
    pub fn with_metrics(mut self, metrics: Metrics) -> SharedSnapshot {
        metrics.know_models(self.current().model_names());
        self.metrics = Some(metrics);
        self
    }

    /// Rebuild with `endpoints` for direct ModelBindings (the snapshot held now should have
    /// been built with them too).
    pub fn with_endpoints(mut self, endpoints: ProviderEndpoints) -> SharedSnapshot {
        self.endpoints = Arc::new(endpoints);
        self
    }

    /// Rebuild with `adapters` (the snapshot held now should have been built with them too).
    pub fn with_adapters(mut self, adapters: Adapters) -> SharedSnapshot {
        self.adapters = Arc::new(adapters);
        self
    }

    /// The adapters providers are called through.
    pub fn adapters(&self) -> &Adapters {
        &self.adapters
    }

    /// Build a snapshot of `store` at `revision` the way this one is built.
    pub async fn load(&self, store: &dyn Store, revision: u64) -> Result<Snapshot, StoreError> {
        Snapshot::load_with(store, revision, &self.endpoints, &self.adapters).await
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<Snapshot> {
        match self.inner.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Install `snapshot`, unless the one installed was built from a newer store revision.
    pub fn replace(&self, snapshot: Snapshot) {
        if let Some(metrics) = &self.metrics {
            metrics.know_models(snapshot.model_names());
        }
        let revision = snapshot.revision;
        let snapshot = Arc::new(snapshot);
        {
            let mut guard = match self.inner.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            if revision < guard.revision {
                return;
            }
            *guard = snapshot;
        }
        self.installed.send_if_modified(|installed| {
            let newer = revision > *installed;
            if newer {
                *installed = revision;
            }
            newer
        });
    }

    /// Wait, up to `timeout`, until the installed snapshot was built from store revision
    /// `revision` or a later one; whether it was.
    pub async fn caught_up(&self, revision: u64, timeout: Duration) -> bool {
        let mut installed = self.installed.subscribe();
        let reached = async { installed.wait_for(|r| *r >= revision).await.is_ok() };
        tokio::time::timeout(timeout, reached)
            .await
            .unwrap_or(false)
    }

    /// Rebuild from `store` whenever its watch moves, until the store's watch closes. A failed
    /// load is retried (with a growing pause) rather than left until the next change, so the
    /// gateway never stays behind a write that did happen.
    pub fn follow(&self, store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
        let shared = self.clone();
        let mut watch = store.watch();
        tokio::spawn(async move {
            while watch.changed().await.is_ok() {
                let mut pause = Duration::from_millis(50);
                loop {
                    let revision = *watch.borrow_and_update();
                    match shared.load(store.as_ref(), revision).await {
                        Ok(s) => {
                            shared.replace(s);
                            break;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "could not reload configuration; keeping the last good one and retrying");
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
        })
    }
}
