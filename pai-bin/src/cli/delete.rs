//! `pai delete KIND NAME…`: remove resources by name.

use clap::Args;

use super::get::path_segment;
use super::{label, parse_kind, CliError};
use crate::api::Deleted;
use crate::client::{AdminClient, ClientOpts};

/// Options of `pai delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The kind: model-provider, model, access-key, secret, agent, guard-binding.
    kind: String,
    /// The names to delete.
    #[arg(required = true)]
    names: Vec<String>,
    #[command(flatten)]
    client: ClientOpts,
}

/// Run `pai delete`: every name is tried; the exit is non-zero if any failed.
pub async fn run(args: DeleteArgs) -> Result<(), CliError> {
    let kind = parse_kind(&args.kind)?;
    let client = AdminClient::new(&args.client)?;
    let mut failures = 0;
    for name in &args.names {
        let path = format!("/{}/{}", kind.plural(), path_segment(name));
        match client.delete::<Deleted>(&path).await {
            Ok(d) => println!("{} deleted", label(d.kind, &d.name)),
            Err(e @ crate::client::ClientError::Api { .. }) if args.names.len() > 1 => {
                eprintln!("error: {e}");
                failures += 1;
            }
            // One name, a server that is down, or a refused token: stop here.
            Err(e) => return Err(e.into()),
        }
    }
    if failures > 0 {
        return Err(CliError::msg(format!(
            "{failures} of {} {} not deleted",
            args.names.len(),
            kind.plural()
        )));
    }
    Ok(())
}
