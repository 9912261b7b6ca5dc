//! The Gemini native dialect, end to end over HTTP.

#[cfg(test)]
mod common;

use common::{get, mock, mock_with, post_json};
use pai_mock::{MockConfig, MockUpstream};
use serde_json::{json, Value};

const FLASH: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
const FLASH_SSE: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";

fn request(prompt: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]})
}

fn with_tool(prompt: &str) -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "tools": [{"functionDeclarations": [{
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }]}],
    })
}

async fn keyed() -> MockUpstream {
    mock_with(MockConfig::default().with_gemini_key("AIza-mock-key")).await
}

#[tokio::test]
async fn generate_content_answers_with_the_paths_model_and_counts_tokens() {
    let mock = mock().await;
    let body = json!({
        "systemInstruction": {"parts": [{"text": "Be terse."}]},
        "contents": [{"role": "user", "parts": [{"text": "Say hi [mock:words=4]"}]}],
        "generationConfig": {"maxOutputTokens": 64, "temperature": 0.2},
    });
    let answer = post_json(mock.addr(), FLASH, &[], &body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    assert_eq!(
        body["candidates"],
        json!([{
            "content": {"parts": [{"text": "mock reply: alpha beta"}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
        }])
    );
    assert_eq!(body["modelVersion"], "gemini-2.5-flash");
    assert_eq!(body["responseId"], "mock-response-1");
    // "Be terse." (9) + "Say hi [mock:words=4]" (21) = 30 characters = 8 tokens.
    let usage = &body["usageMetadata"];
    assert_eq!(usage["promptTokenCount"], 8);
    assert_eq!(usage["candidatesTokenCount"], 4);
    assert_eq!(usage["totalTokenCount"], 12);
    assert!(usage.get("cachedContentTokenCount").is_none());
    let recorded = &mock.requests()[0];
    assert_eq!(
        recorded.path,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        mock.calls("/v1beta/models/gemini-2.5-flash:generateContent"),
        1
    );
}

#[tokio::test]
async fn cached_tokens_are_part_of_the_prompt_count() {
    let mock = mock().await;
    let answer = post_json(
        mock.addr(),
        FLASH,
        &[],
        &request("abcd [mock:cached=50,words=3]"),
    )
    .await;
    let usage = &answer.json()["usageMetadata"];
    // 30 characters = 8 tokens, plus 50 cached.
    assert_eq!(usage["promptTokenCount"], 58);
    assert_eq!(usage["cachedContentTokenCount"], 50);
    assert_eq!(usage["totalTokenCount"], 61);
}

#[tokio::test]
async fn the_key_is_x_goog_api_key_or_the_key_query() {
    let mock = keyed().await;
    let ok = post_json(
        mock.addr(),
        FLASH,
        &[("x-goog-api-key", "AIza-mock-key")],
        &request("hi"),
    )
    .await;
    assert_eq!(ok.status, 200);
    let query = post_json(
        mock.addr(),
        "/v1beta/models/gemini-2.5-flash:generateContent?key=AIza-mock-key",
        &[],
        &request("hi"),
    )
    .await;
    assert_eq!(query.status, 200);

    let wrong = post_json(
        mock.addr(),
        FLASH,
        &[("x-goog-api-key", "nope")],
        &request("hi"),
    )
    .await;
    assert_eq!(wrong.status, 400);
    let error = &wrong.json()["error"];
    assert_eq!(error["code"], 400);
    assert_eq!(error["status"], "INVALID_ARGUMENT");
    assert_eq!(
        error["message"],
        "API key not valid. Please pass a valid API key."
    );
    assert_eq!(error["details"][0]["reason"], "API_KEY_INVALID");

    // A Bearer token is not a Gemini API key.
    let missing = post_json(
        mock.addr(),
        FLASH,
        &[("authorization", "Bearer AIza-mock-key")],
        &request("hi"),
    )
    .await;
    assert_eq!(missing.status, 403);
    assert_eq!(missing.json()["error"]["status"], "PERMISSION_DENIED");
}

#[tokio::test]
async fn the_body_is_proto_json_unknown_fields_are_refused() {
    let mock = mock().await;
    let mut body = request("hi");
    body["max_tokens"] = json!(10);
    let answer = post_json(mock.addr(), FLASH, &[], &body).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json()["error"]["message"],
        "Invalid JSON payload received. Unknown name \"max_tokens\": Cannot find field."
    );

    let mut body = request("hi");
    body["generationConfig"] = json!({"max_tokens": 10});
    let answer = post_json(mock.addr(), FLASH, &[], &body).await;
    assert_eq!(answer.status, 400);
    assert!(answer.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at 'generation_config'"));

    // snake_case names are proto JSON too.
    let body = json!({
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "system_instruction": {"parts": [{"text": "x"}]},
        "generation_config": {"max_output_tokens": 5},
    });
    assert_eq!(post_json(mock.addr(), FLASH, &[], &body).await.status, 200);

    for (bad, message) in [
        (json!({"contents": []}), "contents is not specified"),
        (
            json!({"contents": [{"role": "user", "parts": []}]}),
            "contents.parts must not be empty",
        ),
        (
            json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}),
            "Please use a valid role: user, model.",
        ),
    ] {
        let answer = post_json(mock.addr(), FLASH, &[], &bad).await;
        assert_eq!(answer.status, 400, "{bad}");
        let error = &answer.json()["error"];
        assert_eq!(error["status"], "INVALID_ARGUMENT");
        assert!(
            error["message"].as_str().unwrap().contains(message),
            "{error}"
        );
    }

    let answer = common::send(
        mock.addr(),
        http::Method::POST,
        FLASH,
        &[("content-type", "application/json")],
        "{not json",
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["status"], "INVALID_ARGUMENT");
}

#[tokio::test]
async fn a_stream_is_crlf_framed_with_running_usage_and_no_terminator() {
    let mock = mock().await;
    let answer = post_json(
        mock.addr(),
        FLASH_SSE,
        &[],
        &request("abcd [mock:words=5,cached=2]"),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    let text = answer.text();
    assert!(text.starts_with("data: {"), "{text}");
    assert!(text.ends_with("}\r\n\r\n"), "{text}");
    assert!(!text.contains("event:") && !text.contains("[DONE]"));
    assert_eq!(text.matches("\r\n\r\n").count(), 5);
    let chunks: Vec<Value> = answer.events().iter().map(|e| e.json()).collect();
    assert_eq!(chunks.len(), 5);
    let words: String = chunks
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(words, "mock reply: alpha beta gamma");
    for (i, chunk) in chunks.iter().enumerate() {
        let usage = &chunk["usageMetadata"];
        // 25 characters = 7 tokens, plus 2 cached: the same in every chunk.
        assert_eq!(usage["promptTokenCount"], 9);
        assert_eq!(usage["cachedContentTokenCount"], 2);
        assert_eq!(usage["candidatesTokenCount"], i + 1, "running total");
        assert_eq!(usage["totalTokenCount"], 9 + i + 1);
        let finished = chunk["candidates"][0].get("finishReason");
        assert_eq!(
            finished.is_some(),
            i == 4,
            "only the last chunk finishes: {chunk}"
        );
    }
    assert_eq!(chunks[4]["candidates"][0]["finishReason"], "STOP");
}

/// A request that asks for thoughts with `budget` tokens of thinking.
fn thinking(prompt: &str, budget: u64) -> Value {
    let mut body = request(prompt);
    body["generationConfig"] =
        json!({"thinkingConfig": {"thinkingBudget": budget, "includeThoughts": true}});
    body
}

#[tokio::test]
async fn a_thinking_stream_sends_thought_parts_first_and_counts_them_apart() {
    let mock = mock().await;
    let answer = post_json(
        mock.addr(),
        FLASH_SSE,
        &[],
        &thinking("[mock:words=2]", 768),
    )
    .await;
    assert_eq!(answer.status, 200);
    let chunks: Vec<Value> = answer.events().iter().map(|e| e.json()).collect();
    let parts: Vec<Value> = chunks
        .iter()
        .map(|c| c["candidates"][0]["content"]["parts"][0].clone())
        .collect();
    assert_eq!(
        parts,
        [
            json!({"text": "Thinking", "thought": true}),
            json!({"text": " step1", "thought": true}),
            json!({"text": " step2", "thought": true}),
            json!({"text": "mock"}),
            json!({"text": " reply:"}),
        ]
    );
    let counts: Vec<(Value, Value, Value)> = chunks
        .iter()
        .map(|c| {
            let usage = &c["usageMetadata"];
            (
                usage["thoughtsTokenCount"].clone(),
                usage["candidatesTokenCount"].clone(),
                c["candidates"][0]["finishReason"].clone(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            (json!(1), json!(0), Value::Null),
            (json!(2), json!(0), Value::Null),
            (json!(3), json!(0), Value::Null),
            (json!(3), json!(1), Value::Null),
            (json!(3), json!(2), json!("STOP")),
        ]
    );
    let prompt = chunks[4]["usageMetadata"]["promptTokenCount"]
        .as_u64()
        .unwrap();
    assert_eq!(
        chunks[4]["usageMetadata"]["totalTokenCount"],
        prompt + 3 + 2
    );
}

#[tokio::test]
async fn without_include_thoughts_a_stream_shows_no_thoughts() {
    let mock = mock().await;
    let mut body = request("[mock:words=2]");
    body["generationConfig"] = json!({"thinkingConfig": {"thinkingBudget": 768}});
    let answer = post_json(mock.addr(), FLASH_SSE, &[], &body).await;
    let chunks: Vec<Value> = answer.events().iter().map(|e| e.json()).collect();
    assert_eq!(chunks.len(), 2);
    assert!(chunks
        .iter()
        .all(|c| c["usageMetadata"].get("thoughtsTokenCount").is_none()));
}

#[tokio::test]
async fn without_alt_sse_a_stream_is_one_json_array() {
    let mock = mock().await;
    let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";
    let answer = post_json(mock.addr(), path, &[], &request("[mock:words=3]")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let chunks = answer.json();
    assert_eq!(chunks.as_array().map(Vec::len), Some(3));
    assert_eq!(chunks[2]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(chunks[2]["usageMetadata"]["candidatesTokenCount"], 3);
}

#[tokio::test]
async fn a_tool_call_is_a_function_call_part() {
    let mock = mock().await;
    let answer = post_json(mock.addr(), FLASH, &[], &with_tool("Weather? [mock:tool]")).await;
    let body = answer.json();
    assert_eq!(
        body["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}])
    );
    assert_eq!(body["candidates"][0]["finishReason"], "STOP");
    assert_eq!(body["usageMetadata"]["candidatesTokenCount"], 3);

    let answer = post_json(
        mock.addr(),
        FLASH_SSE,
        &[],
        &with_tool("Weather? [mock:tool]"),
    )
    .await;
    let events = answer.events();
    assert_eq!(events.len(), 1, "the whole call comes in one chunk");
    let chunk = events[0].json();
    assert_eq!(
        chunk["candidates"][0]["content"]["parts"][0]["functionCall"]["args"],
        json!({"city": "Paris"})
    );
    assert_eq!(chunk["candidates"][0]["finishReason"], "STOP");

    // After the function response, no directives: a plain text answer.
    let body = json!({
        "contents": [
            {"role": "user", "parts": [{"text": "Weather? [mock:tool]"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}]},
        ],
        "tools": with_tool("")["tools"].clone(),
    });
    let answer = post_json(mock.addr(), FLASH, &[], &body).await.json();
    assert!(answer["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("mock reply:"));
    // "Weather? [mock:tool]" (20) + "sunny" (5) = 25 characters = 7 tokens.
    assert_eq!(answer["usageMetadata"]["promptTokenCount"], 7);
}

#[tokio::test]
async fn failures_use_googles_error_shape() {
    let mock = mock().await;
    let answer = post_json(
        mock.addr(),
        FLASH_SSE,
        &[],
        &request("[mock:status=429,retry_after=3]"),
    )
    .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), Some("3"));
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let error = &answer.json()["error"];
    assert_eq!(error["code"], 429);
    assert_eq!(error["status"], "RESOURCE_EXHAUSTED");
    assert!(error["message"].as_str().unwrap().contains("quota"));

    let answer = post_json(
        mock.addr(),
        FLASH,
        &[],
        &request("[mock:status=503,times=1]"),
    )
    .await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.json()["error"]["status"], "UNAVAILABLE");
    let again = post_json(
        mock.addr(),
        FLASH,
        &[],
        &request("[mock:status=503,times=1]"),
    )
    .await;
    assert_eq!(again.status, 200);

    let answer = post_json(mock.addr(), FLASH, &[], &request("[mock:status=500]")).await;
    assert_eq!(answer.json()["error"]["status"], "INTERNAL");
}

#[tokio::test]
async fn a_midstream_error_is_an_error_object_in_band() {
    let mock = mock().await;
    let answer = post_json(
        mock.addr(),
        FLASH_SSE,
        &[],
        &request("[mock:words=6,midstream_error]"),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert!(!answer.broken);
    let events = answer.events();
    assert_eq!(events.len(), 4, "three words, then the error");
    let error = events[3].json();
    assert_eq!(error["error"]["code"], 503);
    assert_eq!(error["error"]["status"], "UNAVAILABLE");
    assert!(answer.text().ends_with("\r\n\r\n"));
}

#[tokio::test]
async fn split_and_reset_work_as_in_the_other_dialects() {
    let mock = mock().await;
    let answer = post_json(
        mock.addr(),
        FLASH_SSE,
        &[],
        &request("[mock:words=3,split]"),
    )
    .await;
    assert!(
        answer.frames.len() >= 9,
        "three pieces per event: {:?}",
        answer.frames
    );
    assert_eq!(answer.events().len(), 3);
    // The last piece of every event is its final "\n".
    assert!(answer.frames.iter().filter(|f| f.as_ref() == b"\n").count() >= 3);

    let answer = post_json(
        mock.addr(),
        FLASH_SSE,
        &[],
        &request("[mock:words=6,reset_after=2]"),
    )
    .await;
    assert!(answer.broken);
    assert_eq!(answer.events().len(), 2);
}

#[tokio::test]
async fn routes_and_methods() {
    let mock = keyed().await;
    let models = get(
        mock.addr(),
        "/v1beta/models",
        &[("x-goog-api-key", "AIza-mock-key")],
    )
    .await;
    assert_eq!(models.status, 200);
    assert_eq!(
        models.json()["models"][0]["name"],
        "models/gemini-2.5-flash"
    );
    let unkeyed = get(mock.addr(), "/v1beta/models", &[]).await;
    assert_eq!(unkeyed.status, 403);

    let wrong_method = get(mock.addr(), FLASH, &[]).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.json()["error"]["code"], 405);
    let unknown = post_json(
        mock.addr(),
        "/v1beta/models/g:embedContent",
        &[],
        &json!({}),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["status"], "NOT_FOUND");
    // The stable /v1 surface answers too.
    let v1 = post_json(
        mock.addr(),
        "/v1/models/gemini-2.5-flash:generateContent",
        &[("x-goog-api-key", "AIza-mock-key")],
        &request("hi"),
    )
    .await;
    assert_eq!(v1.status, 200);
}
