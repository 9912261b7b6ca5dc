//! The deterministic reply: which words or which tool call, and how many tokens it is worth.

use crate::directive::Directives;
use crate::prompt::Prompt;

/// Words in a reply when no `words=N` directive says otherwise.
pub(crate) const DEFAULT_WORDS: usize = 8;
/// The arguments of the first mock tool call.
#[cfg(test)]
pub(crate) const TOOL_ARGUMENTS: &str = r#"{"city":"Paris"}"#;
/// The cities of the calls of a `tools=N` reply, in order: `{"city":"Paris"}`, then Berlin, …
pub(crate) const CITIES: [&str; 4] = ["Paris", "Berlin", "Tokyo", "Lima"];
/// The most tool calls `tools=N` asks for; larger values are clamped.
pub(crate) const MAX_CALLS: usize = CITIES.len();
/// Characters per streamed piece of a JSON answer (each counts as one output token).
const JSON_PIECE: usize = 8;
/// How many pieces a stream sends the arguments of one call in.
const ARGUMENT_PIECES: usize = 3;
/// The words of the text a `preamble` reply says before its tool calls.
const PREAMBLE: [&str; 5] = ["Let", " me", " check", " the", " weather."];
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
    /// The text pieces of a JSON answer, which replace the words.
    pub json: Option<Vec<String>>,
    /// The arguments of a forced tool call, built from its schema.
    pub arguments: Option<String>,
    /// The reasoning shown before the answer, word by word as a stream sends it; empty when
    /// none was asked for. Each word is one output token.
    pub thinking: Vec<String>,
}

/// What the assistant says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReplyBody {
    /// `words` words of text, starting `mock reply:`.
    Text { words: usize },
    /// Calls to the named tool (`calls` of them, 1 to [`MAX_CALLS`], with the arguments of
    /// [`Call`]), after a few words of text if `preamble`.
    Tool {
        name: String,
        preamble: bool,
        calls: usize,
    },
}

/// One tool call of a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Call {
    /// Its position among the reply's calls, from 0.
    pub index: usize,
    pub name: String,
    pub city: &'static str,
    /// Arguments built from the tool's schema, instead of the city.
    pub json: Option<String>,
}

impl Call {
    /// The arguments as a JSON string: `{"city":"Paris"}`.
    pub(crate) fn arguments(&self) -> String {
        match &self.json {
            Some(json) => json.clone(),
            None => format!(r#"{{"city":"{}"}}"#, self.city),
        }
    }

    /// The arguments as a JSON object.
    pub(crate) fn input(&self) -> serde_json::Value {
        match &self.json {
            Some(json) => serde_json::from_str(json).unwrap_or_default(),
            None => serde_json::json!({"city": self.city}),
        }
    }

    /// The arguments in the three pieces a stream sends: `{"city"`, `:"Par`, `is"}`.
    fn pieces(&self) -> [String; ARGUMENT_PIECES] {
        if let Some(json) = &self.json {
            let chars: Vec<char> = json.chars().collect();
            let third = chars.len().div_ceil(ARGUMENT_PIECES).max(1);
            let mut pieces = chars.chunks(third).map(|c| c.iter().collect::<String>());
            return std::array::from_fn(|_| pieces.next().unwrap_or_default());
        }
        let cut = self
            .city
            .char_indices()
            .nth(3)
            .map_or(self.city.len(), |(i, _)| i);
        let (head, tail) = self.city.split_at(cut);
        [
            r#"{"city""#.to_owned(),
            format!(r#":"{head}"#),
            format!(r#"{tail}"}}"#),
        ]
    }

    /// The suffix that tells this call's id from the first's: empty for the first, `_2` for
    /// the second, ….
    pub(crate) fn id_suffix(&self) -> String {
        if self.index == 0 {
            String::new()
        } else {
            format!("_{}", self.index + 1)
        }
    }
}

/// One content delta of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// A word of text, with its leading space.
    Text(String),
    /// A piece of the arguments of the call with this index.
    Arguments { call: usize, json: String },
}

impl Piece {
    /// The content block this piece belongs to, counting a text before the calls as block 0.
    pub(crate) fn block(&self, preamble: bool) -> usize {
        match self {
            Piece::Text(_) => 0,
            Piece::Arguments { call, .. } => call + usize::from(preamble),
        }
    }

    /// The text of the piece, whichever kind it is.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Piece::Text(text) | Piece::Arguments { json: text, .. } => text,
        }
    }
}

/// Token counts in the mock's own terms; each dialect renders them its way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Prompt tokens that were neither read from nor written to the cache.
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// The part of the output spent reasoning.
    pub reasoning: u64,
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
        let shape = &prompt.shape;
        let mut json = None;
        let mut arguments = None;
        let body = match (&prompt.first_tool, directives.tool, &shape.forced_tool) {
            (Some(name), true, _) => ReplyBody::Tool {
                name: name.clone(),
                preamble: directives.preamble,
                calls: directives.tools.clamp(1, MAX_CALLS),
            },
            (_, _, Some((name, schema))) => {
                arguments = Some(crate::shape::instance(schema, schema, "value", 0).to_string());
                ReplyBody::Tool {
                    name: name.clone(),
                    preamble: false,
                    calls: 1,
                }
            }
            _ => match &shape.json {
                Some(schema) => {
                    let text = crate::shape::json_text(schema, &prompt.directive_text);
                    let chars: Vec<char> = text.chars().collect();
                    let pieces: Vec<String> = chars
                        .chunks(JSON_PIECE)
                        .map(|c| c.iter().collect())
                        .collect();
                    let words = pieces.len();
                    json = Some(pieces);
                    ReplyBody::Text { words }
                }
                None if directives.echo => {
                    let text = Directives::strip(&prompt.directive_text);
                    let pieces: Vec<String> =
                        text.split_inclusive(' ').map(str::to_owned).collect();
                    let words = pieces.len();
                    json = Some(pieces);
                    ReplyBody::Text { words }
                }
                None => ReplyBody::Text {
                    words: directives.words.unwrap_or(DEFAULT_WORDS),
                },
            },
        };
        let thinking = crate::shape::thinking_pieces(shape.thinking_words);
        let reasoning = u64::try_from(thinking.len()).unwrap_or(u64::MAX);
        let output = u64::try_from(piece_count(&body))
            .unwrap_or(u64::MAX)
            .saturating_add(reasoning);
        let usage = Usage {
            input: prompt.input_tokens(),
            cache_read: directives.cached,
            cache_write: directives.cache_write,
            output,
            reasoning,
        };
        Self {
            seq,
            body,
            usage,
            json,
            arguments,
            thinking,
        }
    }

    /// How many content deltas a stream of this reply sends after its reasoning (and its
    /// output tokens besides the reasoning).
    pub(crate) fn piece_count(&self) -> usize {
        piece_count(&self.body)
    }

    /// Whether the reply shows reasoning before its answer.
    pub(crate) fn thinks(&self) -> bool {
        !self.thinking.is_empty()
    }

    /// The whole reasoning shown before the answer; empty when none was asked for.
    pub(crate) fn thinking_text(&self) -> String {
        self.thinking.concat()
    }

    /// Whether the reply says some text before its tool calls.
    pub(crate) fn preamble(&self) -> bool {
        matches!(self.body, ReplyBody::Tool { preamble: true, .. })
    }

    /// The tool calls of the reply, in order; none for a text reply.
    pub(crate) fn calls(&self) -> Vec<Call> {
        match &self.body {
            ReplyBody::Text { .. } => Vec::new(),
            ReplyBody::Tool { name, calls, .. } => (0..*calls)
                .map(|index| Call {
                    index,
                    name: name.clone(),
                    city: CITIES[index % CITIES.len()],
                    json: self.arguments.clone(),
                })
                .collect(),
        }
    }

    /// The content deltas of a stream: one per word (with its leading space), then each tool
    /// call's arguments in three pieces.
    pub(crate) fn pieces(&self) -> impl Iterator<Item = Piece> + Send + 'static {
        let words = text_words(&self.body);
        let preamble = self.preamble();
        let json = self.json.clone();
        let text = (0..words).map(move |i| {
            Piece::Text(match &json {
                Some(pieces) => pieces.get(i).cloned().unwrap_or_default(),
                None if preamble => PREAMBLE[i].to_owned(),
                None => word(i),
            })
        });
        let arguments = self.calls().into_iter().flat_map(|call| {
            let index = call.index;
            call.pieces()
                .into_iter()
                .map(move |json| Piece::Arguments { call: index, json })
        });
        text.chain(arguments)
    }

    /// The words of the reply's text, each with its leading space.
    pub(crate) fn text_pieces(&self) -> impl Iterator<Item = String> + Send + 'static {
        self.pieces()
            .take(text_words(&self.body))
            .map(|piece| piece.as_str().to_owned())
    }

    /// The whole text of the reply: its words, or the preamble before tool calls (empty
    /// without one).
    pub(crate) fn text(&self) -> String {
        self.text_pieces().collect()
    }
}

/// How many words of text a reply says.
fn text_words(body: &ReplyBody) -> usize {
    match body {
        ReplyBody::Text { words } => *words,
        ReplyBody::Tool { preamble, .. } => {
            if *preamble {
                PREAMBLE.len()
            } else {
                0
            }
        }
    }
}

fn piece_count(body: &ReplyBody) -> usize {
    match body {
        ReplyBody::Text { words } => *words,
        ReplyBody::Tool { calls, .. } => text_words(body) + calls * ARGUMENT_PIECES,
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
            ["mock", " reply:", " alpha"].map(|w| Piece::Text(w.to_owned()))
        );
        assert_eq!(reply.usage.prompt_total(), 1 + 7 + 2);
    }

    #[test]
    fn a_tool_call_needs_both_the_directive_and_a_tool() {
        let d = Directives::parse("[mock:tool]");
        let reply = Reply::plan(&prompt(1, Some("get_weather")), &d, 1);
        let pieces: String = reply.pieces().map(|p| p.as_str().to_owned()).collect();
        assert_eq!(pieces, TOOL_ARGUMENTS);
        assert_eq!(reply.text(), "");
        assert_eq!(reply.usage.output, 3);
        let no_tools = Reply::plan(&prompt(1, None), &d, 1);
        assert_eq!(no_tools.usage.output, 8);
    }

    #[test]
    fn a_preamble_comes_before_the_calls_and_counts_as_output() {
        let d = Directives::parse("[mock:tool,preamble,tools=2]");
        let reply = Reply::plan(&prompt(1, Some("get_weather")), &d, 1);
        assert_eq!(reply.text(), "Let me check the weather.");
        let calls = reply.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].arguments(), r#"{"city":"Paris"}"#);
        assert_eq!(calls[1].arguments(), r#"{"city":"Berlin"}"#);
        assert_eq!(calls[1].id_suffix(), "_2");
        assert_eq!(reply.usage.output, 5 + 3 + 3);
        let pieces: Vec<Piece> = reply.pieces().collect();
        assert_eq!(pieces.len(), reply.piece_count());
        let blocks: Vec<usize> = pieces.iter().map(|p| p.block(true)).collect();
        assert_eq!(blocks, [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
        let second: String = pieces
            .iter()
            .filter(|p| matches!(p, Piece::Arguments { call: 1, .. }))
            .map(Piece::as_str)
            .collect();
        assert_eq!(second, r#"{"city":"Berlin"}"#);
    }

    #[test]
    fn tools_is_clamped() {
        let d = Directives::parse("[mock:tool,tools=99]");
        let reply = Reply::plan(&prompt(1, Some("f")), &d, 1);
        assert_eq!(reply.calls().len(), MAX_CALLS);
        let d = Directives::parse("[mock:tool,tools=0]");
        assert_eq!(Reply::plan(&prompt(1, Some("f")), &d, 1).calls().len(), 1);
    }
}
