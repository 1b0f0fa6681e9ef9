//! A small map of values that are costly to work out and cheap to keep: endpoint tokens and
//! the claims they opened to (a decryption and a JSON parse saved per message), owner JIDs and
//! their parsed form (a stringprep pass saved per push). Whoever keeps a value checks it is
//! still valid when it is used, so a cache answers as the work it saves would.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Values by their key's exact text, at most `capacity` of them.
pub struct BoundedCache<V> {
    entries: Mutex<HashMap<Box<str>, V>>,
    capacity: usize,
}

impl<V: Clone> BoundedCache<V> {
    /// An empty cache that keeps at most `capacity` values (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The value kept for `key`, if any.
    pub fn get(&self, key: &str) -> Option<V> {
        self.lock().get(key).cloned()
    }

    /// Keeps `value` for `key`. When full, an arbitrary kept value makes room: the map is
    /// keyed by a per-process random hash, so which one is anybody's guess, and a key that is
    /// used often is soon kept again.
    pub fn insert(&self, key: &str, value: &V) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            let evicted = entries.keys().next().cloned();
            if let Some(evicted) = evicted {
                entries.remove(&evicted);
            }
        }
        entries.insert(key.into(), value.clone());
    }

    /// How many values are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, V>> {
        // Each entry is inserted whole: a panic elsewhere cannot leave one half-written.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<V> std::fmt::Debug for BoundedCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unified_push::{EndpointClaims, UpId};

    fn claims(owner: &str) -> EndpointClaims {
        let id = UpId::parse("WFekBFu55IP9GVrRSABOPfUaPVqPjQiP/fb++/tnIoE=").expect("valid id");
        EndpointClaims {
            owner: owner.to_owned(),
            expires_at: 1,
            application: id.clone(),
            instance: id,
        }
    }

    #[test]
    fn a_kept_token_gives_its_claims_and_no_other_does() {
        let opened = BoundedCache::new(8);
        opened.insert("v2.local.a", &claims("a@example.test/r"));
        assert_eq!(opened.get("v2.local.a"), Some(claims("a@example.test/r")));
        assert_eq!(opened.get("v2.local.A"), None);
        assert_eq!(opened.get("v2.local.a "), None);
        assert_eq!(opened.get("v2.local."), None);
    }

    #[test]
    fn it_never_keeps_more_than_its_capacity() {
        let opened = BoundedCache::new(3);
        for n in 0..100 {
            let token = format!("v2.local.{n}");
            opened.insert(&token, &claims("a@example.test/r"));
            assert!(opened.len() <= 3);
            assert!(opened.get(&token).is_some(), "the newest is kept");
        }
        // Keeping a token that is already kept makes no room.
        opened.insert("v2.local.99", &claims("b@example.test/r"));
        assert_eq!(opened.len(), 3);
        assert_eq!(opened.get("v2.local.99"), Some(claims("b@example.test/r")));
    }
}
