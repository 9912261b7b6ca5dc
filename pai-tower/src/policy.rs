//! Which models a caller may use.
//!
//! A key can only narrow what its provider allows: the models offered are the provider's
//! `allowedModels` (or, when empty, pai's catalogue for providers that have one), minus
//! `deniedModels`, intersected with the key's own `allowedModels`. For custom endpoints (vllm,
//! azure-openai, openai with an `endpoint`) `allowedModels` is the source of truth. A trailing
//! `*` in a list is a prefix wildcard.

use pai_core::catalog;
use pai_core::resource::suggest::close_matches;
use pai_core::resource::{AccessKey, ModelProvider};
use pai_core::{Error, ProviderKind};

fn listed(list: &[String], model: &str) -> bool {
    list.iter().any(|m| match m.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => m == model,
    })
}

fn is_custom(p: &ModelProvider) -> bool {
    match p.spec.provider {
        ProviderKind::Vllm | ProviderKind::AzureOpenAi => true,
        ProviderKind::OpenAi => p.has_custom_endpoint(),
        _ => false,
    }
}

/// Refuse `model` unless both the provider and the key allow it.
pub(crate) fn check_model(
    provider: &ModelProvider,
    key: &AccessKey,
    model: &str,
) -> Result<(), Error> {
    check_provider_model(provider, model)?;
    let key_models = &key.spec.restrictions.allowed_models;
    if !key_models.is_empty() && !listed(key_models, model) {
        return Err(Error::PermissionDenied(format!(
            "AccessKey {:?} may not use model {model:?}; it may use {}",
            key.metadata.name,
            key_models.join(", ")
        )));
    }
    Ok(())
}

/// Refuse `model` unless the provider offers it: not denied, and in its `allowedModels`, or —
/// when that list is empty — in pai's catalogue (custom endpoints need the list). The error
/// names close matches.
pub fn check_provider_model(provider: &ModelProvider, model: &str) -> Result<(), Error> {
    let pname = &provider.metadata.name;
    let spec = &provider.spec;
    if listed(&spec.denied_models, model) {
        return Err(Error::PermissionDenied(format!(
            "model {model:?} is denied by ModelProvider {pname:?} (spec.deniedModels)"
        )));
    }
    let offered = offered(provider);
    let known = if !spec.allowed_models.is_empty() {
        listed(&spec.allowed_models, model)
    } else if is_custom(provider) {
        return Err(Error::ModelNotFound {
            model: model.to_owned(),
            message: format!(
                "model {model:?} is not offered: ModelProvider {pname:?} is a custom {} endpoint, so pai only serves the models in its spec.allowedModels; add {model:?} there",
                spec.provider
            ),
        });
    } else {
        match catalog::knows(spec.provider, model) {
            Some(known) => known,
            // OpenRouter: any well-formed slug.
            None => !model.is_empty() && !model.contains(char::is_whitespace),
        }
    };
    if !known {
        let near = close_matches(model, offered.iter().map(String::as_str));
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!(
                "; did you mean {}?",
                near.iter()
                    .take(3)
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        };
        return Err(Error::ModelNotFound {
            model: model.to_owned(),
            message: format!("model {model:?} is not offered by ModelProvider {pname:?}{hint}"),
        });
    }
    Ok(())
}

/// The concrete model names a provider offers (wildcards cannot be listed).
fn offered(provider: &ModelProvider) -> Vec<String> {
    let spec = &provider.spec;
    let base: Vec<String> = if !spec.allowed_models.is_empty() {
        spec.allowed_models.clone()
    } else if is_custom(provider) {
        Vec::new()
    } else {
        catalog::catalogue(spec.provider)
            .unwrap_or(&[])
            .iter()
            .map(|m| (*m).to_owned())
            .collect()
    };
    base.into_iter()
        .filter(|m| !m.ends_with('*') && !listed(&spec.denied_models, m))
        .collect()
}

/// What a principal may name as a model, for `GET /models` and `/me`: for an external key the
/// provider's models narrowed by the key; for an agent its `provider/model` list and its
/// ModelBinding names.
pub(crate) fn models_of(principal: &crate::auth::Principal) -> Vec<String> {
    match (&principal.binding, &principal.access_key) {
        (crate::auth::Binding::Provider(p), Some(key)) => models_for(&p.resource, key),
        (crate::auth::Binding::Provider(p), None) => offered(&p.resource),
        (crate::auth::Binding::Agent(a), _) => a
            .spec
            .models
            .iter()
            .chain(a.spec.model_bindings.iter())
            .cloned()
            .collect(),
    }
}

/// What `key` may use through `provider`, for `GET /models`.
pub(crate) fn models_for(provider: &ModelProvider, key: &AccessKey) -> Vec<String> {
    let key_models = &key.spec.restrictions.allowed_models;
    offered(provider)
        .into_iter()
        .filter(|m| key_models.is_empty() || listed(key_models, m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pai_core::resource::{load_one, Resource};

    fn provider(spec: &str) -> ModelProvider {
        let yaml = format!(
            "apiVersion: pai.io/v1\nkind: ModelProvider\nmetadata: {{name: p}}\nspec: {spec}\n"
        );
        match load_one(&yaml).unwrap() {
            Resource::ModelProvider(p) => p,
            _ => unreachable!(),
        }
    }

    fn key(models: &[&str]) -> AccessKey {
        let list = models.join(", ");
        let yaml = format!("apiVersion: pai.io/v1\nkind: AccessKey\nmetadata: {{name: k}}\nspec: {{modelProvider: p, restrictions: {{allowedModels: [{list}]}}}}\n");
        match load_one(&yaml).unwrap() {
            Resource::AccessKey(k) => k,
            _ => unreachable!(),
        }
    }

    #[test]
    fn keys_only_narrow() {
        let p = provider("{provider: openai, apiKeySecretRef: {name: s}, allowedModels: [gpt-4o, gpt-4o-mini], deniedModels: [gpt-4o]}");
        assert!(check_model(&p, &key(&[]), "gpt-4o-mini").is_ok());
        assert_eq!(
            check_model(&p, &key(&[]), "gpt-4o").unwrap_err().status(),
            403
        );
        assert_eq!(
            check_model(&p, &key(&["gpt-4o-mini"]), "o1")
                .unwrap_err()
                .status(),
            404
        );
        let narrow = key(&["gpt-4o-mini"]);
        assert!(check_model(&p, &narrow, "gpt-4o-mini").is_ok());
        assert_eq!(models_for(&p, &narrow), vec!["gpt-4o-mini"]);
        assert_eq!(models_for(&p, &key(&[])), vec!["gpt-4o-mini"]);
    }

    #[test]
    fn catalogue_applies_without_a_list() {
        let p = provider("{provider: anthropic, apiKeySecretRef: {name: s}}");
        assert!(check_model(&p, &key(&[]), "claude-sonnet-4-6").is_ok());
        let e = check_model(&p, &key(&[]), "claude-sonet-4-6").unwrap_err();
        assert_eq!(e.status(), 404);
        assert!(
            e.to_string().contains("did you mean \"claude-sonnet-4-6\""),
            "{e}"
        );
    }

    #[test]
    fn custom_endpoints_need_a_list() {
        let p = provider("{provider: vllm, endpoint: 'http://127.0.0.1:8000/v1'}");
        let e = check_model(&p, &key(&[]), "llama").unwrap_err();
        assert!(e.to_string().contains("add \"llama\" there"), "{e}");
        let p = provider(
            "{provider: vllm, endpoint: 'http://127.0.0.1:8000/v1', allowedModels: ['meta/*']}",
        );
        assert!(check_model(&p, &key(&[]), "meta/llama-3.1-8b").is_ok());
    }
}
