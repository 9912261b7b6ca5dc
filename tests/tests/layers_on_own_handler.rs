//! `examples/layers_on_own_handler.rs` as it runs: pai's layers around an axum app's own
//! handler, on a real socket.

// Test code: a failed run is a failed test.
#![allow(clippy::panic)]

#[allow(dead_code)]
#[path = "../../examples/layers_on_own_handler.rs"]
mod example;

#[tokio::test]
async fn auth_cost_guard_budget_and_rate_limit_hold_around_an_own_handler() {
    if let Err(e) = example::run().await {
        panic!("{e}");
    }
}

#[tokio::test]
async fn the_retry_policy_tries_an_own_handler_again() {
    match example::retry_around_a_handler().await {
        Ok(tries) => assert_eq!(tries, 2),
        Err(e) => panic!("{e}"),
    }
}
