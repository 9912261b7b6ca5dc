//! Token counts as upstreams actually send them.
//!
//! Usage is what the gateway bills and budgets by, so one odd number must not make a whole
//! `usage` object unreadable. Besides plain integers, [`Count`] accepts floats (`12.0`, from
//! servers that serialise through a float), numeric strings, and negative numbers (taken as 0).
//! `null` and absent fields are handled by wrapping it in `Option` with `#[serde(default)]`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A token count read leniently. See the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Count(pub u64);

/// The value of an optional count, 0 when absent or null.
pub(crate) fn value(count: Option<Count>) -> u64 {
    count.map_or(0, |c| c.0)
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Count, D::Error> {
        struct CountVisitor;

        impl Visitor<'_> for CountVisitor {
            type Value = Count;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token count")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(v).unwrap_or(0)))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Count, E> {
                // `as` saturates, and maps NaN to 0.
                Ok(Count(if v > 0.0 { v.round() as u64 } else { 0 }))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                match v.trim().parse::<f64>() {
                    Ok(n) => self.visit_f64(n),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }

            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
        }

        deserializer.deserialize_any(CountVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(default)]
        n: Option<Count>,
    }

    fn read(json: &str) -> Option<u64> {
        serde_json::from_str::<Holder>(json)
            .ok()
            .map(|h| value(h.n))
    }

    #[test]
    fn odd_numbers_are_still_counts() {
        assert_eq!(read(r#"{"n": 12}"#), Some(12));
        assert_eq!(read(r#"{"n": 12.0}"#), Some(12));
        assert_eq!(read(r#"{"n": "7"}"#), Some(7));
        assert_eq!(read(r#"{"n": -3}"#), Some(0));
        assert_eq!(read(r#"{"n": null}"#), Some(0));
        assert_eq!(read(r#"{}"#), Some(0));
        assert_eq!(read(r#"{"n": "many"}"#), None);
    }
}
