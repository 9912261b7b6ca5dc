//! The built-in prompt-guard's cost per request: the time `Guard::inspect` takes on the text
//! of a 2 KB chat request (a system prompt, a few turns and a tool result) and of a 200 KB
//! one (a long document in a tool result), reported as p50 and p99 over many runs.
//!
//! This is what a bound `prompt-guard` adds to a call (the layer's own bookkeeping around it is
//! a few allocations). The targets: 2 KB at most 1 ms p50 and 5 ms p99; 200 KB at most 20 ms.
//! Run: `cargo bench -p pai-benches --bench guard`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use pai_core::resource::{GuardBinding, GuardBindingSpec, Metadata};
use pai_core::{Guard, GuardInput, TextSource, Verdict};

const PROSE: &str = "The quarterly report shows revenue grew by four percent while costs held \
steady. Please summarise the main drivers, point out any risks the finance team mentioned, and \
suggest two questions for the board meeting next week. ";
const CODE: &str = "fn parse(line: &str) -> Option<(String, u32)> { let (name, n) = \
line.split_once(',')?; Some((name.trim().to_owned(), n.trim().parse().ok()?)) }\n";

/// About `bytes` of ordinary text: prose and code, alternating.
fn text(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + PROSE.len());
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(if i % 3 == 2 { CODE } else { PROSE });
        i += 1;
    }
    out.truncate(bytes);
    out
}

fn request(bytes: usize) -> GuardInput {
    let system = text(bytes / 8);
    let turn = text(bytes / 8);
    let tool = text(bytes - 4 * (bytes / 8));
    GuardInput {
        texts: vec![
            (TextSource::System, system),
            (TextSource::User, turn.clone()),
            (TextSource::Assistant, turn.clone()),
            (TextSource::ToolResult, tool),
            (TextSource::User, turn),
        ],
        model: "gpt-4o-mini".to_owned(),
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn measure(
    guard: &dyn Guard,
    rt: &tokio::runtime::Runtime,
    label: &str,
    bytes: usize,
    runs: usize,
) -> Result<(), String> {
    let input = request(bytes);
    let size: usize = input.texts.iter().map(|(_, t)| t.len()).sum();
    // Warm up: the weights' pages, the caches.
    for _ in 0..runs / 10 + 1 {
        rt.block_on(guard.inspect(&input));
    }
    let mut took = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let verdict = rt.block_on(guard.inspect(&input));
        took.push(started.elapsed());
        if verdict != Verdict::Allow {
            return Err(format!("{label}: ordinary text was blocked: {verdict:?}"));
        }
    }
    took.sort();
    println!(
        "prompt-guard {label:>6} ({size:>6} bytes, {runs} runs): p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
        percentile(&took, 0.5).as_secs_f64() * 1e3,
        percentile(&took, 0.99).as_secs_f64() * 1e3,
        percentile(&took, 1.0).as_secs_f64() * 1e3,
    );
    Ok(())
}

fn run() -> Result<(), String> {
    let binding = GuardBinding {
        api_version: pai_core::resource::API_VERSION.to_owned(),
        metadata: Metadata {
            name: "bench".to_owned(),
            ..Metadata::default()
        },
        spec: GuardBindingSpec {
            guard: pai_guard::KIND.to_owned(),
            ..GuardBindingSpec::default()
        },
    };
    let guard = pai_guard::kind(&binding)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    measure(guard.as_ref(), &rt, "2 KB", 2 << 10, 2000)?;
    measure(guard.as_ref(), &rt, "20 KB", 20 << 10, 500)?;
    measure(guard.as_ref(), &rt, "200 KB", 200 << 10, 100)?;
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guard bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
