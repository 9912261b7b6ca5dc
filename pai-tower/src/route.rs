//! Which endpoint a request is for.
//!
//! Clients build URLs differently (PROTOCOLS.md): the Anthropic SDK appends `/v1/messages` to
//! its base URL, the OpenAI SDK appends `/chat/completions` to a base URL ending in `/v1`, and a
//! base URL given with one `/v1` too many yields `…/v1/v1/…`. All of these reach the same route;
//! the query string (Claude Code's `?beta=true`) never affects routing.
//!
//! # Where the routes sit
//!
//! The gateway's routes sit at the root of the path it is handed (`/v1/messages`) or under
//! `/ext` (`/ext/v1/messages`, where `pai serve` has always served them). A router that strips
//! its mount point before calling the gateway — axum's `nest_service("/llm", gateway)` — thus
//! needs no configuration: the gateway sees `/v1/messages`. A server that hands over the whole
//! path (axum's `fallback_service`, a bare hyper server) under a prefix of its own tells the
//! gateway with [`GatewayBuilder::prefix`](crate::GatewayBuilder::prefix), which also lets the
//! gateway name the paths clients really use in its messages (a 404 lists the endpoints under
//! the prefix the client used).

use http::Method;
use pai_core::{Dialect, Operation};

/// A gateway endpoint; paths are shown relative to where the gateway is mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/messages`
    Messages,
    /// `POST /v1/messages/count_tokens`
    CountTokens,
    /// `GET /v1/models`
    Models,
    /// `HEAD /api/hello` (Claude Code's connectivity check)
    Hello,
    /// `GET /pai/v1/me`: what the caller's own access key may do (for `pai login` and
    /// `pai gateway setup`).
    Me,
}

impl Route {
    /// Classify a path (no query string) for a gateway mounted at the root. `None` when the
    /// gateway has no such endpoint.
    pub fn from_path(path: &str) -> Option<Route> {
        Route::under("", path)
    }

    /// Classify `path` for a gateway whose clients reach it under `prefix` (`""` or, e.g.,
    /// `/llm`), whether or not a router stripped the prefix before the gateway saw the path.
    pub fn under(prefix: &str, path: &str) -> Option<Route> {
        Route::relative(split(prefix, path).1)
    }

    /// Classify a path relative to the gateway's own routes (after prefix and `/ext`).
    fn relative(rest: &str) -> Option<Route> {
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

/// How records and metrics name an operation.
pub(crate) fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::ChatCompletions => "chat.completions",
        Operation::Messages => "messages",
        Operation::CountTokens => "messages.count_tokens",
        Operation::ListModels => "models",
    }
}

/// Split `path` into the prefix the client put before the gateway's routes and the rest:
/// `prefix` (present in `path` or already stripped by a router), then `/ext` if present.
fn split<'p>(prefix: &str, path: &'p str) -> (String, &'p str) {
    let prefix = prefix.trim_end_matches('/');
    let rest = match path.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() && (rest.is_empty() || rest.starts_with('/')) => rest,
        _ => path,
    };
    match rest.strip_prefix("/ext") {
        Some(r) if r.starts_with('/') => (format!("{prefix}/ext"), r),
        _ => (prefix.to_owned(), rest),
    }
}

/// What the client asked for that the gateway does not serve, and what it does serve under the
/// prefix the client used.
pub(crate) fn not_found_message(prefix: &str, method: &http::Method, path: &str) -> String {
    let (used, rest) = split(prefix, path);
    format!(
        "no such endpoint: {method} {used}{rest}; pai serves {used}/v1/chat/completions, \
         {used}/v1/messages, {used}/v1/messages/count_tokens and {used}/v1/models"
    )
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
        assert_eq!(Route::from_path("/ext/v1/embeddings"), None);
    }

    #[test]
    fn routes_sit_at_the_root_of_a_mount_or_under_ext() {
        // axum's nest_service strips its mount point: the gateway sees the bare route.
        assert_eq!(Route::from_path("/v1/messages"), Some(Route::Messages));
        assert_eq!(
            Route::from_path("/chat/completions"),
            Some(Route::ChatCompletions)
        );
        assert_eq!(Route::from_path("/api/hello"), Some(Route::Hello));
        assert_eq!(Route::from_path("/pai/v1/me"), Some(Route::Me));
        assert_eq!(Route::from_path("/llm/v1/messages"), None);
        assert_eq!(Route::from_path("/extra/v1/messages"), None);
        // A declared prefix, whether the server left it on the path or not.
        for p in ["/llm/v1/messages", "/v1/messages", "/llm/ext/v1/messages"] {
            assert_eq!(Route::under("/llm", p), Some(Route::Messages), "{p}");
        }
        assert_eq!(Route::under("/llm/", "/llm/api/hello"), Some(Route::Hello));
        assert_eq!(Route::under("/llm", "/llmx/v1/messages"), None);
        assert_eq!(Route::under("/llm", "/other/v1/messages"), None);
    }

    #[test]
    fn not_found_names_the_paths_under_the_prefix_the_client_used() {
        let post = Method::POST;
        let m = not_found_message("", &post, "/ext/v1/embeddings");
        assert!(
            m.starts_with("no such endpoint: POST /ext/v1/embeddings; "),
            "{m}"
        );
        assert!(
            m.contains("pai serves /ext/v1/chat/completions, /ext/v1/messages,"),
            "{m}"
        );
        let m = not_found_message("/llm", &post, "/v1/embeddings");
        assert!(
            m.starts_with("no such endpoint: POST /llm/v1/embeddings; "),
            "{m}"
        );
        assert!(
            m.contains("/llm/v1/messages/count_tokens and /llm/v1/models"),
            "{m}"
        );
        assert_eq!(
            not_found_message("/llm", &post, "/llm/v1/embeddings"),
            not_found_message("/llm", &post, "/v1/embeddings")
        );
        let m = not_found_message("", &post, "/v1/embeddings");
        assert!(m.contains("pai serves /v1/chat/completions"), "{m}");
    }
}
