//! The client port: how the UnifiedPush provider reaches a registered client (an XMPP IQ
//! `<push/>` in practice).

use async_trait::async_trait;

/// One UnifiedPush message for one client.
#[derive(Clone, Copy, Debug)]
pub struct UpPush<'a> {
    /// The owner's full JID, from the endpoint token.
    pub owner: &'a str,
    /// The UnifiedPush `application` id.
    pub application: &'a str,
    /// The UnifiedPush `instance` id.
    pub instance: &'a str,
    /// The POST body, unchanged.
    pub body: &'a [u8],
    /// The endpoint token the message was posted to: what another instance needs to reach the
    /// client when this one does not hold the link (it opens to the other fields).
    pub endpoint_token: &'a str,
}

/// What the client made of a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushDelivery {
    /// The client answered `result`.
    Delivered,
    /// The client answered `item-not-found` or `feature-not-implemented`: it no longer knows
    /// this endpoint (docs/protocol.md A.3).
    Revoked,
    /// Any other error, no answer in time, or no link: try again later. The text is for logs.
    NotDelivered(String),
}

/// Sends pushes to clients and waits for their answer (up to the implementation's deadline).
#[async_trait]
pub trait ClientLink: Send + Sync + 'static {
    /// Sends one push and classifies the client's answer.
    async fn push(&self, push: UpPush<'_>) -> PushDelivery;
}
