//! `/push/{token}`: the UnifiedPush endpoint URLs handed to clients (docs/protocol.md A.3), and
//! `/message/{id}`, the push message resources their `Location` names (RFC 8030 §5).

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use pushgate_core::provider::Provider;

use crate::app::Routes;
use crate::errors::json_error;
use crate::matrix_gateway::MatrixGatewaySettings;
use crate::post_message::post_message;
use crate::rate_limit::{KeyedLimit, MAX_TRACKED_KEYS, RateLimits};

/// The largest message body a UnifiedPush endpoint accepts (docs/protocol.md A.3; the UnifiedPush
/// spec's 4096-byte message limit).
pub const UP_MAX_MESSAGE_BYTES: usize = 4096;

/// How the push endpoint answers; built from the `[http]` and `[unified_push]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEndpointConfig {
    /// The public base URL (`https://up.example`, no trailing slash): a message's `Location`
    /// is `{public_url}/message/{id}`.
    pub public_url: String,
    /// The per-endpoint and per-client rates.
    pub rate_limits: RateLimits,
    /// Whether pushgate runs behind a reverse proxy whose `X-Forwarded-For` (or `Forwarded`)
    /// header says who the client is. Only set it when every request comes through that proxy:
    /// otherwise a client can claim any address.
    pub trust_forwarded_for: bool,
    /// The Matrix Push Gateway on `/_matrix/push/v1/notify`, when served.
    pub matrix_gateway: Option<MatrixGatewaySettings>,
}

impl PushEndpointConfig {
    /// The defaults for `public_url`: [`RateLimits::default`], the peer address counts, no
    /// Matrix gateway.
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into(),
            rate_limits: RateLimits::default(),
            trust_forwarded_for: false,
            matrix_gateway: None,
        }
    }
}

/// Why [`push_routes`] refused its configuration.
#[derive(Debug, thiserror::Error)]
pub enum PushEndpointError {
    /// `public_url` holds characters a `Location` header cannot carry.
    #[error("public_url cannot be used in a Location header (use ASCII, punycode for names)")]
    PublicUrl,
    /// A rate is zero or too fast to express.
    #[error(
        "the {which} rate must allow at least one request per period, and at most one per nanosecond"
    )]
    Rate {
        /// `per_endpoint` or `per_client`.
        which: &'static str,
    },
}

/// What the push handlers share.
pub(crate) struct PushEndpoint {
    pub(crate) provider: Arc<Provider>,
    /// `{public_url}/message/`, checked once to be a valid header value when followed by an id.
    pub(crate) message_url_prefix: String,
    /// `{public_url}/push/`: what every endpoint URL handed out starts with.
    pub(crate) push_url_prefix: String,
    /// The Matrix gateway's settings, when it is served.
    pub(crate) matrix_gateway: Option<MatrixGatewaySettings>,
    pub(crate) per_endpoint: KeyedLimit<u64>,
    pub(crate) per_client: KeyedLimit<IpAddr>,
    pub(crate) trust_forwarded_for: bool,
    /// Keys the per-endpoint limit by a 64-bit hash of the token, seeded per process: entries
    /// stay small whatever the token's length, and nobody can aim for a collision.
    pub(crate) token_hasher: std::hash::RandomState,
}

impl PushEndpoint {
    /// The per-endpoint rate-limit key of `token`.
    pub(crate) fn endpoint_key(&self, token: &str) -> u64 {
        self.token_hasher.hash_one(token)
    }
}

/// The routes `GET`/`POST /push/{token}` and `/message/{id}`, answering for `provider`.
pub fn push_routes(
    provider: Arc<Provider>,
    config: PushEndpointConfig,
) -> Result<Routes, PushEndpointError> {
    let public_url = config.public_url.trim_end_matches('/');
    let message_url_prefix = format!("{public_url}/message/");
    let push_url_prefix = format!("{public_url}/push/");
    // The id appended later is hex, so the prefix decides whether every Location is valid.
    HeaderValue::from_str(&message_url_prefix).map_err(|_| PushEndpointError::PublicUrl)?;
    let per_endpoint = config
        .rate_limits
        .per_endpoint
        .quota()
        .ok_or(PushEndpointError::Rate {
            which: "per_endpoint",
        })?;
    let per_client = config
        .rate_limits
        .per_client
        .quota()
        .ok_or(PushEndpointError::Rate {
            which: "per_client",
        })?;
    if config.matrix_gateway.is_some() {
        crate::metrics::matrix_gateway_served();
    }
    let endpoint = Arc::new(PushEndpoint {
        provider,
        message_url_prefix,
        push_url_prefix,
        matrix_gateway: config.matrix_gateway,
        per_endpoint: KeyedLimit::new(per_endpoint, MAX_TRACKED_KEYS),
        per_client: KeyedLimit::new(per_client, MAX_TRACKED_KEYS),
        trust_forwarded_for: config.trust_forwarded_for,
        token_hasher: std::hash::RandomState::new(),
    });
    let router = Router::new()
        .route("/push/{token}", get(discovery).post(post_message))
        .route("/message/{id}", any(no_such_message))
        .with_state(Arc::clone(&endpoint));
    Ok(Routes::with_push(router, endpoint))
}

/// `GET /push/{token}`: the UnifiedPush discovery answer, the same for any token (docs/protocol.md
/// A.3, first row; up answers so for every token too, and clients probe before they register).
async fn discovery() -> impl IntoResponse {
    Json(serde_json::json!({ "unifiedpush": { "version": 1 } }))
}

/// `/message/{id}`: the push message resource a 201's `Location` names. Messages are handed
/// on (or kept internally) at once, so there is nothing to read or delete here (RFC 8030 §6.1,
/// §7.3 leave both optional).
async fn no_such_message() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such message")
}
