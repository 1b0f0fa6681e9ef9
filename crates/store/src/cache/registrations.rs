//! Live registrations by node, for publishes.

use std::collections::HashMap;

use pushgate_core::{DeviceHash, PushService, Registration, UnixMillis};

use crate::cache::shelf::{Contents, Generation, Index, Shelf};

/// Which node each cached device's registration is under, so a write naming the device (not
/// the node) finds its entry.
#[derive(Debug, Default)]
pub(crate) struct ByDevice(HashMap<(PushService, DeviceHash), String>);

impl Index<String, Registration> for ByDevice {
    fn remember(&mut self, node: &String, registration: &Registration) -> Option<String> {
        let device = (registration.service, registration.device.clone());
        // A device under another node before: unregistered and registered anew elsewhere
        // (a new registration always gets a fresh node); that old entry goes.
        self.0
            .insert(device, node.clone())
            .filter(|before| before != node)
    }

    fn forget(&mut self, node: &String, registration: &Registration) {
        let device = (registration.service, registration.device.clone());
        if self.0.get(&device) == Some(node) {
            self.0.remove(&device);
        }
    }
}

/// Live registrations as last read, keyed by node.
#[derive(Debug)]
pub(crate) struct RegistrationCache {
    shelf: Shelf<String, Registration, ByDevice>,
}

impl RegistrationCache {
    pub(crate) fn new(max_entries: usize, ttl_ms: i64) -> Self {
        Self {
            shelf: Shelf::new(max_entries, ttl_ms),
        }
    }

    /// The registration a publish from `domain` to `node` is for, if known and fresh.
    pub(crate) fn get(&self, domain: &str, node: &str, now: UnixMillis) -> Option<Registration> {
        self.shelf.get(node, now, |registration| {
            (registration.domain == domain).then(|| registration.clone())
        })
    }

    /// Take before reading the database for [`RegistrationCache::fill`].
    pub(crate) fn generation(&self) -> Generation {
        self.shelf.generation()
    }

    /// Keeps what the database answered for (`domain`, `node`), if it may be given again.
    pub(crate) fn fill(
        &self,
        before: Generation,
        domain: &str,
        node: &str,
        registration: &Registration,
        now: UnixMillis,
    ) {
        // Only live registrations found under exactly the names asked. A dead one is read
        // again every time: its token may be revived by a re-registration on another
        // instance, and a stale "dead" would answer a cancel error, which makes the user's
        // server drop the registration. The same goes for "no such node", so answers without
        // a registration are never kept. A row the database matched only by its collation
        // (another letter case) is left to the database too.
        if registration.dead_since.is_some()
            || registration.domain != domain
            || registration.node.as_str() != node
        {
            return;
        }
        self.shelf
            .fill(before, node.to_owned(), registration.clone(), now);
    }

    /// Drops the entry of a device whose row was just written (or may have been).
    pub(crate) fn forget_device(&self, service: PushService, device: &DeviceHash) {
        self.shelf
            .invalidate(|contents| forget_device(contents, service, device));
    }

    /// Drops the entry of a device, and the one under `node`, after a registration.
    pub(crate) fn forget_registration(
        &self,
        service: PushService,
        device: &DeviceHash,
        node: Option<&str>,
    ) {
        self.shelf.invalidate(|contents| {
            forget_device(contents, service, device);
            if let Some(node) = node {
                contents.remove(node);
            }
        });
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        self.shelf.invalidate(Contents::clear);
    }

    /// Drops stale entries.
    pub(crate) fn sweep(&self, now: UnixMillis) {
        self.shelf.sweep(now, |_| true);
    }

    pub(crate) fn len(&self) -> usize {
        self.shelf.len()
    }
}

fn forget_device(
    contents: &mut Contents<String, Registration, ByDevice>,
    service: PushService,
    device: &DeviceHash,
) {
    if let Some(node) = contents.index.0.get(&(service, device.clone())).cloned() {
        contents.remove(node.as_str());
    }
}
