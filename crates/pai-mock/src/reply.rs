//! The deterministic reply: which words or which tool call, and how many tokens it is worth.

use crate::directive::Directives;
use crate::prompt::Prompt;

/// Words in a reply when no `words=N` directive says otherwise.
pub(crate) const DEFAULT_WORDS: usize = 8;
/// The arguments of every mock tool call.
pub(crate) const TOOL_ARGUMENTS: &str = r#"{"city":"Paris"}"#;
/// [`TOOL_ARGUMENTS`] in the three pieces a stream sends.
const TOOL_ARGUMENT_PIECES: [&str; 3] = [r#"{"city""#, r#":"Par"#, r#"is"}"#];
/// The words after `mock reply:`, cycled.
const FILLER: [&str; 24] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
    "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi",
    "psi", "omega",
];

/// One planned answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The per-server sequence number behind every id in the answer.
    pub seq: u64,
    pub body: ReplyBody,
    pub usage: Usage,
}

/// What the assistant says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReplyBody {
    /// `words` words of text, starting `mock reply:`.
    Text { words: usize },
    /// One call to the named tool with [`TOOL_ARGUMENTS`].
    Tool { name: String },
}

/// Token counts in the mock's own terms; each dialect renders them its way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Prompt tokens that were neither read from nor written to the cache.
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
}

impl Usage {
    /// The whole prompt: uncached, cache reads and cache writes.
    pub(crate) fn prompt_total(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }
}

impl Reply {
    /// Plans the answer to `prompt` under `directives`.
    pub(crate) fn plan(prompt: &Prompt, directives: &Directives, seq: u64) -> Self {
        let body = match (&prompt.first_tool, directives.tool) {
            (Some(name), true) => ReplyBody::Tool { name: name.clone() },
            _ => ReplyBody::Text {
                words: directives.words.unwrap_or(DEFAULT_WORDS),
            },
        };
        let output = u64::try_from(piece_count(&body)).unwrap_or(u64::MAX);
        let usage = Usage {
            input: prompt.input_tokens(),
            cache_read: directives.cached,
            cache_write: directives.cache_write,
            output,
        };
        Self { seq, body, usage }
    }

    /// How many content deltas a stream of this reply sends (and its output tokens).
    pub(crate) fn piece_count(&self) -> usize {
        piece_count(&self.body)
    }

    /// The content deltas of a stream: one per word (with its leading space), or the tool-call
    /// arguments in three pieces.
    pub(crate) fn pieces(&self) -> impl Iterator<Item = String> + Send + 'static {
        let (count, tool) = match &self.body {
            ReplyBody::Text { words } => (*words, false),
            ReplyBody::Tool { .. } => (TOOL_ARGUMENT_PIECES.len(), true),
        };
        (0..count).map(move |i| {
            if tool {
                TOOL_ARGUMENT_PIECES[i % TOOL_ARGUMENT_PIECES.len()].to_owned()
            } else {
                word(i)
            }
        })
    }

    /// The whole text of a text reply; empty for a tool call.
    pub(crate) fn text(&self) -> String {
        match &self.body {
            ReplyBody::Text { .. } => self.pieces().collect(),
            ReplyBody::Tool { .. } => String::new(),
        }
    }
}

fn piece_count(body: &ReplyBody) -> usize {
    match body {
        ReplyBody::Text { words } => *words,
        ReplyBody::Tool { .. } => TOOL_ARGUMENT_PIECES.len(),
    }
}

/// The `i`th word of every reply, with its leading space.
fn word(i: usize) -> String {
    match i {
        0 => "mock".to_owned(),
        1 => " reply:".to_owned(),
        _ => format!(" {}", FILLER[(i - 2) % FILLER.len()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(chars: usize, tool: Option<&str>) -> Prompt {
        Prompt {
            model: "m".into(),
            chars,
            first_tool: tool.map(str::to_owned),
            ..Prompt::default()
        }
    }

    #[test]
    fn the_default_reply_is_eight_words() {
        let reply = Reply::plan(&prompt(10, None), &Directives::default(), 1);
        assert_eq!(
            reply.text(),
            "mock reply: alpha beta gamma delta epsilon zeta"
        );
        assert_eq!(reply.usage.input, 3);
        assert_eq!(reply.usage.output, 8);
    }

    #[test]
    fn words_and_cache_directives_shape_the_reply() {
        let d = Directives::parse("[mock:words=3,cached=7,cache_write=2]");
        let reply = Reply::plan(&prompt(1, None), &d, 1);
        assert_eq!(reply.text(), "mock reply: alpha");
        assert_eq!(
            reply.pieces().collect::<Vec<_>>(),
            ["mock", " reply:", " alpha"]
        );
        assert_eq!(reply.usage.prompt_total(), 1 + 7 + 2);
    }

    #[test]
    fn a_tool_call_needs_both_the_directive_and_a_tool() {
        let d = Directives::parse("[mock:tool]");
        let reply = Reply::plan(&prompt(1, Some("get_weather")), &d, 1);
        assert_eq!(reply.pieces().collect::<String>(), TOOL_ARGUMENTS);
        assert_eq!(reply.usage.output, 3);
        let no_tools = Reply::plan(&prompt(1, None), &d, 1);
        assert_eq!(no_tools.usage.output, 8);
    }
}
