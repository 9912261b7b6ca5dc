//! A mock LLM upstream: real HTTP on loopback that speaks OpenAI Chat Completions, Anthropic
//! Messages, Gemini `generateContent` and Azure OpenAI, streams, counts tokens
//! deterministically, and fails on demand.
//!
//! The Rust integration tests (`tests`), the benchmarks (`benches`) and the Python SDK tests
//! point the gateway's providers at it. Start it in-process with [`MockUpstream::start`], or run
//! the `pai-mock` binary from another language. Everything it does is scripted by the prompt
//! itself, through directives such as `[mock:status=529,times=2]`, so a test states the
//! upstream's behaviour right where it sends the request, and can assert exact token counts.
//!
//! # Example
//!
//! ```
//! use pai_mock::{MockConfig, MockUpstream};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let mock = MockUpstream::start(MockConfig::default().with_anthropic_key("sk-ant-test")).await?;
//!
//! let body = r#"{"model":"claude-x","max_tokens":64,
//!                "messages":[{"role":"user","content":"Hi there [mock:words=3]"}]}"#;
//! let mut tcp = tokio::net::TcpStream::connect(mock.addr()).await?;
//! let head = format!(
//!     "POST /v1/messages HTTP/1.1\r\nhost: mock\r\nx-api-key: sk-ant-test\r\n\
//!      content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
//!     body.len()
//! );
//! tcp.write_all(head.as_bytes()).await?;
//! tcp.write_all(body.as_bytes()).await?;
//! let mut answer = String::new();
//! tcp.read_to_string(&mut answer).await?;
//!
//! assert!(answer.starts_with("HTTP/1.1 200"));
//! assert!(answer.contains(r#""text":"mock reply: alpha""#));
//! // "Hi there [mock:words=3]" is 23 characters: ceil(23 / 4) = 6 input tokens, 3 output.
//! assert!(answer.contains(r#""input_tokens":6"#));
//! assert!(answer.contains(r#""output_tokens":3"#));
//! assert_eq!(mock.calls("/v1/messages"), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Routes
//!
//! | Method and path | Dialect | Key |
//! |---|---|---|
//! | `POST /v1/chat/completions`, `POST /chat/completions` | OpenAI | `Authorization: Bearer` |
//! | `POST /v1/messages` (any query, e.g. `?beta=true`) | Anthropic | `x-api-key` or `Authorization: Bearer` |
//! | `POST /v1/messages/count_tokens` → `{"input_tokens": N}` | Anthropic | same |
//! | `POST /v1beta/models/{model}:generateContent`, `…:streamGenerateContent?alt=sse` (also under `/v1/`) | Gemini | `x-goog-api-key` or `?key=` |
//! | `GET /v1beta/models` → `{"models":[{"name":"models/…",…}]}` | Gemini | same |
//! | `POST /openai/deployments/{deployment}/chat/completions?api-version=V` | Azure OpenAI (classic) | `api-key` |
//! | `POST /openai/v1/chat/completions` (`model` = deployment) | Azure OpenAI (v1) | `api-key` or `Authorization: Bearer` |
//! | `GET /v1/models`, `GET /models` | Anthropic if the request has `anthropic-version` or `x-api-key`, else OpenAI | that dialect's |
//! | `POST /predict` | Hugging Face TEI (guard classifier) | `Authorization: Bearer` |
//! | `POST /contentsafety/text:shieldPrompt?api-version=V` | Azure AI Content Safety Prompt Shields | `Ocp-Apim-Subscription-Key` |
//! | `POST /v2/guard` | Lakera Guard | `Authorization: Bearer` |
//! | `GET /_mock/requests` → JSON array of [`RecordedRequest::to_json`] | — | none |
//! | `POST /_mock/reset` → forgets the record and the `times` counts | — | none |
//!
//! Keys are checked only when [`MockConfig`] sets one; a missing or wrong key gets the
//! provider's real 401. OpenAI's echoes the key masked (`Incorrect API key provided:
//! sk-ab***yz.`), which a gateway must not pass on. An unknown path is a 404 and a known path
//! with the wrong method a 405; a body that is not JSON, or lacks a required field (`model`,
//! `messages`, and for Anthropic `max_tokens`), is a 400 worded like the real API. All errors
//! use the dialect's shape: OpenAI `{"error":{"message","type","param","code"}}`, Anthropic
//! `{"type":"error","error":{"type","message"}}`, Gemini `{"error":{"code","message","status"}}`
//! (`status` the `google.rpc` name: 400 `INVALID_ARGUMENT`, 403 `PERMISSION_DENIED`, 429
//! `RESOURCE_EXHAUSTED`, 503 `UNAVAILABLE`, …), and Azure's front door
//! `{"error":{"code","message"}}` for 401, 403, 404 and 429 (its other errors are OpenAI's).
//! Bodies over 32 MiB get a 413.
//!
//! Gemini: a wrong key is the real `400 INVALID_ARGUMENT` "API key not valid" with
//! `reason: API_KEY_INVALID` in `details`; a missing one a `403 PERMISSION_DENIED`. The body is
//! proto JSON: an unknown field (top level or in `generationConfig`; camelCase and snake_case
//! both accepted) is a 400 `Unknown name "…": Cannot find field.`, as is a missing `contents`, a
//! content with no `parts`, or a role other than `user`, `model` (or `function`).
//!
//! Azure: a classic path without `api-version` is `404 {"code":"404","message":"Resource not
//! found"}`, one that is not `YYYY-MM-DD[-preview]` a 400; a wrong key is a 401; the v1 route
//! without `model` is a 404 `DeploymentNotFound`.
//!
//! Every request except `/_mock/…` is recorded with its method, path, query, headers and body;
//! read them with [`MockUpstream::requests`] and [`MockUpstream::calls`].
//!
//! # Guard services
//!
//! Three prompt-injection classifiers, each in its real wire format: TEI `/predict` (`inputs`
//! a string, a pair `[a, b]` or a batch `[[a], [b], …]` of at most 32; every input answered
//! with `[{"score","label"}, …]` for `INJECTION` and `SAFE`, best first; a batch as one list
//! per input; a 422 `{"error","error_type":"Validation"}` for anything else), Prompt Shields
//! (`userPrompt` and `documents`, at most 10,000 characters each in all, else a 400
//! `InvalidRequestBody`; no `api-version`, a 404; answered with `userPromptAnalysis` and one
//! `documentsAnalysis` entry per document) and Lakera Guard (`messages` with roles; answered
//! with `flagged`, `metadata.request_uuid` and, with `breakdown: true`, the detectors). A text
//! is an attack when it contains [`ATTACK`] in any case (TEI score 0.9991, else 0.0004). Keys
//! are checked only when [`MockConfig::guard_key`] is set. Directives in any text sent to a
//! guard service script it (the completion routes ignore them): `guard_delay_ms=N` sleeps
//! before answering, `guard_status=S` answers `S` with the service's error body,
//! `guard_malformed` answers 200 without the verdict, `guard_score=F` (TEI) is that text's
//! attack score. [`MockUpstream::guard_texts`] lists every text the guard services were asked
//! about and [`MockUpstream::connections`] counts accepted connections, so a test can prove
//! what a gateway sent, what it did not resend, and that it reused its connections.
//!
//! # Replies and usage
//!
//! - The reply is `mock reply:` followed by filler words (`alpha beta gamma …`, cycling through
//!   the Greek alphabet), 8 words in all unless `words=N` says otherwise:
//!   `mock reply: alpha beta gamma delta epsilon zeta`.
//! - Input tokens are the characters (Unicode scalar values) of all text in the request, divided
//!   by 4 and rounded up, at least 1. Counted: the Anthropic `system`, every message's string
//!   content, its `text` parts or blocks, and tool results (OpenAI `tool` messages, Anthropic
//!   `tool_result` blocks). Not counted: tool definitions, tool-call arguments, images. The
//!   same conversation therefore counts the same in both dialects.
//! - Output tokens are the words of the reply (3 for a tool call: its argument pieces; a
//!   `preamble` adds its 5 words), plus the words of its reasoning (below). A stream sends one content delta per word, with its leading
//!   space: `"mock"`, `" reply:"`, `" alpha"`, …
//! - OpenAI: `prompt_tokens` = input + `cached` + `cache_write` (it includes cached tokens),
//!   `prompt_tokens_details.cached_tokens` = `cached`, `completion_tokens_details.reasoning_tokens`
//!   = the words of reasoning (0 without), `total_tokens` = prompt + completion. Ids are `chatcmpl-mock-N`, `call_mock_N` (the
//!   second call of a `tools=N` reply `call_mock_N_2`, and so on), `system_fingerprint` is
//!   `fp_mock`.
//! - Anthropic: `input_tokens` excludes the cache; `cache_read_input_tokens` = `cached`,
//!   `cache_creation_input_tokens` = `cache_write`. Ids are `msg_mock_N`, `toolu_mock_N`
//!   (then `toolu_mock_N_2`, …).
//! - Gemini: `usageMetadata.promptTokenCount` = input + `cached` + `cache_write` (it includes
//!   cached tokens), `cachedContentTokenCount` = `cached` (absent when 0),
//!   `candidatesTokenCount` = output, `totalTokenCount` = prompt + output. The response has
//!   `modelVersion` = the path's model and `responseId` `mock-response-N`; a tool call is a
//!   `functionCall` part `{"name", "args": {"city": "Paris"}}` with `finishReason` `STOP`, as
//!   Gemini has no tool-call finish reason. Counted input: `systemInstruction` and every text
//!   part, and the strings inside `functionResponse.response`.
//! - Azure: the OpenAI body, but `model` is the model behind the deployment:
//!   `gpt-4o-mini-2024-07-18` if the deployment's name contains `mini`, else
//!   `gpt-4o-2024-11-20`; `prompt_filter_results` and per-choice `content_filter_results` are
//!   added.
//! - `N` counts replies from 1 per mock (it is not reset by `/_mock/reset`).
//!
//! OpenAI streams are `data: {chunk}` events without names: a first chunk with delta
//! `{"role":"assistant","content":""}`, one chunk per word, a chunk with an empty delta and
//! `finish_reason` `"stop"`, then, only when `stream_options.include_usage` is true, a usage
//! chunk with `"choices":[]` (and then every earlier chunk carries `"usage":null`), then
//! `data: [DONE]`.
//!
//! Anthropic streams name every event: `message_start` (usage with the input and cache counts
//! and `output_tokens: 1`), `content_block_start`, `ping`, one `content_block_delta`
//! (`text_delta`) per word, `content_block_stop`, `message_delta` (`stop_reason: end_turn`,
//! `usage: {"output_tokens": O}`, cumulative), `message_stop`.
//!
//! Gemini streams (`alt=sse`) are `data: {json}\r\n\r\n`, always CRLF, with no event names and
//! no terminator: one `GenerateContentResponse` per word, the last also carrying
//! `finishReason: "STOP"` (a tool call is one chunk with the whole `functionCall`), each with
//! `usageMetadata` as running totals (`candidatesTokenCount` = words so far). Without
//! `alt=sse` the same chunks come as one JSON array.
//!
//! Azure streams are OpenAI's, opened by a chunk with `"choices":[]`, empty `id`, `model` and
//! `object`, `prompt_filter_results`, and no `usage` key, which is not the usage chunk; every
//! choice carries `content_filter_results`.
//!
//! Reasoning, when the request asks for it (OpenAI `reasoning_effort`: minimal 2 words, low 4,
//! medium 8, higher 16; Anthropic `thinking` `enabled`, one word per 256 tokens of `budget_tokens`
//! (2 to 32), or `adaptive`, as many as its `output_config.effort` says (16 without one); Gemini
//! `thinkingConfig` with `includeThoughts` and a budget, as Anthropic's), is `Thinking step1 step2
//! …`, one output token a word, shown before the answer the way each provider shows it. Whole:
//! OpenAI `message.reasoning_content`; an Anthropic `thinking` block with `signature`
//! `mock-signature-N`; a Gemini part with `thought: true`. Streamed, one word a delta, before the
//! answer's first: OpenAI `delta.reasoning_content` chunks after the role chunk (a tool call then
//! opens in a chunk of its own); Anthropic block 0 of type `thinking` with `thinking_delta`s and a
//! `signature_delta` before its `content_block_stop`, the answer's blocks numbered from 1; Gemini
//! chunks of one `thought: true` part. Usage counts it in the output and apart:
//! `completion_tokens_details.reasoning_tokens`, `output_tokens_details.thinking_tokens` (only when
//! it thought), `thoughtsTokenCount` (left out of `candidatesTokenCount`; running in streams).
//! Each streamed word of reasoning is a content event for `midstream_error` and `reset_after`.
//!
//! # Directives
//!
//! Directives are read from the text of the last user turn: the last message with role `user`
//! (string content, or its `text` parts/blocks; never tool results). In OpenAI requests a
//! `tool` message also counts as a user turn, so after a tool result there are no directives,
//! exactly as once the conversation is translated into Anthropic's user turn of `tool_result`
//! blocks. In Gemini requests the last content with role `user` (or none) or `function` is the
//! user turn; its `text` parts carry the directives, so a turn of `functionResponse` parts has none. A directive group is `[mock:` comma-separated `key=value` items or bare flags `]`;
//! a prompt may hold several groups, and later values win. Unknown keys and unreadable values
//! are ignored.
//!
//! | Directive | Effect |
//! |---|---|
//! | `status=S` | Answer HTTP `S` (400–599) with the dialect's real error body instead of a reply, also for stream requests. Anthropic types: 400 `invalid_request_error`, 401 `authentication_error`, 403 `permission_error`, 404 `not_found_error`, 413 `request_too_large`, 429 `rate_limit_error`, 504 `timeout_error`, 529 `overloaded_error` (message `Overloaded`), other 5xx `api_error`. OpenAI: 401 `invalid_request_error`/`invalid_api_key`, 403 `request_forbidden`, 404 `invalid_request_error`/`model_not_found`, 429 type `requests` code `rate_limit_exceeded`, every 5xx `server_error`, other 4xx `invalid_request_error`. Gemini: the `google.rpc` status of the code (503 `UNAVAILABLE` "The model is overloaded…", 429 `RESOURCE_EXHAUSTED`, other 5xx `INTERNAL`). Azure: 401, 403, 404 (`DeploymentNotFound`) and 429 in its front door's shape, the rest OpenAI's. |
//! | `retry_after=N` | With `status`, add the header `retry-after: N`. |
//! | `times=N` | Fail (`status`, `midstream_error`, `reset_after`) only on the first `N` calls carrying the same directive text; later calls succeed. Counted per exact directive string (all groups, as written) across both dialects, until `/_mock/reset` or [`MockUpstream::clear`]. Without it every call fails. |
//! | `words=N` | Reply with `N` words (0 to 100 000; `mock reply:` are the first two). |
//! | `echo` | Reply with the user turn's own text, its directive groups left out and its spaces collapsed: one content delta (one output token) per word, as a stream sends it. For tests of what reads answers (guards with `scan.responses`). |
//! | `cached=N` | Report `N` cache-read tokens. |
//! | `cache_write=N` | Report `N` cache-write tokens (Anthropic `cache_creation_input_tokens`; in OpenAI part of `prompt_tokens`). |
//! | `tool` | If the request offers `tools` (Gemini: `functionDeclarations`), call the first one with arguments `{"city":"Paris"}`: Gemini a `functionCall` part (stream: in one chunk, 3 output tokens); OpenAI `message.tool_calls` with `finish_reason` `tool_calls` (stream: the first chunk's delta carries the role and `tool_calls[{index:0,id,type,function:{name,arguments:""}}]`, then three chunks of `function.arguments` pieces); Anthropic a `tool_use` block with `stop_reason` `tool_use` (stream: `content_block_start` of the `tool_use`, then three `input_json_delta` `partial_json` pieces). |
//! | `tools=N` | With `tool`: make `N` calls (1 to 4, clamped) to the same first tool, with `{"city":"Paris"}`, then `{"city":"Berlin"}`, `"Tokyo"`, `"Lima"`; 3 output tokens each. OpenAI: `tool_calls` in order; streamed, each call opens with a delta carrying its own `index` (0, 1, … per call, never a content-block index), `id`, `type`, `name` and `arguments: ""` (the first in the role chunk unless a preamble comes first), then its three argument pieces under that index. Anthropic: one `tool_use` block each; streamed, every switch stops the block before (`content_block_stop`) and starts the next (`content_block_start`, index + 1). Gemini: one `functionCall` part each; streamed, one chunk per call. |
//! | `preamble` | With `tool`: say `Let me check the weather.` (5 words, 5 output tokens) before the calls. OpenAI: `message.content` is that text beside `tool_calls` (stream: the role chunk with `content: ""`, one content delta per word, then the tool-call deltas, indices from 0); Anthropic: a `text` block at index 0, the `tool_use` blocks from index 1 (stream: `content_block_start`/`content_block_stop` around each block); Gemini: parts `[text, functionCall, …]` (stream: one chunk per word, then one per call); Azure: OpenAI's. `finish_reason` stays `tool_calls`, `stop_reason` `tool_use`. A `midstream_error` or `reset_after` still counts only content deltas: the block switches before a delta go out first. |
//! | `signature` | Gemini only, with `tool`: the first `functionCall` part carries `"thoughtSignature": "CiQBmock+thought/signature=="`, as Gemini 3 signs calls; and while any user turn of the history carries this directive, a request whose model turns' first `functionCall` part lacks that signature is refused with a 400 `INVALID_ARGUMENT` worded like Gemini's ("Function call is missing a thought_signature …"). Other dialects ignore it. |
//! | `delay_ms=N` | Sleep `N` ms before each stream event, and before a whole (non-stream or error) response. |
//! | `ttfb_ms=N` | Sleep `N` ms before sending the response head. |
//! | `stall_ms=N` | In a stream, send nothing for `N` ms after the first content event, then go on. |
//! | `split` | Write every stream event in up to three pieces, 1 ms apart: cut in the middle of the event and before its last byte (between the two final newlines, or between `\r` and `\n` with `crlf`). The middle cut may fall inside a UTF-8 character. |
//! | `crlf` | End stream lines with `\r\n` instead of `\n` (Gemini streams always do). |
//! | `midstream_error` | In a stream, after half the content events (rounded down), send the in-band error and end the body cleanly without a terminator: OpenAI and Azure `data: {"error":{"message":"mock upstream failure","type":"server_error"}}`, Anthropic `event: error` with `overloaded_error`, Gemini `data: {"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}`. Ignored by non-stream requests. |
//! | `reset_after=N` | In a stream, abort after `N` content events: the connection is dropped (HTTP/1.1) or the stream reset (HTTP/2), with no terminator. A non-stream request gets its response head and then the abort. |
//!
//! Pauses are clamped to 10 minutes.
//!
//! # Binary
//!
//! `pai-mock [--listen 127.0.0.1:0] [--openai-key K] [--anthropic-key K] [--gemini-key K]
//! [--azure-key K] [--guard-key K] [--require-anthropic-version]` prints exactly one line, `listening on http://127.0.0.1:PORT`,
//! to stdout and serves until killed.

mod anthropic;
mod azure;
mod completion;
mod config;
mod directive;
mod gemini;
mod guard;
mod openai;
pub mod otlp;
mod prompt;
mod record;
mod reply;
mod response;
mod router;
mod server;
mod shape;
mod sse;
mod state;

pub use config::MockConfig;
pub use guard::ATTACK;
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use record::RecordedRequest;
pub use server::MockUpstream;
