//! [`LoggedBody`]: finishes a call whose answer came from an application's own handler when
//! its body ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pai_core::{BoxError, Usage};
use pin_project_lite::pin_project;

use super::LogEntry;

pin_project! {
    /// A response body that finishes its call's log at its end, or when it is dropped.
    pub struct LoggedBody<B> {
        #[pin]
        inner: B,
        entry: Option<(LogEntry, Option<Usage>)>,
    }

    impl<B> PinnedDrop for LoggedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some((mut entry, usage)) = this.project().entry.take() {
                entry.finish(usage, Some("client disconnected before the response ended".to_owned()));
            }
        }
    }
}

impl<B> LoggedBody<B> {
    /// `entry` is finished when `inner` ends; at once if it has nothing to send.
    pub(crate) fn new(inner: B, mut entry: Option<(LogEntry, Option<Usage>)>) -> LoggedBody<B>
    where
        B: Body,
    {
        if inner.is_end_stream() {
            if let Some((mut e, usage)) = entry.take() {
                e.finish(usage, None);
            }
        }
        LoggedBody { inner, entry }
    }
}

impl<B> Body for LoggedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            // A server stops polling a body that says it has ended (a `Full` after its one
            // frame), so its end is seen here, not only at `None`.
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => {
                if let Some((mut entry, usage)) = this.entry.take() {
                    entry.finish(usage, None);
                }
            }
            Poll::Ready(None) => {
                if let Some((mut entry, usage)) = this.entry.take() {
                    entry.finish(usage, None);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some((mut entry, usage)) = this.entry.take() {
                    entry.finish(usage, Some("the response body broke off".to_owned()));
                }
            }
            _ => {}
        }
        polled.map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
