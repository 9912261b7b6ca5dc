//! Mount the pai gateway inside an existing axum application.
//!
//! The app keeps its own routes (`/health` here); everything under `/llm` goes to pai, so the
//! OpenAI SDK takes base URL `http://host/llm/v1` and the Anthropic SDK `http://host/llm`. The
//! configuration lives in an in-memory store that this program fills itself: one OpenAI
//! provider whose key comes from `OPENAI_API_KEY` (and whose endpoint from `OPENAI_BASE_URL`,
//! if set), and one access key, printed at start.
//!
//! The app's own users need no pai key: under `/assistant` the app authenticates them itself
//! (here, by a session token it issued) and attaches the pai Agent each one calls as, with an
//! [`AgentIdentity`] request extension; pai then skips its key check, and the call runs, is
//! budgeted and is recorded as that Agent.
//!
//! ```sh
//! OPENAI_API_KEY=sk-... cargo run -p pai-examples --example axum_mount
//! curl http://127.0.0.1:3000/llm/v1/chat/completions -H "authorization: Bearer <printed key>" \
//!   -H content-type:application/json -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
//! curl http://127.0.0.1:3000/assistant/v1/chat/completions -H "authorization: Bearer demo-session" \
//!   -H content-type:application/json -d '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
//! ```
//!
//! `tests/tests/axum_mount.rs` runs [`app`] with both SDK dialects, Claude Code's probe, a key
//! restricted by `allowedCIDRs`, and the app's own users calling as an Agent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pai_core::resource::{load, Resource};
use pai_core::{access_key, AccessKeyHasher, Store};
use pai_store::MemoryStore;
use pai_tower::{AgentIdentity, Gateway, PeerAddrLayer};

/// Where the app mounts the gateway. Also given to [`Gateway::builder`]'s `prefix`, so that
/// the gateway's messages (a 404's list of endpoints) name the paths clients use.
pub const MOUNT: &str = "/llm";

/// Where the app's own users reach the gateway, authenticated by the app.
pub const AGENT_MOUNT: &str = "/assistant";

/// The app's own sign-ins: each session token it issued, and the pai Agent that user calls
/// as. A real app looks the caller up in its own sessions or SSO; a map shows the seam.
pub type Sessions = Arc<HashMap<String, String>>;

/// The app: its own routes, the gateway nested under [`MOUNT`] for pai access keys, and under
/// [`AGENT_MOUNT`] for the app's own users. `nest_service` strips the mount point, and the
/// gateway serves its routes at the root of what it sees.
///
/// pai reads the client address from its `PeerAddr` extension, which auth needs for keys with
/// `allowedCIDRs` (without it, they are refused); axum keeps it in `ConnectInfo`, which
/// [`PeerAddrLayer`] copies over. Serve with `into_make_service_with_connect_info`.
pub fn app(gateway: Gateway, sessions: Sessions) -> Router {
    let as_agent = Router::new()
        .nest_service(AGENT_MOUNT, gateway.clone())
        .layer(middleware::from_fn_with_state(sessions, sign_in));
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .nest_service(MOUNT, gateway)
        .merge(as_agent)
        .layer(PeerAddrLayer::from_extension(
            |ConnectInfo(addr): &ConnectInfo<SocketAddr>| *addr,
        ))
}

/// The app's authentication in front of [`AGENT_MOUNT`]: a caller with a session the app
/// knows goes on as that session's Agent, and pai skips its key check (the session token in
/// `Authorization` is not a pai key, and pai never sends it upstream). Anyone else is refused
/// here, before pai sees the request. A client cannot set a request extension: only code in
/// the server can, so [`AgentIdentity`] is as trustworthy as this function.
async fn sign_in(State(sessions): State<Sessions>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(agent) = token.and_then(|t| sessions.get(t)).cloned() else {
        return (StatusCode::UNAUTHORIZED, "sign in to the app first").into_response();
    };
    req.extensions_mut().insert(AgentIdentity(agent));
    next.run(req).await
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
---
apiVersion: pai.io/v1
kind: Agent
metadata: {{name: assistant}}
spec:
  models: [openai/gpt-4o-mini]
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

    // The app's users sign in with the app; this one calls as the Agent "assistant".
    let sessions = Arc::new(HashMap::from([(
        "demo-session".to_owned(),
        "assistant".to_owned(),
    )]));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let addr = listener.local_addr()?;
    println!("gateway mounted at http://{addr}{MOUNT}/v1 — access key: {raw}");
    println!("the app's users at http://{addr}{AGENT_MOUNT}/v1 — session: demo-session");
    axum::serve(
        listener,
        app(gateway, sessions).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
