//! `pai-mock`: the mock LLM upstream as a process, for tests outside Rust.
//!
//! ```text
//! pai-mock [--listen 127.0.0.1:0] [--openai-key K] [--anthropic-key K] [--gemini-key K]
//!          [--azure-key K] [--guard-key K] [--require-anthropic-version]
//! ```
//!
//! Prints `listening on http://ADDR` once the port is bound, then serves until killed. See the
//! `pai_mock` crate docs for the routes and directives.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use pai_mock::{MockConfig, MockUpstream};

const USAGE: &str = "usage: pai-mock [--listen 127.0.0.1:0] [--openai-key K] [--anthropic-key K] \
                     [--gemini-key K] [--azure-key K] [--guard-key K] [--require-anthropic-version]";

#[tokio::main]
async fn main() -> ExitCode {
    let (listen, config) = match parse(std::env::args().skip(1)) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("pai-mock: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mock = match MockUpstream::start_on(listen, config).await {
        Ok(mock) => mock,
        Err(error) => {
            eprintln!("pai-mock: cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "listening on {}", mock.url())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    // Serve until killed; Ctrl-C ends it cleanly too.
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}

/// The listen address and config from the arguments, or `None` for `--help`.
fn parse(
    mut args: impl Iterator<Item = String>,
) -> Result<Option<(SocketAddr, MockConfig)>, String> {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = MockConfig::default();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--listen" => {
                let addr = value()?;
                listen = addr
                    .parse()
                    .map_err(|_| format!("--listen: not an address: {addr}"))?;
            }
            "--openai-key" => config.openai_key = Some(value()?),
            "--anthropic-key" => config.anthropic_key = Some(value()?),
            "--gemini-key" => config.gemini_key = Some(value()?),
            "--azure-key" => config.azure_key = Some(value()?),
            "--guard-key" => config.guard_key = Some(value()?),
            "--require-anthropic-version" => config.require_anthropic_version = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(Some((listen, config)))
}
