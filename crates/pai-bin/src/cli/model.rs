//! `pai add model`: a ModelBinding from flags — one model of a provider with its own key and
//! budgets.

use clap::Args;
use pai_core::resource::{BindingSecretRef, ModelBinding, ModelBindingSpec, API_VERSION};
use pai_core::Resource;

use super::create::{apply, named};
use super::CliError;
use crate::client::ClientOpts;

/// Options of `pai add model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The ModelBinding's name (also the model id unless --model is given).
    name: String,
    /// The ModelProvider it belongs to.
    #[arg(long)]
    provider: String,
    /// The Secret holding its own key, as SECRET or SECRET:KEY (the key defaults to `token`).
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
    let api_key_secret_ref = args.api_key.as_deref().map(|r| match r.split_once(':') {
        Some((name, key)) => BindingSecretRef {
            name: name.to_owned(),
            key: key.to_owned(),
        },
        None => BindingSecretRef {
            name: r.to_owned(),
            key: "token".to_owned(),
        },
    });
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
