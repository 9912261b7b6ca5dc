//! `GET /models`: exactly what the caller may use, in the dialect the caller speaks.

use http::{HeaderValue, Response};
use pai_core::Dialect;
use serde_json::json;

use crate::auth::Principal;
use crate::body::{full, ResponseBody};
use pai_core::timefmt::rfc3339;

use crate::auth::Binding;
use crate::policy::models_of;

pub(crate) fn answer(principal: &Principal, dialect: Dialect) -> Response<ResponseBody> {
    let models = models_of(principal);
    let (created, owner) = match &principal.binding {
        Binding::Provider(p) => (p.created_at, p.resource.metadata.name.clone()),
        Binding::Agent(a) => (0, a.metadata.name.clone()),
    };
    let body = match dialect {
        Dialect::Anthropic => {
            let data: Vec<_> = models
                .iter()
                .map(|id| {
                    json!({
                        "type": "model",
                        "id": id,
                        "display_name": id,
                        "created_at": rfc3339(created),
                    })
                })
                .collect();
            json!({
                "data": data,
                "has_more": false,
                "first_id": models.first(),
                "last_id": models.last(),
            })
        }
        _ => {
            let data: Vec<_> = models
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": owner}))
                .collect();
            json!({"object": "list", "data": data})
        }
    };
    let mut res = Response::new(full(body.to_string()));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
