//! Criterion: one call through the assembled [`pai_tower::Gateway`], in process with
//! `tower::ServiceExt::oneshot`, against the same call sent straight to the mock upstream with a
//! hyper-util client.
//!
//! Both sides pay one HTTP round trip to the mock on loopback; the gateway side also pays
//! everything the gateway does around it (call id, key hash and lookup, reading and parsing the
//! body, policy, the provider adapter, metering, the call record). The difference between the
//! two is the gateway's in-process cost per call, without the client-facing HTTP hop, which
//! `load.rs` measures. Runs in well under a minute: `cargo bench -p pai-benches --bench gateway`.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pai_tower::Gateway;
use tower::ServiceExt;

use common::{drain, BoxError, Call, Fixture};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), BoxError> {
    // One thread runs the mock, the gateway and the client: no hand-offs between threads, whose
    // cost in microseconds varies with where the scheduler happens to put each task, so the
    // difference between the two sides is the gateway's own work. `load` measures the
    // multi-threaded server.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let fx = rt.block_on(Fixture::start())?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);

    let mut criterion = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    let cases = [
        (
            "openai_chat",
            fx.direct_chat(false)?,
            fx.gateway_chat("", false)?,
        ),
        (
            "anthropic_messages_stream",
            fx.direct_messages(true)?,
            fx.gateway_messages("", true)?,
        ),
    ];
    for (name, direct, via_gateway) in &cases {
        // Both must succeed before anything is timed.
        rt.block_on(async {
            direct_call(client.clone(), direct.clone()).await?;
            gateway_call(fx.gateway.clone(), via_gateway.clone()).await
        })?;
        let mut group = criterion.benchmark_group(*name);
        group.bench_function("direct", |b| {
            b.to_async(&rt)
                .iter(|| async { must(direct_call(client.clone(), direct.clone()).await) })
        });
        group.bench_function("gateway", |b| {
            b.to_async(&rt).iter(|| async {
                must(gateway_call(fx.gateway.clone(), via_gateway.clone()).await)
            })
        });
        group.finish();
        // The mock keeps every request it saw; forget them between cases.
        fx.mock.clear();
    }
    criterion.final_summary();
    Ok(())
}

async fn direct_call(client: HttpClient, call: Call) -> Result<usize, BoxError> {
    drain(client.request(call.request()).await?).await
}

async fn gateway_call(gateway: Gateway, call: Call) -> Result<usize, BoxError> {
    drain(gateway.oneshot(call.request()).await?).await
}

/// A call that fails mid-benchmark would be timed as a fast error; stop instead.
fn must(result: Result<usize, BoxError>) -> usize {
    match result {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("a benchmarked call failed: {e}");
            std::process::exit(1);
        }
    }
}
