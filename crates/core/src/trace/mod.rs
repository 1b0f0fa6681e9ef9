//! The delivery trace: for each registration (by node) or UnifiedPush owner (by bare JID) the
//! last [`EVENTS_PER_KEY`] steps of its deliveries, so an operator or a user can ask "did my push
//! arrive, and where did it stop?".
//!
//! It is kept in memory only, bounded by a number of keys, and holds no JID, node, token, secret
//! or body: keys are MACs under a key drawn when the trace is made ([`TraceKey`]), and events
//! carry only times, hop names, outcomes and short ids ([`TraceEvent`]).

mod event;
mod key;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use hashlink::LruCache;

pub use event::{AppTag, Hop, TraceEvent, TraceId, TraceIdError, TraceOutcome, latency_text};
pub use key::TraceKey;

use key::{MacKey, TraceKeyHasher};

/// How the map hashes its keys.
type KeyHashing = std::hash::BuildHasherDefault<TraceKeyHasher>;

/// How many keys a trace keeps unless configured otherwise: about 84 MiB when every key holds
/// 32 events, 15 MiB when each holds two (`examples/trace_memory.rs`, 876 and 155 bytes a key).
pub const DEFAULT_TRACE_KEYS: usize = 100_000;

/// How many events a trace keeps per key: the newest ones.
pub const EVENTS_PER_KEY: usize = 32;

/// The last events of each key, for at most `max_keys` keys; the least recently recorded key
/// makes room for a new one.
///
/// One lock guards the whole map. The critical section is a hash lookup and a push; the runtime
/// runs on one thread by default, and shards would turn "least recently used" into "least
/// recently used in its shard".
pub struct DeliveryTrace {
    mac_key: MacKey,
    max_keys: usize,
    traces: Mutex<LruCache<TraceKey, EventRing, KeyHashing>>,
}

impl DeliveryTrace {
    /// An empty trace of at most `max_keys` keys, with a fresh random MAC key. `0` disables it:
    /// nothing is recorded.
    pub fn new(max_keys: usize) -> Self {
        Self {
            mac_key: MacKey::generate(),
            max_keys,
            // Grows as keys arrive: an idle server keeps an empty map.
            traces: Mutex::new(LruCache::with_hasher(max_keys, KeyHashing::default())),
        }
    }

    /// The key of a XEP-0357 registration, by its node (case-sensitive).
    pub fn node_key(&self, node: &str) -> TraceKey {
        self.mac_key.node_key(node)
    }

    /// The key of a UnifiedPush owner, by bare JID: ASCII case is ignored and a `/resource` is
    /// cut off, so the forms one account arrives in share a trace.
    pub fn account_key(&self, bare_jid: &str) -> TraceKey {
        self.mac_key.account_key(bare_jid)
    }

    /// Appends `event` to `key`'s trace, dropping its oldest event past [`EVENTS_PER_KEY`]. The
    /// key becomes the most recently used; a new key past `max_keys` evicts the least recently
    /// used one.
    pub fn record(&self, key: &TraceKey, event: TraceEvent) {
        if self.max_keys == 0 {
            return;
        }
        let mut traces = self.lock();
        if let Some(ring) = traces.get_mut(key) {
            ring.push(event);
        } else {
            traces.insert(*key, EventRing::with_first(event));
        }
    }

    /// `key`'s events, oldest first; empty for a key never recorded or evicted. Looking does
    /// not count as use: a key that is only queried is not kept longer than its deliveries
    /// warrant, and an operator's queries do not change what is kept.
    pub fn events(&self, key: &TraceKey) -> Vec<TraceEvent> {
        self.lock()
            .peek(key)
            .map(|ring| ring.events.iter().copied().collect())
            .unwrap_or_default()
    }

    /// How many keys have a trace.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key has a trace.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys kept (0: disabled).
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<TraceKey, EventRing, KeyHashing>> {
        // Every change is a single push or insert: a panic elsewhere leaves no half-written trace.
        self.traces.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for DeliveryTrace {
    fn default() -> Self {
        Self::new(DEFAULT_TRACE_KEYS)
    }
}

impl fmt::Debug for DeliveryTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryTrace")
            .field("max_keys", &self.max_keys)
            .field("keys", &self.len())
            .finish_non_exhaustive()
    }
}

/// One key's newest events, oldest first. It starts with room for one event and doubles up to
/// [`EVENTS_PER_KEY`]: most keys see few deliveries between restarts.
#[derive(Debug)]
struct EventRing {
    events: VecDeque<TraceEvent>,
}

impl EventRing {
    fn with_first(event: TraceEvent) -> Self {
        let mut events = VecDeque::with_capacity(1);
        events.push_back(event);
        Self { events }
    }

    fn push(&mut self, event: TraceEvent) {
        if self.events.len() >= EVENTS_PER_KEY {
            self.events.pop_front();
        } else if self.events.len() == self.events.capacity() {
            // VecDeque's own growth jumps from 1 to 4 slots; 1, 2, 4, … 32 halves the memory of
            // a key with two events (measured in examples/trace_memory.rs). The cap keeps a
            // reallocation from ever giving more than EVENTS_PER_KEY.
            let room = self
                .events
                .capacity()
                .clamp(1, EVENTS_PER_KEY - self.events.len());
            self.events.reserve_exact(room);
        }
        self.events.push_back(event);
    }
}
