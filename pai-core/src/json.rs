//! A request body parsed once, at the top level only.
//!
//! The gateway needs a handful of top-level fields (`model`, `stream`, `max_tokens`, …) and must
//! sometimes change one (`model`, `stream_options`). Parsing the whole body into a tree and
//! printing it again would cost time on every request and could reorder or reformat what the
//! client sent. [`JsonObject`] keeps each top-level value as raw JSON text, so reading a field
//! parses only that field and writing the body back copies the rest byte for byte.

use std::fmt;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A JSON object whose top-level values stay unparsed until asked for.
#[derive(Clone, Debug, Default)]
pub struct JsonObject {
    fields: Vec<(String, Box<RawValue>)>,
}

impl JsonObject {
    /// Parse a JSON object. Anything but an object is an error.
    pub fn from_slice(bytes: &[u8]) -> Result<JsonObject, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The raw JSON text of a field.
    pub fn raw(&self, key: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Whether the field is present (even as `null`).
    pub fn contains(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// Parse one field. `None` when absent or `null`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<Result<T, serde_json::Error>> {
        let raw = self.raw(key)?;
        if raw.get() == "null" {
            return None;
        }
        Some(serde_json::from_str(raw.get()))
    }

    /// Set a field to a value, replacing any earlier one.
    pub fn set<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let raw = serde_json::value::to_raw_value(value)?;
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = raw,
            None => self.fields.push((key.to_owned(), raw)),
        }
        Ok(())
    }

    /// Remove a field, returning its raw text.
    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        let at = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(at).1)
    }

    /// The names of the fields, in the order the client sent them.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_str())
    }

    /// Print the object back. Untouched fields come out as they came in.
    pub fn to_vec(&self) -> Vec<u8> {
        let len: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(len + 2);
        out.push(b'{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Keys came from a JSON parser, so re-escaping them with serde_json is exact.
            match serde_json::to_vec(k) {
                Ok(key) => out.extend_from_slice(&key),
                Err(_) => out.extend_from_slice(b"\"\""),
            }
            out.push(b':');
            out.extend_from_slice(v.get().as_bytes());
        }
        out.push(b'}');
        out
    }
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = JsonObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
                let mut fields: Vec<(String, Box<RawValue>)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    // A repeated key keeps its last value, as JSON.parse does.
                    match fields.iter_mut().find(|(key, _)| *key == k) {
                        Some((_, old)) => *old = v,
                        None => fields.push((k, v)),
                    }
                }
                Ok(JsonObject { fields })
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (k, v) in &self.fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_fields_round_trip_byte_for_byte() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"h\u00e9 \"x\""}],"n":1.50}"#;
        let obj = JsonObject::from_slice(body).unwrap();
        assert_eq!(obj.to_vec(), body.to_vec());
    }

    #[test]
    fn set_replaces_and_appends() {
        let mut obj = JsonObject::from_slice(br#"{"model":"a","stream":true}"#).unwrap();
        obj.set("model", "b").unwrap();
        obj.set(
            "stream_options",
            &serde_json::json!({"include_usage": true}),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&obj.to_vec()).unwrap();
        assert_eq!(v["model"], "b");
        assert_eq!(v["stream"], true);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(obj.get::<bool>("stream").unwrap().unwrap());
        assert!(obj.get::<bool>("missing").is_none());
    }

    #[test]
    fn only_objects_are_accepted() {
        assert!(JsonObject::from_slice(b"[1,2]").is_err());
        assert!(JsonObject::from_slice(b"{\"a\":").is_err());
    }
}
