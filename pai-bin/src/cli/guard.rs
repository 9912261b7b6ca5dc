//! `pai guard scan` and `pai guard eval`: the built-in guard on the command line, with no
//! server running, so operators can try it on their own traffic and measure it.
//!
//! `scan` reads JSONL `{"text": "..."}` on stdin and writes one line `{"verdict":
//! "block"|"allow", "score": 0.97, "binding": "..."}` per input, in order. `eval FILE.jsonl`
//! reads rows that also carry `"label": "injection"|"benign"` and prints recall, false-positive
//! rate, precision and scan latency percentiles. Both use the guard as a GuardBinding
//! configures it (`--binding FILE`), else the built-in guard at its own threshold.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use pai_core::resource::GuardBinding;
use pai_core::Resource;
use pai_guard::Detector;

use super::CliError;

/// The longest input line read: far above any prompt, and a bound on memory.
const MAX_LINE_BYTES: usize = 32 << 20;

/// `pai guard …`
#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Scan JSONL `{"text": ...}` lines from stdin; one verdict line per input on stdout.
    Scan(GuardArgs),
    /// Measure the guard on labelled JSONL rows (`"label": "injection"|"benign"`).
    Eval {
        /// The labelled rows.
        file: PathBuf,
        #[command(flatten)]
        guard: GuardArgs,
    },
}

/// Which guard.
#[derive(Debug, Args)]
pub struct GuardArgs {
    /// A GuardBinding (YAML or JSON) to use instead of the built-in guard's defaults.
    #[arg(long, value_name = "FILE")]
    binding: Option<PathBuf>,
}

/// The guard a command runs: its name, detector and threshold.
struct Configured {
    name: String,
    detector: Detector,
    threshold: f32,
}

impl Configured {
    fn load(args: &GuardArgs) -> Result<Configured, CliError> {
        let detector = Detector::builtin().map_err(CliError::msg)?;
        let Some(path) = &args.binding else {
            return Ok(Configured {
                name: pai_guard::KIND.to_owned(),
                threshold: detector.threshold(),
                detector,
            });
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::msg(format!("{}: {e}", path.display())))?;
        let binding: GuardBinding = match pai_core::resource::load_one(&text) {
            Ok(Resource::GuardBinding(b)) => b,
            Ok(other) => {
                return Err(CliError::msg(format!(
                    "{}: holds {}, not a GuardBinding",
                    path.display(),
                    other.describe()
                )))
            }
            Err(e) => return Err(CliError::Invalid(e.problems)),
        };
        if binding.spec.guard != pai_guard::KIND {
            return Err(CliError::msg(format!(
                "{}: GuardBinding {:?} has guard {:?}; this command runs guard: {}",
                path.display(),
                binding.metadata.name,
                binding.spec.guard,
                pai_guard::KIND
            )));
        }
        Ok(Configured {
            name: binding.metadata.name.clone(),
            threshold: binding
                .spec
                .threshold
                .map_or(detector.threshold(), |t| t as f32),
            detector,
        })
    }
}

/// Run `pai guard …`.
pub async fn run(command: GuardCommand) -> Result<(), CliError> {
    // CPU work on one thread with nothing else to do: off the runtime all the same.
    tokio::task::spawn_blocking(move || match command {
        GuardCommand::Scan(args) => scan(&args),
        GuardCommand::Eval { file, guard } => eval(&file, &guard),
    })
    .await
    .map_err(|e| CliError::msg(e.to_string()))?
}

/// Each line of `input`, at most [`MAX_LINE_BYTES`], with its number; blank lines skipped.
fn lines(
    mut input: impl BufRead,
) -> impl Iterator<Item = Result<(usize, serde_json::Value), CliError>> {
    let mut n = 0;
    let mut buf = Vec::new();
    std::iter::from_fn(move || loop {
        buf.clear();
        n += 1;
        let read =
            std::io::Read::take(&mut input, MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf);
        match read {
            Ok(0) => return None,
            Ok(_) if buf.len() > MAX_LINE_BYTES => {
                return Some(Err(CliError::msg(format!(
                    "line {n} is longer than {} MiB",
                    MAX_LINE_BYTES >> 20
                ))))
            }
            Ok(_) if buf.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(_) => {
                return Some(
                    serde_json::from_slice(&buf)
                        .map(|v| (n, v))
                        .map_err(|e| CliError::msg(format!("line {n}: not JSON: {e}"))),
                )
            }
            Err(e) => return Some(Err(CliError::msg(format!("line {n}: {e}")))),
        }
    })
}

fn text_of(n: usize, row: &serde_json::Value) -> Result<&str, CliError> {
    row.get("text")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| CliError::msg(format!("line {n}: no \"text\" string")))
}

fn scan(args: &GuardArgs) -> Result<(), CliError> {
    let guard = Configured::load(args)?;
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in lines(stdin.lock()) {
        let (n, row) = line?;
        let found = guard.detector.scan(text_of(n, &row)?);
        let verdict = if found.score >= guard.threshold {
            "block"
        } else {
            "allow"
        };
        let answer = serde_json::json!({
            "verdict": verdict,
            "score": (f64::from(found.score) * 1e4).round() / 1e4,
            "binding": guard.name,
        });
        writeln!(out, "{answer}").map_err(|e| CliError::msg(e.to_string()))?;
    }
    out.flush().map_err(|e| CliError::msg(e.to_string()))
}

fn eval(file: &PathBuf, args: &GuardArgs) -> Result<(), CliError> {
    let guard = Configured::load(args)?;
    let input =
        std::fs::File::open(file).map_err(|e| CliError::msg(format!("{}: {e}", file.display())))?;
    let (mut tp, mut fn_, mut fp, mut tn) = (0u64, 0u64, 0u64, 0u64);
    let mut took = Vec::new();
    for line in lines(std::io::BufReader::new(input)) {
        let (n, row) = line?;
        let text = text_of(n, &row)?;
        let injection = match row.get("label").and_then(serde_json::Value::as_str) {
            Some("injection") => true,
            Some("benign") => false,
            other => {
                return Err(CliError::msg(format!(
                    "line {n}: label is {other:?}; it is \"injection\" or \"benign\""
                )))
            }
        };
        let started = Instant::now();
        let blocked = guard.detector.scan(text).score >= guard.threshold;
        took.push(started.elapsed().as_secs_f64() * 1e3);
        match (injection, blocked) {
            (true, true) => tp += 1,
            (true, false) => fn_ += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
        }
    }
    if took.is_empty() {
        return Err(CliError::msg(format!("{}: no rows", file.display())));
    }
    took.sort_by(f64::total_cmp);
    let pct = |num: u64, den: u64| {
        if den == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}% ({num}/{den})", 100.0 * num as f64 / den as f64)
        }
    };
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
    println!(
        "rows {} ({} injection, {} benign); binding {}, threshold {:.3}",
        took.len(),
        tp + fn_,
        fp + tn,
        guard.name,
        guard.threshold
    );
    println!("recall {}", pct(tp, tp + fn_));
    println!("false-positive rate {}", pct(fp, fp + tn));
    println!("precision {}", pct(tp, tp + fp));
    println!(
        "latency p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_bounded_and_blank_ones_skipped() {
        let input = b"{\"text\": \"a\"}\n\n  \n{\"text\": \"b\"}\nnot json\n";
        let got: Vec<Result<(usize, serde_json::Value), CliError>> = lines(&input[..]).collect();
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[0], Ok((1, v)) if v["text"] == "a"));
        assert!(matches!(&got[1], Ok((4, v)) if v["text"] == "b"));
        assert!(
            matches!(&got[2], Err(e) if e.to_string().starts_with("line 5: not JSON")),
            "{:?}",
            got[2].as_ref().err()
        );
    }
}
