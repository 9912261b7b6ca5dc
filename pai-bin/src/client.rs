//! The CLI's side of the admin API: a small JSON client over http:// or https:// (the gateway's
//! own rustls transport).
//!
//! The server URL comes from `--server` or `PAI_ADMIN_URL`; the token from `--token`,
//! `PAI_ADMIN_TOKEN`, or the `admin.token` file `pai serve` writes into its data directory.
//! Failures say what to do: start the server, fix the token, or fix the input.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use pai_core::{Transport, TransportError};
use pai_providers::{HttpTransport, TransportOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::ErrorBody;

/// How long one admin call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the admin API is and how to authenticate to it.
#[derive(Clone, Debug, Args)]
pub struct ClientOpts {
    /// URL of the pai admin API.
    #[arg(
        long,
        value_name = "URL",
        env = "PAI_ADMIN_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub server: String,
    /// Admin token; by default read from DIR/admin.token. Visible to other local users in the
    /// process list: prefer PAI_ADMIN_TOKEN or the token file.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PAI_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Data directory of `pai serve`, where the admin token file is.
    #[arg(
        long,
        value_name = "DIR",
        env = "PAI_DATA_DIR",
        default_value = "./pai-data"
    )]
    pub data_dir: PathBuf,
}

/// Why an admin call failed. Every message is one the user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the URL.
    #[error("cannot reach the pai admin API at {url}: is `pai serve` running?")]
    Unreachable {
        /// The server URL.
        url: String,
    },
    /// The server did not answer in time.
    #[error("the pai admin API at {url} did not answer within {} s", TIMEOUT.as_secs())]
    Timeout {
        /// The server URL.
        url: String,
    },
    /// No token was given and the token file cannot be read.
    #[error("no admin token: pass --token or set PAI_ADMIN_TOKEN, or run where `pai serve` keeps its data (cannot read {path}: {reason})")]
    NoToken {
        /// The token file looked for.
        path: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
    /// The server refused the token.
    #[error("the pai admin API at {url} refused the admin token from {source_name}: check --token, PAI_ADMIN_TOKEN or the admin.token file of the server's data directory")]
    Unauthorized {
        /// The server URL.
        url: String,
        /// Where the token came from.
        source_name: String,
    },
    /// The server URL is unusable.
    #[error("--server {0}")]
    BadUrl(String),
    /// The server answered with an error.
    #[error("{message}")]
    Api {
        /// Its status.
        status: StatusCode,
        /// Its message.
        message: String,
        /// For invalid documents: one line per problem.
        problems: Vec<String>,
    },
    /// The answer was not what the admin API sends.
    #[error("unexpected answer from the pai admin API at {url}: {detail}")]
    Protocol {
        /// The server URL.
        url: String,
        /// What was wrong with it.
        detail: String,
    },
}

/// A client of one admin API.
#[derive(Clone)]
pub struct AdminClient {
    http: HttpTransport,
    base: String,
    token: String,
    token_source: String,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client for the server and token `opts` name.
    pub fn new(opts: &ClientOpts) -> Result<AdminClient, ClientError> {
        let base = base_url(&opts.server)?;
        let (token, token_source) = match &opts.token {
            Some(t) if !t.trim().is_empty() => {
                (t.trim().to_owned(), "--token/PAI_ADMIN_TOKEN".to_owned())
            }
            _ => {
                let path = opts.data_dir.join("admin.token");
                let text = std::fs::read_to_string(&path).map_err(|e| ClientError::NoToken {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                (text.trim().to_owned(), path.display().to_string())
            }
        };
        let http = HttpTransport::new(TransportOptions {
            connect_timeout: TIMEOUT,
            response_timeout: TIMEOUT,
            ..TransportOptions::default()
        })
        .map_err(|e| ClientError::BadUrl(format!("{base}: {e}")))?;
        Ok(AdminClient {
            http,
            base,
            token,
            token_source,
        })
    }

    /// `GET {path}`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(Method::GET, path, None).await
    }

    /// `DELETE {path}`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(Method::DELETE, path, None).await
    }

    /// `POST {path}` with a JSON body.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Protocol {
            url: self.base.clone(),
            detail: e.to_string(),
        })?;
        self.send(Method::POST, path, Some((body.into(), "application/json")))
            .await
    }

    /// `POST {path}` with YAML (or JSON) text.
    pub async fn post_yaml<T: DeserializeOwned>(
        &self,
        path: &str,
        text: String,
    ) -> Result<T, ClientError> {
        self.send(Method::POST, path, Some((text.into(), "application/yaml")))
            .await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(Bytes, &'static str)>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{}{path}", self.base, crate::api::PREFIX);
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "application/json");
        if let Some((_, content_type)) = &body {
            request = request.header(header::CONTENT_TYPE, *content_type);
        }
        let request = request
            .body(body.map(|(b, _)| b).unwrap_or_default())
            .map_err(|e| ClientError::BadUrl(format!("{url}: {e}")))?;
        let response = match self.http.send(request).await {
            Err(TransportError::Timeout(_)) => {
                return Err(ClientError::Timeout {
                    url: self.base.clone(),
                })
            }
            Err(TransportError::Connect(_)) => {
                return Err(ClientError::Unreachable {
                    url: self.base.clone(),
                })
            }
            Err(e) => {
                return Err(ClientError::Protocol {
                    url: self.base.clone(),
                    detail: e.to_string(),
                })
            }
            Ok(response) => response,
        };
        let status = response.status();
        let bytes = match tokio::time::timeout(TIMEOUT, response.into_body().collect()).await {
            Err(_) => {
                return Err(ClientError::Timeout {
                    url: self.base.clone(),
                })
            }
            Ok(Err(e)) => {
                return Err(ClientError::Protocol {
                    url: self.base.clone(),
                    detail: e.to_string(),
                })
            }
            Ok(Ok(body)) => body.to_bytes(),
        };
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                url: self.base.clone(),
                source_name: self.token_source.clone(),
            });
        }
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => ClientError::Api {
                    status,
                    message: body.error.message,
                    problems: body.error.problems,
                },
                Err(_) => ClientError::Protocol {
                    url: self.base.clone(),
                    detail: format!("{status} {}", String::from_utf8_lossy(&bytes).trim()),
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            url: self.base.clone(),
            detail: format!("{e} in {}", String::from_utf8_lossy(&bytes)),
        })
    }
}

/// `http(s)://host:port` without a trailing slash; a bare `host:port` means http.
fn base_url(server: &str) -> Result<String, ClientError> {
    let server = server.trim().trim_end_matches('/');
    let base = if server.starts_with("https://") || server.starts_with("http://") {
        server.to_owned()
    } else if server.contains("://") {
        return Err(ClientError::BadUrl(format!(
            "{server}: expected an http:// or https:// URL such as http://127.0.0.1:8081"
        )));
    } else {
        format!("http://{server}")
    };
    base.parse::<http::Uri>()
        .map_err(|e| ClientError::BadUrl(format!("{server}: {e}")))?;
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(server: &str, token: Option<&str>, data_dir: PathBuf) -> ClientOpts {
        ClientOpts {
            server: server.to_owned(),
            token: token.map(str::to_owned),
            data_dir,
        }
    }

    #[test]
    fn server_urls_are_normalised() {
        assert_eq!(
            base_url("http://127.0.0.1:8081/").unwrap(),
            "http://127.0.0.1:8081"
        );
        assert_eq!(base_url("localhost:9000").unwrap(), "http://localhost:9000");
        assert_eq!(
            base_url("https://pai.example/").unwrap(),
            "https://pai.example"
        );
        assert!(base_url("ftp://x").is_err());
    }

    #[test]
    fn the_token_file_is_the_fallback() {
        let tmp = tempfile::tempdir().unwrap();
        let err = AdminClient::new(&opts("http://127.0.0.1:1", None, tmp.path().into()))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("no admin token: pass --token"), "{err}");
        std::fs::write(tmp.path().join("admin.token"), "pai_admin_abc\n").unwrap();
        let client =
            AdminClient::new(&opts("http://127.0.0.1:1", None, tmp.path().into())).unwrap();
        assert_eq!(client.token, "pai_admin_abc");
        assert!(!format!("{client:?}").contains("pai_admin_abc"));
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_named() {
        // Bind then drop, so the port is very likely closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = AdminClient::new(&opts(&url, Some("t"), PathBuf::new())).unwrap();
        let err = client
            .get::<serde_json::Value>("/secrets")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("cannot reach the pai admin API at {url}: is `pai serve` running?")
        );
    }
}
