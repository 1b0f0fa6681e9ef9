//! The UnifiedPush provider end to end, against real Prosody and real ejabberd: a client
//! playing Conversations as the distributor registers an app instance, an app server POSTs
//! an RFC 8291 message to the endpoint over plain HTTP, and the client gets it as a `<push/>`
//! IQ and decrypts it. Then: store and forward across a logout and across a server outage,
//! revocation by the client, and the HTTP refusals.
//!
//! Skipped with a printed reason when a server is not installed, unless
//! `PUSHGATE_INTEROP=required`.

#![allow(clippy::unwrap_used)]

mod e2e;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use e2e::http::{HttpResponse, post_push, post_push_with, request, split_url};
use e2e::webpush::{self, UserAgentKeys};
use e2e::{COMPONENT, Pushgate, PushgateOptions, ServerKind, XmppServer};
use pushgate_core::unified_push::{EndpointClaims, EndpointKey, EndpointKeys, UpId};
use pushgate_testkit::c2s_client::C2sClient;
use pushgate_testkit::c2s_client::stanza::{Element, iq_result_to};
use pushgate_testkit::conversations::{
    UpPushIq, decode_push_content, directed_presence, iq_error_to, read_up_push,
    read_up_registered, up_hash, up_register,
};

/// Conversations' account uuid, the input of its UnifiedPush hashes.
const ACCOUNT_UUID: &str = "5d3b0b3e-6c61-4a2f-9f3e-2f6f6d1d9a10";
/// The fixed resource: a stored message goes to the full JID that registered.
const RESOURCE: &str = "Conversations.e2e";
/// How long any one awaited event may take before the test fails.
const STEP: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unified_push_relays_to_the_client_through_prosody() {
    unified_push_end_to_end(
        ServerKind::Prosody,
        "unified_push_relays_to_the_client_through_prosody",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unified_push_relays_to_the_client_through_ejabberd() {
    unified_push_end_to_end(
        ServerKind::Ejabberd,
        "unified_push_relays_to_the_client_through_ejabberd",
    )
    .await;
}

/// RFC 8291 Appendix A: the test client's encryption is the standard's, byte for byte.
#[test]
fn rfc8291_appendix_a_vector() {
    let b64 = |text: &str| URL_SAFE_NO_PAD.decode(text).unwrap();
    let mut auth = [0u8; 16];
    auth.copy_from_slice(&b64("BTBZMqHH6r4Tts7J_aSIgg"));
    let client =
        UserAgentKeys::from_private(&b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"), auth);
    assert_eq!(
        client.public,
        b64(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
        )
    );
    let sender = aws_lc_rs::agreement::PrivateKey::from_private_key(
        &aws_lc_rs::agreement::ECDH_P256,
        &b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"),
    )
    .unwrap();
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&b64("DGv6ra1nlYgDCS1FRnbzlw"));
    let plaintext = b"When I grow up, I want to be a watermelon";
    let expected = b64(
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
    );
    let encrypted = webpush::encrypt_with(&sender, &salt, &client.public, &auth, plaintext);
    assert_eq!(encrypted, expected);
    assert_eq!(client.decrypt(&expected).as_deref(), Some(&plaintext[..]));
}

/// One app instance on the phone: its UnifiedPush ids, its Web Push keys, its endpoint.
struct AppInstance {
    application: String,
    instance: String,
    keys: UserAgentKeys,
    endpoint: String,
}

/// Registers an app instance as Conversations does and checks the answer (docs/protocol.md A.3).
async fn register_instance(
    client: &C2sClient,
    pushgate: &Pushgate,
    package: &str,
    token: &str,
) -> AppInstance {
    let application = up_hash(ACCOUNT_UUID, package);
    let instance = up_hash(ACCOUNT_UUID, token);
    assert_eq!(application.len(), 44);
    let answer = client
        .iq(up_register(COMPONENT, &application, &instance))
        .await
        .unwrap();
    let registered = read_up_registered(&answer, COMPONENT).unwrap();
    assert!(
        registered.expiration.ends_with('Z'),
        "{}",
        registered.expiration
    );
    let prefix = format!("{}/push/", pushgate.public_url());
    assert!(
        registered.endpoint.starts_with(&prefix),
        "{} does not start with {prefix}",
        registered.endpoint
    );
    AppInstance {
        application,
        instance,
        keys: UserAgentKeys::generate(),
        endpoint: registered.endpoint,
    }
}

/// Logs in with the fixed resource and says hello as Conversations does on bind: available
/// presence, then presence directed to the push provider.
async fn come_online(server: &XmppServer) -> C2sClient {
    let client = server.login("alice", RESOURCE).await;
    client.send_presence().await.unwrap();
    client.send(directed_presence(COMPONENT)).await.unwrap();
    client
}

/// The next `<push/>` IQ; other stanzas are skipped.
async fn next_push(client: &mut C2sClient) -> (Element, UpPushIq) {
    let stanza = client
        .recv_where(|stanza| read_up_push(stanza).is_some())
        .await
        .unwrap_or_else(|error| panic!("no push arrived: {error}"));
    let push = read_up_push(&stanza).unwrap();
    (stanza, push)
}

/// Checks a push as Conversations does (exact bare component JID as `from`, known ids,
/// standard padded base64) and decrypts it with the instance's keys.
fn open_push(client: &C2sClient, app: &AppInstance, push: &UpPushIq) -> Vec<u8> {
    assert_eq!(push.from, COMPONENT, "from must be the exact component JID");
    assert_eq!(push.to, client.jid());
    assert_eq!(push.application, app.application);
    assert_eq!(push.instance, app.instance);
    let body = decode_push_content(&push.content)
        .unwrap_or_else(|| panic!("not standard padded base64: {}", push.content));
    assert_eq!(STANDARD.encode(&body), push.content, "canonical base64");
    app.keys
        .decrypt(&body)
        .unwrap_or_else(|| panic!("the relayed body does not decrypt ({} bytes)", body.len()))
}

/// POSTs `plaintext` encrypted for `app` while the client takes the push and answers it;
/// returns the HTTP answer and how long POST → push took.
async fn push_while_online(
    client: &mut C2sClient,
    app: &AppInstance,
    plaintext: &[u8],
    answer: fn(&Element) -> Element,
) -> (HttpResponse, Duration) {
    let body = webpush::encrypt(&app.keys.public, &app.keys.auth, plaintext);
    let started = Instant::now();
    let receive = async {
        let (stanza, push) = next_push(client).await;
        let took = started.elapsed();
        client.send(answer(&stanza)).await.unwrap();
        (push, took)
    };
    let (response, (push, took)) = tokio::join!(post_push(&app.endpoint, &body, 60), receive);
    assert_eq!(open_push(client, app, &push), plaintext);
    (response, took)
}

fn assert_created(response: &HttpResponse) -> u64 {
    assert_eq!(response.status, 201, "{}", response.text());
    assert!(
        response.header("location").is_some(),
        "{:?}",
        response.headers
    );
    response
        .header("ttl")
        .and_then(|ttl| ttl.parse().ok())
        .unwrap_or_else(|| panic!("no TTL header: {:?}", response.headers))
}

fn item_not_found(request: &Element) -> Element {
    iq_error_to(request, "cancel", "item-not-found")
}

async fn unified_push_end_to_end(kind: ServerKind, test: &str) {
    let Some(mut server) = XmppServer::start(kind, test, &["alice"]).await else {
        return;
    };
    let mut options = PushgateOptions::new(server.component_port());
    options.roles = vec!["unified_push"];
    let mut pushgate = Pushgate::start(options).await;

    // 1. Registration and a live push, decrypted by the client.
    let mut alice = come_online(&server).await;
    let app = register_instance(&alice, &pushgate, "org.joinmastodon.android", "token-1").await;
    let (response, took) =
        push_while_online(&mut alice, &app, b"first message", iq_result_to).await;
    assert_created(&response);
    e2e::measured(test, "POST to <push/> at the client", took);

    // 2. Store and forward across a logout. `TTL: 0` is delivered now or never; a newer
    //    message with the same `Topic` replaces the kept one (RFC 8030 §5.2, §5.4).
    alice.close().await.unwrap();
    let seal = |text: &[u8]| webpush::encrypt(&app.keys.public, &app.keys.auth, text);
    let response = post_push(&app.endpoint, &seal(b"now or never"), 0).await;
    assert_eq!(assert_created(&response), 0, "TTL 0 while away: dropped");
    let topic = [("TTL", "3600"), ("Topic", "timeline")];
    let response = post_push_with(&app.endpoint, &seal(b"stale timeline"), &topic).await;
    let ttl = assert_created(&response);
    assert!(ttl > 0 && ttl <= 3600, "stored, TTL {ttl}");
    let log = pushgate.log();
    if let Some(line) = log
        .lines()
        .rev()
        .find(|line| line.contains("not delivered"))
    {
        pushgate_testkit::interop::notice(&format!("{test}: pushgate: {}", line.trim()));
    }
    let response = post_push_with(&app.endpoint, &seal(b"fresh timeline"), &topic).await;
    assert!(assert_created(&response) > 0);
    let response = post_push(&app.endpoint, &seal(b"while you were away"), 3600).await;
    assert!(assert_created(&response) > 0);
    let online = Instant::now();
    let mut alice = come_online(&server).await;
    // In the order accepted, without the dropped and the replaced ones.
    for (n, expected) in [&b"fresh timeline"[..], b"while you were away"]
        .iter()
        .enumerate()
    {
        let (stanza, push) = next_push(&mut alice).await;
        if n == 0 {
            e2e::measured(test, "login + presence to stored <push/>", online.elapsed());
        }
        alice.send(iq_result_to(&stanza)).await.unwrap();
        assert_eq!(open_push(&alice, &app, &push), *expected);
    }

    // 3. A server outage: the link is down, the POST is still accepted and kept.
    alice.close().await.unwrap();
    server.stop().await;
    let down = pushgate.wait_unready(STEP).await;
    e2e::measured(test, "server stop to link reported down", down);
    let body = webpush::encrypt(&app.keys.public, &app.keys.auth, b"sent during the outage");
    let posted = Instant::now();
    let response = post_push(&app.endpoint, &body, 3600).await;
    e2e::measured(
        test,
        "POST answered while the link is down",
        posted.elapsed(),
    );
    assert!(
        assert_created(&response) > 0,
        "stored while the link is down"
    );
    let restarted = Instant::now();
    server.start_again().await;
    let up = pushgate.wait_ready(STEP).await;
    e2e::measured(test, "server restart to link up again", restarted.elapsed());
    e2e::measured(test, "server ports open to link up again", up);
    let mut alice = come_online(&server).await;
    let (stanza, push) = next_push(&mut alice).await;
    alice.send(iq_result_to(&stanza)).await.unwrap();
    assert_eq!(open_push(&alice, &app, &push), b"sent during the outage");

    // 4. What was accepted with 201 survives a restart of pushgate itself.
    alice.close().await.unwrap();
    let body = webpush::encrypt(&app.keys.public, &app.keys.auth, b"kept across a restart");
    let response = post_push(&app.endpoint, &body, 3600).await;
    assert!(
        assert_created(&response) > 0,
        "stored while the client is away"
    );
    let took = pushgate.restart().await;
    e2e::measured(test, "pushgate restart (SIGTERM to link up)", took);
    let mut alice = come_online(&server).await;
    let (stanza, push) = next_push(&mut alice).await;
    alice.send(iq_result_to(&stanza)).await.unwrap();
    assert_eq!(open_push(&alice, &app, &push), b"kept across a restart");

    // 5. The client no longer knows the instance: it answers item-not-found, which revokes
    //    the endpoint; the next POST gets 404 and the client gets nothing.
    let (response, _) = push_while_online(&mut alice, &app, b"last one", item_not_found).await;
    assert_eq!(
        response.status,
        404,
        "the revoking POST: {}",
        response.text()
    );
    let body = webpush::encrypt(&app.keys.public, &app.keys.auth, b"after revocation");
    let response = post_push(&app.endpoint, &body, 60).await;
    assert_eq!(response.status, 404, "{}", response.text());
    // Pushes reach the client in order: if the revoked endpoint had sent anything, it would
    // arrive before this one.
    let other = register_instance(&alice, &pushgate, "im.vector.app", "token-2").await;
    let (response, _) = push_while_online(&mut alice, &other, b"other app", iq_result_to).await;
    assert_created(&response);

    // 6. HTTP refusals: unknown, garbage and foreign tokens (404), and the body size limit
    //    (4096 bytes is fine, 4097 is 413).
    let (address, _) = split_url(&other.endpoint);
    let foreign = EndpointKeys::single(EndpointKey::from_base64(e2e::FOREIGN_UP_KEY).unwrap())
        .seal(&EndpointClaims {
            owner: alice.jid().to_owned(),
            expires_at: i64::MAX / 2,
            application: UpId::parse(&other.application).unwrap(),
            instance: UpId::parse(&other.instance).unwrap(),
        })
        .unwrap();
    for path in [
        "/push/garbage".to_owned(),
        "/push/v2.local.AAAA".to_owned(),
        format!("/push/{foreign}"),
    ] {
        let response = request(address, "POST", &path, &[("TTL", "60")], b"x", STEP)
            .await
            .unwrap();
        assert_eq!(response.status, 404, "{path}: {}", response.text());
    }
    let largest = vec![b'a'; 4096 - webpush::HEADER_LEN - 1 - webpush::TAG_LEN];
    let (response, _) = push_while_online(&mut alice, &other, &largest, iq_result_to).await;
    assert_created(&response);
    let too_large = webpush::encrypt(&other.keys.public, &other.keys.auth, &[b'a'; 3994]);
    assert_eq!(too_large.len(), 4097);
    let response = post_push(&other.endpoint, &too_large, 60).await;
    assert_eq!(response.status, 413, "{}", response.text());

    alice.close().await.unwrap();
    let naming = pushgate.info_lines_naming(e2e::DOMAIN);
    assert!(naming.is_empty(), "JIDs at info level: {naming:#?}");
    assert_eq!(pushgate.stop().await, Some(0));
}
