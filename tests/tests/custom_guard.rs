//! `examples/custom_guard.rs` as it runs: a guard kind registered with the gateway blocks
//! injections in both dialects before they reach the upstream.

// Test code: a failed run is a failed test.
#![allow(clippy::panic)]

#[allow(dead_code)]
#[path = "../../examples/custom_guard.rs"]
mod example;

#[tokio::test]
async fn the_custom_guard_example_blocks_injections_in_both_dialects() {
    if let Err(e) = example::run().await {
        panic!("{e}");
    }
}
