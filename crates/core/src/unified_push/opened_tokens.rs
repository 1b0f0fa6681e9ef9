//! Endpoint tokens that opened recently. Opening one costs a decryption (XChaCha20-Poly1305)
//! and a JSON parse, once per message; an endpoint that gets messages often is opened once and
//! then found here by its exact text. Only tokens that opened and had not expired are kept, and
//! expiry is checked again on every use, so `open` answers as it would without them.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::endpoint_token::EndpointClaims;

/// How many tokens are kept by default: each costs about 600 bytes.
pub(crate) const CAPACITY: usize = 1024;

/// Tokens and the claims they opened to, at most `capacity` of them.
pub(crate) struct OpenedTokens {
    tokens: Mutex<HashMap<Box<str>, EndpointClaims>>,
    capacity: usize,
}

impl OpenedTokens {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            tokens: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The claims `token` opened to, if it is kept.
    pub(crate) fn get(&self, token: &str) -> Option<EndpointClaims> {
        self.lock().get(token).cloned()
    }

    /// Keeps the claims `token` just opened to. When full, an arbitrary kept token makes room:
    /// the map is keyed by a per-process random hash, so which one is anybody's guess, and an
    /// endpoint that is used often is soon kept again.
    pub(crate) fn insert(&self, token: &str, claims: &EndpointClaims) {
        let mut tokens = self.lock();
        if tokens.len() >= self.capacity && !tokens.contains_key(token) {
            let evicted = tokens.keys().next().cloned();
            if let Some(evicted) = evicted {
                tokens.remove(&evicted);
            }
        }
        tokens.insert(token.into(), claims.clone());
    }

    /// How many tokens are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, EndpointClaims>> {
        // Each entry is inserted whole: a panic elsewhere cannot leave one half-written.
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unified_push::UpId;

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
        let opened = OpenedTokens::new(8);
        opened.insert("v2.local.a", &claims("a@example.test/r"));
        assert_eq!(opened.get("v2.local.a"), Some(claims("a@example.test/r")));
        assert_eq!(opened.get("v2.local.A"), None);
        assert_eq!(opened.get("v2.local.a "), None);
        assert_eq!(opened.get("v2.local."), None);
    }

    #[test]
    fn it_never_keeps_more_than_its_capacity() {
        let opened = OpenedTokens::new(3);
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
