//! Guard kinds: how a GuardBinding's `spec.guard` becomes a running [`Guard`].

use std::collections::HashMap;
use std::sync::Arc;

use pai_core::provider::ApiKey;
use pai_core::resource::GuardBinding;
use pai_core::Guard;

/// Builds a guard from its GuardBinding (the binding's whole `spec` is the guard's
/// configuration; a kind of a library's own reads `spec.config`). Any `Fn(&GuardBinding) -> Result<Arc<dyn Guard>, String>` is one.
pub trait GuardKind: Send + Sync + 'static {
    /// The guard `binding` configures, or why its configuration is wrong.
    fn build(&self, binding: &GuardBinding) -> Result<Arc<dyn Guard>, String>;

    /// The same, with the key the binding's `spec.apiKeySecretRef` names, resolved from the
    /// store's Secrets (`None` when it names none). Kinds that call a service override this;
    /// by default the key is not used.
    fn build_with_key(
        &self,
        binding: &GuardBinding,
        key: Option<&ApiKey>,
    ) -> Result<Arc<dyn Guard>, String> {
        let _ = key;
        self.build(binding)
    }
}

impl<F> GuardKind for F
where
    F: Fn(&GuardBinding) -> Result<Arc<dyn Guard>, String> + Send + Sync + 'static,
{
    fn build(&self, binding: &GuardBinding) -> Result<Arc<dyn Guard>, String> {
        self(binding)
    }
}

/// The guard kinds a gateway knows, by name.
#[derive(Clone, Default)]
pub struct GuardKinds {
    kinds: HashMap<String, Arc<dyn GuardKind>>,
}

impl std::fmt::Debug for GuardKinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

impl GuardKinds {
    /// No kinds.
    pub fn new() -> GuardKinds {
        GuardKinds::default()
    }

    /// Add (or replace) the kind called `name`.
    pub fn register(&mut self, name: &str, kind: Arc<dyn GuardKind>) {
        self.kinds.insert(name.to_owned(), kind);
    }

    /// The kind called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn GuardKind>> {
        self.kinds.get(name)
    }

    /// The names, sorted, for messages.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.kinds.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
