//! Benchmarks: see `gateway.rs` (criterion) and `load.rs` (loopback load).
