//! The fake APNs itself, spoken to with the `h2` client directly (over TLS with tokio-rustls
//! once): what it accepts, what it refuses and why, its scripts, GOAWAY and silence.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use h2::client::SendRequest;
use http::{Method, Request};
use pushgate_testkit::fake_apns::{
    ApnsAnswer, ApnsJwt, FAKE_KEY_ID, FAKE_KEY_P8, FAKE_TEAM_ID, FAKE_TOPIC, FakeApns,
    MAX_PAYLOAD_BYTES, UNKNOWN_KEY_P8, sign_jwt,
};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

const TOKEN: &str = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0";
const APNS_ID: &str = "EC1BF194-B3B2-424A-A19B-1E1EA8F0E0B4";
const PAYLOAD: &str = r#"{"aps":{"alert":"hello"}}"#;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

fn jwt_at(iat: u64) -> String {
    sign_jwt(FAKE_KEY_P8, FAKE_KEY_ID, FAKE_TEAM_ID, iat)
}

/// One HTTP/2 connection to the fake; clones open streams on the same connection.
#[derive(Clone)]
struct Client {
    send: SendRequest<Bytes>,
    authority: String,
}

/// The task driving a client's connection; ends when the connection does.
type Connection = JoinHandle<Result<(), h2::Error>>;

/// What the fake answered.
#[derive(Debug)]
struct Reply {
    status: u16,
    apns_id: String,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("an error body is JSON")
    }

    fn reason(&self) -> String {
        self.json()["reason"]
            .as_str()
            .expect("an error body has a reason")
            .to_owned()
    }

    /// Asserts a refusal with `status` and `reason`.
    #[track_caller]
    fn assert_refused(&self, status: u16, reason: &str) {
        assert_eq!((self.status, self.reason()), (status, reason.to_owned()));
    }
}

async fn client_over<T>(io: T, authority: String) -> (Client, Connection)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = h2::client::handshake(io).await.expect("HTTP/2 handshake");
    (Client { send, authority }, tokio::spawn(connection))
}

async fn connect(fake: &FakeApns) -> Client {
    connect_watched(fake).await.0
}

async fn connect_watched(fake: &FakeApns) -> (Client, Connection) {
    let tcp = TcpStream::connect(fake.addr()).await.expect("connect");
    client_over(tcp, fake.addr().to_string()).await
}

/// A push request as a provider sends it, with a provider token and the fake topic.
fn push(token: &str, jwt: &str) -> http::request::Builder {
    Request::builder()
        .method(Method::POST)
        .uri(format!("/3/device/{token}"))
        .header("authorization", format!("bearer {jwt}"))
        .header("apns-topic", FAKE_TOPIC)
}

impl Client {
    /// Sends `request` with `body` and reads the whole answer; every answer has an `apns-id`.
    async fn send(&mut self, request: http::request::Builder, body: &[u8]) -> Reply {
        let response = self.send_only(request, body).await;
        let response = response.await.expect("an answer");
        let status = response.status().as_u16();
        let apns_id = response
            .headers()
            .get("apns-id")
            .expect("every answer has an apns-id")
            .to_str()
            .expect("apns-id is text")
            .to_owned();
        let mut stream = response.into_body();
        let mut body = Vec::new();
        while let Some(chunk) = stream.data().await {
            let chunk = chunk.expect("body");
            let _ = stream.flow_control().release_capacity(chunk.len());
            body.extend_from_slice(&chunk);
        }
        Reply {
            status,
            apns_id,
            body: body.into(),
        }
    }

    /// Sends `request` with `body` and returns the answer still to come.
    async fn send_only(
        &mut self,
        request: http::request::Builder,
        body: &[u8],
    ) -> h2::client::ResponseFuture {
        let mut request = request.body(()).expect("request");
        let uri = format!("http://{}{}", self.authority, request.uri());
        *request.uri_mut() = uri.parse().expect("uri");
        let mut send = self.send.clone().ready().await.expect("stream capacity");
        let (response, mut stream) = send
            .send_request(request, body.is_empty())
            .expect("send request");
        if !body.is_empty() {
            stream
                .send_data(Bytes::copy_from_slice(body), true)
                .expect("send body");
        }
        response
    }
}

#[tokio::test]
async fn a_valid_push_is_accepted_echoing_its_apns_id_and_recorded() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let mut client = connect(&fake).await;
    let iat = unix_now();
    let jwt = jwt_at(iat);

    let reply = client
        .send(
            push(TOKEN, &jwt)
                .header("apns-push-type", "alert")
                .header("apns-priority", "10")
                .header("apns-expiration", "0")
                .header("apns-collapse-id", "chat-1")
                .header("apns-id", APNS_ID),
            PAYLOAD.as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.apns_id, APNS_ID);
    assert!(reply.body.is_empty());

    let reply = client.send(push(TOKEN, &jwt), b"{}").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.apns_id.len(),
        36,
        "a generated UUID: {}",
        reply.apns_id
    );
    assert_ne!(reply.apns_id, APNS_ID);

    let requests = fake.requests_for(TOKEN);
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.connection, 1);
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, format!("/3/device/{TOKEN}"));
    assert_eq!(first.token, TOKEN);
    assert_eq!(first.topic.as_deref(), Some(FAKE_TOPIC));
    assert_eq!(first.push_type.as_deref(), Some("alert"));
    assert_eq!(first.priority.as_deref(), Some("10"));
    assert_eq!(first.expiration.as_deref(), Some("0"));
    assert_eq!(first.collapse_id.as_deref(), Some("chat-1"));
    assert_eq!(first.apns_id.as_deref(), Some(APNS_ID));
    assert_eq!(first.answered_apns_id, APNS_ID);
    assert_eq!(first.provider_token.as_deref(), Some(jwt.as_str()));
    assert_eq!(
        first.jwt,
        Some(ApnsJwt {
            alg: "ES256".to_owned(),
            kid: FAKE_KEY_ID.to_owned(),
            iss: FAKE_TEAM_ID.to_owned(),
            iat,
        })
    );
    assert_eq!(first.body, PAYLOAD.as_bytes());
    assert_eq!(first.json, Some(json!({"aps": {"alert": "hello"}})));
    assert_eq!((first.status, first.reason.as_deref()), (Some(200), None));
    assert_eq!(requests[1].apns_id, None);
    assert_eq!(requests[1].answered_apns_id, reply.apns_id);
    assert_eq!(fake.accepted().len(), 2);
    assert_eq!(fake.connections(), 1);
    assert_eq!(fake.distinct_jwts(), 1);
    assert_eq!(fake.base_url(), format!("http://{}", fake.addr()));
}

#[tokio::test]
async fn provider_tokens_that_are_missing_foreign_or_malformed_are_refused() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let mut client = connect(&fake).await;
    let now = unix_now();

    let no_jwt = Request::builder()
        .method(Method::POST)
        .uri(format!("/3/device/{TOKEN}"))
        .header("apns-topic", FAKE_TOPIC);
    client
        .send(no_jwt, PAYLOAD.as_bytes())
        .await
        .assert_refused(403, "MissingProviderToken");

    let valid = jwt_at(now);
    let (header, rest) = valid.split_once('.').expect("a JWT");
    let hs256 = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": FAKE_KEY_ID}).to_string());
    let invalid = [
        sign_jwt(UNKNOWN_KEY_P8, FAKE_KEY_ID, FAKE_TEAM_ID, now),
        sign_jwt(FAKE_KEY_P8, "OTHERKEY99", FAKE_TEAM_ID, now),
        sign_jwt(FAKE_KEY_P8, FAKE_KEY_ID, "OTHERTEAM9", now),
        format!("{hs256}.{rest}"),
        format!("{header}.{rest}x"),
        "garbage".to_owned(),
    ];
    for jwt in &invalid {
        client
            .send(push(TOKEN, jwt), PAYLOAD.as_bytes())
            .await
            .assert_refused(403, "InvalidProviderToken");
    }
    let basic = Request::builder()
        .method(Method::POST)
        .uri(format!("/3/device/{TOKEN}"))
        .header("authorization", "basic Zm9vOmJhcg==")
        .header("apns-topic", FAKE_TOPIC);
    client
        .send(basic, PAYLOAD.as_bytes())
        .await
        .assert_refused(403, "InvalidProviderToken");

    assert!(fake.accepted().is_empty());
    let requests = fake.requests();
    assert_eq!(requests.len(), invalid.len() + 2);
    assert_eq!(requests[0].jwt, None);
    let foreign = requests[1]
        .jwt
        .as_ref()
        .expect("a foreign JWT still decodes");
    assert_eq!(foreign.kid, FAKE_KEY_ID);
    assert_eq!(
        requests[2].jwt.as_ref().map(|jwt| jwt.kid.as_str()),
        Some("OTHERKEY99")
    );
    assert_eq!(fake.distinct_jwts(), invalid.len());
    // A refused token does not count as the connection's token: a valid one is fine after.
    let reply = client.send(push(TOKEN, &valid), PAYLOAD.as_bytes()).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn a_provider_token_older_than_an_hour_has_expired() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let mut client = connect(&fake).await;
    let now = unix_now();

    client
        .send(push(TOKEN, &jwt_at(now - 3700)), PAYLOAD.as_bytes())
        .await
        .assert_refused(403, "ExpiredProviderToken");

    let fresh = jwt_at(now);
    assert_eq!(
        client
            .send(push(TOKEN, &fresh), PAYLOAD.as_bytes())
            .await
            .status,
        200
    );
    // An hour and a bit later by the fake's clock, the same token has expired.
    fake.set_clock_offset(Duration::from_secs(3700));
    client
        .send(push(TOKEN, &fresh), PAYLOAD.as_bytes())
        .await
        .assert_refused(403, "ExpiredProviderToken");
    // The fake's own fresh token is dated by its clock.
    assert_eq!(
        client
            .send(push(TOKEN, &fake.valid_jwt()), PAYLOAD.as_bytes())
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_connection_may_change_its_provider_token_only_after_20_minutes() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let now = unix_now();
    let first = jwt_at(now - 60);
    let second = jwt_at(now);
    let mut client = connect(&fake).await;

    assert_eq!(
        client
            .send(push(TOKEN, &first), PAYLOAD.as_bytes())
            .await
            .status,
        200
    );
    client
        .send(push(TOKEN, &second), PAYLOAD.as_bytes())
        .await
        .assert_refused(429, "TooManyProviderTokenUpdates");
    // The connection keeps its first token.
    assert_eq!(
        client
            .send(push(TOKEN, &first), PAYLOAD.as_bytes())
            .await
            .status,
        200
    );

    // Another connection starts with any token.
    let mut other = connect(&fake).await;
    assert_eq!(
        other
            .send(push(TOKEN, &second), PAYLOAD.as_bytes())
            .await
            .status,
        200
    );

    // 21 minutes on, the first connection may change.
    fake.set_clock_offset(Duration::from_secs(21 * 60));
    let third = jwt_at(now + 21 * 60);
    assert_eq!(
        client
            .send(push(TOKEN, &third), PAYLOAD.as_bytes())
            .await
            .status,
        200
    );

    let connections: Vec<(u64, Option<u16>)> = fake
        .requests()
        .iter()
        .map(|request| (request.connection, request.status))
        .collect();
    assert_eq!(
        connections,
        [
            (1, Some(200)),
            (1, Some(429)),
            (1, Some(200)),
            (2, Some(200)),
            (1, Some(200))
        ]
    );
    assert_eq!(fake.connections(), 2);
    assert_eq!(fake.distinct_jwts(), 3);
}

#[tokio::test]
async fn apns_headers_are_checked() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let mut client = connect(&fake).await;
    let jwt = jwt_at(unix_now());
    let body = PAYLOAD.as_bytes();

    let no_topic = Request::builder()
        .method(Method::POST)
        .uri(format!("/3/device/{TOKEN}"))
        .header("authorization", format!("bearer {jwt}"));
    client
        .send(no_topic, body)
        .await
        .assert_refused(400, "MissingTopic");
    for priority in ["0", "11", "high"] {
        client
            .send(push(TOKEN, &jwt).header("apns-priority", priority), body)
            .await
            .assert_refused(400, "BadPriority");
    }
    client
        .send(push(TOKEN, &jwt).header("apns-push-type", "banner"), body)
        .await
        .assert_refused(400, "InvalidPushType");
    let background_10 = || {
        push(TOKEN, &jwt)
            .header("apns-push-type", "background")
            .header("apns-priority", "10")
    };
    client
        .send(background_10(), body)
        .await
        .assert_refused(400, "BadPriority");
    client
        .send(
            push(TOKEN, &jwt).header("apns-collapse-id", "c".repeat(65)),
            body,
        )
        .await
        .assert_refused(400, "BadCollapseId");
    client
        .send(push(TOKEN, &jwt).header("apns-id", "not-a-uuid"), body)
        .await
        .assert_refused(400, "BadMessageId");
    for expiration in ["-1", "soon", ""] {
        client
            .send(
                push(TOKEN, &jwt).header("apns-expiration", expiration),
                body,
            )
            .await
            .assert_refused(400, "BadExpirationDate");
    }
    assert!(fake.accepted().is_empty());

    // What is allowed passes.
    let allowed = push(TOKEN, &jwt)
        .header("apns-collapse-id", "c".repeat(64))
        .header("apns-push-type", "background")
        .header("apns-priority", "5")
        .header("apns-expiration", "1767225600");
    assert_eq!(client.send(allowed, body).await.status, 200);
    fake.set_refuse_background_priority_10(false);
    assert_eq!(client.send(background_10(), body).await.status, 200);

    // Topics, once narrowed.
    fake.set_allowed_topics(["im.pushgate.other"]);
    client
        .send(push(TOKEN, &jwt), body)
        .await
        .assert_refused(400, "TopicDisallowed");
    fake.set_allowed_topics([FAKE_TOPIC]);
    assert_eq!(client.send(push(TOKEN, &jwt), body).await.status, 200);

    let refused = fake
        .requests()
        .iter()
        .filter(|request| request.status == Some(400))
        .count();
    assert_eq!(refused, 12);
    assert_eq!(fake.accepted().len(), 3);
}

#[tokio::test]
async fn payloads_must_be_there_and_at_most_4_kb() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let mut client = connect(&fake).await;
    let jwt = jwt_at(unix_now());

    client
        .send(push(TOKEN, &jwt), b"")
        .await
        .assert_refused(400, "PayloadEmpty");
    client
        .send(push(TOKEN, &jwt), &[b' '; MAX_PAYLOAD_BYTES + 1])
        .await
        .assert_refused(413, "PayloadTooLarge");
    assert_eq!(
        client
            .send(push(TOKEN, &jwt), &[b' '; MAX_PAYLOAD_BYTES])
            .await
            .status,
        200
    );
    // VoIP pushes may carry 5 KB.
    let voip = push(TOKEN, &jwt).header("apns-push-type", "voip");
    assert_eq!(
        client
            .send(voip, &[b' '; MAX_PAYLOAD_BYTES + 1])
            .await
            .status,
        200
    );

    let requests = fake.requests();
    assert_eq!(requests[1].body.len(), MAX_PAYLOAD_BYTES + 1);
    // Whitespace is no JSON: recorded, not parsed, still accepted.
    assert_eq!(requests[2].json, None);
    assert_eq!(requests[2].status, Some(200));
}

#[tokio::test]
async fn only_post_to_a_hex_device_token_is_served() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let mut client = connect(&fake).await;
    let jwt = jwt_at(unix_now());
    let body = PAYLOAD.as_bytes();

    client
        .send(push(TOKEN, &jwt).method(Method::GET), b"")
        .await
        .assert_refused(405, "MethodNotAllowed");
    client
        .send(push(TOKEN, &jwt).uri(format!("/3/devices/{TOKEN}")), body)
        .await
        .assert_refused(404, "BadPath");
    client
        .send(push(TOKEN, &jwt).uri("/"), body)
        .await
        .assert_refused(404, "BadPath");
    client
        .send(push("not-hex", &jwt), body)
        .await
        .assert_refused(400, "BadDeviceToken");
    client
        .send(push("", &jwt), body)
        .await
        .assert_refused(400, "MissingDeviceToken");

    let seen: Vec<(String, String)> = fake
        .requests()
        .into_iter()
        .map(|request| (request.method, request.token))
        .collect();
    assert_eq!(seen[0], ("GET".to_owned(), TOKEN.to_owned()));
    assert_eq!(seen[1], ("POST".to_owned(), String::new()));
    assert_eq!(seen[3], ("POST".to_owned(), "not-hex".to_owned()));
    assert!(fake.accepted().is_empty());
}

#[tokio::test]
async fn scripted_answers_come_in_order_then_the_default() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let mut client = connect(&fake).await;
    let jwt = jwt_at(unix_now());
    let body = PAYLOAD.as_bytes();
    let gone = "abcdef0123";
    fake.script(
        gone,
        [
            ApnsAnswer::Unregistered {
                timestamp_ms: 1_700_000_000_123,
            },
            ApnsAnswer::TooManyRequests,
            ApnsAnswer::Status(410, "ExpiredToken".to_owned()),
        ],
    );

    let reply = client.send(push(gone, &jwt), body).await;
    assert_eq!(reply.status, 410);
    assert_eq!(
        reply.json(),
        json!({"reason": "Unregistered", "timestamp": 1_700_000_000_123_u64})
    );
    client
        .send(push(gone, &jwt), body)
        .await
        .assert_refused(429, "TooManyRequests");
    client
        .send(push(gone, &jwt), body)
        .await
        .assert_refused(410, "ExpiredToken");
    assert_eq!(client.send(push(gone, &jwt), body).await.status, 200);
    // Other tokens were never scripted.
    assert_eq!(client.send(push(TOKEN, &jwt), body).await.status, 200);

    fake.set_default_answer(ApnsAnswer::ServiceUnavailable);
    client
        .send(push(TOKEN, &jwt), body)
        .await
        .assert_refused(503, "ServiceUnavailable");
    fake.script(TOKEN, [ApnsAnswer::Ok]);
    assert_eq!(client.send(push(TOKEN, &jwt), body).await.status, 200);
    client
        .send(push(TOKEN, &jwt), body)
        .await
        .assert_refused(503, "ServiceUnavailable");

    let statuses: Vec<Option<u16>> = fake
        .requests_for(gone)
        .iter()
        .map(|request| request.status)
        .collect();
    assert_eq!(statuses, [Some(410), Some(429), Some(410), Some(200)]);
    assert_eq!(fake.accepted().len(), 3);
}

#[tokio::test]
async fn shutdown_answers_503_then_sends_goaway() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let (mut client, connection) = connect_watched(&fake).await;
    let jwt = jwt_at(unix_now());
    fake.script(TOKEN, [ApnsAnswer::Shutdown]);

    client
        .send(push(TOKEN, &jwt), PAYLOAD.as_bytes())
        .await
        .assert_refused(503, "Shutdown");
    // The server closes the connection gracefully: the client's connection ends cleanly.
    let ended = tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("the connection ends after GOAWAY")
        .expect("the connection task ran");
    assert!(ended.is_ok(), "a graceful GOAWAY, not an error: {ended:?}");
    assert!(
        client.send.clone().ready().await.is_err(),
        "no new streams after GOAWAY"
    );

    // A new connection is served.
    let mut again = connect(&fake).await;
    let reply = again.send(push(TOKEN, &jwt), PAYLOAD.as_bytes()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(fake.connections(), 2);
}

#[tokio::test]
async fn never_means_no_answer() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let mut client = connect(&fake).await;
    let jwt = jwt_at(unix_now());
    fake.script(TOKEN, [ApnsAnswer::Never]);

    let silent = client
        .send_only(push(TOKEN, &jwt), PAYLOAD.as_bytes())
        .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), silent)
            .await
            .is_err(),
        "no answer within 300 ms"
    );
    assert_eq!(fake.requests()[0].status, None);

    // The connection still serves other streams.
    let reply = client.send(push(TOKEN, &jwt), PAYLOAD.as_bytes()).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn requests_in_flight_are_counted_and_delayed() {
    let fake = FakeApns::start().await.expect("fake APNs");
    let client = connect(&fake).await;
    let jwt = jwt_at(unix_now());
    fake.set_delay(Duration::from_millis(300));

    let started = tokio::time::Instant::now();
    let sends = (0..3).map(|_| {
        let mut client = client.clone();
        let jwt = jwt.clone();
        async move { client.send(push(TOKEN, &jwt), PAYLOAD.as_bytes()).await }
    });
    let replies = futures::future::join_all(sends).await;
    assert!(replies.iter().all(|reply| reply.status == 200));
    assert!(started.elapsed() >= Duration::from_millis(300));
    // All three were handled at once, not one after the other.
    assert_eq!(fake.max_in_flight(), 3);
    assert_eq!(fake.in_flight(), 0);
    assert_eq!(fake.connections(), 1);
}

#[tokio::test]
async fn tls_with_alpn_h2_is_served() {
    let fake = FakeApns::start_tls().await.expect("fake APNs over TLS");
    assert_eq!(
        fake.base_url(),
        format!("https://localhost:{}", fake.addr().port())
    );
    let mut roots = RootCertStore::empty();
    roots
        .add(
            CertificateDer::from_pem_slice(FakeApns::ca_certificate_pem().as_bytes())
                .expect("CA PEM"),
        )
        .expect("CA");
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(fake.addr()).await.expect("connect");
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake with the test CA");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    let (mut client, _connection) =
        client_over(tls, format!("localhost:{}", fake.addr().port())).await;
    let reply = client
        .send(
            push(TOKEN, &jwt_at(unix_now())).header("apns-id", APNS_ID),
            PAYLOAD.as_bytes(),
        )
        .await;
    assert_eq!((reply.status, reply.apns_id.as_str()), (200, APNS_ID));
    assert_eq!(fake.accepted().len(), 1);
}

#[tokio::test]
async fn the_key_file_is_written_under_apples_name() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = FakeApns::write_key_file(dir.path()).expect("key file");
    assert_eq!(
        path.file_name().and_then(|name| name.to_str()),
        Some("AuthKey_FAKEKEY123.p8")
    );
    let written = std::fs::read_to_string(&path).expect("read key file");
    assert!(written.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(written, FAKE_KEY_P8);
}
