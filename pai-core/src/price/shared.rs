//! [`SharedPrices`]: the price book in force, swapped whole when the price file changes.

use std::sync::{Arc, PoisonError, RwLock};

use super::book::PriceBook;
use super::{Price, PriceTable};

/// A handle on the [`PriceBook`] in force. Clones share it; [`SharedPrices::replace`] swaps in a
/// new book for every clone at once.
///
/// A lookup holds the read lock only to clone an `Arc`, so a reload never waits on requests and
/// a request never sees half of an old table and half of a new one.
///
/// ```
/// use pai_core::price::{Price, PriceBook, SharedPrices};
/// use pai_core::PriceTable;
///
/// let prices = SharedPrices::new(PriceBook::empty());
/// let seen_by_the_gateway = prices.clone();
/// assert_eq!(seen_by_the_gateway.price("m"), None);
///
/// prices.replace(PriceBook::empty().with_override("m", Price::from_usd_per_million(1.0, 1.0, 1.0, 2.0)));
/// assert!(seen_by_the_gateway.price("m").is_some());
/// ```
#[derive(Clone, Debug)]
pub struct SharedPrices {
    book: Arc<RwLock<Arc<PriceBook>>>,
}

impl SharedPrices {
    /// Share `book`.
    pub fn new(book: PriceBook) -> SharedPrices {
        SharedPrices {
            book: Arc::new(RwLock::new(Arc::new(book))),
        }
    }

    /// The book in force now. Later replacements do not change what this returns.
    pub fn current(&self) -> Arc<PriceBook> {
        // A panic elsewhere cannot leave a half-written `Arc` behind, so a poisoned lock
        // still holds a whole book.
        Arc::clone(&self.book.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Put `book` in force for every clone of this handle.
    pub fn replace(&self, book: PriceBook) {
        let book = Arc::new(book);
        // The old book is dropped after the lock is released, not under it.
        let old = std::mem::replace(
            &mut *self.book.write().unwrap_or_else(PoisonError::into_inner),
            book,
        );
        drop(old);
    }
}

impl Default for SharedPrices {
    /// The built-in prices, with no overrides.
    fn default() -> SharedPrices {
        SharedPrices::new(PriceBook::builtin())
    }
}

impl PriceTable for SharedPrices {
    fn price(&self, model: &str) -> Option<Price> {
        self.current().lookup(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_reaches_every_clone_and_spares_held_books() {
        let prices = SharedPrices::default();
        let clone = prices.clone();
        let before = clone.current();
        prices.replace(PriceBook::empty());
        assert_eq!(clone.price("gpt-4o"), None);
        // A caller midway through a request keeps the book it started with.
        assert!(before.lookup("gpt-4o").is_some());
    }

    #[test]
    fn readers_and_a_writer_run_together() {
        let prices = SharedPrices::default();
        let writer = {
            let prices = prices.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let book = if i % 2 == 0 {
                        PriceBook::builtin()
                    } else {
                        PriceBook::builtin().with_override(
                            "gpt-4o",
                            Price::from_usd_per_million(1.0, 1.0, 1.0, 1.0),
                        )
                    };
                    prices.replace(book);
                }
            })
        };
        for _ in 0..2_000 {
            let out = prices.price("gpt-4o").map(|p| p.output);
            assert!(matches!(out, Some(10_000_000) | Some(1_000_000)));
        }
        writer.join().unwrap();
    }
}
