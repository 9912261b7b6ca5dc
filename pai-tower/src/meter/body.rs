//! [`MeterBody`]: a streamed upstream answer, metered as it passes.
//!
//! [`MeterBody`] wraps a streamed upstream body. It cuts the bytes into SSE events, shows each
//! to the adapter's observer (which reads usage and may drop or rewrite an event), and hands
//! on every complete event as soon as it has it — the events of one upstream read in one
//! write — so nothing waits and nothing is buffered beyond an incomplete event. Before the
//! stream's final event it adds an SSE comment with the usage and cost (`: pai-usage {…}`),
//! which the official SDKs ignore. Which event is final, and which carry content, the observer
//! says ([`pai_core::Passed`]): the meter knows no wire format.
//!
//! While upstream is silent it keeps the client's connection alive with `ping` events
//! (Anthropic-dialect clients), and it ends the stream with an in-band error in the client's
//! dialect when upstream completes no event for the idle timeout (bytes that do not complete
//! one do not count), sends an event longer than the limit, runs past the call's deadline, or
//! breaks. When the stream ends — cleanly, with an error, or because the client went away and
//! the body was dropped, which also cancels the upstream call — the budget reservation is
//! settled with the usage seen so far, the slot towards the provider is released and the call
//! is recorded — after the guards that scan answers, if any, gave their verdicts on the text
//! that passed.
//!

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pai_core::{
    BoxError, Cost, Dialect, Error, EventAction, Passed, PriceTable, SseEvent, StreamObserver,
    UpstreamBody,
};
use pai_providers::sse::SseParser;
use pin_project_lite::pin_project;

use crate::call_log::LogEntry;
use crate::guard::AnswerStream;
use crate::reliability::Reliability;

/// Finishes a call exactly once, even if the body is dropped mid-stream.
struct Meter {
    observer: Box<dyn StreamObserver>,
    /// The call's log, finished when the stream ends; `None` once finished.
    entry: Option<LogEntry>,
    finished: bool,
    prices: Option<Arc<dyn PriceTable>>,
    model: String,
    deadline: Instant,
    /// Content deltas passed to the client: at least one token each.
    deltas: u64,
    /// The answer's text for the guards that scan it, if any do.
    answer: Option<AnswerStream>,
}

impl Meter {
    /// What `usage` of this call's model costs, if the model has a price.
    fn cost(&self, usage: &pai_core::Usage) -> Option<Cost> {
        crate::call_log::cost(self.prices.as_ref(), &self.model, usage)
    }

    /// The usage to charge. Upstreams report usage at the end of a stream (OpenAI) or only
    /// partly before it (Anthropic's output count), so a stream cut short — client gone,
    /// upstream broken or silent — is charged at least one token per content delta the client
    /// got, and the estimated input when upstream never said.
    fn usage(&self, cut_short: bool) -> Option<pai_core::Usage> {
        let reported = self.observer.usage();
        if !cut_short {
            return reported;
        }
        let mut u = reported.unwrap_or_default();
        u.output = u.output.max(self.deltas);
        if u.prompt_tokens() == 0 {
            u.input = self.entry.as_ref().map_or(0, LogEntry::estimated_input);
        }
        (u.total_tokens() > 0 || reported.is_some()).then_some(u)
    }

    fn finish(&mut self, error: Option<String>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let usage = self.usage(error.is_some());
        let error = error.or_else(|| self.observer.stream_error());
        let Some(mut entry) = self.entry.take() else {
            return;
        };
        match self.answer.take() {
            None => entry.finish(usage, error),
            // The record waits for the guards' verdicts on the answer.
            Some(answer) => answer.finish(move |found| {
                entry.add_guards(found);
                entry.finish(usage, error);
            }),
        }
    }

    /// `: pai-usage {…}`, the usage and cost so far as an SSE comment.
    fn usage_comment(&self) -> Bytes {
        let usage = self.observer.usage().unwrap_or_default();
        let mut v = serde_json::json!({
            "input_tokens": usage.prompt_tokens(),
            "output_tokens": usage.output,
            "cached_input_tokens": usage.cached_input,
        });
        if let Some(cost) = self.cost(&usage) {
            v["cost_usd"] = serde_json::Value::String(cost.to_string());
        }
        Bytes::from(format!(": pai-usage {v}\n\n"))
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
        comment_sent: bool,
        timer: Pin<Box<tokio::time::Sleep>>,
        // When upstream last completed an event.
        last_upstream: Instant,
        last_sent: Instant,
        idle: Duration,
        ping: Option<Duration>,
    }
}

impl MeterBody {
    /// Meter `inner`, whose first events `first` were already read through `parser`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        inner: UpstreamBody,
        parser: SseParser,
        first: Vec<SseEvent>,
        observer: Box<dyn StreamObserver>,
        client: Dialect,
        entry: Option<LogEntry>,
        answer: Option<AnswerStream>,
        priced: (Option<Arc<dyn PriceTable>>, String),
        deadline: Instant,
        policy: &Reliability,
    ) -> MeterBody {
        let now = Instant::now();
        let ping = (client == Dialect::Anthropic).then_some(policy.ping_interval);
        let mut body = MeterBody {
            inner,
            parser,
            pending: VecDeque::new(),
            meter: Meter {
                observer,
                entry,
                finished: false,
                prices: priced.0,
                model: priced.1,
                deadline,
                deltas: 0,
                answer,
            },
            client,
            ended: false,
            comment_sent: false,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            last_upstream: now,
            last_sent: now,
            idle: policy.idle_timeout,
            ping,
        };
        for event in first {
            let passed = body.meter.observer.on_event(&event);
            dispatch(
                passed,
                event.raw,
                &mut body.pending,
                &mut body.meter,
                &mut body.comment_sent,
            );
        }
        let wake = next_wake(
            body.last_upstream,
            body.last_sent,
            body.idle,
            body.ping,
            body.meter.deadline,
        );
        body.timer.as_mut().reset(wake.into());
        body
    }
}

fn next_wake(
    last_upstream: Instant,
    last_sent: Instant,
    idle: Duration,
    ping: Option<Duration>,
    deadline: Instant,
) -> Instant {
    let mut wake = (last_upstream + idle).min(deadline);
    if let Some(p) = ping {
        wake = wake.min(last_sent + p);
    }
    wake
}

/// `2 s`, or `0.6 s` below a second.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Queue what the observer passed for one event (`raw`), counting content and putting the
/// usage comment right before the stream's final event.
fn dispatch(
    passed: Passed,
    raw: Bytes,
    pending: &mut VecDeque<Bytes>,
    meter: &mut Meter,
    comment_sent: &mut bool,
) {
    let bytes = match passed.action {
        EventAction::Forward => raw,
        EventAction::Drop => return,
        EventAction::Replace(bytes) => bytes,
    };
    if passed.content {
        meter.deltas += 1;
    }
    if let Some(answer) = meter.answer.as_mut() {
        answer.passed(&bytes);
    }
    if !*comment_sent {
        if let Some(at) = passed.final_at.filter(|at| *at <= bytes.len()) {
            let mut last = bytes;
            let before = last.split_to(at);
            if !before.is_empty() {
                pending.push_back(before);
            }
            pending.push_back(meter.usage_comment());
            *comment_sent = true;
            if !last.is_empty() {
                pending.push_back(last);
            }
            return;
        }
    }
    pending.push_back(bytes);
}

const PING: &[u8] = b"event: ping\ndata: {\"type\": \"ping\"}\n\n";

impl Body for MeterBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let Some(first) = this.pending.pop_front() {
                // Events that arrived together leave together: one write, no waiting for more.
                if this.pending.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(first))));
                }
                let len = first.len() + this.pending.iter().map(Bytes::len).sum::<usize>();
                let mut joined = bytes::BytesMut::with_capacity(len);
                joined.extend_from_slice(&first);
                for more in this.pending.drain(..) {
                    joined.extend_from_slice(&more);
                }
                return Poll::Ready(Some(Ok(Frame::data(joined.freeze()))));
            }
            if *this.ended {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => {
                    if this.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let now = Instant::now();
                    let deadline = this.meter.deadline;
                    let stop = if now >= deadline {
                        Some(Error::UpstreamTimeout(
                            "the call ran past its total time limit".to_owned(),
                        ))
                    } else if now >= *this.last_upstream + *this.idle {
                        Some(Error::UpstreamTimeout(format!(
                            "the upstream sent no complete event for {}",
                            seconds(*this.idle)
                        )))
                    } else {
                        None
                    };
                    if let Some(error) = stop {
                        this.pending.push_back(error.sse_event(*this.client));
                        this.meter.finish(Some(error.to_string()));
                        *this.ended = true;
                        continue;
                    }
                    if let Some(p) = *this.ping {
                        if now >= *this.last_sent + p {
                            this.pending.push_back(Bytes::from_static(PING));
                            *this.last_sent = now;
                        }
                    }
                    let wake = next_wake(
                        *this.last_upstream,
                        *this.last_sent,
                        *this.idle,
                        *this.ping,
                        deadline,
                    );
                    this.timer.as_mut().reset(wake.into());
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let now = Instant::now();
                    if let Ok(data) = frame.into_data() {
                        let events = this.parser.push(&data);
                        // Only a complete event shows the upstream is getting somewhere.
                        if !events.is_empty() {
                            *this.last_upstream = now;
                        }
                        for event in events {
                            let passed = this.meter.observer.on_event(&event);
                            dispatch(
                                passed,
                                event.raw,
                                this.pending,
                                this.meter,
                                this.comment_sent,
                            );
                        }
                    }
                    if !this.pending.is_empty() {
                        *this.last_sent = now;
                    }
                    if let Some(too_long) = this.parser.too_long() {
                        let error = crate::upstream::too_long_error(too_long);
                        this.pending.push_back(error.sse_event(*this.client));
                        this.meter.finish(Some(error.to_string()));
                        *this.ended = true;
                        continue;
                    }
                    let wake = next_wake(
                        *this.last_upstream,
                        *this.last_sent,
                        *this.idle,
                        *this.ping,
                        this.meter.deadline,
                    );
                    this.timer.as_mut().reset(wake.into());
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
                        let passed = this.meter.observer.on_event(&event);
                        dispatch(
                            passed,
                            event.raw,
                            this.pending,
                            this.meter,
                            this.comment_sent,
                        );
                    }
                    let end = this.meter.observer.on_end();
                    let mut tail = end.replacement().cloned();
                    // A tail that ends the stream (Gemini's translated end) gets the comment
                    // right before its final event.
                    if tail.is_some() && end.final_at.is_some() {
                        tail = None;
                        dispatch(
                            end,
                            Bytes::new(),
                            this.pending,
                            this.meter,
                            this.comment_sent,
                        );
                    }
                    if !*this.comment_sent {
                        // The final event was not recognised (or comes in the tail): the usage
                        // still goes out, before whatever the observer appends.
                        this.pending.push_back(this.meter.usage_comment());
                        *this.comment_sent = true;
                    }
                    if let Some(tail) = tail {
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
