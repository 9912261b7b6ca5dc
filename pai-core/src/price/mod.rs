//! Prices and cost, in integers so that money adds up exactly.
//!
//! A price is micro-dollars per million tokens, so a token priced at `p` costs exactly `p`
//! pico-dollars: `cost = tokens × price` with no rounding anywhere. Floating point appears
//! only when a figure is shown to a person.
//!
//! Where prices come from: [`BUILTIN_PRICES`] lists the providers' list prices as of
//! [`PRICES_TAKEN_ON`]; a [`PriceBook`] merges the operator's overrides over them (read from a
//! price file by [`PriceBook::from_yaml`]); a [`SharedPrices`] handle holds the book in force and
//! swaps it whole when the file is reloaded (`pai_tower::PriceFileWatcher` does that). All three
//! answer through the [`PriceTable`] trait.

mod book;
mod builtin;
mod file;
mod shared;

pub use book::PriceBook;
pub use builtin::{ListPrice, BUILTIN_PRICES, PRICES_TAKEN_ON};
pub use file::{parse_overrides, PriceFileError};
pub use shared::SharedPrices;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::usage::Usage;

/// List prices of one model, in micro-USD per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    /// Ordinary prompt tokens.
    pub input: u64,
    /// Prompt tokens read from a cache.
    pub cached_input: u64,
    /// Prompt tokens written to a cache.
    pub cache_write: u64,
    /// Generated tokens.
    pub output: u64,
}

impl Price {
    /// A price from USD per million tokens, as price lists print them.
    pub fn from_usd_per_million(
        input: f64,
        cached_input: f64,
        cache_write: f64,
        output: f64,
    ) -> Price {
        Price {
            input: usd_to_micros(input),
            cached_input: usd_to_micros(cached_input),
            cache_write: usd_to_micros(cache_write),
            output: usd_to_micros(output),
        }
    }

    /// What `usage` costs at this price.
    pub fn cost(&self, usage: &Usage) -> Cost {
        let pico = u128::from(usage.input) * u128::from(self.input)
            + u128::from(usage.cached_input) * u128::from(self.cached_input)
            + u128::from(usage.cache_write) * u128::from(self.cache_write)
            + u128::from(usage.output) * u128::from(self.output);
        Cost { pico_usd: pico }
    }
}

fn usd_to_micros(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1_000_000.0).round() as u64
    } else {
        0
    }
}

/// An amount of money, in pico-USD (10⁻¹² dollars).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Cost {
    /// The amount in pico-USD.
    pub pico_usd: u128,
}

impl Cost {
    /// In dollars, for display.
    pub fn usd(&self) -> f64 {
        self.pico_usd as f64 / 1e12
    }

    /// From dollars, for limits written by people.
    pub fn from_usd(usd: f64) -> Cost {
        Cost {
            pico_usd: if usd.is_finite() && usd > 0.0 {
                (usd * 1e12).round() as u128
            } else {
                0
            },
        }
    }
}

impl std::ops::Add for Cost {
    type Output = Cost;

    fn add(self, rhs: Cost) -> Cost {
        Cost {
            pico_usd: self.pico_usd.saturating_add(rhs.pico_usd),
        }
    }
}

impl fmt::Display for Cost {
    /// Dollars with enough places for a single cheap call to show: `0.000125`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Round half up to the micro-dollar, in integers.
        let micros = (self.pico_usd + 500_000) / 1_000_000;
        write!(f, "{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }
}

/// Prices by model id.
///
/// Contract: exact keys beat trailing-wildcard keys (`claude-sonnet-4-*`); among wildcards the
/// longest prefix wins; overrides merge over the built-in table and may be reloaded at run time.
/// An unknown model returns `None`: its tokens still flow and are audited, only the dollar
/// figure is omitted.
pub trait PriceTable: Send + Sync + 'static {
    /// The price of `model`, if known.
    fn price(&self, model: &str) -> Option<Price>;
}

impl<F> PriceTable for F
where
    F: Fn(&str) -> Option<Price> + Send + Sync + 'static,
{
    fn price(&self, model: &str) -> Option<Price> {
        self(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_exact() {
        // $3/M input, $0.30/M cached, $3.75/M cache write, $15/M output
        let p = Price::from_usd_per_million(3.0, 0.30, 3.75, 15.0);
        let u = Usage::from_anthropic(1_000, 500, 2_000, 10_000);
        let c = p.cost(&u);
        // 1000*3 + 10000*0.3 + 2000*3.75 + 500*15 = 3000 + 3000 + 7500 + 7500 µ$ = 0.021 $
        assert_eq!(c.pico_usd, 21_000_000_000);
        assert_eq!(c.to_string(), "0.021000");
    }

    #[test]
    fn a_million_tiny_costs_add_up_exactly() {
        let p = Price::from_usd_per_million(0.075, 0.0, 0.0, 0.30);
        let one = p.cost(&Usage {
            input: 7,
            output: 3,
            ..Usage::default()
        });
        let mut total = Cost::default();
        for _ in 0..1_000_000 {
            total = total + one;
        }
        assert_eq!(total.pico_usd, one.pico_usd * 1_000_000);
        assert_eq!(total.to_string(), "1.425000");
    }

    #[test]
    fn closures_are_price_tables() {
        let table = |m: &str| (m == "x").then(|| Price::from_usd_per_million(1.0, 0.0, 0.0, 2.0));
        assert!(table.price("x").is_some());
        assert!(table.price("y").is_none());
    }
}
