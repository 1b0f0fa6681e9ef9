//! A dead token that the store no longer holds alive: the device registered a new one while
//! the wake-up was under way (with a shared database, on another instance), or a racing
//! publish marked it first. A cancel error here would make the user's server drop the
//! registration, so the new token is woken instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::tests::{conversations_register, publish};
use super::*;
use crate::clock::FixedClock;
use crate::test_support::MemoryStore;

/// What happens in the store while the first wake-up is under way, as another instance sharing
/// the database (or a racing publish) would do it.
#[derive(Clone, Copy)]
enum Meanwhile {
    /// The device registers this token.
    Registers(&'static str),
    /// A racing publish marks the woken token dead first.
    MarksDead,
    /// The device unregisters.
    Unregisters,
}

/// A waker for which the listed tokens are dead and every other one is accepted; during the
/// first wake-up it changes the store as `meanwhile` says.
struct RacingWaker {
    store: Arc<MemoryStore>,
    dead: Vec<&'static str>,
    meanwhile: Mutex<Option<Meanwhile>>,
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl Waker for RacingWaker {
    async fn wake(&self, request: WakeRequest<'_>) -> WakeOutcome {
        self.calls.lock().unwrap().push(request.token.to_owned());
        let meanwhile = self.meanwhile.lock().unwrap().take();
        let device = request
            .device
            .expect("the app server names the device")
            .clone();
        match meanwhile {
            Some(Meanwhile::Registers(token)) => {
                self.store
                    .register_device(RegistrationRequest {
                        service: request.service,
                        device,
                        domain: "jabber.de".to_owned(),
                        account: crate::AccountJid::new("xiaomia1@jabber.de"),
                        max_devices_per_account: 32,
                        token: token.to_owned(),
                        fresh_node: Node::generate(),
                        fresh_secret: Secret::generate(),
                        now: 1_700_000_000_500,
                    })
                    .await
                    .unwrap();
            }
            Some(Meanwhile::MarksDead) => {
                assert!(
                    self.store
                        .mark_token_dead(request.service, &device, request.token, 1)
                        .await
                        .unwrap()
                );
            }
            Some(Meanwhile::Unregisters) => {
                assert!(
                    self.store
                        .unregister_device(request.service, &device)
                        .await
                        .unwrap()
                );
            }
            None => {}
        }
        if self.dead.contains(&request.token) {
            WakeOutcome::TokenDead
        } else {
            WakeOutcome::Accepted
        }
    }
}

/// Registers "tok-1", publishes once with `meanwhile` happening during the wake-up; returns
/// the outcome, the tokens woken and the store's registrations afterwards.
async fn publish_racing(
    dead: Vec<&'static str>,
    meanwhile: Meanwhile,
) -> (PublishOutcome, Vec<String>, Vec<Registration>) {
    let store = Arc::new(MemoryStore::new());
    let waker = Arc::new(RacingWaker {
        store: store.clone(),
        dead,
        meanwhile: Mutex::new(Some(meanwhile)),
        calls: Mutex::new(Vec::new()),
    });
    let mut wakers: HashMap<PushService, Arc<dyn Waker>> = HashMap::new();
    wakers.insert(PushService::Fcm, waker.clone());
    let server = AppServer::new(
        store.clone(),
        wakers,
        Arc::new(FixedClock::new(1_700_000_000_000)),
    );
    let r = server
        .register(PushService::Fcm, conversations_register("tok-1"))
        .await
        .unwrap();
    let outcome = server
        .publish(publish(r.node.as_str(), r.secret.expose()))
        .await;
    let calls = waker.calls.lock().unwrap().clone();
    (outcome, calls, store.registrations())
}

#[tokio::test]
async fn a_dead_token_replaced_meanwhile_wakes_the_new_token_instead_of_cancelling() {
    let (outcome, calls, registrations) =
        publish_racing(vec!["tok-1"], Meanwhile::Registers("tok-2")).await;
    assert_eq!(outcome, PublishOutcome::Woken);
    assert_eq!(calls, ["tok-1", "tok-2"]);
    assert_eq!(registrations.len(), 1);
    assert_eq!(registrations[0].token, "tok-2");
    assert_eq!(
        registrations[0].dead_since, None,
        "the new token was marked dead"
    );
}

#[tokio::test]
async fn a_replacement_token_is_tried_once_and_marked_dead_too() {
    let (outcome, calls, registrations) =
        publish_racing(vec!["tok-1", "tok-2"], Meanwhile::Registers("tok-2")).await;
    assert_eq!(outcome, PublishOutcome::TokenDead);
    assert_eq!(calls, ["tok-1", "tok-2"]);
    assert_eq!(registrations[0].token, "tok-2");
    assert_eq!(registrations[0].dead_since, Some(1_700_000_000_000));
}

#[tokio::test]
async fn a_token_already_marked_dead_meanwhile_is_dead_without_a_second_wake_up() {
    let (outcome, calls, registrations) = publish_racing(vec!["tok-1"], Meanwhile::MarksDead).await;
    assert_eq!(outcome, PublishOutcome::TokenDead);
    assert_eq!(calls, ["tok-1"]);
    assert_eq!(
        registrations[0].dead_since,
        Some(1),
        "the first report dates the death"
    );
}

#[tokio::test]
async fn a_dead_token_unregistered_meanwhile_is_dead() {
    let (outcome, calls, registrations) =
        publish_racing(vec!["tok-1"], Meanwhile::Unregisters).await;
    assert_eq!(outcome, PublishOutcome::TokenDead);
    assert_eq!(calls, ["tok-1"]);
    assert!(registrations.is_empty());
}
