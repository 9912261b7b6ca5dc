//! Secrets given as a path rather than on the command line.
//!
//! A flag's value is in `/proc/PID/cmdline`, which every local user can read, for as long as the
//! process runs; a file (mode 0600) or stdin is not. `-` as the path means stdin.

use std::io::Read;
use std::path::Path;

/// The secret in `path` (`-`: stdin), surrounding whitespace and the final newline dropped;
/// the error names `flag` and says what is wrong.
pub fn read(path: &Path, flag: &str) -> Result<String, String> {
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text).map(|_| ()))
    };
    read.map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{flag} {}: the file is empty", path.display()));
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_secret_without_its_newline_and_refuses_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(read(&path, "--x-file").unwrap(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(read(&path, "--x-file").unwrap_err().contains("empty"));
        let missing = read(&dir.path().join("nope"), "--x-file").unwrap_err();
        assert!(missing.starts_with("--x-file "), "{missing}");
    }
}
