//! The wake-up port: how the app server reaches a phone (FCM now, APNs later).

use async_trait::async_trait;

use crate::device::{DeviceHash, PushService};

/// One wake-up to send.
#[derive(Clone, Copy, Debug)]
pub struct WakeRequest<'a> {
    /// Which push service the token belongs to.
    pub service: PushService,
    /// The FCM registration token or APNs device token.
    pub token: &'a str,
    /// The hash of account and device, the only data the phone receives; `None` for a
    /// publish whose node is the token itself (Monal's way), which names no device.
    pub device: Option<&'a DeviceHash>,
}

/// What the push service made of a wake-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WakeOutcome {
    /// The push service accepted the message.
    Accepted,
    /// The token is dead for good (FCM `UNREGISTERED`, APNs 410).
    TokenDead,
    /// Not sent now, worth trying on the next publish: quota, 429, 5xx, timeout, network,
    /// OAuth trouble, or a service pushgate cannot send to yet. The text is for logs.
    Transient(String),
    /// The message itself was refused (FCM `INVALID_ARGUMENT`, sender mismatch): the
    /// registration is unusable as it stands. The text is for logs.
    Rejected(String),
}

/// Sends wake-ups. Implemented by `pushgate-fcm` (and later an APNs sender); the app server
/// holds one per configured service.
#[async_trait]
pub trait Waker: Send + Sync + 'static {
    /// Sends one wake-up and classifies the answer. Never takes longer than the sender's own
    /// deadline, retries included.
    async fn wake(&self, request: WakeRequest<'_>) -> WakeOutcome;
}
