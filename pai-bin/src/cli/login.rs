//! `pai login URL --access-key pak_…`: check an access key against a gateway and remember both.
//!
//! The credentials live in `$PAI_CONFIG_DIR/credentials.json` (default `$XDG_CONFIG_HOME/pai`,
//! then `~/.config/pai`), in a 0700 directory, as a file created 0600.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use super::CliError;

/// How long the gateway may take to answer `/ext/pai/v1/me`.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Options of `pai login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The gateway's URL, as clients reach it.
    #[arg(value_name = "URL")]
    url: String,
    /// The access key, raw (`pak_…`) or wrapped (`sk-ant-api03-pak-…-AA`).
    #[arg(
        long,
        value_name = "KEY",
        env = "PAI_ACCESS_KEY",
        hide_env_values = true
    )]
    access_key: String,
}

/// What `pai login` saves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// The gateway URL, without a trailing slash.
    pub url: String,
    /// The raw access key.
    pub access_key: String,
}

impl Credentials {
    /// Checked and normalised credentials.
    pub fn new(url: &str, access_key: &str) -> Result<Credentials, CliError> {
        Ok(Credentials {
            url: gateway_url(url)?,
            access_key: raw_key(access_key)?,
        })
    }
}

/// What `GET /ext/pai/v1/me` tells a key about itself.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The key's name.
    pub access_key: String,
    /// The ModelProvider it reaches.
    pub model_provider: String,
    /// The kind of provider (openai, anthropic…).
    #[serde(default)]
    pub provider: String,
    /// The models it may use.
    #[serde(default)]
    pub models: Vec<String>,
    /// The networks it may be used from; empty means anywhere.
    #[serde(default, rename = "allowedCIDRs")]
    pub allowed_cidrs: Vec<String>,
    /// Its daily token cap, if any.
    pub max_tokens_per_day: Option<u64>,
    /// Tokens used today (UTC).
    #[serde(default)]
    pub tokens_today: u64,
    /// Tokens left today, if capped.
    pub tokens_left_today: Option<u64>,
}

/// Run `pai login`.
pub async fn run(args: LoginArgs) -> Result<(), CliError> {
    let creds = Credentials::new(&args.url, &args.access_key)?;
    let me = fetch_me(&creds).await?;
    let path = save(&config_dir()?, &creds)?;
    eprintln!("saved credentials to {}", path.display());
    println!(
        "logged in to {} as {} (ModelProvider {})",
        creds.url, me.access_key, me.model_provider
    );
    Ok(())
}

/// `http(s)://host[:port][/path]` without a trailing slash.
pub fn gateway_url(url: &str) -> Result<String, CliError> {
    let base = url.trim().trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(CliError::msg(format!(
            "gateway URL {base:?} must be an http:// or https:// URL"
        )));
    }
    base.parse::<http::Uri>()
        .map_err(|e| CliError::msg(format!("gateway URL {base:?}: {e}")))?;
    Ok(base.to_owned())
}

/// The raw `pak_…` key inside a raw or wrapped one.
pub fn raw_key(key: &str) -> Result<String, CliError> {
    pai_core::access_key::unwrap(key).ok_or_else(|| {
        CliError::msg(
            "--access-key is not a pai access key: expected pak_… or sk-ant-api03-pak-…-AA",
        )
    })
}

/// Where credentials are kept: `$PAI_CONFIG_DIR`, `$XDG_CONFIG_HOME/pai` or `~/.config/pai`.
pub fn config_dir() -> Result<PathBuf, CliError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("PAI_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(dir).join("pai"));
    }
    if let Some(home) = var("HOME") {
        return Ok(PathBuf::from(home).join(".config").join("pai"));
    }
    Err(CliError::msg(
        "cannot tell where to keep credentials: set PAI_CONFIG_DIR or HOME",
    ))
}

/// Write `credentials.json` into `dir` (made 0700 if missing), created 0600, atomically.
pub fn save(dir: &Path, creds: &Credentials) -> Result<PathBuf, CliError> {
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        CliError::msg(format!("cannot {what} {}: {e}", path.display()))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail("create", dir, e))?;
    let path = dir.join("credentials.json");
    let tmp = dir.join(format!(".credentials.json.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut text = serde_json::to_string_pretty(creds).map_err(|e| CliError::msg(e.to_string()))?;
    text.push('\n');
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("write", &path, e));
    }
    Ok(path)
}

/// The saved credentials, if there are any.
pub fn load(dir: &Path) -> Result<Option<Credentials>, CliError> {
    let path = dir.join("credentials.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            CliError::msg(format!(
                "{} is not valid: {e}; run `pai login URL --access-key pak_…` again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::msg(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Ask the gateway what the key may do; a clear error if it is unreachable or refuses the key.
pub async fn fetch_me(creds: &Credentials) -> Result<Me, CliError> {
    let url = format!("{}/ext/pai/v1/me", creds.url);
    // The gateway's own upstream transport speaks both http:// and https:// (rustls, webpki
    // roots), which a developer's gateway URL usually is.
    let unreachable = |detail: String| {
        CliError::msg(format!(
            "cannot reach the pai gateway at {}: {detail}",
            creds.url
        ))
    };
    let transport = pai_providers::HttpTransport::new(pai_providers::TransportOptions {
        connect_timeout: TIMEOUT,
        response_timeout: TIMEOUT,
        ..Default::default()
    })
    .map_err(|e| unreachable(e.to_string()))?;
    let request = Request::builder()
        .method(Method::GET)
        .uri(&url)
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", creds.access_key),
        )
        .header(header::ACCEPT, "application/json")
        .body(Bytes::new())
        .map_err(|e| CliError::msg(format!("gateway URL {}: {e}", creds.url)))?;
    let response = match pai_core::Transport::send(&transport, request).await {
        Err(pai_core::TransportError::Connect(_)) => {
            return Err(unreachable("connection failed; check the URL".to_owned()))
        }
        Err(e) => return Err(unreachable(e.to_string())),
        Ok(r) => r,
    };
    let status = response.status();
    let bytes = match tokio::time::timeout(TIMEOUT, response.into_body().collect()).await {
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {} s",
                TIMEOUT.as_secs()
            )))
        }
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Ok(Ok(b)) => b.to_bytes(),
    };
    if status == StatusCode::UNAUTHORIZED {
        return Err(CliError::msg(format!(
            "the pai gateway at {} refused the access key (401): it is unknown, revoked or rotated out",
            creds.url
        )));
    }
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned());
        return Err(CliError::msg(format!(
            "the pai gateway at {} answered {status}: {message}",
            creds.url
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        CliError::msg(format!(
            "unexpected answer from {url}: is {} a pai gateway? ({e})",
            creds.url
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_and_urls_are_normalised() {
        let c = Credentials::new("http://gw:8080/", "sk-ant-api03-pak-abc123-AA").unwrap();
        assert_eq!(c.url, "http://gw:8080");
        assert_eq!(c.access_key, "pak_abc123");
        assert!(Credentials::new("gw:8080", "pak_abc").is_err());
        assert!(Credentials::new("http://gw", "sk-nope").is_err());
    }

    #[test]
    fn credentials_are_private_and_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cfg").join("pai");
        assert_eq!(load(&dir).unwrap(), None);
        let creds = Credentials::new("http://gw", "pak_abc").unwrap();
        let path = save(&dir, &creds).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(load(&dir).unwrap(), Some(creds.clone()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"accessKey\": \"pak_abc\""), "{text}");
        // Saving again replaces the file and keeps it private.
        save(&dir, &creds).unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
