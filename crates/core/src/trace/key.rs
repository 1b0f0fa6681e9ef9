//! What the trace keeps instead of a node or a JID: a keyed hash under a key that lives only in
//! this process's memory, so the map can be dumped, logged or leaked without naming anyone, and
//! a list of known JIDs hashed elsewhere matches nothing in it.

use std::fmt;

use std::hash::Hasher as _;

use siphasher::sip128::{Hasher128 as _, SipHasher24};

use crate::device::hex;

/// Prefixes that keep the two kinds of key apart: a node can never hash to an account's key,
/// whatever its text.
const NODE_DOMAIN: &[u8] = b"node\0";
const ACCOUNT_DOMAIN: &[u8] = b"account\0";

/// The key of one trace: a 128-bit keyed hash (SipHash-2-4-128, a PRF made for short inputs)
/// of a node or of a bare JID.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceKey([u8; 16]);

impl std::hash::Hash for TraceKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Half the MAC: already uniform, and unknown to anyone who would pick colliding keys.
        let mut half = [0u8; 8];
        half.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(half));
    }
}

/// The map's hasher: a [`TraceKey`] is its own hash, so hashing it again (SipHash, the
/// default) would only spend time on every event recorded.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TraceKeyHasher(u64);

impl std::hash::Hasher for TraceKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for a `TraceKey`; any other input is still spread (FNV-1a).
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl TraceKey {
    /// The 16 bytes of the MAC.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for TraceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Enough to tell keys apart in a dump; the MAC itself names no one.
        write!(f, "TraceKey({}…)", hex(&self.0[..4]))
    }
}

/// The per-process random key the [`TraceKey`]s are made with. Never stored, never printed.
pub(super) struct MacKey([u8; 16]);

impl MacKey {
    /// A fresh key from the operating system's CSPRNG.
    pub(super) fn generate() -> Self {
        Self(rand::random())
    }

    /// The key of a XEP-0357 node, exactly as the client chose it (nodes are case-sensitive).
    pub(super) fn node_key(&self, node: &str) -> TraceKey {
        self.mac(NODE_DOMAIN, |mac| mac.update(node.as_bytes()))
    }

    /// The key of an account: the bare JID (any `/resource` cut off) with its ASCII lower-cased,
    /// so the forms a server may send for one account meet in one trace.
    pub(super) fn account_key(&self, jid: &str) -> TraceKey {
        let bare = jid.split_once('/').map_or(jid, |(bare, _resource)| bare);
        self.mac(ACCOUNT_DOMAIN, |mac| {
            // Lower-cased through a small buffer: no allocation per key.
            let mut buffer = [0u8; 64];
            for chunk in bare.as_bytes().chunks(buffer.len()) {
                let lowered = &mut buffer[..chunk.len()];
                lowered.copy_from_slice(chunk);
                lowered.make_ascii_lowercase();
                mac.update(lowered);
            }
        })
    }

    fn mac(&self, domain: &[u8], feed: impl FnOnce(&mut Feed)) -> TraceKey {
        // A keyed BLAKE2b took two compressions per key, on every publish; SipHash is a tenth
        // of that and as much a PRF for a key nobody outside the process knows.
        let mut hasher = Feed(SipHasher24::new_with_key(&self.0));
        hasher.update(domain);
        feed(&mut hasher);
        TraceKey(hasher.0.finish128().as_bytes())
    }
}

/// What a key is made from, fed in pieces.
pub(super) struct Feed(SipHasher24);

impl Feed {
    fn update(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(…)")
    }
}
