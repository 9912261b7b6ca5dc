//! Input tokens of a request, estimated before any upstream call.

use pai_core::{Call, ProviderKind};

/// Input tokens of `call` as `kind` would count them, erring high (a real BPE tokenizer for
/// OpenAI models, a conservative estimate elsewhere; see `pai_providers::estimate`). Used to
/// bound output under `maxTokensPerRequest` and to size budget reservations; the real count
/// settles them.
pub(crate) fn input_tokens(kind: ProviderKind, call: &Call) -> u64 {
    pai_providers::estimate::input_tokens_for(kind, call.client, &call.model, &call.body)
}
