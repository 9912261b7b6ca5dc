//! Prometheus metrics, kept in-process and rendered on demand.
//!
//! Series: `pai_requests_total{workload,model,status}`,
//! `pai_tokens_total{workload,model,kind}` (kind input|cached_input|cache_write|output),
//! `pai_cost_usd_total{workload,model,kind}` (kind input|cached_input|output, from the price
//! table; absent for unpriced models) and `pai_request_duration_seconds{workload,model}`
//! (histogram). Labels never carry key material: the workload is `ext:<access-key-name>` or an
//! agent's name. The registry is one small map behind a mutex held only to add numbers — never
//! across I/O.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

use pai_core::store::CallRecord;
use pai_core::{PriceTable, Usage};

const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(String, String), f64>,
    histograms: BTreeMap<String, Histogram>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Registry::default()))
}

/// Label values in the exposition format: `\\`, `\"` and `\n` escaped, and a carriage return
/// written as `\r` so that no label can break a line.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The models the configuration names; only these become `model` labels.
fn known_models() -> &'static std::sync::RwLock<std::collections::HashSet<String>> {
    static KNOWN: OnceLock<std::sync::RwLock<std::collections::HashSet<String>>> = OnceLock::new();
    KNOWN.get_or_init(Default::default)
}

/// Let `names` (models the configuration names) appear as `model` labels. Labels already
/// emitted stay, so the set only grows with configuration, never with requests.
pub(crate) fn know_models(names: Vec<String>) {
    if let Ok(mut known) = known_models().write() {
        known.extend(names);
    }
}

/// `model` as a label: itself when configured or priced, `other` otherwise, so that what a
/// client writes in `model` never creates a series.
fn model_label(model: &str) -> &str {
    let configured = known_models()
        .read()
        .map(|k| k.contains(model))
        .unwrap_or(false);
    let priced = PRICES.get().is_some_and(|p| p.price(model).is_some());
    if configured || priced {
        model
    } else {
        "other"
    }
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    parts.join(",")
}

/// Add `value` to the counter `name{labels}`.
pub fn add(name: &str, pairs: &[(&str, &str)], value: f64) {
    add_all(vec![(name, labels(pairs), value)]);
}

/// Several increments under one short lock.
fn add_all(increments: Vec<(&str, String, f64)>) {
    if let Ok(mut r) = registry().lock() {
        r.add_all(increments);
    }
}

impl Registry {
    fn add_all(&mut self, increments: Vec<(&str, String, f64)>) {
        for (name, labels, value) in increments {
            *self
                .counters
                .entry((name.to_owned(), labels))
                .or_insert(0.0) += value;
        }
    }
}

/// The prices the cost series are computed with.
static PRICES: OnceLock<std::sync::Arc<dyn PriceTable>> = OnceLock::new();

/// Use `prices` for the cost series (the first call wins; a gateway sets it when built).
pub fn set_prices(prices: std::sync::Arc<dyn PriceTable>) {
    let _ = PRICES.set(prices);
}

/// Count one finished call.
pub(crate) fn call_finished(record: &CallRecord, usage: Option<&Usage>) {
    let status = record.status.to_string();
    let base = [
        ("workload", record.workload.as_str()),
        ("model", model_label(&record.model)),
    ];
    let mut increments = vec![(
        "pai_requests_total",
        labels(&[base[0], base[1], ("status", &status)]),
        1.0,
    )];
    if let Some(u) = usage {
        for (kind, n) in [
            ("input", u.input),
            ("cached_input", u.cached_input),
            ("cache_write", u.cache_write),
            ("output", u.output),
        ] {
            if n > 0 {
                add(
                    "pai_tokens_total",
                    &[base[0], base[1], ("kind", kind)],
                    n as f64,
                );
            }
        }
        if let Some(price) = PRICES.get().and_then(|p| p.price(&record.model)) {
            let pico = |n: u64, p: u64| u128::from(n) * u128::from(p);
            for (kind, cost) in [
                (
                    "input",
                    pico(u.input, price.input) + pico(u.cache_write, price.cache_write),
                ),
                ("cached_input", pico(u.cached_input, price.cached_input)),
                ("output", pico(u.output, price.output)),
            ] {
                if cost > 0 {
                    increments.push((
                        "pai_cost_usd_total",
                        labels(&[base[0], base[1], ("kind", kind)]),
                        cost as f64 / 1e12,
                    ));
                }
            }
        }
    }
    let series = labels(&base);
    if let Ok(mut r) = registry().lock() {
        r.add_all(increments);
        let h = r.histograms.entry(series).or_default();
        let secs = record.duration_ms as f64 / 1000.0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }
}

/// Everything in the Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    let Ok(r) = registry().lock() else {
        return out;
    };
    let mut last = "";
    for ((name, labels), value) in &r.counters {
        if name != last {
            let _ = writeln!(out, "# TYPE {name} counter");
            last = name;
        }
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
    if !r.histograms.is_empty() {
        let name = "pai_request_duration_seconds";
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (labels, h) in &r.histograms {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{labels},le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_show_up_in_the_text_format() {
        know_models(vec!["m\"x\r".into()]);
        let record = CallRecord {
            workload: "ext:metrics-test".into(),
            model: "m\"x\r".into(),
            status: 200,
            duration_ms: 120,
            ..CallRecord::default()
        };
        let usage = Usage {
            input: 10,
            output: 5,
            ..Usage::default()
        };
        call_finished(&record, Some(&usage));
        let text = render();
        assert!(
            text.contains(
                r#"pai_requests_total{workload="ext:metrics-test",model="m\"x\r",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"pai_tokens_total{workload="ext:metrics-test",model="m\"x\r",kind="output"} 5"#
        ));
        assert!(text.contains(r#"pai_request_duration_seconds_bucket{workload="ext:metrics-test",model="m\"x\r",le="0.25"} 1"#));
    }
}
