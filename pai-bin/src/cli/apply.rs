//! `pai apply -f FILE…`: create or update resources from YAML or JSON.
//!
//! Every file is read and checked here first, so a mistake in the third file is reported with
//! its file name before anything is sent; the server then checks again and applies each file.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;

use super::{print_applied, CliError};
use crate::api::ApplyResponse;
use crate::client::{AdminClient, ClientOpts};

/// Options of `pai apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A YAML or JSON file of one or more resources, or `-` for stdin; repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    client: ClientOpts,
}

/// Run `pai apply`.
pub async fn run(args: ApplyArgs) -> Result<(), CliError> {
    let mut texts = Vec::with_capacity(args.files.len());
    let mut problems = Vec::new();
    for file in &args.files {
        let (name, text) = match read(file) {
            Ok(read) => read,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        match pai_core::resource::load(&text) {
            Ok(loaded) if loaded.resources.is_empty() => {
                problems.push(format!("{name}: no resources found"));
            }
            Ok(_) => texts.push((name, text)),
            Err(e) => problems.extend(e.problems.iter().map(|p| format!("{name}: {p}"))),
        }
    }
    if !problems.is_empty() {
        return Err(CliError::Invalid(problems));
    }
    let client = AdminClient::new(&args.client)?;
    for (name, text) in texts {
        let response: ApplyResponse = client
            .post_yaml("/apply", text)
            .await
            .map_err(|e| with_file(&name, e))?;
        print_applied(&response);
    }
    Ok(())
}

/// Prefix the server's problems with the file they came from.
fn with_file(name: &str, e: crate::client::ClientError) -> CliError {
    match e {
        crate::client::ClientError::Api {
            status,
            message,
            problems,
        } => crate::client::ClientError::Api {
            status,
            message: format!("{name}: {message}"),
            problems: problems.iter().map(|p| format!("{name}: {p}")).collect(),
        }
        .into(),
        other => other.into(),
    }
}

/// The file's name as shown in messages, and its text; or a problem naming it.
fn read(file: &PathBuf) -> Result<(String, String), String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("<stdin>: {e}"))?;
        return Ok(("<stdin>".to_owned(), text));
    }
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
    Ok((name, text))
}
