//! Azure AI Content Safety Prompt Shields, `POST /contentsafety/text:shieldPrompt`.
//!
//! Sent: `{"userPrompt": "…", "documents": ["…", …]}` with the key in
//! `Ocp-Apim-Subscription-Key`. User messages go in `userPrompt`, one window a request; every
//! other text (tool results above all, and system and assistant messages, where an indirect
//! injection may have been copied) goes in `documents`, the field Prompt Shields reads for
//! attacks embedded in content. The service's documented input limits (Content Safety overview,
//! "Input requirements"): a prompt of at most 10K characters, and up to five documents of 10K
//! characters in all. So a request carries at most [`WINDOW`] bytes of prompt and
//! [`WINDOW`] bytes of documents, at most [`MAX_DOCUMENTS`] of them; longer input is windowed
//! and spread over several requests. Answered: `{"userPromptAnalysis": {"attackDetected":
//! bool}, "documentsAnalysis": [{"attackDetected": bool}, …]}`, one analysis per document in
//! order. A verdict, not a score: an attack detected is score 1.0, none is 0.0, so any
//! `spec.threshold` blocks what the service flags.

use std::sync::Arc;

use bytes::Bytes;
use pai_core::TextSource;
use serde_json::{json, Value};

use super::cache::Found;
use super::window::Piece;
use super::Batch;

/// The path and API version under the endpoint.
pub(super) const PATH: &str = "/contentsafety/text:shieldPrompt?api-version=2024-09-01";
/// Bytes of prompt, and of documents in all, per request.
pub(super) const WINDOW: usize = 10_000;
/// Overlap between windows.
pub(super) const OVERLAP: usize = 500;
/// Documents per request: the service's limit.
pub(super) const MAX_DOCUMENTS: usize = 5;

/// The requests for `pieces`: each carries at most one user window and documents up to the
/// limits. `Batch::pieces` lists the user window first when there is one.
pub(super) fn plan(pieces: &[Piece<'_>]) -> Vec<Batch> {
    let (mut users, mut documents): (Vec<usize>, Vec<usize>) =
        (0..pieces.len()).partition(|&i| pieces[i].source == TextSource::User);
    users.reverse();
    documents.reverse();
    let mut out = Vec::new();
    while !users.is_empty() || !documents.is_empty() {
        let user = users.pop();
        let mut docs = Vec::new();
        let mut size = 0;
        while let Some(&d) = documents.last() {
            let len = pieces[d].text.len();
            if docs.len() == MAX_DOCUMENTS || (!docs.is_empty() && size + len > WINDOW) {
                break;
            }
            size += len;
            docs.push(d);
            documents.pop();
        }
        let body = json!({
            "userPrompt": user.map(|u| pieces[u].text).unwrap_or(""),
            "documents": docs.iter().map(|&d| pieces[d].text).collect::<Vec<_>>(),
        });
        out.push(Batch {
            body: Bytes::from(body.to_string()),
            pieces: user.into_iter().chain(docs).collect(),
            first_is_prompt: user.is_some(),
            per_piece: true,
        });
    }
    out
}

/// What the answer says of each piece of `batch`, in order.
pub(super) fn read(answer: &[u8], batch: &Batch) -> Result<Vec<Found>, String> {
    let value: Value = serde_json::from_slice(answer)
        .map_err(|_| "Prompt Shields' answer is not JSON".to_owned())?;
    let detected = |v: &Value| v.get("attackDetected").and_then(Value::as_bool);
    let mut out = Vec::with_capacity(batch.pieces.len());
    if batch.first_is_prompt {
        let found = value
            .get("userPromptAnalysis")
            .and_then(detected)
            .ok_or_else(|| {
                "Prompt Shields' answer lacks userPromptAnalysis.attackDetected".to_owned()
            })?;
        out.push(verdict(found, "user prompt attack"));
    }
    let documents = batch.pieces.len() - out.len();
    let analyses = match value.get("documentsAnalysis") {
        Some(Value::Array(a)) => a.as_slice(),
        None | Some(Value::Null) if documents == 0 => &[],
        _ => return Err("Prompt Shields' answer lacks documentsAnalysis".to_owned()),
    };
    if analyses.len() != documents {
        return Err(format!(
            "Prompt Shields analysed {} documents, {documents} were sent",
            analyses.len()
        ));
    }
    for a in analyses {
        let found = detected(a)
            .ok_or_else(|| "a documentsAnalysis entry lacks attackDetected".to_owned())?;
        out.push(verdict(found, "document attack"));
    }
    Ok(out)
}

fn verdict(detected: bool, what: &str) -> Found {
    Found {
        score: if detected { 1.0 } else { 0.0 },
        label: detected.then(|| Arc::from(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(text: &str, source: TextSource) -> Piece<'_> {
        Piece {
            text,
            source,
            owner: 0,
        }
    }

    #[test]
    fn user_text_is_the_prompt_and_the_rest_are_documents_within_limits() {
        let long = "d".repeat(6_000);
        let pieces = vec![
            piece("sys", TextSource::System),
            piece("question", TextSource::User),
            piece(&long, TextSource::ToolResult),
            piece(&long, TextSource::ToolResult),
            piece("again", TextSource::User),
        ];
        let batches = plan(&pieces);
        assert_eq!(batches.len(), 2);
        let first: Value = serde_json::from_slice(&batches[0].body).unwrap();
        assert_eq!(first["userPrompt"], "question");
        assert_eq!(first["documents"].as_array().unwrap().len(), 2);
        assert_eq!(batches[0].pieces, vec![1, 0, 2]);
        let second: Value = serde_json::from_slice(&batches[1].body).unwrap();
        assert_eq!(second["userPrompt"], "again");
        assert_eq!(batches[1].pieces, vec![4, 3]);
        let answer = br#"{"userPromptAnalysis":{"attackDetected":false},
            "documentsAnalysis":[{"attackDetected":false},{"attackDetected":true}]}"#;
        let found = read(answer, &batches[0]).unwrap();
        assert_eq!(found[0].score, 0.0);
        assert_eq!(found[2].score, 1.0);
        assert_eq!(found[2].label.as_deref(), Some("document attack"));
    }

    #[test]
    fn documents_alone_send_an_empty_prompt_and_a_short_answer_is_an_error() {
        let pieces = vec![piece("tool says", TextSource::ToolResult)];
        let batch = &plan(&pieces)[0];
        let body: Value = serde_json::from_slice(&batch.body).unwrap();
        assert_eq!(body["userPrompt"], "");
        assert!(!batch.first_is_prompt);
        assert!(read(br#"{"userPromptAnalysis":{"attackDetected":false}}"#, batch).is_err());
        assert!(read(br#"{"documentsAnalysis":[]}"#, batch).is_err());
        assert!(read(
            br#"{"documentsAnalysis":[{"attackDetected":"yes"}]}"#,
            batch
        )
        .is_err());
    }
}
