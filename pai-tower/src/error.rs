//! The error the layers hand each other: what went wrong, and what the next layer out should do
//! about it.
//!
//! Every pai layer's service has `Error = CallError`, and accepts an inner service whose error
//! converts into it (an application's own handler with `Error = Infallible` does). The
//! [`RescueLayer`](crate::RescueLayer), outermost, renders whatever arrives once, in the
//! client's dialect. On the way out, the retry layer reads [`Next::Retry`], the fallback layer
//! [`Next::NextCandidate`] and [`Next::Final`]; nobody matches status codes.

use std::convert::Infallible;
use std::time::Duration;

use pai_core::Error;

/// What the layer that sees a failure may do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The same candidate may answer if asked again, after `after` when the upstream said.
    Retry {
        /// The wait the upstream asked for (`retry-after`).
        after: Option<Duration>,
    },
    /// This candidate cannot answer; the next one may. `cool` counts the failure towards the
    /// candidate's cooldown (an upstream that failed), unlike a budget or a queue that is full.
    NextCandidate {
        /// Whether the failure says the candidate is unhealthy.
        cool: bool,
    },
    /// No candidate would do better: the request itself is refused.
    Final,
}

/// A failed call, typed for the layers above. See the module docs.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct CallError {
    /// What the client will be told.
    pub error: Error,
    /// What the next layer out may do.
    pub next: Next,
}

impl CallError {
    /// Refused for good.
    pub fn refused(error: Error) -> CallError {
        CallError {
            error,
            next: Next::Final,
        }
    }

    /// Worth asking the same candidate again.
    pub fn retry(error: Error, after: Option<Duration>) -> CallError {
        CallError {
            error,
            next: Next::Retry { after },
        }
    }

    /// For the next candidate to answer; `cool` when the candidate itself failed.
    pub fn next_candidate(error: Error, cool: bool) -> CallError {
        CallError {
            error,
            next: Next::NextCandidate { cool },
        }
    }
}

/// An error with no word on what to do next is final.
impl From<Error> for CallError {
    fn from(error: Error) -> CallError {
        CallError::refused(error)
    }
}

impl From<Infallible> for CallError {
    fn from(never: Infallible) -> CallError {
        match never {}
    }
}
