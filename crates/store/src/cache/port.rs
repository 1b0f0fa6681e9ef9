//! [`Store`] for [`CachingStore`]: the two lookups from memory, every write through to the
//! store behind and then reflected in what is kept.

use async_trait::async_trait;

use pushgate_core::{
    DeviceHash, EndpointId, MessageStore, MessageStoreLimits, NewStoredMessage, OwnerKey,
    PushService, Registration, RegistrationRequest, RegistrationStore, RevocationStore, Store,
    StoreError, StoredMessage, StoredMessageId, UnixMillis,
};

use crate::cache::{CachingStore, Invalidation};

#[async_trait]
impl<S: Store> RegistrationStore for CachingStore<S> {
    async fn register_device(
        &self,
        request: RegistrationRequest,
    ) -> Result<Registration, StoreError> {
        let (service, device) = (request.service, request.device.clone());
        let stored = self.inner.register_device(request).await;
        if let Some(cache) = &self.registrations {
            // Dropped rather than replaced: two registrations of one device racing here may
            // come back in either order, and only the database knows which one won. A failed
            // write may still have committed, so it drops too.
            let node = stored.as_ref().ok().map(|stored| stored.node.as_str());
            cache.forget_registration(service, &device, node);
        }
        self.publish(Invalidation::Device(service, device)).await;
        stored
    }

    async fn unregister_device(
        &self,
        service: PushService,
        device: &DeviceHash,
    ) -> Result<bool, StoreError> {
        let removed = self.inner.unregister_device(service, device).await;
        if let Some(cache) = &self.registrations {
            cache.forget_device(service, device);
        }
        self.publish(Invalidation::Device(service, device.clone()))
            .await;
        removed
    }

    async fn find_registration(
        &self,
        domain: &str,
        node: &str,
    ) -> Result<Option<Registration>, StoreError> {
        let Some(cache) = &self.registrations else {
            return self.inner.find_registration(domain, node).await;
        };
        let now = self.clock.now();
        if let Some(registration) = cache.get(domain, node, now) {
            return Ok(Some(registration));
        }
        let before = cache.generation();
        let found = self.inner.find_registration(domain, node).await?;
        if let Some(registration) = &found {
            cache.fill(before, domain, node, registration, now);
        }
        Ok(found)
    }

    async fn mark_token_dead(
        &self,
        service: PushService,
        device: &DeviceHash,
        token: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let marked = self
            .inner
            .mark_token_dead(service, device, token, now)
            .await;
        // Whatever the answer: marked (the entry is dead now), or not marked because the row
        // holds another token, which the caller reads next and must get from the database.
        if let Some(cache) = &self.registrations {
            cache.forget_device(service, device);
        }
        if matches!(marked, Ok(true)) {
            self.publish(Invalidation::Device(service, device.clone()))
                .await;
        }
        marked
    }

    async fn purge_dead_registrations(&self, dead_before: UnixMillis) -> Result<u64, StoreError> {
        let purged = self.inner.purge_dead_registrations(dead_before).await;
        if let Some(cache) = &self.registrations {
            // Rows marked dead elsewhere may still be kept here as live; hourly, so simply
            // start over.
            cache.clear();
        }
        purged
    }
}

#[async_trait]
impl<S: Store> RevocationStore for CachingStore<S> {
    async fn revoke_endpoint(
        &self,
        endpoint: &EndpointId,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError> {
        let recorded = self.inner.revoke_endpoint(endpoint, expires_at).await;
        if let Some(cache) = &self.endpoints {
            match &recorded {
                Ok(()) => cache.revoked(endpoint, expires_at, self.clock.now()),
                Err(_) => cache.forget(endpoint),
            }
        }
        self.publish(Invalidation::Endpoint(endpoint.clone())).await;
        recorded
    }

    async fn is_endpoint_revoked(
        &self,
        endpoint: &EndpointId,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let Some(cache) = &self.endpoints else {
            return self.inner.is_endpoint_revoked(endpoint, now).await;
        };
        let cache_now = self.clock.now();
        if let Some(revoked) = cache.is_revoked(endpoint, now, cache_now) {
            return Ok(revoked);
        }
        let before = cache.generation();
        let revoked = self.inner.is_endpoint_revoked(endpoint, now).await?;
        cache.fill(before, endpoint, revoked, cache_now);
        Ok(revoked)
    }

    async fn purge_expired_revocations(&self, now: UnixMillis) -> Result<u64, StoreError> {
        let purged = self.inner.purge_expired_revocations(now).await;
        let cache_now = self.clock.now();
        if let Some(cache) = &self.endpoints {
            cache.sweep(now, cache_now);
        }
        if let Some(cache) = &self.registrations {
            cache.sweep(cache_now);
        }
        purged
    }
}

#[async_trait]
impl<S: Store> MessageStore for CachingStore<S> {
    async fn store_message(
        &self,
        message: NewStoredMessage,
        limits: MessageStoreLimits,
    ) -> Result<StoredMessageId, StoreError> {
        self.inner.store_message(message, limits).await
    }

    async fn messages_for_owner(
        &self,
        owner: &OwnerKey,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.inner.messages_for_owner(owner, now, limit).await
    }

    async fn messages_after(
        &self,
        after: StoredMessageId,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.inner.messages_after(after, now, limit).await
    }

    async fn delete_message(&self, id: StoredMessageId) -> Result<bool, StoreError> {
        self.inner.delete_message(id).await
    }

    async fn purge_expired_messages(&self, now: UnixMillis) -> Result<u64, StoreError> {
        self.inner.purge_expired_messages(now).await
    }

    async fn delete_endpoint_messages(
        &self,
        owner: &OwnerKey,
        application: &str,
        instance: &str,
    ) -> Result<u64, StoreError> {
        self.inner
            .delete_endpoint_messages(owner, application, instance)
            .await
    }
}

#[async_trait]
impl<S: Store> Store for CachingStore<S> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}
