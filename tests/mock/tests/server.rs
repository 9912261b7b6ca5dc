//! Keys, recording, introspection, routing, HTTP/2, shutdown and the binary.

#[cfg(test)]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bytes::Bytes;
use common::{anthropic_request, get, openai_request, post_json};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use pai_mock::{MockConfig, MockUpstream};
use serde_json::{json, Value};

const VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

#[tokio::test]
async fn openai_keys_are_checked_and_a_wrong_one_is_echoed_masked() {
    let mock = MockUpstream::start(MockConfig::default().with_openai_key("sk-right-key-0001"))
        .await
        .unwrap();
    let request = openai_request("hi", json!({}));
    let wrong = post_json(
        mock.addr(),
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-abcdefghijklmnopxyz")],
        &request,
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.json(),
        json!({"error": {
            "message": "Incorrect API key provided: sk-ab***yz.",
            "type": "invalid_request_error",
            "param": null,
            "code": "invalid_api_key",
        }})
    );
    let missing = post_json(mock.addr(), "/v1/chat/completions", &[], &request).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["error"]["type"], "invalid_request_error");
    let models = get(mock.addr(), "/v1/models", &[]).await;
    assert_eq!(models.status, 401);

    let right = post_json(
        mock.addr(),
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-right-key-0001")],
        &request,
    )
    .await;
    assert_eq!(right.status, 200);
    // The Anthropic routes have no key configured.
    let anthropic = post_json(
        mock.addr(),
        "/v1/messages",
        &[VERSION],
        &anthropic_request("hi", json!({})),
    )
    .await;
    assert_eq!(anthropic.status, 200);
}

#[tokio::test]
async fn anthropic_keys_are_checked_in_either_header() {
    let mock = MockUpstream::start(MockConfig::default().with_anthropic_key("sk-ant-right"))
        .await
        .unwrap();
    let request = anthropic_request("hi", json!({}));
    let wrong = post_json(
        mock.addr(),
        "/v1/messages",
        &[VERSION, ("x-api-key", "sk-ant-wrong")],
        &request,
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.json(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
    );
    let missing = post_json(mock.addr(), "/v1/messages", &[VERSION], &request).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["error"]["type"], "authentication_error");
    let count = post_json(
        mock.addr(),
        "/v1/messages/count_tokens",
        &[VERSION],
        &request,
    )
    .await;
    assert_eq!(count.status, 401);

    let by_key = post_json(
        mock.addr(),
        "/v1/messages",
        &[VERSION, ("x-api-key", "sk-ant-right")],
        &request,
    )
    .await;
    assert_eq!(by_key.status, 200);
    let by_bearer = post_json(
        mock.addr(),
        "/v1/messages",
        &[VERSION, ("authorization", "Bearer sk-ant-right")],
        &request,
    )
    .await;
    assert_eq!(by_bearer.status, 200);
}

#[tokio::test]
async fn requests_are_recorded_with_their_headers() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let request = anthropic_request("hi", json!({}));
    let headers = [
        VERSION,
        ("x-api-key", "sk-ant-1"),
        ("anthropic-beta", "a-1,b-2"),
    ];
    post_json(mock.addr(), "/v1/messages?beta=true", &headers, &request).await;
    post_json(
        mock.addr(),
        "/v1/chat/completions",
        &[],
        &openai_request("hi", json!({})),
    )
    .await;

    let recorded = mock.requests();
    assert_eq!(recorded.len(), 2);
    let first = &recorded[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/messages");
    assert_eq!(first.query.as_deref(), Some("beta=true"));
    assert_eq!(first.header("x-api-key"), Some("sk-ant-1"));
    assert_eq!(first.header("Anthropic-Beta"), Some("a-1,b-2"));
    assert_eq!(first.json(), Some(request.clone()));
    assert_eq!(mock.calls("/v1/messages"), 1);
    assert_eq!(mock.calls("/v1/chat/completions"), 1);

    // The same record over HTTP; introspection itself is not recorded.
    let listed = get(mock.addr(), "/_mock/requests", &[]).await.json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["path"], "/v1/messages");
    assert_eq!(listed[0]["query"], "beta=true");
    assert_eq!(listed[0]["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(listed[0]["headers"]["anthropic-beta"], "a-1,b-2");
    assert_eq!(listed[0]["json"], request);
    assert_eq!(listed[1]["query"], Value::Null);

    let reset = common::send(
        mock.addr(),
        http::Method::POST,
        "/_mock/reset",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(reset.status, 200);
    assert!(mock.requests().is_empty());
    assert_eq!(
        get(mock.addr(), "/_mock/requests", &[]).await.json(),
        json!([])
    );
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let unknown = post_json(mock.addr(), "/v1/completions", &[], &json!({})).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.json()["error"]["message"],
        "Invalid URL (POST /v1/completions)"
    );
    let anthropic = get(mock.addr(), "/v1/nothing", &[VERSION]).await;
    assert_eq!(anthropic.status, 404);
    assert_eq!(anthropic.json()["error"]["type"], "not_found_error");
    let wrong_method = get(mock.addr(), "/v1/chat/completions", &[]).await;
    assert_eq!(wrong_method.status, 405);
}

#[tokio::test]
async fn odd_bodies_get_a_400_not_a_crash() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let bodies: [&[u8]; 8] = [
        b"",
        b"null",
        b"\xff\xfe",
        b"{\"model\":1,\"messages\":{}}",
        b"{\"model\":\"m\",\"messages\":[1,\"x\",null]}",
        b"{\"model\":\"m\",\"messages\":[],\"max_tokens\":1}",
        b"{\"model\":\"m\",\"max_tokens\":-1,\"messages\":[{\"role\":\"user\",\"content\":[1]}]}",
        b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"[mock:words=1,status=abc\"}]}",
    ];
    for path in [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/messages/count_tokens",
    ] {
        for body in bodies {
            let answer = common::send(
                mock.addr(),
                http::Method::POST,
                path,
                &[],
                Bytes::from_static(body),
            )
            .await;
            assert!(
                answer.status == 400 || answer.status == 200,
                "{path} {:?}: {}",
                String::from_utf8_lossy(body),
                answer.status
            );
            assert!(serde_json::from_slice::<Value>(&answer.body()).is_ok());
        }
    }
    // The mock is still serving.
    assert_eq!(get(mock.addr(), "/v1/models", &[]).await.status, 200);
}

#[tokio::test]
async fn http2_prior_knowledge_streams_too() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let stream = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let body = anthropic_request("[mock:words=3]", json!({"stream": true})).to_string();
    let request = http::Request::post(format!("{}/v1/messages", mock.url()))
        .header("anthropic-version", "2023-06-01")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let events = common::parse_sse(std::str::from_utf8(&bytes).unwrap());
    assert_eq!(common::anthropic_text(&events), "mock reply: alpha");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let mock = MockUpstream::start(MockConfig::default()).await.unwrap();
    let addr = mock.addr();
    assert_eq!(mock.url(), format!("http://{addr}"));
    mock.shutdown();
    drop(mock);
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "the listener is closed");
}

#[tokio::test]
async fn the_binary_prints_its_url_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pai-mock"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--openai-key",
            "sk-bin",
            "--anthropic-key=sk-ant-bin",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let url = line
        .strip_prefix("listening on ")
        .unwrap()
        .trim_end()
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line:?}");
    let addr = url.trim_start_matches("http://").parse().unwrap();

    let openai = get(addr, "/v1/models", &[("authorization", "Bearer sk-bin")]).await;
    let anthropic = get(
        addr,
        "/v1/models",
        &[VERSION, ("x-api-key", "sk-ant-wrong")],
    )
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(openai.status, 200);
    assert_eq!(anthropic.status, 401);
}

#[test]
fn the_binary_rejects_unknown_arguments() {
    let output = Command::new(env!("CARGO_BIN_EXE_pai-mock"))
        .arg("--nope")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
}
