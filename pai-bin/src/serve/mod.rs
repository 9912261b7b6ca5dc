//! `pai serve`: the gateway and the admin API, each on its own listener.
//!
//! Start-up order: logs, data directory (master secret, admin token), store, resource files,
//! gateway, then both sockets; the `listening on` lines are printed only once the sockets are
//! bound, so whoever started the process can read the real ports from stderr (port 0 works).
//! SIGTERM or SIGINT stops accepting and lets in-flight requests finish, up to a deadline.

pub mod config;
mod data_dir;
mod front;
mod listener;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use pai_core::net::Cidr;
use pai_core::{AccessKeyHasher, BudgetLedger, Clock, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::admin::{self, AdminState};
use data_dir::{DataDir, TokenSource};

/// Options of `pai serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A YAML file of these settings, keyed by the flags' long names (`admin-listen: ADDR`;
    /// a list for a repeatable flag). Flags and environment variables given beat it.
    #[arg(long, value_name = "FILE", env = "PAI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the gateway (the SDKs' base URL is http://ADDR/ext).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Address of the admin API.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub admin_listen: String,
    /// Directory of the store, the master secret and the admin token.
    #[arg(
        long,
        value_name = "DIR",
        env = "PAI_DATA_DIR",
        default_value = "./pai-data"
    )]
    pub data_dir: PathBuf,
    /// Where resources, secrets and call records live: a `postgres://user@host:port/db` URL
    /// that every replica shares [default: the SQLite file DIR/pai.db, for one process].
    /// Replicas must also share DIR/master.key.
    #[arg(
        long = "store",
        value_name = "URL",
        env = "PAI_STORE_URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// Where daily budgets are counted: `redis://host:port` or `postgres://…`, shared by
    /// every replica [default: the store's database].
    #[arg(
        long = "ledger",
        value_name = "URL",
        env = "PAI_LEDGER_URL",
        hide_env_values = true
    )]
    pub ledger: Option<String>,
    /// The namespace of the ledger's keys in Redis: replicas that share budgets use the same,
    /// gateways that must not share them use different ones.
    #[arg(
        long,
        value_name = "NAME",
        env = "PAI_LEDGER_PREFIX",
        default_value = "pai"
    )]
    pub ledger_prefix: String,
    /// Seconds an unsettled budget reservation is held before it is charged in full (the
    /// replica holding it died).
    #[arg(long, value_name = "SECONDS", default_value_t = 900)]
    pub reservation_ttl: u64,
    /// Resource files (YAML or JSON) applied at start; repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The admin API token; by default read from (or generated into) DIR/admin.token.
    /// Visible to other local users in the process list: prefer --admin-token-file or
    /// PAI_ADMIN_TOKEN.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PAI_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// A file holding the admin API token (`-`: stdin); kept out of the process list.
    #[arg(long, value_name = "PATH", conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,
    /// A proxy whose X-Forwarded-For is trusted for the client address; repeatable.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<Cidr>,
    /// Largest request body the gateway accepts, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Log filter, e.g. `info` or `pai_tower=debug,info`; overrides RUST_LOG.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// How long in-flight requests may take to finish after SIGTERM or SIGINT.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
    /// A price file (`gateway: modelPrices: …`) merged over the built-in prices; re-read every
    /// 60 s and whenever it changes.
    #[arg(long = "prices", value_name = "FILE", env = "PAI_PRICES")]
    pub prices: Option<PathBuf>,
    /// Days the audit chain keeps its entries; older ones are removed hourly, up to a
    /// checkpoint, and the removed range sealed so the chain still verifies [default: keep
    /// everything]. Nothing is removed from a chain that does not verify.
    #[arg(long, value_name = "DAYS", env = "PAI_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u32>,
    /// Tries per upstream candidate, the first included.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_attempts: u32,
    /// Seconds an upstream may take to send its response head (and a stream its first event).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub first_byte_timeout: u64,
    /// Longest silence, in seconds, between two events of an upstream stream.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub idle_timeout: u64,
    /// Client connections the gateway serves at once [default: from the file-descriptor
    /// limit, about half of what is left after a reserve]. Past it, connections that have not
    /// yet sent a request are closed to make room, else new ones wait.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Seconds a client has to send a complete request head, from connecting or after its
    /// previous response (both listeners); connections that stay silent longer are closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub header_timeout: u64,
    /// Longest event (and line) of an upstream stream, in bytes; a longer one is cut with an
    /// error.
    #[arg(long, value_name = "BYTES", default_value_t = pai_providers::sse::DEFAULT_MAX_EVENT_BYTES)]
    pub max_event_bytes: usize,
    /// Call ModelBindings that name provider type TYPE directly at URL instead of that type's
    /// public endpoint (a mock upstream in tests, an egress proxy); repeatable.
    #[arg(long = "provider-endpoint", value_name = "TYPE=URL", value_parser = provider_endpoint)]
    pub provider_endpoints: Vec<(pai_core::ProviderKind, String)>,
    /// Export OpenTelemetry traces of every call over OTLP/HTTP to this collector
    /// (`http://collector:4318`; `/v1/traces` is added) [default: off, or
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT when set].
    /// `service.name` is `pai` unless OTEL_SERVICE_NAME says otherwise.
    #[arg(long, value_name = "URL", env = "PAI_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// `gemini=http://127.0.0.1:9000` into its type and URL.
fn provider_endpoint(arg: &str) -> Result<(pai_core::ProviderKind, String), String> {
    use pai_core::ProviderKind;
    let (kind, url) = arg.split_once('=').ok_or_else(|| {
        format!("expected TYPE=URL, e.g. gemini=http://127.0.0.1:9000 (got {arg:?})")
    })?;
    let kind: ProviderKind = kind.parse()?;
    if !ProviderKind::DIRECT.contains(&kind) {
        let direct: Vec<&str> = ProviderKind::DIRECT.iter().map(|k| k.as_str()).collect();
        return Err(format!(
            "{kind} has no public endpoint to replace; ModelBindings call {} directly",
            direct.join(", ")
        ));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    }
    Ok((kind, url.to_owned()))
}

/// Why `pai serve` could not start. The message is complete and names the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(String);

impl StartError {
    fn new(message: impl Into<String>) -> StartError {
        StartError(message.into())
    }
}

/// Run the server until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs) -> Result<(), StartError> {
    init_logging(args.log_level.as_deref())?;
    if let Some(path) = &args.config {
        tracing::info!(config = %path.display(), "settings read from the config file");
    }

    let dir = DataDir::open(&args.data_dir).map_err(|e| StartError::new(e.to_string()))?;
    let keys = dir.keys().map_err(|e| StartError::new(e.to_string()))?;
    if args
        .admin_token
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        return Err(StartError::new("--admin-token (PAI_ADMIN_TOKEN) is empty"));
    }
    let given = match &args.admin_token_file {
        Some(path) => {
            Some(crate::secret_file::read(path, "--admin-token-file").map_err(StartError::new)?)
        }
        None => args.admin_token.clone(),
    };
    let (admin_token, source) = dir
        .admin_token(given)
        .map_err(|e| StartError::new(e.to_string()))?;
    if let TokenSource::Generated(path) = &source {
        eprintln!(
            "pai: generated an admin token and wrote it to {} (mode 0600); the CLI reads it from there",
            path.display()
        );
    }

    // One clock for the whole server: budget days, key expiry and call times agree.
    let clock: Arc<dyn pai_core::Clock> = Arc::new(pai_core::SystemClock);
    let (store, ledger) = open_store(&args, &dir, keys.encryption, clock.clone()).await?;
    // The binary calls pai's own adapters only: a ModelProvider naming another is refused.
    let adapters = pai_providers::Adapters::builtin();
    // The audit chain's key, derived like the stores derive it; changes from -f files are
    // recorded as made by `pai serve -f`.
    let audit_key = pai_core::AuditKey::derive(&keys.encryption);
    let audited = admin::audit::AuditedWrites::new(store.clone(), audit_key.clone());
    if let Some(days) = args.audit_retention_days {
        tokio::spawn(audit_retention(store.clone(), audit_key.clone(), days));
    }
    let actor = admin::audit::Actor {
        name: "pai serve -f".into(),
        client_ip: None,
    };
    admin::audit::as_actor(actor, apply_files(&audited, &adapters, &args.files)).await?;

    let prices = pai_core::price::SharedPrices::default();
    // The gateway's series and the price watcher's error counter, rendered at /metrics.
    let metrics = pai_tower::metrics::Metrics::new();
    if let Some(path) = &args.prices {
        // Refuse to start on a broken price file; once running, a broken edit keeps the last
        // good table.
        let book = pai_tower::PriceFileWatcher::read(path)
            .await
            .map_err(|e| StartError::new(format!("{}: {e}", path.display())))?;
        prices.replace(book);
        pai_tower::PriceFileWatcher::spawn(
            path.clone(),
            prices.clone(),
            pai_tower::PriceFileWatcher::DEFAULT_INTERVAL,
            metrics.clone(),
        );
    }
    // The BPE tables are not loaded here: they hold tens of megabytes, and only a call whose
    // budget decision the byte bounds cannot settle needs them (loaded then, once, on the
    // blocking pool; see `pai_providers::estimate::input_bounds`).

    let hasher = AccessKeyHasher::new(&keys.hash);
    let mut builder = pai_tower::Gateway::builder()
        .store(store.clone())
        .adapters(adapters)
        .key_hasher(hasher.clone())
        .trusted_proxies(args.trusted_proxies.clone())
        .ledger(ledger.clone())
        .prices(Arc::new(prices))
        .metrics(metrics.clone())
        .clock(clock.clone())
        .reliability(pai_tower::Reliability {
            max_attempts: args.max_attempts.max(1),
            first_byte_timeout: Duration::from_secs(args.first_byte_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout),
            max_event_bytes: args.max_event_bytes,
            ..pai_tower::Reliability::default()
        });
    if let Some(limit) = args.max_body_bytes {
        builder = builder.max_body_bytes(limit);
    }
    // The guard kinds apply accepts (admin::apply::GUARD_KINDS). The weights load on the first
    // scan, so a gateway with no guard bound pays nothing for them.
    builder = builder.guard_kind(pai_guard::KIND, Arc::new(pai_guard::kind));
    for (kind, url) in &args.provider_endpoints {
        tracing::info!(provider = %kind, endpoint = %url, "direct ModelBindings of this type call this endpoint");
        builder = builder.provider_endpoint(*kind, url);
    }
    let otlp = args
        .otlp_endpoint
        .clone()
        .or_else(pai_tower::Tracer::endpoint_from_env);
    if let Some(endpoint) = otlp {
        let tracer = pai_tower::Tracer::otlp(&endpoint)
            .service_name_from_env()
            .metrics(metrics.clone())
            .start()
            .map_err(|e| StartError::new(format!("--otlp-endpoint: {e}")))?;
        tracing::info!(
            endpoint = tracer.endpoint(),
            "exporting traces over OTLP/HTTP"
        );
        builder = builder.tracer(tracer);
    }
    let gateway = builder
        .build()
        .await
        .map_err(|e| StartError::new(format!("cannot start the gateway: {e}")))?;
    // /metrics sits beside the admin API, outside its token: Prometheus scrapers carry none, and
    // the series hold no key material (workloads are access-key names).
    // Admin writes answer once this gateway acts on them (read your writes).
    let admin_state = AdminState::new(store, ledger.clone(), hasher, &admin_token)
        .clock(clock)
        .follow_gateway(gateway.clone())
        .audit_key(audit_key);
    // /readyz (store, ledger, snapshot) sits there too, for probes that carry no token.
    let public = admin::public_router(admin_state.clone(), gateway.metrics().clone());
    let admin = admin::router(admin_state).merge(public);
    drop(admin_token);
    let recorder = gateway.clone();
    let tracer = gateway.tracer().cloned();

    let gateway_listener = bind(&args.listen, "--listen").await?;
    let admin_listener = bind(&args.admin_listen, "--admin-listen").await?;
    announce("pai gateway listening on", &gateway_listener)?;
    announce("pai admin API listening on", &admin_listener)?;

    let header_timeout = Duration::from_secs(args.header_timeout.max(1));
    let gateway_limits = listener::ConnectionLimits {
        max_connections: args
            .max_connections
            .unwrap_or_else(listener::default_max_connections)
            .max(1),
        header_timeout,
    };
    tracing::info!(
        max_connections = gateway_limits.max_connections,
        header_timeout_secs = header_timeout.as_secs(),
        "gateway connection limits"
    );
    let admin_limits = listener::ConnectionLimits {
        max_connections: listener::ADMIN_MAX_CONNECTIONS,
        header_timeout,
    };

    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    let (stop, stopped) = watch::channel(false);
    let gateway_task = tokio::spawn(listener::run(
        "gateway",
        gateway_listener,
        gateway,
        gateway_limits,
        stopped.clone(),
        grace,
    ));
    // The admin API gets the same defences on its own listener and cap, so a flood of the
    // gateway never locks operators out.
    let admin_task = tokio::spawn(listener::run(
        "admin API",
        admin_listener,
        admin,
        admin_limits,
        stopped,
        grace,
    ));

    shutdown_signal().await;
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    let _ = stop.send(true);
    let drained = async {
        if let Err(e) = gateway_task.await {
            tracing::error!(error = %e, "gateway listener task failed");
        }
        if let Err(e) = admin_task.await {
            tracing::error!(error = %e, "admin API listener task failed");
        }
    };
    // The gateway enforces its own deadline; this one covers the admin API too.
    if tokio::time::timeout(grace + Duration::from_secs(1), drained)
        .await
        .is_err()
    {
        tracing::warn!("shutdown deadline passed; exiting with connections still open");
    }
    // Streams cut at the deadline have settled their budgets and queued their records by now:
    // write every record before exiting.
    if !recorder.drain(Duration::from_secs(10)).await {
        tracing::error!("some call records could not be written before exit");
    }
    if let Some(tracer) = tracer {
        if !tracer.flush(Duration::from_secs(5)).await {
            tracing::warn!("some trace spans could not be exported before exit");
        }
    }
    // Give settles spawned by the last streams a moment, then make the ledger durable.
    tokio::time::sleep(Duration::from_millis(50)).await;
    if let Err(e) = ledger.flush().await {
        tracing::error!(error = %e, "could not make the budget ledger durable before exit");
    }
    tracing::info!("pai stopped");
    Ok(())
}

/// Whether `url` names a PostgreSQL database.
fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The store and the ledger `--store` and `--ledger` name. Errors never repeat a URL, which
/// may hold a password.
async fn open_store(
    args: &ServeArgs,
    dir: &DataDir,
    encryption: [u8; 32],
    clock: Arc<dyn pai_core::Clock>,
) -> Result<(Arc<dyn Store>, Arc<dyn BudgetLedger>), StartError> {
    let ttl = Duration::from_secs(args.reservation_ttl.max(1));
    let (store, default_ledger): (Arc<dyn Store>, Option<Arc<dyn BudgetLedger>>) =
        match args.store.as_deref() {
            None => {
                let store_path = dir.store_path();
                let sqlite = pai_store::SqliteStore::open(&store_path, encryption)
                    .await
                    .map_err(|e| StartError::new(format!("{}: {e}", store_path.display())))?;
                let ledger = pai_store::SqliteLedger::open(&sqlite, clock.clone())
                    .await
                    .map_err(|e| {
                        StartError::new(format!("{}: budget ledger: {e}", store_path.display()))
                    })?
                    .with_reservation_ttl(ttl);
                (Arc::new(sqlite), Some(Arc::new(ledger)))
            }
            Some(url) if is_postgres(url) => {
                let store = pai_store::PostgresStore::connect(url, encryption)
                    .await
                    .map_err(|e| StartError::new(format!("--store (PostgreSQL): {e}")))?;
                tracing::info!("store: PostgreSQL, shared with every replica");
                (Arc::new(store), None)
            }
            Some(_) => {
                return Err(StartError::new(
                    "--store (PAI_STORE_URL) must be a postgres:// URL; leave it out for the embedded SQLite store",
                ))
            }
        };
    let ledger_url = args.ledger.as_deref().or(args.store.as_deref());
    let ledger: Arc<dyn BudgetLedger> = match (ledger_url, default_ledger) {
        (Some(url), _) if url.starts_with("redis://") || url.starts_with("rediss://") => {
            let ledger = pai_store::RedisLedger::connect(url, &args.ledger_prefix, clock)
                .await
                .map_err(|e| StartError::new(format!("--ledger (Redis): {e}")))?
                .with_reservation_ttl(ttl);
            tracing::info!("budget ledger: Redis, shared with every replica");
            Arc::new(ledger)
        }
        (Some(url), _) if is_postgres(url) => {
            let ledger = pai_store::PostgresLedger::connect(url, clock)
                .await
                .map_err(|e| StartError::new(format!("--ledger (PostgreSQL): {e}")))?
                .with_reservation_ttl(ttl);
            tracing::info!("budget ledger: PostgreSQL, shared with every replica");
            Arc::new(ledger)
        }
        (Some(_), _) => {
            return Err(StartError::new(
                "--ledger (PAI_LEDGER_URL) must be a redis:// or postgres:// URL",
            ))
        }
        (None, Some(ledger)) => ledger,
        (None, None) => return Err(StartError::new("no budget ledger")),
    };
    Ok((store, ledger))
}

/// Logs go to stderr; `--log-level` beats RUST_LOG, which beats `info`.
fn init_logging(level: Option<&str>) -> Result<(), StartError> {
    let filter = match level {
        Some(level) => EnvFilter::try_new(level)
            .map_err(|e| StartError::new(format!("--log-level {level:?}: {e}")))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // A second initialisation (tests) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    Ok(())
}

/// Read and check every resource file, then apply them all as one: any invalid file stops the
/// start, and a reference from one file to another holds whatever their order.
async fn apply_files(
    store: &dyn Store,
    adapters: &pai_providers::Adapters,
    files: &[PathBuf],
) -> Result<(), StartError> {
    if files.is_empty() {
        return Ok(());
    }
    let mut all = pai_core::resource::Loaded {
        resources: Vec::new(),
        warnings: Vec::new(),
    };
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| StartError::new(format!("{}: {e}", file.display())))?;
        match pai_core::resource::load(&text) {
            Ok(l) => {
                all.resources.extend(l.resources);
                all.warnings.extend(
                    l.warnings
                        .into_iter()
                        .map(|w| format!("{}: {w}", file.display())),
                );
            }
            Err(e) => problems.extend(
                e.problems
                    .iter()
                    .map(|p| format!("{}: {p}", file.display())),
            ),
        }
    }
    if !problems.is_empty() {
        return Err(StartError::new(problems.join("\n")));
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let names = names.join(", ");
    let report = admin::apply::apply_loaded(store, adapters, all)
        .await
        .map_err(|e| StartError::new(format!("{names}: {e}")))?;
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    for r in &report.results {
        tracing::info!(files = %names, kind = %r.kind, name = %r.name, result = ?r.result, "applied");
    }
    Ok(())
}

/// Every hour, remove the audit entries older than `days` (up to a checkpoint, sealed), but
/// only from a chain that verifies: a broken chain keeps its evidence.
async fn audit_retention(store: Arc<dyn Store>, key: pai_core::AuditKey, days: u32) {
    const EVERY: Duration = Duration::from_secs(3600);
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let cutoff = pai_core::SystemClock
            .unix_millis()
            .saturating_sub(u64::from(days) * 86_400_000);
        match pai_core::audit::verify(store.as_ref(), &key).await {
            Ok(Ok(_)) => {}
            Ok(Err(tamper)) => {
                tracing::error!(%tamper, "the audit chain does not verify; nothing is pruned");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the audit chain to prune it");
                continue;
            }
        }
        match store.prune_audit(cutoff).await {
            Ok(Some((removed, seal))) => {
                tracing::info!(
                    removed,
                    through = seal.through,
                    days,
                    "pruned the audit chain"
                )
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "pruning the audit chain failed"),
        }
    }
}

/// The kernel's queue of connections not yet accepted. The standard library asks for 128;
/// under a flood that queue fills and the kernel drops new SYNs, so a health check waits a full
/// SYN retransmission (1 s). Go and nginx ask for more; the kernel caps it at somaxconn.
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(addr: &str, flag: &str) -> Result<TcpListener, StartError> {
    let fail =
        |e: std::io::Error| StartError::new(format!("cannot listen on {addr} ({flag}): {e}"));
    let mut last = None;
    for resolved in tokio::net::lookup_host(addr).await.map_err(fail)? {
        let bound = (|| {
            let socket = match resolved {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            #[cfg(unix)]
            socket.set_reuseaddr(true)?;
            socket.bind(resolved)?;
            socket.listen(LISTEN_BACKLOG)
        })();
        match bound {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(fail(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
    })))
}

/// Print the bound address where tests and people look for it: plain on stderr, and in the log.
fn announce(what: &str, listener: &TcpListener) -> Result<SocketAddr, StartError> {
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::new(format!("cannot read the bound address: {e}")))?;
    eprintln!("{what} http://{addr}");
    tracing::info!("{what} http://{addr}");
    Ok(addr)
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
