//! Prometheus metrics, kept in memory by each gateway and rendered on demand.
//!
//! Series: `pai_requests_total{workload,model,status}`,
//! `pai_tokens_total{workload,model,kind}` (kind input|cached_input|cache_write|output),
//! `pai_cost_usd_total{workload,model,kind}` (kind input|cached_input|output, from the
//! gateway's price table; absent for unpriced models) and
//! `pai_request_duration_seconds{workload,model}` (histogram),
//! `pai_guard_verdicts_total{binding,verdict,enforcement}` and `pai_guard_scan_seconds{binding}`
//! (histogram). Labels never carry key material: the workload is `ext:<access-key-name>` or an
//! agent's name; a binding is a GuardBinding's name.
//!
//! There is no process-wide registry: a [`Metrics`] is a handle (cheap to clone) that one
//! [`crate::Gateway`] counts into, or several if an embedder hands the same one to each
//! ([`crate::GatewayBuilder::metrics`]); two gateways built apart never see each other's
//! calls. The registry is one small map behind a mutex held only to add numbers — never across
//! I/O.
//!
//! # Example
//!
//! ```
//! let metrics = pai_tower::metrics::Metrics::new();
//! metrics.add("my_app_reloads_total", &[("source", "file")], 1.0);
//! assert!(metrics
//!     .render()
//!     .contains("my_app_reloads_total{source=\"file\"} 1"));
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::{Arc, Mutex, RwLock};

use pai_core::store::CallRecord;
use pai_core::{PriceTable, Usage};

const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Guard scans take micro- to milliseconds (an external classifier, up to its timeout).
const GUARD_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64; 12], secs: f64) {
        for (i, bound) in bounds.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64; 12]) {
        for (i, bound) in bounds.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{bound}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(String, String), f64>,
    histograms: BTreeMap<String, Histogram>,
    guard_scans: BTreeMap<String, Histogram>,
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

/// A gateway's metrics: the series it counts and the models it may name in labels. Clones
/// share them. See the module docs.
#[derive(Clone, Default)]
pub struct Metrics {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    registry: Mutex<Registry>,
    /// The models the configuration names; only these (and priced ones) become `model` labels.
    known_models: RwLock<HashSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
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

fn labels(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    parts.join(",")
}

impl Metrics {
    /// Empty metrics, shared by nothing yet.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Let `names` (models the configuration names) appear as `model` labels. Labels already
    /// emitted stay, so the set only grows with configuration, never with requests.
    pub(crate) fn know_models(&self, names: Vec<String>) {
        if let Ok(mut known) = self.shared.known_models.write() {
            known.extend(names);
        }
    }

    /// `model` as a label: itself when configured or priced by `prices`, `other` otherwise, so
    /// that what a client writes in `model` never creates a series.
    fn model_label<'a>(&self, model: &'a str, prices: Option<&dyn PriceTable>) -> &'a str {
        let configured = self
            .shared
            .known_models
            .read()
            .map(|k| k.contains(model))
            .unwrap_or(false);
        let priced = prices.is_some_and(|p| p.price(model).is_some());
        if configured || priced {
            model
        } else {
            "other"
        }
    }

    /// Add `value` to the counter `name{labels}`.
    pub fn add(&self, name: &str, pairs: &[(&str, &str)], value: f64) {
        self.add_all(vec![(name, labels(pairs), value)]);
    }

    /// Several increments under one short lock.
    fn add_all(&self, increments: Vec<(&str, String, f64)>) {
        if let Ok(mut r) = self.shared.registry.lock() {
            r.add_all(increments);
        }
    }

    /// Count one finished call; its cost is computed with `prices`, the price table of the
    /// gateway that answered it.
    pub(crate) fn call_finished(
        &self,
        record: &CallRecord,
        usage: Option<&Usage>,
        prices: Option<&dyn PriceTable>,
    ) {
        let status = record.status.to_string();
        let base = [
            ("workload", record.workload.as_str()),
            ("model", self.model_label(&record.model, prices)),
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
                    increments.push((
                        "pai_tokens_total",
                        labels(&[base[0], base[1], ("kind", kind)]),
                        n as f64,
                    ));
                }
            }
            if let Some(price) = prices.and_then(|p| p.price(&record.model)) {
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
        if let Ok(mut r) = self.shared.registry.lock() {
            r.add_all(increments);
            let h = r.histograms.entry(series).or_default();
            h.observe(&BUCKETS, record.duration_ms as f64 / 1000.0);
        }
    }

    /// Count one guard's verdict on a call and how long its scan took. `binding` is a
    /// GuardBinding's name (configuration, not request data), so the label set stays bounded.
    pub(crate) fn guard_verdict(
        &self,
        binding: &str,
        verdict: &str,
        enforcement: &str,
        took: std::time::Duration,
    ) {
        let counted = labels(&[
            ("binding", binding),
            ("verdict", verdict),
            ("enforcement", enforcement),
        ]);
        if let Ok(mut r) = self.shared.registry.lock() {
            r.add_all(vec![("pai_guard_verdicts_total", counted, 1.0)]);
            r.guard_scans
                .entry(labels(&[("binding", binding)]))
                .or_default()
                .observe(&GUARD_BUCKETS, took.as_secs_f64());
        }
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(r) = self.shared.registry.lock() else {
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
                h.render(&mut out, name, labels, &BUCKETS);
            }
        }
        if !r.guard_scans.is_empty() {
            let name = "pai_guard_scan_seconds";
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (labels, h) in &r.guard_scans {
                h.render(&mut out, name, labels, &GUARD_BUCKETS);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pai_core::price::{Price, PriceBook};

    fn call(workload: &str, model: &str) -> CallRecord {
        CallRecord {
            workload: workload.into(),
            model: model.into(),
            status: 200,
            duration_ms: 120,
            ..CallRecord::default()
        }
    }

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input,
            output,
            ..Usage::default()
        }
    }

    #[test]
    fn calls_show_up_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.know_models(vec!["m\"x\r".into()]);
        let record = call("ext:metrics-test", "m\"x\r");
        metrics.call_finished(&record, Some(&usage(10, 5)), None);
        let text = metrics.render();
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
        // Unpriced: tokens, no dollars.
        assert!(!text.contains("pai_cost_usd_total"), "{text}");
    }

    #[test]
    fn costs_come_from_the_prices_handed_in_and_unknown_models_are_other() {
        let metrics = Metrics::new();
        let book = PriceBook::empty().with_override(
            "priced-model",
            Price::from_usd_per_million(1.0, 0.0, 0.0, 2.0),
        );
        metrics.call_finished(
            &call("w", "priced-model"),
            Some(&usage(1_000_000, 500_000)),
            Some(&book),
        );
        metrics.call_finished(&call("w", "made-up"), Some(&usage(7, 7)), Some(&book));
        let text = metrics.render();
        assert!(
            text.contains(
                r#"pai_cost_usd_total{workload="w",model="priced-model",kind="input"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"pai_cost_usd_total{workload="w",model="priced-model",kind="output"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"pai_requests_total{workload="w",model="other",status="200"} 1"#),
            "{text}"
        );
        assert!(!text.contains("made-up"), "{text}");
    }

    #[test]
    fn separate_handles_count_apart_and_clones_count_together() {
        let one = Metrics::new();
        let other = Metrics::new();
        one.know_models(vec!["m".into()]);
        one.call_finished(&call("only-one", "m"), None, None);
        one.clone().add("pai_price_file_errors_total", &[], 1.0);
        let text = one.render();
        assert!(text.contains(r#"workload="only-one",model="m""#), "{text}");
        assert!(text.contains("pai_price_file_errors_total 1"), "{text}");
        // Neither the calls nor the models the first one knows reach the second.
        other.call_finished(&call("only-other", "m"), None, None);
        let text = other.render();
        assert!(!text.contains("only-one"), "{text}");
        assert!(!text.contains("pai_price_file_errors_total"), "{text}");
        assert!(
            text.contains(
                r#"pai_requests_total{workload="only-other",model="other",status="200"} 1"#
            ),
            "{text}"
        );
    }
}
