//! An answer as the caller gets it: the head and the whole (capped) body.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};

/// A complete answer from the upstream.
#[derive(Clone, Debug)]
pub struct UpstreamResponse {
    /// The status.
    pub status: StatusCode,
    /// The HTTP version that carried it.
    pub version: Version,
    /// The header fields.
    pub headers: HeaderMap,
    /// The whole body, at most [`max_body_bytes`](crate::UpstreamSettings::max_body_bytes).
    pub body: Bytes,
    /// `Retry-After`, parsed ([`parse_retry_after`](crate::parse_retry_after)).
    pub retry_after: Option<Duration>,
}
