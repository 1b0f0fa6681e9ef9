//! SIGINT and SIGTERM become one cancelled [`CancellationToken`].

use tokio_util::sync::CancellationToken;

/// Cancels `shutdown` on the first SIGINT or SIGTERM (or when `shutdown` is cancelled some
/// other way, in which case it just returns).
pub async fn cancel_on_signal(shutdown: CancellationToken) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            () = shutdown.cancelled() => return Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            result = tokio::signal::ctrl_c() => {
                result?;
                tracing::info!("interrupt received, shutting down");
            }
            () = shutdown.cancelled() => return Ok(()),
        }
    }
    shutdown.cancel();
    Ok(())
}
