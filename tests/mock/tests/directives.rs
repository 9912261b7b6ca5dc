//! The `[mock:…]` directives: failures, pacing and broken streams.

#[cfg(test)]
mod common;

use std::time::Duration;

use common::{
    anthropic_request, anthropic_text, mock, openai_request, openai_text, parse_sse, post_json,
};
use serde_json::json;

const VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

#[tokio::test]
async fn status_with_times_fails_the_first_calls_only() {
    let mock = mock().await;
    let request = anthropic_request("Hi [mock:status=529,times=2]", json!({}));
    for _ in 0..2 {
        let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &request).await;
        assert_eq!(answer.status, 529);
        assert_eq!(
            answer.json(),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        );
    }
    let third = post_json(mock.addr(), "/v1/messages", &[VERSION], &request).await;
    assert_eq!(third.status, 200);

    // Another directive string has its own count, and a reset starts over.
    let other = anthropic_request("Hi [mock:times=2,status=529]", json!({"stream": true}));
    assert_eq!(
        post_json(mock.addr(), "/v1/messages", &[VERSION], &other)
            .await
            .status,
        529
    );
    mock.clear();
    assert_eq!(
        post_json(mock.addr(), "/v1/messages", &[VERSION], &request)
            .await
            .status,
        529
    );
}

#[tokio::test]
async fn status_without_times_always_fails_in_the_dialects_shape() {
    let mock = mock().await;
    let request = openai_request("[mock:status=500]", json!({}));
    for _ in 0..3 {
        let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &request).await;
        assert_eq!(answer.status, 500);
        let error = &answer.json()["error"];
        assert_eq!(error["type"], "server_error");
        assert!(error["message"].is_string());
        assert!(error.get("param").is_some() && error.get("code").is_some());
    }
    let anthropic = anthropic_request("[mock:status=503]", json!({}));
    let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &anthropic).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.json()["error"]["type"], "api_error");
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let mock = mock().await;
    let anthropic = anthropic_request("[mock:status=429,retry_after=7]", json!({}));
    let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &anthropic).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), Some("7"));
    assert_eq!(answer.json()["error"]["type"], "rate_limit_error");

    let openai = openai_request("[mock:status=429,retry_after=2]", json!({}));
    let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &openai).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), Some("2"));
    assert_eq!(answer.json()["error"]["code"], "rate_limit_exceeded");

    let without = anthropic_request("[mock:status=429]", json!({}));
    let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &without).await;
    assert_eq!(answer.header("retry-after"), None);
}

#[tokio::test]
async fn only_the_last_user_message_carries_directives() {
    let mock = mock().await;
    let request = json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "[mock:status=500]"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "again [mock:words=2]"},
        ],
    });
    let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json()["choices"][0]["message"]["content"],
        "mock reply:"
    );
}

#[tokio::test]
async fn split_and_crlf_cut_events_between_cr_and_lf() {
    let mock = mock().await;
    let request = anthropic_request("[mock:split,crlf,words=3]", json!({"stream": true}));
    let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &request).await;
    assert!(!answer.broken);
    let text = answer.text();
    assert!(
        text.contains("event: message_start\r\ndata: {"),
        "CRLF line endings"
    );
    assert!(!text.replace("\r\n", "").contains('\n'), "no bare LF");
    // 9 events, each in 3 pieces that arrive as separate frames.
    let events = answer.events();
    assert_eq!(events.len(), 9);
    assert!(
        answer.frames.len() >= 2 * events.len(),
        "{} frames",
        answer.frames.len()
    );
    assert!(
        answer.frames.iter().any(|f| f.ends_with(b"\r")),
        "a piece ends between CR and LF"
    );
    assert!(answer.frames.iter().all(|f| f.len() < 200));
    assert_eq!(anthropic_text(&events), "mock reply: alpha");

    let openai = openai_request("[mock:split,words=3]", json!({"stream": true}));
    let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &openai).await;
    let events = answer.events();
    assert_eq!(events.len(), 6);
    assert!(answer.frames.len() >= 2 * events.len());
    assert!(
        answer.frames.iter().any(|f| f.as_ref() == b"\n"),
        "a piece is the final newline"
    );
    assert_eq!(openai_text(&events), "mock reply: alpha");
}

#[tokio::test]
async fn midstream_error_stops_an_openai_stream_after_half_the_words() {
    let mock = mock().await;
    let request = openai_request("[mock:midstream_error,words=6]", json!({"stream": true}));
    let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &request).await;
    assert_eq!(answer.status, 200);
    assert!(!answer.broken, "the body ends cleanly");
    let events = answer.events();
    // role chunk, 3 words, the error; no finish chunk and no [DONE]
    assert_eq!(events.len(), 5);
    assert_eq!(
        events[4].json(),
        json!({"error": {"message": "mock upstream failure", "type": "server_error"}})
    );
    assert_eq!(openai_text(&events[..4]), "mock reply: alpha");
}

#[tokio::test]
async fn midstream_error_sends_an_anthropic_error_event() {
    let mock = mock().await;
    let request = anthropic_request("[mock:midstream_error,times=1]", json!({"stream": true}));
    let events = post_json(mock.addr(), "/v1/messages", &[VERSION], &request)
        .await
        .events();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "error",
        ]
    );
    assert_eq!(
        events[7].json(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    // times=1: the retry streams through to the end.
    let retry = post_json(mock.addr(), "/v1/messages", &[VERSION], &request)
        .await
        .events();
    assert_eq!(retry.last().unwrap().event.as_deref(), Some("message_stop"));
}

#[tokio::test]
async fn reset_after_breaks_the_body_without_a_terminator() {
    let mock = mock().await;
    let request = openai_request("[mock:reset_after=2]", json!({"stream": true}));
    let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &request).await;
    assert_eq!(answer.status, 200);
    assert!(answer.broken, "the client sees the body fail");
    let events = parse_sse(&answer.text());
    assert_eq!(events.len(), 3, "role chunk and two words");
    assert!(events.iter().all(|e| e.data != "[DONE]"));

    let anthropic = anthropic_request("[mock:reset_after=0]", json!({}));
    let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &anthropic).await;
    assert_eq!(answer.status, 200);
    assert!(answer.broken);
    assert!(answer.body().is_empty());
}

#[tokio::test]
async fn delays_pace_the_head_and_every_event() {
    let mock = mock().await;
    let request = anthropic_request("[mock:ttfb_ms=150,words=1]", json!({"stream": true}));
    let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &request).await;
    assert!(answer.head_after >= Duration::from_millis(150));

    // 7 events (3 head, 1 word, 3 tail) at 30 ms each.
    let request = anthropic_request("[mock:delay_ms=30,words=1]", json!({"stream": true}));
    let answer = post_json(mock.addr(), "/v1/messages", &[VERSION], &request).await;
    assert!(
        answer.head_after < Duration::from_millis(150),
        "the head is not held back"
    );
    assert!(*answer.arrivals.last().unwrap() >= Duration::from_millis(7 * 30));
    assert!(answer.arrivals.len() >= 7, "events arrive one by one");

    let request = openai_request("[mock:delay_ms=100]", json!({}));
    let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &request).await;
    assert!(answer.head_after >= Duration::from_millis(100));
}

#[tokio::test]
async fn stall_pauses_after_the_first_content_event() {
    let mock = mock().await;
    let request = openai_request("[mock:stall_ms=300,words=3]", json!({"stream": true}));
    let answer = post_json(mock.addr(), "/v1/chat/completions", &[], &request).await;
    let gaps: Vec<Duration> = answer.arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    let longest = gaps
        .iter()
        .enumerate()
        .max_by_key(|(_, gap)| **gap)
        .unwrap();
    assert!(*longest.1 >= Duration::from_millis(290), "{gaps:?}");
    // The stall sits after the frame holding the first word.
    let before: Vec<u8> = answer.frames[..=longest.0].concat();
    let before = String::from_utf8(before).unwrap();
    assert!(before.contains(r#""content":"mock""#));
    assert!(!before.contains(r#"" reply:""#));
    assert_eq!(openai_text(&answer.events()), "mock reply: alpha");
}

#[tokio::test]
async fn a_long_reply_has_exactly_the_words_asked_for() {
    let mock = mock().await;
    let request = anthropic_request("[mock:words=100]", json!({"stream": true}));
    let events = post_json(mock.addr(), "/v1/messages", &[VERSION], &request)
        .await
        .events();
    let text = anthropic_text(&events);
    assert_eq!(text.split(' ').count(), 100);
    assert!(text.starts_with("mock reply: alpha beta"));
    let delta = events
        .iter()
        .rev()
        .find(|e| e.event.as_deref() == Some("message_delta"))
        .unwrap();
    assert_eq!(delta.json()["usage"]["output_tokens"], 100);
}
