//! Token usage, normalised across providers.

use serde::{Deserialize, Serialize};

/// Tokens one call consumed, in one shape for every provider.
///
/// The prompt is split into three disjoint parts so that each can be priced on its own:
/// `input` (ordinary prompt tokens), `cached_input` (read from a prompt cache) and `cache_write`
/// (written to a prompt cache). `output` includes `reasoning`, which is reported for information.
///
/// OpenAI counts cached tokens inside `prompt_tokens`; Anthropic counts them outside
/// `input_tokens`. The constructors below do the arithmetic once so nobody else has to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens that were neither read from nor written to a cache.
    pub input: u64,
    /// Prompt tokens read from a cache.
    pub cached_input: u64,
    /// Prompt tokens written to a cache.
    pub cache_write: u64,
    /// Generated tokens, reasoning included.
    pub output: u64,
    /// The part of `output` spent on reasoning.
    pub reasoning: u64,
}

impl Usage {
    /// From OpenAI's `usage`: `prompt_tokens` includes `cached_tokens`, `completion_tokens`
    /// includes `reasoning_tokens`.
    pub fn from_openai(prompt: u64, completion: u64, cached: u64, reasoning: u64) -> Usage {
        Usage {
            input: prompt.saturating_sub(cached),
            cached_input: cached.min(prompt),
            cache_write: 0,
            output: completion,
            reasoning: reasoning.min(completion),
        }
    }

    /// From Anthropic's `usage`: `input_tokens` excludes cache reads and writes.
    pub fn from_anthropic(input: u64, output: u64, cache_write: u64, cache_read: u64) -> Usage {
        Usage {
            input,
            cached_input: cache_read,
            cache_write,
            output,
            reasoning: 0,
        }
    }

    /// The whole prompt: input, cache reads and cache writes.
    pub fn prompt_tokens(&self) -> u64 {
        self.input
            .saturating_add(self.cached_input)
            .saturating_add(self.cache_write)
    }

    /// Everything the call consumed: the whole prompt and the output.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens().saturating_add(self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_cached_tokens_are_carved_out_of_the_prompt() {
        let u = Usage::from_openai(1000, 50, 800, 20);
        assert_eq!(u.input, 200);
        assert_eq!(u.cached_input, 800);
        assert_eq!(u.prompt_tokens(), 1000);
        assert_eq!(u.total_tokens(), 1050);
    }

    #[test]
    fn anthropic_prompt_is_the_sum_of_its_parts() {
        let u = Usage::from_anthropic(10, 5, 100, 1000);
        assert_eq!(u.prompt_tokens(), 1110);
        assert_eq!(u.total_tokens(), 1115);
    }

    #[test]
    fn a_lying_upstream_cannot_underflow() {
        let u = Usage::from_openai(10, 5, 50, 9);
        assert_eq!(u.input, 0);
        assert_eq!(u.cached_input, 10);
        assert_eq!(u.reasoning, 5);
    }
}
