//! XEP-0357 registrations (p2 role): the `registrations` table.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use pushgate_core::{
    DeviceHash, Node, PushService, Registration, RegistrationRequest, Secret, StoreError,
    UnixMillis,
};

use crate::sql_store::{SqlStore, retry_conflicts, store_error};

impl SqlStore {
    pub(crate) async fn upsert_registration(
        &self,
        request: &RegistrationRequest,
    ) -> Result<Registration, StoreError> {
        // Clients register again on every connect (Conversations does), nearly always with
        // what is stored already. Those are answered from a read and write nothing: on SQLite
        // even an update that changes nothing adds whole pages to the write-ahead log, and on
        // every backend it takes a write lock. `updated_at` therefore dates the last change.
        if let Some(stored) = self
            .registration_of_device(request.service, &request.device)
            .await?
            && stored.domain == request.domain
            && stored.token == request.token
            && stored.dead_since.is_none()
        {
            return Ok(stored);
        }
        // One statement decides between insert and update, so two registrations of the same
        // new device at once both end on the row the first one inserted. MySQL/InnoDB may
        // still report a deadlock between such twins; the retry then finds the row.
        let row = retry_conflicts(|| self.upsert_registration_once(request))
            .await
            .map_err(store_error)?;
        registration_from_row(&row)
    }

    async fn upsert_registration_once(
        &self,
        request: &RegistrationRequest,
    ) -> Result<AnyRow, sqlx::Error> {
        let statements = self.statements;
        let upsert = sqlx::query(statements.register.as_str())
            .bind(request.service.as_str())
            .bind(request.device.as_str())
            .bind(request.domain.as_str())
            .bind(request.token.as_str())
            .bind(request.fresh_node.as_str())
            .bind(request.fresh_secret.expose())
            .bind(request.now)
            .bind(request.now);
        if statements.returning {
            // Read to the end, not `fetch_one`: SQLite runs its automatic checkpoint only when
            // a statement outside a transaction steps to its end. One dropped after its first
            // row commits on reset, which skips the checkpoint, and the WAL then grows without
            // bound.
            return upsert
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .next()
                .ok_or(sqlx::Error::RowNotFound);
        }
        let mut transaction = self.begin_write().await?;
        upsert.execute(&mut *transaction).await?;
        let row = sqlx::query(statements.find_device.as_str())
            .bind(request.service.as_str())
            .bind(request.device.as_str())
            .fetch_one(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(row)
    }

    /// The stored registration of (service, device), if any.
    async fn registration_of_device(
        &self,
        service: PushService,
        device: &DeviceHash,
    ) -> Result<Option<Registration>, StoreError> {
        let row = sqlx::query(self.statements.find_device.as_str())
            .bind(service.as_str())
            .bind(device.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(registration_from_row).transpose()
    }

    pub(crate) async fn delete_registration(
        &self,
        service: PushService,
        device: &DeviceHash,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(self.statements.unregister.as_str())
            .bind(service.as_str())
            .bind(device.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    pub(crate) async fn registration_by_node(
        &self,
        domain: &str,
        node: &str,
    ) -> Result<Option<Registration>, StoreError> {
        let row = sqlx::query(self.statements.find_registration.as_str())
            .bind(domain)
            .bind(node)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.as_ref().map(registration_from_row).transpose()
    }

    pub(crate) async fn set_token_dead(
        &self,
        service: PushService,
        device: &DeviceHash,
        token: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(self.statements.mark_token_dead.as_str())
            .bind(now)
            .bind(service.as_str())
            .bind(device.as_str())
            .bind(token)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }

    pub(crate) async fn delete_dead_registrations(
        &self,
        dead_before: UnixMillis,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(self.statements.purge_dead_registrations.as_str())
            .bind(dead_before)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected())
    }
}

/// Reads a `registrations` row (columns in `registration_columns!` order and names).
fn registration_from_row(row: &AnyRow) -> Result<Registration, StoreError> {
    let service: String = row.try_get("service").map_err(store_error)?;
    let device: String = row.try_get("device").map_err(store_error)?;
    Ok(Registration {
        service: PushService::parse(&service)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown push service {service:?}")))?,
        device: DeviceHash::from_hex(&device)
            .ok_or_else(|| StoreError::Corrupt("device hash is not 40 hex digits".to_owned()))?,
        domain: row.try_get("domain").map_err(store_error)?,
        token: row.try_get("token").map_err(store_error)?,
        node: Node::new(row.try_get::<String, _>("node").map_err(store_error)?),
        secret: Secret::new(row.try_get::<String, _>("secret").map_err(store_error)?),
        created_at: row.try_get("created_at").map_err(store_error)?,
        updated_at: row.try_get("updated_at").map_err(store_error)?,
        dead_since: row.try_get("dead_since").map_err(store_error)?,
    })
}
