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
//! calls. A finished call costs two map lookups under a read lock (its workload and model's
//! series, created once) and a few additions under that series' own lock: no allocation, no
//! formatting and no lock shared by every call. Labels are escaped and numbers formatted only
//! when the metrics are rendered.
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

use std::collections::{BTreeMap, HashMap, HashSet};
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

#[derive(Clone, Default)]
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

/// Counters added by name and labels ([`Metrics::add`]) and guard scans: not one per call.
#[derive(Default)]
struct Registry {
    counters: BTreeMap<(String, String), f64>,
    guard_scans: BTreeMap<String, Histogram>,
}

impl Registry {
    fn add(&mut self, name: &str, labels: String, value: f64) {
        *self
            .counters
            .entry((name.to_owned(), labels))
            .or_insert(0.0) += value;
    }
}

/// The token kinds of `pai_tokens_total`, in [`CallCounts::tokens`] order.
const TOKEN_KINDS: [&str; 4] = ["input", "cached_input", "cache_write", "output"];
/// The cost kinds of `pai_cost_usd_total`, in [`CallCounts::cost_pico_usd`] order.
const COST_KINDS: [&str; 3] = ["input", "cached_input", "output"];

/// What the calls of one workload and model added up to.
#[derive(Default)]
struct CallCounts {
    /// Calls by status, in the order first seen (a handful).
    by_status: Vec<(u16, u64)>,
    tokens: [u64; TOKEN_KINDS.len()],
    /// Exact sums, in pico-USD; a kind stays absent until a call costs something in it.
    cost_pico_usd: [u128; COST_KINDS.len()],
    duration: Histogram,
}

/// Series of calls by workload, then model: looked up by `&str` without building a key.
type CallSeries = HashMap<String, HashMap<String, Arc<Mutex<CallCounts>>>>;

/// A gateway's metrics: the series it counts and the models it may name in labels. Clones
/// share them. See the module docs.
#[derive(Clone, Default)]
pub struct Metrics {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    registry: Mutex<Registry>,
    calls: RwLock<CallSeries>,
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
        if let Ok(mut r) = self.shared.registry.lock() {
            r.add(name, labels(pairs), value);
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
        let model = self.model_label(&record.model, prices);
        let Some(series) = self.series(&record.workload, model) else {
            return;
        };
        let Ok(mut counts) = series.lock() else {
            return;
        };
        match counts
            .by_status
            .iter_mut()
            .find(|(s, _)| *s == record.status)
        {
            Some((_, n)) => *n += 1,
            None => counts.by_status.push((record.status, 1)),
        }
        if let Some(u) = usage {
            let tokens = [u.input, u.cached_input, u.cache_write, u.output];
            for (sum, n) in counts.tokens.iter_mut().zip(tokens) {
                *sum = sum.saturating_add(n);
            }
            if let Some(price) = prices.and_then(|p| p.price(&record.model)) {
                let pico = |n: u64, p: u64| u128::from(n) * u128::from(p);
                let costs = [
                    pico(u.input, price.input) + pico(u.cache_write, price.cache_write),
                    pico(u.cached_input, price.cached_input),
                    pico(u.output, price.output),
                ];
                for (sum, cost) in counts.cost_pico_usd.iter_mut().zip(costs) {
                    *sum = sum.saturating_add(cost);
                }
            }
        }
        counts
            .duration
            .observe(&BUCKETS, record.duration_ms as f64 / 1000.0);
    }

    /// The counts of `workload` and `model`, made on their first call.
    fn series(&self, workload: &str, model: &str) -> Option<Arc<Mutex<CallCounts>>> {
        let found = self
            .shared
            .calls
            .read()
            .ok()?
            .get(workload)
            .and_then(|models| models.get(model))
            .cloned();
        if found.is_some() {
            return found;
        }
        let mut calls = self.shared.calls.write().ok()?;
        let models = calls.entry(workload.to_owned()).or_default();
        Some(models.entry(model.to_owned()).or_default().clone())
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
            r.add("pai_guard_verdicts_total", counted, 1.0);
            r.guard_scans
                .entry(labels(&[("binding", binding)]))
                .or_default()
                .observe(&GUARD_BUCKETS, took.as_secs_f64());
        }
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut counters: BTreeMap<(String, String), String> = BTreeMap::new();
        let mut histograms: BTreeMap<String, Histogram> = BTreeMap::new();
        let mut guard_scans: BTreeMap<String, Histogram> = BTreeMap::new();
        if let Ok(r) = self.shared.registry.lock() {
            for ((name, labels), value) in &r.counters {
                counters.insert((name.clone(), labels.clone()), value.to_string());
            }
            guard_scans = r.guard_scans.clone();
        }
        if let Ok(calls) = self.shared.calls.read() {
            for (workload, models) in calls.iter() {
                for (model, counts) in models {
                    let Ok(c) = counts.lock() else { continue };
                    let base = [("workload", workload.as_str()), ("model", model.as_str())];
                    let mut put = |name: &str, extra: (&str, &str), value: String| {
                        let key = (name.to_owned(), labels(&[base[0], base[1], extra]));
                        counters.insert(key, value);
                    };
                    for (status, n) in &c.by_status {
                        put(
                            "pai_requests_total",
                            ("status", &status.to_string()),
                            n.to_string(),
                        );
                    }
                    for (kind, n) in TOKEN_KINDS.iter().zip(c.tokens) {
                        if n > 0 {
                            put("pai_tokens_total", ("kind", kind), n.to_string());
                        }
                    }
                    for (kind, pico) in COST_KINDS.iter().zip(c.cost_pico_usd) {
                        if pico > 0 {
                            let usd = (pico as f64 / 1e12).to_string();
                            put("pai_cost_usd_total", ("kind", kind), usd);
                        }
                    }
                    histograms.insert(labels(&base), c.duration.clone());
                }
            }
        }
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), value) in &counters {
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
        if !histograms.is_empty() {
            let name = "pai_request_duration_seconds";
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (labels, h) in &histograms {
                h.render(&mut out, name, labels, &BUCKETS);
            }
        }
        if !guard_scans.is_empty() {
            let name = "pai_guard_scan_seconds";
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (labels, h) in &guard_scans {
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
    fn calls_counted_from_many_threads_add_up_exactly() {
        let metrics = Metrics::new();
        metrics.know_models(vec!["m".into()]);
        let book =
            PriceBook::empty().with_override("m", Price::from_usd_per_million(3.0, 0.0, 0.0, 15.0));
        std::thread::scope(|s| {
            for t in 0..4 {
                let (metrics, book) = (&metrics, &book);
                s.spawn(move || {
                    for _ in 0..1_000 {
                        metrics.call_finished(
                            &call(&format!("w{}", t % 2), "m"),
                            Some(&usage(100, 10)),
                            Some(book),
                        );
                    }
                });
            }
        });
        let text = metrics.render();
        for w in ["w0", "w1"] {
            let line =
                |name: &str, extra: &str| format!("{name}{{workload=\"{w}\",model=\"m\"{extra}}}");
            assert!(
                text.contains(&format!(
                    "{} 2000\n",
                    line("pai_requests_total", ",status=\"200\"")
                )),
                "{text}"
            );
            assert!(
                text.contains(&format!(
                    "{} 200000\n",
                    line("pai_tokens_total", ",kind=\"input\"")
                )),
                "{text}"
            );
            // 2,000 calls × 100 input tokens × $3/M = $0.6, summed exactly in pico-USD.
            assert!(
                text.contains(&format!(
                    "{} 0.6\n",
                    line("pai_cost_usd_total", ",kind=\"input\"")
                )),
                "{text}"
            );
            assert!(
                text.contains(&format!(
                    "{} 0.3\n",
                    line("pai_cost_usd_total", ",kind=\"output\"")
                )),
                "{text}"
            );
            assert!(
                text.contains(&format!(
                    "pai_request_duration_seconds_count{{workload=\"{w}\",model=\"m\"}} 2000\n"
                )),
                "{text}"
            );
        }
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
