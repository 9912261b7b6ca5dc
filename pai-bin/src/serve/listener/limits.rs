//! How many connections a listener holds, and how long a client may take to say what it wants.
//!
//! The default connection cap comes from the process's file-descriptor limit: a gateway
//! connection can hold an upstream connection as well, so each costs up to two descriptors, and
//! a reserve stays free for the store, the logs, DNS and the admin API. Below the limit, the
//! process never reaches `EMFILE`, so accepting never fails for want of descriptors.

use std::time::Duration;

/// Descriptors kept for everything that is not a gateway client: the store, logs, the price
/// file, DNS, the admin API's own connections.
const RESERVED_FDS: u64 = 256;

/// Connections of the admin API (operators, the CLI, a metrics scraper).
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Used when the descriptor limit is unlimited or cannot be read.
const FALLBACK_MAX_CONNECTIONS: usize = 16_384;

/// What a listener allows its clients.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections served at once; past it, the oldest connection that has not yet sent a
    /// request head is closed to make room, or, if there is none, new connections wait.
    pub max_connections: usize,
    /// Time a client has to send a complete request head, from connecting or from the end of
    /// its previous response (which makes it the keep-alive idle timeout too).
    pub header_timeout: Duration,
}

/// The default cap for the gateway listener, from the soft RLIMIT_NOFILE (raised to the hard
/// limit first, as Go and nginx do, so a low default soft limit does not cap a busy gateway).
pub fn default_max_connections() -> usize {
    match raise_fd_limit() {
        Some(fds) => usize::try_from(fds.saturating_sub(RESERVED_FDS) / 2)
            .unwrap_or(FALLBACK_MAX_CONNECTIONS)
            .max(16),
        None => FALLBACK_MAX_CONNECTIONS,
    }
}

/// Raise the soft descriptor limit to the hard one; the soft limit now in force, if finite.
#[cfg(unix)]
fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    if limit.maximum.is_none_or(|hard| hard > soft) {
        // An unlimited hard limit is not a number the kernel accepts for the soft one.
        let target = limit.maximum.unwrap_or(1 << 20).min(1 << 20);
        limit.current = Some(target);
        match setrlimit(Resource::Nofile, limit) {
            Ok(()) => return Some(target),
            Err(e) => tracing::debug!(error = %e, soft, "could not raise the descriptor limit"),
        }
    }
    Some(soft)
}

#[cfg(not(unix))]
fn raise_fd_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_stays_well_under_the_descriptor_limit() {
        let cap = default_max_connections() as u64;
        #[cfg(unix)]
        if let Some(soft) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
            assert!(
                cap * 2 + RESERVED_FDS <= soft.max(16 * 2 + RESERVED_FDS),
                "{cap} of {soft}"
            );
        }
        assert!(cap >= 16);
    }
}
