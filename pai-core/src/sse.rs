//! One Server-Sent Event, as the stream observers see it.
//!
//! The incremental parser that cuts a byte stream into these lives in `pai-providers`; the type
//! is here so that [`crate::StreamObserver`] can name it.

use bytes::Bytes;

/// One complete event of an SSE stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if the event had one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The event's exact bytes on the wire, separator included, for passing it through as is.
    pub raw: Bytes,
}

impl SseEvent {
    /// Whether the event carried only comments (`: keep-alive`) and no fields.
    pub fn is_comment_only(&self) -> bool {
        self.event.is_none() && self.data.is_empty()
    }
}
