//! What the accept loop does when `accept` fails (out of descriptors, out of memory): wait,
//! doubling the wait up to a cap, and say so in the log once per period rather than once per
//! failure, so a long outage is a few lines, not thousands.

use std::time::{Duration, Instant};

const FIRST: Duration = Duration::from_millis(5);
const MAX: Duration = Duration::from_secs(1);
/// At most one log line per this period, counting the failures in between.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Exponential, capped backoff for a listener's accept loop.
#[derive(Debug)]
pub struct AcceptBackoff {
    listener: &'static str,
    delay: Duration,
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl AcceptBackoff {
    /// A backoff for the listener named `listener` in the log.
    pub fn new(listener: &'static str) -> AcceptBackoff {
        AcceptBackoff {
            listener,
            delay: FIRST,
            unlogged: 0,
            logged_at: None,
        }
    }

    /// `accept` failed with `error`: how long to wait before the next try.
    pub fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.unlogged += 1;
        let wait = self.delay;
        if self.logged_at.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            tracing::warn!(
                listener = self.listener,
                %error,
                failures = self.unlogged,
                retry_in_ms = wait.as_millis() as u64,
                "accept failed; backing off"
            );
            self.logged_at = Some(Instant::now());
            self.unlogged = 0;
        }
        self.delay = (self.delay * 2).min(MAX);
        wait
    }

    /// `accept` succeeded: the next failure starts from the shortest wait again.
    pub fn succeeded(&mut self) {
        if self.logged_at.take().is_some() {
            tracing::info!(listener = self.listener, "accepting connections again");
        }
        self.delay = FIRST;
        self.unlogged = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_a_cap_and_reset_on_success() {
        let mut backoff = AcceptBackoff::new("test");
        let error = std::io::Error::from_raw_os_error(24);
        let waits: Vec<Duration> = (0..12).map(|_| backoff.failed(&error)).collect();
        assert_eq!(waits[0], FIRST);
        assert_eq!(waits[1], FIRST * 2);
        assert_eq!(*waits.last().unwrap(), MAX);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        backoff.succeeded();
        assert_eq!(backoff.failed(&error), FIRST);
    }

    #[test]
    fn one_log_line_per_period() {
        let mut backoff = AcceptBackoff::new("test");
        let error = std::io::Error::from_raw_os_error(24);
        backoff.failed(&error);
        for _ in 0..100 {
            backoff.failed(&error);
        }
        // The first failure was logged; the next 100 wait for the period to pass.
        assert_eq!(backoff.unlogged, 100);
    }
}
