//! `GET /ext/pai/v1/me`: an access key may read what concerns itself, and nothing else.

use http::{HeaderValue, Response};
use pai_core::{Dialect, Error, Store};
use serde_json::json;

use crate::auth::Principal;
use crate::body::{error_response, full, ResponseBody};

use super::policy::models_for;

pub(crate) async fn answer(principal: &Principal, store: &dyn Store) -> Response<ResponseBody> {
    let key = &principal.access_key;
    let provider = &principal.provider.resource;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let day_start_ms = now_ms - now_ms % 86_400_000;
    let totals = match store.usage_since(day_start_ms).await {
        Ok(t) => t,
        Err(e) => return error_response(&Error::Unavailable(e.to_string()), Dialect::OpenAi),
    };
    let tokens_today: u64 = totals
        .iter()
        .filter(|t| t.access_key.as_deref() == Some(key.metadata.name.as_str()))
        .map(|t| t.usage.total_tokens())
        .sum();
    let limit = key.spec.limits.max_tokens_per_day;
    let body = json!({
        "accessKey": key.metadata.name,
        "modelProvider": provider.metadata.name,
        "provider": provider.spec.provider.as_str(),
        "models": models_for(provider, key),
        "allowedCIDRs": key.spec.restrictions.allowed_cidrs,
        "maxTokensPerDay": limit,
        "tokensToday": tokens_today,
        "tokensLeftToday": limit.map(|l| l.saturating_sub(tokens_today)),
    });
    let mut res = Response::new(full(body.to_string()));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
