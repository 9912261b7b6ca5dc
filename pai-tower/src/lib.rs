//! Tower layers and the [`Gateway`] builder that assemble pai into one HTTP service.
//!
//! A library user builds a [`Gateway`] from a [`pai_core::Store`] (see `pai-store`) and,
//! optionally, a [`pai_core::Transport`] (the default is `pai_providers::HttpTransport`), and
//! mounts it in any hyper or axum server: it is a `tower::Service<http::Request<B>>` whose error
//! type is `Infallible`, because every refusal is a response in the caller's dialect.
//!
//! The pieces are public so they can be recombined: one tower layer per concern —
//! [`RescueLayer`], [`AuthLayer`], [`CallLogLayer`], [`RateLimitLayer`], [`ParseLayer`],
//! [`GuardLayer`], [`FallbackLayer`], [`BudgetLayer`], [`ProviderLimitLayer`], [`MeterLayer`],
//! [`RetryPolicy`] and the [`Upstream`] leaf, and [`TraceLayer`] for OpenTelemetry traces — each usable alone around an application's own
//! service. They talk through typed request extensions ([`Principal`], `Arc<Call>`,
//! [`Candidate`], [`Deadline`], [`CallLog`]) and a typed [`CallError`] that says what the next
//! layer out may do ([`Next`]). [`Gateway`] stacks them; its module documents the order, and
//! why.
//!
//! ```
//! use std::sync::Arc;
//! use http_body_util::Full;
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = Arc::new(pai_store::MemoryStore::new());
//! let hasher = pai_core::AccessKeyHasher::new(b"32 bytes of operator-held secret");
//! let gateway = pai_tower::Gateway::builder()
//!     .store(store)
//!     .key_hasher(hasher)
//!     .build()
//!     .await
//!     .unwrap();
//!
//! // No key: refused in the OpenAI dialect, and still named and timed.
//! let req = http::Request::post("/ext/v1/chat/completions")
//!     .body(Full::new(bytes::Bytes::from_static(b"{}")))
//!     .unwrap();
//! let res = gateway.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 401);
//! assert!(res.headers().contains_key("x-pai-call-id"));
//! # });
//! ```
//!
//! In axum: `Router::new().nest_service("/llm", gateway)` serves `/llm/v1/chat/completions`
//! and `/llm/v1/messages` (see [`GatewayBuilder::prefix`] for where routes sit), and
//! [`PeerAddrLayer`] hands axum's `ConnectInfo` to auth for `allowedCIDRs`; `examples/axum_mount.rs`
//! shows both.

mod auth;
mod body;
pub mod budget;
mod call_id;
mod call_log;
mod endpoints;
mod error;
mod fallback;
mod gateway;
mod guard;
mod headers;
mod meter;
pub mod metrics;
mod parse;
mod peer;
mod policy;
mod price_watch;
mod provider_limit;
mod rate_limit;
pub mod reliability;
mod rescue;
mod retry;
mod route;
mod service;
mod snapshot;
#[cfg(test)]
mod testing;
pub mod trace;
mod upstream;

pub use auth::{AgentIdentity, Auth, AuthLayer, Binding, PeerAddr, Principal};
pub use body::ResponseBody;
pub use budget::{Budget, BudgetLayer, OutputBound};
pub use call_id::{CallId, CallIdLayer, CallIdService};
pub use call_log::{CallLog, CallLogLayer, CallLogService, LogEntry, LoggedBody};
pub use endpoints::{Endpoints, EndpointsLayer};
pub use error::{CallError, Next};
pub use fallback::{Candidate, Deadline, Fallback, FallbackLayer};
pub use gateway::{BuildError, Gateway, GatewayBuilder};
pub use guard::{
    GuardKind, GuardKinds, GuardLayer, GuardService, HttpGuardKind, DEFAULT_GUARD_TIMEOUT,
};
pub use meter::{CallSink, MeterBody, RecordSlot, DEFAULT_RECORD_BACKLOG, RECORD_BATCH};
pub use meter::{Meter, MeterLayer};
pub use parse::{Parse, ParseLayer};
pub use peer::{PeerAddrLayer, SetPeerAddr};
pub use policy::check_provider_model;
pub use price_watch::PriceFileWatcher;
pub use provider_limit::{ProviderLimit, ProviderLimitLayer};
pub use rate_limit::{RateLimit, RateLimitLayer};
pub use reliability::Reliability;
pub use rescue::{Journey, Rescue, RescueLayer};
pub use retry::RetryPolicy;
pub use route::Route;
pub use snapshot::{BindingEntry, ProviderEndpoints, ProviderEntry, SharedSnapshot, Snapshot};
pub use trace::{CallTrace, TraceLayer, Tracer};
pub use upstream::{Answer, Upstream};
