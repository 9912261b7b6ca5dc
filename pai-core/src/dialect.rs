//! Wire dialects and the operations a client can ask for.

use std::fmt;

/// The shape of a request or response on the wire.
///
/// Clients speak [`Dialect::OpenAi`] (on `/chat/completions`) or [`Dialect::Anthropic`] (on
/// `/messages`); upstreams may also speak [`Dialect::Gemini`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI Chat Completions, and every OpenAI-compatible server.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Gemini `generateContent`.
    Gemini,
}

impl Dialect {
    /// The dialect errors are rendered in for a client of this dialect. Gemini is never a
    /// client dialect here, so it falls back to the OpenAI shape.
    pub fn client_error_dialect(self) -> Dialect {
        match self {
            Dialect::Anthropic => Dialect::Anthropic,
            Dialect::OpenAi | Dialect::Gemini => Dialect::OpenAi,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Gemini => "gemini",
        })
    }
}

/// What the client asked the gateway to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `POST /chat/completions` (OpenAI dialect).
    ChatCompletions,
    /// `POST /v1/messages` (Anthropic dialect).
    Messages,
    /// `POST /v1/messages/count_tokens` (Anthropic dialect).
    CountTokens,
    /// `GET /models` or `GET /v1/models`.
    ListModels,
}

impl Operation {
    /// The dialect the client of this operation speaks.
    pub fn client_dialect(self) -> Dialect {
        match self {
            Operation::ChatCompletions => Dialect::OpenAi,
            Operation::Messages | Operation::CountTokens => Dialect::Anthropic,
            // Model listings are answered in the dialect of the caller's headers; OpenAI is the
            // default shape when nothing says otherwise.
            Operation::ListModels => Dialect::OpenAi,
        }
    }
}
