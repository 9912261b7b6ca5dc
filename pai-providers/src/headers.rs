//! Which headers cross the gateway, in each direction.
//!
//! The gateway is a new HTTP hop, not a tunnel: hop-by-hop headers (`Connection` and the
//! headers it names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`)
//! stop here in both directions, and so does anything that describes a body the gateway may
//! rewrite (`Content-Length`).
//!
//! Towards the upstream only an allowlist passes: the protocol headers the SDKs and Claude Code
//! send (`anthropic-version`, `anthropic-beta`, `openai-beta`, `x-stainless-*`), tracing
//! (`traceparent`, `tracestate`, `x-request-id`), and nothing else — an API-management key, a
//! client's own secret header or a cookie stays here. Even an allowlisted header is withheld
//! when its value holds the access key the client presented. The client's `User-Agent` goes on
//! with the gateway's appended (`claude-cli/2.1 pai/0.1.0`); its `Host` and `Accept-Encoding`
//! are replaced by the gateway's own. Of the query string only `beta`
//! (Claude Code's `?beta=true`) passes; adapters that need a query parameter (Azure's
//! `api-version`) set it themselves.
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
//! client.insert("x-team-secret", "s3cret".parse().unwrap());
//! let forwarded = forwardable_request_headers(&client);
//! assert!(forwarded.get("x-api-key").is_none());
//! assert!(forwarded.get("x-team-secret").is_none());
//! assert_eq!(forwarded["anthropic-version"], "2023-06-01");
//! ```

use http::header::{HeaderMap, HeaderName, AUTHORIZATION, CONNECTION};
use pai_core::access_key;

/// Hop-by-hop headers (RFC 9110 §7.6.1), besides `Proxy-*`.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Client headers that go upstream, besides those starting with one of [`FORWARDED_PREFIXES`].
const FORWARDED: &[&str] = &[
    "anthropic-version",
    "anthropic-beta",
    "openai-beta",
    "traceparent",
    "tracestate",
    "x-request-id",
    // Sent on as `<client's> pai/<version>` (see `request::base_headers`): providers see both.
    "user-agent",
];

/// Prefixes of client headers that go upstream: the SDKs' platform and retry headers.
const FORWARDED_PREFIXES: &[&str] = &["x-stainless-"];

/// Query parameters that go upstream.
const FORWARDED_QUERY: &[&str] = &["beta"];

/// Headers a client presents its access key in.
const KEY_HEADERS: &[&str] = &["x-api-key", "authorization", "api-key", "x-goog-api-key"];

/// Shorter strings are not searched for: they would match by chance.
const MIN_SECRET_LEN: usize = 8;

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
    let secrets = presented_secrets(client);
    let mut out = HeaderMap::with_capacity(client.len());
    for (name, value) in client {
        // The allowlist first: most headers (the key's own among them) end there, unsearched.
        if !is_forwardable_request_header(name) || named.iter().any(|n| n == name.as_str()) {
            continue;
        }
        let holds_key = secrets
            .iter()
            .any(|s| memchr::memmem::find(value.as_bytes(), s.as_bytes()).is_some());
        if !holds_key {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The parameters of a client's query string that may be passed to the upstream (`beta`), or
/// `None` if none may. A parameter holding the access key presented in `client` is withheld.
pub fn forwardable_query(query: Option<&str>, client: &HeaderMap) -> Option<String> {
    let known = known_query_parameters(query?)?;
    let secrets = presented_secrets(client);
    let kept: Vec<&str> = known
        .split('&')
        .filter(|pair| !secrets.iter().any(|s| pair.contains(s.as_str())))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// The access key the client presented, as it was sent and, for a pai key, its secret part
/// (which the raw `pak_…` and the wrapped `sk-ant-api03-pak-…-AA` forms share).
fn presented_secrets(client: &HeaderMap) -> Vec<String> {
    let mut secrets = Vec::new();
    for name in KEY_HEADERS {
        for value in client.get_all(*name).iter().filter_map(|v| v.to_str().ok()) {
            let value = value.trim();
            let value = if name == &AUTHORIZATION.as_str() {
                value
                    .split_once(' ')
                    .map_or(value, |(_, token)| token.trim())
            } else {
                value
            };
            if let Some(raw) = access_key::unwrap(value) {
                let body = raw.trim_start_matches("pak_").to_owned();
                secrets.push(body);
            }
            secrets.push(value.to_owned());
        }
    }
    secrets.retain(|s| s.len() >= MIN_SECRET_LEN);
    secrets
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

/// Whether a client header, by its name alone, may be passed to the upstream: whether it is on
/// the allowlist (see the module docs).
///
/// A header whose value holds the client's key is withheld too; only
/// [`forwardable_request_headers`], which sees the whole map, can tell.
pub fn is_forwardable_request_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    FORWARDED.contains(&n) || FORWARDED_PREFIXES.iter().any(|p| n.starts_with(p))
}

/// The parameters of `query` that may go upstream by their name alone (`beta`), or `None`.
pub fn known_query_parameters(query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| FORWARDED_QUERY.contains(&pair.split_once('=').map_or(*pair, |(n, _)| n)))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
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
            ("openai-organization", "org-client"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        assert!(forwardable_request_headers(&client).is_empty());
    }

    #[test]
    fn a_user_agent_holding_the_presented_key_stays_behind() {
        let key = "pak_0123456789abcdefghijklmnopqrstuvwxyzABCDEF";
        let client = map(&[
            ("authorization", &format!("Bearer {key}")),
            ("user-agent", &format!("my-script/1.0 (key {key})")),
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
            ("user-agent", "Anthropic/Python 0.40.0"),
        ]);
        let out = forwardable_request_headers(&client);
        assert_eq!(out.len(), 7);
        assert_eq!(out.get_all("anthropic-beta").iter().count(), 2);
        assert_eq!(out["traceparent"], client["traceparent"]);
    }

    #[test]
    fn unknown_headers_and_those_holding_the_key_stay_behind() {
        let key = "pak_0123456789abcdefABCDEF";
        let client = map(&[
            ("x-api-key", &pai_core::access_key::wrap(key)),
            ("ocp-apim-subscription-key", key),
            ("x-custom-client-secret", "s3cret"),
            ("x-request-id", "trace-0123456789abcdefABCDEF"),
            ("x-stainless-lang", "python"),
            ("openai-beta", "assistants=v2"),
        ]);
        let out = forwardable_request_headers(&client);
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["openai-beta", "x-stainless-lang"]);
    }

    #[test]
    fn only_known_query_parameters_pass() {
        let client = map(&[("authorization", "Bearer pak_0123456789abcdef")]);
        let q = |s: &str| forwardable_query(Some(s), &client);
        assert_eq!(q("beta=true"), Some("beta=true".to_owned()));
        assert_eq!(
            q("key=pak_0123456789abcdef&beta=true&x=1"),
            Some("beta=true".to_owned())
        );
        assert_eq!(q("beta=0123456789abcdef"), None);
        assert_eq!(q("api-version=2024-10-21"), None);
        assert_eq!(forwardable_query(None, &client), None);
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
