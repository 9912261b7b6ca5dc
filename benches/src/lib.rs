//! Benchmarks: see `gateway.rs` (criterion, in process), `load.rs` (loopback load: added latency
//! and CPU per request) and `README.md` (how to run them and what the numbers mean).
