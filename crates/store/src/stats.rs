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
}

/// Plain SQL every backend reads alike; `COUNT` of a column counts its non-null values.
const REGISTRATIONS: &str = "SELECT service, domain, COUNT(*) - COUNT(dead_since) AS live, \
     COUNT(dead_since) AS dead FROM registrations GROUP BY service, domain \
     ORDER BY service, domain";
const MESSAGES: &str =
    "SELECT COUNT(*) AS stored, COUNT(DISTINCT owner) AS owners FROM stored_messages";
const REVOCATIONS: &str = "SELECT COUNT(*) AS revoked FROM revocations";

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
        })
    }
}
