//! `pai access-key create|rotate`: mint keys.
//!
//! The key goes to stdout alone, so `KEY=$(pai access-key create …)` captures it; the reminder
//! that it is shown only once goes to stderr.

use clap::{Args, Subcommand, ValueEnum};

use super::get::path_segment;
use super::CliError;
use crate::api::{CreateAccessKey, IssuedKey, RotateAccessKey};
use crate::client::{AdminClient, ClientOpts};

/// What `pai access-key` does.
#[derive(Debug, Subcommand)]
pub enum AccessKeyCommand {
    /// Mint a new access key.
    Create(CreateArgs),
    /// Mint a new key for an existing access key; the old one stops working after the grace.
    Rotate(RotateArgs),
}

/// Options of `pai access-key create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The key's name.
    #[arg(long)]
    name: String,
    /// The ModelProvider the key reaches.
    #[arg(long, value_name = "NAME", required_unless_present = "agent")]
    model_provider: Option<String>,
    /// Or the Agent the key acts as.
    #[arg(long, value_name = "NAME", conflicts_with = "model_provider")]
    agent: Option<String>,
    /// A model the key may use (default: all its provider allows); repeatable.
    #[arg(long = "allowed-model", value_name = "MODEL")]
    allowed_models: Vec<String>,
    /// A client network the key may be used from (default: anywhere); repeatable.
    #[arg(long = "allowed-cidr", value_name = "CIDR")]
    allowed_cidrs: Vec<String>,
    /// Daily token cap for this key.
    #[arg(long = "max-tokens-day", value_name = "N")]
    max_tokens_per_day: Option<u64>,
    /// Requests per minute on this key, per gateway process (at least 1).
    #[arg(long = "max-requests-per-minute", value_name = "N")]
    max_requests_per_minute: Option<u32>,
    /// `key` prints the raw key alone; `json` prints name, key and wrapped key.
    #[arg(short = 'o', long, value_enum, default_value_t = KeyOutput::Key)]
    output: KeyOutput,
    #[command(flatten)]
    client: ClientOpts,
}

/// Options of `pai access-key rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The key's name.
    name: String,
    /// How long the old key keeps working, at most 604800 (one week); 0 revokes it at once.
    #[arg(long, value_name = "S", default_value_t = 0)]
    grace_seconds: u64,
    /// `key` prints the raw key alone; `json` prints name, key and wrapped key.
    #[arg(short = 'o', long, value_enum, default_value_t = KeyOutput::Key)]
    output: KeyOutput,
    #[command(flatten)]
    client: ClientOpts,
}

/// How a minted key is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyOutput {
    /// The raw key alone.
    Key,
    /// Name, raw key and wrapped key (`sk-ant-api03-pak-…-AA`) as JSON.
    Json,
}

/// Run `pai access-key …`.
pub async fn run(command: AccessKeyCommand) -> Result<(), CliError> {
    match command {
        AccessKeyCommand::Create(args) => {
            let client = AdminClient::new(&args.client)?;
            let request = CreateAccessKey {
                name: args.name,
                model_provider: args.model_provider,
                agent: args.agent,
                allowed_models: args.allowed_models,
                allowed_cidrs: args.allowed_cidrs,
                max_tokens_per_day: args.max_tokens_per_day,
                max_requests_per_minute: args.max_requests_per_minute,
            };
            let issued: IssuedKey = client.post_json("/access-keys", &request).await?;
            show(&issued, args.output, "created")
        }
        AccessKeyCommand::Rotate(args) => {
            let client = AdminClient::new(&args.client)?;
            let path = format!("/access-keys/{}/rotate", path_segment(&args.name));
            let request = RotateAccessKey {
                grace_seconds: args.grace_seconds,
            };
            let issued: IssuedKey = client.post_json(&path, &request).await?;
            show(&issued, args.output, "rotated")
        }
    }
}

fn show(issued: &IssuedKey, output: KeyOutput, done: &str) -> Result<(), CliError> {
    for w in &issued.warnings {
        eprintln!("warning: {w}");
    }
    let old = match issued.previous_key_expires_at {
        Some(at) => {
            let left = at.saturating_sub(super::now_ms() / 1_000);
            format!(
                "; the previous key works for {} more",
                crate::table::age(left)
            )
        }
        None if done == "rotated" => "; the previous key no longer works".to_owned(),
        None => String::new(),
    };
    eprintln!(
        "accesskey/{} {done}: this is the only time its key is shown, store it now{old}",
        issued.name
    );
    match output {
        KeyOutput::Json => {
            let text =
                serde_json::to_string_pretty(issued).map_err(|e| CliError::msg(e.to_string()))?;
            println!("{text}");
        }
        KeyOutput::Key => println!("{}", issued.key),
    }
    Ok(())
}
