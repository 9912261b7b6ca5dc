//! Mount the pai gateway inside an existing axum application.
//!
//! The app keeps its own routes (`/health` here); everything under `/llm` goes to pai, so the
//! OpenAI SDK takes base URL `http://host/llm/v1` and the Anthropic SDK `http://host/llm`. The
//! configuration lives in an in-memory store that this program fills itself: one OpenAI
//! provider whose key comes from `OPENAI_API_KEY` (and whose endpoint from `OPENAI_BASE_URL`,
//! if set), and one access key, printed at start.
//!
//! ```sh
//! OPENAI_API_KEY=sk-... cargo run -p pai-examples --example axum_mount
//! curl http://127.0.0.1:3000/llm/v1/chat/completions -H "authorization: Bearer <printed key>" \
//!   -H content-type:application/json -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
//! ```
//!
//! `tests/tests/axum_mount.rs` runs [`app`] with both SDK dialects, Claude Code's probe and a
//! key restricted by `allowedCIDRs`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use pai_core::resource::{load, Resource};
use pai_core::{access_key, AccessKeyHasher, Store};
use pai_store::MemoryStore;
use pai_tower::{Gateway, PeerAddrLayer};

/// Where the app mounts the gateway. Also given to [`Gateway::builder`]'s `prefix`, so that
/// the gateway's messages (a 404's list of endpoints) name the paths clients use.
pub const MOUNT: &str = "/llm";

/// The app: its own routes, and the gateway nested under [`MOUNT`]. `nest_service` strips
/// the mount point, and the gateway serves its routes at the root of what it sees.
///
/// pai reads the client address from its `PeerAddr` extension, which auth needs for keys with
/// `allowedCIDRs` (without it, they are refused); axum keeps it in `ConnectInfo`, which
/// [`PeerAddrLayer`] copies over. Serve with `into_make_service_with_connect_info`.
pub fn app(gateway: Gateway) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .nest_service(MOUNT, gateway)
        .layer(PeerAddrLayer::from_extension(
            |ConnectInfo(addr): &ConnectInfo<SocketAddr>| *addr,
        ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider_key = std::env::var("OPENAI_API_KEY").unwrap_or_default();
    let endpoint =
        std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "https://api.openai.com/v1".into());

    let store = Arc::new(MemoryStore::new());
    let yaml = format!(
        r#"
apiVersion: pai.io/v1
kind: Secret
metadata: {{name: openai-key}}
data: {{api-key: "{provider_key}"}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: openai}}
spec:
  provider: openai
  endpoint: {endpoint}
  apiKeySecretRef: {{name: openai-key}}
  allowedModels: [gpt-4o-mini, gpt-4o]
  externalAccess: {{enabled: true}}
"#
    );
    for resource in load(&yaml)?.resources {
        store.apply(&resource).await?;
    }

    // In production the hashing secret is operator-held and stable across restarts.
    let hasher = AccessKeyHasher::new(b"example secret, 32 bytes or more");
    let raw = access_key::generate().map_err(|_| "no randomness")?;
    let mut key: pai_core::resource::AccessKey = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "example"},
        "spec": {"modelProvider": "openai"},
    }))?;
    key.status.key_hash = Some(hasher.hash(&raw).0);
    store.apply(&Resource::AccessKey(key)).await?;

    let gateway = Gateway::builder()
        .prefix(MOUNT)
        .store(store)
        .key_hasher(hasher)
        .build()
        .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!(
        "gateway mounted at http://{}{MOUNT}/v1 — access key: {raw}",
        listener.local_addr()?
    );
    axum::serve(
        listener,
        app(gateway).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
