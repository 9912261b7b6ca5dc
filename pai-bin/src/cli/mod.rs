//! The command line: `pai serve`, and the client commands that drive a running server through
//! its admin API.
//!
//! Output follows kubectl: results as `<kind>/<name> <what happened>` on stdout, tables for
//! `get`, warnings and notes on stderr, a non-zero exit with a one-line reason on failure.

mod access_key;
mod apply;
mod audit;
mod budgets;
mod create;
mod delete;
mod gateway;
mod get;
mod guard;
mod login;
mod metrics;
mod model;
mod status;
mod usage;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use pai_core::Kind;

use crate::api::ApplyResponse;
use crate::client::ClientError;
use crate::serve::ServeArgs;

/// pai: an LLM gateway. Clients use pai access keys; pai holds the provider keys, enforces
/// models and budgets, and meters every token.
#[derive(Debug, Parser)]
#[command(name = "pai", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway and its admin API.
    Serve(Box<ServeArgs>),
    /// Create or update resources from YAML or JSON files (`-f -` reads stdin).
    Apply(apply::ApplyArgs),
    /// List resources of a kind, or show one: `pai get model-providers`; also `pai get metrics`
    /// (today's tokens and cost) and `pai get budgets` (daily limits and what is spent).
    Get(get::GetArgs),
    /// What an agent used today, model by model, against its budgets: `pai status AGENT`.
    Status(status::StatusArgs),
    /// Delete resources: `pai delete model-provider NAME`.
    Delete(delete::DeleteArgs),
    /// Add a resource from flags: `pai add secret NAME --from-literal KEY=VALUE`.
    Add {
        #[command(subcommand)]
        what: create::AddCommand,
    },
    /// Create a resource from flags: `pai create model-provider NAME --provider openai --api-key …`.
    Create {
        #[command(subcommand)]
        what: create::CreateCommand,
    },
    /// Mint and rotate access keys.
    #[command(name = "access-key", visible_alias = "access-keys")]
    AccessKey {
        #[command(subcommand)]
        command: access_key::AccessKeyCommand,
    },
    /// Tokens, requests and cost per provider and access key.
    Usage(usage::UsageArgs),
    /// Check an access key against a gateway and save both: `pai login URL --access-key pak_…`.
    Login(login::LoginArgs),
    /// What clients of the gateway need: `eval "$(pai gateway env)"`, `pai gateway setup`.
    Gateway {
        #[command(subcommand)]
        command: gateway::GatewayCommand,
    },
    /// The audit chain: `pai audit verify`, `pai audit tail`, `pai audit export --since 7d`.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// The built-in guard without a server: `pai guard scan < prompts.jsonl`,
    /// `pai guard eval labelled.jsonl`.
    Guard {
        #[command(subcommand)]
        command: guard::GuardCommand,
    },
}

/// How `get` and friends print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A table for people.
    #[default]
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// A failed command: what to print, and how to exit.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The admin API call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Input that failed the checks, nothing of it applied; one line per problem.
    #[error("invalid input, nothing was applied:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// Anything else, said in one message.
    #[error("{0}")]
    Message(String),
}

impl CliError {
    fn msg(message: impl Into<String>) -> CliError {
        CliError::Message(message.into())
    }
}

/// The command line of this process, with the settings of `pai serve --config FILE` (or
/// `PAI_CONFIG`) added where no flag or environment variable gives them
/// ([`crate::serve::config`]). Exits, as clap does, on `--help` or bad input.
pub fn parse() -> Cli {
    use clap::CommandFactory;
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    command.build();
    let matches = command.clone().get_matches_from(&argv);
    if let Some(("serve", given)) = matches.subcommand() {
        if let (Some(path), Some(serve)) = (
            given.get_one::<std::path::PathBuf>("config"),
            command.find_subcommand("serve"),
        ) {
            match crate::serve::config::arguments(path, serve, given) {
                Ok(extra) => argv.extend(extra),
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(2);
                }
            }
        }
    }
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}

/// Run the command line and say how to exit.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => crate::serve::run(*args)
            .await
            .map_err(|e| CliError::msg(e.to_string())),
        Command::Apply(args) => apply::run(args).await,
        Command::Get(args) => get::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Delete(args) => delete::run(args).await,
        Command::Add { what } => create::add(what).await,
        Command::Create { what } => create::create(what).await,
        Command::AccessKey { command } => access_key::run(command).await,
        Command::Usage(args) => usage::run(args).await,
        Command::Login(args) => login::run(args).await,
        Command::Gateway { command } => gateway::run(command).await,
        Command::Guard { command } => guard::run(command).await,
        Command::Audit { command } => audit::run(command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Print a failure on stderr: the message, then any problems one per line.
fn report(e: &CliError) {
    match e {
        CliError::Invalid(problems) => {
            eprintln!("error: invalid input, nothing was applied:");
            for p in problems {
                eprintln!("  {p}");
            }
        }
        CliError::Client(ClientError::Api { problems, .. }) if !problems.is_empty() => {
            eprintln!("error: invalid input:");
            for p in problems {
                eprintln!("  {p}");
            }
        }
        other => eprintln!("error: {other}"),
    }
}

/// The resource kind a user typed, or an error listing the ones there are.
fn parse_kind(s: &str) -> Result<Kind, CliError> {
    Kind::from_cli(s).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.plural()).collect();
        CliError::msg(format!(
            "unknown resource type {s:?}; expected one of {}",
            known.join(", ")
        ))
    })
}

/// `modelprovider/openai`, as kubectl names things.
fn label(kind: Kind, name: &str) -> String {
    format!("{}/{name}", kind.as_str().to_ascii_lowercase())
}

/// Print what an apply did on stdout and its warnings on stderr.
fn print_applied(response: &ApplyResponse) {
    for r in &response.results {
        let result = serde_json::to_value(r.result)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!("{} {result}", label(r.kind, &r.name));
    }
    for w in &response.warnings {
        eprintln!("warning: {w}");
    }
}

/// Unix milliseconds now.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn kinds_are_named_like_kubectl() {
        assert_eq!(label(Kind::ModelProvider, "openai"), "modelprovider/openai");
        assert_eq!(parse_kind("Model-Providers").unwrap(), Kind::ModelProvider);
        assert_eq!(parse_kind("secret").unwrap(), Kind::Secret);
        let err = parse_kind("gizmo").unwrap_err().to_string();
        assert!(
            err.contains("model-providers, models, access-keys"),
            "{err}"
        );
    }

    #[test]
    fn serve_flags_parse() {
        let cli = Cli::try_parse_from([
            "pai",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "-f",
            "a.yaml",
            "-f",
            "b.yaml",
            "--trusted-proxy",
            "10.0.0.0/8",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.files.len(), 2);
        assert_eq!(args.trusted_proxies.len(), 1);
        assert!(Cli::try_parse_from(["pai", "serve", "--trusted-proxy", "10.0.0.0/40"]).is_err());
    }
}
