//! `pushgate keygen` and `pushgate endpoint inspect|revoke`, run as an operator runs them:
//! the process's output and exit code, and nothing private printed unless asked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod e2e;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{KEY_A, KEY_B, MINIMAL, Workdir};
use pushgate_core::unified_push::{EndpointClaims, EndpointKey, EndpointKeys, UpId};
use pushgate_core::{Clock as _, SystemClock};

const APPLICATION: &str = "WFekBFu55IP9GVrRSABOPfUaPVqPjQiP/fb++/tnIoE=";
const INSTANCE: &str = "sK07IR4sINoILr9r09PQSQqOA2w8ooFUwJyjcuKhD3o=";

/// Settings with UnifiedPush keys `keys` (the first seals) and a database in the workdir.
fn settings(dir: &Workdir, keys: &[&str]) -> String {
    let keys: Vec<String> = keys.iter().map(|key| format!("\"{key}\"")).collect();
    let path = dir.write(
        "pushgate.toml",
        &format!(
            "{MINIMAL}\n[http]\npublic_url = \"https://up.example.org\"\n\
             [unified_push]\nkeys = [{}]\n[database]\nurl = \"sqlite://pushgate.db?mode=rwc\"\n",
            keys.join(", ")
        ),
    );
    path.display().to_string()
}

/// A token for `owner` sealed with `key`, valid for a day.
fn token(key: &str, owner: &str) -> String {
    let keys = EndpointKeys::single(EndpointKey::from_base64(key).unwrap());
    keys.seal(&EndpointClaims {
        owner: owner.to_owned(),
        expires_at: SystemClock.now() + 86_400_000,
        application: UpId::parse(APPLICATION).unwrap(),
        instance: UpId::parse(INSTANCE).unwrap(),
    })
    .unwrap()
}

#[test]
fn keygen_prints_a_key_that_settings_accept_and_says_how_to_rotate() {
    let dir = Workdir::new();
    let run = dir.run(&["keygen"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let key = run.stdout.trim();
    assert_eq!(STANDARD.decode(key).unwrap().len(), 32);
    assert!(run.stderr.contains("first"), "{}", run.stderr);
    let config = settings(&dir, &[key, KEY_A]);
    dir.run(&["check-config", "--config", &config], &[]).ok();

    let json = dir.run(&["keygen", "--json"], &[]).ok();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let other = value["key"].as_str().unwrap();
    assert_eq!(STANDARD.decode(other).unwrap().len(), 32);
    assert_ne!(other, key, "two keys alike");
}

#[test]
fn inspect_names_the_key_and_the_domain_and_the_jid_only_when_revealed() {
    let dir = Workdir::new();
    // Rotated: the token was sealed with the key now second.
    let config = settings(&dir, &[KEY_B, KEY_A]);
    let token = token(KEY_A, "alice@example.test/Conversations.x1");
    let url = format!("https://up.example.org/push/{token}");

    let out = dir
        .run(&["endpoint", "inspect", "--config", &config, &url], &[])
        .ok();
    assert!(out.contains("keys[1]"), "{out}");
    assert!(out.contains("example.test"), "{out}");
    assert!(
        !out.contains("alice") && !out.contains("Conversations.x1"),
        "{out}"
    );
    assert!(
        out.contains(APPLICATION) && out.contains("revoked:     no"),
        "{out}"
    );

    let revealed = dir
        .run(
            &[
                "endpoint", "inspect", "--config", &config, "--reveal", &token,
            ],
            &[],
        )
        .ok();
    assert!(
        revealed.contains("alice@example.test/Conversations.x1"),
        "{revealed}"
    );

    let json = dir
        .run(
            &["endpoint", "inspect", "--config", &config, "--json", &token],
            &[],
        )
        .ok();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["key_index"], 1);
    assert_eq!(value["owner_domain"], "example.test");
    assert_eq!(value["expired"], false);
    assert!(value.get("owner").is_none(), "{json}");
}

#[test]
fn a_token_no_key_opens_exits_3_and_garbage_too() {
    let dir = Workdir::new();
    let config = settings(&dir, &[KEY_A]);
    let foreign = token(KEY_B, "alice@example.test/phone");
    for endpoint in [
        foreign.as_str(),
        "v2.local.nonsense",
        "https://up.example.org/push/",
    ] {
        let run = dir.run(&["endpoint", "inspect", "--config", &config, endpoint], &[]);
        assert_eq!(run.code, Some(3), "{endpoint}: {}", run.stderr);
        assert!(run.stderr.contains("not one of ours"), "{}", run.stderr);
        assert!(run.stdout.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_endpoint_is_refused_by_the_running_service() {
    use e2e::{Pushgate, PushgateOptions, ServerKind, UP_KEY, XmppServer};
    let test = "a_revoked_endpoint_is_refused_by_the_running_service";
    let Some(server) = XmppServer::start(ServerKind::Prosody, test, &["alice"]).await else {
        return;
    };
    let mut pushgate = Pushgate::configure(PushgateOptions::new(server.component_port()));
    let config = pushgate.config_path().display().to_string();
    let revoked = token(UP_KEY, "alice@example.test/phone");
    let kept = token(UP_KEY, "alice@example.test/laptop");
    let public_url = pushgate.public_url();
    let url = |token: &str| format!("{public_url}/push/{token}");

    let dir = Workdir::new();
    let out = dir
        .run(
            &["endpoint", "revoke", "--config", &config, &url(&revoked)],
            &[],
        )
        .ok();
    assert!(out.contains("revoked:     yes"), "{out}");
    // Revoking twice changes nothing and still succeeds.
    dir.run(&["endpoint", "revoke", "--config", &config, &revoked], &[])
        .ok();

    pushgate.launch().await;
    let refused = e2e::http::post_push(&url(&revoked), b"after the revocation", 60).await;
    assert_eq!(refused.status, 404);
    // Another endpoint of the same owner is untouched (alice is offline: it is kept).
    let accepted = e2e::http::post_push(&url(&kept), b"still served", 60).await;
    assert_eq!(accepted.status, 201);

    // `stats` counts what this left in the database, beside the running service.
    let json = dir.run(&["stats", "--config", &config, "--json"], &[]).ok();
    let stats: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(stats["revocations"], 1, "{json}");
    assert_eq!(stats["stored_messages"], 1, "{json}");
    assert_eq!(stats["owners_with_messages"], 1, "{json}");
    let text = dir.run(&["stats", "--config", &config], &[]).ok();
    assert!(
        text.contains("stored messages: 1 for 1 client(s)"),
        "{text}"
    );
    assert!(text.contains("revoked endpoints: 1"), "{text}");
    assert!(!text.contains("alice"), "{text}");
}

#[test]
fn stats_of_an_empty_database_and_of_unusable_settings() {
    let dir = Workdir::new();
    let config = settings(&dir, &[KEY_A]);
    let out = dir.run(&["stats", "--config", &config], &[]).ok();
    assert!(
        out.contains("registrations: 0 live, 0 with a dead token"),
        "{out}"
    );
    let broken = dir.write("broken.toml", "[component]\n");
    let run = dir.run(&["stats", "--config", &broken.display().to_string()], &[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_push_wakes_a_registration_through_fcm_and_posts_to_an_endpoint() {
    use e2e::{COMPONENT, Pushgate, PushgateOptions, ServerKind, UP_KEY, XmppServer};
    use pushgate_testkit::conversations::{read_push_registration, register_push_fcm};
    use pushgate_testkit::fake_fcm::{Answer, FakeFcm, FcmErrorCode};
    let test = "test_push_wakes_a_registration_through_fcm_and_posts_to_an_endpoint";
    let Some(server) = XmppServer::start(ServerKind::Prosody, test, &["alice"]).await else {
        return;
    };
    let fcm = FakeFcm::start().await.unwrap();
    let service_account = fcm.write_service_account().unwrap();
    let mut options = PushgateOptions::new(server.component_port());
    options.fcm = Some((fcm.api_url(), service_account.path().to_owned()));
    let pushgate = Pushgate::start(options).await;
    let config = pushgate.config_path().display().to_string();

    // A phone registers as Conversations does.
    let alice = server.login("alice", "phone").await;
    let answer = alice
        .iq(register_push_fcm(
            COMPONENT,
            "fcm-token-test-push",
            "0011223344556677",
        ))
        .await
        .unwrap();
    let registration = read_push_registration(&answer, COMPONENT).unwrap();
    alice.close().await.unwrap();

    let dir = Workdir::new();
    let node = registration.node.as_str();
    let args = [
        "test-push",
        "--config",
        &config,
        "--node",
        node,
        "--domain",
        "example.test",
    ];
    let out = dir.run(&args, &[]).ok();
    assert!(out.contains("accepted"), "{out}");
    assert!(!out.contains("fcm-token-test-push") && !out.contains(&registration.secret));
    let sent: Vec<_> = fcm
        .messages()
        .into_iter()
        .filter(|message| message.token == "fcm-token-test-push")
        .collect();
    assert_eq!(sent.len(), 1, "the fake FCM got the wake-up");
    assert_eq!(sent[0].account.len(), 40, "the device hash is all FCM sees");

    // A token FCM calls dead: the hop fails, exit 1, and the registration is marked dead.
    fcm.script(
        "fcm-token-test-push",
        [Answer::error(FcmErrorCode::Unregistered)],
    );
    let dead = dir.run(&args, &[]);
    assert_eq!(dead.code, Some(1), "{}", dead.stdout);
    assert!(dead.stdout.contains("dead"), "{}", dead.stdout);
    let json = dir.run(&["stats", "--config", &config, "--json"], &[]).ok();
    assert!(json.contains(r#""dead":1"#), "{json}");

    // An unknown node: the first hop fails.
    let unknown = dir.run(
        &[
            "test-push",
            "--config",
            &config,
            "--node",
            "AAAAAAAAAAAA",
            "--domain",
            "example.test",
        ],
        &[],
    );
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stdout.contains("item-not-found"),
        "{}",
        unknown.stdout
    );

    // An endpoint of alice, who is offline: the POST is accepted (kept), by URL and --via.
    let endpoint = format!(
        "{}/push/{}",
        pushgate.public_url(),
        token(UP_KEY, "alice@example.test/phone")
    );
    let out = dir
        .run(
            &["test-push", "--config", &config, "--endpoint", &endpoint],
            &[],
        )
        .ok();
    assert!(out.contains("HTTP 201"), "{out}");
    let via = format!("http://{}", pushgate.http_address());
    let json = dir
        .run(
            &[
                "test-push",
                "--config",
                &config,
                "--endpoint",
                &endpoint,
                "--via",
                &via,
                "--json",
            ],
            &[],
        )
        .ok();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["ok"], true, "{json}");
    assert_eq!(value["hops"][0]["hop"], "token");
    assert_eq!(value["hops"][1]["hop"], "post");

    // Revoked: stopped before the POST.
    dir.run(&["endpoint", "revoke", "--config", &config, &endpoint], &[])
        .ok();
    let revoked = dir.run(
        &["test-push", "--config", &config, "--endpoint", &endpoint],
        &[],
    );
    assert_eq!(revoked.code, Some(1));
    assert!(revoked.stdout.contains("revoked"), "{}", revoked.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_push_wakes_an_iphone_through_the_apns_of_its_app() {
    use e2e::{COMPONENT, Pushgate, PushgateOptions, ServerKind, XmppServer};
    use pushgate_testkit::conversations::{read_push_registration, register_push_apns};
    use pushgate_testkit::fake_apns::{ApnsAnswer, FAKE_KEY_ID, FAKE_TEAM_ID, FakeApns};
    let test = "test_push_wakes_an_iphone_through_the_apns_of_its_app";
    let Some(server) = XmppServer::start(ServerKind::Prosody, test, &["alice"]).await else {
        return;
    };
    let apns = FakeApns::start().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key_file = FakeApns::write_key_file(keys.path()).unwrap();
    let apns_lines = |topic: &str| {
        format!(
            "key_file = \"{}\"\nkey_id = \"{FAKE_KEY_ID}\"\nteam_id = \"{FAKE_TEAM_ID}\"\n\
             topic = \"{topic}\"\napi_url = \"{}\"\n",
            key_file.display(),
            apns.base_url()
        )
    };
    let mut options = PushgateOptions::new(server.component_port());
    options.extra = format!(
        "[apns]\n{}\n[[app]]\nname = \"other\"\n[app.apns]\n{}",
        apns_lines("org.example.default"),
        apns_lines("org.example.other")
    );
    let pushgate = Pushgate::start(options).await;
    let config = pushgate.config_path().display().to_string();
    let token = "0123456789abcdef".repeat(4);
    let alice = server.login("alice", "iphone").await;
    let answer = alice
        .iq(register_push_apns(COMPONENT, &token, "iphone-1"))
        .await
        .unwrap();
    let registration = read_push_registration(&answer, COMPONENT).unwrap();
    alice.close().await.unwrap();

    let dir = Workdir::new();
    let node = registration.node.as_str();
    let args = [
        "test-push",
        "--config",
        &config,
        "--node",
        node,
        "--domain",
        "example.test",
    ];
    let out = dir.run(&args, &[]).ok();
    assert!(out.contains("apns") && out.contains("accepted"), "{out}");
    assert!(!out.contains(&token), "{out}");
    let with_app = [&args[..], &["--app", "other"]].concat();
    dir.run(&with_app, &[]).ok();
    let topics: Vec<_> = apns
        .accepted()
        .into_iter()
        .map(|request| request.topic.unwrap_or_default())
        .collect();
    assert_eq!(topics, ["org.example.default", "org.example.other"]);

    // Apple says the app is gone: the hop fails, exit 1, the registration is marked dead.
    apns.script(&token, [ApnsAnswer::Unregistered { timestamp_ms: 1 }]);
    let dead = dir.run(&args, &[]);
    assert_eq!(dead.code, Some(1), "{}", dead.stdout);
    assert!(dead.stdout.contains("dead"), "{}", dead.stdout);
    let unknown_app = dir.run(&[&args[..], &["--app", "nope"]].concat(), &[]);
    assert_eq!(unknown_app.code, Some(1));
    assert!(
        unknown_app.stdout.contains("no [[app]]"),
        "{}",
        unknown_app.stdout
    );
}
