//! The guard services: prompt-injection classifiers in three real wire formats.
//!
//! A text is an attack when it contains [`ATTACK`] (any case). Directives in any text of the
//! request script the service: `guard_delay_ms=N` sleeps before answering, `guard_status=S`
//! answers HTTP `S` with the service's error body, `guard_malformed` answers 200 with a body
//! that lacks the verdict, and `guard_score=F` (TEI) is the attack score of that text.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::directive::Directives;
use crate::response::{self, MockResponse};
use crate::state::Shared;

/// The phrase that makes a text an attack.
pub const ATTACK: &str = "ignore previous instructions";

/// TEI's default `--max-client-batch-size`.
const TEI_MAX_BATCH: usize = 32;
/// Prompt Shields' limits, in characters: the prompt, and the documents together.
const AZURE_MAX_CHARS: usize = 10_000;

fn is_attack(text: &str) -> bool {
    text.to_lowercase().contains(ATTACK)
}

/// The directives of every text, merged.
fn directives(texts: &[&str]) -> Directives {
    Directives::parse(&texts.join(" "))
}

/// Sleeps as `guard_delay_ms` says, then says whether to fail and how.
async fn scripted(d: &Directives) -> Option<u16> {
    if d.guard_delay > Duration::ZERO {
        tokio::time::sleep(d.guard_delay).await;
    }
    d.guard_status
}

fn key_ok(shared: &Shared, presented: Option<&str>) -> bool {
    match &shared.config.guard_key {
        None => true,
        Some(key) => presented == Some(key.as_str()),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The texts a recorded request asked a guard service about (none for other routes).
pub(crate) fn texts_of(request: &crate::RecordedRequest) -> Vec<String> {
    let Some(body) = request.json() else {
        return Vec::new();
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    match request.path.as_str() {
        "/predict" => match body.get("inputs") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                strings(Some(&Value::Array(items.clone())))
            }
            Some(Value::Array(items)) => items.iter().flat_map(|i| strings(Some(i))).collect(),
            _ => Vec::new(),
        },
        "/contentsafety/text:shieldPrompt" => {
            let mut out: Vec<String> = body
                .get("userPrompt")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .into_iter()
                .collect();
            out.extend(strings(body.get("documents")));
            out
        }
        "/v2/guard" => body
            .get("messages")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|m| m.get("content").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

// === TEI ===

fn tei_error(status: StatusCode, message: &str, kind: &str) -> MockResponse {
    response::json(status, &json!({"error": message, "error_type": kind}))
}

/// `POST /predict`: `inputs` is a string, a pair `[a, b]`, or a batch `[[a], [b, c], …]`.
pub(crate) async fn tei(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> MockResponse {
    if shared.config.guard_key.is_some() && !key_ok(shared, bearer(headers)) {
        return tei_error(StatusCode::UNAUTHORIZED, "Unauthorized", "Unhealthy");
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return tei_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Failed to deserialize the JSON body into the target type",
            "Validation",
        );
    };
    // Each input as the texts of its sequence (one, or two for a pair).
    let (inputs, batched): (Vec<Vec<&str>>, bool) = match request.get("inputs") {
        Some(Value::String(s)) => (vec![vec![s.as_str()]], false),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) && items.len() == 2 => (
            vec![items.iter().filter_map(Value::as_str).collect()],
            false,
        ),
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut inputs = Vec::new();
            for item in items {
                match item.as_array() {
                    Some(seq)
                        if (1..=2).contains(&seq.len()) && seq.iter().all(Value::is_string) =>
                    {
                        inputs.push(seq.iter().filter_map(Value::as_str).collect())
                    }
                    _ => {
                        return tei_error(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "inputs: data did not match any variant of untagged enum PredictInput",
                            "Validation",
                        )
                    }
                }
            }
            (inputs, true)
        }
        _ => {
            return tei_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "inputs: data did not match any variant of untagged enum PredictInput",
                "Validation",
            )
        }
    };
    if inputs.len() > TEI_MAX_BATCH {
        return tei_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "batch size {} > maximum allowed batch size {TEI_MAX_BATCH}",
                inputs.len()
            ),
            "Validation",
        );
    }
    let texts: Vec<&str> = inputs.iter().flatten().copied().collect();
    let d = directives(&texts);
    if let Some(status) = scripted(&d).await {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return tei_error(status, "mock classifier failure", "Backend");
    }
    if d.guard_malformed {
        return response::json(StatusCode::OK, &json!([{"label": "INJECTION"}]));
    }
    let predictions: Vec<Value> = inputs
        .iter()
        .map(|seq| {
            let text = seq.join(" ");
            let attack = Directives::parse(&text)
                .guard_score
                .map(|permille| f64::from(permille) / 1000.0)
                .unwrap_or(if is_attack(&text) { 0.9991 } else { 0.0004 });
            let (safe, injection) = (1.0 - attack, attack);
            let mut list = vec![
                json!({"score": injection, "label": "INJECTION"}),
                json!({"score": safe, "label": "SAFE"}),
            ];
            if safe > injection {
                list.reverse();
            }
            Value::Array(list)
        })
        .collect();
    let answer = if batched {
        Value::Array(predictions)
    } else {
        predictions.into_iter().next().unwrap_or(Value::Null)
    };
    response::json(StatusCode::OK, &answer)
}

// === Azure AI Content Safety Prompt Shields ===

fn azure_error(status: StatusCode, code: &str, message: &str) -> MockResponse {
    response::json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// `POST /contentsafety/text:shieldPrompt?api-version=V`.
pub(crate) async fn shield_prompt(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> MockResponse {
    let key = headers
        .get("ocp-apim-subscription-key")
        .and_then(|v| v.to_str().ok());
    if shared.config.guard_key.is_some() && !key_ok(shared, key) {
        return azure_error(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        );
    }
    let version = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("api-version="));
    if version.is_none_or(str::is_empty) {
        return azure_error(StatusCode::NOT_FOUND, "404", "Resource not found");
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return azure_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestBody",
            "The request body is not valid JSON.",
        );
    };
    let prompt = match request.get("userPrompt") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return azure_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestBody",
                "userPrompt must be a string.",
            )
        }
    };
    let documents: Vec<&str> = match request.get("documents") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect()
        }
        Some(_) => {
            return azure_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestBody",
                "documents must be an array of strings.",
            )
        }
    };
    if prompt.chars().count() > AZURE_MAX_CHARS
        || documents.iter().map(|d| d.chars().count()).sum::<usize>() > AZURE_MAX_CHARS
    {
        return azure_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestBody",
            "The text is too long: the user prompt and the documents may each be at most 10000 characters.",
        );
    }
    let mut texts = vec![prompt];
    texts.extend(&documents);
    let d = directives(&texts);
    if let Some(status) = scripted(&d).await {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return azure_error(status, "InternalServerError", "mock service failure");
    }
    if d.guard_malformed {
        return response::json(StatusCode::OK, &json!({"userPromptAnalysis": {}}));
    }
    let analyses: Vec<Value> = documents
        .iter()
        .map(|doc| json!({"attackDetected": is_attack(doc)}))
        .collect();
    response::json(
        StatusCode::OK,
        &json!({
            "userPromptAnalysis": {"attackDetected": is_attack(prompt)},
            "documentsAnalysis": analyses,
        }),
    )
}

// === Lakera Guard ===

/// `POST /v2/guard`.
pub(crate) async fn lakera(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> MockResponse {
    if !key_ok(shared, bearer(headers)) {
        return response::json(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "Unauthorized", "message": "Invalid API key"}),
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return response::json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "Bad Request", "message": "The body is not valid JSON"}),
        );
    };
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return response::json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "Bad Request", "message": "messages is required"}),
        );
    };
    let mut texts = Vec::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str);
        let content = m.get("content").and_then(Value::as_str);
        match (role, content) {
            (Some("system" | "user" | "assistant" | "tool" | "developer"), Some(c)) => {
                texts.push(c)
            }
            _ => {
                return response::json(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "Bad Request", "message": "each message needs a role and a string content"}),
                )
            }
        }
    }
    let d = directives(&texts);
    if let Some(status) = scripted(&d).await {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return response::json(
            status,
            &json!({"error": "Internal Server Error", "message": "mock service failure"}),
        );
    }
    if d.guard_malformed {
        return response::json(StatusCode::OK, &json!({"metadata": {}}));
    }
    let flagged = texts.iter().any(|t| is_attack(t));
    let mut answer = json!({
        "flagged": flagged,
        "metadata": {"request_uuid": format!("mock-{}", shared.next_seq())},
    });
    if request.get("breakdown").and_then(Value::as_bool) == Some(true) {
        answer["breakdown"] = json!([
            {"project_id": "project-mock", "policy_id": "policy-mock", "detector_id": "detector-mock-prompt-attack",
             "detector_type": "prompt_attack", "detected": flagged},
            {"project_id": "project-mock", "policy_id": "policy-mock", "detector_id": "detector-mock-pii",
             "detector_type": "pii/email", "detected": false},
        ]);
    }
    response::json(StatusCode::OK, &answer)
}
