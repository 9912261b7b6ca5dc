//! Hugging Face Text Embeddings Inference, `POST /predict`, serving a sequence classifier.
//!
//! Sent: `{"inputs": [["window"], ["window"], …], "truncate": true}`, a batch of single
//! sequences (a bare list of two strings would be one *pair* for a cross-encoder), at most
//! [`MAX_BATCH`] inputs a request (TEI's default `--max-client-batch-size`). Answered: one list
//! of `{"label", "score"}` per input, every class with its softmax score. The attack score of
//! an input is 1 − the score of its benign class, which the two models teams serve call `SAFE`
//! (`protectai/deberta-v3-base-prompt-injection-v2`: SAFE / INJECTION) and `BENIGN` or
//! `LABEL_0` (Llama Prompt Guard: BENIGN / INJECTION / JAILBREAK in v1, LABEL_0 / LABEL_1 as
//! its config names them in v2); an answer without one of those is an error (it is not a
//! prompt-injection classifier pai can read). The label reported is the highest other class.

use bytes::Bytes;
use serde_json::{json, Value};

use super::cache::{Found, MAX_LABEL};
use super::window::Piece;
use super::Batch;

/// The path under the endpoint.
pub(super) const PATH: &str = "/predict";
/// Inputs per request.
pub(super) const MAX_BATCH: usize = 32;
/// Bytes per window: these models read 512 tokens, about 2,000 characters of English; a window
/// a little smaller keeps most of each within the model, and `truncate` cuts any excess
/// instead of failing the request.
pub(super) const WINDOW: usize = 1_600;
/// Overlap between windows.
pub(super) const OVERLAP: usize = 200;
/// Benign class names, compared without case.
const BENIGN: [&str; 3] = ["SAFE", "BENIGN", "LABEL_0"];

/// The requests for `pieces`.
pub(super) fn plan(pieces: &[Piece<'_>]) -> Vec<Batch> {
    let indices: Vec<usize> = (0..pieces.len()).collect();
    indices
        .chunks(MAX_BATCH)
        .map(|chunk| {
            let inputs: Vec<Value> = chunk.iter().map(|&i| json!([pieces[i].text])).collect();
            Batch {
                body: Bytes::from(json!({"inputs": inputs, "truncate": true}).to_string()),
                pieces: chunk.to_vec(),
                first_is_prompt: false,
                per_piece: true,
            }
        })
        .collect()
}

/// What the answer says of each piece of `batch`, in order.
pub(super) fn read(answer: &[u8], batch: &Batch) -> Result<Vec<Found>, String> {
    let value: Value = serde_json::from_slice(answer)
        .map_err(|_| "the classifier's answer is not JSON".to_owned())?;
    let Value::Array(items) = value else {
        return Err("the classifier's answer is not a list of predictions".to_owned());
    };
    // A batch of one may come back as the single form: one flat list of predictions.
    let lists: Vec<&Vec<Value>> = if batch.pieces.len() == 1 && items.iter().all(Value::is_object) {
        vec![&items]
    } else {
        items
            .iter()
            .map(|i| i.as_array())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "the classifier's answer is not one list per input".to_owned())?
    };
    if lists.len() != batch.pieces.len() {
        return Err(format!(
            "the classifier answered for {} inputs, {} were sent",
            lists.len(),
            batch.pieces.len()
        ));
    }
    lists.into_iter().map(|l| found(l)).collect()
}

fn found(predictions: &[Value]) -> Result<Found, String> {
    let mut benign: Option<f64> = None;
    let mut top: Option<(&str, f64)> = None;
    for p in predictions {
        let (Some(label), Some(score)) = (
            p.get("label").and_then(Value::as_str),
            p.get("score").and_then(Value::as_f64),
        ) else {
            return Err("a prediction lacks its label or score".to_owned());
        };
        if !(0.0..=1.0).contains(&score) {
            return Err("a score is outside 0 to 1 (is raw_scores on at the service?)".to_owned());
        }
        if BENIGN.iter().any(|b| b.eq_ignore_ascii_case(label)) {
            benign = Some(score);
        } else if top.is_none_or(|(_, s)| score > s) {
            top = Some((label, score));
        }
    }
    let benign = benign.ok_or_else(|| {
        "the classifier's answer has no benign class (SAFE, BENIGN or LABEL_0): it is not a prompt-injection classifier pai can read".to_owned()
    })?;
    Ok(Found {
        score: (1.0 - benign).clamp(0.0, 1.0) as f32,
        label: top.map(|(l, _)| clean_label(l)),
    })
}

/// A service's label, fit for records and headers: printable ASCII, at most [`MAX_LABEL`].
pub(super) fn clean_label(label: &str) -> std::sync::Arc<str> {
    let cleaned: String = label
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_LABEL)
        .collect();
    cleaned.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pai_core::TextSource;

    fn pieces<'a>(texts: &[&'a str]) -> Vec<Piece<'a>> {
        texts
            .iter()
            .enumerate()
            .map(|(owner, text)| Piece {
                text,
                source: TextSource::User,
                owner,
            })
            .collect()
    }

    #[test]
    fn batches_are_lists_of_single_sequences() {
        let texts: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let batches = plan(&pieces(&refs));
        assert_eq!(batches.len(), 2);
        let body: Value = serde_json::from_slice(&batches[0].body).unwrap();
        assert_eq!(body["inputs"][0], json!(["t0"]));
        assert_eq!(body["inputs"].as_array().unwrap().len(), 32);
        assert_eq!(body["truncate"], json!(true));
        assert_eq!(batches[1].pieces, vec![32]);
    }

    #[test]
    fn reads_both_models_labels() {
        let batch = &plan(&pieces(&["a", "b"]))[0];
        let answer = br#"[[{"label":"INJECTION","score":0.97},{"label":"SAFE","score":0.03}],
                          [{"label":"LABEL_0","score":0.9},{"label":"LABEL_1","score":0.1}]]"#;
        let found = read(answer, batch).unwrap();
        assert!((found[0].score - 0.97).abs() < 1e-6);
        assert_eq!(found[0].label.as_deref(), Some("INJECTION"));
        assert!((found[1].score - 0.1).abs() < 1e-6);
        // The single form for a batch of one.
        let one = &plan(&pieces(&["a"]))[0];
        let found = read(br#"[{"label":"BENIGN","score":0.99}]"#, one).unwrap();
        assert!(found[0].score < 0.02);
    }

    #[test]
    fn unreadable_answers_are_errors() {
        let batch = &plan(&pieces(&["a", "b"]))[0];
        for answer in [
            &b"<html>"[..],
            br#"{"error":"x"}"#,
            br#"[[{"label":"SAFE","score":0.9}]]"#,
            br#"[[{"label":"POSITIVE","score":0.9}],[{"label":"SAFE","score":1}]]"#,
            br#"[[{"label":"SAFE","score":4.2}],[{"label":"SAFE","score":1}]]"#,
            br#"[[{"label":"SAFE"}],[{"label":"SAFE","score":1}]]"#,
        ] {
            assert!(
                read(answer, batch).is_err(),
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
    }
}
