//! `pai`, the reference binary of the pai LLM gateway: the server and the command line that
//! drives it.
//!
//! `pai serve` assembles the gateway from the same public API a library user has — a
//! `pai_store::SqliteStore` in the data directory, the `pai_tower::Gateway` service (whose
//! adapters live in `pai_providers`), and the vocabulary of `pai_core` — and serves it with
//! hyper on one listener ([`serve`]), next to an axum admin API on another ([`admin`]). The
//! other commands (`apply`, `get`, `delete`, `add`, `create`, `access-key`, `usage`) are
//! clients of that admin API ([`cli`], [`client`]); `pai gateway env` prints the base URLs the
//! SDKs need.
//!
//! ```text
//! pai serve -f providers.yaml                 # gateway on :8080, admin API on :8081
//! pai create model-provider openai --provider openai --api-key sk-… --external-access
//! pai access-key create --name alice --model-provider openai
//! pai get model-providers
//! ```
//!
//! Secrets: the master secret, the admin token, provider keys and raw access keys are never
//! logged; a raw access key is shown once, when it is minted.

/// See the comment on `mimalloc` in Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod api;
mod cli;
mod client;
mod secret_file;
mod serve;
mod table;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    cli::run(cli::parse()).await
}
