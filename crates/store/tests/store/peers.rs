//! Instances on one PostgreSQL database that serve one UnifiedPush link: pushes accepted by an
//! instance without the link are handed to the one holding it and the client's answer comes
//! back; with nobody holding it, they are kept, and the holder flushes them once it hears.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pushgate_core::client_link::{ClientLink, PushDelivery};
use pushgate_core::provider::{
    AcceptOutcome, IncomingMessage, OwnerFlush, PeerInstances as _, Provider, ProviderConfig,
};
use pushgate_core::store::MessageStore as _;
use pushgate_core::test_support::ScriptedClient;
use pushgate_core::{EndpointKey, EndpointKeys, MessageStoreLimits, SystemClock};
use pushgate_store::{Backend, HandoverTimeouts, HoldsLink, PeerBus};

use crate::support::TestDb;

const COMPONENT: &str = "up.example.test";
const OWNER: &str = "alice@example.test/Conversations.x1";
const APP: &str = "XrfnJea6xD8qkGQ3qnvggAgd54an0S97lkm+R7adbKA=";
const INSTANCE: &str = "YhKgbKyLUPep9KJmf7gXhyLL9I5eWSIZO11vXZQT0ew=";
struct Instance {
    provider: Arc<Provider>,
    client: Arc<ScriptedClient>,
    /// Whether this instance's link is up.
    holds: Arc<AtomicBool>,
    /// Which instance holds the lease, as its lease task would say.
    lease_holder: tokio::sync::watch::Sender<Option<String>>,
    bus: PeerBus,
}

async fn instance(db: &TestDb, keys: &EndpointKeys) -> Instance {
    let client = Arc::new(ScriptedClient::default());
    let holds = Arc::new(AtomicBool::new(false));
    let holds_link: HoldsLink = {
        let holds = Arc::clone(&holds);
        Arc::new(move || holds.load(Ordering::SeqCst))
    };
    let bus = PeerBus::start(
        &db.url,
        COMPONENT,
        &format!("{:08x}", rand::random::<u32>()),
        HandoverTimeouts::new(Duration::from_secs(2)),
    )
    .unwrap();
    let config = ProviderConfig {
        public_url: "https://up.example".into(),
        registration_ttl_ms: 7 * 86_400_000,
        max_message_ttl_secs: 86_400,
        store_limits: MessageStoreLimits {
            max_per_owner: 100,
            max_total: 1000,
        },
        allowed_domains: None,
    };
    let link: Arc<dyn ClientLink> =
        Arc::new(bus.client_link(Arc::clone(&client) as _, Arc::clone(&holds_link)));
    let provider = Arc::new(
        Provider::new(
            keys.clone(),
            Arc::new(db.connect().await),
            link,
            Arc::new(SystemClock),
            config,
        )
        .with_peers(Arc::new(bus.clone())),
    );
    bus.serve(Arc::clone(&provider), holds_link, true);
    let (lease_holder, known) = tokio::sync::watch::channel(None);
    bus.follow_holder(known);
    Instance {
        provider,
        client,
        holds,
        lease_holder,
        bus,
    }
}

fn token(provider: &Provider) -> String {
    let registration = provider
        .register(OWNER, "example.test", APP, INSTANCE)
        .unwrap();
    registration
        .endpoint
        .strip_prefix("https://up.example/push/")
        .unwrap()
        .to_owned()
}

fn message(text: &str) -> IncomingMessage<'_> {
    IncomingMessage {
        body: text.as_bytes(),
        ..IncomingMessage::default()
    }
}

/// Polls until `$seen` holds, for at most a second.
macro_rules! within_a_second {
    ($seen:expr) => {{
        let started = Instant::now();
        while !$seen {
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "not seen within a second"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        started.elapsed()
    }};
}

async fn pushes_reach_the_client_through_whichever_instance_holds_the_link(db: TestDb) {
    assert_eq!(db.backend, Backend::Postgres);
    let keys = EndpointKeys::single(EndpointKey::generate());
    let holder = instance(&db, &keys).await;
    let standby = instance(&db, &keys).await;
    holder.holds.store(true, Ordering::SeqCst);
    for instance in [&holder, &standby] {
        instance
            .lease_holder
            .send_replace(Some(holder.bus.instance().to_owned()));
    }
    // Both listeners connect in the background.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Accepted by the standby, delivered by the holder: 201 as on one instance.
    let started = Instant::now();
    let outcome = standby
        .provider
        .accept(&token(&standby.provider), message("one"))
        .await;
    eprintln!("a handed-over push was answered in {:?}", started.elapsed());
    assert!(
        matches!(outcome, AcceptOutcome::Delivered { .. }),
        "{outcome:?}"
    );
    assert_eq!(holder.client.received_bodies(), vec![b"one".to_vec()]);
    assert!(standby.client.received().is_empty());
    assert_eq!(holder.client.received()[0].0, OWNER);

    // The client revokes through the holder: 404 at the standby, and revoked for both.
    holder.client.then(PushDelivery::Revoked);
    let revoked = token(&standby.provider);
    assert_eq!(
        standby.provider.accept(&revoked, message("two")).await,
        AcceptOutcome::NotFound
    );
    assert_eq!(holder.provider.open_endpoint(&revoked).await.unwrap(), None);

    // The client is away: kept (by the standby), announced, and flushed by the holder at
    // once when the client takes it.
    holder
        .client
        .then(PushDelivery::NotDelivered("away".into()));
    let outcome = standby
        .provider
        .accept(&token(&standby.provider), message("three"))
        .await;
    assert!(
        matches!(outcome, AcceptOutcome::Stored { .. }),
        "{outcome:?}"
    );
    let store = db.connect().await;
    let took = within_a_second!(
        store
            .messages_after(0, i64::MAX / 2, 10)
            .await
            .unwrap()
            .is_empty()
    );
    eprintln!("the holder flushed what the standby kept within {took:?}");
    assert_eq!(
        holder.client.received_bodies(),
        vec![
            b"one".to_vec(),
            b"two".to_vec(),
            b"three".to_vec(),
            b"three".to_vec()
        ]
    );

    // The holder of the lease has no link up (it is reconnecting): it says so at once, and
    // the message is kept, never lost.
    holder.holds.store(false, Ordering::SeqCst);
    let started = Instant::now();
    let outcome = standby
        .provider
        .accept(&token(&standby.provider), message("four"))
        .await;
    let waited = started.elapsed();
    assert!(
        matches!(outcome, AcceptOutcome::Stored { .. }),
        "{outcome:?}"
    );
    assert!(waited < Duration::from_millis(500), "{waited:?}");
    // Nobody holds the lease: kept without a word to anyone.
    standby.lease_holder.send_replace(None);
    let started = Instant::now();
    let outcome = standby
        .provider
        .accept(&token(&standby.provider), message("five"))
        .await;
    assert!(
        matches!(outcome, AcceptOutcome::Stored { .. }),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(200));
    // The holder-to-be heard of it, so the owner's presence flushes it there.
    let heard = within_a_second!(holder.provider.may_have_messages(OWNER));
    eprintln!("the kept message was heard of after {heard:?}");
    assert_eq!(holder.client.received_bodies().len(), 4);
    holder.holds.store(true, Ordering::SeqCst);
    let report = holder.provider.flush_owner(OWNER).await;
    assert_eq!(report.delivered, 2);
    assert_eq!(
        holder.client.received_bodies()[4..],
        [b"four".to_vec(), b"five".to_vec()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_reach_the_client_through_whichever_instance_holds_the_link_postgres() {
    crate::support::run(Backend::Postgres, |db| {
        Box::pin(pushes_reach_the_client_through_whichever_instance_holds_the_link(db))
    })
    .await;
}

async fn answers_and_flushes_are_routed_between_instances(db: TestDb) {
    assert_eq!(db.backend, Backend::Postgres);
    let keys = EndpointKeys::single(EndpointKey::generate());
    let a = instance(&db, &keys).await;
    let b = instance(&db, &keys).await;
    let heard: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    {
        let heard = Arc::clone(&heard);
        b.bus.take_answers(Arc::new(move |xml: &str| {
            heard.lock().unwrap().push(xml.to_owned());
            true
        }));
    }
    // The listeners connect, and each instance has seen the other alive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pool = sqlx::postgres::PgPool::connect(&db.url).await.unwrap();
    let live = pushgate_store::live_instances(&pool).await.unwrap();
    assert!(live.contains(a.bus.instance()), "{live:?}");
    assert!(live.contains(b.bus.instance()), "{live:?}");

    // An answer to B's IQ that reached A goes to B.
    let answer = format!("<iq type='result' id='{}.7'/>", b.bus.instance());
    a.bus.forward_answer(b.bus.instance(), answer.clone());
    let took = within_a_second!(!heard.lock().unwrap().is_empty());
    eprintln!("an answer was forwarded in {took:?}");
    assert_eq!(*heard.lock().unwrap(), vec![answer]);
    // One for an instance that is gone is dropped.
    a.bus
        .forward_answer("deadbeef", "<iq type='result' id='deadbeef.1'/>".into());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(heard.lock().unwrap().len(), 1);

    // An owner's kept messages are flushed by one instance at a time.
    let owner = pushgate_core::store::OwnerKey::of_jid(OWNER);
    let granted = match a.bus.flush_owner(&owner).await {
        OwnerFlush::Granted(guard) => guard,
        OwnerFlush::Busy => panic!("nobody flushes yet"),
    };
    assert!(matches!(b.bus.flush_owner(&owner).await, OwnerFlush::Busy));
    let other = pushgate_core::store::OwnerKey::of_jid("bob@example.test/x");
    assert!(matches!(
        b.bus.flush_owner(&other).await,
        OwnerFlush::Granted(_)
    ));
    drop(granted);
    let freed = within_a_second!(matches!(
        b.bus.flush_owner(&owner).await,
        OwnerFlush::Granted(_)
    ));
    eprintln!("an owner's flush lock was free for another instance {freed:?} after its flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_flushes_are_routed_between_instances_postgres() {
    crate::support::run(Backend::Postgres, |db| {
        Box::pin(answers_and_flushes_are_routed_between_instances(db))
    })
    .await;
}
