//! A [`Store`] in memory: for tests and benchmarks of the services without a database. It
//! keeps the same contract as the SQL store (the store crate's tests hold both to it).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::account::AccountJid;
use crate::clock::UnixMillis;
use crate::device::{DeviceHash, PushService};
use crate::registration::{Registration, RegistrationRequest};
use crate::store::{
    EndpointId, MessageStore, MessageStoreLimits, NewStoredMessage, OwnerKey, RegistrationStore,
    RevocationStore, Store, StoreError, StoreFullScope, StoredMessage, StoredMessageId,
};

/// Everything in one mutex; fine for tests, not for production.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    registrations: Vec<Registration>,
    /// The account of each registration, by (service, device): the SQL store keeps only a
    /// keyed hash, memory may keep the JID itself.
    accounts: BTreeMap<(&'static str, String), AccountJid>,
    revocations: BTreeMap<String, UnixMillis>,
    messages: BTreeMap<StoredMessageId, NewStoredMessage>,
    next_message_id: StoredMessageId,
    unavailable: bool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later call fail with [`StoreError::Unavailable`] (or work again), to test
    /// what the services do when the database is down.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    /// All registrations, for assertions.
    pub fn registrations(&self) -> Vec<Registration> {
        self.lock().registrations.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        super::lock(&self.state)
    }

    fn available(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        let state = self.lock();
        if state.unavailable {
            return Err(StoreError::Unavailable("memory store switched off".into()));
        }
        Ok(state)
    }
}

#[async_trait]
impl RegistrationStore for MemoryStore {
    async fn register_device(
        &self,
        request: RegistrationRequest,
    ) -> Result<Registration, StoreError> {
        let mut state = self.available()?;
        let key = (request.service.as_str(), request.device.as_str().to_owned());
        state.accounts.insert(key.clone(), request.account.clone());
        if let Some(existing) = state
            .registrations
            .iter_mut()
            .find(|r| r.service == request.service && r.device == request.device)
        {
            existing.token = request.token;
            existing.domain = request.domain;
            existing.updated_at = request.now;
            existing.dead_since = None;
            return Ok(existing.clone());
        }
        let live_devices = state
            .registrations
            .iter()
            .filter(|r| r.dead_since.is_none())
            .filter(|r| {
                let key = (r.service.as_str(), r.device.as_str().to_owned());
                state.accounts.get(&key) == Some(&request.account)
            })
            .count();
        if live_devices >= usize::try_from(request.max_devices_per_account).unwrap_or(usize::MAX) {
            state.accounts.remove(&key);
            return Err(StoreError::TooManyDevices(request.max_devices_per_account));
        }
        let registration = Registration {
            service: request.service,
            device: request.device,
            domain: request.domain,
            token: request.token,
            node: request.fresh_node,
            secret: request.fresh_secret,
            created_at: request.now,
            updated_at: request.now,
            dead_since: None,
        };
        state.registrations.push(registration.clone());
        Ok(registration)
    }

    async fn unregister_device(
        &self,
        service: PushService,
        device: &DeviceHash,
    ) -> Result<bool, StoreError> {
        let mut state = self.available()?;
        let before = state.registrations.len();
        state
            .registrations
            .retain(|r| !(r.service == service && &r.device == device));
        state
            .accounts
            .remove(&(service.as_str(), device.as_str().to_owned()));
        Ok(state.registrations.len() != before)
    }

    async fn find_registration(
        &self,
        domain: &str,
        node: &str,
    ) -> Result<Option<Registration>, StoreError> {
        let state = self.available()?;
        Ok(state
            .registrations
            .iter()
            .find(|r| r.domain == domain && r.node.as_str() == node)
            .cloned())
    }

    async fn mark_token_dead(
        &self,
        service: PushService,
        device: &DeviceHash,
        token: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut state = self.available()?;
        let Some(registration) = state.registrations.iter_mut().find(|r| {
            r.service == service
                && &r.device == device
                && r.token == token
                && r.dead_since.is_none()
        }) else {
            return Ok(false);
        };
        registration.dead_since = Some(now);
        Ok(true)
    }

    async fn purge_dead_registrations(&self, dead_before: UnixMillis) -> Result<u64, StoreError> {
        let mut state = self.available()?;
        let before = state.registrations.len();
        state
            .registrations
            .retain(|r| r.dead_since.is_none_or(|since| since >= dead_before));
        Ok((before - state.registrations.len()) as u64)
    }
}

#[async_trait]
impl RevocationStore for MemoryStore {
    async fn revoke_endpoint(
        &self,
        endpoint: &EndpointId,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut state = self.available()?;
        state
            .revocations
            .insert(endpoint.as_str().to_owned(), expires_at);
        Ok(())
    }

    async fn is_endpoint_revoked(
        &self,
        endpoint: &EndpointId,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let state = self.available()?;
        Ok(state
            .revocations
            .get(endpoint.as_str())
            .is_some_and(|expires_at| *expires_at > now))
    }

    async fn purge_expired_revocations(&self, now: UnixMillis) -> Result<u64, StoreError> {
        let mut state = self.available()?;
        let before = state.revocations.len();
        state.revocations.retain(|_, expires_at| *expires_at > now);
        Ok((before - state.revocations.len()) as u64)
    }
}

#[async_trait]
impl MessageStore for MemoryStore {
    async fn store_message(
        &self,
        message: NewStoredMessage,
        limits: MessageStoreLimits,
    ) -> Result<StoredMessageId, StoreError> {
        let mut state = self.available()?;
        let replaced = message.topic.as_ref().and_then(|topic| {
            state.messages.iter().find_map(|(id, stored)| {
                (stored.owner == message.owner
                    && stored.application == message.application
                    && stored.instance == message.instance
                    && stored.topic.as_ref() == Some(topic))
                .then_some(*id)
            })
        });
        let replacing = u64::from(replaced.is_some());
        let owner_count = state
            .messages
            .values()
            .filter(|m| m.owner == message.owner)
            .count() as u64;
        if owner_count - replacing >= u64::from(limits.max_per_owner) {
            return Err(StoreError::Full(StoreFullScope::Owner));
        }
        if state.messages.len() as u64 - replacing >= limits.max_total {
            return Err(StoreError::Full(StoreFullScope::Total));
        }
        if let Some(id) = replaced {
            state.messages.remove(&id);
        }
        state.next_message_id += 1;
        let id = state.next_message_id;
        state.messages.insert(id, message);
        Ok(id)
    }

    async fn messages_for_owner(
        &self,
        owner: &OwnerKey,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let state = self.available()?;
        Ok(state
            .messages
            .iter()
            .filter(|(_, m)| &m.owner == owner && m.expires_at > now)
            .take(limit as usize)
            .map(|(id, m)| StoredMessage {
                id: *id,
                message: m.clone(),
            })
            .collect())
    }

    async fn messages_after(
        &self,
        after: StoredMessageId,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let state = self.available()?;
        Ok(state
            .messages
            .range(after.saturating_add(1)..)
            .filter(|(_, m)| m.expires_at > now)
            .take(limit as usize)
            .map(|(id, m)| StoredMessage {
                id: *id,
                message: m.clone(),
            })
            .collect())
    }

    async fn delete_message(&self, id: StoredMessageId) -> Result<bool, StoreError> {
        Ok(self.available()?.messages.remove(&id).is_some())
    }

    async fn purge_expired_messages(&self, now: UnixMillis) -> Result<u64, StoreError> {
        let mut state = self.available()?;
        let before = state.messages.len();
        state.messages.retain(|_, m| m.expires_at > now);
        Ok((before - state.messages.len()) as u64)
    }

    async fn delete_endpoint_messages(
        &self,
        owner: &OwnerKey,
        application: &str,
        instance: &str,
    ) -> Result<u64, StoreError> {
        let mut state = self.available()?;
        let before = state.messages.len();
        state.messages.retain(|_, m| {
            !(&m.owner == owner && m.application == application && m.instance == instance)
        });
        Ok((before - state.messages.len()) as u64)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.available().map(drop)
    }
}
