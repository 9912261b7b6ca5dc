//! Guards inspect what a request says before it reaches a model.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Whether a guard's verdict blocks the request or is only recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Block the request when the guard says so.
    #[default]
    Enforce,
    /// Let it through and record the verdict in the audit log.
    Audit,
}

impl Enforcement {
    /// As written in `enforcement:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Enforce => "enforce",
            Enforcement::Audit => "audit",
        }
    }
}

/// Where a piece of text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextSource {
    /// A system or developer prompt.
    System,
    /// A user message.
    User,
    /// An assistant message being replayed.
    Assistant,
    /// A tool's result fed back to the model.
    ToolResult,
}

/// The text of one request, every message, system prompt and tool result, in order.
#[derive(Clone, Debug, Default)]
pub struct GuardInput {
    /// The pieces of text with where each came from.
    pub texts: Vec<(TextSource, String)>,
    /// The model the request is for.
    pub model: String,
}

/// A guard's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Nothing found.
    Allow,
    /// Block, with why and how sure the guard is (0.0 to 1.0).
    Block {
        /// What was found, in words an operator can act on.
        reason: String,
        /// The guard's confidence.
        score: f32,
    },
    /// The guard could not tell: the service it calls failed, timed out or answered something
    /// it cannot read. Never an allow: the binding's `onError` decides (block by default).
    Error {
        /// What went wrong, in words an operator can act on; never the text or a key.
        reason: String,
    },
}

/// Inspects the text of a request.
///
/// Contract: a guard looks at every text of the request (system prompts, every message, tool
/// results) and answers [`Verdict::Allow`] or [`Verdict::Block`] with a reason and a score, or
/// [`Verdict::Error`] when it cannot tell (then the binding's `onError` decides). With
/// [`Enforcement::Enforce`] a block refuses the request with 403; with [`Enforcement::Audit`] it
/// is only recorded. Provider-wide guards run before per-agent guards.
#[async_trait]
pub trait Guard: Send + Sync + 'static {
    /// The guard's name, as it appears in audit records.
    fn name(&self) -> &str;

    /// Inspect the request.
    async fn inspect(&self, input: &GuardInput) -> Verdict;
}
