//! Responses of the mock: a whole JSON body, or a body written chunk by chunk by a task.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// A response of the mock.
pub(crate) type MockResponse = http::Response<MockBody>;

/// A JSON response with `status`.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> MockResponse {
    let mut response = http::Response::new(MockBody::full(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A `200 text/event-stream` response around a body being written.
pub(crate) fn event_stream(body: MockBody) -> MockResponse {
    let mut response = http::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A request the mock turns away, as the response that says so (boxed: it travels in `Err`).
pub(crate) type Refusal = Box<MockResponse>;

/// What a stream writer sends: the next chunk, or an abrupt end.
pub(crate) type Chunk = Result<Bytes, StreamReset>;

/// A body that is either complete or written chunk by chunk by a task.
#[derive(Debug)]
pub(crate) enum MockBody {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Chunk>),
}

impl MockBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = StreamReset;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamReset>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Channel(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| c.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Channel(_) => SizeHint::default(),
        }
    }
}

/// The error a stream ends with when a `reset_after` directive cuts it: the server aborts the
/// connection (HTTP/1) or resets the stream (HTTP/2) without a terminator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamReset;

impl fmt::Display for StreamReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the mock upstream reset the stream")
    }
}

impl std::error::Error for StreamReset {}
