//! What the database holds, counted for operators (`pushgate stats`) and the state gauges:
//! counts only, grouped by service and domain, never a row's values.

use sqlx::Row as _;

use pushgate_core::StoreError;

use crate::sql_store::{SqlStore, store_error};

/// The registrations of one (service, domain).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RegistrationCount {
    /// `fcm` or `apns`.
    pub service: String,
    /// The accounts' domain.
    pub domain: String,
    /// Registrations whose token the push service has not called dead.
    pub live: u64,
    /// Registrations whose token the push service called dead (purged after
    /// `[app_server] purge_dead_after`).
    pub dead: u64,
}

/// Everything [`SqlStore::stats`] counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Registrations by service and domain, in that order.
    pub registrations: Vec<RegistrationCount>,
    /// UnifiedPush messages kept for clients that were not reachable.
    pub stored_messages: u64,
    /// Owners (hashed client addresses) with kept messages.
    pub owners_with_messages: u64,
    /// Endpoints revoked and not yet past their expiry.
    pub revocations: u64,
    /// On PostgreSQL, the instances with a session on the database, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<InstanceInfo>>,
}

/// One running instance, as the database sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InstanceInfo {
    /// Its instance id (the first part of its IQ ids, and `instance` in its `/health`).
    pub id: String,
    /// When its oldest session on the database began, in epoch seconds.
    pub since: i64,
    /// The address its sessions come from (`local` over a Unix socket).
    pub address: String,
    /// The links (of those asked about) whose lease it holds.
    pub holds: Vec<String>,
}

/// Plain SQL every backend reads alike; `COUNT` of a column counts its non-null values.
const REGISTRATIONS: &str = "SELECT service, domain, COUNT(*) - COUNT(dead_since) AS live, \
     COUNT(dead_since) AS dead FROM registrations GROUP BY service, domain \
     ORDER BY service, domain";
const MESSAGES: &str =
    "SELECT COUNT(*) AS stored, COUNT(DISTINCT owner) AS owners FROM stored_messages";
const REVOCATIONS: &str = "SELECT COUNT(*) AS revoked FROM revocations";
/// The instances' sessions, named by their `application_name`.
const INSTANCES: &str = "SELECT substr(application_name, length($1) + 1) AS instance, \
     CAST(EXTRACT(EPOCH FROM MIN(backend_start)) AS BIGINT) AS since, \
     COALESCE(MIN(host(client_addr)), 'local') AS address \
     FROM pg_stat_activity WHERE datname = current_database() \
     AND starts_with(application_name, $1) GROUP BY application_name ORDER BY since";
/// The advisory locks the instances' sessions hold: a bigint key is `classid << 32 | objid`.
const LEASES: &str = "SELECT substr(a.application_name, length($1) + 1) AS instance, \
     CAST(l.classid AS BIGINT) AS high, CAST(l.objid AS BIGINT) AS low \
     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
     AND starts_with(a.application_name, $1)";

impl SqlStore {
    /// Counts what the database holds. Expired messages and revocations not yet purged are
    /// counted too: they are still rows.
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        let count = |row: &sqlx::any::AnyRow, column: &str| -> Result<u64, StoreError> {
            let value: i64 = row.try_get(column).map_err(store_error)?;
            Ok(u64::try_from(value).unwrap_or_default())
        };
        let rows = sqlx::query(REGISTRATIONS)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let mut registrations = Vec::with_capacity(rows.len());
        for row in &rows {
            registrations.push(RegistrationCount {
                service: row.try_get("service").map_err(store_error)?,
                domain: row.try_get("domain").map_err(store_error)?,
                live: count(row, "live")?,
                dead: count(row, "dead")?,
            });
        }
        let messages = sqlx::query(MESSAGES)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        let revocations = sqlx::query(REVOCATIONS)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(StoreStats {
            registrations,
            stored_messages: count(&messages, "stored")?,
            owners_with_messages: count(&messages, "owners")?,
            revocations: count(&revocations, "revoked")?,
            instances: None,
        })
    }

    /// The instances running on this PostgreSQL database, and which of the `links` (component
    /// JIDs) each holds the lease of; `None` on SQLite and MySQL, where one instance runs.
    pub async fn instances(
        &self,
        links: &[String],
    ) -> Result<Option<Vec<InstanceInfo>>, StoreError> {
        if self.backend() != crate::Backend::Postgres {
            return Ok(None);
        }
        let schema: String = sqlx::query_scalar("SELECT CAST(current_schema() AS TEXT)")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        let rows = sqlx::query(INSTANCES)
            .bind(crate::APPLICATION_NAME_PREFIX)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        let mut instances = Vec::with_capacity(rows.len());
        for row in &rows {
            instances.push(InstanceInfo {
                id: row.try_get("instance").map_err(store_error)?,
                since: row.try_get("since").map_err(store_error)?,
                address: row.try_get("address").map_err(store_error)?,
                holds: Vec::new(),
            });
        }
        let keys: Vec<(i64, &String)> = links
            .iter()
            .map(|link| (crate::link_lease_key(&schema, link), link))
            .collect();
        let locks = sqlx::query(LEASES)
            .bind(crate::APPLICATION_NAME_PREFIX)
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        for lock in &locks {
            let holder: String = lock.try_get("instance").map_err(store_error)?;
            let high: i64 = lock.try_get("high").map_err(store_error)?;
            let low: i64 = lock.try_get("low").map_err(store_error)?;
            let key = (high << 32) | (low & 0xffff_ffff);
            let held = keys.iter().find(|(lease, _)| *lease == key);
            if let (Some((_, link)), Some(instance)) = (
                held,
                instances.iter_mut().find(|instance| instance.id == holder),
            ) {
                instance.holds.push((*link).clone());
            }
        }
        Ok(Some(instances))
    }
}
