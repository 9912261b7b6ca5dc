//! Runnable examples live beside this crate: see `cargo run -p pai-examples --example axum_mount`.
