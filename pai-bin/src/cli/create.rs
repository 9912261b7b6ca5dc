//! `pai add secret` and `pai create model-provider`: resources from flags, for the common cases
//! that do not deserve a YAML file. Both build the resources and apply them like `pai apply`.
//!
//! Secret values are read from flags, files or stdin and never printed.

use std::collections::BTreeMap;
use std::io::Read;

use clap::{Args, Subcommand};
use pai_core::resource::{
    ExternalAccess, Metadata, ModelProvider, ModelProviderSpec, Secret, SecretRef, API_VERSION,
};
use pai_core::{ProviderKind, Resource};

use super::{print_applied, CliError};
use crate::api::ApplyResponse;
use crate::client::{AdminClient, ClientOpts};

/// What `pai add` adds.
#[derive(Debug, Subcommand)]
pub enum AddCommand {
    /// A Secret: `pai add secret NAME --from-literal api-key=sk-…`.
    Secret(SecretArgs),
    /// A ModelBinding: `pai add model NAME --provider P --api-key SECRET --max-tokens-day N`.
    #[command(visible_alias = "model-binding")]
    Model(super::model::ModelArgs),
}

/// What `pai create` creates.
#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// A ModelProvider and the Secret holding its API key.
    #[command(name = "model-provider", visible_aliases = ["modelprovider", "provider"])]
    ModelProvider(ModelProviderArgs),
    /// A Secret (the same as `pai add secret`).
    Secret(SecretArgs),
}

/// Options of `pai add secret`.
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// The Secret's name.
    name: String,
    /// A key and its value, KEY=VALUE; repeatable. The value is visible to other local users
    /// in the process list: prefer --from-file for secret values.
    #[arg(long = "from-literal", value_name = "KEY=VALUE")]
    literals: Vec<String>,
    /// A key and the file holding its value (a final newline is dropped), KEY=PATH; repeatable.
    #[arg(long = "from-file", value_name = "KEY=PATH")]
    files: Vec<String>,
    #[command(flatten)]
    client: ClientOpts,
}

/// Options of `pai create model-provider`.
#[derive(Debug, Args)]
pub struct ModelProviderArgs {
    /// The ModelProvider's name; its key goes into the Secret NAME-api-key.
    name: String,
    /// The kind of service: anthropic, gemini, openai, openrouter, azure-openai, vllm.
    #[arg(long)]
    provider: ProviderKind,
    /// The provider's API key, or `-` to read it from stdin. Optional for vllm. A key given
    /// here is visible to other local users in the process list: prefer `-` or --api-key-file.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// A file holding the provider's API key (`-`: stdin); kept out of the process list.
    #[arg(long, value_name = "PATH", conflicts_with = "api_key")]
    api_key_file: Option<std::path::PathBuf>,
    /// Base URL; required for vllm and azure-openai.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// A model offered through this provider; repeatable.
    #[arg(long = "allowed-model", value_name = "MODEL")]
    allowed_models: Vec<String>,
    /// Let access keys use this provider.
    #[arg(long)]
    external_access: bool,
    /// Daily token cap for all traffic through this provider.
    #[arg(long = "max-tokens-day", value_name = "N")]
    max_tokens_per_day: Option<u64>,
    #[command(flatten)]
    client: ClientOpts,
}

/// Run `pai add …`.
pub async fn add(what: AddCommand) -> Result<(), CliError> {
    match what {
        AddCommand::Secret(args) => secret(args).await,
        AddCommand::Model(args) => super::model::add_model(args).await,
    }
}

/// Run `pai create …`.
pub async fn create(what: CreateCommand) -> Result<(), CliError> {
    match what {
        CreateCommand::ModelProvider(args) => model_provider(args).await,
        CreateCommand::Secret(args) => secret(args).await,
    }
}

async fn secret(args: SecretArgs) -> Result<(), CliError> {
    let mut data = BTreeMap::new();
    for literal in &args.literals {
        let (key, value) = split_pair(literal, "--from-literal", "KEY=VALUE")?;
        data.insert(key, value.to_owned());
    }
    for file in &args.files {
        let (key, path) = split_pair(file, "--from-file", "KEY=PATH")?;
        let value = std::fs::read_to_string(path)
            .map_err(|e| CliError::msg(format!("--from-file {key}={path}: {e}")))?;
        let value = value.strip_suffix('\n').unwrap_or(&value);
        let value = value.strip_suffix('\r').unwrap_or(value);
        data.insert(key, value.to_owned());
    }
    if data.is_empty() {
        return Err(CliError::msg(
            "give at least one value with --from-literal KEY=VALUE or --from-file KEY=PATH",
        ));
    }
    let secret = Resource::Secret(Secret {
        api_version: API_VERSION.to_owned(),
        metadata: named(&args.name),
        data,
    });
    apply(&args.client, &[secret]).await
}

/// `KEY=VALUE` into its parts; the message never repeats the value.
fn split_pair<'a>(arg: &'a str, flag: &str, shape: &str) -> Result<(String, &'a str), CliError> {
    match arg.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value)),
        _ => Err(CliError::msg(format!("{flag} expects {shape}"))),
    }
}

async fn model_provider(args: ModelProviderArgs) -> Result<(), CliError> {
    let api_key = match args.api_key.as_deref() {
        _ if args.api_key_file.is_some() => args
            .api_key_file
            .as_deref()
            .map(|path| crate::secret_file::read(path, "--api-key-file"))
            .transpose()
            .map_err(CliError::msg)?,
        Some("-") => {
            let mut key = String::new();
            std::io::stdin()
                .read_to_string(&mut key)
                .map_err(|e| CliError::msg(format!("cannot read the API key from stdin: {e}")))?;
            Some(key.trim().to_owned())
        }
        Some(key) => Some(key.to_owned()),
        None => None,
    };
    if api_key.as_deref().is_some_and(str::is_empty) {
        return Err(CliError::msg("--api-key is empty"));
    }
    if api_key.is_none() && args.provider.requires_api_key() {
        return Err(CliError::msg(format!(
            "--api-key is required when --provider is {}",
            args.provider
        )));
    }
    let mut resources = Vec::with_capacity(2);
    let secret_ref = match api_key {
        Some(key) => {
            let secret_name = format!("{}-api-key", args.name);
            resources.push(Resource::Secret(Secret {
                api_version: API_VERSION.to_owned(),
                metadata: named(&secret_name),
                data: BTreeMap::from([("api-key".to_owned(), key)]),
            }));
            Some(SecretRef {
                name: secret_name,
                key: "api-key".to_owned(),
            })
        }
        None => None,
    };
    resources.push(Resource::ModelProvider(ModelProvider {
        api_version: API_VERSION.to_owned(),
        metadata: named(&args.name),
        spec: ModelProviderSpec {
            provider: args.provider.into(),
            api_key_secret_ref: secret_ref,
            endpoint: args.endpoint,
            allowed_models: args.allowed_models,
            denied_models: Vec::new(),
            max_tokens_per_day: args.max_tokens_per_day,
            max_tokens_per_request: None,
            max_requests_per_minute: None,
            guards: Vec::new(),
            external_access: ExternalAccess {
                enabled: args.external_access,
                max_tokens_per_day: None,
            },
            fallbacks: Vec::new(),
        },
    }));
    apply(&args.client, &resources).await
}

pub(super) fn named(name: &str) -> Metadata {
    Metadata {
        name: name.to_owned(),
        ..Metadata::default()
    }
}

/// Send resources as one multi-document apply: all of them are checked before any is stored.
pub(super) async fn apply(client: &ClientOpts, resources: &[Resource]) -> Result<(), CliError> {
    let text = documents(resources)?;
    let client = AdminClient::new(client)?;
    let response: ApplyResponse = client.post_yaml("/apply", text).await?;
    print_applied(&response);
    Ok(())
}

/// JSON documents separated by `---`: JSON is YAML, and escapes every value exactly.
fn documents(resources: &[Resource]) -> Result<String, CliError> {
    let docs = resources
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::msg(e.to_string()))?;
    Ok(docs.join("\n---\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_documents_load_back_exactly() {
        let secret = Resource::Secret(Secret {
            api_version: API_VERSION.to_owned(),
            metadata: named("odd"),
            data: BTreeMap::from([(
                "api-key".to_owned(),
                "sk-\"quoted\" \\ yes: no\n#x".to_owned(),
            )]),
        });
        let provider = Resource::ModelProvider(ModelProvider {
            api_version: API_VERSION.to_owned(),
            metadata: named("openai"),
            spec: ModelProviderSpec {
                provider: ProviderKind::OpenAi.into(),
                api_key_secret_ref: Some(SecretRef {
                    name: "odd".to_owned(),
                    key: "api-key".to_owned(),
                }),
                endpoint: None,
                allowed_models: vec!["gpt-4o".to_owned()],
                denied_models: Vec::new(),
                max_tokens_per_day: Some(1_000),
                max_tokens_per_request: None,
                max_requests_per_minute: None,
                guards: Vec::new(),
                external_access: ExternalAccess {
                    enabled: true,
                    max_tokens_per_day: None,
                },
                fallbacks: Vec::new(),
            },
        });
        let text = documents(&[secret.clone(), provider.clone()]).unwrap();
        let loaded = pai_core::resource::load(&text).unwrap();
        assert_eq!(loaded.resources, vec![secret, provider]);
    }

    #[test]
    fn bad_pairs_are_refused_without_echoing_the_value() {
        let err = split_pair("sk-secret-value", "--from-literal", "KEY=VALUE")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "--from-literal expects KEY=VALUE");
        assert_eq!(
            split_pair("a=b=c", "--from-literal", "KEY=VALUE").unwrap(),
            ("a".to_owned(), "b=c")
        );
    }
}
