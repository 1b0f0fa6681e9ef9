//! UnifiedPush revocations: the `revocations` table.

use async_trait::async_trait;
use pushgate_core::{EndpointId, RevocationStore, StoreError, UnixMillis};

use crate::sql_store::{SqlStore, count_from_row, store_error};

impl SqlStore {
    pub(crate) async fn insert_revocation(
        &self,
        endpoint: &EndpointId,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError> {
        // A second revocation keeps the later expiry: the token stays refused as long as any
        // report said it should.
        sqlx::query(self.statements.revoke.as_str())
            .bind(endpoint.as_str())
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    pub(crate) async fn revocation_in_force(
        &self,
        endpoint: &EndpointId,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(self.statements.is_revoked.as_str())
            .bind(endpoint.as_str())
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(count_from_row(&row)? > 0)
    }

    pub(crate) async fn delete_expired_revocations(
        &self,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(self.statements.purge_revocations.as_str())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected())
    }
}

#[async_trait]
impl RevocationStore for SqlStore {
    async fn revoke_endpoint(
        &self,
        endpoint: &EndpointId,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError> {
        self.insert_revocation(endpoint, expires_at).await
    }

    async fn is_endpoint_revoked(
        &self,
        endpoint: &EndpointId,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.revocation_in_force(endpoint, now).await
    }

    async fn purge_expired_revocations(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.delete_expired_revocations(now).await
    }
}
