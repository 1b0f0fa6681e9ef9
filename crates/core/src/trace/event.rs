//! One step of one delivery, as the trace keeps it: when, which hop, how it ended, how long it
//! took, and short ids that join it to log lines. Nothing in it names a user.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::clock::UnixMillis;
use crate::device::hex;

/// The id of one delivery, shared by its log lines and its trace events: 8 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(u32);

/// Counts the ids handed out; see [`TraceId::new`].
static NEXT_TRACE_ID: AtomicU32 = AtomicU32::new(0);
/// Drawn once per process, so ids of two runs do not line up in merged logs.
static TRACE_ID_MASK: OnceLock<u32> = OnceLock::new();
/// Odd, so multiplying by it permutes `u32`: 2^32 ids in a row are all different. Spreading
/// the counter's bits makes neighbouring ids look unrelated when read in a log.
const TRACE_ID_SPREAD: u32 = 0x9E37_79B9;

impl TraceId {
    /// A fresh id; the first 2^32 of a process are all different.
    #[allow(clippy::new_without_default)] // a default id would read as a fixed one
    pub fn new() -> Self {
        let count = NEXT_TRACE_ID.fetch_add(1, Ordering::Relaxed);
        let mask = *TRACE_ID_MASK.get_or_init(rand::random);
        Self(count.wrapping_mul(TRACE_ID_SPREAD) ^ mask)
    }

    /// The id as a number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl From<u32> for TraceId {
    fn from(id: u32) -> Self {
        Self(id)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

/// Why a text is not a [`TraceId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceIdError {
    /// It is not exactly 8 hex digits.
    #[error("a trace id is 8 hex digits")]
    NotEightHexDigits,
}

impl FromStr for TraceId {
    type Err = TraceIdError;

    /// Reads 8 hex digits, in either case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // `from_str_radix` alone would also take a sign and fewer digits.
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TraceIdError::NotEightHexDigits);
        }
        u32::from_str_radix(text, 16)
            .map(Self)
            .map_err(|_| TraceIdError::NotEightHexDigits)
    }
}

impl Serialize for TraceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Where in its path a delivery was when the event was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hop {
    /// A XEP-0357 publish, or a UnifiedPush `POST`, was received.
    PublishReceived,
    /// The upstream push service (FCM) answered the wake-up.
    UpstreamAnswered,
    /// The UnifiedPush push IQ was sent to the client.
    PushSent,
    /// The client answered the push IQ.
    ClientAnswered,
    /// The message was kept for a client that was away.
    Stored,
    /// Kept messages were sent when the client came online.
    FlushedOnPresence,
    /// Kept messages were sent when the component link came up.
    FlushedOnLinkUp,
    /// Kept messages were sent right after a new message reached the client.
    FlushedAfterDelivery,
    /// The registration or endpoint was revoked.
    Revoked,
    /// A kept message expired before it could be sent.
    Expired,
    /// The delivery was given up without another hop.
    Dropped,
}

impl Hop {
    /// The snake_case name shown and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PublishReceived => "publish_received",
            Self::UpstreamAnswered => "upstream_answered",
            Self::PushSent => "push_sent",
            Self::ClientAnswered => "client_answered",
            Self::Stored => "stored",
            Self::FlushedOnPresence => "flushed_on_presence",
            Self::FlushedOnLinkUp => "flushed_on_link_up",
            Self::FlushedAfterDelivery => "flushed_after_delivery",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Dropped => "dropped",
        }
    }
}

impl Serialize for Hop {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// How a hop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceOutcome {
    /// It went through.
    Ok,
    /// The push service says the device token is gone.
    DeadToken,
    /// A rate limit, ours or the service's, refused it.
    RateLimited,
    /// The push service refused our credentials.
    AuthError,
    /// The push service failed (5xx or an error it reported).
    ServerError,
    /// No answer came within the deadline.
    Timeout,
    /// The connection failed before an answer.
    Transport,
    /// The client did not take the message (offline, or answered with an error).
    NotDelivered,
    /// The client or the user revoked the endpoint or registration.
    Revoked,
    /// We refused it (bad secret, unknown node, invalid or full).
    Refused,
}

impl TraceOutcome {
    /// The snake_case name shown and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::DeadToken => "dead_token",
            Self::RateLimited => "rate_limited",
            Self::AuthError => "auth_error",
            Self::ServerError => "server_error",
            Self::Timeout => "timeout",
            Self::Transport => "transport",
            Self::NotDelivered => "not_delivered",
            Self::Revoked => "revoked",
            Self::Refused => "refused",
        }
    }
}

impl Serialize for TraceOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A short tag of a UnifiedPush application id: the first 4 bytes of its SHA-256, enough to tell
/// a user's few applications apart without keeping the id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AppTag([u8; 4]);

impl AppTag {
    /// The tag of `application`, the UnifiedPush application id as registered.
    pub fn of(application: &str) -> Self {
        let digest = Sha256::digest(application.as_bytes());
        let mut tag = [0u8; 4];
        tag.copy_from_slice(&digest[..4]);
        Self(tag)
    }
}

impl fmt::Display for AppTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for AppTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppTag({self})")
    }
}

impl Serialize for AppTag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One recorded step of a delivery. 24 bytes: a full trace of 32 events is 768 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    /// When the hop ended.
    pub at: UnixMillis,
    /// Which hop.
    pub hop: Hop,
    /// How it ended.
    pub outcome: TraceOutcome,
    /// How long the hop took, in microseconds (at most `u32::MAX`, about 71 minutes).
    pub latency_us: u32,
    /// The UnifiedPush application, for UnifiedPush deliveries.
    pub application: Option<AppTag>,
    /// The delivery this step belongs to.
    pub trace_id: TraceId,
}

impl TraceEvent {
    /// `elapsed` in whole microseconds, saturating at `u32::MAX`, for [`TraceEvent::latency_us`].
    pub fn saturating_micros(elapsed: Duration) -> u32 {
        u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)
    }
}

/// A latency of `micros` as people read it: `-` for none, `1.23 ms`, `123 ms`, `42 s`, and
/// `> 71 min` where [`TraceEvent::latency_us`] saturated.
pub fn latency_text(micros: u32) -> String {
    match micros {
        0 => "-".to_owned(),
        u32::MAX => "> 71 min".to_owned(),
        m if m < 10_000 => format!("{:.2} ms", f64::from(m) / 1000.0),
        m if m < 10_000_000 => format!("{} ms", m / 1000),
        m => format!("{} s", m / 1_000_000),
    }
}
