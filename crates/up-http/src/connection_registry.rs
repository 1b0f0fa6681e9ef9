//! The live connections of one listener: how many each client address holds, and which are
//! idle, oldest first, so that a full listener can close one to make room for a new
//! connection.
//!
//! A connection is idle between requests: every request it sent has been answered and no byte
//! of the next one has arrived (the state nginx calls "reusable"). Only an idle connection is
//! ever asked to close, and it checks again that it is idle before it does.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, OwnedSemaphorePermit, oneshot};

use crate::client_address::address_key;

/// The registry of one listener's connections.
#[derive(Debug)]
pub(crate) struct ConnectionRegistry {
    state: Mutex<RegistryState>,
    /// Woken when the first connection becomes idle after none was.
    idle_appeared: Notify,
    /// At most this many connections per address key; 0: no cap.
    max_per_address: usize,
}

#[derive(Debug, Default)]
struct RegistryState {
    /// Idle connections by when they became idle: the first entry is the oldest.
    idle: BTreeMap<u64, Arc<CloseRequest>>,
    /// The key the next connection to become idle gets.
    next_idle_key: u64,
    /// How many connections each address key holds; keys at 0 are removed.
    per_address: HashMap<IpAddr, usize>,
}

/// A new connection's address already holds the most connections one address may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{address} already holds {held} connections, the most one address may")]
pub(crate) struct OverAddressCap {
    /// The address key (IPv6 per /64).
    pub(crate) address: IpAddr,
    /// How many it holds.
    pub(crate) held: usize,
}

/// How an idle connection is asked to close, and how it gives its slot to the one asking.
#[derive(Debug, Default)]
pub(crate) struct CloseRequest {
    asked: Notify,
    /// Where the closed connection's slot goes; `None` when nobody asks.
    slot_to: Mutex<Option<oneshot::Sender<OwnedSemaphorePermit>>>,
}

impl CloseRequest {
    /// Resolves when the connection is asked to close (see
    /// [`ConnectionRegistry::close_oldest_idle`]).
    pub(crate) async fn asked(&self) {
        self.asked.notified().await;
    }
}

impl ConnectionRegistry {
    /// No connections yet; `max_per_address` 0 means no cap.
    pub(crate) fn new(max_per_address: usize) -> Self {
        Self {
            state: Mutex::new(RegistryState::default()),
            idle_appeared: Notify::new(),
            max_per_address,
        }
    }

    fn state(&self) -> MutexGuard<'_, RegistryState> {
        // The state stays consistent whatever panicked while holding the lock: every update
        // is a single map operation.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a new connection from `address`, unless its address already holds the most
    /// connections one may. The connection starts busy; it says when it is idle.
    pub(crate) fn join(
        self: &Arc<Self>,
        address: IpAddr,
    ) -> Result<RegisteredConnection, OverAddressCap> {
        let key = address_key(address);
        let mut state = self.state();
        let held = state.per_address.entry(key).or_insert(0);
        if self.max_per_address != 0 && *held >= self.max_per_address {
            return Err(OverAddressCap {
                address: key,
                held: *held,
            });
        }
        *held += 1;
        Ok(RegisteredConnection {
            registry: Arc::clone(self),
            address: key,
            close: Arc::new(CloseRequest::default()),
            idle_key: None,
        })
    }

    /// Whether any connection is idle.
    pub(crate) fn has_idle(&self) -> bool {
        !self.state().idle.is_empty()
    }

    /// Resolves once a connection has become idle while none was (or at once when that
    /// happened since the last call). Only the accept loop waits here.
    pub(crate) async fn idle_appeared(&self) {
        self.idle_appeared.notified().await;
    }

    /// Asks the connection idle the longest to close and hand over its slot; `None` when no
    /// connection is idle. The receiver gets the slot, or an error when the connection was
    /// no longer idle (or ended by itself first): then ask again.
    pub(crate) fn close_oldest_idle(&self) -> Option<oneshot::Receiver<OwnedSemaphorePermit>> {
        let close = self.state().idle.pop_first().map(|(_, close)| close)?;
        let (sender, receiver) = oneshot::channel();
        *close.slot_to.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender);
        close.asked.notify_one();
        Some(receiver)
    }

    /// How many connections `address` holds (for tests).
    #[cfg(test)]
    fn held_by(&self, address: IpAddr) -> usize {
        self.state()
            .per_address
            .get(&address_key(address))
            .copied()
            .unwrap_or(0)
    }
}

/// One connection's place in the registry; leaving it (dropping this) uncounts it.
#[derive(Debug)]
pub(crate) struct RegisteredConnection {
    registry: Arc<ConnectionRegistry>,
    address: IpAddr,
    close: Arc<CloseRequest>,
    /// Its key among the idle connections, while it is idle.
    idle_key: Option<u64>,
}

impl RegisteredConnection {
    /// The connection is idle from now on; it goes behind every connection idle longer. A
    /// connection already idle goes to the back again (it was just used).
    pub(crate) fn mark_idle(&mut self) {
        let mut state = self.registry.state();
        if let Some(key) = self.idle_key.take() {
            state.idle.remove(&key);
        }
        let key = state.next_idle_key;
        state.next_idle_key += 1;
        let was_empty = state.idle.is_empty();
        state.idle.insert(key, Arc::clone(&self.close));
        drop(state);
        self.idle_key = Some(key);
        if was_empty {
            self.registry.idle_appeared.notify_one();
        }
    }

    /// The connection is busy from now on: a request of it is in progress.
    pub(crate) fn mark_busy(&mut self) {
        if let Some(key) = self.idle_key.take() {
            self.registry.state().idle.remove(&key);
        }
    }

    /// How the connection is asked to close: await [`CloseRequest::asked`], then answer with
    /// [`Self::hand_over`] or [`Self::decline`].
    pub(crate) fn close_request(&self) -> Arc<CloseRequest> {
        Arc::clone(&self.close)
    }

    /// The connection closed as asked: `slot` goes to the one who asked. (Its idle entry was
    /// taken by the asking.)
    pub(crate) fn hand_over(&mut self, slot: OwnedSemaphorePermit) {
        if let Some(sender) = self.take_sender() {
            // The asker gave up only at shutdown; the slot is then just released.
            let _ = sender.send(slot);
        }
    }

    /// The connection was asked to close but is no longer idle: the asker must look further.
    pub(crate) fn decline(&mut self) {
        drop(self.take_sender());
    }

    fn take_sender(&self) -> Option<oneshot::Sender<OwnedSemaphorePermit>> {
        self.close
            .slot_to
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl Drop for RegisteredConnection {
    fn drop(&mut self) {
        let mut state = self.registry.state();
        if let Some(key) = self.idle_key.take() {
            state.idle.remove(&key);
        }
        if let Some(held) = state.per_address.get_mut(&self.address) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                state.per_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tokio::sync::Semaphore;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn the_cap_counts_each_address_and_v6_per_64() {
        let registry = Arc::new(ConnectionRegistry::new(2));
        let a = registry.join(ip("192.0.2.1")).expect("first");
        let _b = registry.join(ip("192.0.2.1")).expect("second");
        let refused = registry.join(ip("192.0.2.1")).expect_err("third");
        assert_eq!(refused.held, 2);
        let _other = registry.join(ip("192.0.2.2")).expect("another address");
        drop(a);
        let _c = registry.join(ip("192.0.2.1")).expect("room again");
        let _v6a = registry.join(ip("2001:db8::1")).expect("v6");
        let _v6b = registry.join(ip("2001:db8::2")).expect("same /64");
        assert!(registry.join(ip("2001:db8::3")).is_err());
        assert_eq!(registry.held_by(ip("2001:db8::ffff")), 2);
    }

    #[test]
    fn no_cap_at_zero_and_counts_vanish_at_zero() {
        let registry = Arc::new(ConnectionRegistry::new(0));
        let all: Vec<_> = (0..1000)
            .map(|_| {
                registry
                    .join(IpAddr::V4(Ipv4Addr::LOCALHOST))
                    .expect("no cap")
            })
            .collect();
        assert_eq!(registry.held_by(IpAddr::V4(Ipv4Addr::LOCALHOST)), 1000);
        drop(all);
        assert!(registry.state().per_address.is_empty());
    }

    #[tokio::test]
    async fn the_oldest_idle_is_asked_first_and_busy_ones_never() {
        let registry = Arc::new(ConnectionRegistry::new(0));
        let slots = Arc::new(Semaphore::new(3));
        let mut first = registry.join(ip("192.0.2.1")).expect("join");
        let mut second = registry.join(ip("192.0.2.1")).expect("join");
        let mut third = registry.join(ip("192.0.2.1")).expect("join");
        assert!(!registry.has_idle());
        assert!(registry.close_oldest_idle().is_none());
        second.mark_idle();
        first.mark_idle();
        third.mark_idle();
        third.mark_busy();
        // `second` became idle first.
        let asked = registry.close_oldest_idle().expect("an idle one");
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            second.close_request().asked(),
        )
        .await
        .expect("second is asked");
        let permit = Arc::clone(&slots).try_acquire_owned().expect("slot");
        second.hand_over(permit);
        assert!(asked.await.is_ok(), "the slot is handed over");
        // Then `first`, which declines: it became busy meanwhile.
        let asked = registry.close_oldest_idle().expect("an idle one");
        first.close_request().asked().await;
        first.decline();
        assert!(asked.await.is_err());
        assert!(!registry.has_idle(), "third is busy");
        drop((first, second, third));
        assert!(registry.state().idle.is_empty());
    }

    #[tokio::test]
    async fn becoming_idle_again_moves_to_the_back() {
        let registry = Arc::new(ConnectionRegistry::new(0));
        let mut first = registry.join(ip("192.0.2.1")).expect("join");
        let mut second = registry.join(ip("192.0.2.1")).expect("join");
        first.mark_idle();
        second.mark_idle();
        first.mark_idle();
        let _asked = registry.close_oldest_idle().expect("idle");
        tokio::time::timeout(
            std::time::Duration::from_secs(1),
            second.close_request().asked(),
        )
        .await
        .expect("second is now the oldest");
        tokio::time::timeout(std::time::Duration::from_secs(1), registry.idle_appeared())
            .await
            .expect("the first idle connection was announced");
    }
}
