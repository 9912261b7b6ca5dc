//! Runnable examples live beside this crate: `cargo run -p pai-examples --example axum_mount`
//! (the gateway inside an axum app, with the app's own identity) and `--example custom_store`
//! (a `Store` and `BudgetLedger` of one's own, serving calls).
