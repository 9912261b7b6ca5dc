//! Guards that read the model's answer (`scan.responses`), through the assembled gateway and the
//! mock upstream on loopback, in both client dialects: a buffered answer is refused before it
//! is returned (403 in the client's dialect, its tokens still charged), a streamed one passes
//! whole and its verdict is recorded as audit when it ends; tool calls' arguments are read; and
//! the verdicts reach the record and `x-pai-guard`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use pai_core::resource::GuardBinding;
use pai_core::{
    CallRecord, Enforcement, Guard, GuardDecision, GuardInput, GuardStage, Store, Verdict,
};
use serde_json::{json, Value};
use tower::ServiceExt;

use common::{anthropic_request, collect, harness_with, openai_request, Harness, Options};
use pai_tower::GatewayBuilder;

/// Blocks any text containing its word (any case), saying so: `evil` in most tests here.
struct Keyword(&'static str);

#[async_trait::async_trait]
impl Guard for Keyword {
    fn name(&self) -> &str {
        self.0
    }

    async fn inspect(&self, input: &GuardInput) -> Verdict {
        match input
            .texts
            .iter()
            .any(|(_, t)| t.to_lowercase().contains(self.0))
        {
            true => Verdict::Block {
                reason: format!("says {}", self.0),
                score: 0.97,
            },
            false => Verdict::Allow,
        }
    }
}

/// Guard kind `keyword`: a [`Keyword`] guard for the word `word`.
fn keyword(word: &'static str) -> Box<dyn FnOnce(GatewayBuilder) -> GatewayBuilder + Send> {
    Box::new(move |b| {
        b.guard_kind(
            "keyword",
            Arc::new(move |_: &GuardBinding| Ok(Arc::new(Keyword(word)) as Arc<dyn Guard>)),
        )
    })
}

/// A gateway whose `oai` and `ant` providers run GuardBinding `answers` (`keyword`, `evil`) with
/// `scan` and `enforcement`.
async fn guarded(scan: &str, enforcement: &str) -> Harness {
    let guards =
        format!("  guards: [{{binding: answers, scan: {scan}, enforcement: {enforcement}}}]");
    harness_with(Options {
        extra_yaml: format!(
            r#"
apiVersion: pai.io/v1
kind: GuardBinding
metadata: {{name: answers}}
spec: {{guard: keyword}}
---
apiVersion: pai.io/v1
kind: ModelProvider
metadata: {{name: ant}}
spec:
  provider: anthropic
  endpoint: "{{url}}"
  apiKeySecretRef: {{name: keys, key: anthropic}}
  externalAccess: {{enabled: true}}
{guards}
"#
        ),
        oai_spec: guards.clone(),
        customize: Some(keyword("evil")),
        ..Options::default()
    })
    .await
}

fn openai(text: &str, stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream,
           "messages": [{"role": "user", "content": text}]})
}

fn anthropic(text: &str, stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream,
           "messages": [{"role": "user", "content": text}]})
}

async fn send(h: &Harness, req: Request<Full<Bytes>>) -> (StatusCode, http::HeaderMap, String) {
    let res = h.gateway.clone().oneshot(req).await.unwrap();
    let (status, headers, frames) = collect(res).await;
    (status, headers, String::from_utf8(frames.concat()).unwrap())
}

async fn send_openai(h: &Harness, body: Value) -> (StatusCode, http::HeaderMap, String) {
    send(h, openai_request(&h.openai_key, body)).await
}

async fn send_anthropic(h: &Harness, body: Value) -> (StatusCode, http::HeaderMap, String) {
    send(h, anthropic_request(&h.anthropic_key, body)).await
}

/// The newest record once it carries a verdict on the answer (a stream's is written when the
/// guards are done with it).
async fn judged(h: &Harness, n: usize) -> CallRecord {
    for _ in 0..500 {
        let calls = h.store.recent_calls(100).await.unwrap();
        if calls.len() >= n {
            if let Some(r) = calls
                .into_iter()
                .next()
                .filter(|r| r.guards.iter().any(|g| g.stage == GuardStage::Answer))
            {
                return r;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no record of call {n} with a verdict on its answer");
}

#[tokio::test]
async fn a_buffered_answer_that_is_blocked_is_refused_in_each_dialect_and_still_charged() {
    let h = guarded("{prompts: false, responses: true}", "enforce").await;

    // The prompt is not scanned (scan.prompts: false); the answer repeats it.
    let (status, headers, body) =
        send_openai(&h, openai("You are EVIL now [mock:echo]", false)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("GuardBinding \"answers\" blocked the model's answer: says evil"),
        "{message}"
    );
    assert!(
        !message.contains("You are"),
        "the answer's text is never echoed: {message}"
    );
    assert!(error["error"]["type"].is_string(), "OpenAI-shaped: {error}");
    assert!(headers.get("x-pai-call-id").is_some());
    let r = judged(&h, 1).await;
    assert_eq!(r.status, 403);
    assert_eq!(h.mock.calls("/v1/chat/completions"), 1);
    let usage = r.usage.expect("the model answered: its tokens are charged");
    assert_eq!(usage.output, 4, "one token per echoed word");
    assert_eq!(r.guards.len(), 1);
    let v = &r.guards[0];
    assert_eq!(
        (v.binding.as_str(), v.verdict, v.enforcement, v.stage),
        (
            "answers",
            GuardDecision::Block,
            Enforcement::Enforce,
            GuardStage::Answer
        )
    );
    assert_eq!(v.score, Some(0.97));

    let (status, _, body) = send_anthropic(&h, anthropic("Be evil [mock:echo]", false)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["type"], "error", "Anthropic-shaped: {error}");
    assert_eq!(error["error"]["type"], "permission_error", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("blocked the model's answer"),
        "{error}"
    );
    assert_eq!(judged(&h, 2).await.status, 403);

    // A benign answer passes, with what the guard said in the header.
    let (status, headers, body) = send_openai(&h, openai("Say hello [mock:echo]", false)).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Say hello");
    assert_eq!(
        headers["x-pai-guard"],
        "binding=answers; verdict=allow; stage=answer"
    );
}

#[tokio::test]
async fn a_streamed_answer_passes_whole_and_its_verdict_is_recorded_as_audit() {
    let h = guarded("{prompts: false, responses: true}", "enforce").await;

    let (status, _, body) = send_openai(&h, openai("an evil plan [mock:echo]", true)).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("\"evil \"") && body.contains("data: [DONE]"),
        "{body}"
    );
    let r = judged(&h, 1).await;
    assert_eq!(r.status, 200);
    let v = &r.guards[0];
    assert_eq!(
        (v.verdict, v.enforcement, v.stage),
        (GuardDecision::Block, Enforcement::Audit, GuardStage::Answer),
        "the bytes already left: recorded, not enforced"
    );

    let (status, _, body) = send_anthropic(&h, anthropic("an evil plan [mock:echo]", true)).await;
    assert_eq!(status, 200);
    assert!(body.contains("event: message_stop"), "{body}");
    let v = judged(&h, 2).await.guards[0].clone();
    assert_eq!(
        (v.verdict, v.stage),
        (GuardDecision::Block, GuardStage::Answer)
    );

    // A benign stream is recorded as allowed.
    let (status, _, _) = send_anthropic(&h, anthropic("a kind plan [mock:echo]", true)).await;
    assert_eq!(status, 200);
    let v = judged(&h, 3).await.guards[0].clone();
    assert_eq!(v.verdict, GuardDecision::Allow);
}

#[tokio::test]
async fn under_audit_a_blocked_answer_is_returned_and_both_verdicts_are_kept() {
    let h = guarded("{prompts: true, responses: true}", "audit").await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let mut body = openai("weather? [mock:tool]", false);
    body["tools"] = tools;
    let (status, headers, _) = send_openai(&h, body).await;
    assert_eq!(status, 200);
    // The prompt's verdict first, then the answer's.
    assert_eq!(
        headers["x-pai-guard"],
        "binding=answers; verdict=allow; enforcement=audit, binding=answers; verdict=allow; enforcement=audit; stage=answer"
    );

    // Under audit a blocked answer is returned, and the block recorded.
    let (status, headers, body) = send_openai(&h, openai("evil [mock:echo]", false)).await;
    assert_eq!(status, 200, "{body}");
    let seen = headers["x-pai-guard"].to_str().unwrap();
    assert!(
        seen.ends_with(
            "binding=answers; verdict=block; enforcement=audit; score=0.97; stage=answer"
        ),
        "{seen}"
    );
    let r = judged(&h, 2).await;
    assert_eq!(r.guards.len(), 2, "{:?}", r.guards);
    assert_eq!(r.guards[0].stage, GuardStage::Prompt);
    assert_eq!(r.guards[0].verdict, GuardDecision::Block);
    assert_eq!(r.guards[1].stage, GuardStage::Answer);
}

#[tokio::test]
async fn the_arguments_of_a_tool_call_in_the_answer_are_scanned() {
    // The mock's tool call says {"city":"Paris"}: a guard on "paris" stands in for an
    // injection smuggled into arguments.
    let guards = "  guards: [{binding: answers, scan: {prompts: false, responses: true}}]";
    let h = harness_with(Options {
        extra_yaml: "apiVersion: pai.io/v1\nkind: GuardBinding\nmetadata: {name: answers}\nspec: {guard: keyword}\n".to_owned(),
        oai_spec: guards.to_owned(),
        customize: Some(keyword("paris")),
        ..Options::default()
    })
    .await;
    let mut body = openai("weather? [mock:tool]", false);
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let (status, _, text) = send_openai(&h, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("says paris"), "{text}");

    body["stream"] = json!(true);
    let (status, _, _) = send_openai(&h, body).await;
    assert_eq!(status, 200);
    let v = judged(&h, 2).await.guards[0].clone();
    assert_eq!(
        (v.verdict, v.enforcement),
        (GuardDecision::Block, Enforcement::Audit)
    );
}
