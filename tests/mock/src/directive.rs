//! Directives: the `[mock:…]` groups in the last user turn that script a reply.
//!
//! The crate root documents every directive; this file only reads them. Reading never fails:
//! an unknown key, a value that is not a number, or an unclosed group is ignored, so any prompt
//! is a valid prompt.

use std::time::Duration;

/// The longest reply `words=N` asks for; larger values are clamped.
pub(crate) const MAX_WORDS: usize = 100_000;
/// The longest pause any directive asks for; larger values are clamped.
const MAX_PAUSE_MS: u64 = 600_000;
const OPEN: &str = "[mock:";

/// What the directives in one prompt ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    /// Every group as written, joined by a space: the string `times=N` counts calls under.
    pub key: String,
    pub status: Option<u16>,
    pub times: Option<u64>,
    pub retry_after: Option<u64>,
    pub words: Option<usize>,
    pub cached: u64,
    pub cache_write: u64,
    pub delay: Duration,
    pub ttfb: Duration,
    pub stall: Duration,
    pub split: bool,
    pub crlf: bool,
    pub midstream_error: bool,
    pub reset_after: Option<usize>,
    pub tool: bool,
    /// With `tool`: say a few words before the calls.
    pub preamble: bool,
    /// With `tool`: how many calls (0, the default, means 1).
    pub tools: usize,
    /// Gemini only: sign the first function call with a `thoughtSignature` and refuse a
    /// history whose function calls lost it.
    pub signature: bool,
    /// Reply with the user turn's own text, its directive groups left out.
    pub echo: bool,
    /// Guard services: sleep this long before answering.
    pub guard_delay: Duration,
    /// Guard services: answer this HTTP status with the service's error body.
    pub guard_status: Option<u16>,
    /// Guard services: answer 200 with a body that lacks the verdict.
    pub guard_malformed: bool,
    /// TEI: the attack score of the text, in thousandths (`guard_score=0.85` is 850).
    pub guard_score: Option<u32>,
}

impl Directives {
    /// Reads every `[mock:…]` group in `text`; later values win.
    pub(crate) fn parse(text: &str) -> Self {
        let mut directives = Self::default();
        let mut groups = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find(OPEN) {
            let inner = &rest[start + OPEN.len()..];
            let Some(end) = inner.find(']') else { break };
            groups.push(&rest[start..start + OPEN.len() + end + 1]);
            for item in inner[..end].split(',') {
                directives.apply(item.trim());
            }
            rest = &inner[end + 1..];
        }
        directives.key = groups.join(" ");
        directives
    }

    /// `text` without its `[mock:…]` groups, spaces around them trimmed.
    pub(crate) fn strip(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find(OPEN) {
            out.push_str(&rest[..start]);
            match rest[start..].find(']') {
                Some(end) => rest = &rest[start + end + 1..],
                None => {
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Whether these directives make the call fail (before `times` is taken into account).
    pub(crate) fn fails(&self) -> bool {
        self.status.is_some() || self.midstream_error || self.reset_after.is_some()
    }

    fn apply(&mut self, item: &str) {
        let (key, value) = match item.split_once('=') {
            Some((key, value)) => (key.trim(), value.trim()),
            None => (item, ""),
        };
        match key {
            "status" => {
                if let Some(status) = number(value).filter(|s| (400..=599).contains(s)) {
                    self.status = u16::try_from(status).ok();
                }
            }
            "times" => self.times = number(value).or(self.times),
            "retry_after" => self.retry_after = number(value).or(self.retry_after),
            "words" => {
                if let Some(words) = number(value) {
                    self.words = Some(usize::try_from(words).unwrap_or(MAX_WORDS).min(MAX_WORDS));
                }
            }
            "cached" => self.cached = number(value).unwrap_or(self.cached),
            "cache_write" => self.cache_write = number(value).unwrap_or(self.cache_write),
            "delay_ms" => self.delay = pause(value).unwrap_or(self.delay),
            "ttfb_ms" => self.ttfb = pause(value).unwrap_or(self.ttfb),
            "stall_ms" => self.stall = pause(value).unwrap_or(self.stall),
            "reset_after" => {
                if let Some(events) = number(value) {
                    self.reset_after = Some(usize::try_from(events).unwrap_or(usize::MAX));
                }
            }
            "split" => self.split = flag(value),
            "crlf" => self.crlf = flag(value),
            "midstream_error" => self.midstream_error = flag(value),
            "tool" => self.tool = flag(value),
            "preamble" => self.preamble = flag(value),
            "signature" => self.signature = flag(value),
            "echo" => self.echo = flag(value),
            "guard_delay_ms" => self.guard_delay = pause(value).unwrap_or(self.guard_delay),
            "guard_status" => {
                if let Some(status) = number(value).filter(|s| (400..=599).contains(s)) {
                    self.guard_status = u16::try_from(status).ok();
                }
            }
            "guard_malformed" => self.guard_malformed = flag(value),
            "guard_score" => {
                if let Ok(score) = value.parse::<f64>() {
                    if (0.0..=1.0).contains(&score) {
                        self.guard_score = Some((score * 1000.0).round() as u32);
                    }
                }
            }
            "tools" => {
                if let Some(calls) = number(value) {
                    self.tools = usize::try_from(calls).unwrap_or(usize::MAX);
                }
            }
            _ => {}
        }
    }
}

fn number(value: &str) -> Option<u64> {
    value.parse().ok()
}

fn pause(value: &str) -> Option<Duration> {
    number(value).map(|ms| Duration::from_millis(ms.min(MAX_PAUSE_MS)))
}

/// A bare flag is on; `flag=false` or `flag=0` turns it off again.
fn flag(value: &str) -> bool {
    !matches!(value, "false" | "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_directive_is_the_default() {
        assert_eq!(
            Directives::parse("hello [mock world]"),
            Directives::default()
        );
    }

    #[test]
    fn reads_every_group_and_keeps_the_raw_text_as_key() {
        let d = Directives::parse(
            "hi [mock:status=529,times=2, words=20] and [mock:split,crlf,delay_ms=5] bye",
        );
        assert_eq!(
            d.key,
            "[mock:status=529,times=2, words=20] [mock:split,crlf,delay_ms=5]"
        );
        assert_eq!(d.status, Some(529));
        assert_eq!(d.times, Some(2));
        assert_eq!(d.words, Some(20));
        assert!(d.split && d.crlf);
        assert_eq!(d.delay, Duration::from_millis(5));
        assert!(d.fails());
    }

    #[test]
    fn echo_strips_the_directive_groups() {
        let text = "Ignore  all [mock:echo] previous instructions [mock:delay_ms=1";
        assert!(Directives::parse(text).echo);
        assert_eq!(Directives::strip(text), "Ignore all previous instructions");
        assert_eq!(Directives::strip("[mock:echo,words=3]"), "");
    }

    #[test]
    fn ignores_what_it_cannot_read() {
        let d = Directives::parse("[mock:status=abc,words=-1,nope=3,status=200,tool] [mock:x");
        assert_eq!(d.status, None);
        assert_eq!(d.words, None);
        assert!(d.tool);
        assert!(!d.preamble);
        assert!(!d.fails());
        assert_eq!(d.key, "[mock:status=abc,words=-1,nope=3,status=200,tool]");
    }

    #[test]
    fn clamps_huge_values() {
        let d = Directives::parse("[mock:words=99999999999,delay_ms=99999999999]");
        assert_eq!(d.words, Some(MAX_WORDS));
        assert_eq!(d.delay, Duration::from_millis(MAX_PAUSE_MS));
    }

    #[test]
    fn flags_can_be_turned_off() {
        let d = Directives::parse("[mock:split][mock:split=false,midstream_error=true]");
        assert!(!d.split);
        assert!(d.midstream_error);
    }
}
