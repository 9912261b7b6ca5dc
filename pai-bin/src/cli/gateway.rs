//! `pai gateway env|setup`: the environment that points the official SDKs and Claude Code at the
//! gateway, with the access key saved by `pai login` (or given with `--access-key`).
//!
//! The Anthropic SDK adds `/v1/messages` to its base URL and the OpenAI SDK adds
//! `/chat/completions`, so the two base URLs differ by `/v1`. Anthropic clients get the key in
//! its wrapped form (`sk-ant-api03-pak-…-AA`), OpenAI clients the raw `pak_…`.

use clap::{Args, Subcommand};

use super::login::{self, Credentials, Me};
use super::CliError;

/// What `pai gateway` does.
#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Print the exports for the SDKs: `eval "$(pai gateway env)"`.
    Env(EnvArgs),
    /// The same exports, then (as comments) the models, daily limit and tokens left of the key.
    Setup(EnvArgs),
}

/// Options of `pai gateway env` and `pai gateway setup`.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The gateway's URL, as clients reach it (default: the one saved by `pai login`).
    #[arg(long, value_name = "URL", env = "PAI_GATEWAY_URL")]
    url: Option<String>,
    /// The access key, raw or wrapped (default: the one saved by `pai login`).
    #[arg(
        long,
        value_name = "KEY",
        env = "PAI_ACCESS_KEY",
        hide_env_values = true
    )]
    access_key: Option<String>,
}

/// Run `pai gateway …`.
pub async fn run(command: GatewayCommand) -> Result<(), CliError> {
    match command {
        GatewayCommand::Env(args) => {
            let (url, key) = resolve(&args)?;
            if key.is_none() {
                eprintln!(
                    "warning: no access key: only the base URLs are printed; run `pai login {url} --access-key pak_…` or pass --access-key"
                );
            }
            print!("{}", env_lines(&url, key.as_deref()));
            Ok(())
        }
        GatewayCommand::Setup(args) => {
            let (url, key) = resolve(&args)?;
            let Some(key) = key else {
                return Err(CliError::msg(format!(
                    "no access key: run `pai login {url} --access-key pak_…` or pass --access-key"
                )));
            };
            let creds = Credentials {
                url,
                access_key: key,
            };
            let me = login::fetch_me(&creds).await?;
            print!(
                "{}{}",
                env_lines(&creds.url, Some(&creds.access_key)),
                setup_comments(&me)
            );
            Ok(())
        }
    }
}

/// The gateway URL and raw key: flags first, then the saved credentials.
fn resolve(args: &EnvArgs) -> Result<(String, Option<String>), CliError> {
    let saved = if args.url.is_some() && args.access_key.is_some() {
        None
    } else {
        login::load(&login::config_dir()?)?
    };
    let url = match (&args.url, &saved) {
        (Some(url), _) => login::gateway_url(url)?,
        (None, Some(saved)) => login::gateway_url(&saved.url)?,
        (None, None) => {
            return Err(CliError::msg(
                "not logged in: run `pai login URL --access-key pak_…` first, or pass --url and --access-key",
            ))
        }
    };
    let key = match (&args.access_key, saved) {
        (Some(key), _) => Some(login::raw_key(key)?),
        (None, Some(saved)) => Some(login::raw_key(&saved.access_key)?),
        (None, None) => None,
    };
    Ok((url, key))
}

/// `export NAME=value` lines for `eval`.
fn env_lines(base: &str, key: Option<&str>) -> String {
    let mut vars = vec![("ANTHROPIC_BASE_URL", format!("{base}/ext"))];
    if let Some(key) = key {
        vars.push(("ANTHROPIC_API_KEY", pai_core::access_key::wrap(key)));
    }
    vars.push(("OPENAI_BASE_URL", format!("{base}/ext/v1")));
    if let Some(key) = key {
        vars.push(("OPENAI_API_KEY", key.to_owned()));
    }
    vars.iter()
        .map(|(name, value)| format!("export {name}={}\n", shell_quote(value)))
        .collect()
}

/// What the key may do, as shell comments.
fn setup_comments(me: &Me) -> String {
    let mut out = format!(
        "# access key {} (ModelProvider {}, provider {})\n",
        me.access_key, me.model_provider, me.provider
    );
    if me.models.is_empty() {
        out.push_str("# models: none\n");
    } else {
        out.push_str("# models:\n");
        for m in &me.models {
            out.push_str(&format!("#   {m}\n"));
        }
    }
    if !me.allowed_cidrs.is_empty() {
        out.push_str(&format!(
            "# allowed networks: {}\n",
            me.allowed_cidrs.join(", ")
        ));
    }
    match me.max_tokens_per_day {
        Some(limit) => out.push_str(&format!("# daily token limit: {limit}\n")),
        None => out.push_str("# daily token limit: none\n"),
    }
    out.push_str(&format!("# tokens used today: {}\n", me.tokens_today));
    match me.tokens_left_today {
        Some(left) => out.push_str(&format!("# tokens left today: {left}\n")),
        None => out.push_str("# tokens left today: unlimited\n"),
    }
    out
}

/// `value` as one shell word: bare if it is safe, single-quoted otherwise.
fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:@%+=,".contains(&b));
    if safe {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sdks_reach_the_ext_routes() {
        assert_eq!(
            env_lines("http://127.0.0.1:8080", Some("pak_abc")),
            "export ANTHROPIC_BASE_URL=http://127.0.0.1:8080/ext\n\
             export ANTHROPIC_API_KEY=sk-ant-api03-pak-abc-AA\n\
             export OPENAI_BASE_URL=http://127.0.0.1:8080/ext/v1\n\
             export OPENAI_API_KEY=pak_abc\n"
        );
        assert_eq!(
            env_lines("http://gw", None),
            "export ANTHROPIC_BASE_URL=http://gw/ext\nexport OPENAI_BASE_URL=http://gw/ext/v1\n"
        );
    }

    #[test]
    fn values_are_quoted_when_needed() {
        assert_eq!(shell_quote("http://gw:1/x"), "http://gw:1/x");
        assert_eq!(shell_quote("http://gw/a b"), "'http://gw/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(x)"), "'$(x)'");
    }

    #[test]
    fn setup_lists_models_and_limits_as_comments() {
        let me: Me = serde_json::from_value(serde_json::json!({
            "accessKey": "dev", "modelProvider": "local-openai", "provider": "openai",
            "models": ["gpt-4o-mini"], "allowedCIDRs": [], "maxTokensPerDay": 1000,
            "tokensToday": 10, "tokensLeftToday": 990
        }))
        .unwrap();
        let text = setup_comments(&me);
        assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
        assert!(text.contains("#   gpt-4o-mini\n"), "{text}");
        assert!(text.contains("daily token limit: 1000"), "{text}");
        assert!(text.contains("tokens left today: 990"), "{text}");
    }
}
