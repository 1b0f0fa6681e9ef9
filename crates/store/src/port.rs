//! [`Store`] for [`SqlStore`]: the port `pushgate-core` asks for, mapped onto the tables.

use async_trait::async_trait;

use pushgate_core::{
    DeviceHash, EndpointId, MessageStoreLimits, NewStoredMessage, OwnerKey, PushService,
    Registration, RegistrationRequest, Store, StoreError, StoredMessage, StoredMessageId,
    UnixMillis,
};

use crate::sql_store::{SqlStore, store_error};

#[async_trait]
impl Store for SqlStore {
    async fn register_device(
        &self,
        request: RegistrationRequest,
    ) -> Result<Registration, StoreError> {
        self.upsert_registration(&request).await
    }

    async fn unregister_device(
        &self,
        service: PushService,
        device: &DeviceHash,
    ) -> Result<bool, StoreError> {
        self.delete_registration(service, device).await
    }

    async fn find_registration(
        &self,
        domain: &str,
        node: &str,
    ) -> Result<Option<Registration>, StoreError> {
        self.registration_by_node(domain, node).await
    }

    async fn mark_token_dead(
        &self,
        service: PushService,
        device: &DeviceHash,
        token: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.set_token_dead(service, device, token, now).await
    }

    async fn purge_dead_registrations(&self, dead_before: UnixMillis) -> Result<u64, StoreError> {
        self.delete_dead_registrations(dead_before).await
    }

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

    async fn store_message(
        &self,
        message: NewStoredMessage,
        limits: MessageStoreLimits,
    ) -> Result<StoredMessageId, StoreError> {
        match &self.writer {
            Some(writer) => writer.store(message, limits).await,
            // Only the writer task's own handle has none, and it stores nothing.
            None => Err(StoreError::Unavailable(
                "this store handle has no message writer".to_owned(),
            )),
        }
    }

    async fn messages_for_owner(
        &self,
        owner: &OwnerKey,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.owner_messages(owner, now, limit).await
    }

    async fn messages_after(
        &self,
        after: StoredMessageId,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.messages_page(after, now, limit).await
    }

    async fn delete_message(&self, id: StoredMessageId) -> Result<bool, StoreError> {
        self.delete_message_by_id(id).await
    }

    async fn purge_expired_messages(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.delete_expired_messages(now).await
    }

    async fn delete_endpoint_messages(
        &self,
        owner: &OwnerKey,
        application: &str,
        instance: &str,
    ) -> Result<u64, StoreError> {
        self.delete_messages_of_endpoint(owner, application, instance)
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(self.statements.ping.as_str())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
