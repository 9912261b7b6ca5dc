//! Turns an access key into a [`Principal`], or refuses in the caller's dialect.
//!
//! Every request needs a valid key except Claude Code's public probe (`HEAD /api/hello`, or
//! `/ext/api/hello`, under the gateway's prefix: [`AuthLayer::prefix`]), whatever the path:
//! wrapped around an application's own handler, the layer protects it too.
//!
//! The key comes raw (`pak_…`) or wrapped (`sk-ant-api03-pak-…-AA`), in `x-api-key` or
//! `Authorization: Bearer`. It is looked up by its keyed hash in the in-memory snapshot, so a
//! request costs one HMAC and one hash-map probe and never waits on the store. Then the key's
//! bindings are checked: its ModelProvider must exist and allow external access, and the client
//! address must lie in the key's `allowedCIDRs`. The client address is the peer address, or,
//! only when the peer is a trusted proxy, the right-most address in `X-Forwarded-For` that is not
//! itself a trusted proxy ([`forwarded`]): a client cannot forge its way past a CIDR restriction,
//! and when the address cannot be told, a key with `allowedCIDRs` is refused.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use pai_core::net::Cidr;
use pai_core::resource::{AccessKey, Agent};
use pai_core::{access_key, AccessKeyHasher, Clock, Error, SystemClock};
use tower::{Layer, Service};

mod forwarded;

use crate::error::CallError;
use crate::route::Route;
use crate::snapshot::{ProviderEntry, SharedSnapshot};
use forwarded::client_ip;

/// The peer address of the connection a request came on. The server inserts it; without it,
/// keys restricted by `allowedCIDRs` are refused (fail closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Set by an embedding application that authenticated the caller itself: the request runs as
/// this Agent and pai's key check is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentIdentity(pub String);

/// What a principal may call through.
#[derive(Clone, Debug)]
pub enum Binding {
    /// An external access key's ModelProvider.
    Provider(Arc<ProviderEntry>),
    /// An Agent: its models, model bindings, cost cap.
    Agent(Arc<Agent>),
}

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The access key presented, if the caller used one.
    pub access_key: Option<Arc<AccessKey>>,
    /// What the caller is bound to.
    pub binding: Binding,
    /// The client's address as the gateway judged it.
    pub client_ip: Option<IpAddr>,
}

impl Principal {
    /// The workload name records and metrics use: `ext:<access-key-name>` for external keys,
    /// the agent's name for agents.
    pub fn workload(&self) -> String {
        match (&self.binding, &self.access_key) {
            (Binding::Agent(a), _) => a.metadata.name.clone(),
            (Binding::Provider(_), Some(k)) => format!("ext:{}", k.metadata.name),
            (Binding::Provider(p), None) => format!("ext:{}", p.resource.metadata.name),
        }
    }

    /// The access key's name, if one was presented.
    pub fn key_name(&self) -> Option<&str> {
        self.access_key.as_deref().map(|k| k.metadata.name.as_str())
    }
}

/// Authenticates access keys. See the module docs.
#[derive(Clone)]
pub struct AuthLayer {
    snapshot: SharedSnapshot,
    hasher: AccessKeyHasher,
    trusted_proxies: Arc<Vec<Cidr>>,
    prefix: Arc<str>,
    /// What a rotated-out key's grace is measured against.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer")
            .field("snapshot", &self.snapshot)
            .field("hasher", &self.hasher)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// Check keys against `snapshot`, hashing them with `hasher`.
    pub fn new(snapshot: SharedSnapshot, hasher: AccessKeyHasher) -> AuthLayer {
        AuthLayer {
            snapshot,
            hasher,
            trusted_proxies: Arc::new(Vec::new()),
            prefix: Arc::from(""),
            clock: Arc::new(SystemClock),
        }
    }

    /// Judge whether a key has expired (a rotated-out key past its grace) by `clock`.
    /// Default: the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> AuthLayer {
        self.clock = clock;
        self
    }

    /// The path prefix clients reach the gateway under (see [`crate::GatewayBuilder::prefix`]);
    /// it decides where the public probe sits.
    pub fn prefix(mut self, prefix: &str) -> AuthLayer {
        self.prefix = Arc::from(prefix);
        self
    }

    /// Peers whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(mut self, proxies: Vec<Cidr>) -> AuthLayer {
        self.trusted_proxies = Arc::new(proxies);
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            // One Arc for the whole configuration: a service is cloned per call.
            layer: Arc::new(self.clone()),
        }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    layer: Arc<AuthLayer>,
}

impl<S, B, RB> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<CallError>,
    S::Future: Send + 'static,
{
    type Response = Response<RB>;
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, CallError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let route = Route::under(&self.layer.prefix, req.uri().path());
        // Fail closed: only Claude Code's connectivity probe is public. Any other path — one
        // the gateway does not serve, or an embedder's own handler this layer wraps — needs a
        // valid key.
        let found = if route == Some(Route::Hello) {
            Ok(None)
        } else if let Some(AgentIdentity(name)) = req.extensions().get::<AgentIdentity>() {
            self.layer.agent_principal(name, &req).map(Some)
        } else {
            self.layer.authenticate(&req).map(Some)
        };
        match found {
            Ok(principal) => {
                if let Some(principal) = principal {
                    req.extensions_mut().insert(principal);
                }
                let fut = self.inner.call(req);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }
            Err(error) => {
                tracing::info!(code = error.code(), "request refused by auth");
                Box::pin(async move { Err(CallError::refused(error)) })
            }
        }
    }
}

impl AuthLayer {
    /// The principal of an application that authenticated its caller itself.
    fn agent_principal<B>(&self, name: &str, req: &Request<B>) -> Result<Principal, Error> {
        let snapshot = self.snapshot.current();
        let agent = snapshot
            .agent(name)
            .ok_or_else(|| Error::PermissionDenied(format!("Agent {name:?} does not exist")))?;
        Ok(Principal {
            access_key: None,
            binding: Binding::Agent(agent.clone()),
            client_ip: req.extensions().get::<PeerAddr>().map(|p| p.0.ip()),
        })
    }

    fn authenticate<B>(&self, req: &Request<B>) -> Result<Principal, Error> {
        let presented = credential(req.headers()).ok_or(Error::MissingKey)?;
        let raw = access_key::unwrap(presented).ok_or(Error::InvalidKey)?;
        let hash = self.hasher.hash(&raw);
        let snapshot = self.snapshot.current();
        let entry = snapshot.keys.get(&hash.0).ok_or(Error::InvalidKey)?;
        if let Some(until) = entry.expires_at {
            if self.clock.unix_secs() >= until {
                return Err(Error::InvalidKey);
            }
        }
        let key = entry.key.clone();
        let name = &key.metadata.name;
        let binding = match (&key.spec.model_provider, &key.spec.agent) {
            (_, Some(agent)) => {
                Binding::Agent(snapshot.agent(agent).cloned().ok_or_else(|| {
                    Error::PermissionDenied(format!(
                        "AccessKey {name:?} is bound to Agent {agent:?}, which does not exist"
                    ))
                })?)
            }
            (Some(provider_name), None) => {
                let provider = snapshot.provider(provider_name).cloned().ok_or_else(|| {
                    Error::PermissionDenied(format!(
                        "AccessKey {name:?} is bound to ModelProvider {provider_name:?}, which does not exist"
                    ))
                })?;
                if !provider.resource.spec.external_access.enabled {
                    return Err(Error::PermissionDenied(format!(
                        "ModelProvider {provider_name:?} does not allow access keys (spec.externalAccess.enabled is false)"
                    )));
                }
                Binding::Provider(provider)
            }
            (None, None) => {
                return Err(Error::PermissionDenied(format!(
                    "AccessKey {name:?} is bound to nothing"
                )))
            }
        };
        let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
        let client_ip = peer.and_then(|peer| client_ip(peer, req.headers(), &self.trusted_proxies));
        let cidrs = &key.spec.restrictions.allowed_cidrs;
        if !cidrs.is_empty() {
            let allowed = client_ip.is_some_and(|ip| {
                cidrs
                    .iter()
                    .filter_map(|c| c.parse::<Cidr>().ok())
                    .any(|c| c.contains(ip))
            });
            if !allowed {
                let shown = client_ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
                return Err(Error::PermissionDenied(format!(
                    "client address {shown} is not in the allowedCIDRs of AccessKey {name:?}"
                )));
            }
        }
        Ok(Principal {
            access_key: Some(key),
            binding,
            client_ip,
        })
    }
}

/// The presented credential: `x-api-key`, else `Authorization: Bearer`.
fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_from_either_header() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer pak_abc".parse().unwrap());
        assert_eq!(credential(&h), Some("pak_abc"));
        h.insert("x-api-key", "sk-ant-api03-pak-abc-AA".parse().unwrap());
        assert_eq!(credential(&h), Some("sk-ant-api03-pak-abc-AA"));
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic xyz".parse().unwrap());
        assert_eq!(credential(&h), None);
    }
}
