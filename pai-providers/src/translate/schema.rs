//! JSON Schemas for structured output, fitted to what each upstream enforces.
//!
//! - **Anthropic** (`output_config.format`) enforces a subset: types, `enum`, `const`, `anyOf`
//!   (`oneOf` is read as `anyOf`), `allOf`, local `$ref`/`$defs`, `required`, objects closed with
//!   `additionalProperties: false`, arrays with `items` and `minItems` of 0 or 1, and a list of
//!   string formats. [`for_anthropic`] does what the official `anthropic` SDK does to a schema
//!   before it sends it (`transform_schema`): it closes every object and moves the constraints
//!   the API would refuse (`minimum`, `maxLength`, `pattern`, other formats, …) into the
//!   description, where the model still reads them. A part it cannot express at all (a
//!   sub-schema with no type, `anyOf`, `enum` or `const`, such as `{}` for "anything") is
//!   refused with a 400 that names where it is.
//! - **OpenAI** strict mode wants every object closed and every property required;
//!   [`openai_strict`] says whether a schema already is, so a schema from an Anthropic client is
//!   sent strict only when OpenAI would take it.
//! - **Gemini** takes JSON Schema as it is in `responseJsonSchema`.

use pai_core::Error;
use serde_json::{Map, Value};

/// The string formats Anthropic enforces; others go into the description.
const ANTHROPIC_FORMATS: &[&str] = &[
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "uri",
    "ipv4",
    "ipv6",
    "uuid",
];

const TYPES: &[&str] = &[
    "object", "array", "string", "integer", "number", "boolean", "null",
];

fn primitive(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

/// `schema` as Anthropic's structured outputs take it. `param` names the client's field, for
/// the error.
pub(crate) fn for_anthropic(schema: &Value, param: &str) -> Result<Value, Error> {
    transform(schema, param, "schema")
}

fn refuse(param: &str, path: &str, why: &str) -> Error {
    Error::invalid_param(
        param,
        format!("{param}: {path} {why}, which this provider's structured output cannot enforce"),
    )
}

fn transform(schema: &Value, param: &str, path: &str) -> Result<Value, Error> {
    let Value::Object(source) = schema else {
        return Err(refuse(param, path, "is not a schema object"));
    };
    let mut rest = source.clone();
    let mut out = Map::new();
    if let Some(defs) = rest.remove("$defs").or_else(|| rest.remove("definitions")) {
        let Value::Object(defs) = defs else {
            return Err(refuse(param, path, "has $defs that are not an object"));
        };
        let mut fitted = Map::new();
        for (name, def) in &defs {
            fitted.insert(
                name.clone(),
                transform(def, param, &format!("{path}.$defs.{name}"))?,
            );
        }
        out.insert("$defs".into(), Value::Object(fitted));
    }
    if let Some(reference) = rest.remove("$ref") {
        match reference.as_str() {
            Some(r) if r.starts_with("#/$defs/") || r.starts_with("#/definitions/") => {
                out.insert(
                    "$ref".into(),
                    json_str(&r.replace("#/definitions/", "#/$defs/")),
                );
                return Ok(Value::Object(out));
            }
            Some("#") => {
                return Err(refuse(
                    param,
                    path,
                    "refers to the whole schema (recursion)",
                ))
            }
            _ => {
                return Err(refuse(
                    param,
                    path,
                    "has a $ref outside the schema's own $defs",
                ))
            }
        }
    }
    let mut kind = rest.remove("type");
    // `"type": ["string", "null"]` is a choice between types.
    if let Some(Value::Array(types)) = &kind {
        let variants: Vec<Value> = types
            .iter()
            .map(|t| {
                let mut variant = rest.clone();
                variant.remove("description");
                variant.remove("title");
                variant.insert("type".into(), t.clone());
                Value::Object(variant)
            })
            .collect();
        let mut choice = Map::new();
        for key in ["description", "title"] {
            if let Some(v) = rest.get(key) {
                choice.insert(key.into(), v.clone());
            }
        }
        choice.insert("anyOf".into(), Value::Array(variants));
        out.extend(
            transform(&Value::Object(choice), param, path)?
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        return Ok(Value::Object(out));
    }
    let any_of = rest.remove("anyOf");
    let one_of = rest.remove("oneOf");
    let all_of = rest.remove("allOf");
    let mut literal = false;
    if let Some(Value::Array(values)) = rest.get("enum") {
        if !values.is_empty() && values.iter().all(primitive) {
            out.insert("enum".into(), Value::Array(values.clone()));
            rest.remove("enum");
            literal = true;
        }
    }
    if rest.get("const").is_some_and(primitive) {
        if let Some(c) = rest.remove("const") {
            out.insert("const".into(), c);
            literal = true;
        }
    }
    if literal {
        kind = None;
    }
    let variants = |list: Value, key: &str| -> Result<Value, Error> {
        let Value::Array(items) = list else {
            return Err(refuse(
                param,
                path,
                &format!("has a {key} that is not a list"),
            ));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| transform(v, param, &format!("{path}.{key}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    };
    if let Some(list) = any_of {
        out.insert("anyOf".into(), variants(list, "anyOf")?);
    } else if let Some(list) = one_of {
        out.insert("anyOf".into(), variants(list, "oneOf")?);
    } else if let Some(list) = all_of {
        out.insert("allOf".into(), variants(list, "allOf")?);
    } else if !literal {
        match kind.as_ref().and_then(Value::as_str) {
            Some(t) if TYPES.contains(&t) => {
                out.insert("type".into(), json_str(t));
            }
            Some(t) => return Err(refuse(param, path, &format!("has the unknown type {t:?}"))),
            None => {
                return Err(refuse(
                    param,
                    path,
                    "allows any value (it has no type, anyOf, enum or const)",
                ))
            }
        }
    }
    for key in ["description", "title"] {
        if let Some(v) = rest.remove(key) {
            out.insert(key.into(), v);
        }
    }
    match kind.as_ref().and_then(Value::as_str) {
        Some("object") => {
            let mut properties = Map::new();
            if let Some(Value::Object(props)) = rest.remove("properties") {
                for (name, prop) in &props {
                    properties.insert(
                        name.clone(),
                        transform(prop, param, &format!("{path}.properties.{name}"))?,
                    );
                }
            }
            out.insert("properties".into(), Value::Object(properties));
            rest.remove("additionalProperties");
            out.insert("additionalProperties".into(), Value::Bool(false));
            if let Some(required) = rest.remove("required") {
                out.insert("required".into(), required);
            }
        }
        Some("string") => {
            if let Some(format) = rest.remove("format") {
                if format
                    .as_str()
                    .is_some_and(|f| ANTHROPIC_FORMATS.contains(&f))
                {
                    out.insert("format".into(), format);
                } else {
                    rest.insert("format".into(), format);
                }
            }
        }
        Some("array") => {
            if let Some(items) = rest.remove("items") {
                out.insert(
                    "items".into(),
                    transform(&items, param, &format!("{path}.items"))?,
                );
            }
            if let Some(min) = rest.remove("minItems") {
                if matches!(min.as_u64(), Some(0 | 1)) {
                    out.insert("minItems".into(), min);
                } else {
                    rest.insert("minItems".into(), min);
                }
            }
        }
        _ => {}
    }
    // `default` and `examples` only describe; the rest are constraints the model should read.
    if !rest.is_empty() {
        let extra: Vec<String> = rest.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let note = format!("{{{}}}", extra.join(", "));
        let description = match out.get("description").and_then(Value::as_str) {
            Some(d) => format!("{d}\n\n{note}"),
            None => note,
        };
        out.insert("description".into(), Value::String(description));
    }
    Ok(Value::Object(out))
}

fn json_str(s: &str) -> Value {
    Value::String(s.to_owned())
}

/// Whether OpenAI's strict mode takes `schema` as it is: every object closed
/// (`additionalProperties: false`) and listing every property in `required`.
pub(crate) fn openai_strict(schema: &Value) -> bool {
    let Value::Object(map) = schema else {
        return true;
    };
    let properties = map.get("properties").and_then(Value::as_object);
    if map.get("type").and_then(Value::as_str) == Some("object") || properties.is_some() {
        if map.get("additionalProperties") != Some(&Value::Bool(false)) {
            return false;
        }
        let required: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if properties.is_some_and(|p| p.keys().any(|k| !required.contains(&k.as_str()))) {
            return false;
        }
    }
    let children = properties
        .into_iter()
        .chain(map.get("$defs").and_then(Value::as_object))
        .flat_map(|m| m.values());
    let lists = ["anyOf", "allOf", "oneOf"]
        .iter()
        .filter_map(|k| map.get(*k).and_then(Value::as_array))
        .flatten();
    children
        .chain(lists)
        .chain(map.get("items"))
        .all(openai_strict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn anthropic_schemas_are_closed_and_unsupported_constraints_described() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 10},
                "age": {"type": "integer", "minimum": 0, "description": "Years"},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "nick": {"type": ["string", "null"]},
                "kind": {"enum": ["a", "b"], "type": "string"},
                "pet": {"$ref": "#/$defs/Pet"},
            },
            "required": ["name"],
            "$defs": {"Pet": {"type": "object", "properties": {"n": {"type": "string"}}}},
        });
        let out = for_anthropic(&schema, "response_format").unwrap_or_default();
        assert_eq!(out["additionalProperties"], json!(false));
        assert_eq!(out["$defs"]["Pet"]["additionalProperties"], json!(false));
        assert_eq!(out["properties"]["pet"], json!({"$ref": "#/$defs/Pet"}));
        assert_eq!(
            out["properties"]["name"],
            json!({"type": "string", "description": "{maxLength: 10}"})
        );
        assert_eq!(
            out["properties"]["age"]["description"],
            json!("Years\n\n{minimum: 0}")
        );
        assert_eq!(
            out["properties"]["tags"]["description"],
            json!("{minItems: 2}")
        );
        assert_eq!(
            out["properties"]["nick"],
            json!({"anyOf": [{"type": "string"}, {"type": "null"}]})
        );
        assert_eq!(out["properties"]["kind"], json!({"enum": ["a", "b"]}));
        assert_eq!(out["required"], json!(["name"]));
    }

    #[test]
    fn a_schema_part_that_allows_anything_is_refused_by_its_path() {
        let schema = json!({"type": "object", "properties": {"extra": {}}});
        let e = for_anthropic(&schema, "response_format")
            .err()
            .map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(e.contains("schema.properties.extra"), "{e}");
        assert!(e.contains("allows any value"), "{e}");
        let recursive = json!({"type": "object", "properties": {"next": {"$ref": "#"}}});
        let e = for_anthropic(&recursive, "output_config.format").err();
        assert!(e.is_some_and(|e| e.to_string().contains("recursion")));
    }

    #[test]
    fn strictness_is_judged_on_every_object() {
        let closed = json!({"type": "object", "additionalProperties": false,
            "properties": {"a": {"type": "string"}}, "required": ["a"]});
        assert!(openai_strict(&closed));
        let optional = json!({"type": "object", "additionalProperties": false,
            "properties": {"a": {"type": "string"}}, "required": []});
        assert!(!openai_strict(&optional));
        let open_inner = json!({"type": "object", "additionalProperties": false,
            "properties": {"a": {"type": "object", "properties": {}}}, "required": ["a"]});
        assert!(!openai_strict(&open_inner));
    }
}
