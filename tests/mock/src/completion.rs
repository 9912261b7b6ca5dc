//! One chat completion, whatever the dialect: check the key, read the prompt and its
//! directives, fail if asked to, then answer whole or as a paced stream.

use http::header::{HeaderValue, RETRY_AFTER};
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::config::MockConfig;
use crate::directive::Directives;
use crate::prompt::Prompt;
use crate::reply::Reply;
use crate::response::{self, MockResponse, Refusal};
use crate::sse::{self, Pacing, Script};
use crate::state::Shared;

/// What differs between the wire formats (OpenAI, Anthropic, Gemini, Azure OpenAI). A dialect
/// value carries what the path said (Gemini's model, Azure's deployment); a refusal is a
/// response in the dialect's error shape.
pub(crate) trait Dialect {
    /// Checks the request's key against the configured one.
    fn authorize(&self, config: &MockConfig, headers: &HeaderMap) -> Result<(), Refusal>;
    /// The 400 for a body that is not JSON.
    fn malformed(&self, error: &serde_json::Error) -> MockResponse;
    /// Validates a request like the real API and reads what the reply depends on.
    fn read_prompt(&self, request: &Value) -> Result<Prompt, Refusal>;
    /// The error a `status=S` directive answers with.
    fn failure(&self, status: StatusCode) -> MockResponse;
    /// The whole answer of a non-streaming request.
    fn complete(&self, reply: &Reply, prompt: &Prompt) -> Value;
    /// The events of a streaming answer.
    fn stream(&self, reply: &Reply, prompt: &Prompt) -> Script;
}

/// Answers one chat completion request in `dialect`.
pub(crate) async fn complete<D: Dialect>(
    dialect: &D,
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> MockResponse {
    if let Err(refusal) = dialect.authorize(&shared.config, headers) {
        return *refusal;
    }
    let request: Value = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(error) => return dialect.malformed(&error),
    };
    let prompt = match dialect.read_prompt(&request) {
        Ok(prompt) => prompt,
        Err(refusal) => return *refusal,
    };
    let directives = Directives::parse(&prompt.directive_text);
    let failing = directives.fails() && shared.take_failure(&directives.key, directives.times);

    nap(directives.ttfb).await;
    if let Some(status) = directives.status.filter(|_| failing) {
        nap(directives.delay).await;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = dialect.failure(status);
        if let Some(seconds) = directives.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        return response;
    }

    let reply = Reply::plan(&prompt, &directives, shared.next_seq());
    if prompt.stream {
        let body = sse::spawn(
            dialect.stream(&reply, &prompt),
            Pacing::new(&directives, failing),
        );
        return response::event_stream(body);
    }
    nap(directives.delay).await;
    if failing && directives.reset_after.is_some() {
        // A JSON head, then the body breaks before its first byte.
        let mut response = response::json(StatusCode::OK, &Value::Null);
        *response.body_mut() = sse::reset_body();
        return response;
    }
    response::json(StatusCode::OK, &dialect.complete(&reply, &prompt))
}

/// Sleep, unless there is nothing to sleep: a zero-length tokio sleep still waits for the next
/// timer tick (about a millisecond), which would swamp every latency measured against the mock.
async fn nap(duration: std::time::Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}
