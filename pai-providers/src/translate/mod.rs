//! Translation between the OpenAI, Anthropic and Gemini dialects: requests, complete
//! responses and streams.
//!
//! Every direction goes through one small intermediate representation (`ir`): a client's body is
//! read into it by the reader of the client's dialect and written out by the writer of the
//! upstream's; answers come back the other way. The rules, from PROTOCOLS.md:
//!
//! | OpenAI | Anthropic |
//! |---|---|
//! | system/developer messages anywhere | top-level `system` |
//! | `tools[{type:function,function:{name,description,parameters}}]` | `tools[{name,description,input_schema}]` |
//! | `tool_choice` auto / required / none / `{function:{name}}` | `{type:auto}` / `{type:any}` / `{type:none}` / `{type:tool,name}` |
//! | `parallel_tool_calls:false` | `disable_parallel_tool_use:true` |
//! | assistant `tool_calls` with JSON-string `arguments` | `tool_use` with object `input` |
//! | consecutive `role:tool` messages | one user turn of `tool_result` blocks |
//! | `stop` | `stop_sequences` |
//! | `max_completion_tokens` / `max_tokens` / absent | `max_tokens` ([`DEFAULT_MAX_TOKENS`] when absent) |
//! | `n > 1` | refused: 400 "n > 1 is not supported by this provider" |
//! | finish stop / length / tool_calls / content_filter | end_turn or stop_sequence / max_tokens / tool_use / refusal |
//! | `image_url` with a `data:` URL (or an http URL) | `image` with a base64 (or url) source |
//! | `response_format` `json_schema` / `json_object` | `output_config.format` (schema fitted, see `schema`) / a system instruction |
//! | `reasoning_effort` | `thinking` with a budget within `max_tokens`; `output_config.effort` read back |
//! | `reasoning_content`, `completion_tokens_details.reasoning_tokens` | `thinking` blocks, `output_tokens_details.thinking_tokens` |
//!
//! Usage is carried in the gateway's [`pai_core::Usage`], so the cache arithmetic is right in
//! both directions: OpenAI's `prompt_tokens` includes cached tokens, Anthropic's
//! `input_tokens` excludes cache reads and writes.
//!
//! **Model ids.** A translated answer names the model the upstream says answered (`model`, or
//! Gemini's `modelVersion`), as a same-dialect answer passed through would; when the upstream
//! names none, the model id the call was sent with ([`pai_core::Call::model`]).
//!
//! **Streams** are rewritten event by event by [`TranslatingObserver`]:
//! - Anthropic → OpenAI: `message_start` becomes the role chunk, text deltas `delta.content`,
//!   each `tool_use` block a `tool_calls` delta with its own index (0, 1, … in the order the
//!   calls began, not the block index), its id and name first and then the argument pieces;
//!   `message_delta` becomes the finish chunk; then, only if the client asked for
//!   `stream_options.include_usage`, a usage chunk (`choices: []`); then `data: [DONE]`. With
//!   `include_usage`, every other chunk carries `"usage": null`. `ping` is dropped;
//!   `event: error` becomes `data: {"error":{…}}`.
//! - OpenAI (and Gemini) → Anthropic: the upstream is always asked for usage; `message_start`
//!   comes first, a content block is opened and closed at every switch between text and tool
//!   calls (`text_delta`, `input_json_delta`), and at the end come `content_block_stop`,
//!   `message_delta` with the stop reason and the real usage, and `message_stop`, every event
//!   with its `event:` line. A mid-stream `{"error"}` becomes `event: error`.
//! - A stream that ends before the upstream said why it stopped ends with an in-band error, so
//!   the client does not take a cut-off answer for a complete one.

mod anthropic;
mod gemini;
mod ir;
mod openai;
mod schema;
mod stream;
#[cfg(test)]
mod structured_tests;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use pai_core::{Call, Dialect, Error, Usage};
use serde_json::Value;

pub use self::stream::TranslatingObserver;

/// The `max_tokens` sent to an Anthropic upstream when the client named no limit (Anthropic
/// requires one; OpenAI and Gemini clients may leave it out).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The client's request in the intermediate representation.
fn read_request(call: &Call) -> Result<ir::Request, Error> {
    let body = ir::body_map(&call.body)?;
    let mut req = match call.client {
        Dialect::OpenAi => openai::read_request(&body)?,
        Dialect::Anthropic => anthropic::read_request(&body)?,
        Dialect::Gemini => {
            return Err(Error::Internal(
                "gemini is not a client dialect of this gateway".to_owned(),
            ))
        }
    };
    req.stream = call.stream;
    Ok(req)
}

fn to_bytes(value: &Value) -> Bytes {
    Bytes::from(value.to_string())
}

/// The call's body as a Chat Completions request for an OpenAI-dialect upstream, with `model`
/// set to [`Call::model`]. The output limit goes in `max_tokens_field` (`max_completion_tokens`
/// for OpenAI, `max_tokens` for servers that may not know the newer name); a stream always asks
/// for `stream_options.include_usage`.
pub fn to_openai(call: &Call, max_tokens_field: &str) -> Result<Bytes, Error> {
    let req = read_request(call)?;
    Ok(to_bytes(&openai::write_request(
        &req,
        &call.model,
        max_tokens_field,
    )))
}

/// The call's body as a Messages request for an Anthropic upstream.
pub fn to_anthropic(call: &Call) -> Result<Bytes, Error> {
    let req = read_request(call)?;
    Ok(to_bytes(&anthropic::write_request(&req, &call.model)?))
}

/// The call's body as a `generateContent` request for Gemini (the model goes in the URL).
pub fn to_gemini(call: &Call) -> Result<Bytes, Error> {
    let req = read_request(call)?;
    Ok(to_bytes(&gemini::write_request(&req)?))
}

/// A complete answer from an upstream speaking `upstream`, rewritten for the call's client.
pub fn response(call: &Call, upstream: Dialect, body: &[u8]) -> Result<Bytes, Error> {
    let mut resp = match upstream {
        Dialect::OpenAi => openai::read_response(body)?,
        Dialect::Anthropic => anthropic::read_response(body)?,
        Dialect::Gemini => gemini::read_response(body)?,
    };
    let model = if resp.model.is_empty() {
        call.model.clone()
    } else {
        resp.model.clone()
    };
    let value = match call.client {
        Dialect::Anthropic => {
            if resp.id.is_empty() {
                resp.id = ir::fresh_id("msg_");
            }
            anthropic::write_response(&resp, &model)
        }
        Dialect::OpenAi | Dialect::Gemini => {
            if resp.id.is_empty() {
                resp.id = ir::fresh_id("chatcmpl-");
            }
            openai::write_response(&resp, &model)
        }
    };
    Ok(to_bytes(&value))
}

/// Usage from a complete Gemini `generateContent` body; see [`TranslatingObserver`] for
/// streams.
pub fn gemini_usage(body: &[u8]) -> Option<Usage> {
    gemini::usage_from_body(body)
}
