//! A fake Apple Push Notification service (the HTTP/2 provider API) on 127.0.0.1:0.
//!
//! It checks what Apple documents that APNs checks, in "Sending notification requests to APNs"
//! and "Handling notification responses from APNs": only `POST /3/device/{hex token}`, an ES256
//! provider token (JWT) signed by the fake team's key, not older than an hour and not replaced
//! on one connection within 20 minutes, the `apns-*` headers and a payload of at most 4 KB
//! (5 KB for VoIP). It answers with Apple's status codes and `{"reason": …}` bodies and always
//! sends an `apns-id`. Tests script answers per device token ("token X is `Unregistered`",
//! "token Y answers 503 twice, then succeeds", "never answer", "answer `Shutdown` and close
//! the connection with GOAWAY"), delay every answer, and move the fake's clock forward so a
//! provider token expires without waiting an hour. Every request is recorded, refused ones too.
//!
//! APNs speaks only HTTP/2 over TLS. The fake serves either h2c with prior knowledge
//! ([`FakeApns::start`]), the cheap choice for most tests, or TLS with ALPN `h2` and a test
//! certificate for `localhost` and `127.0.0.1` ([`FakeApns::start_tls`]; trust
//! [`FakeApns::ca_certificate_pem`]). It drives the `h2` server itself, not a framework, so that
//! it owns each connection: the provider token a connection last used lives with it, and a
//! `Shutdown` answer can send GOAWAY on exactly that connection.

mod answer;
mod connection;
mod jwt;
mod request;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use answer::ApnsAnswer;
pub use jwt::sign_jwt;

/// The key ID (JWT `kid`) of the fake's signing key, as in Apple's `AuthKey_<key id>.p8`.
pub const FAKE_KEY_ID: &str = "FAKEKEY123";
/// The team ID (JWT `iss`) the fake accepts.
pub const FAKE_TEAM_ID: &str = "FAKETEAM01";
/// A topic (app bundle ID) for tests; every topic is allowed unless a test narrows them.
pub const FAKE_TOPIC: &str = "im.pushgate.fake";
/// The fake team's signing key, PKCS#8 PEM, as Apple hands out `.p8` files.
pub const FAKE_KEY_P8: &str = include_str!("fake_apns/AuthKey_FAKEKEY123.p8");
/// The file name Apple gives [`FAKE_KEY_P8`].
pub const FAKE_KEY_FILE_NAME: &str = "AuthKey_FAKEKEY123.p8";
/// A P-256 key the fake does not know: provider tokens it signs are refused.
pub const UNKNOWN_KEY_P8: &str = include_str!("fake_apns/unknown-key.p8");
/// The test CA that signed the TLS fake's certificate (for `localhost` and `127.0.0.1`).
pub const FAKE_CA_PEM: &str = include_str!("fake_apns/ca.pem");
/// The largest payload APNs takes, in bytes, for every push type but VoIP.
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// The largest VoIP payload APNs takes, in bytes.
pub const MAX_VOIP_PAYLOAD_BYTES: usize = 5120;
/// How old a provider token's `iat` may be before APNs answers `ExpiredProviderToken`.
pub const PROVIDER_TOKEN_MAX_AGE: Duration = Duration::from_secs(3600);
/// How long a connection must keep a provider token before it may send another one; sooner is
/// `TooManyProviderTokenUpdates`.
pub const PROVIDER_TOKEN_MIN_UPDATE_INTERVAL: Duration = Duration::from_secs(20 * 60);

const SERVER_CERTIFICATE_PEM: &[u8] = include_bytes!("fake_apns/server.pem");
const SERVER_KEY_PEM: &[u8] = include_bytes!("fake_apns/server-key.pem");

/// A decoded provider token, whether or not its signature held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApnsJwt {
    /// The header's `alg`.
    pub alg: String,
    /// The header's `kid`.
    pub kid: String,
    /// The claims' `iss` (team ID).
    pub iss: String,
    /// The claims' `iat`, in seconds since the Unix epoch.
    pub iat: u64,
}

/// One request the fake received, accepted or refused.
#[derive(Clone, Debug, PartialEq)]
pub struct ApnsRequest {
    /// Which connection carried it: 1 for the first the fake accepted, and so on.
    pub connection: u64,
    /// The `:method`.
    pub method: String,
    /// The `:path`.
    pub path: String,
    /// The device token from a `/3/device/{token}` path; empty for any other path.
    pub token: String,
    /// `apns-topic`.
    pub topic: Option<String>,
    /// `apns-push-type`.
    pub push_type: Option<String>,
    /// `apns-priority`.
    pub priority: Option<String>,
    /// `apns-expiration`.
    pub expiration: Option<String>,
    /// `apns-collapse-id`.
    pub collapse_id: Option<String>,
    /// `apns-id` as the client sent it.
    pub apns_id: Option<String>,
    /// The JWT after `bearer ` in `authorization`.
    pub provider_token: Option<String>,
    /// The provider token's header and claims, when they decode.
    pub jwt: Option<ApnsJwt>,
    /// The body.
    pub body: Bytes,
    /// The body as JSON, when it parses.
    pub json: Option<serde_json::Value>,
    /// The status answered; `None` for a request scripted never to be answered.
    pub status: Option<u16>,
    /// The `reason` answered; `None` for 200 and for no answer.
    pub reason: Option<String>,
    /// The `apns-id` answered (or to be answered).
    pub answered_apns_id: String,
}

/// What tests tune and what the fake saw; one per fake, shared with its connections.
struct Shared {
    addr: SocketAddr,
    tls: bool,
    /// The fake key's public key, uncompressed point.
    public_key: Vec<u8>,
    connections: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    shutdown: CancellationToken,
    state: Mutex<Tunables>,
}

struct Tunables {
    delay: Duration,
    clock_offset: Duration,
    /// `None` allows every topic.
    allowed_topics: Option<HashSet<String>>,
    refuse_background_priority_10: bool,
    default_answer: ApnsAnswer,
    scripts: HashMap<String, VecDeque<ApnsAnswer>>,
    requests: Vec<ApnsRequest>,
    provider_tokens: HashSet<String>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, Tunables> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fake's "now" since the Unix epoch: the real clock plus the test's offset.
    fn now(&self) -> Duration {
        let offset = self.state().clock_offset;
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(offset)
    }
}

/// A running fake APNs; stops when dropped.
pub struct FakeApns {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeApns {
    /// Starts the fake on 127.0.0.1 with a free port, speaking HTTP/2 with prior knowledge
    /// (h2c). Every device token succeeds until scripted.
    pub async fn start() -> io::Result<Self> {
        Self::start_with(None).await
    }

    /// Starts the fake on 127.0.0.1 with a free port, speaking HTTP/2 over TLS (ALPN `h2`
    /// only) with a certificate for `localhost` and `127.0.0.1` signed by
    /// [`ca_certificate_pem`](Self::ca_certificate_pem).
    pub async fn start_tls() -> io::Result<Self> {
        Self::start_with(Some(connection::tls_acceptor()?)).await
    }

    async fn start_with(tls: Option<TlsAcceptor>) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let public_key = jwt::public_key_of(FAKE_KEY_P8)
            .map_err(|problem| io::Error::new(io::ErrorKind::InvalidData, problem))?;
        let shared = Arc::new(Shared {
            addr: listener.local_addr()?,
            tls: tls.is_some(),
            public_key,
            connections: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            shutdown: CancellationToken::new(),
            state: Mutex::new(Tunables {
                delay: Duration::ZERO,
                clock_offset: Duration::ZERO,
                allowed_topics: None,
                refuse_background_priority_10: true,
                default_answer: ApnsAnswer::Ok,
                scripts: HashMap::new(),
                requests: Vec::new(),
                provider_tokens: HashSet::new(),
            }),
        });
        let task = tokio::spawn(connection::serve(listener, tls, Arc::clone(&shared)));
        Ok(Self { shared, task })
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The base URL to configure: `http://127.0.0.1:PORT` for h2c, `https://localhost:PORT`
    /// for TLS (the certificate's name).
    pub fn base_url(&self) -> String {
        if self.shared.tls {
            format!("https://localhost:{}", self.shared.addr.port())
        } else {
            format!("http://{}", self.shared.addr)
        }
    }

    /// The PEM of the CA that signed the TLS fake's certificate, the root a client must trust.
    pub fn ca_certificate_pem() -> &'static str {
        FAKE_CA_PEM
    }

    /// Writes [`FAKE_KEY_P8`] to `dir`/[`FAKE_KEY_FILE_NAME`] and returns that path.
    pub fn write_key_file(dir: &Path) -> io::Result<PathBuf> {
        let path = dir.join(FAKE_KEY_FILE_NAME);
        std::fs::write(&path, FAKE_KEY_P8)?;
        Ok(path)
    }

    /// A provider token signed with the fake's key, for its team, issued at the fake's "now".
    pub fn valid_jwt(&self) -> String {
        sign_jwt(
            FAKE_KEY_P8,
            FAKE_KEY_ID,
            FAKE_TEAM_ID,
            self.shared.now().as_secs(),
        )
    }

    /// Queues answers for requests to `token`, used in order; after them, the default answer.
    /// Only requests that pass every check take an answer from the queue.
    pub fn script(&self, token: &str, answers: impl IntoIterator<Item = ApnsAnswer>) {
        self.shared
            .state()
            .scripts
            .entry(token.to_owned())
            .or_default()
            .extend(answers);
    }

    /// The answer for requests with no script left (initially [`ApnsAnswer::Ok`]).
    pub fn set_default_answer(&self, answer: ApnsAnswer) {
        self.shared.state().default_answer = answer;
    }

    /// Waits this long before every answer, refusals included (initially zero).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.state().delay = delay;
    }

    /// Makes the fake's clock run `offset` ahead of the real one, for the age of provider
    /// tokens and the 20 minutes between token updates.
    pub fn set_clock_offset(&self, offset: Duration) {
        self.shared.state().clock_offset = offset;
    }

    /// Allows only these topics from now on; others are refused with 400 `TopicDisallowed`.
    pub fn set_allowed_topics<S: Into<String>>(&self, topics: impl IntoIterator<Item = S>) {
        self.shared.state().allowed_topics = Some(topics.into_iter().map(Into::into).collect());
    }

    /// Allows every topic again (the initial setting).
    pub fn allow_all_topics(&self) {
        self.shared.state().allowed_topics = None;
    }

    /// Whether push type `background` with priority 10 is refused with 400 `BadPriority`, as
    /// Apple documents (initially true).
    pub fn set_refuse_background_priority_10(&self, refuse: bool) {
        self.shared.state().refuse_background_priority_10 = refuse;
    }

    /// Every request so far, refused ones included, in the order they were judged.
    pub fn requests(&self) -> Vec<ApnsRequest> {
        self.shared.state().requests.clone()
    }

    /// The requests answered with 200, in order.
    pub fn accepted(&self) -> Vec<ApnsRequest> {
        self.shared
            .state()
            .requests
            .iter()
            .filter(|request| request.status == Some(200))
            .cloned()
            .collect()
    }

    /// The requests to device token `token`, in order.
    pub fn requests_for(&self, token: &str) -> Vec<ApnsRequest> {
        self.shared
            .state()
            .requests
            .iter()
            .filter(|request| request.token == token)
            .cloned()
            .collect()
    }

    /// TCP connections accepted so far (TLS handshakes that failed included).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests being handled now (read, judged, waiting or never to be answered).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests being handled at once so far.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// How many different provider tokens (the JWT strings after `bearer `) requests carried,
    /// valid or not.
    pub fn distinct_jwts(&self) -> usize {
        self.shared.state().provider_tokens.len()
    }
}

impl Drop for FakeApns {
    fn drop(&mut self) {
        // Wakes answers that wait forever and ends every connection, then stops the listener.
        self.shared.shutdown.cancel();
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_files_are_p256_keys() {
        assert!(jwt::public_key_of(FAKE_KEY_P8).is_ok());
        assert!(jwt::public_key_of(UNKNOWN_KEY_P8).is_ok());
        assert_ne!(
            jwt::public_key_of(FAKE_KEY_P8),
            jwt::public_key_of(UNKNOWN_KEY_P8)
        );
        assert_eq!(FAKE_KEY_ID.len(), 10);
        assert_eq!(FAKE_TEAM_ID.len(), 10);
        assert_eq!(FAKE_KEY_FILE_NAME, format!("AuthKey_{FAKE_KEY_ID}.p8"));
    }
}
