//! A fake FCM HTTP v1 API and Google OAuth2 token endpoint on 127.0.0.1:0.
//!
//! It checks what the real services check (the RS256 grant, the bearer token, the message
//! shape), answers with Google's documented JSON, and can be scripted per push token: "token X
//! answers `UNREGISTERED`", "token Y answers `UNAVAILABLE` twice, then succeeds", "answer after
//! 50 ms", "never answer". It records every accepted message and counts requests, connections
//! and the sends that came over HTTP/2, and how many sends each connection carried at once. It
//! speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on the same port, and can allow
//! fewer streams per HTTP/2 connection, as Google's front end does.

mod answer;
mod connections;
mod oauth;
mod send;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, Uri, Version};
use axum::response::Response;
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use answer::{Answer, FcmErrorCode, captured_error};
pub use connections::FAKE_MAX_CONCURRENT_STREAMS;

/// The fake's service-account key file; `token_uri` is replaced by the running fake's.
const SERVICE_ACCOUNT: &str = include_str!("fake_fcm/service-account.json");
/// A key the fake does not know.
const UNKNOWN_KEY: &str = include_str!("fake_fcm/unknown-key.pem");

/// The project of the fake's service account.
pub const FAKE_PROJECT_ID: &str = "pushgate-fake";
/// The `client_email` (JWT `iss`) of the fake's service account.
pub const FAKE_CLIENT_EMAIL: &str = "pushgate-fake@pushgate-fake.iam.gserviceaccount.com";
/// The `private_key_id` (JWT `kid`) of the fake's service account.
pub const FAKE_PRIVATE_KEY_ID: &str = "fa4ef0c0ffee00000000000000000000000000aa";

/// One message the fake accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// `message.token`.
    pub token: String,
    /// `message.data.account`.
    pub account: String,
    /// `message.android.collapse_key`, when sent.
    pub collapse_key: Option<String>,
    /// `message.android.priority`, when sent.
    pub priority: Option<String>,
    /// The whole request body.
    pub body: serde_json::Value,
}

/// What tests tune and what the fake saw; one per fake, shared with its handlers.
struct Shared {
    api_addr: SocketAddr,
    public_key: Vec<u8>,
    token_requests: AtomicU64,
    send_requests: AtomicU64,
    /// Sends that came over HTTP/2.
    http2_sends: AtomicU64,
    /// TCP connections accepted.
    connections: AtomicU64,
    /// The `SETTINGS_MAX_CONCURRENT_STREAMS` of connections accepted from now on.
    max_concurrent_streams: AtomicU32,
    /// Connections that carried a send.
    send_connections: AtomicU64,
    /// Connections that carried a send and are open now.
    open_send_connections: AtomicUsize,
    max_open_send_connections: AtomicUsize,
    /// The most sends in progress at once on one connection.
    max_sends_per_connection: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    shutdown: CancellationToken,
    state: Mutex<Tunables>,
}

struct Tunables {
    token_lifetime: Duration,
    refuse_grants: bool,
    token_delay: Duration,
    /// Issued bearer tokens and when each expires.
    access_tokens: HashMap<String, tokio::time::Instant>,
    issued: u64,
    default_answer: Answer,
    scripts: HashMap<String, VecDeque<Answer>>,
    sends_per_token: HashMap<String, u64>,
    messages: Vec<ReceivedMessage>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, Tunables> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn token_uri(&self) -> String {
        format!("http://{}/token", self.api_addr)
    }
}

/// A running fake FCM; stops when dropped.
pub struct FakeFcm {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeFcm {
    /// Starts the fake on 127.0.0.1 with a free port. Every token succeeds until scripted.
    pub async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let shared = Arc::new(Shared {
            api_addr: listener.local_addr()?,
            public_key: oauth::public_key_of(&service_account_value())
                .map_err(|problem| io::Error::new(io::ErrorKind::InvalidData, problem))?,
            token_requests: AtomicU64::new(0),
            send_requests: AtomicU64::new(0),
            http2_sends: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            max_concurrent_streams: AtomicU32::new(FAKE_MAX_CONCURRENT_STREAMS),
            send_connections: AtomicU64::new(0),
            open_send_connections: AtomicUsize::new(0),
            max_open_send_connections: AtomicUsize::new(0),
            max_sends_per_connection: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            shutdown: CancellationToken::new(),
            state: Mutex::new(Tunables {
                token_lifetime: Duration::from_secs(3599),
                refuse_grants: false,
                token_delay: Duration::ZERO,
                access_tokens: HashMap::new(),
                issued: 0,
                default_answer: Answer::success(),
                scripts: HashMap::new(),
                sends_per_token: HashMap::new(),
                messages: Vec::new(),
            }),
        });
        let router = Router::new()
            .fallback(route)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(connections::serve(listener, router, Arc::clone(&shared)));
        Ok(Self { shared, task })
    }

    /// The FCM API base URL to configure (`http://127.0.0.1:PORT`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.shared.api_addr)
    }

    /// The OAuth2 token endpoint, the `token_uri` of [`service_account_json`](Self::service_account_json).
    pub fn token_uri(&self) -> String {
        self.shared.token_uri()
    }

    /// The fake project's service-account key file, with `token_uri` pointing at this fake.
    pub fn service_account_json(&self) -> String {
        let mut account = service_account_value();
        account["token_uri"] = self.token_uri().into();
        account.to_string()
    }

    /// The same key file with a private key the fake does not know: every grant it signs is
    /// refused with `invalid_grant`.
    pub fn service_account_json_with_unknown_key(&self) -> String {
        let mut account = service_account_value();
        account["token_uri"] = self.token_uri().into();
        account["private_key"] = UNKNOWN_KEY.into();
        account.to_string()
    }

    /// Writes [`service_account_json`](Self::service_account_json) to a temporary file.
    pub fn write_service_account(&self) -> io::Result<tempfile::NamedTempFile> {
        let mut file = tempfile::NamedTempFile::new()?;
        io::Write::write_all(&mut file, self.service_account_json().as_bytes())?;
        Ok(file)
    }

    /// Queues answers for sends to `token`, used in order; after them, the default answer.
    pub fn script(&self, token: &str, answers: impl IntoIterator<Item = Answer>) {
        self.shared
            .state()
            .scripts
            .entry(token.to_owned())
            .or_default()
            .extend(answers);
    }

    /// The answer for sends with no script left (initially [`Answer::success`]).
    pub fn set_default_answer(&self, answer: Answer) {
        self.shared.state().default_answer = answer;
    }

    /// The `expires_in` of access tokens issued from now on (initially 3599 s, as Google).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.state().token_lifetime = lifetime;
    }

    /// Makes every access token issued so far invalid, as if revoked or expired early.
    pub fn revoke_access_tokens(&self) {
        self.shared.state().access_tokens.clear();
    }

    /// Refuses every grant with 400 `invalid_grant` while `refuse` is true.
    pub fn refuse_grants(&self, refuse: bool) {
        self.shared.state().refuse_grants = refuse;
    }

    /// Delays every token endpoint answer.
    pub fn set_token_delay(&self, delay: Duration) {
        self.shared.state().token_delay = delay;
    }

    /// The `SETTINGS_MAX_CONCURRENT_STREAMS` of HTTP/2 connections accepted from now on
    /// (initially [`FAKE_MAX_CONCURRENT_STREAMS`]); Google's FCM endpoint says 100.
    pub fn set_max_concurrent_streams(&self, streams: u32) {
        self.shared
            .max_concurrent_streams
            .store(streams, Ordering::Relaxed);
    }

    /// Requests to the token endpoint so far, refused ones included.
    pub fn token_requests(&self) -> u64 {
        self.shared.token_requests.load(Ordering::Relaxed)
    }

    /// Requests to `messages:send` so far, refused ones included.
    pub fn send_requests(&self) -> u64 {
        self.shared.send_requests.load(Ordering::Relaxed)
    }

    /// Requests to `messages:send` so far that came over HTTP/2.
    pub fn sends_over_http2(&self) -> u64 {
        self.shared.http2_sends.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far, to the token endpoint and to `messages:send` alike.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Connections that carried at least one send to `messages:send` so far.
    pub fn send_connections(&self) -> u64 {
        self.shared.send_connections.load(Ordering::SeqCst)
    }

    /// Connections that carried a send and are open now.
    pub fn open_send_connections(&self) -> usize {
        self.shared.open_send_connections.load(Ordering::SeqCst)
    }

    /// The most connections that carried a send open at once.
    pub fn max_open_send_connections(&self) -> usize {
        self.shared.max_open_send_connections.load(Ordering::SeqCst)
    }

    /// The most sends in progress at once on one connection.
    pub fn max_sends_per_connection(&self) -> usize {
        self.shared.max_sends_per_connection.load(Ordering::SeqCst)
    }

    /// Sends with an accepted bearer token and a well-formed message to `token` so far.
    pub fn sends_to(&self, token: &str) -> u64 {
        self.shared
            .state()
            .sends_per_token
            .get(token)
            .copied()
            .unwrap_or(0)
    }

    /// The messages answered with success, in order.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.state().messages.clone()
    }

    /// How many sends the fake has answered with success.
    pub fn accepted_count(&self) -> usize {
        self.shared.state().messages.len()
    }

    /// The most sends that were in progress at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::Relaxed)
    }

    /// Sends in progress now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }
}

impl Drop for FakeFcm {
    fn drop(&mut self) {
        // Wakes answers that wait forever, then stops the server.
        self.shared.shutdown.cancel();
        self.task.abort();
    }
}

fn service_account_value() -> serde_json::Value {
    // The file is part of this crate and checked by its tests.
    serde_json::from_str(SERVICE_ACCOUNT).unwrap_or_default()
}

async fn route(
    AxumState(shared): AxumState<Arc<Shared>>,
    Extension(connection): Extension<Arc<connections::ConnectionLoad>>,
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if path == "/token" && method == Method::POST {
        oauth::token_endpoint(&shared, &headers, &body).await
    } else if path.starts_with("/v1/projects/") && method == Method::POST {
        if version == Version::HTTP_2 {
            shared.http2_sends.fetch_add(1, Ordering::Relaxed);
        }
        let _on_connection = connection.enter(&shared);
        send::messages_send(&shared, path, &headers, &body).await
    } else {
        answer::not_found()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_names_the_constants() {
        let account = service_account_value();
        assert_eq!(account["project_id"], FAKE_PROJECT_ID);
        assert_eq!(account["client_email"], FAKE_CLIENT_EMAIL);
        assert_eq!(account["private_key_id"], FAKE_PRIVATE_KEY_ID);
        assert!(oauth::public_key_of(&account).is_ok());
    }
}
