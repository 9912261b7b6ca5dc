//! `pai gateway env`: the environment that points the official SDKs and Claude Code at the
//! gateway.
//!
//! The Anthropic SDK adds `/v1/messages` to its base URL and the OpenAI SDK adds
//! `/chat/completions`, so the two base URLs differ by `/v1`.

use clap::{Args, Subcommand};

use super::CliError;

/// What `pai gateway` does.
#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Print ANTHROPIC_BASE_URL and OPENAI_BASE_URL for the gateway.
    Env(EnvArgs),
}

/// Options of `pai gateway env`.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The gateway's URL, as clients reach it.
    #[arg(
        long,
        value_name = "URL",
        env = "PAI_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
}

/// Run `pai gateway …`.
pub fn run(command: GatewayCommand) -> Result<(), CliError> {
    match command {
        GatewayCommand::Env(args) => {
            print!("{}", env_lines(&args.url)?);
            Ok(())
        }
    }
}

fn env_lines(url: &str) -> Result<String, CliError> {
    let base = url.trim().trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(CliError::msg(format!(
            "--url {base:?} must be an http:// or https:// URL"
        )));
    }
    Ok(format!(
        "ANTHROPIC_BASE_URL={base}/ext\nOPENAI_BASE_URL={base}/ext/v1\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sdks_reach_the_ext_routes() {
        assert_eq!(
            env_lines("http://127.0.0.1:8080/").unwrap(),
            "ANTHROPIC_BASE_URL=http://127.0.0.1:8080/ext\nOPENAI_BASE_URL=http://127.0.0.1:8080/ext/v1\n"
        );
        assert!(env_lines("127.0.0.1:8080").is_err());
    }
}
