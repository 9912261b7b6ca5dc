//! Which endpoint a request is for.
//!
//! Clients build URLs differently (PROTOCOLS.md): the Anthropic SDK appends `/v1/messages` to
//! `…/ext`, the OpenAI SDK appends `/chat/completions` to `…/ext/v1`, and a base URL given with
//! one `/v1` too many yields `/ext/v1/v1/…`. All of these reach the same route; the query string
//! (Claude Code's `?beta=true`) never affects routing.

use http::Method;
use pai_core::{Dialect, Operation};

/// A gateway endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /ext/v1/chat/completions`
    ChatCompletions,
    /// `POST /ext/v1/messages`
    Messages,
    /// `POST /ext/v1/messages/count_tokens`
    CountTokens,
    /// `GET /ext/v1/models`
    Models,
    /// `HEAD /ext/api/hello` (Claude Code's connectivity check)
    Hello,
    /// `GET /ext/pai/v1/me`: what the caller's own access key may do (for `pai login` and
    /// `pai gateway setup`).
    Me,
}

impl Route {
    /// Classify a path (no query string). `None` when the gateway has no such endpoint.
    pub fn from_path(path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/ext")?;
        if rest == "/api/hello" {
            return Some(Route::Hello);
        }
        if rest == "/pai/v1/me" {
            return Some(Route::Me);
        }
        let rest = rest.strip_prefix("/v1").unwrap_or(rest);
        let rest = rest.strip_prefix("/v1").unwrap_or(rest);
        let rest = rest.trim_end_matches('/');
        match rest {
            "/chat/completions" => Some(Route::ChatCompletions),
            "/messages" => Some(Route::Messages),
            "/messages/count_tokens" => Some(Route::CountTokens),
            "/models" => Some(Route::Models),
            _ => None,
        }
    }

    /// The method the route answers.
    pub fn method_allowed(self, method: &Method) -> bool {
        match self {
            Route::ChatCompletions | Route::Messages | Route::CountTokens => method == Method::POST,
            Route::Models | Route::Me => method == Method::GET,
            Route::Hello => method == Method::HEAD || method == Method::GET,
        }
    }

    /// The operation, for routes that reach a provider.
    pub fn operation(self) -> Operation {
        match self {
            Route::ChatCompletions => Operation::ChatCompletions,
            Route::Messages => Operation::Messages,
            Route::CountTokens => Operation::CountTokens,
            Route::Models | Route::Hello | Route::Me => Operation::ListModels,
        }
    }
}

/// The dialect a request's errors are answered in: the route's, or for routes both dialects
/// share, the one the headers suggest (the Anthropic SDK always sends `anthropic-version`).
pub fn dialect_of(route: Option<Route>, headers: &http::HeaderMap) -> Dialect {
    match route {
        Some(Route::Messages | Route::CountTokens) => Dialect::Anthropic,
        Some(Route::ChatCompletions) => Dialect::OpenAi,
        _ if headers.contains_key("anthropic-version") => Dialect::Anthropic,
        _ => Dialect::OpenAi,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_spelling_routes() {
        for p in [
            "/ext/v1/chat/completions",
            "/ext/v1/v1/chat/completions",
            "/ext/chat/completions",
        ] {
            assert_eq!(Route::from_path(p), Some(Route::ChatCompletions), "{p}");
        }
        assert_eq!(Route::from_path("/ext/v1/messages"), Some(Route::Messages));
        assert_eq!(
            Route::from_path("/ext/v1/v1/messages"),
            Some(Route::Messages)
        );
        assert_eq!(
            Route::from_path("/ext/v1/messages/count_tokens"),
            Some(Route::CountTokens)
        );
        assert_eq!(Route::from_path("/ext/v1/models"), Some(Route::Models));
        assert_eq!(Route::from_path("/ext/api/hello"), Some(Route::Hello));
        assert_eq!(Route::from_path("/ext/pai/v1/me"), Some(Route::Me));
        assert_eq!(Route::from_path("/v1/messages"), None);
        assert_eq!(Route::from_path("/ext/v1/embeddings"), None);
    }
}
