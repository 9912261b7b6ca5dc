//! Lakera Guard, `POST /v2/guard`.
//!
//! Sent: `{"messages": [{"role": "…", "content": "…"}, …], "breakdown": true}` with
//! `Authorization: Bearer KEY`: OpenAI-style messages, each text with its role (`system`,
//! `user`, `assistant`, and `tool` for a tool's result, where indirect injections arrive). The
//! project's policy (which detectors, how strict) is the key's default project's. Answered:
//! `{"flagged": bool, "breakdown": [{"detector_type": "…", "detected": bool}, …], …}`. One
//! verdict for the whole request, not one per message: flagged is score 1.0 for every message
//! sent (so any `spec.threshold` blocks it) and, unless the request carried one text only, it
//! cannot be pinned on one message: the block names "the messages sent" and is not cached. A
//! request that is not flagged clears each of its messages, and those are cached. The
//! detectors that fired name what was found. Messages are windows of at most [`WINDOW`] bytes,
//! and a request carries at most [`MAX_REQUEST`] bytes of them.

use std::sync::Arc;

use bytes::Bytes;
use pai_core::TextSource;
use serde_json::{json, Value};

use super::cache::Found;
use super::tei::clean_label;
use super::window::Piece;
use super::Batch;

/// The path under the endpoint.
pub(super) const PATH: &str = "/v2/guard";
/// Bytes per message.
pub(super) const WINDOW: usize = 10_000;
/// Overlap between windows.
pub(super) const OVERLAP: usize = 500;
/// Bytes of messages per request.
const MAX_REQUEST: usize = 50_000;

fn role(source: TextSource) -> &'static str {
    match source {
        TextSource::System => "system",
        TextSource::User => "user",
        TextSource::Assistant => "assistant",
        TextSource::ToolResult => "tool",
    }
}

/// The requests for `pieces`, in the conversation's order.
pub(super) fn plan(pieces: &[Piece<'_>]) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut size = 0;
    let flush = |current: &mut Vec<usize>, out: &mut Vec<Batch>| {
        if current.is_empty() {
            return;
        }
        let messages: Vec<Value> = current
            .iter()
            .map(|&i| json!({"role": role(pieces[i].source), "content": pieces[i].text}))
            .collect();
        out.push(Batch {
            body: Bytes::from(json!({"messages": messages, "breakdown": true}).to_string()),
            pieces: std::mem::take(current),
            first_is_prompt: false,
            per_piece: false,
        });
    };
    for (i, p) in pieces.iter().enumerate() {
        if !current.is_empty() && size + p.text.len() > MAX_REQUEST {
            flush(&mut current, &mut out);
            size = 0;
        }
        size += p.text.len();
        current.push(i);
    }
    flush(&mut current, &mut out);
    out
}

/// What the answer says of each piece of `batch`, in order: all the same.
pub(super) fn read(answer: &[u8], batch: &Batch) -> Result<Vec<Found>, String> {
    let value: Value =
        serde_json::from_slice(answer).map_err(|_| "Lakera's answer is not JSON".to_owned())?;
    let flagged = value
        .get("flagged")
        .and_then(Value::as_bool)
        .ok_or_else(|| "Lakera's answer lacks flagged".to_owned())?;
    let label: Option<Arc<str>> = flagged.then(|| {
        let detectors: Vec<&str> = value
            .get("breakdown")
            .and_then(Value::as_array)
            .map(|b| {
                b.iter()
                    .filter(|d| d.get("detected").and_then(Value::as_bool) == Some(true))
                    .filter_map(|d| d.get("detector_type").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        if detectors.is_empty() {
            Arc::from("flagged")
        } else {
            clean_label(&detectors.join(","))
        }
    });
    let found = Found {
        score: if flagged { 1.0 } else { 0.0 },
        label,
    };
    Ok(vec![found; batch.pieces.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_their_roles_and_the_verdict_is_the_requests() {
        let pieces = vec![
            Piece {
                text: "be helpful",
                source: TextSource::System,
                owner: 0,
            },
            Piece {
                text: "weather?",
                source: TextSource::User,
                owner: 1,
            },
            Piece {
                text: "sunny",
                source: TextSource::ToolResult,
                owner: 2,
            },
        ];
        let batches = plan(&pieces);
        assert_eq!(batches.len(), 1);
        let body: Value = serde_json::from_slice(&batches[0].body).unwrap();
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "be helpful"})
        );
        assert_eq!(body["messages"][2]["role"], "tool");
        assert_eq!(body["breakdown"], true);
        let found = read(
            br#"{"flagged":true,"breakdown":[{"detector_type":"prompt_attack","detected":true},{"detector_type":"pii/email","detected":false}]}"#,
            &batches[0],
        )
        .unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found[1].score, 1.0);
        assert_eq!(found[1].label.as_deref(), Some("prompt_attack"));
        assert!(read(br#"{"flagged":"no"}"#, &batches[0]).is_err());
        assert_eq!(
            read(br#"{"flagged":false}"#, &batches[0]).unwrap()[0].score,
            0.0
        );
    }
}
