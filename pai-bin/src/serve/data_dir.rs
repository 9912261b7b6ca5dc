//! The data directory: the store file, the master secret and the admin token.
//!
//! ```text
//! DIR/            mode 0700
//!   master.key    32 random bytes, mode 0600; keys access-key hashing and secret encryption
//!   admin.token   pai_admin_<64 hex>, mode 0600, unless a token is given
//!   pai.db        the SQLite store
//! ```
//!
//! Files are created once and reused: losing `master.key` makes every access key and every
//! stored secret useless, so it is never overwritten.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use pai_core::access_key::{derive_subkey, hex};
use ring::rand::{SecureRandom, SystemRandom};

/// The purpose string of the access-key hashing subkey.
const HASH_PURPOSE: &str = "pai access-key hash v1";
/// The purpose string of the secret encryption subkey.
const ENCRYPTION_PURPOSE: &str = "pai secret encryption v1";
/// The prefix of generated admin tokens, so they are recognisable in a leak scan.
const ADMIN_TOKEN_PREFIX: &str = "pai_admin_";

/// Why the data directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The master secret file is not 32 bytes.
    #[error("{path} holds {len} bytes, not 32: restore it from a backup, or move it away to start afresh (every access key and stored secret will then be lost)")]
    BadMasterKey {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// The admin token file is empty.
    #[error("{0} is empty: delete it to have a new token generated, or pass --admin-token")]
    EmptyToken(PathBuf),
    /// The random source failed.
    #[error("the operating system's random source failed")]
    Random,
}

/// The keys derived from the master secret. `Debug` shows nothing.
pub struct Keys {
    /// Keys the HMAC of access keys.
    pub hash: [u8; 32],
    /// Keys the encryption of secrets at rest.
    pub encryption: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// Where the admin token came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// `--admin-token` or `PAI_ADMIN_TOKEN`.
    Given,
    /// Read from the token file.
    File(PathBuf),
    /// Generated now and written to the token file.
    Generated(PathBuf),
}

/// An opened data directory.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Create the directory (mode 0700) if it does not exist.
    pub fn open(root: &Path) -> Result<DataDir, DataDirError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(root).map_err(|source| DataDirError::Io {
            path: root.to_owned(),
            source,
        })?;
        // A directory made by hand may be open to others; say so rather than change it.
        #[cfg(unix)]
        if let Ok(meta) = fs::metadata(root) {
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %root.display(),
                    mode = format!("{mode:o}"),
                    "the data directory is open to other users; `chmod 700` it"
                );
            }
        }
        Ok(DataDir {
            root: root.to_owned(),
        })
    }

    /// The SQLite store file.
    pub fn store_path(&self) -> PathBuf {
        self.root.join("pai.db")
    }

    /// The admin token file.
    pub fn token_path(&self) -> PathBuf {
        self.root.join("admin.token")
    }

    /// The subkeys of the master secret, creating the secret on first start.
    pub fn keys(&self) -> Result<Keys, DataDirError> {
        let path = self.root.join("master.key");
        let master = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let bytes = random_bytes()?.to_vec();
                write_new(&path, &bytes)?;
                tracing::info!(path = %path.display(), "created a new master secret");
                bytes
            }
            Err(source) => return Err(DataDirError::Io { path, source }),
        };
        if master.len() != 32 {
            return Err(DataDirError::BadMasterKey {
                path,
                len: master.len(),
            });
        }
        Ok(Keys {
            hash: derive_subkey(&master, HASH_PURPOSE),
            encryption: derive_subkey(&master, ENCRYPTION_PURPOSE),
        })
    }

    /// The admin token: `given` if any, else the token file's, else a new one written there.
    pub fn admin_token(
        &self,
        given: Option<String>,
    ) -> Result<(String, TokenSource), DataDirError> {
        if let Some(token) = given {
            return Ok((token, TokenSource::Given));
        }
        let path = self.token_path();
        match fs::read_to_string(&path) {
            Ok(text) => {
                let token = text.trim();
                if token.is_empty() {
                    return Err(DataDirError::EmptyToken(path));
                }
                Ok((token.to_owned(), TokenSource::File(path)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let token = format!("{ADMIN_TOKEN_PREFIX}{}", hex(&random_bytes()?));
                write_new(&path, format!("{token}\n").as_bytes())?;
                Ok((token, TokenSource::Generated(path)))
            }
            Err(source) => Err(DataDirError::Io { path, source }),
        }
    }
}

fn random_bytes() -> Result<[u8; 32], DataDirError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| DataDirError::Random)?;
    Ok(bytes)
}

/// Write a file that must not exist yet, readable by its owner only, and make it durable.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), DataDirError> {
    let io_err = |source| DataDirError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io_err)?;
    file.write_all(bytes).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_secret_is_created_once_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(&tmp.path().join("data")).unwrap();
        let a = dir.keys().unwrap();
        let b = dir.keys().unwrap();
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.encryption, b.encryption);
        assert_ne!(a.hash, a.encryption);
        assert_eq!(format!("{a:?}"), "Keys(..)");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&tmp.path().join("data")), 0o700);
            assert_eq!(mode(&tmp.path().join("data/master.key")), 0o600);
        }
    }

    #[test]
    fn a_truncated_master_secret_is_refused_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        fs::write(tmp.path().join("master.key"), b"short").unwrap();
        let err = dir.keys().unwrap_err().to_string();
        assert!(err.contains("holds 5 bytes, not 32"), "{err}");
        assert_eq!(fs::read(tmp.path().join("master.key")).unwrap(), b"short");
    }

    #[test]
    fn the_admin_token_is_generated_once_unless_given() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let (token, source) = dir.admin_token(None).unwrap();
        assert!(token.starts_with("pai_admin_"));
        assert_eq!(token.len(), "pai_admin_".len() + 64);
        assert_eq!(source, TokenSource::Generated(dir.token_path()));
        let (again, source) = dir.admin_token(None).unwrap();
        assert_eq!(again, token);
        assert_eq!(source, TokenSource::File(dir.token_path()));
        let (given, source) = dir.admin_token(Some("mine".to_owned())).unwrap();
        assert_eq!((given.as_str(), source), ("mine", TokenSource::Given));
    }
}
