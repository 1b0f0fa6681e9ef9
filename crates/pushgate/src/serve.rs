//! `pushgate serve`: the store, the component links and the HTTP listener on one runtime,
//! stopped together through one [`CancellationToken`]: on cancellation the links close their
//! streams (`</stream:stream>`), the HTTP server stops accepting and drains, and every task is
//! awaited before the store closes.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use pushgate_core::{Clock, Store, SystemClock};
use pushgate_store::{CachingStore, SqlStore};
use pushgate_up_http::{HttpConfig, Routes, push_routes};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::{EXIT_CONFIG, EXIT_RUNTIME, report_settings_error};
use crate::first_run::{FIRST_RUN_COMPONENT_PORT, FIRST_RUN_JID, FirstRun, server_snippets};
use crate::health::{HealthSources, LinkHealth, health_routes};
use crate::services::{Services, push_endpoint_config};
use crate::settings::{Settings, SettingsFile};

/// Why `serve` stopped before or instead of a clean shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened or migrated.
    #[error("cannot open the database: {0}")]
    Store(#[from] pushgate_store::StoreSetupError),
    /// The HTTP listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// `[http] listen`.
        address: std::net::SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// A component link refused its settings.
    #[error("cannot start a component link: {0}")]
    Link(#[from] pushgate_xmpp::ConfigError),
    /// The metrics recorder could not be installed.
    #[error("cannot start metrics: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    /// A push service could not be built.
    #[error(transparent)]
    Services(#[from] crate::services::ServicesError),
    /// The push endpoint refused its settings.
    #[error("cannot set up the push endpoint: {0}")]
    PushEndpoint(#[from] pushgate_up_http::PushEndpointError),
    /// The signal handlers could not be installed.
    #[error("cannot watch for SIGINT/SIGTERM: {0}")]
    Signals(std::io::Error),
    /// A task ended by panicking.
    #[error("the {task} task failed: {source}")]
    Task {
        /// Which task.
        task: String,
        /// The join error.
        source: tokio::task::JoinError,
    },
}

/// Runs `pushgate serve` to the end and gives the process exit code: 0 after a clean
/// shutdown, 2 for unusable settings, 1 for any other failure.
pub fn run(file: &SettingsFile) -> ExitCode {
    let settings = match Settings::load_with_first_run(file) {
        Ok((settings, first_run)) => {
            if let Some(first_run) = first_run {
                announce_first_run(&first_run);
            }
            settings
        }
        Err(error) => return report_settings_error(&error),
    };
    if let Err(error) = crate::logging::start(&settings.log) {
        eprintln!("pushgate: {error}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if let Ok(rendered) = settings.to_redacted_toml() {
        tracing::debug!(settings = %rendered, "effective settings (secrets redacted)");
    }
    raise_open_files_limit(&settings.http);
    let runtime = match runtime_builder(settings.runtime.worker_threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(serve(settings, CancellationToken::new())) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "pushgate stopped on an error");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Tells someone who started pushgate without settings where its state is and what their
/// XMPP server needs. The secret itself only the first time, when it was just made: later
/// starts name its file, so it does not land in every log.
fn announce_first_run(first_run: &FirstRun) {
    let dir = first_run.dir.path().display();
    let secret_file = first_run.dir.component_secret_path();
    let secret = if first_run.secret_is_new {
        first_run.component_secret.clone()
    } else {
        format!("<the content of {}>", secret_file.display())
    };
    println!(
        "pushgate: no settings file; using built-in settings and the data directory {dir} \
         (database, component secret, UnifiedPush key).\n\
         Write a settings file for a real deployment: pushgate init\n\n\
         For your XMPP server to accept the link ({jid} on 127.0.0.1:{port}):\n\n{snippets}",
        jid = FIRST_RUN_JID,
        port = FIRST_RUN_COMPONENT_PORT,
        snippets = server_snippets(FIRST_RUN_JID, &secret, FIRST_RUN_COMPONENT_PORT),
    );
}

/// One thread: a current-thread runtime (every wake-up and push handled where its input was
/// read, no hand-offs); more: a multi-thread runtime with that many workers (0: one per core).
fn runtime_builder(worker_threads: usize) -> tokio::runtime::Builder {
    match worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        0 => tokio::runtime::Builder::new_multi_thread(),
        threads => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
    }
}

/// Serves until `shutdown` is cancelled (by SIGINT/SIGTERM or the caller), then stops every
/// part and waits for all of them.
pub async fn serve(settings: Settings, shutdown: CancellationToken) -> Result<(), ServeError> {
    // The recorder goes first: counters incremented before it exists (a link coming up right
    // away) would be lost.
    let metrics = match settings.metrics.listen {
        Some(address) => Some((address, crate::metrics::install()?)),
        None => None,
    };
    let store = SqlStore::connect(&settings.database.store_config()).await?;
    tracing::info!(backend = store.backend().as_str(), "database ready");
    let cache = settings.database.cache_config();
    if cache.is_enabled() {
        tracing::info!(
            entries = cache.max_entries,
            ttl = %pushgate_core::settings::HumanDuration(settings.database.cache_ttl),
            "registrations and revocations cached"
        );
    }
    // The services and the maintenance go through the cache, so their writes update it; the
    // health check pings the database itself.
    let cached: Arc<dyn Store> = Arc::new(
        CachingStore::new(store.clone(), cache).shared_with_other_instances(&settings.database.url),
    );
    let store = Arc::new(store);

    let listener = TcpListener::bind(settings.http.listen)
        .await
        .map_err(|source| ServeError::Listen {
            address: settings.http.listen,
            source,
        })?;
    let metrics = match metrics {
        Some((address, handle)) => {
            let listener = TcpListener::bind(address)
                .await
                .map_err(|source| ServeError::Listen { address, source })?;
            Some((listener, handle))
        }
        None => None,
    };
    let services = Services::build(&settings, Arc::clone(&cached))?;
    let mut routes = Routes::default();
    if let (Some(provider), Some(public_url)) = (&services.provider, &settings.http.public_url) {
        routes = push_routes(
            Arc::clone(provider),
            push_endpoint_config(&settings, public_url),
        )?;
    }
    let postgres = matches!(
        pushgate_store::Backend::from_url(&settings.database.url),
        Ok(pushgate_store::Backend::Postgres)
    );
    let lease_database = postgres.then_some(settings.database.url.as_str());
    let started =
        crate::links::spawn_links(&settings.component, &services, &shutdown, lease_database)
            .await?;
    let mut tasks: Vec<(String, JoinHandle<()>)> = Vec::new();
    let mut links: Vec<Arc<dyn LinkHealth>> = Vec::new();
    let mut handlers = Vec::new();
    for running in started {
        tracing::info!(jid = %running.link.jid(), "component link started");
        links.push(Arc::new(running.reported()) as Arc<dyn LinkHealth>);
        tasks.push((
            format!("component link {}", running.link.jid()),
            running.task,
        ));
        handlers.push(running.roles);
    }
    let routes = routes.merge(health_routes_for(
        &settings,
        &store,
        &services.instance_id,
        links,
    ));
    tasks.push((
        "maintenance".to_owned(),
        tokio::spawn(maintenance(
            cached,
            services.provider.clone(),
            settings.app_server.purge_dead_after,
            shutdown.clone(),
        )),
    ));
    // Watch for signals only once setup succeeded: a failed setup returns with nothing to
    // stop, and every task spawned from here on is awaited below.
    let signals = tokio::spawn(crate::shutdown::cancel_on_signal(shutdown.clone()));
    tracing::info!(address = %settings.http.listen, "HTTP listening");
    let http = tokio::spawn(pushgate_up_http::serve(
        listener,
        routes,
        settings.http.server_config(),
        shutdown.clone(),
    ));

    tasks.push(("HTTP".to_owned(), http));
    if let Some((listener, handle)) = metrics {
        tasks.extend(spawn_metrics(
            listener,
            handle,
            &settings.http,
            Arc::clone(&store),
            Arc::clone(&services.trace),
            &shutdown,
        ));
    }
    shutdown.cancelled().await;

    // Every task watches the same token; wait for all of them, then for the flushes the
    // handlers started, before closing the store they use.
    let mut failure = None;
    for (task, handle) in tasks.drain(..) {
        if let Err(source) = handle.await {
            failure.get_or_insert(ServeError::Task { task, source });
        }
    }
    for handler in handlers {
        handler.close_and_wait().await;
    }
    match signals.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            failure.get_or_insert(ServeError::Signals(error));
        }
        Err(source) => {
            failure.get_or_insert(ServeError::Task {
                task: "signal".to_owned(),
                source,
            });
        }
    }
    store.close().await;
    failure.map_or(Ok(()), Err)
}

/// Serves `/metrics` on its listener and runs the recorder's upkeep.
fn spawn_metrics(
    listener: TcpListener,
    handle: metrics_exporter_prometheus::PrometheusHandle,
    http: &HttpConfig,
    store: Arc<SqlStore>,
    trace: Arc<pushgate_core::trace::DeliveryTrace>,
    shutdown: &CancellationToken,
) -> Vec<(String, JoinHandle<()>)> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "metrics listening");
    }
    vec![
        (
            "metrics HTTP".to_owned(),
            tokio::spawn(pushgate_up_http::serve(
                listener,
                crate::metrics::metrics_routes(handle.clone(), trace),
                http.server_config(),
                shutdown.clone(),
            )),
        ),
        (
            "metrics upkeep".to_owned(),
            tokio::spawn(crate::metrics::upkeep(handle, shutdown.clone())),
        ),
        (
            "metrics state".to_owned(),
            tokio::spawn(state_gauges(store, shutdown.clone())),
        ),
    ]
}

/// How often the state gauges are read from the store (docs/metrics.md).
const STATE_EVERY: Duration = Duration::from_secs(60);

/// Refreshes the state gauges now and every [`STATE_EVERY`] until `shutdown`.
async fn state_gauges(store: Arc<SqlStore>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(STATE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => crate::metrics::refresh_state(&store).await,
        }
    }
}

fn health_routes_for(
    settings: &Settings,
    store: &Arc<SqlStore>,
    instance: &str,
    links: Vec<Arc<dyn LinkHealth>>,
) -> axum::Router {
    health_routes(HealthSources {
        instance: instance.to_owned(),
        links,
        store: Arc::clone(store) as Arc<dyn Store>,
        ping_timeout: settings.database.acquire_timeout + Duration::from_secs(1),
    })
}

/// How often expired messages, revocations and long-dead registrations are deleted.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes what has expired, now and then, until `shutdown`.
async fn maintenance(
    store: Arc<dyn Store>,
    provider: Option<Arc<pushgate_core::provider::Provider>>,
    purge_dead_after: Duration,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(MAINTENANCE_EVERY);
    loop {
        tokio::select! {
            // Shutdown wins over a due round: the store is about to close.
            biased;
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Some(provider) = &provider {
            provider.purge_expired().await;
        }
        let now = SystemClock.now();
        let dead_before =
            now.saturating_sub(i64::try_from(purge_dead_after.as_millis()).unwrap_or(i64::MAX));
        match store.purge_dead_registrations(dead_before).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "deleted registrations with long-dead tokens"),
            Err(error) => tracing::warn!(%error, "purging dead registrations failed"),
        }
    }
}

/// Files pushgate keeps open besides HTTP connections: the database pool, the component
/// links, the FCM connections, the metrics listener, the runtime's own.
const FILES_BESIDES_HTTP: u64 = 256;

/// Raises the soft limit on open files to the hard limit, so that the HTTP listener can hold
/// `http.max_connections` connections; warns when even the hard limit is too low for that.
fn raise_open_files_limit(http: &HttpConfig) {
    let needed = http
        .server_config()
        .open_files_needed()
        .saturating_add(FILES_BESIDES_HTTP);
    let shown =
        |limit: Option<u64>| limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    match pushgate_up_http::raise_open_files_limit() {
        Ok(limit) => {
            tracing::info!(
                soft = %shown(limit.soft),
                hard = %shown(limit.hard),
                "open files limit"
            );
            if !limit.allows(needed) {
                tracing::warn!(
                    limit = %shown(limit.soft),
                    needed,
                    "the open files limit is below what http.max_connections needs: raise the \
                     hard limit (LimitNOFILE= under systemd, ulimit -Hn) or lower \
                     http.max_connections"
                );
            }
        }
        Err(error) => tracing::warn!(%error, needed, "the open files limit could not be raised"),
    }
}
