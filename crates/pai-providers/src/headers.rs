//! Which headers cross the gateway, in each direction.
//!
//! The gateway is a new HTTP hop, not a tunnel: hop-by-hop headers (`Connection` and the
//! headers it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`)
//! stop here in both directions, and so does anything that describes a body the gateway may
//! rewrite (`Content-Length`).
//!
//! Towards the upstream, the client's credentials never leave: the gateway authenticates the
//! client with them and then calls the upstream with the provider's own key. The client's
//! `Host`, `User-Agent` and `Accept-Encoding` are replaced by the gateway's own, and headers that
//! tie a request to an account (`OpenAI-Organization`, `OpenAI-Project`) or reveal the client's
//! network (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`) are withheld. Protocol headers such as
//! `anthropic-version`, `anthropic-beta`, `x-request-id` and `traceparent` pass.
//!
//! Towards the client, cookies and headers that describe the upstream's account or host
//! (`OpenAI-Organization`, `Anthropic-Organization-Id`, `Alt-Svc`, `Strict-Transport-Security`,
//! CORS, `WWW-Authenticate`) are withheld; rate-limit headers, request ids, `retry-after` and
//! timing headers pass, since SDKs read them.
//!
//! # Example
//!
//! ```
//! use http::HeaderMap;
//! use pai_providers::headers::forwardable_request_headers;
//!
//! let mut client = HeaderMap::new();
//! client.insert("x-api-key", "pak_secret".parse().unwrap());
//! client.insert("anthropic-version", "2023-06-01".parse().unwrap());
//! let forwarded = forwardable_request_headers(&client);
//! assert!(forwarded.get("x-api-key").is_none());
//! assert_eq!(forwarded["anthropic-version"], "2023-06-01");
//! ```

use http::header::{HeaderMap, HeaderName, CONNECTION};

/// Hop-by-hop headers (RFC 9110 §7.6.1), besides `Proxy-*`.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Client headers that never go upstream, besides hop-by-hop ones and `x-forwarded-*`.
const NOT_FORWARDED: &[&str] = &[
    // Set by the gateway for the new request and its (possibly rewritten) body.
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "accept-encoding",
    "user-agent",
    "expect",
    // The client's credentials, in every form a provider accepts.
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
    // Account selectors that belong with a key the client does not hold upstream.
    "openai-organization",
    "openai-project",
    // The client's network identity stays with the gateway.
    "forwarded",
    "x-real-ip",
];

/// Upstream headers that never reach the client, besides hop-by-hop ones and `access-control-*`.
const NOT_RETURNED: &[&str] = &[
    // The body may be rewritten (usage chunk dropped, dialect translated).
    "content-length",
    "set-cookie",
    "set-cookie2",
    // They describe the upstream's host, not the gateway's.
    "alt-svc",
    "strict-transport-security",
    "www-authenticate",
    // They name the account behind the provider key.
    "openai-organization",
    "openai-project",
    "anthropic-organization-id",
];

/// The client headers that may be passed to the upstream. See the module docs.
pub fn forwardable_request_headers(client: &HeaderMap) -> HeaderMap {
    let named = connection_tokens(client);
    let mut out = HeaderMap::with_capacity(client.len());
    for (name, value) in client {
        if is_forwardable_request_header(name) && !named.iter().any(|n| n == name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The upstream response headers that may be passed to the client. See the module docs.
///
/// `Content-Encoding` passes: the gateway asks upstream for `identity`, and should an upstream
/// compress anyway, the client needs the header to read the bytes it is given.
pub fn client_response_headers(upstream: &HeaderMap) -> HeaderMap {
    let named = connection_tokens(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        let n = name.as_str();
        let keep = !is_hop_by_hop(n)
            && !NOT_RETURNED.contains(&n)
            && !n.starts_with("access-control-")
            && !named.iter().any(|t| t == n);
        if keep {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Whether a client header, by its name alone, may be passed to the upstream.
///
/// Headers named by the client's `Connection` header are hop-by-hop too; only
/// [`forwardable_request_headers`], which sees the whole map, can drop those.
pub fn is_forwardable_request_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    !is_hop_by_hop(n) && !NOT_FORWARDED.contains(&n) && !n.starts_with("x-forwarded-")
}

/// `HeaderName`s are lowercase, so plain comparisons suffice.
fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.contains(&name) || name.starts_with("proxy-")
}

/// The header names listed in `Connection`, lowercased.
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_stay_behind() {
        let client = map(&[
            ("authorization", "Bearer pak_abc"),
            ("x-api-key", "sk-ant-api03-pak-abc-AA"),
            ("api-key", "k"),
            ("x-goog-api-key", "k"),
            ("cookie", "session=1"),
            ("proxy-authorization", "Basic x"),
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("host", "gateway.example"),
            ("content-length", "10"),
            ("accept-encoding", "gzip, br, zstd"),
            ("user-agent", "Anthropic/Python 0.40.0"),
            ("openai-organization", "org-client"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        assert!(forwardable_request_headers(&client).is_empty());
    }

    #[test]
    fn protocol_and_tracing_headers_pass() {
        let client = map(&[
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "prompt-caching-2024-07-31"),
            ("anthropic-beta", "token-efficient-tools-2025-02-19"),
            ("x-request-id", "abc"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("x-stainless-retry-count", "0"),
        ]);
        let out = forwardable_request_headers(&client);
        assert_eq!(out.len(), 6);
        assert_eq!(out.get_all("anthropic-beta").iter().count(), 2);
        assert_eq!(out["traceparent"], client["traceparent"]);
    }

    #[test]
    fn the_client_gets_rate_limits_and_ids_but_not_the_upstream_account() {
        let upstream = map(&[
            ("content-type", "text/event-stream; charset=utf-8"),
            ("content-length", "123"),
            ("transfer-encoding", "chunked"),
            ("connection", "close"),
            ("set-cookie", "__cf_bm=x"),
            ("openai-organization", "org-gateway"),
            ("anthropic-organization-id", "uuid"),
            ("alt-svc", "h3=\":443\""),
            ("access-control-allow-origin", "*"),
            ("request-id", "req_1"),
            ("x-request-id", "req_2"),
            ("anthropic-ratelimit-tokens-remaining", "1000"),
            ("x-ratelimit-remaining-requests", "99"),
            ("retry-after", "3"),
            ("openai-processing-ms", "200"),
        ]);
        let out = client_response_headers(&upstream);
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            vec![
                "anthropic-ratelimit-tokens-remaining",
                "content-type",
                "openai-processing-ms",
                "request-id",
                "retry-after",
                "x-ratelimit-remaining-requests",
                "x-request-id",
            ]
        );
    }
}
