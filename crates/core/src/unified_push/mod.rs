//! The UnifiedPush provider's building blocks (docs/protocol.md A.3): endpoint tokens, the ids a
//! client registers with, and the expiration it is told.

pub mod endpoint_token;
pub mod expiration;
mod paseto;
pub mod up_id;

pub use endpoint_token::{
    EndpointClaims, EndpointKey, EndpointKeyError, EndpointKeys, MAX_TOKEN_LEN, SealError,
    TokenError,
};
pub use expiration::iso8601_utc;
pub use up_id::{InvalidUpId, UP_ID_BYTES, UpId};
