//! What the mock reads from a request, whatever its dialect.

use crate::shape::Shape;

/// The parts of a chat request that shape the mock's reply.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Prompt {
    /// The requested model, echoed in the reply.
    pub model: String,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    /// Characters of text in the system prompt and every message (text parts and tool results).
    pub chars: usize,
    /// The text of the last user turn, where directives are read.
    pub directive_text: String,
    /// The name of the first tool offered, if any.
    pub first_tool: Option<String>,
    /// JSON, a forced tool call or reasoning, when the request asks for them.
    pub shape: Shape,
}

impl Prompt {
    /// Input tokens: a quarter of the characters, rounded up, and at least one.
    pub(crate) fn input_tokens(&self) -> u64 {
        input_tokens(self.chars)
    }
}

/// A quarter of `chars`, rounded up, and at least one.
pub(crate) fn input_tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_four_characters_rounded_up() {
        assert_eq!(input_tokens(0), 1);
        assert_eq!(input_tokens(4), 1);
        assert_eq!(input_tokens(5), 2);
        assert_eq!(input_tokens(12), 3);
    }
}
