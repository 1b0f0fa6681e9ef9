//! The provider against an in-memory store and a scripted client: docs/protocol.md A.3 row by row.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::*;
use crate::clock::FixedClock;
use crate::store::MessageStore as _;
use crate::test_support::{MemoryStore, ScriptedClient};
use crate::unified_push::EndpointKey;

const NOW: i64 = 1_800_000_000_000;
const APP: &str = "XrfnJea6xD8qkGQ3qnvggAgd54an0S97lkm+R7adbKA=";
const INSTANCE: &str = "YhKgbKyLUPep9KJmf7gXhyLL9I5eWSIZO11vXZQT0ew=";
const OWNER: &str = "alice@example.test/Conversations.r4nD";

struct Fixture {
    clock: Arc<FixedClock>,
    store: Arc<MemoryStore>,
    client: Arc<ScriptedClient>,
    provider: Provider,
}

fn fixture_with(config: impl FnOnce(&mut ProviderConfig)) -> Fixture {
    let clock = Arc::new(FixedClock::new(NOW));
    let store = Arc::new(MemoryStore::new());
    let client = Arc::new(ScriptedClient::default());
    let mut settings = ProviderConfig {
        public_url: "https://up.example".into(),
        registration_ttl_ms: 7 * 86_400_000,
        max_message_ttl_secs: 86_400,
        store_limits: MessageStoreLimits {
            max_per_owner: 3,
            max_total: 5,
        },
        allowed_domains: None,
    };
    config(&mut settings);
    let provider = Provider::new(
        EndpointKeys::single(EndpointKey::generate()),
        store.clone(),
        client.clone(),
        clock.clone(),
        settings,
    );
    Fixture {
        clock,
        store,
        client,
        provider,
    }
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

/// Registers `OWNER`'s endpoint.
fn register_owner(f: &Fixture) -> UpRegistration {
    f.provider
        .register(OWNER, "example.test", APP, INSTANCE)
        .unwrap()
}

fn token_of(registration: &UpRegistration) -> &str {
    registration
        .endpoint
        .strip_prefix("https://up.example/push/")
        .unwrap()
}

fn body(text: &str) -> IncomingMessage<'_> {
    IncomingMessage {
        body: text.as_bytes(),
        ..IncomingMessage::default()
    }
}

#[test]
fn registration_yields_an_endpoint_that_names_nothing() {
    let f = fixture();
    let registration = register_owner(&f);
    assert_eq!(registration.expires_at, NOW + 7 * 86_400_000);
    let token = token_of(&registration);
    assert!(token.starts_with("v2.local."));
    assert!(!registration.endpoint.contains("alice"));
    let again = register_owner(&f);
    assert_ne!(
        again.endpoint, registration.endpoint,
        "each registration gets a fresh nonce"
    );
}

#[test]
fn registration_refuses_bad_ids_and_foreign_domains() {
    let f = fixture_with(|c| c.allowed_domains = Some(vec!["example.test".into()]));
    assert!(matches!(
        f.provider
            .register(OWNER, "example.test", "short", INSTANCE),
        Err(UpRegisterError::BadId {
            field: "application",
            ..
        })
    ));
    assert!(matches!(
        f.provider
            .register(OWNER, "example.test", APP, "bm90IDMyIGJ5dGVz"),
        Err(UpRegisterError::BadId {
            field: "instance",
            ..
        })
    ));
    assert!(matches!(
        f.provider
            .register("eve@evil.example/x", "evil.example", APP, INSTANCE),
        Err(UpRegisterError::DomainNotAllowed)
    ));
    assert!(
        f.provider
            .register(OWNER, "EXAMPLE.test", APP, INSTANCE)
            .is_ok()
    );
}

#[tokio::test]
async fn a_delivered_message_reaches_the_owner() {
    let f = fixture();
    let registration = register_owner(&f);
    let outcome = f
        .provider
        .accept(token_of(&registration), body("hello"))
        .await;
    assert_eq!(outcome, AcceptOutcome::Delivered { ttl_secs: 86_400 });
    let received = f.client.received();
    assert_eq!(
        received,
        vec![(OWNER.into(), APP.into(), INSTANCE.into(), b"hello".to_vec())]
    );
}

#[tokio::test]
async fn unknown_and_expired_endpoints_are_not_found() {
    let f = fixture();
    assert_eq!(
        f.provider.accept("v2.local.AAAA", body("x")).await,
        AcceptOutcome::NotFound
    );
    assert_eq!(
        f.provider.accept("", body("x")).await,
        AcceptOutcome::NotFound
    );
    let registration = register_owner(&f);
    f.clock.set(registration.expires_at);
    assert_eq!(
        f.provider.accept(token_of(&registration), body("x")).await,
        AcceptOutcome::NotFound
    );
    assert!(f.client.received_bodies().is_empty());
}

#[tokio::test]
async fn a_revoked_endpoint_is_not_found_without_asking_the_client_again() {
    let f = fixture();
    let registration = register_owner(&f);
    f.client.always(PushDelivery::Revoked);
    assert_eq!(
        f.provider.accept(token_of(&registration), body("1")).await,
        AcceptOutcome::NotFound
    );
    assert_eq!(
        f.provider.accept(token_of(&registration), body("2")).await,
        AcceptOutcome::NotFound
    );
    assert_eq!(f.client.received_bodies(), vec![b"1".to_vec()]);
    // A new registration of the same app is a new endpoint and works.
    f.client.always(PushDelivery::Delivered);
    let fresh = register_owner(&f);
    assert!(matches!(
        f.provider.accept(token_of(&fresh), body("3")).await,
        AcceptOutcome::Delivered { .. }
    ));
}

#[tokio::test]
async fn undelivered_messages_are_kept_for_the_capped_ttl() {
    let f = fixture();
    let registration = register_owner(&f);
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    let short = IncomingMessage {
        ttl_secs: Some(60),
        ..body("a")
    };
    assert_eq!(
        f.provider.accept(token_of(&registration), short).await,
        AcceptOutcome::Stored { ttl_secs: 60 }
    );
    let long = IncomingMessage {
        ttl_secs: Some(10_000_000),
        ..body("b")
    };
    assert_eq!(
        f.provider.accept(token_of(&registration), long).await,
        AcceptOutcome::Stored { ttl_secs: 86_400 }
    );
    let now_or_never = IncomingMessage {
        ttl_secs: Some(0),
        ..body("c")
    };
    assert_eq!(
        f.provider
            .accept(token_of(&registration), now_or_never)
            .await,
        AcceptOutcome::Dropped
    );
    let stored = f.store.messages_after(0, NOW, 10).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].message.expires_at, NOW + 60_000);
}

#[tokio::test]
async fn a_message_is_never_kept_past_its_endpoint() {
    let f = fixture_with(|c| c.registration_ttl_ms = 30_000);
    let registration = register_owner(&f);
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    assert_eq!(
        f.provider.accept(token_of(&registration), body("a")).await,
        AcceptOutcome::Stored { ttl_secs: 30 }
    );
}

#[tokio::test]
async fn caps_give_owner_full_then_unavailable_and_topics_replace() {
    let f = fixture();
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    let alice = register_owner(&f);
    let topic = |text: &'static str| IncomingMessage {
        topic: Some(Topic::parse("mail").unwrap()),
        ..body(text)
    };
    for text in ["1", "2"] {
        assert!(matches!(
            f.provider.accept(token_of(&alice), body(text)).await,
            AcceptOutcome::Stored { .. }
        ));
    }
    assert!(matches!(
        f.provider.accept(token_of(&alice), topic("t1")).await,
        AcceptOutcome::Stored { .. }
    ));
    // Replacing the topic message does not count twice.
    assert!(matches!(
        f.provider.accept(token_of(&alice), topic("t2")).await,
        AcceptOutcome::Stored { .. }
    ));
    assert_eq!(
        f.provider.accept(token_of(&alice), body("4")).await,
        AcceptOutcome::OwnerFull
    );
    let bob = f
        .provider
        .register("bob@example.test/x", "example.test", APP, INSTANCE)
        .unwrap();
    for text in ["b1", "b2"] {
        assert!(matches!(
            f.provider.accept(token_of(&bob), body(text)).await,
            AcceptOutcome::Stored { .. }
        ));
    }
    assert_eq!(
        f.provider.accept(token_of(&bob), body("b3")).await,
        AcceptOutcome::Unavailable
    );
    let alice_messages = f
        .store
        .messages_for_owner(&OwnerKey::of_jid(OWNER), NOW, 10)
        .await
        .unwrap();
    let bodies: Vec<_> = alice_messages
        .iter()
        .map(|m| m.message.body.clone())
        .collect();
    assert_eq!(bodies, vec![b"1".to_vec(), b"2".to_vec(), b"t2".to_vec()]);
}

#[tokio::test]
async fn presence_flushes_in_order_and_stops_at_the_first_failure() {
    let f = fixture();
    let registration = register_owner(&f);
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    for text in ["1", "2", "3"] {
        f.provider.accept(token_of(&registration), body(text)).await;
    }
    f.client.clear_received();
    f.client.then(PushDelivery::Delivered);
    f.client.then(PushDelivery::NotDelivered("gone".into()));
    let report = f.provider.flush_owner(OWNER).await;
    assert_eq!(report.delivered, 1);
    assert!(report.interrupted);
    f.client.always(PushDelivery::Delivered);
    let report = f.provider.flush_owner(OWNER).await;
    assert_eq!(report.delivered, 2);
    assert!(!report.interrupted);
    assert_eq!(
        f.client.received_bodies(),
        vec![b"1".to_vec(), b"2".to_vec(), b"2".to_vec(), b"3".to_vec()]
    );
    assert!(f.store.messages_after(0, NOW, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn only_owners_with_kept_messages_may_have_messages() {
    let f = fixture();
    let registration = register_owner(&f);
    assert!(!f.provider.may_have_messages(OWNER));
    // A delivered message keeps nothing.
    f.provider
        .accept(token_of(&registration), body("now"))
        .await;
    assert!(!f.provider.may_have_messages(OWNER));
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    f.provider
        .accept(token_of(&registration), body("kept"))
        .await;
    assert!(f.provider.may_have_messages(OWNER));
    assert!(!f.provider.may_have_messages("alice@example.test/other"));
    // An interrupted flush leaves the owner pending; a complete one clears it.
    assert!(f.provider.flush_owner(OWNER).await.interrupted);
    assert!(f.provider.may_have_messages(OWNER));
    f.client.always(PushDelivery::Delivered);
    assert_eq!(f.provider.flush_owner(OWNER).await.delivered, 1);
    assert!(!f.provider.may_have_messages(OWNER));
}

#[tokio::test]
async fn after_a_restart_the_link_up_flush_finds_the_owners_again() {
    let f = fixture();
    let registration = register_owner(&f);
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    f.provider
        .accept(token_of(&registration), body("kept"))
        .await;
    // A new process on the same store knows nothing until the link-up flush reads it.
    let restarted = Provider::new(
        f.provider.keys.clone(),
        f.store.clone(),
        f.client.clone(),
        f.clock.clone(),
        f.provider.config.clone(),
    );
    assert!(!restarted.may_have_messages(OWNER));
    assert!(restarted.flush_all().await.interrupted);
    assert!(restarted.may_have_messages(OWNER));
}

/// A client whose first push waits for the test, then finds the owner away; later pushes are
/// taken.
struct ComesOnlineDuringTheFirstPush {
    first: tokio::sync::Notify,
    pushes: Mutex<usize>,
}

#[async_trait]
impl ClientLink for ComesOnlineDuringTheFirstPush {
    async fn push(&self, _push: UpPush<'_>) -> PushDelivery {
        let n = {
            let mut pushes = self.pushes.lock().unwrap();
            *pushes += 1;
            *pushes
        };
        if n == 1 {
            self.first.notified().await;
            return PushDelivery::NotDelivered("away".into());
        }
        PushDelivery::Delivered
    }
}

#[tokio::test]
async fn a_flush_asked_for_while_one_runs_is_not_lost_when_that_one_finds_the_owner_away() {
    let f = fixture();
    let registration = register_owner(&f);
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    f.provider
        .accept(token_of(&registration), body("kept"))
        .await;
    let client = Arc::new(ComesOnlineDuringTheFirstPush {
        first: tokio::sync::Notify::new(),
        pushes: Mutex::new(0),
    });
    let provider = Arc::new(Provider::new(
        f.provider.keys.clone(),
        f.store.clone(),
        client.clone(),
        f.clock.clone(),
        f.provider.config.clone(),
    ));
    // The link-up flush is pushing (the owner still away) when the owner's presence asks for
    // another: the second returns at once, and the first goes round again.
    let running = tokio::spawn({
        let provider = Arc::clone(&provider);
        async move { provider.flush_owner(OWNER).await }
    });
    while *client.pushes.lock().unwrap() == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(provider.flush_owner(OWNER).await, FlushReport::default());
    client.first.notify_one();
    let report = running.await.unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    assert!(f.store.messages_after(0, NOW, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_delivery_flushes_what_was_kept_before() {
    let f = fixture();
    let registration = register_owner(&f);
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    f.provider
        .accept(token_of(&registration), body("old"))
        .await;
    f.client.always(PushDelivery::Delivered);
    f.provider
        .accept(token_of(&registration), body("new"))
        .await;
    assert_eq!(
        f.client.received_bodies(),
        vec![b"old".to_vec(), b"new".to_vec(), b"old".to_vec()]
    );
    assert!(f.store.messages_after(0, NOW, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn link_return_flushes_every_owner_and_drops_unopenable_tokens() {
    let f = fixture();
    let alice = register_owner(&f);
    let bob = f
        .provider
        .register("bob@example.test/y", "example.test", APP, INSTANCE)
        .unwrap();
    f.client
        .always(PushDelivery::NotDelivered("link down".into()));
    f.provider.accept(token_of(&alice), body("a")).await;
    f.provider.accept(token_of(&bob), body("b")).await;
    f.client.always(PushDelivery::Delivered);
    f.client.clear_received();
    let report = f.provider.flush_all().await;
    assert_eq!(report.delivered, 2);
    let owners: Vec<_> = f.client.received().iter().map(|r| r.0.clone()).collect();
    assert_eq!(
        owners,
        vec![OWNER.to_owned(), "bob@example.test/y".to_owned()]
    );
}

#[tokio::test]
async fn a_revocation_during_flush_drops_that_endpoints_messages() {
    let f = fixture();
    let registration = register_owner(&f);
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    for text in ["1", "2"] {
        f.provider.accept(token_of(&registration), body(text)).await;
    }
    f.client.always(PushDelivery::Revoked);
    let report = f.provider.flush_owner(OWNER).await;
    assert_eq!(report.revoked, 1);
    assert!(f.store.messages_after(0, NOW, 10).await.unwrap().is_empty());
    assert_eq!(
        f.provider.accept(token_of(&registration), body("3")).await,
        AcceptOutcome::NotFound
    );
}

#[tokio::test]
async fn a_flush_the_database_failed_says_so_and_a_later_one_sends_everything() {
    let f = fixture();
    let registration = register_owner(&f);
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    f.provider.accept(token_of(&registration), body("a")).await;
    f.client.always(PushDelivery::Delivered);
    f.store.set_unavailable(true);
    let report = f.provider.flush_all().await;
    assert!(report.failed && report.interrupted, "{report:?}");
    let report = f.provider.flush_owner(OWNER).await;
    assert!(report.failed, "{report:?}");
    f.store.set_unavailable(false);
    let report = f.provider.flush_all().await;
    assert_eq!((report.delivered, report.failed), (1, false));
    // An owner who stops answering interrupts a flush, but nothing failed.
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    f.provider.accept(token_of(&registration), body("b")).await;
    let report = f.provider.flush_owner(OWNER).await;
    assert!(report.interrupted && !report.failed, "{report:?}");
}

#[tokio::test]
async fn a_database_failure_is_unavailable() {
    let f = fixture();
    let registration = register_owner(&f);
    f.store.set_unavailable(true);
    assert_eq!(
        f.provider.accept(token_of(&registration), body("x")).await,
        AcceptOutcome::Unavailable
    );
}

/// Records what the provider announces to the other instances.
#[derive(Default)]
struct HeardPeers(Mutex<Vec<OwnerKey>>);

#[async_trait]
impl PeerInstances for HeardPeers {
    fn messages_kept(&self, owner: &OwnerKey) {
        self.0.lock().unwrap().push(owner.clone());
    }

    async fn flush_owner(&self, _owner: &OwnerKey) -> OwnerFlush {
        OwnerFlush::Granted(Box::new(()))
    }
}

/// Another instance is always flushing.
struct FlushingElsewhere;

#[async_trait]
impl PeerInstances for FlushingElsewhere {
    fn messages_kept(&self, _owner: &OwnerKey) {}

    async fn flush_owner(&self, _owner: &OwnerKey) -> OwnerFlush {
        OwnerFlush::Busy
    }
}

#[tokio::test]
async fn an_owner_another_instance_is_flushing_is_left_to_it() {
    let mut f = fixture();
    f.provider = f.provider.with_peers(Arc::new(FlushingElsewhere));
    let registration = register_owner(&f);
    f.client.then(PushDelivery::NotDelivered("away".into()));
    f.provider
        .accept(token_of(&registration), body("kept"))
        .await;
    f.client.clear_received();
    assert_eq!(f.provider.flush_owner(OWNER).await, FlushReport::default());
    assert!(f.client.received().is_empty());
    assert_eq!(f.store.messages_after(0, NOW, 10).await.unwrap().len(), 1);
    // Still marked: the owner's next presence asks again.
    assert!(f.provider.may_have_messages(OWNER));
}

#[tokio::test]
async fn a_kept_message_is_announced_to_the_other_instances_and_a_delivered_one_is_not() {
    let peers = Arc::new(HeardPeers::default());
    let mut f = fixture();
    f.provider = f.provider.with_peers(peers.clone());
    let registration = register_owner(&f);
    f.client.then(PushDelivery::Delivered);
    f.provider.accept(token_of(&registration), body("a")).await;
    assert!(peers.0.lock().unwrap().is_empty());
    f.client
        .always(PushDelivery::NotDelivered("offline".into()));
    f.provider.accept(token_of(&registration), body("b")).await;
    assert_eq!(*peers.0.lock().unwrap(), vec![OwnerKey::of_jid(OWNER)]);
}

#[tokio::test]
async fn an_owner_another_instance_kept_messages_for_is_flushed_here() {
    let f = fixture();
    assert!(!f.provider.may_have_messages(OWNER));
    f.provider.note_pending(OwnerKey::of_jid(OWNER));
    assert!(f.provider.may_have_messages(OWNER));
}

#[tokio::test]
async fn resynchronising_marks_every_owner_with_kept_messages_from_the_store() {
    let kept_by_another = fixture();
    let registration = register_owner(&kept_by_another);
    kept_by_another
        .client
        .always(PushDelivery::NotDelivered("offline".into()));
    for text in ["a", "b"] {
        kept_by_another
            .provider
            .accept(token_of(&registration), body(text))
            .await;
    }
    // A second provider over the same store, which heard nothing.
    let here = Provider::new(
        EndpointKeys::single(EndpointKey::generate()),
        kept_by_another.store.clone(),
        kept_by_another.client.clone(),
        kept_by_another.clock.clone(),
        kept_by_another.provider.config().clone(),
    );
    assert!(!here.may_have_messages(OWNER));
    assert_eq!(here.note_all_pending().await.unwrap(), 2);
    assert!(here.may_have_messages(OWNER));
    assert!(!here.may_have_messages("bob@example.test/x"));
}

#[tokio::test]
async fn a_relayed_push_reaches_the_token_owner_and_its_answer_comes_back() {
    let f = fixture();
    let registration = register_owner(&f);
    let token = token_of(&registration);
    f.client.then(PushDelivery::Revoked);
    assert_eq!(
        f.provider.relay(token, b"hello").await,
        Some(PushDelivery::Revoked)
    );
    let received = f.client.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].0, OWNER);
    assert_eq!(received[0].3, b"hello");
    // Relaying decides nothing: the instance that accepted the message revokes and stores.
    assert!(f.store.messages_after(0, NOW, 10).await.unwrap().is_empty());
    assert_eq!(f.provider.relay("v2.local.forged", b"x").await, None);
    assert_eq!(f.client.received().len(), 1);
}

#[tokio::test]
async fn the_link_holder_flushes_what_another_instance_kept_as_soon_as_it_hears() {
    let kept_by_another = fixture();
    let registration = register_owner(&kept_by_another);
    kept_by_another.client.always(PushDelivery::NotDelivered(
        "no instance holds the link".into(),
    ));
    kept_by_another
        .provider
        .accept(token_of(&registration), body("kept"))
        .await;
    let holder_client = Arc::new(ScriptedClient::default());
    let holder = Provider::new(
        kept_by_another.provider.keys.clone(),
        kept_by_another.store.clone(),
        holder_client.clone(),
        kept_by_another.clock.clone(),
        kept_by_another.provider.config().clone(),
    );
    let report = holder.flush_kept_for(OwnerKey::of_jid(OWNER)).await;
    assert_eq!(report.delivered, 1);
    assert_eq!(holder_client.received_bodies(), vec![b"kept".to_vec()]);
    assert!(
        kept_by_another
            .store
            .messages_after(0, NOW, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Nothing kept: nothing sent.
    let report = holder
        .flush_kept_for(OwnerKey::of_jid("bob@example.test/x"))
        .await;
    assert_eq!(report, FlushReport::default());
}
