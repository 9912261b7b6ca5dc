//! Where finished calls' records go: a bounded queue, drained in batches.
//!
//! Records go through a [`CallSink`]: a bounded queue, drained in batches by one task that
//! writes to the store, whose room each call takes before it starts ([`RecordSlot`]); so a
//! store that is merely slow never slows a response, one that falls behind holds new calls back,
//! and no record of an admitted call is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pai_core::store::CallRecord;
use pai_core::{Error, Store};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Where finished calls go to be recorded.
///
/// One task writes the records in batches (up to [`RECORD_BATCH`] at a time, one
/// [`Store::record_calls`] each, which the embedded store commits in one transaction), so the
/// records keep up with the request rate. A batch gathers for up to 5 ms before
/// it is written, so calls at low rates share commits too.
///
/// The queue is bounded, and room in it is taken before a call starts: [`CallSink::admit`]
/// hands out a [`RecordSlot`], one of at most `limit`, which the call's record is sent through
/// when it finishes and which is given back once the record is written. So the calls in flight
/// plus the records queued or being written never exceed `limit`. At the limit a new call waits
/// for the recorder, and is refused with 503 if it does not catch up within a few seconds; no
/// record of an admitted call is dropped to make room, and sending one never waits.
///
/// It also counts the work that finishes a call after its answer has gone — the record's
/// write, the budget's settle — so the admin views can answer with every call that has
/// finished ([`CallSink::finished`]).
#[derive(Clone, Debug)]
pub struct CallSink {
    tx: mpsc::Sender<(CallRecord, OwnedSemaphorePermit)>,
    room: Arc<Semaphore>,
    limit: usize,
    work: Arc<Work>,
}

/// Records written per store call, at most.
pub const RECORD_BATCH: usize = 512;

/// How long the recorder waits for more records before it writes a batch that is not full:
/// a record is durable this much later at most, and at low rates a commit (an fsync) is
/// shared by the calls of these few milliseconds instead of paid by each.
pub(crate) const RECORD_LINGER: Duration = Duration::from_millis(5);

/// The default limit on calls admitted and not yet recorded.
pub const DEFAULT_RECORD_BACKLOG: u64 = 20_000;

/// How long a new call waits for the recorder to make room before it is refused.
const ADMIT_WAIT: Duration = Duration::from_secs(5);

/// Room for one call's record, taken before the call starts ([`CallSink::admit`]).
#[derive(Debug)]
pub struct RecordSlot {
    sink: CallSink,
    room: OwnedSemaphorePermit,
}

impl RecordSlot {
    /// Queue the call's record. Never waits: its room was taken when the call was admitted.
    pub fn send(self, record: CallRecord) {
        let RecordSlot { sink, room } = self;
        sink.work.queued.fetch_add(1, Ordering::SeqCst);
        // Every queued record holds one of `limit` permits and the channel holds `limit`, so
        // it is never full; it fails only if the recorder has stopped.
        if let Err(e) = sink.tx.try_send((record, room)) {
            sink.work.done.fetch_add(1, Ordering::SeqCst);
            let (record, _) = e.into_inner();
            tracing::error!(call_id = %record.call_id, "call recorder has stopped; record lost");
        }
    }
}

/// Finishing work queued and done since start.
#[derive(Debug, Default)]
struct Work {
    queued: AtomicU64,
    done: AtomicU64,
}

impl Work {
    fn pending(&self) -> u64 {
        // `done` first: read the other way round, work finishing in between would be counted
        // as done but not as queued.
        let done = self.done.load(Ordering::SeqCst);
        self.queued.load(Ordering::SeqCst).saturating_sub(done)
    }
}

/// One piece of finishing work; done when dropped.
#[derive(Debug)]
pub(crate) struct Finishing(Arc<Work>);

impl Drop for Finishing {
    fn drop(&mut self) {
        self.0.done.fetch_add(1, Ordering::SeqCst);
    }
}

impl CallSink {
    /// A sink writing to `store` from a background task, with the default limit.
    pub fn spawn(store: Arc<dyn Store>) -> CallSink {
        CallSink::with_backlog(store, DEFAULT_RECORD_BACKLOG)
    }

    /// A sink writing to `store` from a background task; at most `limit` calls are admitted
    /// and not yet recorded.
    pub fn with_backlog(store: Arc<dyn Store>, limit: u64) -> CallSink {
        let limit = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        let (tx, mut rx) = mpsc::channel::<(CallRecord, OwnedSemaphorePermit)>(limit);
        let work = Arc::new(Work::default());
        let left = work.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(RECORD_BATCH);
            while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
                // Group commit: the records of calls that finish within RECORD_LINGER share
                // this batch's transaction, so at low rates a call does not pay a commit
                // (and its fsync) of its own.
                let until = tokio::time::Instant::now() + RECORD_LINGER;
                while batch.len() < RECORD_BATCH {
                    let room = RECORD_BATCH - batch.len();
                    match tokio::time::timeout_at(until, rx.recv_many(&mut batch, room)).await {
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
                // The rooms are given back only once their records are written.
                let (records, rooms): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
                write(store.as_ref(), &records).await;
                left.done.fetch_add(records.len() as u64, Ordering::SeqCst);
                drop(rooms);
            }
        });
        CallSink {
            tx,
            room: Arc::new(Semaphore::new(limit)),
            limit,
            work,
        }
    }

    /// Room for one more call's record: at once, or as soon as the recorder makes room, up to
    /// a few seconds; else 503. Called before a call starts, so a recorder that cannot keep up
    /// slows the callers down rather than letting its queue grow.
    pub async fn admit(&self) -> Result<RecordSlot, Error> {
        let room = match self.room.clone().try_acquire_owned() {
            Ok(room) => room,
            Err(_) => {
                let waited =
                    tokio::time::timeout(ADMIT_WAIT, self.room.clone().acquire_owned()).await;
                match waited {
                    Ok(Ok(room)) => room,
                    Ok(Err(_)) => {
                        return Err(Error::Internal("the call recorder is closed".to_owned()))
                    }
                    Err(_) => {
                        return Err(Error::Unavailable(format!(
                            "the gateway cannot write its call records fast enough ({} calls waiting to be recorded); try again shortly",
                            self.backlog()
                        )))
                    }
                }
            }
        };
        Ok(RecordSlot {
            sink: self.clone(),
            room,
        })
    }

    /// Room for one more call's record if there is some now, without waiting.
    pub fn try_admit(&self) -> Option<RecordSlot> {
        let room = self.room.clone().try_acquire_owned().ok()?;
        Some(RecordSlot {
            sink: self.clone(),
            room,
        })
    }

    /// Calls admitted whose records are not yet written: in flight, queued or being written.
    pub fn backlog(&self) -> u64 {
        (self.limit - self.room.available_permits()) as u64
    }

    /// Count a piece of work that finishes a call (a budget settle) until the guard drops.
    pub(crate) fn finishing(&self) -> Finishing {
        self.work.queued.fetch_add(1, Ordering::SeqCst);
        Finishing(self.work.clone())
    }

    /// Records and settles queued and not yet done.
    pub fn pending(&self) -> usize {
        usize::try_from(self.work.pending()).unwrap_or(usize::MAX)
    }

    /// Wait until every queued record is written, or `timeout` passes; whether it drained.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while self.pending() > 0 {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Wait until the work of every call that finished before now is done (its record
    /// written, its budget settled), or `timeout` passes; whether it was. It waits for as
    /// much work to be done as had been queued, or for none to be left: work queued later
    /// does not hold it up, so a busy gateway answers as promptly as an idle one. (Settles run
    /// concurrently, so under load a later settle may stand in for an earlier one.)
    pub async fn finished(&self, timeout: Duration) -> bool {
        let target = self.work.queued.load(Ordering::SeqCst);
        let until = Instant::now() + timeout;
        loop {
            if self.work.done.load(Ordering::SeqCst) >= target || self.work.pending() == 0 {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Write one batch. A batch the store could not write whole goes on one record at a time from
/// where it stopped, so one bad record costs only itself.
async fn write(store: &dyn Store, batch: &[CallRecord]) {
    let Err(e) = store.record_calls(batch).await else {
        return;
    };
    tracing::warn!(error = %e, records = batch.len(), "could not record a batch of calls; writing them one by one");
    for record in batch.iter().skip(e.written) {
        if let Err(e) = store.record_call(record).await {
            tracing::error!(call_id = %record.call_id, error = %e, "could not record call");
        }
    }
}
