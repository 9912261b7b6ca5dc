//! Retries a candidate that failed in a way worth retrying: a [`tower::retry::Policy`].
//!
//! A failure marked [`Next::Retry`] (connection errors, timeouts, 408/429/5xx/529, a stream
//! that broke before its first event) is tried again after a backoff with full jitter, or after
//! what the upstream's `retry-after` asks when that is at most
//! [`Reliability::max_retry_after`]; a longer ask gives the candidate up at once rather than
//! holding the client. At most [`Reliability::max_attempts`] tries, never past the call's
//! [`Deadline`]. Nothing is retried once a byte has gone to the client: the upstream layer
//! answers only once a stream's first event is in.
//!
//! # Example
//!
//! ```
//! use pai_tower::{CallError, RetryPolicy};
//! use tower::retry::RetryLayer;
//!
//! let _layer = RetryLayer::new(RetryPolicy::new(pai_tower::Reliability::default()));
//! ```

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use tower::retry::Policy;

use crate::error::{CallError, Next};
use crate::fallback::Deadline;
use crate::reliability::Reliability;
use crate::rescue::Journey;

/// When to try a candidate again. See the module docs.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    reliability: Arc<Reliability>,
    /// Tries made so far of this request (the policy is cloned per request).
    tries: u32,
}

impl RetryPolicy {
    /// Attempts, backoff and the longest `retry-after` honoured, from `reliability`.
    pub fn new(reliability: Reliability) -> RetryPolicy {
        RetryPolicy {
            reliability: Arc::new(reliability),
            tries: 0,
        }
    }
}

impl<B: Clone, RB> Policy<Request<B>, Response<RB>, CallError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<B>,
        result: &mut Result<Response<RB>, CallError>,
    ) -> Option<Self::Future> {
        let Err(e) = result else {
            return None;
        };
        let Next::Retry { after } = e.next else {
            return None;
        };
        self.tries += 1;
        let policy = &self.reliability;
        if self.tries >= policy.max_attempts.max(1) {
            return None;
        }
        let wait = match after {
            Some(asked) if asked > policy.max_retry_after => {
                tracing::info!(
                    wait_s = asked.as_secs(),
                    "upstream asks to wait longer than we hold a client; giving the candidate up"
                );
                return None;
            }
            Some(asked) => asked,
            None => policy.backoff(self.tries),
        };
        let deadline = req.extensions().get::<Deadline>().map(|d| d.0);
        if deadline.is_some_and(|d| Instant::now() + wait >= d) {
            return None;
        }
        if let Some(journey) = req.extensions().get::<Journey>() {
            journey.retried();
        }
        tracing::info!(attempt = self.tries, wait_ms = wait.as_millis() as u64, error = %e.error, "retrying");
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        let mut copy = Request::new(req.body().clone());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}
