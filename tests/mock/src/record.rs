//! One request as the mock received it.

use bytes::Bytes;
use serde_json::{json, Map, Value};

/// A request the mock received, kept for tests to assert on.
///
/// Requests to the `/_mock/…` introspection routes are not recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query, e.g. `/v1/messages`.
    pub path: String,
    /// The query string without `?`, e.g. `beta=true`.
    pub query: Option<String>,
    /// Every header in arrival order, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body as received.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The first value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The record as `GET /_mock/requests` lists it: `method`, `path`, `query`, `headers` (an
    /// object; repeated headers joined with `, `), `body` (text) and `json` (the parsed body,
    /// or null).
    pub fn to_json(&self) -> Value {
        let mut headers = Map::new();
        for (name, value) in &self.headers {
            match headers.get_mut(name) {
                Some(Value::String(joined)) => {
                    joined.push_str(", ");
                    joined.push_str(value);
                }
                _ => {
                    headers.insert(name.clone(), Value::String(value.clone()));
                }
            }
        }
        json!({
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": headers,
            "body": self.body_text(),
            "json": self.json(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_repeated_headers_joined() {
        let request = RecordedRequest {
            method: "POST".into(),
            path: "/v1/messages".into(),
            query: Some("beta=true".into()),
            headers: vec![
                ("anthropic-beta".into(), "a".into()),
                ("anthropic-beta".into(), "b".into()),
            ],
            body: Bytes::from_static(b"{\"model\":\"m\"}"),
        };
        let listed = request.to_json();
        assert_eq!(listed["headers"]["anthropic-beta"], "a, b");
        assert_eq!(listed["json"]["model"], "m");
        assert_eq!(request.header("Anthropic-Beta"), Some("a"));
    }
}
