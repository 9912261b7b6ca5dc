//! Cross-crate integration tests; see the files in this folder.
