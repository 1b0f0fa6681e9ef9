//! The lease of a component link that only one of several instances may hold (Prosody
//! accepts one connection per component JID): a PostgreSQL session-level advisory lock, on a
//! connection of its own, keyed by the component JID. PostgreSQL is the arbiter; there is no
//! consensus of our own.
//!
//! - A standby asks for the lock four times a second.
//! - The holder shows it still holds it twice a second (a query on the lock's connection).
//!   When it cannot, within a second, it closes the gate at once: the link drops its session
//!   before anyone else can have the lease.
//! - The lease connection ends its session after 1.5 s without a query
//!   (`idle_session_timeout`), so a holder that hangs or is cut off loses the lock, and a
//!   standby can take it; a holder killed outright loses it as soon as its socket closes.

use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;
use tokio::sync::watch;

/// How often a standby asks for the lock.
const ACQUIRE_EVERY: Duration = Duration::from_millis(250);
/// How often the holder shows it still holds the lock.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// The longest a check may take before the lease counts as lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the database keeps a silent lease session, and its lock.
const IDLE_SESSION_TIMEOUT: &str = "1500ms";
/// The pause before connecting again after the database could not be reached.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The advisory lock key of `component`'s link: FNV-1a of `pushgate-link:` and the JID, the
/// same in every instance and every version.
pub fn link_lease_key(component: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"pushgate-link:".iter().chain(component.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Holds `component`'s lease on the PostgreSQL database at `url` whenever it can, saying so
/// through `gate` (`true` while held). Runs until aborted.
pub async fn hold_link_lease(url: String, component: String, gate: watch::Sender<bool>) {
    let key = link_lease_key(&component);
    loop {
        let mut connection = match PgConnection::connect(&url).await {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(%component, %error, "link lease: the database cannot be reached");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        let set = format!("SET idle_session_timeout = '{IDLE_SESSION_TIMEOUT}'");
        if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(set))
            .execute(&mut connection)
            .await
        {
            tracing::warn!(%component, %error, "link lease: cannot bound the lease session");
        }
        if !acquire(&mut connection, key).await {
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        }
        gate.send_replace(true);
        crate::metrics::link_lease("acquired");
        tracing::info!(%component, "link lease: held by this instance");
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let shown = tokio::time::timeout(
                CHECK_TIMEOUT,
                sqlx::query("SELECT 1").execute(&mut connection),
            )
            .await;
            if !matches!(shown, Ok(Ok(_))) {
                break;
            }
        }
        gate.send_replace(false);
        crate::metrics::link_lease("lost");
        tracing::warn!(%component, "link lease: lost; the link is dropped");
        // The lock goes with the session.
        drop(connection);
    }
}

/// Waits until the lock is this session's; false if the connection failed meanwhile.
async fn acquire(connection: &mut PgConnection, key: i64) -> bool {
    loop {
        let taken: Result<bool, _> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *connection)
            .await;
        match taken {
            Ok(true) => return true,
            Ok(false) => tokio::time::sleep(ACQUIRE_EVERY).await,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_stable_and_differs_by_component() {
        assert_eq!(
            link_lease_key("push.example.org"),
            link_lease_key("push.example.org")
        );
        assert_ne!(
            link_lease_key("push.example.org"),
            link_lease_key("up.example.org")
        );
    }
}
