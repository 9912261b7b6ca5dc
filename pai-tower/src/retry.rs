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
        Some(crate::service::copy_request(req))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::Full;
    use pai_core::Error;
    use tower::retry::RetryLayer;
    use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};

    use super::*;
    use crate::rescue::RescueLayer;
    use crate::testing::{ok, Calls};

    fn fast() -> Reliability {
        Reliability {
            max_attempts: 3,
            backoff_base: Duration::from_millis(1),
            backoff_cap: Duration::from_millis(2),
            max_retry_after: Duration::from_millis(50),
            ..Reliability::default()
        }
    }

    /// Calls a service that fails with `error` on its first `failures` calls, through the
    /// retry policy; the result and how many times the service was called.
    async fn through_retry(
        reliability: Reliability,
        req: Request<Full<Bytes>>,
        failures: usize,
        error: CallError,
    ) -> (Result<Response<Full<Bytes>>, CallError>, usize) {
        let calls = Calls::default();
        let counted = calls.clone();
        let flaky = service_fn(move |_req: Request<Full<Bytes>>| {
            let n = counted.add();
            let error = error.clone();
            async move {
                if n < failures {
                    Err(error)
                } else {
                    Ok(ok())
                }
            }
        });
        let service = RetryLayer::new(RetryPolicy::new(reliability)).layer(flaky);
        let res = service.oneshot(req).await;
        (res, calls.get())
    }

    fn post() -> Request<Full<Bytes>> {
        Request::post("/v1/chat/completions")
            .body(Full::default())
            .unwrap()
    }

    fn unreachable() -> Error {
        Error::UpstreamUnreachable("connection reset".to_owned())
    }

    #[tokio::test]
    async fn a_retryable_failure_is_tried_again_up_to_max_attempts() {
        let e = CallError::retry(unreachable(), None);
        let (res, calls) = through_retry(fast(), post(), 1, e.clone()).await;
        assert_eq!(res.unwrap().status(), 200);
        assert_eq!(calls, 2);

        let (res, calls) = through_retry(fast(), post(), usize::MAX, e.clone()).await;
        assert_eq!(res.unwrap_err(), e);
        assert_eq!(calls, 3, "max_attempts counts the first try");

        let once = Reliability {
            max_attempts: 1,
            ..fast()
        };
        let (_, calls) = through_retry(once, post(), usize::MAX, e).await;
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn failures_for_the_next_candidate_or_final_are_not_retried() {
        for e in [
            CallError::next_candidate(unreachable(), true),
            CallError::next_candidate(unreachable(), false),
            CallError::refused(Error::invalid("bad request")),
        ] {
            let (res, calls) = through_retry(fast(), post(), usize::MAX, e.clone()).await;
            assert_eq!(res.unwrap_err(), e);
            assert_eq!(calls, 1, "{:?}", e.next);
        }
    }

    #[tokio::test]
    async fn retry_after_is_honoured_up_to_max_retry_after() {
        let asked = |after| CallError::retry(unreachable(), Some(after));
        let started = Instant::now();
        let (res, calls) = through_retry(fast(), post(), 1, asked(Duration::from_millis(30))).await;
        assert_eq!(res.unwrap().status(), 200);
        assert_eq!(calls, 2);
        assert!(started.elapsed() >= Duration::from_millis(30));

        // Longer than the gateway holds a client: the candidate is given up at once.
        let started = Instant::now();
        let e = asked(Duration::from_millis(300));
        let (res, calls) = through_retry(fast(), post(), 1, e.clone()).await;
        assert_eq!(res.unwrap_err(), e);
        assert_eq!(calls, 1);
        assert!(started.elapsed() < Duration::from_millis(250));
    }

    #[tokio::test]
    async fn nothing_is_retried_past_the_deadline() {
        let mut req = post();
        req.extensions_mut().insert(Deadline(Instant::now()));
        let e = CallError::retry(unreachable(), None);
        let (res, calls) = through_retry(fast(), req, usize::MAX, e.clone()).await;
        assert_eq!(res.unwrap_err(), e);
        assert_eq!(calls, 1);

        // A deadline closer than the wait asked for stops retries too.
        let mut req = post();
        req.extensions_mut()
            .insert(Deadline(Instant::now() + Duration::from_millis(20)));
        let e = CallError::retry(unreachable(), Some(Duration::from_millis(40)));
        let (_, calls) = through_retry(fast(), req, usize::MAX, e).await;
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn retries_are_counted_on_the_journey() {
        let calls = Calls::default();
        let counted = calls.clone();
        let flaky = service_fn(move |req: Request<Full<Bytes>>| {
            let n = counted.add();
            // What the call log does when the call begins; every try carries the same journey.
            req.extensions().get::<Journey>().unwrap().engage();
            async move {
                if n < 2 {
                    return Err(CallError::retry(unreachable(), None));
                }
                Ok(ok())
            }
        });
        let service = ServiceBuilder::new()
            .layer(RescueLayer::new())
            .layer(RetryLayer::new(RetryPolicy::new(fast())))
            .service(flaky);
        let res = service.oneshot(post()).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-pai-retries"], "2");
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn a_retried_request_keeps_its_head_and_extensions() {
        #[derive(Clone, Debug, PartialEq)]
        struct Mark(u32);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let calls = Calls::default();
        let counted = calls.clone();
        let flaky = service_fn(move |req: Request<Full<Bytes>>| {
            let n = counted.add();
            log.lock().unwrap().push((
                req.method().clone(),
                req.uri().clone(),
                req.headers().get("x-test").cloned(),
                req.extensions().get::<Mark>().cloned(),
            ));
            async move {
                if n == 0 {
                    return Err(CallError::retry(unreachable(), None));
                }
                Ok(ok())
            }
        });
        let mut req = post();
        req.headers_mut()
            .insert("x-test", http::HeaderValue::from_static("yes"));
        req.extensions_mut().insert(Mark(7));
        let service = RetryLayer::new(RetryPolicy::new(fast())).layer(flaky);
        service.oneshot(req).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], seen[1]);
        assert_eq!(seen[1].3, Some(Mark(7)));
    }
}
