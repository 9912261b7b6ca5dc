//! Two moves every layer of pai makes the same way.

use http::Request;

/// Take the service that `poll_ready` drove to readiness, leaving a clone in its place: for a
/// layer whose future must call the inner service after work of its own (tower's contract:
/// the ready one is the one called).
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

/// A copy of `req`, head, extensions and body, for another try or another candidate.
pub(crate) fn copy_request<B: Clone>(req: &Request<B>) -> Request<B> {
    let mut copy = Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    *copy.extensions_mut() = req.extensions().clone();
    copy
}
