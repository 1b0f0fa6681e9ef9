//! pushgate's storage on SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! [`SqlStore`] implements `pushgate-core`'s [`Store`](pushgate_core::Store) port with sqlx's
//! runtime-checked queries over one `AnyPool`, so building needs no database. The schema lives
//! in `migrations/{sqlite,postgres,mysql}`, is compiled in, and is brought up to date by
//! [`SqlStore::connect`].
//!
//! [`CachingStore`] goes in front of it to answer the two hot lookups (a publish's
//! registration, an endpoint's revocation) from memory.
//!
//! Times are stored as epoch milliseconds (`BIGINT`). A row whose `expires_at` is not after
//! `now` counts as expired: it is no longer returned and the next purge deletes it.
//!
//! [`import`] reads other push servers' databases (p2's) for `pushgate import-p2`.
//!
//! Column sizes the callers must respect (longer values fail on PostgreSQL and MySQL): domain
//! 1023 characters, push token and endpoint token 4096, UnifiedPush application, instance and
//! topic 255, urgency 16.

mod cache;
mod database_config;
pub mod import;
mod lease;
mod message_batches;
mod messages;
mod metrics;
mod migrations;
mod peers;
mod registrations;
mod revocations;
mod setup;
mod sql_store;
mod sqlite;
mod statements;
mod stats;

pub use cache::{CACHE_CHANNEL, CacheConfig, CachingStore};
pub use database_config::{DatabaseConfig, DatabaseConfigError, MAX_CACHE_TTL};
pub use lease::{hold_link_lease, link_lease_key};
pub use metrics::serve_store_metrics;
pub use peers::{
    APPLICATION_NAME_PREFIX, AnswerSink, HANDOVER_MARGIN, HandoverLink, HandoverTimeouts,
    HoldsLink, PeerBus, PeerBusError, live_instances,
};
pub use setup::{Backend, StoreConfig, StoreSetupError};
pub use sql_store::SqlStore;
pub use stats::{InstanceInfo, RegistrationCount, StoreStats};
