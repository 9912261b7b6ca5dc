//! Connections on probation: accepted, but without a complete request head yet.
//!
//! A socket that connects and sends nothing costs the attacker nothing and the server a
//! descriptor. Such connections are the first to go: each has until the header timeout to send a
//! request head, and when the listener is at its connection cap, the oldest of them is closed to
//! make room for the newcomer. A connection leaves probation at its first request, after which
//! hyper's own header-read timeout covers its later requests.
//!
//! Only connections that have been served once are evicted: under a flood the accept loop can
//! run far ahead of the connection tasks, and a client whose request is already in the socket
//! buffer must not lose its place before hyper has had a look at it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

/// One connection's standing: proven by a request, or asked to leave.
#[derive(Debug, Default)]
pub struct Ticket {
    proven: AtomicBool,
    looked_at: AtomicBool,
    evict: Notify,
}

impl Ticket {
    /// A request head arrived: the connection is no longer a candidate for eviction.
    pub fn prove(&self) {
        if !self.proven.load(Ordering::Relaxed) {
            self.proven.store(true, Ordering::Relaxed);
        }
    }

    /// hyper has read what the client sent so far; a ticket can be evicted only from now on.
    pub fn looked_at(&self) {
        self.looked_at.store(true, Ordering::Relaxed);
    }

    /// Whether a request head has arrived.
    pub fn is_proven(&self) -> bool {
        self.proven.load(Ordering::Relaxed)
    }

    /// Resolves when the listener needs this connection's place.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }
}

/// The connections of one listener still on probation, oldest first.
#[derive(Debug)]
pub struct Probation {
    queue: Mutex<VecDeque<Weak<Ticket>>>,
    /// Past this length, finished and proven entries are swept out.
    sweep_at: usize,
}

impl Probation {
    /// Probation for a listener of at most `max_connections`.
    pub fn new(max_connections: usize) -> Probation {
        Probation {
            queue: Mutex::new(VecDeque::new()),
            sweep_at: max_connections.saturating_mul(2).max(64),
        }
    }

    /// A new connection's ticket, at the back of the queue.
    pub fn admit(&self) -> Arc<Ticket> {
        let ticket = Arc::new(Ticket::default());
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= self.sweep_at {
            queue.retain(|t| t.upgrade().is_some_and(|t| !t.is_proven()));
        }
        queue.push_back(Arc::downgrade(&ticket));
        ticket
    }

    /// Ask up to `n` of the oldest connections still on probation to close.
    pub fn evict_oldest(&self, n: usize) -> Eviction {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let mut evicted = 0;
        while evicted < n {
            let Some(entry) = queue.front() else {
                break;
            };
            if let Some(ticket) = entry.upgrade().filter(|t| !t.is_proven()) {
                if !ticket.looked_at.load(Ordering::Relaxed) {
                    // This one and the younger ones behind it have not had their turn yet.
                    return match evicted {
                        0 => Eviction::NotYet,
                        n => Eviction::Evicted(n),
                    };
                }
                ticket.evict.notify_one();
                evicted += 1;
            }
            queue.pop_front();
        }
        match evicted {
            0 => Eviction::Nobody,
            n => Eviction::Evicted(n),
        }
    }
}

/// What [`Probation::evict_oldest`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// Asked this many connections to close.
    Evicted(usize),
    /// None yet: the oldest on probation has not been looked at; try again after a yield.
    NotYet,
    /// Every connection has sent a request: there is nobody to evict.
    Nobody,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_unproven_connection_goes_first() {
        let probation = Probation::new(4);
        let proven = probation.admit();
        let oldest = probation.admit();
        let newest = probation.admit();
        proven.prove();
        assert_eq!(probation.evict_oldest(1), Eviction::NotYet);
        for ticket in [&proven, &oldest, &newest] {
            ticket.looked_at();
        }
        assert_eq!(probation.evict_oldest(1), Eviction::Evicted(1));
        // The notification waits for the connection to listen for it.
        tokio::time::timeout(std::time::Duration::from_secs(1), oldest.evicted())
            .await
            .unwrap();
        drop(newest);
        assert_eq!(
            probation.evict_oldest(5),
            Eviction::Nobody,
            "closed and proven ones are skipped"
        );
    }
}
