//! Guards that read the model's answer (`scan.responses`).
//!
//! The [`GuardLayer`](super::GuardLayer) cannot read an answer itself: by the time one passes
//! it, the [`MeterLayer`](crate::MeterLayer) below has finished the call's record. So the guard
//! layer hands the answer's guards down in the request's extensions ([`AnswerGuards`]) and the
//! meter, which holds the record until the answer is done, runs them on the answer in the
//! client's dialect (after any translation; [`pai_providers::guard_input::answer_input`]):
//!
//! - A **buffered** answer is scanned before it is returned. An enforced block refuses it with
//!   403 in the client's dialect, naming the binding and what was found, never the text; its
//!   tokens are still charged, since the model produced them.
//! - A **streamed** answer passes event by event as always, nothing held back; its text is
//!   collected as it passes ([`AnswerStream`]) and scanned when the stream ends, in parts of
//!   [`PART_BYTES`] started as they fill. The verdicts are recorded, as `audit` whatever the
//!   binding says (the bytes already left), before the call's record is written. An answer
//!   longer than one part counts one verdict per part in `pai_guard_verdicts_total`; the
//!   record keeps the worst.
//!
//! A guard layer whose answer guards no meter ran refuses the answer (503): a mounted stack
//! without a [`MeterLayer`](crate::MeterLayer) inside the guard layer cannot scan answers, and
//! letting them through would leave `scan.responses` accepted but not enforced.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pai_core::{Dialect, Enforcement, Error, GuardDecision, GuardStage, GuardVerdict};
use pai_providers::guard_input::{answer_delta, answer_input};
use tokio::task::JoinHandle;

use super::{verdicts, Assigned};
use crate::metrics::Metrics;

/// A streamed answer's text is scanned in parts of this many bytes, each started as it fills,
/// so the text kept of a stream stays bounded however long it runs.
pub const PART_BYTES: usize = 1 << 20;

/// How much of a part's end the next part starts with, so text split between two parts is
/// still read whole.
const OVERLAP_BYTES: usize = 4 << 10;

/// A buffered answer larger than this is read for guards off the async runtime.
const INLINE_BYTES: usize = 64 << 10;

/// The guards one call runs on its answer. See the module docs.
pub struct AnswerGuards {
    guards: Vec<Assigned>,
    timeout: Duration,
    metrics: Metrics,
    /// Set by the meter when it takes the answer: the guard layer checks it.
    ran: AtomicBool,
}

impl std::fmt::Debug for AnswerGuards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.guards.iter().map(|g| g.name.as_str()).collect();
        f.debug_struct("AnswerGuards")
            .field("guards", &names)
            .finish_non_exhaustive()
    }
}

impl AnswerGuards {
    pub(super) fn new(guards: Vec<Assigned>, timeout: Duration, metrics: Metrics) -> AnswerGuards {
        AnswerGuards {
            guards,
            timeout,
            metrics,
            ran: AtomicBool::new(false),
        }
    }

    /// Whether a meter took the answer.
    pub(super) fn ran(&self) -> bool {
        self.ran.load(Ordering::Acquire)
    }

    /// Scan the buffered answer `body` (in `client`'s dialect): every guard's verdict, and the
    /// refusal when an enforced guard blocks it (or fails under `onError: block`). The guards
    /// run one after the other and the first refusal stops them, as on the request.
    pub async fn check(
        &self,
        client: Dialect,
        model: &str,
        body: &bytes::Bytes,
    ) -> (Vec<GuardVerdict>, Option<Error>) {
        self.ran.store(true, Ordering::Release);
        let input = if body.len() <= INLINE_BYTES {
            answer_input(client, model, body)
        } else {
            let (model, body) = (model.to_owned(), body.clone());
            match tokio::task::spawn_blocking(move || answer_input(client, &model, &body)).await {
                Ok(input) => input,
                Err(e) => {
                    let why = format!("reading the answer for guards failed: {e}");
                    return (self.errors(&why, false), Some(Error::Internal(why)));
                }
            }
        };
        let mut found = Vec::with_capacity(self.guards.len());
        if input.texts.iter().all(|(_, t)| t.trim().is_empty()) {
            // Nothing to read (an answer of tool calls with no arguments, an empty text).
            found.extend(self.guards.iter().map(|g| allow(g, g.enforcement)));
            return (found, None);
        }
        for g in &self.guards {
            let (verdict, refusal) =
                verdicts::inspect(g, &input, GuardStage::Answer, self.timeout, &self.metrics).await;
            found.push(verdict);
            if refusal.is_some() {
                return (found, refusal);
            }
        }
        (found, None)
    }

    /// Collect a streamed answer in `client`'s dialect, to scan as it passes.
    pub fn stream(self: &Arc<Self>, client: Dialect, model: &str) -> AnswerStream {
        self.ran.store(true, Ordering::Release);
        AnswerStream {
            guards: self.clone(),
            client,
            model: model.to_owned(),
            text: String::new(),
            parts: Vec::new(),
            unscanned: false,
        }
    }

    /// An error verdict for every guard (as `audit` for a stream), recorded when the answer
    /// could not be scanned.
    fn errors(&self, why: &str, streamed: bool) -> Vec<GuardVerdict> {
        self.guards
            .iter()
            .map(|g| GuardVerdict {
                category: Some(why.to_owned()),
                verdict: GuardDecision::Error,
                ..allow(
                    g,
                    if streamed {
                        Enforcement::Audit
                    } else {
                        g.enforcement
                    },
                )
            })
            .collect()
    }

    /// Every guard over one part of a streamed answer, recorded as audit.
    async fn scan_part(self: Arc<Self>, model: String, text: String) -> Vec<GuardVerdict> {
        let input = pai_core::GuardInput {
            texts: vec![(pai_core::TextSource::Assistant, text)],
            model,
        };
        let mut found = Vec::with_capacity(self.guards.len());
        for g in &self.guards {
            let audit = Assigned {
                enforcement: Enforcement::Audit,
                ..g.clone()
            };
            let (verdict, _) = verdicts::inspect(
                &audit,
                &input,
                GuardStage::Answer,
                self.timeout,
                &self.metrics,
            )
            .await;
            found.push(verdict);
        }
        found
    }
}

/// An allow verdict of `g` on the answer.
fn allow(g: &Assigned, enforcement: Enforcement) -> GuardVerdict {
    GuardVerdict {
        binding: g.name.clone(),
        verdict: GuardDecision::Allow,
        enforcement,
        score: None,
        category: None,
        stage: GuardStage::Answer,
    }
}

/// A streamed answer's text, collected as its events pass and scanned in parts. See the
/// module docs.
pub struct AnswerStream {
    guards: Arc<AnswerGuards>,
    client: Dialect,
    model: String,
    text: String,
    parts: Vec<JoinHandle<Vec<GuardVerdict>>>,
    /// A part could not be started (no runtime): the verdict is an error, not an allow.
    unscanned: bool,
}

impl std::fmt::Debug for AnswerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerStream")
            .field("bytes", &self.text.len())
            .field("parts", &self.parts.len())
            .finish_non_exhaustive()
    }
}

impl AnswerStream {
    /// `bytes` went to the client: whole SSE events in the client's dialect. Their text is
    /// added to the answer; a part that fills is scanned at once.
    pub fn passed(&mut self, bytes: &[u8]) {
        for line in bytes.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(data) = line.strip_prefix(b"data:") {
                if let Ok(data) = std::str::from_utf8(data) {
                    answer_delta(self.client, data, &mut self.text);
                }
            }
        }
        if self.text.len() >= PART_BYTES {
            let mut keep = self.text.len() - OVERLAP_BYTES;
            while !self.text.is_char_boundary(keep) {
                keep += 1;
            }
            let rest = self.text[keep..].to_owned();
            let part = std::mem::replace(&mut self.text, rest);
            self.start(part);
        }
    }

    /// Scan `text` in a task of its own (no task without a runtime: then `finish` says so).
    fn start(&mut self, text: String) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let scan = self.guards.clone().scan_part(self.model.clone(), text);
                self.parts.push(runtime.spawn(scan));
            }
            Err(_) => self.unscanned = true,
        }
    }

    /// The stream ended: scan what is left, wait for every part, and give `then` one verdict
    /// per guard (the worst over the parts: a block, the highest scored; else an error; else
    /// an allow). Runs on a task of its own; without a runtime, `then` gets error verdicts.
    pub fn finish(mut self, then: impl FnOnce(Vec<GuardVerdict>) + Send + 'static) {
        let runtime = tokio::runtime::Handle::try_current();
        let Some(runtime) = runtime.ok().filter(|_| !self.unscanned) else {
            then(
                self.guards
                    .errors("the answer could not be scanned: no async runtime", true),
            );
            return;
        };
        if !self.text.trim().is_empty() {
            let text = std::mem::take(&mut self.text);
            self.start(text);
        }
        runtime.spawn(async move {
            let mut worst: Vec<GuardVerdict> = self
                .guards
                .guards
                .iter()
                .map(|g| allow(g, Enforcement::Audit))
                .collect();
            for part in self.parts {
                let found = match part.await {
                    Ok(found) => found,
                    Err(e) => self
                        .guards
                        .errors(&format!("scanning the answer failed: {e}"), true),
                };
                for (w, f) in worst.iter_mut().zip(found) {
                    if rank(&f) > rank(w) {
                        *w = f;
                    }
                }
            }
            then(worst)
        });
    }
}

/// How bad a verdict is, to keep the worst of a stream's parts.
fn rank(v: &GuardVerdict) -> (u8, u32) {
    let score = v.score.unwrap_or(0.0).max(0.0);
    match v.verdict {
        GuardDecision::Allow => (0, 0),
        GuardDecision::Error => (1, 0),
        GuardDecision::Block => (2, (score * 1e6) as u32),
    }
}
