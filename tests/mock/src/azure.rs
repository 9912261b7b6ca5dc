//! The Azure OpenAI dialect: OpenAI Chat Completions behind Azure's own paths, key header,
//! errors and content-filter annotations.
//!
//! Two routes: the classic `/openai/deployments/{deployment}/chat/completions?api-version=V`,
//! where the path names the deployment and `api-version` is required (without it Azure answers
//! `404 Resource not found`), and the v1 `/openai/v1/chat/completions`, where the body's `model`
//! is the deployment. Either way the key is `api-key` (v1 also takes `Authorization: Bearer`),
//! and the answer's `model` is the model behind the deployment (`gpt-4o-2024-11-20`), not the
//! name the caller used. Streams open with a chunk whose `choices` is empty and which carries
//! `prompt_filter_results` and no usage: a gateway that takes every empty-`choices` chunk for
//! the usage chunk gets it wrong.

use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::completion::Dialect;
use crate::config::MockConfig;
use crate::gemini::query_param;
use crate::openai::{self, OpenAi};
use crate::prompt::Prompt;
use crate::reply::Reply;
use crate::response::{self, MockResponse, Refusal};
use crate::sse::{Event, Phase, Script};

/// The model behind every deployment whose name does not mention `mini`.
pub(crate) const UNDERLYING_MODEL: &str = "gpt-4o-2024-11-20";
/// The model behind deployments whose name mentions `mini`.
pub(crate) const UNDERLYING_MINI_MODEL: &str = "gpt-4o-mini-2024-07-18";

/// One Azure call, as its path names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Azure {
    /// The deployment in a classic path; `None` on the v1 route, whose body names it.
    deployment: Option<String>,
    api_version: Option<String>,
}

impl Azure {
    /// The call `path` names, if it is one of Azure's chat completion routes.
    pub(crate) fn route(path: &str, query: Option<&str>) -> Option<Self> {
        let api_version = query_param(query, "api-version").map(str::to_owned);
        if path == "/openai/v1/chat/completions" {
            return Some(Self {
                deployment: None,
                api_version,
            });
        }
        let deployment = path
            .strip_prefix("/openai/deployments/")?
            .strip_suffix("/chat/completions")?;
        (!deployment.is_empty() && !deployment.contains('/')).then(|| Self {
            deployment: Some(deployment.to_owned()),
            api_version,
        })
    }
}

impl Dialect for Azure {
    fn authorize(&self, config: &MockConfig, headers: &HeaderMap) -> Result<(), Refusal> {
        if self.deployment.is_some() {
            match &self.api_version {
                None => return Err(Box::new(not_found())),
                Some(version) if !is_api_version(version) => {
                    return Err(Box::new(error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "API version not supported",
                    )))
                }
                Some(_) => {}
            }
        }
        let Some(expected) = &config.azure_key else {
            return Ok(());
        };
        let key = headers.get("api-key").and_then(|v| v.to_str().ok());
        let key = match (key, &self.deployment) {
            (Some(key), _) => Some(key),
            (None, None) => bearer(headers),
            (None, Some(_)) => None,
        };
        if key == Some(expected.as_str()) {
            return Ok(());
        }
        Err(Box::new(access_denied()))
    }

    fn malformed(&self, error: &serde_json::Error) -> MockResponse {
        OpenAi.malformed(error)
    }

    fn read_prompt(&self, request: &Value) -> Result<Prompt, Refusal> {
        let deployment = match &self.deployment {
            Some(deployment) => deployment.as_str(),
            None => match request["model"].as_str().filter(|m| !m.is_empty()) {
                Some(model) => model,
                // The v1 API names the deployment in the body: without it there is none.
                None => return Err(Box::new(not_found_deployment())),
            },
        };
        openai::read_chat(request, underlying(deployment))
    }

    fn failure(&self, status: StatusCode) -> MockResponse {
        // Azure's own front door answers these; the rest come from the model service behind
        // it in OpenAI's shape.
        match status.as_u16() {
            401 => access_denied(),
            403 => error(
                status,
                "403",
                "Public access is disabled. Please configure private endpoint.",
            ),
            404 => not_found_deployment(),
            429 => error(
                status,
                "429",
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API \
                 version 2024-10-21 have exceeded token rate limit of your current AIServices S0 \
                 pricing tier. Please retry after 1 second. Please go here: \
                 https://aka.ms/oai/quotaincrease if you would like to further increase the \
                 default rate limit. (mock)",
            ),
            _ => openai::failure(status),
        }
    }

    fn complete(&self, reply: &Reply, prompt: &Prompt) -> Value {
        let mut body = openai::complete(reply, prompt);
        body["prompt_filter_results"] = prompt_filter_results();
        if let Some(choices) = body["choices"].as_array_mut() {
            for choice in choices {
                let said = choice["message"]["content"].is_string();
                choice["content_filter_results"] = content_filter_results(said);
            }
        }
        let usage = &mut body["usage"];
        usage["prompt_tokens_details"]["audio_tokens"] = json!(0);
        usage["completion_tokens_details"] = json!({
            "accepted_prediction_tokens": 0,
            "audio_tokens": 0,
            "reasoning_tokens": 0,
            "rejected_prediction_tokens": 0,
        });
        body
    }

    fn stream(&self, reply: &Reply, prompt: &Prompt) -> Script {
        let script = openai::stream(reply, prompt);
        // Not a usage chunk: no `usage` at all, even when the usage chunk will come.
        let filters = json!({
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": prompt_filter_results(),
        });
        let head = Event::new(Phase::Head, None, filters.to_string());
        Script {
            events: Box::new(std::iter::once(head).chain(script.events.map(annotate))),
            ..script
        }
    }
}

/// Adds `content_filter_results` to every choice of a chunk, as Azure does.
fn annotate(mut event: Event) -> Event {
    let Ok(mut chunk) = serde_json::from_str::<Value>(&event.data) else {
        return event; // [DONE]
    };
    let Some(choices) = chunk["choices"].as_array_mut().filter(|c| !c.is_empty()) else {
        return event;
    };
    for choice in choices {
        let said = choice["delta"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty());
        choice["content_filter_results"] = content_filter_results(said);
    }
    event.data = chunk.to_string();
    event
}

/// The model a deployment serves.
fn underlying(deployment: &str) -> &'static str {
    if deployment.contains("mini") {
        UNDERLYING_MINI_MODEL
    } else {
        UNDERLYING_MODEL
    }
}

/// `2024-10-21` or `2025-04-01-preview`.
fn is_api_version(version: &str) -> bool {
    let date = version.strip_suffix("-preview").unwrap_or(version);
    let bytes = date.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

fn prompt_filter_results() -> Value {
    json!([{"prompt_index": 0, "content_filter_results": content_filter_results(true)}])
}

/// The per-category verdicts on text, or `{}` where there was no text to judge.
fn content_filter_results(judged: bool) -> Value {
    if !judged {
        return json!({});
    }
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({
        "hate": safe,
        "self_harm": safe,
        "sexual": safe,
        "violence": safe,
    })
}

/// An error from Azure's front door: `{"error":{"code","message"}}`, no `type` or `param`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> MockResponse {
    response::json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// What Azure answers for a path it does not know, or a classic path without `api-version`.
pub(crate) fn not_found() -> MockResponse {
    error(StatusCode::NOT_FOUND, "404", "Resource not found")
}

fn access_denied() -> MockResponse {
    error(
        StatusCode::UNAUTHORIZED,
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to \
         provide a valid key for an active subscription and use a correct regional API endpoint \
         for your resource.",
    )
}

fn not_found_deployment() -> MockResponse {
    error(
        StatusCode::NOT_FOUND,
        "DeploymentNotFound",
        "The API deployment for this resource does not exist. If you created the deployment \
         within the last 5 minutes, please wait a moment and try again.",
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_tell_classic_from_v1() {
        let classic = Azure::route(
            "/openai/deployments/gpt4o-prod/chat/completions",
            Some("api-version=2024-10-21"),
        );
        assert_eq!(
            classic,
            Some(Azure {
                deployment: Some("gpt4o-prod".into()),
                api_version: Some("2024-10-21".into()),
            })
        );
        let v1 = Azure::route("/openai/v1/chat/completions", None);
        assert_eq!(v1.and_then(|a| a.deployment), None);
        assert!(Azure::route("/openai/deployments//chat/completions", None).is_none());
    }

    #[test]
    fn api_versions_are_dates() {
        assert!(is_api_version("2024-10-21"));
        assert!(is_api_version("2025-04-01-preview"));
        assert!(!is_api_version("latest"));
        assert!(!is_api_version("2024-1-21"));
    }
}
