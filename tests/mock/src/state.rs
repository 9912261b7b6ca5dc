//! What a running mock remembers: its config, the requests it received, how often each failure
//! directive has fired, and the sequence behind reply ids.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::config::MockConfig;
use crate::record::RecordedRequest;

/// The state one mock's connections share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub config: MockConfig,
    requests: Mutex<Vec<RecordedRequest>>,
    failures: Mutex<HashMap<String, u64>>,
    seq: AtomicU64,
    connections: AtomicU64,
}

impl Shared {
    pub(crate) fn new(config: MockConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        lock(&self.requests).push(request);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    /// Forgets the recorded requests and the failure counts.
    pub(crate) fn reset(&self) {
        lock(&self.requests).clear();
        lock(&self.failures).clear();
    }

    /// Counts one more call carrying the failure directives `key`, and says whether it fails:
    /// always without `times`, else only the first `times` calls.
    pub(crate) fn take_failure(&self, key: &str, times: Option<u64>) -> bool {
        let mut failures = lock(&self.failures);
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        times.is_none_or(|times| *count <= times)
    }

    /// Counts one more accepted connection.
    pub(crate) fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections accepted since the start.
    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// The next reply's sequence number, from 1.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Locks `mutex`, ignoring poisoning: the data is a plain record that a panicking holder cannot
/// leave half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_counts_per_directive_string_until_reset() {
        let shared = Shared::default();
        assert!(shared.take_failure("[mock:status=529,times=2]", Some(2)));
        assert!(shared.take_failure("[mock:status=529,times=2]", Some(2)));
        assert!(shared.take_failure("[mock:status=500,times=2]", Some(2)));
        assert!(!shared.take_failure("[mock:status=529,times=2]", Some(2)));
        assert!(shared.take_failure("[mock:status=500]", None));
        shared.reset();
        assert!(shared.take_failure("[mock:status=529,times=2]", Some(2)));
    }
}
