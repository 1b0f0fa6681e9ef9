//! The lease of a component link that only one of several instances may hold (Prosody
//! accepts one connection per component JID): a PostgreSQL session-level advisory lock, on a
//! connection of its own, keyed by the component JID. PostgreSQL is the arbiter; there is no
//! consensus of our own.
//!
//! - A standby asks for the lock five times a second.
//! - The holder shows it still holds it every 300 ms (a query on the lock's connection). A
//!   check that fails, or takes over 500 ms, closes the gate at once: the link drops its
//!   session. So the holder stops at most 800 ms after its last good check.
//! - The lease connection ends its session after 1.2 s without a query
//!   (`idle_session_timeout`), so a holder that hangs or is cut off loses the lock, and a
//!   standby can take it; that is 400 ms after such a holder stopped (fencing). A holder
//!   killed outright loses the lock as soon as its socket closes.

use std::time::Duration;

use sqlx::Connection as _;
use std::str::FromStr as _;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::watch;
use tokio::time::Instant;

/// How often a standby asks for the lock.
const ACQUIRE_EVERY: Duration = Duration::from_millis(200);
/// How often the holder shows it still holds the lock.
const CHECK_EVERY: Duration = Duration::from_millis(300);
/// The longest a check may take before the lease counts as lost.
const CHECK_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the database keeps a silent lease session, and its lock.
const IDLE_SESSION_TIMEOUT: &str = "1200ms";
/// The pause before connecting again after the database could not be reached.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The advisory lock key of `component`'s link in the schema `schema`: FNV-1a of
/// `pushgate-link:`, the schema and the JID, the same in every instance and every version.
/// Advisory locks (and notification channels) are the whole database's, so pushgate's in
/// other schemas of the same database must not share them.
pub fn link_lease_key(schema: &str, component: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"pushgate-link:"
        .iter()
        .chain(schema.as_bytes())
        .chain(b":")
        .chain(component.as_bytes())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Holds `component`'s lease on the PostgreSQL database at `url` whenever it can, saying so
/// through `gate`: `None` while not held here, and while held, when the last query that showed
/// it started (the link's fencing needs a check newer than its last session). Runs until
/// aborted.
///
/// Meanwhile `holder` says which instance holds the lease (its id; this one's while held
/// here), read from the database each time the lock is asked for: where the pushes this
/// instance accepts are handed.
pub async fn hold_link_lease(
    url: String,
    component: String,
    instance: String,
    gate: watch::Sender<Option<Instant>>,
    holder: watch::Sender<Option<String>>,
) {
    loop {
        let options = match PgConnectOptions::from_str(&url) {
            Ok(options) => options.application_name(&crate::peers::application_name(&instance)),
            Err(error) => {
                tracing::error!(%component, %error, "link lease: the database URL is not PostgreSQL's");
                return;
            }
        };
        let mut connection = match PgConnection::connect_with(&options).await {
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
        let key = match current_schema(&mut connection).await {
            Ok(schema) => link_lease_key(&schema, &component),
            Err(error) => {
                tracing::warn!(%component, %error, "link lease: the database cannot be read");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        let Some(acquired) = acquire(&mut connection, key, &holder).await else {
            holder.send_replace(None);
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        };
        holder.send_replace(Some(instance.clone()));
        gate.send_replace(Some(acquired));
        crate::metrics::link_lease("acquired");
        tracing::info!(%component, "link lease: held by this instance");
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let started = Instant::now();
            let shown = tokio::time::timeout(
                CHECK_TIMEOUT,
                sqlx::query("SELECT 1").execute(&mut connection),
            )
            .await;
            if !matches!(shown, Ok(Ok(_))) {
                break;
            }
            gate.send_replace(Some(started));
        }
        gate.send_replace(None);
        holder.send_replace(None);
        crate::metrics::link_lease("lost");
        tracing::warn!(%component, "link lease: lost; the link is dropped");
        // The lock goes with the session.
        drop(connection);
    }
}

/// The schema pushgate's tables are in, for this session (its `search_path`).
pub(crate) async fn current_schema<'c, E>(executor: E) -> Result<String, sqlx::Error>
where
    E: sqlx::postgres::PgExecutor<'c>,
{
    sqlx::query_scalar::<_, Option<String>>("SELECT current_schema()")
        .fetch_one(executor)
        .await
        .map(Option::unwrap_or_default)
}

/// Waits until the lock is this session's, and says when the query that took it started;
/// `None` if the connection failed meanwhile. While another session holds it, `holder` says
/// whose it is.
async fn acquire(
    connection: &mut PgConnection,
    key: i64,
    holder: &watch::Sender<Option<String>>,
) -> Option<Instant> {
    loop {
        let started = Instant::now();
        let taken: Result<bool, _> = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *connection)
            .await;
        match taken {
            Ok(true) => return Some(started),
            Ok(false) => {
                let held_by = lease_holder(&mut *connection, key).await.ok().flatten();
                holder.send_if_modified(|known| {
                    let changed = *known != held_by;
                    if changed {
                        known.clone_from(&held_by);
                    }
                    changed
                });
                tokio::time::sleep(ACQUIRE_EVERY).await;
            }
            Err(_) => return None,
        }
    }
}

/// The id of the instance whose session holds the advisory lock `key`, if one does (a bigint
/// key is the lock's `classid` and `objid`, high and low 32 bits).
async fn lease_holder(
    connection: &mut PgConnection,
    key: i64,
) -> Result<Option<String>, sqlx::Error> {
    let bits = u64::from_ne_bytes(key.to_ne_bytes());
    let high = i64::from((bits >> 32) as u32);
    let low = i64::from(bits as u32);
    sqlx::query_scalar(
        "SELECT substr(a.application_name, length($3) + 1) FROM pg_locks l \
         JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
         AND l.classid = CAST($1 AS oid) AND l.objid = CAST($2 AS oid) \
         AND starts_with(a.application_name, $3) LIMIT 1",
    )
    .bind(high)
    .bind(low)
    .bind(crate::APPLICATION_NAME_PREFIX)
    .fetch_optional(connection)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_stable_and_differs_by_component_and_schema() {
        assert_eq!(
            link_lease_key("public", "push.example.org"),
            link_lease_key("public", "push.example.org")
        );
        assert_ne!(
            link_lease_key("public", "push.example.org"),
            link_lease_key("public", "up.example.org")
        );
        assert_ne!(
            link_lease_key("public", "push.example.org"),
            link_lease_key("other", "push.example.org")
        );
    }
}
