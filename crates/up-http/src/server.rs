//! Accepting connections and serving the routes on them until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{App, Routes, app};
use crate::connection::{REFUSALS_AT_ONCE, refuse_connection, serve_connection};
use crate::connection_registry::ConnectionRegistry;
use crate::limits::ServerConfig;

/// Serves [`app`]`(routes, config)` on `listener` until `shutdown` is cancelled, then stops
/// accepting, lets in-flight requests finish (at most `config.shutdown_grace`) and returns once
/// every connection task has ended.
///
/// At most `config.max_connections` connections are served at once. At that limit a new
/// connection is still accepted when one is idle (between requests): the one idle the longest
/// is closed to make room, as nginx does. Connections from one address beyond
/// `config.max_connections_per_address` are answered 503 and closed.
pub fn serve(
    listener: TcpListener,
    routes: impl Into<Routes>,
    config: ServerConfig,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let app = Arc::new(app(routes, &config));
    serve_app(listener, app, config, shutdown)
}

async fn serve_app(
    listener: TcpListener,
    app: Arc<App>,
    config: ServerConfig,
    shutdown: CancellationToken,
) {
    let tasks = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let registry = Arc::new(ConnectionRegistry::new(config.max_connections_per_address));

    loop {
        // Accept only with a free slot or an idle connection to close for one; otherwise new
        // connections wait in the kernel's backlog instead of being accepted and starved.
        let room = tokio::select! {
            () = shutdown.cancelled() => break,
            room = room(&slots, &registry) => room,
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(%error, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        tracing::trace!(%peer, "HTTP connection accepted");
        let registered = match registry.join(peer.ip()) {
            Ok(registered) => registered,
            Err(over) => {
                pushgate_core::metric_handles::LOAD_SHED
                    .increment("http_connections_per_address", 1);
                // Refusals get slots of their own, so a client over its cap cannot take the
                // slots of others, and a few of them at a time, so it cannot exhaust memory.
                if let Ok(refusing) = Arc::clone(&refusals).try_acquire_owned() {
                    tasks.spawn(async move {
                        refuse_connection(stream, over).await;
                        drop(refusing);
                    });
                }
                continue;
            }
        };
        let slot = match room {
            Room::Free(slot) => slot,
            Room::Idle => {
                let made = tokio::select! {
                    () = shutdown.cancelled() => break,
                    slot = make_room(&slots, &registry) => slot,
                };
                made
            }
        };
        let app = Arc::clone(&app);
        let config = config.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            serve_connection(stream, peer, app, &config, &shutdown, registered, slot).await;
        });
    }

    // Closing the listener first makes new connection attempts fail fast during the drain.
    drop(listener);
    tasks.close();
    tasks.wait().await;
    tracing::debug!("HTTP server stopped");
}

/// Why a new connection may be accepted.
enum Room {
    /// A slot is free.
    Free(OwnedSemaphorePermit),
    /// Every slot is taken, but an idle connection can give one up.
    Idle,
}

/// Waits until a slot is free or a connection idle.
async fn room(slots: &Arc<Semaphore>, registry: &ConnectionRegistry) -> Room {
    loop {
        if let Ok(slot) = Arc::clone(slots).try_acquire_owned() {
            return Room::Free(slot);
        }
        if registry.has_idle() {
            return Room::Idle;
        }
        tokio::select! {
            slot = Arc::clone(slots).acquire_owned() => match slot {
                Ok(slot) => return Room::Free(slot),
                // The semaphore is never closed; wait for an idle connection all the same.
                Err(_) => registry.idle_appeared().await,
            },
            () = registry.idle_appeared() => {}
        }
    }
}

/// A slot for a connection just accepted at the limit: the idle connection idle the longest
/// is closed and gives up its slot. One that is no longer idle when asked declines, and the
/// next is asked; when none is idle any more, the new connection waits for a slot as it would
/// have in the backlog.
async fn make_room(slots: &Arc<Semaphore>, registry: &ConnectionRegistry) -> OwnedSemaphorePermit {
    loop {
        if let Ok(slot) = Arc::clone(slots).try_acquire_owned() {
            return slot;
        }
        match registry.close_oldest_idle() {
            Some(handed) => tokio::select! {
                // An error: it declined, or ended by itself (then its slot is free). Look again.
                handed = handed => if let Ok(slot) = handed {
                    return slot;
                },
                Ok(slot) = Arc::clone(slots).acquire_owned() => return slot,
            },
            None => tokio::select! {
                Ok(slot) = Arc::clone(slots).acquire_owned() => return slot,
                () = registry.idle_appeared() => {}
            },
        }
    }
}
