//! The names of the headers pai adds to every answer, as constants.
//!
//! A `&'static str` handed to `HeaderMap::insert` is parsed into a header name on every call
//! (about a thousand instructions for an `x-pai-…` name); a [`HeaderName`] made with the
//! `const fn` [`HeaderName::from_static`] is checked once, at compile time.

use http::HeaderName;

/// `x-pai-call-id`: the gateway's id for the call.
pub(crate) const CALL_ID: HeaderName = HeaderName::from_static("x-pai-call-id");
/// `x-pai-duration-ms`: how long the gateway took to answer.
pub(crate) const DURATION_MS: HeaderName = HeaderName::from_static("x-pai-duration-ms");
/// `x-pai-retries`: tries beyond the first.
pub(crate) const RETRIES: HeaderName = HeaderName::from_static("x-pai-retries");
/// `x-pai-fell-back-from`: the candidate the call fell back from.
pub(crate) const FELL_BACK_FROM: HeaderName = HeaderName::from_static("x-pai-fell-back-from");
/// `x-pai-input-tokens`: prompt tokens, cached ones included.
pub(crate) const INPUT_TOKENS: HeaderName = HeaderName::from_static("x-pai-input-tokens");
/// `x-pai-output-tokens`: generated tokens.
pub(crate) const OUTPUT_TOKENS: HeaderName = HeaderName::from_static("x-pai-output-tokens");
/// `x-pai-cached-input-tokens`: prompt tokens read from a cache.
pub(crate) const CACHED_INPUT_TOKENS: HeaderName =
    HeaderName::from_static("x-pai-cached-input-tokens");
/// `x-pai-cost-usd`: what the call cost.
pub(crate) const COST_USD: HeaderName = HeaderName::from_static("x-pai-cost-usd");
/// `x-pai-model-id`: the model that answered.
pub(crate) const MODEL_ID: HeaderName = HeaderName::from_static("x-pai-model-id");
/// `x-pai-guard`: what each guard that ran found (see `crate::guard`).
pub(crate) const GUARD: HeaderName = HeaderName::from_static("x-pai-guard");
/// `x-pai-max-output-tokens`: the output bound a `maxTokensPerRequest` set.
pub(crate) const MAX_OUTPUT_TOKENS: HeaderName = HeaderName::from_static("x-pai-max-output-tokens");
