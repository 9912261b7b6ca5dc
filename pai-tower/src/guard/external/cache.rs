//! Verdicts already given, by the SHA-256 of who scanned what: a conversation's unchanged
//! history is not sent to the classifier again on every turn.
//!
//! Bounded in entries and so in memory: two generations of at most `capacity` entries each.
//! A lookup that finds an entry in the older generation moves it into the current one; when the
//! current one is full it becomes the older one and the oldest is dropped whole. That keeps what
//! is used (a live conversation's history) and forgets the rest, with O(1) work per text and no
//! scan for the least recently used. An entry is a 32-byte key, a score and a label of at most
//! [`MAX_LABEL`] bytes: about 200 bytes with the map's own overhead, so the default capacity
//! keeps the cache under about 20 MB. Errors are never cached: only what a service answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The longest label kept (longer ones are cut): a service's label is data from outside.
pub(super) const MAX_LABEL: usize = 64;

/// Entries per generation by default.
pub const DEFAULT_CACHE_ENTRIES: usize = 50_000;

/// A key: SHA-256 of the binding's identity, where the text came from, and the text.
pub(super) type Key = [u8; 32];

/// What a service said of one text.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Found {
    /// 0 (nothing) to 1 (certainly an attack).
    pub score: f32,
    /// What it found, in the service's words (a label or a detector), if anything.
    pub label: Option<Arc<str>>,
}

#[derive(Default)]
struct Generations {
    current: HashMap<Key, Found>,
    older: HashMap<Key, Found>,
}

/// The verdict cache one [`super::HttpGuardKind`] shares between all its bindings and all
/// configuration snapshots (the key names the binding and its configuration).
pub(super) struct VerdictCache {
    capacity: usize,
    generations: Mutex<Generations>,
}

impl std::fmt::Debug for VerdictCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl VerdictCache {
    /// At most `capacity` entries per generation (0 turns the cache off).
    pub(super) fn new(capacity: usize) -> VerdictCache {
        VerdictCache {
            capacity,
            generations: Mutex::new(Generations::default()),
        }
    }

    /// What was found for `key`, if it is still remembered.
    pub(super) fn get(&self, key: &Key) -> Option<Found> {
        if self.capacity == 0 {
            return None;
        }
        let mut g = self.generations.lock().ok()?;
        if let Some(found) = g.current.get(key) {
            return Some(found.clone());
        }
        let found = g.older.remove(key)?;
        Self::put(&mut g, self.capacity, *key, found.clone());
        Some(found)
    }

    /// Remember `found` for `key`.
    pub(super) fn insert(&self, key: Key, found: Found) {
        if self.capacity == 0 {
            return;
        }
        if let Ok(mut g) = self.generations.lock() {
            Self::put(&mut g, self.capacity, key, found);
        }
    }

    fn put(g: &mut Generations, capacity: usize, key: Key, found: Found) {
        if g.current.len() >= capacity && !g.current.contains_key(&key) {
            g.older = std::mem::take(&mut g.current);
        }
        g.current.insert(key, found);
    }

    /// How many entries are held (both generations).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.generations
            .lock()
            .map(|g| g.current.len() + g.older.len())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        [n; 32]
    }

    fn found(score: f32) -> Found {
        Found { score, label: None }
    }

    #[test]
    fn remembers_and_stays_within_two_generations() {
        let cache = VerdictCache::new(2);
        cache.insert(key(1), found(0.1));
        cache.insert(key(2), found(0.2));
        assert_eq!(cache.get(&key(1)), Some(found(0.1)));
        // Full: the third starts a new generation; 1 and 2 are still found.
        cache.insert(key(3), found(0.3));
        assert_eq!(cache.len(), 3);
        // Using 1 keeps it: it moves into the current generation with 3.
        assert_eq!(cache.get(&key(1)), Some(found(0.1)));
        // The next new key rotates again: 2, unused, is forgotten.
        cache.insert(key(4), found(0.4));
        assert_eq!(cache.get(&key(2)), None);
        assert_eq!(cache.get(&key(1)), Some(found(0.1)));
        assert!(cache.len() <= 4);
    }

    #[test]
    fn capacity_zero_is_off() {
        let cache = VerdictCache::new(0);
        cache.insert(key(1), found(1.0));
        assert_eq!(cache.get(&key(1)), None);
    }
}
