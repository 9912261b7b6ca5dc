//! The models a call may be answered by, in order: the one asked for, then its fallbacks.

use std::sync::Arc;

use pai_core::resource::{Agent, BindingTarget};
use pai_core::{Credentials, Error, ModelRef};

use crate::auth::Principal;
use crate::policy;
use crate::snapshot::{BindingEntry, ProviderEntry, Snapshot};

/// One model of one provider that may answer the call; the fallback layer puts the current
/// one in the request's extensions.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The ModelProvider called.
    pub provider: Arc<ProviderEntry>,
    /// The model id sent upstream.
    pub model: String,
    /// `provider/model`, as headers and cooldowns name it.
    pub label: String,
    /// The ModelBinding this candidate came from, with its own key and budgets.
    pub binding: Option<Arc<BindingEntry>>,
    /// Its place in the call's list: 0 for the model asked for.
    pub position: usize,
    /// The label of the model asked for, when this candidate is a fallback.
    pub fell_back_from: Option<String>,
}

impl Candidate {
    fn new(provider: Arc<ProviderEntry>, model: &str) -> Candidate {
        let label = format!("{}/{model}", provider.resource.metadata.name);
        Candidate {
            provider,
            model: model.to_owned(),
            label,
            binding: None,
            position: 0,
            fell_back_from: None,
        }
    }

    /// The credentials to call with: the binding's own key, else the provider's.
    pub fn credentials(&self) -> &Result<Credentials, String> {
        match self.binding.as_ref().and_then(|b| b.credentials.as_ref()) {
            Some(own) => own,
            None => &self.provider.credentials,
        }
    }

    /// The tightest per-request token cap that applies, and whose it is.
    pub fn max_tokens_per_request(&self) -> Option<(u64, String)> {
        let provider = self.provider.resource.spec.max_tokens_per_request.map(|l| {
            (
                l,
                format!(
                    "ModelProvider {:?} maxTokensPerRequest",
                    self.provider.resource.metadata.name
                ),
            )
        });
        let binding = self.binding.as_ref().and_then(|b| {
            b.resource.spec.max_tokens_per_request.map(|l| {
                (
                    l,
                    format!(
                        "ModelBinding {:?} maxTokensPerRequest",
                        b.resource.metadata.name
                    ),
                )
            })
        });
        match (provider, binding) {
            (Some(p), Some(b)) => Some(if b.0 <= p.0 { b } else { p }),
            (p, b) => p.or(b),
        }
    }
}

/// For whoever is calling.
pub(crate) fn for_principal(
    principal: &Principal,
    model: &str,
    snapshot: &Snapshot,
) -> Result<Vec<Candidate>, Error> {
    match &principal.binding {
        crate::auth::Binding::Provider(_) => for_access_key(principal, model, snapshot),
        crate::auth::Binding::Agent(agent) => for_agent(agent, model, snapshot),
    }
}

/// One entry of an agent's list.
enum Entry<'a> {
    Model(ModelRef),
    Binding(&'a str),
}

/// For an agent: the model asked for — `provider/model-id`, a ModelBinding name, or a bare model
/// id that names exactly one entry of the agent's list — then the rest of the agent's list in
/// order (`models`, then `modelBindings`). A model the agent does not list is refused.
pub(crate) fn for_agent(
    agent: &Agent,
    requested: &str,
    snapshot: &Snapshot,
) -> Result<Vec<Candidate>, Error> {
    let name = &agent.metadata.name;
    let entries: Vec<Entry> = agent
        .spec
        .models
        .iter()
        .filter_map(|m| m.parse::<ModelRef>().ok().map(Entry::Model))
        .chain(
            agent
                .spec
                .model_bindings
                .iter()
                .map(|b| Entry::Binding(b.as_str())),
        )
        .collect();
    let label = |e: &Entry| match e {
        Entry::Model(r) => r.to_string(),
        Entry::Binding(b) => (*b).to_owned(),
    };
    let model_of = |e: &Entry| -> Option<String> {
        match e {
            Entry::Model(r) => Some(r.model.clone()),
            Entry::Binding(b) => snapshot.binding(b).map(|b| b.model().to_owned()),
        }
    };
    let exact = entries.iter().position(|e| label(e) == requested);
    let primary = match exact {
        Some(i) => i,
        None => {
            let bare: Vec<usize> = (0..entries.len())
                .filter(|i| model_of(&entries[*i]).as_deref() == Some(requested))
                .collect();
            match bare.as_slice() {
                [one] => *one,
                _ => {
                    let listed: Vec<String> = entries.iter().map(label).collect();
                    return Err(Error::ModelNotFound {
                        model: requested.to_owned(),
                        message: format!(
                            "Agent {name:?} does not list model {requested:?}; it may use {}",
                            listed.join(", ")
                        ),
                    });
                }
            }
        }
    };
    let order = std::iter::once(primary).chain((0..entries.len()).filter(|i| *i != primary));
    let mut out = Vec::new();
    for (n, i) in order.enumerate() {
        let candidate = match &entries[i] {
            Entry::Model(r) => snapshot
                .provider(&r.provider)
                .map(|p| Candidate::new(p.clone(), &r.model))
                .ok_or_else(|| format!("ModelProvider {:?} does not exist", r.provider)),
            Entry::Binding(b) => match snapshot.binding(b) {
                None => Err(format!("ModelBinding {b:?} does not exist")),
                Some(binding) => binding_candidate(binding, snapshot),
            },
        };
        let checked = candidate.and_then(|c| {
            // A direct binding is its own allow-list: it names the model it calls, which may
            // be newer than pai's catalogue.
            if c.binding.as_ref().is_some_and(|b| b.direct.is_some()) {
                return Ok(c);
            }
            policy::check_provider_model(&c.provider.resource, &c.model)
                .map(|()| c)
                .map_err(|e| e.to_string())
        });
        match checked {
            Ok(c) => out.push(c),
            Err(why) if n == 0 => {
                return Err(Error::Unavailable(format!(
                    "Agent {name:?} cannot use {requested:?}: {why}"
                )))
            }
            Err(why) => {
                tracing::warn!(agent = %name, entry = %label(&entries[i]), %why, "agent list entry skipped")
            }
        }
    }
    Ok(out)
}

/// A binding's candidate: through the ModelProvider it names, else straight to the provider
/// type it names.
fn binding_candidate(
    binding: &Arc<BindingEntry>,
    snapshot: &Snapshot,
) -> Result<Candidate, String> {
    let provider = match (&binding.target, &binding.direct) {
        (_, Some(direct)) => direct.clone(),
        (BindingTarget::ModelProvider(name), None) => snapshot
            .provider(name)
            .cloned()
            .ok_or_else(|| format!("ModelProvider {name:?} does not exist"))?,
        (BindingTarget::Unresolved(why), None) => return Err(why.clone()),
        (BindingTarget::ProviderType(kind), None) => {
            return Err(format!("pai has no adapter for provider type {kind}"))
        }
    };
    let mut c = Candidate::new(provider, binding.model());
    c.binding = Some(binding.clone());
    Ok(c)
}

/// For an access key: its provider's model (which must pass the key's and the provider's
/// policy — a refusal there is the caller's error), then the provider's `spec.fallbacks` that
/// exist, allow external access and offer their model (others are skipped).
pub(crate) fn for_access_key(
    principal: &Principal,
    model: &str,
    snapshot: &Snapshot,
) -> Result<Vec<Candidate>, Error> {
    let (crate::auth::Binding::Provider(provider), Some(key)) =
        (&principal.binding, &principal.access_key)
    else {
        return Err(Error::Internal(
            "an access-key principal without its key".to_owned(),
        ));
    };
    policy::check_model(&provider.resource, key, model)?;
    let mut out = vec![Candidate::new(provider.clone(), model)];
    for fallback in &provider.resource.spec.fallbacks {
        let Ok(r) = fallback.parse::<ModelRef>() else {
            continue;
        };
        let Some(p) = snapshot.provider(&r.provider) else {
            tracing::warn!(fallback = %fallback, "fallback names a ModelProvider that does not exist; skipped");
            continue;
        };
        if !p.resource.spec.external_access.enabled {
            continue;
        }
        if policy::check_provider_model(&p.resource, &r.model).is_err() {
            tracing::warn!(fallback = %fallback, "fallback model is not offered by its provider; skipped");
            continue;
        }
        if out
            .iter()
            .any(|c| c.label == format!("{}/{}", r.provider, r.model))
        {
            continue;
        }
        out.push(Candidate::new(p.clone(), &r.model));
    }
    Ok(out)
}
