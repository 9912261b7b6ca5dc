//! How hard the gateway tries before it gives up, and how it stays up under load.
//!
//! # Design
//!
//! Providers fail all the time: 429s, 529 overloads, 5xx, dropped connections, streams that
//! stall. For one call the gateway walks a list of candidates (the primary model, then its
//! fallbacks). Each candidate gets up to [`Reliability::max_attempts`] tries with exponential
//! backoff and full jitter (a random wait between zero and `min(cap, base · 2^n)`), except when
//! the upstream says how long to wait (`retry-after`, `retry-after-ms`): that is honoured when it
//! is no longer than [`Reliability::max_retry_after`], and otherwise the candidate is given up at
//! once rather than holding the client for minutes. Nothing is retried once a byte has gone to
//! the client; for streams the response is held until the first event has arrived, so a failure
//! before any content can still be retried or fallen back.
//!
//! A candidate whose calls keep failing (every try exhausted, [`Reliability::cooldown_after`]
//! calls in a row) is put in cooldown for [`Reliability::cooldown`]: later calls skip it and do
//! not pay for its retries; it comes back on its own when the time is up. A call whose every
//! candidate is cooling down still tries them rather than refusing outright.
//!
//! Towards each ModelProvider at most [`Reliability::max_concurrency`] calls are in flight; up
//! to [`Reliability::max_queue`] more wait for a slot for at most [`Reliability::queue_timeout`];
//! beyond that the answer is a clear 503 instead of unbounded memory growth.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};
use pai_core::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Retry, timeout, cooldown and overload settings. The defaults suit long LLM streams.
#[derive(Clone, Debug)]
pub struct Reliability {
    /// Tries per candidate, the first included (default 3).
    pub max_attempts: u32,
    /// The first backoff step (default 250 ms).
    pub backoff_base: Duration,
    /// The largest backoff step (default 8 s).
    pub backoff_cap: Duration,
    /// The longest `retry-after` honoured; longer ones give the candidate up (default 30 s).
    pub max_retry_after: Duration,
    /// Time to connect to an upstream (default 10 s).
    pub connect_timeout: Duration,
    /// Time until the response head, and for streams the first event, arrives (default 300 s).
    pub first_byte_timeout: Duration,
    /// Longest wait for the next complete event of a stream (default 300 s). Bytes that do not
    /// complete an event do not count: an upstream trickling an event that never ends times out.
    pub idle_timeout: Duration,
    /// Longest event (and so longest line) of an upstream stream, in bytes (default 16 MiB).
    /// The gateway holds at most this much of an unfinished event; a longer one ends the
    /// client's stream with an error.
    pub max_event_bytes: usize,
    /// Longest a whole call may take (default 1 h).
    pub total_timeout: Duration,
    /// During an upstream silence on an Anthropic-dialect stream, a `ping` event this often
    /// (default 15 s), so clients' idle watchdogs do not fire.
    pub ping_interval: Duration,
    /// Exhausted calls in a row that put a candidate in cooldown (default 3).
    pub cooldown_after: u32,
    /// How long a candidate stays in cooldown (default 30 s).
    pub cooldown: Duration,
    /// Calls in flight towards one ModelProvider (default 512).
    pub max_concurrency: usize,
    /// Calls waiting for a slot towards one ModelProvider (default 1024).
    pub max_queue: usize,
    /// Longest wait for a slot (default 30 s).
    pub queue_timeout: Duration,
    /// Longest pause in a client's request body (default 30 s); past it, 408. A client that
    /// trickles its body would otherwise hold its connection for as long as it likes.
    pub body_idle_timeout: Duration,
    /// Longest time to receive a whole request body (default 300 s); past it, 408.
    pub body_timeout: Duration,
}

impl Default for Reliability {
    fn default() -> Self {
        Reliability {
            max_attempts: 3,
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(300),
            max_event_bytes: pai_providers::sse::DEFAULT_MAX_EVENT_BYTES,
            total_timeout: Duration::from_secs(3600),
            ping_interval: Duration::from_secs(15),
            cooldown_after: 3,
            cooldown: Duration::from_secs(30),
            max_concurrency: 512,
            max_queue: 1024,
            queue_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(300),
        }
    }
}

/// Whether an upstream status is worth another try.
pub(crate) fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// How long the upstream asked us to wait, from `retry-after-ms` or `retry-after` (seconds).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let ms = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|ms| Duration::from_micros((ms * 1000.0) as u64));
    ms.or_else(|| {
        headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(Duration::from_secs_f64)
    })
}

impl Reliability {
    /// The wait before try number `attempt` (1 = the first retry): full jitter.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.backoff_base.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let ceiling = exp.min(self.backoff_cap);
        ceiling.mul_f64(jitter())
    }
}

/// A uniform number in [0, 1) from a per-thread xorshift generator seeded from the clock: good
/// enough to spread retries, and no dependency.
fn jitter() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9E37_79B9_7F4A_7C15)
                | 1,
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// Consecutive failures and cooldowns per candidate (`provider/model`).
#[derive(Debug, Default)]
pub(crate) struct Cooldowns {
    state: Mutex<HashMap<String, (u32, Option<Instant>)>>,
}

impl Cooldowns {
    /// Whether the candidate is cooling down now.
    pub(crate) fn cooling(&self, candidate: &str) -> bool {
        let now = Instant::now();
        let Ok(state) = self.state.lock() else {
            return false;
        };
        state
            .get(candidate)
            .and_then(|(_, until)| *until)
            .is_some_and(|until| until > now)
    }

    /// A call to the candidate succeeded: it is healthy again.
    pub(crate) fn success(&self, candidate: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.remove(candidate);
        }
    }

    /// A call to the candidate failed after every try; returns whether it now cools down.
    pub(crate) fn failure(&self, candidate: &str, policy: &Reliability) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let entry = state.entry(candidate.to_owned()).or_insert((0, None));
        entry.0 += 1;
        if entry.0 >= policy.cooldown_after.max(1) {
            entry.0 = 0;
            entry.1 = Some(Instant::now() + policy.cooldown);
            true
        } else {
            false
        }
    }
}

/// Bounded concurrency towards each ModelProvider.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    per_provider: Mutex<HashMap<String, Arc<Gate>>>,
}

#[derive(Debug)]
struct Gate {
    semaphore: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Slots {
    /// A slot towards `provider` if one is free now.
    pub(crate) fn try_acquire(
        &self,
        provider: &str,
        policy: &Reliability,
    ) -> Option<OwnedSemaphorePermit> {
        let gate = self.gate(provider, policy)?;
        gate.semaphore.clone().try_acquire_owned().ok()
    }

    fn gate(&self, provider: &str, policy: &Reliability) -> Option<Arc<Gate>> {
        let mut map = self.per_provider.lock().ok()?;
        Some(
            map.entry(provider.to_owned())
                .or_insert_with(|| {
                    Arc::new(Gate {
                        semaphore: Arc::new(Semaphore::new(policy.max_concurrency.max(1))),
                        waiting: AtomicUsize::new(0),
                    })
                })
                .clone(),
        )
    }

    /// A slot towards `provider`, waiting in a bounded queue; a 503 when the queue is full or
    /// the wait too long.
    pub(crate) async fn acquire(
        &self,
        provider: &str,
        policy: &Reliability,
    ) -> Result<OwnedSemaphorePermit, Error> {
        let Some(gate) = self.gate(provider, policy) else {
            return Err(Error::Internal("slot table poisoned".to_owned()));
        };
        if let Ok(permit) = gate.semaphore.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let full = || {
            Error::Unavailable(format!(
                "ModelProvider {provider:?} is overloaded: {} calls in flight and the queue is full; retry shortly",
                policy.max_concurrency
            ))
        };
        if gate.waiting.fetch_add(1, Ordering::SeqCst) >= policy.max_queue {
            gate.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(full());
        }
        let result =
            tokio::time::timeout(policy.queue_timeout, gate.semaphore.clone().acquire_owned())
                .await;
        gate.waiting.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(full()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = Reliability::default();
        for attempt in 1..20 {
            let d = p.backoff(attempt);
            assert!(d <= p.backoff_cap, "{attempt}: {d:?}");
        }
        let samples: Vec<Duration> = (0..50).map(|_| p.backoff(3)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(samples.iter().any(|d| *d != samples[0]), "jitter varies");
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn cooldown_starts_after_repeated_failures_and_ends() {
        let p = Reliability {
            cooldown_after: 2,
            cooldown: Duration::from_millis(50),
            ..Reliability::default()
        };
        let c = Cooldowns::default();
        assert!(!c.failure("a/m", &p));
        assert!(!c.cooling("a/m"));
        assert!(c.failure("a/m", &p));
        assert!(c.cooling("a/m"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!c.cooling("a/m"));
    }

    #[tokio::test]
    async fn a_full_queue_answers_503() {
        let p = Reliability {
            max_concurrency: 1,
            max_queue: 0,
            queue_timeout: Duration::from_millis(20),
            ..Reliability::default()
        };
        let slots = Slots::default();
        let held = slots.acquire("p", &p).await.unwrap();
        let e = slots.acquire("p", &p).await.unwrap_err();
        assert_eq!(e.status(), 503);
        drop(held);
        assert!(slots.acquire("p", &p).await.is_ok());
    }
}
