//! The list prices pai ships with, for the models in [`crate::catalog`].
//!
//! Figures are USD per million tokens as the providers' price pages print them, for the
//! standard (not batch, not priority) tier, taken on [`PRICES_TAKEN_ON`]. What is deliberately
//! left out, because usage does not report what would be needed to charge it:
//!
//! - Anthropic: cache writes are priced at the 5-minute rate (1.25 × input); 1-hour writes cost
//!   2 × input. Long-context surcharges (prompts over 200k tokens on the 1M-context beta) are
//!   not applied.
//! - OpenAI: cache writes are free and never reported; the column is filled with the input
//!   price only so that the table has no holes.
//! - Gemini: Gemini 2.5 Pro is priced at its ≤200k-token tier; audio input and cache storage
//!   per hour are not priced. Gemini does not report cache writes.
//!
//! Where a model is newer than the day the prices were taken, a trailing-`*` family entry
//! (`claude-opus-*`) prices it at its family's current price. That is a stand-in, not a fact:
//! override it in the price file when the real price is known. A model with no entry at all
//! gets no dollar figure; its tokens still flow and are audited.

use super::Price;

/// The day the built-in prices were last checked against the providers' price pages.
pub const PRICES_TAKEN_ON: &str = "2025-11-24";

/// One row of a price list, in USD per million tokens as printed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ListPrice {
    /// A model id, or a family ending in `*`.
    pub model: &'static str,
    /// Ordinary prompt tokens.
    pub input: f64,
    /// Prompt tokens read from a cache; `None` where the provider gives no discount, which
    /// prices them as input.
    pub cached_input: Option<f64>,
    /// Prompt tokens written to a cache; `None` where the provider makes no separate charge,
    /// which prices them as input.
    pub cache_write: Option<f64>,
    /// Generated tokens, reasoning included.
    pub output: f64,
}

impl ListPrice {
    /// The price in the integer units the gateway computes with.
    pub fn price(&self) -> Price {
        Price::from_usd_per_million(
            self.input,
            self.cached_input.unwrap_or(self.input),
            self.cache_write.unwrap_or(self.input),
            self.output,
        )
    }
}

const fn anthropic(
    model: &'static str,
    input: f64,
    cached: f64,
    write: f64,
    out: f64,
) -> ListPrice {
    ListPrice {
        model,
        input,
        cached_input: Some(cached),
        cache_write: Some(write),
        output: out,
    }
}

const fn cached(model: &'static str, input: f64, cached: f64, out: f64) -> ListPrice {
    ListPrice {
        model,
        input,
        cached_input: Some(cached),
        cache_write: None,
        output: out,
    }
}

const fn plain(model: &'static str, input: f64, out: f64) -> ListPrice {
    ListPrice {
        model,
        input,
        cached_input: None,
        cache_write: None,
        output: out,
    }
}

/// The built-in price list. Dated snapshots (`gpt-4o-2024-08-06`) and `-latest` aliases are
/// priced by their undated entry unless listed themselves.
#[rustfmt::skip]
pub const BUILTIN_PRICES: &[ListPrice] = &[
    // Anthropic: input, cache read, cache write (5 min), output.
    anthropic("claude-opus-4-5",   5.00, 0.50,  6.25, 25.00),
    anthropic("claude-opus-4-1",  15.00, 1.50, 18.75, 75.00),
    anthropic("claude-opus-4-0",  15.00, 1.50, 18.75, 75.00),
    anthropic("claude-opus-4",    15.00, 1.50, 18.75, 75.00),
    anthropic("claude-sonnet-4-5", 3.00, 0.30,  3.75, 15.00),
    anthropic("claude-sonnet-4-0", 3.00, 0.30,  3.75, 15.00),
    anthropic("claude-sonnet-4",   3.00, 0.30,  3.75, 15.00),
    anthropic("claude-haiku-4-5",  1.00, 0.10,  1.25,  5.00),
    anthropic("claude-3-7-sonnet", 3.00, 0.30,  3.75, 15.00),
    anthropic("claude-3-5-haiku",  0.80, 0.08,  1.00,  4.00),
    // Family stand-ins for models newer than PRICES_TAKEN_ON (claude-opus-4-6 … claude-opus-5-5,
    // claude-sonnet-4-6 … claude-sonnet-5-5, claude-haiku-5-5): each family's price as of that
    // day, not a confirmed price for those models.
    anthropic("claude-opus-*",     5.00, 0.50,  6.25, 25.00),
    anthropic("claude-sonnet-*",   3.00, 0.30,  3.75, 15.00),
    anthropic("claude-haiku-*",    1.00, 0.10,  1.25,  5.00),

    // OpenAI: input, cached input, output.
    cached("gpt-4o",       2.50, 1.25,  10.00),
    // The first gpt-4o snapshot kept its launch price and has no cache discount.
    plain("gpt-4o-2024-05-13", 5.00,    15.00),
    cached("gpt-4o-mini",  0.15, 0.075,  0.60),
    cached("o1",          15.00, 7.50,  60.00),
    cached("o1-mini",      1.10, 0.55,   4.40),
    cached("o3",           2.00, 0.50,   8.00),
    cached("o3-mini",      1.10, 0.55,   4.40),
    cached("o4-mini",      1.10, 0.275,  4.40),
    cached("gpt-4.1",      2.00, 0.50,   8.00),
    cached("gpt-4.1-mini", 0.40, 0.10,   1.60),
    cached("gpt-4.1-nano", 0.10, 0.025,  0.40),
    cached("gpt-5",        1.25, 0.125, 10.00),
    cached("gpt-5-mini",   0.25, 0.025,  2.00),
    cached("gpt-5-nano",   0.05, 0.005,  0.40),
    cached("gpt-5.1",      1.25, 0.125, 10.00),

    // Gemini: input, cached input, output (≤200k-token prompts for 2.5 Pro).
    cached("gemini-2.5-pro",        1.25, 0.31,  10.00),
    cached("gemini-2.5-flash",      0.30, 0.075,  2.50),
    cached("gemini-2.5-flash-lite", 0.10, 0.025,  0.40),
    cached("gemini-2.0-flash",      0.10, 0.025,  0.40),
    plain("gemini-2.0-flash-lite",  0.075,        0.30),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;

    #[test]
    fn every_catalogued_model_has_a_price() {
        let book = super::super::PriceBook::builtin();
        for model in catalog::ANTHROPIC
            .iter()
            .chain(catalog::OPENAI)
            .chain(catalog::GEMINI)
        {
            assert!(
                super::super::PriceTable::price(&book, model).is_some(),
                "{model} has no built-in price"
            );
        }
    }

    #[test]
    fn no_model_is_listed_twice() {
        let mut seen = std::collections::HashSet::new();
        for row in BUILTIN_PRICES {
            assert!(seen.insert(row.model), "{} is listed twice", row.model);
        }
    }

    #[test]
    fn list_prices_convert_exactly() {
        let p = anthropic("x", 3.00, 0.30, 3.75, 15.00).price();
        assert_eq!(
            (p.input, p.cached_input, p.cache_write, p.output),
            (3_000_000, 300_000, 3_750_000, 15_000_000)
        );
        let p = cached("y", 0.15, 0.075, 0.60).price();
        assert_eq!(p.cached_input, 75_000);
        assert_eq!(p.cache_write, p.input);
        let p = plain("z", 0.075, 0.30).price();
        assert_eq!(p.cached_input, 75_000);
    }
}
