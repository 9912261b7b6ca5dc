//! The response body type of every pai service.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use pai_core::{BoxError, Dialect, Error};

/// The body of every response the gateway produces: a buffered answer, an error, or a metered
/// stream from upstream.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An error as a response in the client's dialect.
pub(crate) fn error_response(error: &Error, dialect: Dialect) -> http::Response<ResponseBody> {
    error.to_response::<Bytes>(dialect).map(full)
}
