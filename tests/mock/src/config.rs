//! What a mock upstream checks before it answers.

/// Settings of one [`MockUpstream`](crate::MockUpstream).
///
/// The default accepts any key (or none) on every route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MockConfig {
    /// The only key the OpenAI routes accept, as `Authorization: Bearer <key>`. `None` accepts
    /// any key, and a missing one.
    pub openai_key: Option<String>,
    /// The only key the Anthropic routes accept, as `x-api-key: <key>` (or
    /// `Authorization: Bearer <key>`). `None` accepts any key, and a missing one.
    pub anthropic_key: Option<String>,
    /// The only key the Gemini routes accept, as `x-goog-api-key: <key>` (or `?key=<key>`).
    /// `None` accepts any key, and a missing one.
    pub gemini_key: Option<String>,
    /// The only key the Azure OpenAI routes accept, as `api-key: <key>` (the v1 route also takes
    /// `Authorization: Bearer <key>`). `None` accepts any key, and a missing one.
    pub azure_key: Option<String>,
    /// Answer Anthropic requests without an `anthropic-version` header with the real API's 400,
    /// to catch a gateway that forgets to send it. Off by default.
    pub require_anthropic_version: bool,
    /// The only key the guard services accept: TEI and Lakera as `Authorization: Bearer
    /// <key>`, Prompt Shields as `Ocp-Apim-Subscription-Key: <key>`. `None` accepts any key,
    /// and a missing one.
    pub guard_key: Option<String>,
}

impl MockConfig {
    /// A config that accepts only `key` on the OpenAI routes.
    pub fn with_openai_key(mut self, key: impl Into<String>) -> Self {
        self.openai_key = Some(key.into());
        self
    }

    /// A config that accepts only `key` on the Anthropic routes.
    pub fn with_anthropic_key(mut self, key: impl Into<String>) -> Self {
        self.anthropic_key = Some(key.into());
        self
    }

    /// A config that accepts only `key` on the Gemini routes.
    pub fn with_gemini_key(mut self, key: impl Into<String>) -> Self {
        self.gemini_key = Some(key.into());
        self
    }

    /// A config that accepts only `key` on the Azure OpenAI routes.
    pub fn with_azure_key(mut self, key: impl Into<String>) -> Self {
        self.azure_key = Some(key.into());
        self
    }

    /// A config that accepts only `key` on the guard services' routes.
    pub fn with_guard_key(mut self, key: impl Into<String>) -> Self {
        self.guard_key = Some(key.into());
        self
    }
}
