//! [`PriceBook`]: the built-in prices with the operator's overrides on top.
//!
//! Lookup rules, in order, first for the overrides and then for the built-ins:
//!
//! 1. the exact model id;
//! 2. for a dated snapshot (`claude-sonnet-4-5-20250929`, `gpt-4o-2024-08-06`) or a `-latest`
//!    alias, the undated id;
//! 3. the trailing-`*` key with the longest prefix of the model id (`claude-sonnet-4-*` beats
//!    `claude-sonnet-*`; a bare `*` prices everything else).
//!
//! Any override that matches beats every built-in entry, so an operator who writes
//! `claude-sonnet-4-*` reprices `claude-sonnet-4-5` too, although the built-in table lists that
//! model exactly. Within one layer an exact key always beats a wildcard.

use std::collections::HashMap;

use super::builtin::BUILTIN_PRICES;
use super::{Price, PriceTable};

/// Prices by model id: built-ins merged with overrides. Cheap to share behind an `Arc`; see
/// [`super::SharedPrices`] for swapping one at run time.
///
/// ```
/// use pai_core::price::{Price, PriceBook};
/// use pai_core::PriceTable;
///
/// let book = PriceBook::builtin()
///     .with_override("my-vllm-llama-70b", Price::from_usd_per_million(0.5, 0.5, 0.5, 1.0));
/// assert_eq!(book.price("claude-sonnet-4-5-20250929").map(|p| p.output), Some(15_000_000));
/// assert_eq!(book.price("my-vllm-llama-70b").map(|p| p.input), Some(500_000));
/// assert_eq!(book.price("someone-elses-model"), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceBook {
    overrides: Layer,
    builtin: Layer,
}

impl PriceBook {
    /// A book with no prices at all: every model is unknown.
    pub fn empty() -> PriceBook {
        PriceBook::default()
    }

    /// The built-in list prices of [`super::BUILTIN_PRICES`], with no overrides.
    pub fn builtin() -> PriceBook {
        let mut builtin = Layer::default();
        for row in BUILTIN_PRICES {
            builtin.insert(row.model, row.price());
        }
        PriceBook {
            overrides: Layer::default(),
            builtin,
        }
    }

    /// Add or replace one override. `key` is a model id or a prefix ending in `*`.
    pub fn with_override(mut self, key: impl Into<String>, price: Price) -> PriceBook {
        self.overrides.insert(key, price);
        self
    }

    /// The built-ins with every override of `overrides` on top.
    pub fn with_overrides(overrides: impl IntoIterator<Item = (String, Price)>) -> PriceBook {
        let mut book = PriceBook::builtin();
        for (key, price) in overrides {
            book.overrides.insert(key, price);
        }
        book
    }

    /// How many overrides the book holds.
    pub fn override_count(&self) -> usize {
        self.overrides.len()
    }

    /// The price of `model`; see the module docs for the rules.
    pub fn lookup(&self, model: &str) -> Option<Price> {
        self.overrides
            .lookup(model)
            .or_else(|| self.builtin.lookup(model))
    }
}

impl PriceTable for PriceBook {
    fn price(&self, model: &str) -> Option<Price> {
        self.lookup(model)
    }
}

/// One layer of keys: exact ids, and wildcards by prefix.
///
/// A lookup costs the same however many prices the layer holds: a few hash lookups for the
/// exact id, then one per distinct wildcard prefix length (longest first) that fits the model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Layer {
    exact: HashMap<String, Price>,
    /// Prices of `prefix*` keys, by prefix.
    wildcards: HashMap<String, Price>,
    /// The lengths of the prefixes in `wildcards`, longest first, each once.
    prefix_lengths: Vec<usize>,
}

impl Layer {
    fn insert(&mut self, key: impl Into<String>, price: Price) {
        let key = key.into();
        match key.strip_suffix('*') {
            Some(prefix) => {
                if let Err(at) = self
                    .prefix_lengths
                    .binary_search_by(|len| prefix.len().cmp(len))
                {
                    self.prefix_lengths.insert(at, prefix.len());
                }
                self.wildcards.insert(prefix.to_owned(), price);
            }
            None => {
                self.exact.insert(key, price);
            }
        }
    }

    fn len(&self) -> usize {
        self.exact.len() + self.wildcards.len()
    }

    fn lookup(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.exact.get(model) {
            return Some(*p);
        }
        if let Some(p) = undated(model).and_then(|m| self.exact.get(m)) {
            return Some(*p);
        }
        self.prefix_lengths
            .iter()
            .filter_map(|&len| model.get(..len))
            .find_map(|prefix| self.wildcards.get(prefix))
            .copied()
    }
}

/// The id without a trailing `-latest`, `-YYYYMMDD` or `-YYYY-MM-DD`, if it has one.
fn undated(model: &str) -> Option<&str> {
    if let Some(base) = model.strip_suffix("-latest") {
        return Some(base);
    }
    // In the patterns `d` stands for a digit; every other byte must match exactly.
    for pattern in ["-dddddddd", "-dddd-dd-dd"] {
        let Some(cut) = model.len().checked_sub(pattern.len()).filter(|&c| c > 0) else {
            continue;
        };
        let tail = &model.as_bytes()[cut..];
        let fits = tail.iter().zip(pattern.bytes()).all(|(&b, p)| match p {
            b'd' => b.is_ascii_digit(),
            _ => b == p,
        });
        if fits {
            // The tail is ASCII, so `cut` is a character boundary; `get` keeps that unproven
            // assumption from ever panicking.
            return model.get(..cut);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(input: f64, output: f64) -> Price {
        Price::from_usd_per_million(input, input, input, output)
    }

    fn out(book: &PriceBook, model: &str) -> Option<u64> {
        book.lookup(model).map(|p| p.output)
    }

    #[test]
    fn exact_beats_wildcard_and_the_longest_wildcard_wins() {
        let book = PriceBook::empty()
            .with_override("claude-*", usd(1.0, 1.0))
            .with_override("claude-sonnet-4-*", usd(3.0, 3.0))
            .with_override("claude-sonnet-*", usd(2.0, 2.0))
            .with_override("claude-sonnet-4-5", usd(4.0, 4.0));
        assert_eq!(out(&book, "claude-sonnet-4-5"), Some(4_000_000));
        assert_eq!(out(&book, "claude-sonnet-4-6"), Some(3_000_000));
        assert_eq!(out(&book, "claude-sonnet-5"), Some(2_000_000));
        assert_eq!(out(&book, "claude-haiku-4-5"), Some(1_000_000));
        assert_eq!(out(&book, "gpt-4o"), None);
    }

    #[test]
    fn many_wildcards_of_one_length_and_a_catch_all() {
        // Thousands of prefixes of the same few lengths, a replaced one, and `*` for the rest.
        let mut book = PriceBook::empty().with_override("*", usd(9.0, 9.0));
        for i in 0..5_000 {
            book = book.with_override(format!("family-{i:04}-*"), usd(1.0, f64::from(i)));
        }
        book = book.with_override("family-0042-*", usd(1.0, 0.5));
        assert_eq!(out(&book, "family-0042-large"), Some(500_000));
        assert_eq!(out(&book, "family-4999-x"), Some(4_999_000_000));
        assert_eq!(out(&book, "family-5000-x"), Some(9_000_000));
        assert_eq!(out(&book, "héllo"), Some(9_000_000));
        assert_eq!(book.override_count(), 5_001);
    }

    #[test]
    fn dated_snapshots_fall_back_to_the_undated_entry() {
        let book = PriceBook::builtin();
        assert_eq!(out(&book, "claude-sonnet-4-5-20250929"), Some(15_000_000));
        assert_eq!(out(&book, "gpt-4o-2024-08-06"), Some(10_000_000));
        assert_eq!(out(&book, "gpt-4o-mini-2024-07-18"), Some(600_000));
        assert_eq!(out(&book, "claude-3-5-haiku-latest"), Some(4_000_000));
        // A snapshot with a price of its own keeps it.
        assert_eq!(out(&book, "gpt-4o-2024-05-13"), Some(15_000_000));
        // The undated Opus 4 entry beats the newer, cheaper Opus family stand-in.
        assert_eq!(out(&book, "claude-opus-4-20250514"), Some(75_000_000));
        assert_eq!(out(&book, "claude-opus-4-1-20250805"), Some(75_000_000));
        assert_eq!(out(&book, "claude-opus-4-6"), Some(25_000_000));
    }

    #[test]
    fn overrides_beat_builtins_even_when_less_specific() {
        let book = PriceBook::builtin().with_override("claude-sonnet-4-*", usd(2.0, 10.0));
        assert_eq!(out(&book, "claude-sonnet-4-5"), Some(10_000_000));
        assert_eq!(out(&book, "claude-sonnet-4-5-20250929"), Some(10_000_000));
        // Outside the override, the built-ins still answer.
        assert_eq!(out(&book, "claude-sonnet-5"), Some(15_000_000));
        assert_eq!(book.override_count(), 1);
    }

    #[test]
    fn a_later_override_of_the_same_key_replaces_the_earlier() {
        let book = PriceBook::empty()
            .with_override("m-*", usd(1.0, 1.0))
            .with_override("m-*", usd(2.0, 2.0));
        assert_eq!(out(&book, "m-1"), Some(2_000_000));
        assert_eq!(book.override_count(), 1);
    }

    #[test]
    fn only_real_dates_are_stripped() {
        assert_eq!(
            undated("claude-sonnet-4-5-20250929"),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(undated("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(undated("o3-mini-latest"), Some("o3-mini"));
        assert_eq!(undated("gpt-4o"), None);
        assert_eq!(undated("gpt-4.1-mini"), None);
        assert_eq!(undated("model-2024-8-06x"), None);
        assert_eq!(undated("-20250929"), None);
        assert_eq!(undated("x-2025092a"), None);
        // Client-chosen ids may hold any character; none of them may panic.
        assert_eq!(undated("模型模型模型"), None);
        assert_eq!(undated("é-20250929"), Some("é"));
    }
}
