//! `pai add model`: a ModelBinding from flags — one model with its own key and budgets, called
//! through a ModelProvider or, when `--provider` is a provider type, directly at that type's
//! public endpoint.
//!
//! The key is `--api-key SECRET` (or `SECRET:KEY`): without `:KEY`, a Secret holding exactly one
//! value is used with that value's key, any other with the documented default, `token`. The
//! server refuses a binding that could never be called and says what is missing.

use clap::Args;
use pai_core::resource::{BindingSecretRef, ModelBinding, ModelBindingSpec, API_VERSION};
use pai_core::{Kind, Resource};

use super::create::{apply, named};
use super::get::path_segment;
use super::CliError;
use crate::api::Item;
use crate::client::{AdminClient, ClientError, ClientOpts};

/// The key a binding reads from its Secret when none is named.
const DEFAULT_KEY: &str = "token";

/// Options of `pai add model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The ModelBinding's name (also the model id unless --model is given).
    name: String,
    /// A ModelProvider's name, or a provider type called directly: anthropic, gemini, openai,
    /// openrouter.
    #[arg(long)]
    provider: String,
    /// The Secret holding its own key, as SECRET or SECRET:KEY (KEY: the Secret's only key,
    /// else `token`). Required when --provider is a provider type.
    #[arg(long = "api-key", value_name = "SECRET[:KEY]")]
    api_key: Option<String>,
    /// The model id at the provider; defaults to NAME.
    #[arg(long)]
    model: Option<String>,
    /// Daily token cap for this model.
    #[arg(long = "max-tokens-day", value_name = "N")]
    max_tokens_per_day: Option<u64>,
    /// Cap on input plus output of one request.
    #[arg(long = "max-tokens-request", value_name = "N")]
    max_tokens_per_request: Option<u64>,
    #[command(flatten)]
    client: ClientOpts,
}

/// Run `pai add model`.
pub async fn add_model(args: ModelArgs) -> Result<(), CliError> {
    let api_key_secret_ref = match args.api_key.as_deref() {
        None => None,
        Some(r) => Some(match r.split_once(':') {
            Some((name, key)) if !name.is_empty() && !key.is_empty() => BindingSecretRef {
                name: name.to_owned(),
                key: key.to_owned(),
            },
            Some(_) => return Err(CliError::msg("--api-key expects SECRET or SECRET:KEY")),
            None => BindingSecretRef {
                name: r.to_owned(),
                key: secret_key(&args.client, r).await?,
            },
        }),
    };
    let binding = Resource::ModelBinding(ModelBinding {
        api_version: API_VERSION.to_owned(),
        metadata: named(&args.name),
        spec: ModelBindingSpec {
            provider: args.provider,
            model: args.model,
            max_tokens_per_day: args.max_tokens_per_day,
            max_tokens_per_request: args.max_tokens_per_request,
            api_key_secret_ref,
        },
    });
    apply(&args.client, &[binding]).await
}

/// The key to read from Secret `name`: its only key, else `token`. A Secret that does not
/// exist is left to the server, which refuses the binding and says so.
async fn secret_key(client: &ClientOpts, name: &str) -> Result<String, CliError> {
    let client = AdminClient::new(client)?;
    let path = format!("/{}/{}", Kind::Secret.plural(), path_segment(name));
    match client.get::<Item>(&path).await {
        Ok(item) => Ok(key_of(&item.resource)),
        Err(ClientError::Api { status, .. }) if status == http::StatusCode::NOT_FOUND => {
            Ok(DEFAULT_KEY.to_owned())
        }
        Err(e) => Err(e.into()),
    }
}

fn key_of(secret: &Resource) -> String {
    match secret {
        Resource::Secret(s) if s.data.len() == 1 => s
            .data
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| DEFAULT_KEY.to_owned()),
        _ => DEFAULT_KEY.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(keys: &[&str]) -> Resource {
        Resource::Secret(pai_core::resource::Secret {
            api_version: API_VERSION.to_owned(),
            metadata: named("s"),
            data: keys
                .iter()
                .map(|k| ((*k).to_owned(), "***".to_owned()))
                .collect(),
        })
    }

    #[test]
    fn a_secrets_only_key_is_used_else_token() {
        assert_eq!(key_of(&secret(&["api-key"])), "api-key");
        assert_eq!(key_of(&secret(&["api-key", "token"])), "token");
        assert_eq!(key_of(&secret(&["a", "b"])), "token");
        assert_eq!(key_of(&secret(&[])), "token");
    }
}
