//! Reading price overrides from the YAML file an operator writes.
//!
//! ```yaml
//! gateway:
//!   modelPrices:
//!     "claude-sonnet-4-*": {input: 3.00, output: 15.00, cached_input: 0.30}
//!     "my-vllm-llama-70b": {input: 0.50, output: 1.00}
//! ```
//!
//! Figures are USD per million tokens. `input` and `output` are required; `cached_input` and
//! `cache_write` default to `input`, so that leaving them out never makes a token cheaper than
//! the operator said. As with resources, every problem is reported at once, an unknown field
//! names the nearest known one, and nothing is taken unless the whole file is valid: a file
//! caught half-written must not replace a good table.

use std::fmt;

use serde_json::{Map, Value};

use super::book::PriceBook;
use super::Price;
use crate::resource::suggest::close_matches;

/// Why a price file could not be read. Each entry is one complete sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceFileError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for PriceFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for PriceFileError {}

impl PriceBook {
    /// The built-ins with the overrides of a price file on top.
    pub fn from_yaml(text: &str) -> Result<PriceBook, PriceFileError> {
        parse_overrides(text).map(PriceBook::with_overrides)
    }
}

/// The overrides of a price file, as `(key, price)` in file order.
///
/// An empty file is an error rather than "no overrides": it is what a reader sees in the
/// moment between an editor truncating the file and writing it again. To clear every override,
/// write `gateway: {modelPrices: {}}`.
pub fn parse_overrides(text: &str) -> Result<Vec<(String, Price)>, PriceFileError> {
    let fail = |p: String| PriceFileError { problems: vec![p] };
    if text.trim().is_empty() {
        return Err(fail(
            "the price file is empty; to clear every override write `gateway: {modelPrices: {}}`"
                .to_owned(),
        ));
    }
    let doc: Value =
        serde_saphyr::from_str(text).map_err(|e| fail(format!("not valid YAML: {e}")))?;
    let mut problems = Vec::new();
    let mut prices = Vec::new();

    let Some(top) = mapping(&doc, "the document", &mut problems) else {
        return Err(PriceFileError { problems });
    };
    check_fields(top, "", &["gateway"], &mut problems);
    let gateway = top.get("gateway").unwrap_or(&Value::Null);
    let entries = match mapping(gateway, "gateway", &mut problems) {
        Some(gateway) => {
            check_fields(gateway, "gateway.", &["modelPrices"], &mut problems);
            match gateway.get("modelPrices") {
                Some(Value::Null) | None => None,
                Some(v) => mapping(v, "gateway.modelPrices", &mut problems),
            }
        }
        None => None,
    };

    for (key, value) in entries.into_iter().flatten() {
        let at = format!("gateway.modelPrices.{key:?}");
        if let Err(why) = check_key(key) {
            problems.push(format!("{at}: {why}"));
            continue;
        }
        if let Some(price) = entry(value, &at, &mut problems) {
            prices.push((key.clone(), price));
        }
    }

    if problems.is_empty() {
        Ok(prices)
    } else {
        Err(PriceFileError { problems })
    }
}

const PRICE_FIELDS: &[&str] = &["input", "output", "cached_input", "cache_write"];

/// One `{input, output, cached_input?, cache_write?}` entry.
fn entry(value: &Value, at: &str, problems: &mut Vec<String>) -> Option<Price> {
    let map = mapping(value, at, problems)?;
    let before = problems.len();
    check_fields(map, &format!("{at}."), PRICE_FIELDS, problems);
    let mut usd = |field: &str, required: bool| -> Option<f64> {
        match map.get(field) {
            None | Some(Value::Null) if required => {
                problems.push(format!("{at}.{field} is required (USD per million tokens)"));
                None
            }
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(n) if n.is_finite() && n >= 0.0 => Some(n),
                _ => {
                    problems.push(format!(
                        "{at}.{field} must be a finite, non-negative number of USD per million tokens, not {v}"
                    ));
                    None
                }
            },
        }
    };
    let input = usd("input", true);
    let output = usd("output", true);
    let cached_input = usd("cached_input", false);
    let cache_write = usd("cache_write", false);
    if problems.len() > before {
        return None;
    }
    let (input, output) = (input?, output?);
    Some(Price::from_usd_per_million(
        input,
        cached_input.unwrap_or(input),
        cache_write.unwrap_or(input),
        output,
    ))
}

/// A model id, or a prefix with one trailing `*`.
fn check_key(key: &str) -> Result<(), String> {
    if key.trim().is_empty() {
        return Err("a model id cannot be empty".to_owned());
    }
    if key.trim() != key {
        return Err("a model id cannot start or end with spaces".to_owned());
    }
    if key.trim_end_matches('*').contains('*') || key.ends_with("**") {
        return Err(
            "`*` may only end a key, once (`claude-sonnet-4-*` prices every model id starting with `claude-sonnet-4-`)"
                .to_owned(),
        );
    }
    Ok(())
}

fn mapping<'a>(
    value: &'a Value,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<&'a Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        Value::Null => {
            problems.push(format!(
                "{at} is empty; the file must hold gateway.modelPrices, a mapping of model ids to prices"
            ));
            None
        }
        other => {
            problems.push(format!("{at} must be a mapping, not {other}"));
            None
        }
    }
}

fn check_fields(map: &Map<String, Value>, at: &str, known: &[&str], problems: &mut Vec<String>) {
    for key in map.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let near = close_matches(key, known.iter().copied());
        problems.push(match near.first() {
            Some(n) => format!("unknown field {at}{key}; did you mean {n}?"),
            None => format!(
                "unknown field {at}{key}; the fields here are {}",
                known.join(", ")
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PriceTable;

    const EXAMPLE: &str = r#"
gateway:
  modelPrices:
    "claude-sonnet-4-*": {input: 3.00, output: 15.00, cached_input: 0.30}
    "my-vllm-llama-70b": {input: 0.50, output: 1.00}
"#;

    fn problems(yaml: &str) -> Vec<String> {
        parse_overrides(yaml)
            .err()
            .map(|e| e.problems)
            .unwrap_or_default()
    }

    #[test]
    fn the_documented_example_reads() {
        let book = PriceBook::from_yaml(EXAMPLE).unwrap();
        assert_eq!(book.override_count(), 2);
        let llama = book.price("my-vllm-llama-70b").unwrap();
        assert_eq!(llama, Price::from_usd_per_million(0.5, 0.5, 0.5, 1.0));
        let sonnet = book.price("claude-sonnet-4-5-20250929").unwrap();
        assert_eq!(sonnet.cached_input, 300_000);
        // cache_write was left out: it costs what input costs, never less.
        assert_eq!(sonnet.cache_write, 3_000_000);
        // Built-ins still answer for everything else.
        assert!(book.price("gpt-4o").is_some());
    }

    #[test]
    fn cache_write_and_integers_are_accepted() {
        let yaml = "gateway:\n  modelPrices:\n    m: {input: 3, output: 15, cache_write: 3.75}\n";
        let got = parse_overrides(yaml).unwrap();
        assert_eq!(
            got,
            vec![(
                "m".to_owned(),
                Price::from_usd_per_million(3.0, 3.0, 3.75, 15.0)
            )]
        );
    }

    #[test]
    fn misspelt_fields_name_the_nearest_known_one() {
        let yaml = "gateway:\n  modelPrice:\n    m: {input: 1, output: 2}\n";
        assert_eq!(
            problems(yaml),
            vec!["unknown field gateway.modelPrice; did you mean modelPrices?"]
        );
        let yaml = "gateway:\n  modelPrices:\n    m: {input: 1, output: 2, cached_inptu: 0.1}\n";
        assert_eq!(
            problems(yaml),
            vec![
                r#"unknown field gateway.modelPrices."m".cached_inptu; did you mean cached_input?"#
            ]
        );
        let yaml = "gatewya:\n  modelPrices: {}\n";
        assert!(problems(yaml)[0].contains("did you mean gateway?"));
    }

    #[test]
    fn bad_numbers_are_refused_all_at_once() {
        let yaml = r#"
gateway:
  modelPrices:
    a: {input: -1, output: 2}
    b: {input: 1, output: [1]}
    c: {input: "cheap", output: 2}
    d: {input: 1}
    "e*f": {input: 1, output: 1}
"#;
        let p = problems(yaml);
        assert_eq!(p.len(), 5, "{p:#?}");
        assert!(p[0].contains(r#""a".input must be a finite, non-negative number"#));
        assert!(p[1].contains(r#""b".output"#));
        assert!(p[2].contains(r#""c".input"#));
        assert!(p[3].contains(r#""d".output is required"#));
        assert!(p[4].contains("`*` may only end a key"));
        // The YAML reader itself refuses .inf, .nan and numbers too large for a float.
        assert!(!problems("gateway: {modelPrices: {m: {input: .nan, output: 1}}}").is_empty());
        assert!(!problems("gateway: {modelPrices: {m: {input: 1, output: 1e400}}}").is_empty());
    }

    #[test]
    fn empty_and_shapeless_files_are_errors_but_an_empty_table_is_not() {
        assert!(problems("")[0].contains("empty"));
        assert!(problems("  \n# just a comment\n").len() == 1);
        assert!(!problems("gateway:\n  modelPrices: [1, 2]\n").is_empty());
        assert!(!problems("gateway: {modelPrices: {m: 3}}").is_empty());
        assert!(!problems("gateway: {modelPrices: {m: {input: 1, output: 2}}").is_empty());
        assert_eq!(
            parse_overrides("gateway: {modelPrices: {}}").unwrap(),
            vec![]
        );
        assert_eq!(parse_overrides("gateway: {}").unwrap(), vec![]);
    }
}
