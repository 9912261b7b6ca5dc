//! What every upstream request has in common, whichever adapter builds it.
//!
//! - the client's forwardable headers ([`crate::headers`]), never its credentials;
//! - `accept-encoding: identity`, because the gateway reads usage out of the body as it passes
//!   and must not buffer a stream to decompress it;
//! - `user-agent`: the client's followed by `pai/<version>`, or that alone; and, with a body, `content-type: application/json` and its
//!   exact `content-length`;
//! - the model id rewritten to the one the upstream knows.
//!
//! Header values that carry a key are marked sensitive, so that they are never indexed by HTTP/2
//! header compression and never printed by `Debug`.

use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request};
use pai_core::provider::ApiKey;
use pai_core::{Call, Error, JsonObject};

use crate::headers::is_forwardable_request_header;

/// The `user-agent` the gateway sends upstream.
pub const PAI_USER_AGENT: &str = concat!("pai/", env!("CARGO_PKG_VERSION"));

/// Remove Anthropic protocol headers (`anthropic-version`, `anthropic-beta`) from a request
/// going to an upstream of another dialect.
pub(crate) fn drop_anthropic_headers(headers: &mut HeaderMap) {
    let names: Vec<_> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("anthropic-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// The client's headers that may be forwarded, plus the gateway's own.
pub(crate) fn base_headers(call: &Call) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(call.headers.len() + 6);
    // `call.headers` is already filtered; filtering again costs nothing here (the map is copied
    // either way) and keeps a client's key from leaking if a caller forgot.
    for (name, value) in &call.headers {
        if is_forwardable_request_header(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    let agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .and_then(|client| HeaderValue::try_from(format!("{client} {PAI_USER_AGENT}")).ok())
        .unwrap_or(HeaderValue::from_static(PAI_USER_AGENT));
    headers.insert(USER_AGENT, agent);
    headers
}

/// A header value holding key material.
pub(crate) fn secret_value(prefix: &str, key: &ApiKey) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::try_from(format!("{prefix}{}", key.expose())).map_err(|_| {
        Error::Internal(
            "the API key secret of this provider holds characters that cannot go in an HTTP \
             header (a trailing newline?)"
                .to_owned(),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The client's body with `model` set to the upstream's model id.
pub(crate) fn body_with_model(call: &Call) -> Result<JsonObject, Error> {
    let mut body = call.body.clone();
    body.set("model", &call.model)
        .map_err(|e| Error::Internal(format!("cannot set the model in the request body: {e}")))?;
    Ok(body)
}

/// `{endpoint}{path}`, without a doubled slash.
pub(crate) fn join(endpoint: &str, path: &str) -> String {
    format!("{}{path}", endpoint.trim_end_matches('/'))
}

/// Assemble the request. A non-empty body is sent as JSON with its exact length.
pub(crate) fn finish(
    method: Method,
    url: &str,
    mut headers: HeaderMap,
    body: Bytes,
) -> Result<Request<Bytes>, Error> {
    // The URL is not repeated in the error: a misconfigured endpoint may hold a token.
    let uri = http::Uri::try_from(url)
        .ok()
        .filter(|u| u.authority().is_some() && matches!(u.scheme_str(), Some("http" | "https")))
        .ok_or_else(|| {
            Error::Internal(
                "the endpoint configured for this provider is not an http(s) URL".to_owned(),
            )
        })?;
    if !body.is_empty() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}
