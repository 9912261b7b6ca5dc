//! Metering: usage observed as the bytes pass, and a record for every call.
//!
//! [`MeterBody`] wraps a streamed upstream body. It cuts the bytes into SSE events, shows each
//! to the adapter's observer (which reads usage and may drop or rewrite an event), and hands
//! each event on as its own frame, so the client gets one flush per event and nothing is
//! buffered beyond an incomplete event. When the stream ends — cleanly, with an upstream error,
//! or because the client went away and the body was dropped — the call is recorded with the
//! usage seen so far. An upstream that breaks after content has flowed ends the client's
//! stream with an in-band error event in the client's dialect.
//!
//! Records go through a [`CallSink`]: an unbounded queue drained by one task that writes to the
//! store, so a slow store never slows a response and no record is dropped.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pai_core::store::CallRecord;
use pai_core::{BoxError, Dialect, Error, EventAction, Store, StreamObserver, UpstreamBody};
use pai_providers::sse::SseParser;
use pin_project_lite::pin_project;
use tokio::sync::mpsc;

/// Where finished calls go to be recorded.
#[derive(Clone, Debug)]
pub struct CallSink {
    tx: mpsc::UnboundedSender<CallRecord>,
}

impl CallSink {
    /// A sink writing to `store` from a background task.
    pub fn spawn(store: Arc<dyn Store>) -> CallSink {
        let (tx, mut rx) = mpsc::unbounded_channel::<CallRecord>();
        tokio::spawn(async move {
            while let Some(record) = rx.recv().await {
                if let Err(e) = store.record_call(&record).await {
                    tracing::error!(call_id = %record.call_id, error = %e, "could not record call");
                }
            }
        });
        CallSink { tx }
    }

    /// Queue a record.
    pub fn send(&self, record: CallRecord) {
        if let Err(e) = self.tx.send(record) {
            tracing::error!(call_id = %e.0.call_id, "call recorder has stopped; record lost");
        }
    }
}

/// Finishes a call's record exactly once, even if the body is dropped mid-stream.
struct Meter {
    observer: Box<dyn StreamObserver>,
    record: Option<CallRecord>,
    sink: CallSink,
    started: Instant,
}

impl Meter {
    fn finish(&mut self, error: Option<String>) {
        if let Some(mut record) = self.record.take() {
            record.usage = self.observer.usage();
            record.error = error.or_else(|| self.observer.stream_error());
            record.duration_ms = self.started.elapsed().as_millis() as u64;
            self.sink.send(record);
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.finish(Some(
            "client disconnected before the stream ended".to_owned(),
        ));
    }
}

pin_project! {
    /// A streamed upstream body, metered. See the module docs.
    pub struct MeterBody {
        #[pin]
        inner: UpstreamBody,
        parser: SseParser,
        pending: VecDeque<Bytes>,
        meter: Meter,
        client: Dialect,
        ended: bool,
    }
}

impl MeterBody {
    /// Meter `inner` with `observer`; `record` is completed and sent to `sink` at the end.
    pub(crate) fn new(
        inner: UpstreamBody,
        observer: Box<dyn StreamObserver>,
        client: Dialect,
        record: CallRecord,
        sink: CallSink,
        started: Instant,
    ) -> MeterBody {
        MeterBody {
            inner,
            parser: SseParser::new(),
            pending: VecDeque::new(),
            meter: Meter {
                observer,
                record: Some(record),
                sink,
                started,
            },
            client,
            ended: false,
        }
    }
}

fn dispatch(action: EventAction, raw: Bytes, pending: &mut VecDeque<Bytes>) {
    match action {
        EventAction::Forward => pending.push_back(raw),
        EventAction::Drop => {}
        EventAction::Replace(bytes) => pending.push_back(bytes),
    }
}

impl Body for MeterBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let Some(bytes) = this.pending.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if *this.ended {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        for event in this.parser.push(&data) {
                            let action = this.meter.observer.on_event(&event);
                            dispatch(action, event.raw, this.pending);
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let error = Error::UpstreamUnreachable(format!(
                        "the upstream stream broke after the response started: {e}"
                    ));
                    this.pending.push_back(error.sse_event(*this.client));
                    this.meter.finish(Some(error.to_string()));
                    *this.ended = true;
                }
                Poll::Ready(None) => {
                    if let Some(event) = this.parser.finish() {
                        let action = this.meter.observer.on_event(&event);
                        dispatch(action, event.raw, this.pending);
                    }
                    if let Some(tail) = this.meter.observer.on_end() {
                        this.pending.push_back(tail);
                    }
                    this.meter.finish(None);
                    *this.ended = true;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.pending.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
