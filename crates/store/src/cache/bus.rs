//! Telling the other instances that share a PostgreSQL database what this one changed, so
//! that their caches drop it within a moment instead of trusting it for the cache's `ttl`:
//! PostgreSQL's own `LISTEN`/`NOTIFY`, no broker of our own.
//!
//! After a write that other caches may hold an older answer for (a registration, an
//! unregistration, a token called dead, a revocation), the writer sends a notification on
//! [`CHANNEL`] naming the device or the endpoint; every instance listens and drops its entry.
//! A notification can be lost (a listener reconnecting): the listener then empties its caches,
//! and the `ttl` remains the bound for anything it could not hear. What a notification names
//! is a device hash or an endpoint id, never a JID, a node or a token.

use std::sync::Arc;
use std::time::Duration;

use pushgate_core::{DeviceHash, EndpointId, PushService};
use sqlx::AnyPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

use super::endpoints::EndpointCache;
use super::registrations::RegistrationCache;

/// The `LISTEN`/`NOTIFY` channel.
pub const CHANNEL: &str = "pushgate_cache";

/// How long the listener waits before connecting again after it failed to.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// What a notification tells the other instances to forget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Invalidation {
    /// The registration of this device changed (registered, unregistered, token dead).
    Device(PushService, DeviceHash),
    /// This endpoint was revoked.
    Endpoint(EndpointId),
}

impl Invalidation {
    /// `{sender} d {service} {device hash}` or `{sender} e {endpoint id}`.
    fn encode(&self, sender: u64) -> String {
        match self {
            Self::Device(service, device) => {
                format!("{sender:016x} d {} {}", service.as_str(), device.as_str())
            }
            Self::Endpoint(endpoint) => format!("{sender:016x} e {}", endpoint.as_str()),
        }
    }

    /// The sender and what it names; `None` for anything else (another program's message).
    fn decode(payload: &str) -> Option<(u64, Self)> {
        let mut words = payload.split(' ');
        let sender = u64::from_str_radix(words.next()?, 16).ok()?;
        let invalidation = match (words.next()?, words.next()?, words.next()) {
            ("d", service, Some(device)) => {
                Self::Device(PushService::parse(service)?, DeviceHash::from_hex(device)?)
            }
            ("e", endpoint, None)
                if endpoint.len() == 64 && endpoint.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Self::Endpoint(EndpointId::from_stored(endpoint))
            }
            _ => return None,
        };
        words.next().is_none().then_some((sender, invalidation))
    }
}

/// This instance's side of the channel: it sends, and its listener task drops what the others
/// send.
pub(crate) struct CacheBus {
    pool: AnyPool,
    /// Drawn at start: a notification from this instance is not acted on here again.
    sender: u64,
    listener: JoinHandle<()>,
}

impl CacheBus {
    /// Listens on `url`'s database for the other instances' notifications, dropping what they
    /// name from `registrations` and `endpoints`; sends through `pool`.
    pub(crate) fn start(
        url: &str,
        pool: AnyPool,
        registrations: Arc<RegistrationCache>,
        endpoints: Arc<EndpointCache>,
    ) -> Self {
        let sender = rand::random();
        let listener = tokio::spawn(listen(url.to_owned(), sender, registrations, endpoints));
        Self {
            pool,
            sender,
            listener,
        }
    }

    /// Tells the other instances. A failure is only logged: their `ttl` still bounds how
    /// long they can hold the old answer.
    pub(crate) async fn publish(&self, invalidation: &Invalidation) {
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(invalidation.encode(self.sender))
            .execute(&self.pool)
            .await;
        match sent {
            Ok(_) => crate::metrics::cache_notification("sent"),
            Err(error) => {
                crate::metrics::cache_notification("send_failed");
                tracing::debug!(%error, "cache notification not sent");
            }
        }
    }
}

impl Drop for CacheBus {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl std::fmt::Debug for CacheBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheBus")
            .field("sender", &format_args!("{:016x}", self.sender))
            .finish_non_exhaustive()
    }
}

/// The listener: connects, listens, and applies what arrives, for as long as the store lives.
async fn listen(
    url: String,
    own: u64,
    registrations: Arc<RegistrationCache>,
    endpoints: Arc<EndpointCache>,
) {
    loop {
        let mut listener = match PgListener::connect(&url).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for cache notifications; retrying");
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::warn!(%error, "cannot listen for cache notifications; retrying");
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        }
        // Whatever was said while nobody listened is unknown: start from the database.
        registrations.clear();
        endpoints.clear();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match Invalidation::decode(notification.payload()) {
                    Some((sender, _)) if sender == own => {}
                    Some((_, Invalidation::Device(service, device))) => {
                        registrations.forget_device(service, &device);
                        crate::metrics::cache_notification("applied");
                    }
                    Some((_, Invalidation::Endpoint(endpoint))) => {
                        endpoints.forget(&endpoint);
                        crate::metrics::cache_notification("applied");
                    }
                    None => crate::metrics::cache_notification("unreadable"),
                },
                // The connection was lost; the next call reconnects, and what was said in
                // between is lost: empty the caches.
                Ok(None) => {
                    crate::metrics::cache_notification("listener_reconnected");
                    registrations.clear();
                    endpoints.clear();
                }
                Err(error) => {
                    tracing::warn!(%error, "cache notifications lost; listening anew");
                    break;
                }
            }
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_read_back_and_nothing_else_does() {
        let device = DeviceHash::compute("a@example.test", "d1");
        let endpoint = EndpointId::of_token("v2.local.x");
        for invalidation in [
            Invalidation::Device(PushService::Apns, device.clone()),
            Invalidation::Endpoint(endpoint.clone()),
        ] {
            let payload = invalidation.encode(0xfeed);
            assert_eq!(Invalidation::decode(&payload), Some((0xfeed, invalidation)));
            assert!(!payload.contains("example.test"), "{payload}");
        }
        for foreign in [
            "",
            "hello",
            "000000000000feed d fcm",
            "000000000000feed d sms 0123",
            "000000000000feed e short",
            "000000000000feed e 00 extra",
            "zz e 0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(Invalidation::decode(foreign), None, "{foreign:?}");
        }
    }
}
