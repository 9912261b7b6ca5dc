//! The shape a request asks the answer to have: JSON that follows a schema, a forced tool call,
//! some reasoning first. The mock honours each the way a real model would, deterministically:
//! [`instance`] builds the value a schema describes.

use serde_json::{json, Map, Value};

/// What the request asks of the answer's shape, whatever its dialect.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Shape {
    /// JSON out: `Some(schema)`, or `Some(Value::Null)` for any JSON object.
    pub json: Option<Value>,
    /// A tool the request forces, with its parameters' schema.
    pub forced_tool: Option<(String, Value)>,
    /// Words of reasoning to show before the answer (0: none).
    pub thinking_words: usize,
}

/// Words of reasoning for a thinking budget in tokens: one per 256 tokens, 2 to 32.
pub(crate) fn thinking_words(budget: u64) -> usize {
    usize::try_from(budget / 256).unwrap_or(32).clamp(2, 32)
}

/// Words of reasoning for a named effort.
pub(crate) fn effort_words(effort: &str) -> usize {
    match effort {
        "none" => 0,
        "minimal" => 2,
        "low" => 4,
        "medium" => 8,
        _ => 16,
    }
}

/// The reasoning the mock shows, word by word (each with its leading space, as a stream sends
/// it): `Thinking step1 step2 …`, `words` words.
pub(crate) fn thinking_pieces(words: usize) -> Vec<String> {
    (0..words)
        .map(|i| {
            if i == 0 {
                "Thinking".to_owned()
            } else {
                format!(" step{i}")
            }
        })
        .collect()
}

/// The JSON text of the answer: the instance of the schema, or, for "any JSON object", the
/// instance of the first JSON Schema written in the prompt (as LangChain's format instructions
/// write it), else `{"answer": "mock reply"}`.
pub(crate) fn json_text(schema: &Value, prompt_text: &str) -> String {
    let schema = if schema.is_null() {
        schema_in(prompt_text).unwrap_or(Value::Null)
    } else {
        schema.clone()
    };
    if schema.is_null() {
        return json!({"answer": "mock reply"}).to_string();
    }
    instance(&schema, &schema, "value", 0).to_string()
}

/// The first JSON object in `text` that has `properties`.
fn schema_in(text: &str) -> Option<Value> {
    text.match_indices('{').take(64).find_map(|(at, _)| {
        let mut values = serde_json::Deserializer::from_str(&text[at..]).into_iter::<Value>();
        match values.next() {
            Some(Ok(v)) if v.get("properties").is_some() => Some(v),
            _ => None,
        }
    })
}

/// A value that follows `schema`; `root` holds the `$defs` that `$ref`s point into.
pub(crate) fn instance(schema: &Value, root: &Value, name: &str, depth: usize) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = r
            .strip_prefix("#/$defs/")
            .and_then(|n| root.get("$defs").and_then(|d| d.get(n)))
            .or_else(|| {
                r.strip_prefix("#/definitions/")
                    .and_then(|n| root.get("definitions").and_then(|d| d.get(n)))
            });
        return target.map_or(Value::Null, |t| instance(t, root, name, depth + 1));
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(variants) = schema.get(key).and_then(Value::as_array) {
            let pick = variants
                .iter()
                .find(|v| v.get("type") != Some(&json!("null")))
                .or_else(|| variants.first());
            return pick.map_or(Value::Null, |v| instance(v, root, name, depth + 1));
        }
    }
    let kind = match schema.get("type") {
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        Some(Value::String(t)) => t.as_str(),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match kind {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, prop) in props {
                    out.insert(key.clone(), instance(prop, root, key, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let n = schema
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .clamp(1, 3);
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            Value::Array(
                (0..n)
                    .map(|_| instance(&items, root, name, depth + 1))
                    .collect(),
            )
        }
        "integer" => json!(schema
            .get("minimum")
            .and_then(Value::as_i64)
            .map_or(42, |m| m.max(42).min(
                schema
                    .get("maximum")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MAX)
            ))),
        "number" => json!(4.5),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => match schema.get("format").and_then(Value::as_str) {
            Some("date") => json!("2024-01-02"),
            Some("date-time") => json!("2024-01-02T03:04:05Z"),
            Some("email") => json!("mock@example.com"),
            Some("uuid") => json!("00000000-0000-4000-8000-000000000000"),
            Some("uri") => json!("https://example.com/"),
            _ => json!(format!("mock {name}")),
        },
    }
}

// === reading the shape from each dialect ===

/// From a Chat Completions request: `response_format`, a `tool_choice` naming a function,
/// `reasoning_effort`.
pub(crate) fn from_openai(request: &Value) -> Shape {
    let format = &request["response_format"];
    let json = match format["type"].as_str() {
        Some("json_schema") => Some(format["json_schema"]["schema"].clone()),
        Some("json_object") => Some(Value::Null),
        _ => None,
    };
    let forced_tool = request["tool_choice"]["function"]["name"]
        .as_str()
        .and_then(|name| {
            let tools = request["tools"].as_array()?;
            let tool = tools
                .iter()
                .find(|t| t["function"]["name"].as_str() == Some(name))?;
            Some((name.to_owned(), tool["function"]["parameters"].clone()))
        });
    Shape {
        json,
        forced_tool,
        thinking_words: request["reasoning_effort"].as_str().map_or(0, effort_words),
    }
}

/// From a Messages request: `output_config.format`, a system prompt that asks for one JSON
/// object, a `tool_choice` of type `tool`, `thinking` and `output_config.effort`.
pub(crate) fn from_anthropic(request: &Value, system: &str) -> Shape {
    let format = &request["output_config"]["format"];
    let json = if format["type"] == "json_schema" {
        Some(format["schema"].clone())
    } else if system.contains("JSON object") {
        Some(Value::Null)
    } else {
        None
    };
    let forced_tool = (request["tool_choice"]["type"] == "tool")
        .then(|| request["tool_choice"]["name"].as_str())
        .flatten()
        .and_then(|name| {
            let tool = request["tools"]
                .as_array()?
                .iter()
                .find(|t| t["name"].as_str() == Some(name))?;
            Some((name.to_owned(), tool["input_schema"].clone()))
        });
    let thinking_words = match request["thinking"]["type"].as_str() {
        Some("enabled") => {
            thinking_words(request["thinking"]["budget_tokens"].as_u64().unwrap_or(0))
        }
        Some("adaptive") => request["output_config"]["effort"]
            .as_str()
            .map_or(16, effort_words),
        _ => 0,
    };
    Shape {
        json,
        forced_tool,
        thinking_words,
    }
}

/// From a `generateContent` request: `responseMimeType` with `responseJsonSchema` or
/// `responseSchema`, `functionCallingConfig` allowing one function, `thinkingConfig` with
/// `includeThoughts`.
pub(crate) fn from_gemini(request: &Value) -> Shape {
    let config = &request["generationConfig"];
    let json = (config["responseMimeType"] == "application/json").then(|| {
        let schema = &config["responseJsonSchema"];
        if schema.is_null() {
            config["responseSchema"].clone()
        } else {
            schema.clone()
        }
    });
    let calling = &request["toolConfig"]["functionCallingConfig"];
    let forced_tool = (calling["mode"] == "ANY")
        .then(|| calling["allowedFunctionNames"][0].as_str())
        .flatten()
        .and_then(|name| {
            let declaration = request["tools"]
                .as_array()?
                .iter()
                .filter_map(|t| t["functionDeclarations"].as_array())
                .flatten()
                .find(|d| d["name"].as_str() == Some(name))?;
            Some((name.to_owned(), declaration["parameters"].clone()))
        });
    let thinking = &config["thinkingConfig"];
    let thinking_words = match thinking["thinkingBudget"].as_u64() {
        Some(budget) if budget > 0 && thinking["includeThoughts"] == true => {
            self::thinking_words(budget)
        }
        _ => 0,
    };
    Shape {
        json,
        forced_tool,
        thinking_words,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string"}},
                "kind": {"enum": ["cat", "dog"]},
                "pet": {"$ref": "#/$defs/Pet"},
                "nick": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            },
            "$defs": {"Pet": {"type": "object", "properties": {"legs": {"type": "integer"}}}},
        });
        assert_eq!(
            instance(&schema, &schema, "value", 0),
            json!({"name": "mock name", "age": 42, "tags": ["mock tags"], "kind": "cat",
                "pet": {"legs": 42}, "nick": "mock nick"})
        );
    }

    #[test]
    fn json_mode_follows_a_schema_written_in_the_prompt() {
        let prompt = r#"Answer as JSON. The schema: {"properties": {"title": {"type": "string"}}, "required": ["title"]} thanks"#;
        assert_eq!(json_text(&Value::Null, prompt), r#"{"title":"mock title"}"#);
        assert_eq!(
            json_text(&Value::Null, "no schema"),
            r#"{"answer":"mock reply"}"#
        );
    }
}
