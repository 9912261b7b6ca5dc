//! The number a store's `watch` yields, shared by every store here so they count alike.

use tokio::sync::watch;

/// A store's revision: a number that grows after every write that changed something, which
/// [`pai_core::Store::watch`] hands out so gateways reload their snapshot without polling.
///
/// A store holds one, calls [`Revision::bump`] after each write that changed something has
/// committed (never after a refused write, an unchanged `apply` or a `delete` of nothing: the
/// `contract` module checks this), and answers `watch` with [`Revision::subscribe`]. Bumping
/// works whether or not anyone is subscribed, so a receiver taken later still sees every change
/// made before it as the current value.
///
/// ```
/// let revision = pai_store::Revision::new();
/// let mut rx = revision.subscribe();
/// revision.bump();
/// assert!(rx.has_changed().unwrap());
/// assert_eq!(*rx.borrow_and_update(), 1);
/// ```
#[derive(Debug)]
pub struct Revision {
    sender: watch::Sender<u64>,
}

impl Revision {
    /// Revision 0: nothing changed yet.
    pub fn new() -> Revision {
        Revision {
            sender: watch::Sender::new(0),
        }
    }

    /// Something changed: the next revision, and every receiver wakes.
    pub fn bump(&self) {
        // `send_modify`, not `send`: `send` changes nothing while no receiver exists.
        self.sender.send_modify(|r| *r = r.wrapping_add(1));
    }

    /// A receiver of the revision, for `Store::watch`.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.sender.subscribe()
    }
}

impl Default for Revision {
    fn default() -> Revision {
        Revision::new()
    }
}
