//! pushgate's push logic, free of any wire format.
//!
//! The adapters (`pushgate-xmpp`, `pushgate-up-http`, `pushgate-fcm`, `pushgate-store`) turn
//! network input into calls on this crate and implement its ports ([`Store`], later `Waker` and
//! `ClientLink`). Every decision about what a request means is made here.

pub mod account;
pub mod app_server;
pub mod bounded_cache;
pub mod client_link;
pub mod clock;
pub mod device;
pub mod matrix_gateway;
pub mod metric_handles;
pub mod provider;
pub mod push_module;
pub mod registration;
pub mod settings;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod trace;
pub mod unified_push;
pub mod waker;

pub use account::{AccountJid, AccountKey, AccountTag};
pub use client_link::{ClientLink, PushDelivery, UpPush};
pub use clock::{Clock, Sleeper, SystemClock, UnixMillis};
pub use device::{DeviceHash, PushService};
pub use registration::{Node, Registration, RegistrationRequest, Secret};
pub use store::{
    EndpointId, MessageStore, MessageStoreLimits, NewStoredMessage, OwnerKey, RegistrationStore,
    RevocationStore, Store, StoreError, StoreFullScope, StoredMessage, StoredMessageId,
    UnifiedPushStore,
};
pub use unified_push::{
    EndpointClaims, EndpointKey, EndpointKeyError, EndpointKeys, InvalidUpId, SealError,
    TokenError, UpId,
};
pub use waker::{WakeOutcome, WakeRequest, Waker};
