//! Writing a server-sent-event stream as the directives pace and break it.
//!
//! A dialect describes its stream as a [`Script`]: events marked as head, content or tail, plus
//! the in-band error event it would send. [`spawn`] writes the script from a task into a channel
//! body, one event at a time, so each write reaches the socket before the next pause. The pacing
//! and the breakage (`delay_ms`, `stall_ms`, `split`, `crlf`, `midstream_error`, `reset_after`)
//! live here, once for both dialects.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::directive::Directives;
use crate::response::{Chunk, MockBody, StreamReset};

/// The gap between the pieces of a `split` event, so that each piece leaves in its own write.
const SPLIT_GAP: Duration = Duration::from_millis(1);
/// How long a reset waits for the bytes before it to be taken from the channel, in 1 ms polls.
const RESET_DRAIN_POLLS: usize = 1_000;
/// How long a reset then waits for hyper to flush them.
const RESET_GRACE: Duration = Duration::from_millis(5);

/// Where an event sits in a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before the content: role chunk, `message_start`, block start, `ping`.
    Head,
    /// Between content deltas, not one itself: a block stops and the next starts, or a tool
    /// call opens. Never a place to break the stream, never counted as content.
    Boundary,
    /// One content delta: a word, or a piece of tool-call arguments.
    Content,
    /// After the content: finish, usage, stop, `[DONE]`.
    Tail,
}

/// One server-sent event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    pub phase: Phase,
    /// The `event:` line, if the dialect names its events.
    pub name: Option<&'static str>,
    pub data: String,
}

impl Event {
    pub(crate) fn new(phase: Phase, name: Option<&'static str>, data: impl Into<String>) -> Self {
        Self {
            phase,
            name,
            data: data.into(),
        }
    }

    /// The event on the wire, with `\n` or `\r\n` line endings.
    pub(crate) fn encode(&self, crlf: bool) -> Bytes {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut out = String::with_capacity(self.data.len() + 32);
        if let Some(name) = self.name {
            out.push_str("event: ");
            out.push_str(name);
            out.push_str(eol);
        }
        out.push_str("data: ");
        out.push_str(&self.data);
        out.push_str(eol);
        out.push_str(eol);
        Bytes::from(out)
    }
}

/// A dialect's stream, before pacing.
pub(crate) struct Script {
    pub events: Box<dyn Iterator<Item = Event> + Send>,
    /// How many [`Phase::Content`] events `events` holds.
    pub content_total: usize,
    /// The in-band error `midstream_error` sends.
    pub error: Event,
    /// The dialect always ends lines with `\r\n` (Gemini), whatever `crlf` says.
    pub crlf: bool,
}

/// How the directives pace and break a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pacing {
    pub delay: Duration,
    pub stall: Duration,
    pub split: bool,
    pub crlf: bool,
    pub midstream_error: bool,
    pub reset_after: Option<usize>,
}

impl Pacing {
    /// The pacing `directives` ask for; the breakage only while the call is `failing`.
    pub(crate) fn new(directives: &Directives, failing: bool) -> Self {
        Self {
            delay: directives.delay,
            stall: directives.stall,
            split: directives.split,
            crlf: directives.crlf,
            midstream_error: failing && directives.midstream_error,
            reset_after: directives.reset_after.filter(|_| failing),
        }
    }
}

/// Starts writing `script` and returns the body it is written into.
pub(crate) fn spawn(script: Script, pacing: Pacing) -> MockBody {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(write(tx, script, pacing));
    MockBody::Channel(rx)
}

/// A body that ends abruptly before its first byte (after the head is out).
pub(crate) fn reset_body() -> MockBody {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move { reset(&tx).await });
    MockBody::Channel(rx)
}

/// Ends the body abruptly, once what was written before has left: hyper drops buffered bytes
/// when a body fails, and a reset is meant to cut the stream after them, not before.
async fn reset(tx: &mpsc::Sender<Chunk>) {
    for _ in 0..RESET_DRAIN_POLLS {
        if tx.capacity() == tx.max_capacity() {
            break;
        }
        if pause(tx, Duration::from_millis(1)).await.is_err() {
            return;
        }
    }
    if pause(tx, RESET_GRACE).await.is_ok() {
        let _ = tx.send(Err(StreamReset)).await;
    }
}

async fn write(tx: mpsc::Sender<Chunk>, script: Script, mut pacing: Pacing) {
    pacing.crlf |= script.crlf;
    let half = script.content_total / 2;
    let mut sent = 0;
    for event in script.events {
        let at = |target: usize| match event.phase {
            Phase::Head | Phase::Boundary => false,
            Phase::Content => sent == target,
            Phase::Tail => true,
        };
        if pacing.reset_after.is_some_and(at) {
            reset(&tx).await;
            return;
        }
        if pacing.midstream_error && at(half) {
            let _ = send(&tx, &script.error, pacing).await;
            return;
        }
        if send(&tx, &event, pacing).await.is_err() {
            return;
        }
        if event.phase == Phase::Content {
            sent += 1;
            if sent == 1 && pause(&tx, pacing.stall).await.is_err() {
                return;
            }
        }
    }
}

/// The client went away.
struct Gone;

async fn send(tx: &mpsc::Sender<Chunk>, event: &Event, pacing: Pacing) -> Result<(), Gone> {
    pause(tx, pacing.delay).await?;
    let bytes = event.encode(pacing.crlf);
    if !pacing.split {
        return tx.send(Ok(bytes)).await.map_err(|_| Gone);
    }
    let mut pieces = split_points(bytes.len()).into_iter().peekable();
    let mut from = 0;
    while let Some(to) = pieces.next() {
        tx.send(Ok(bytes.slice(from..to))).await.map_err(|_| Gone)?;
        from = to;
        if pieces.peek().is_some() {
            pause(tx, SPLIT_GAP).await?;
        }
    }
    Ok(())
}

/// Where a `split` event is cut: in the middle of its first line, and before its last byte
/// (between the two newlines that end it, or between `\r` and `\n` with `crlf`). Returns the end
/// of each piece.
fn split_points(len: usize) -> Vec<usize> {
    let mut ends = vec![len / 2, len.saturating_sub(1), len];
    ends.retain(|&end| end > 0);
    ends.dedup();
    ends
}

/// Sleeps, unless the client goes away first.
async fn pause(tx: &mpsc::Sender<Chunk>, duration: Duration) -> Result<(), Gone> {
    if duration.is_zero() {
        return Ok(());
    }
    tokio::select! {
        () = tokio::time::sleep(duration) => Ok(()),
        () = tx.closed() => Err(Gone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_named_and_unnamed_events() {
        let named = Event::new(Phase::Head, Some("ping"), r#"{"type":"ping"}"#);
        assert_eq!(
            named.encode(false),
            "event: ping\ndata: {\"type\":\"ping\"}\n\n"
        );
        assert_eq!(
            named.encode(true),
            "event: ping\r\ndata: {\"type\":\"ping\"}\r\n\r\n"
        );
        let unnamed = Event::new(Phase::Tail, None, "[DONE]");
        assert_eq!(unnamed.encode(false), "data: [DONE]\n\n");
    }

    #[test]
    fn split_cuts_three_ways_and_before_the_last_byte() {
        assert_eq!(split_points(10), [5, 9, 10]);
        assert_eq!(split_points(2), [1, 2]);
        assert_eq!(split_points(1), [1]);
        assert!(split_points(0).is_empty());
    }
}
