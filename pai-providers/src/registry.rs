//! The adapters a gateway can call, by the name a ModelProvider's `spec.provider` gives.
//!
//! [`Adapters::builtin`] holds pai's own, one per [`ProviderKind`] under its name (`openai`,
//! `anthropic`, …). A library user registers more under names of their own (`acme`), or
//! replaces a built-in one; a ModelProvider then names the adapter in `spec.provider`. The
//! registry is handed to the gateway (`pai_tower::GatewayBuilder::provider` registers one at a
//! time): a library owns no process-wide state.
//!
//! What is not registered is not called. A resource naming an unknown provider is refused at
//! apply time with [`Adapters::check`], whose message names the known ones; one already stored
//! has no adapter in the gateway's snapshot, and a call to it is refused (501).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use pai_core::{Dialect, ProviderKind, ProviderType};
//! use pai_providers::{Adapters, OpenAiAdapter};
//!
//! let mut adapters = Adapters::builtin();
//! // An OpenAI-compatible upstream under a name of its own.
//! adapters
//!     .register("acme", Arc::new(OpenAiAdapter::new(ProviderKind::Vllm)))
//!     .unwrap();
//! assert_eq!(adapters.get("acme").unwrap().dialect(), Dialect::OpenAi);
//! assert!(adapters.check(&"acme".parse::<ProviderType>().unwrap()).is_ok());
//!
//! let unknown = adapters.check(&"acne".parse().unwrap()).unwrap_err();
//! assert!(unknown.contains("did you mean \"acme\"?"), "{unknown}");
//! let bad = adapters.register("Not A Name", Arc::new(OpenAiAdapter::new(ProviderKind::Vllm)));
//! assert!(bad.is_err());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use pai_core::model::{valid_provider_name, MAX_PROVIDER_NAME_LEN};
use pai_core::resource::suggest::close_matches;
use pai_core::{Provider, ProviderKind, ProviderType};

/// A name no ModelProvider could give, so an adapter registered under it could never be
/// called.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} cannot name a provider adapter: use lower-case letters, digits, '-', '_' or '.', starting and ending with a letter or digit, at most {MAX_PROVIDER_NAME_LEN} characters")]
pub struct InvalidProviderName(pub String);

/// Provider adapters by name. See the module docs.
#[derive(Clone)]
pub struct Adapters {
    by_name: BTreeMap<String, Arc<dyn Provider>>,
}

impl Adapters {
    /// No adapters at all.
    pub fn empty() -> Adapters {
        Adapters {
            by_name: BTreeMap::new(),
        }
    }

    /// pai's own adapters, each under its kind's name.
    pub fn builtin() -> Adapters {
        let by_name = ProviderKind::ALL
            .into_iter()
            .filter_map(|kind| Some((kind.as_str().to_owned(), crate::adapter_for(kind)?)))
            .collect();
        Adapters { by_name }
    }

    /// Register `adapter` under `name`, which a ModelProvider's `spec.provider` then names.
    /// An adapter already registered under that name (a built-in one included) is replaced
    /// and returned; what pai knows of a built-in type (its public endpoint, its catalogue of
    /// models) still applies to the name.
    pub fn register(
        &mut self,
        name: &str,
        adapter: Arc<dyn Provider>,
    ) -> Result<Option<Arc<dyn Provider>>, InvalidProviderName> {
        if !valid_provider_name(name) {
            return Err(InvalidProviderName(name.to_owned()));
        }
        Ok(self.by_name.insert(name.to_owned(), adapter))
    }

    /// The adapter registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    /// The adapter a ModelProvider of type `provider` is called through.
    pub fn for_type(&self, provider: &ProviderType) -> Option<Arc<dyn Provider>> {
        self.get(provider.as_str()).cloned()
    }

    /// The names registered, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Refuse a provider type no adapter is registered for, naming the ones that are (and the
    /// nearest, for a typo).
    pub fn check(&self, provider: &ProviderType) -> Result<(), String> {
        let name = provider.as_str();
        if self.by_name.contains_key(name) {
            return Ok(());
        }
        let known: Vec<&str> = self.names().collect();
        let hint = match close_matches(name, known.iter().copied()).first() {
            Some(near) => format!("did you mean {near:?}? "),
            None => String::new(),
        };
        Err(format!(
            "this gateway has no adapter for provider {name:?}; {hint}the providers it knows are {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
    }
}

impl Default for Adapters {
    /// [`Adapters::builtin`].
    fn default() -> Adapters {
        Adapters::builtin()
    }
}

impl fmt::Debug for Adapters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpenAiAdapter;
    use pai_core::Dialect;

    fn acme() -> Arc<dyn Provider> {
        Arc::new(OpenAiAdapter::new(ProviderKind::Vllm))
    }

    #[test]
    fn the_builtin_adapters_are_registered_under_their_kinds_names() {
        let adapters = Adapters::builtin();
        for kind in ProviderKind::ALL {
            let adapter = adapters.for_type(&kind.into()).unwrap();
            assert_eq!(adapter.kind(), Some(kind));
            assert_eq!(adapter.dialect(), kind.dialect());
            assert!(adapters.check(&kind.into()).is_ok());
        }
        assert_eq!(adapters.names().count(), ProviderKind::ALL.len());
        assert_eq!(
            format!("{:?}", Adapters::default()),
            format!("{adapters:?}")
        );
    }

    #[test]
    fn a_registered_adapter_is_found_by_its_name() {
        let mut adapters = Adapters::builtin();
        assert_eq!(
            adapters.register("acme", acme()).map(|old| old.is_none()),
            Ok(true)
        );
        let acme_type: ProviderType = "acme".parse().unwrap();
        assert_eq!(acme_type, ProviderType::Custom("acme".to_owned()));
        let found = adapters.for_type(&acme_type).unwrap();
        assert_eq!(found.dialect(), Dialect::OpenAi);
        assert!(adapters.check(&acme_type).is_ok());
        assert!(adapters.names().any(|n| n == "acme"));
    }

    #[test]
    fn a_builtin_adapter_can_be_replaced() {
        let mut adapters = Adapters::builtin();
        let old = adapters.register("anthropic", acme()).unwrap();
        assert_eq!(old.unwrap().kind(), Some(ProviderKind::Anthropic));
        let now = adapters.get("anthropic").unwrap();
        assert_eq!(now.dialect(), Dialect::OpenAi);
    }

    #[test]
    fn an_unknown_provider_is_refused_naming_the_known_ones() {
        let adapters = Adapters::builtin();
        let why = adapters.check(&"acme".parse().unwrap()).unwrap_err();
        assert!(why.contains("no adapter for provider \"acme\""), "{why}");
        assert!(
            why.contains("anthropic, azure-openai, gemini, openai, openrouter, vllm"),
            "{why}"
        );
        let why = adapters.check(&"opneai".parse().unwrap()).unwrap_err();
        assert!(why.contains("did you mean \"openai\"?"), "{why}");
        let why = Adapters::empty()
            .check(&ProviderKind::OpenAi.into())
            .unwrap_err();
        assert!(why.ends_with("knows are none"), "{why}");
    }

    #[test]
    fn names_no_model_provider_could_give_are_refused() {
        let mut adapters = Adapters::empty();
        for bad in ["", "Acme", "acme corp", "-acme", "ac/me"] {
            let e = adapters.register(bad, acme()).err().unwrap();
            assert_eq!(e, InvalidProviderName(bad.to_owned()));
            assert!(e.to_string().contains("lower-case letters"), "{e}");
        }
        assert_eq!(adapters.names().count(), 0);
    }
}
