//! `GET /ext/pai/v1/me`: a caller may read what concerns itself, and nothing else.

use http::{HeaderValue, Response};
use pai_core::{Clock, Dialect, Error, Store};
use serde_json::json;

use crate::auth::{Binding, Principal};
use crate::body::{error_response, full, ResponseBody};

use crate::policy::models_of;

pub(crate) async fn answer(
    principal: &Principal,
    store: &dyn Store,
    clock: &dyn Clock,
) -> Response<ResponseBody> {
    let (day, _) = clock.utc_day();
    let day_start_ms = day * 86_400_000;
    let totals = match store.usage_since(day_start_ms).await {
        Ok(t) => t,
        Err(e) => return error_response(&Error::Unavailable(e.to_string()), Dialect::OpenAi),
    };
    let key = principal.access_key.as_deref();
    let key_name = principal.key_name();
    let tokens_today: u64 = totals
        .iter()
        .filter(|t| key_name.is_some() && t.access_key.as_deref() == key_name)
        .map(|t| t.usage.total_tokens())
        .sum();
    let limit = key.and_then(|k| k.spec.limits.max_tokens_per_day);
    let (provider, kind, agent) = match &principal.binding {
        Binding::Provider(p) => (
            Some(p.resource.metadata.name.clone()),
            Some(p.resource.spec.provider.as_str()),
            None,
        ),
        Binding::Agent(a) => (None, None, Some(a.metadata.name.clone())),
    };
    let body = json!({
        "accessKey": key_name,
        "modelProvider": provider,
        "provider": kind,
        "agent": agent,
        "models": models_of(principal),
        "allowedCIDRs": key.map(|k| k.spec.restrictions.allowed_cidrs.clone()).unwrap_or_default(),
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
