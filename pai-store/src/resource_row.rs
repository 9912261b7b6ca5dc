//! A resource as a database row keeps it: its JSON, with a Secret's values taken out and sealed
//! apart. Shared by the SQLite and PostgreSQL stores, so both keep secrets alike.

use std::collections::BTreeMap;

use pai_core::resource::Secret;
use pai_core::{Kind, Resource, StoreError};

use crate::SecretBox;

/// The associated data that binds a sealed value to one secret.
fn seal_context(name: &str) -> Vec<u8> {
    format!("{}/{name}", Kind::Secret).into_bytes()
}

/// The `json` and `sealed` columns for a resource: a Secret's values are sealed and left out
/// of its JSON.
pub(crate) fn encode(
    resource: &Resource,
    secrets: &SecretBox,
) -> Result<(String, Option<Vec<u8>>), StoreError> {
    let unencodable =
        |_| StoreError::Conflict(format!("{} cannot be stored as JSON", resource.describe()));
    match resource {
        Resource::Secret(secret) => {
            let data = serde_json::to_vec(&secret.data).map_err(unencodable)?;
            let sealed = secrets.seal(&seal_context(&secret.metadata.name), &data)?;
            let shell = Resource::Secret(Secret {
                data: BTreeMap::new(),
                ..secret.clone()
            });
            Ok((
                serde_json::to_string(&shell).map_err(unencodable)?,
                Some(sealed),
            ))
        }
        other => Ok((serde_json::to_string(other).map_err(unencodable)?, None)),
    }
}

/// The resource a row's `json` and `sealed` columns hold, checked to be the `kind` and `name`
/// asked for, a Secret's values opened.
pub(crate) fn decode(
    json: &str,
    sealed: Option<&[u8]>,
    kind: Kind,
    name: &str,
    secrets: &SecretBox,
) -> Result<Resource, StoreError> {
    let mut resource: Resource = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("{kind} {name:?} does not parse: {e}")))?;
    if resource.kind() != kind || resource.name() != name {
        return Err(StoreError::Corrupt(format!(
            "the row for {kind} {name:?} holds {}",
            resource.describe()
        )));
    }
    if let Resource::Secret(secret) = &mut resource {
        // Neither message says anything about the plaintext: a serde error would quote it.
        let unreadable = || {
            StoreError::Corrupt(format!(
                "Secret {name:?} cannot be decrypted: the store was opened with another secret \
                 key, or the row was altered"
            ))
        };
        let plaintext = sealed
            .and_then(|sealed| secrets.open(&seal_context(name), sealed))
            .ok_or_else(unreadable)?;
        secret.data = serde_json::from_slice(&plaintext).map_err(|_| unreadable())?;
    }
    Ok(resource)
}
