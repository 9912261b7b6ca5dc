//! Keeps a [`SharedPrices`] in step with a price file, without a restart.
//!
//! The watcher reads the file when it starts, then looks at the file's modification time and
//! size once a second (a `stat`, nothing more) and reads it again when either changes, and in
//! any case every `interval`, which catches an edit that kept both. A file that cannot be read
//! or parsed changes nothing: the last good table stays in force, the reason is logged with
//! `tracing::error!` once per distinct reason (not once a second), and the counter
//! `pai_price_file_errors_total` goes up by one per failed read.
//!
//! The counter goes to the [`Metrics`] the watcher is handed: give it the gateway's
//! ([`crate::Gateway::metrics`], or the one handed to [`crate::GatewayBuilder::metrics`]) and
//! it is rendered with the gateway's series at `/metrics`.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use pai_core::price::SharedPrices;
//! use pai_tower::metrics::Metrics;
//! use pai_tower::PriceFileWatcher;
//!
//! # async fn run() {
//! let prices = SharedPrices::default();
//! let metrics = Metrics::new();
//! let watcher = PriceFileWatcher::spawn(
//!     "/etc/pai/prices.yaml",
//!     prices.clone(),
//!     PriceFileWatcher::DEFAULT_INTERVAL,
//!     metrics.clone(),
//! );
//! // Hand `prices` (a `PriceTable`) and `metrics` to the gateway's builder; abort `watcher` to
//! // stop watching.
//! # watcher.abort();
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use pai_core::price::{PriceBook, PriceFileError, SharedPrices};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// The name of the counter of failed reads.
const ERRORS_TOTAL: &str = "pai_price_file_errors_total";

/// How often the file's modification time and size are looked at.
const POLL: Duration = Duration::from_secs(1);

/// Watches a price file and swaps the prices it holds into a [`SharedPrices`]. See the module
/// docs.
#[derive(Debug)]
pub struct PriceFileWatcher;

impl PriceFileWatcher {
    /// How often the file is read even when it looks unchanged.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

    /// Start watching `path` on the current tokio runtime, putting every good version of it
    /// in force in `shared`, and counting failed reads in `metrics`. The task runs until the
    /// handle is aborted.
    ///
    /// The first read happens on the task, not before this returns; a caller that must refuse
    /// to start on a broken file calls [`PriceFileWatcher::read`] first.
    pub fn spawn(
        path: impl Into<PathBuf>,
        shared: SharedPrices,
        interval: Duration,
        metrics: Metrics,
    ) -> JoinHandle<()> {
        let path = path.into();
        let state = State {
            last_error: None,
            metrics,
        };
        tokio::spawn(watch(path, shared, interval, state))
    }

    /// Read and check the price file once: the built-in prices with its overrides on top.
    pub async fn read(path: &Path) -> Result<PriceBook, PriceFileError> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| PriceFileError {
                problems: vec![format!(
                    "cannot read the price file {}: {e}",
                    path.display()
                )],
            })?;
        PriceBook::from_yaml(&text)
    }
}

/// What is cheap to learn about the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

async fn stamp(path: &Path) -> Option<Stamp> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

async fn watch(path: PathBuf, shared: SharedPrices, interval: Duration, mut state: State) {
    // Tests use intervals shorter than a second; never look less often than the interval.
    let poll = POLL.min(interval).max(Duration::from_millis(1));
    let mut seen = stamp(&path).await;
    state.reload(&path, &shared).await;
    let mut last_read = Instant::now();
    loop {
        tokio::time::sleep(poll).await;
        // Stat before reading: a change that lands while we read shows up on the next look.
        let now = stamp(&path).await;
        if now != seen || last_read.elapsed() >= interval {
            seen = now;
            state.reload(&path, &shared).await;
            last_read = Instant::now();
        }
    }
}

/// What the watcher remembers between reads.
#[derive(Default)]
struct State {
    /// The reason the last read failed, if it did; a repeat of it is not logged again.
    last_error: Option<String>,
    /// Where failed reads are counted.
    metrics: Metrics,
}

impl State {
    async fn reload(&mut self, path: &Path, shared: &SharedPrices) {
        match PriceFileWatcher::read(path).await {
            Ok(book) => {
                let overrides = book.override_count();
                let changed = *shared.current() != book;
                shared.replace(book);
                if changed || self.last_error.is_some() {
                    tracing::info!(path = %path.display(), overrides, "price file loaded");
                }
                self.last_error = None;
            }
            Err(e) => {
                self.metrics.add(ERRORS_TOTAL, &[], 1.0);
                let why = e.to_string();
                if self.last_error.as_deref() != Some(why.as_str()) {
                    tracing::error!(
                        path = %path.display(),
                        error = %why,
                        "price file rejected; the last good prices stay in force"
                    );
                    self.last_error = Some(why);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pai_core::PriceTable;

    /// A fresh file under the system's temp dir, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> TempFile {
            let dir = std::env::temp_dir().join(format!(
                "pai-price-watch-{}-{name}-{}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempFile(dir.join("prices.yaml"))
        }

        fn write(&self, text: &str) {
            // Write and rename, as careful editors and config managers do.
            let tmp = self.0.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &self.0).unwrap();
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    fn llama(input: f64) -> String {
        format!(
            "gateway:\n  modelPrices:\n    my-vllm-llama-70b: {{input: {input}, output: 1.00}}\n"
        )
    }

    fn input_of(prices: &SharedPrices) -> Option<u64> {
        prices.price("my-vllm-llama-70b").map(|p| p.input)
    }

    /// Wait up to five seconds for the prices to show `want`.
    async fn until(prices: &SharedPrices, want: Option<u64>) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while input_of(prices) != want {
            assert!(
                Instant::now() < deadline,
                "prices still show {:?}, want {want:?}",
                input_of(prices)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_changed_file_is_picked_up_without_a_restart() {
        let file = TempFile::new("change");
        file.write(&llama(0.50));
        let prices = SharedPrices::default();
        // A long interval: only the change of modification time or size can trigger the read.
        let watcher = PriceFileWatcher::spawn(
            &file.0,
            prices.clone(),
            Duration::from_secs(3600),
            Metrics::new(),
        );
        until(&prices, Some(500_000)).await;
        // Built-ins stay underneath the overrides.
        assert!(prices.price("gpt-4o").is_some());

        file.write(&llama(0.75));
        until(&prices, Some(750_000)).await;
        watcher.abort();
    }

    #[tokio::test]
    async fn a_broken_file_keeps_the_last_good_table_until_it_is_fixed() {
        let file = TempFile::new("broken");
        file.write(&llama(0.50));
        let prices = SharedPrices::default();
        let metrics = Metrics::new();
        let watcher = PriceFileWatcher::spawn(
            &file.0,
            prices.clone(),
            Duration::from_millis(50),
            metrics.clone(),
        );
        until(&prices, Some(500_000)).await;
        assert!(!metrics.render().contains(ERRORS_TOTAL));

        // Half-written, then misspelt, then gone: the good table stays through all of it.
        for broken in [
            "gateway:\n  modelPrices:\n    my-vllm-llama-70b: {input: 9",
            "gateway: {modelPrices: {my-vllm-llama-70b: {inptu: 9, output: 1}}}",
        ] {
            file.write(broken);
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(input_of(&prices), Some(500_000));
        }
        let _ = std::fs::remove_file(&file.0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(input_of(&prices), Some(500_000));
        // Each failed read is counted in the metrics the watcher was handed.
        assert!(
            metrics.render().contains(&format!("{ERRORS_TOTAL} ")),
            "{}",
            metrics.render()
        );

        file.write(&llama(2.00));
        until(&prices, Some(2_000_000)).await;
        watcher.abort();
    }

    #[tokio::test]
    async fn a_missing_file_at_start_leaves_the_prices_as_they_were() {
        let file = TempFile::new("missing");
        let prices = SharedPrices::default();
        let watcher = PriceFileWatcher::spawn(
            &file.0,
            prices.clone(),
            Duration::from_millis(50),
            Metrics::new(),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(input_of(&prices), None);
        assert!(prices.price("gpt-4o").is_some());
        assert!(PriceFileWatcher::read(&file.0).await.is_err());

        file.write(&llama(0.50));
        until(&prices, Some(500_000)).await;
        watcher.abort();
    }

    #[tokio::test]
    async fn the_same_error_is_remembered_not_repeated() {
        let file = TempFile::new("repeat");
        file.write("gateway: {modelPrices: {m: {input: -1, output: 1}}}");
        let prices = SharedPrices::new(PriceBook::empty());
        let mut state = State::default();
        state.reload(&file.0, &prices).await;
        let first = state.last_error.clone();
        assert!(first.as_deref().is_some_and(|e| e.contains("non-negative")));
        state.reload(&file.0, &prices).await;
        assert_eq!(state.last_error, first);
        file.write(&llama(0.5));
        state.reload(&file.0, &prices).await;
        assert_eq!(state.last_error, None);
        assert_eq!(input_of(&prices), Some(500_000));
    }
}
