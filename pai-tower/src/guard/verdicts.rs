//! One guard's run over one call, and what is kept of it: the call's record, the metrics and
//! the `x-pai-guard` header. None of them ever holds the text the guard read.

use std::time::{Duration, Instant};

use http::HeaderValue;
use pai_core::resource::OnError;
use pai_core::{Enforcement, Error, GuardDecision, GuardInput, GuardStage, GuardVerdict, Verdict};

use super::Assigned;
use crate::call_log::CallLog;
use crate::metrics::Metrics;

/// Run one guard over what `stage` names: its verdict, and the error that refuses the call when
/// it must be refused (a block under `enforce`, or a guard that failed or did not answer in
/// time under `enforce` with `onError: block`).
pub(super) async fn inspect(
    g: &Assigned,
    input: &GuardInput,
    stage: GuardStage,
    default_timeout: Duration,
    metrics: &Metrics,
) -> (GuardVerdict, Option<Error>) {
    let enforce = g.enforcement == Enforcement::Enforce;
    let what = match stage {
        GuardStage::Prompt => "the request",
        GuardStage::Answer => "the model's answer",
    };
    let timeout = g.armed.timeout.unwrap_or(default_timeout);
    let started = Instant::now();
    let answer = tokio::time::timeout(timeout, g.armed.guard.inspect(input)).await;
    let elapsed = started.elapsed();
    let verdict = |verdict, score, category: Option<String>| GuardVerdict {
        binding: g.name.clone(),
        verdict,
        enforcement: g.enforcement,
        score,
        category,
        stage,
    };
    let (found, refusal) = match answer {
        Ok(Verdict::Block { reason, score }) if g.armed.threshold.is_none_or(|t| score >= t) => {
            let refusal = enforce.then(|| {
                Error::PermissionDenied(format!(
                    "GuardBinding {:?} blocked {what}: {reason} (score {score:.2})",
                    g.name
                ))
            });
            if enforce {
                tracing::info!(guard = %g.name, stage = stage.as_str(), %reason, score, "guard blocked the call");
            } else {
                tracing::warn!(guard = %g.name, stage = stage.as_str(), %reason, score, "guard flagged the call (audit only)");
            }
            (
                verdict(GuardDecision::Block, Some(score), Some(reason)),
                refusal,
            )
        }
        Ok(Verdict::Error { reason }) => {
            let refusal = (enforce && g.armed.on_error == OnError::Block).then(|| {
                Error::Unavailable(format!(
                    "GuardBinding {:?} could not scan {what} ({reason}); the call is refused rather than let through unguarded",
                    g.name
                ))
            });
            tracing::warn!(guard = %g.name, %reason, refused = refusal.is_some(), "guard failed");
            (verdict(GuardDecision::Error, None, Some(reason)), refusal)
        }
        Ok(_) => (verdict(GuardDecision::Allow, None, None), None),
        Err(_) => {
            let why = format!("no answer within {} ms", timeout.as_millis());
            let refusal = (enforce && g.armed.on_error == OnError::Block).then(|| {
                Error::Unavailable(format!(
                    "GuardBinding {:?} did not answer within {} ms (scanning {what}); the call is refused rather than let through unguarded",
                    g.name,
                    timeout.as_millis()
                ))
            });
            tracing::warn!(guard = %g.name, refused = refusal.is_some(), "guard did not answer in time");
            (verdict(GuardDecision::Error, None, Some(why)), refusal)
        }
    };
    metrics.guard_verdict(
        &found.binding,
        found.verdict.as_str(),
        found.enforcement.as_str(),
        elapsed,
    );
    (found, refusal)
}

/// Add verdicts to the call's record, after those already there.
pub(crate) fn append(log: Option<&CallLog>, mut found: Vec<GuardVerdict>) {
    if let Some(log) = log {
        log.record(move |r| r.guards.append(&mut found));
    }
}

/// `x-pai-guard`: each guard that ran, as `binding=NAME; verdict=allow|block|error[;
/// enforcement=audit][; score=0.97][; stage=answer]`, joined by `, `. Names and categories
/// only: never text.
pub(crate) fn header(found: &[GuardVerdict]) -> Option<HeaderValue> {
    if found.is_empty() {
        return None;
    }
    let parts: Vec<String> = found
        .iter()
        .map(|v| {
            let mut part = format!("binding={}; verdict={}", v.binding, v.verdict.as_str());
            if v.enforcement == Enforcement::Audit {
                part.push_str("; enforcement=audit");
            }
            if let Some(score) = v.score {
                part.push_str(&format!("; score={score:.2}"));
            }
            if v.stage == GuardStage::Answer {
                part.push_str("; stage=answer");
            }
            part
        })
        .collect();
    HeaderValue::from_str(&parts.join(", ")).ok()
}
