use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::test_support::{ClockSleeper, FixedClock, ScriptedWaker};

const TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

struct Setup {
    modules: PushModules,
    production: Arc<ScriptedWaker>,
    sandbox: Arc<ScriptedWaker>,
    fcm: Arc<ScriptedWaker>,
    clock: Arc<FixedClock>,
    sleeper: Arc<ClockSleeper>,
}

fn setup(config: PushModulesConfig) -> Setup {
    let production = Arc::new(ScriptedWaker::default());
    let sandbox = Arc::new(ScriptedWaker::default());
    let fcm = Arc::new(ScriptedWaker::default());
    let mut modules = HashMap::new();
    modules.insert(
        "monalProdiOS".to_owned(),
        PushModule {
            service: PushService::Apns,
            waker: Arc::clone(&production) as _,
            sandbox: Some(Arc::clone(&sandbox) as _),
        },
    );
    modules.insert(
        "whiteLabelAndroid".to_owned(),
        PushModule {
            service: PushService::Fcm,
            waker: Arc::clone(&fcm) as _,
            sandbox: None,
        },
    );
    let clock = Arc::new(FixedClock::new(1_000_000));
    let sleeper = Arc::new(ClockSleeper::new(Arc::clone(&clock)));
    Setup {
        modules: PushModules::new(
            modules,
            &config,
            Arc::clone(&clock) as _,
            Arc::clone(&sleeper) as _,
        ),
        production,
        sandbox,
        fcm,
        clock,
        sleeper,
    }
}

fn with_default() -> PushModulesConfig {
    PushModulesConfig {
        default: Some("monalProdiOS".into()),
        ..PushModulesConfig::default()
    }
}

fn publish<'a>(module: Option<&'a str>, node: &'a str) -> TokenPublish<'a> {
    TokenPublish {
        from_has_resource: false,
        node: Some(node),
        module,
    }
}

#[tokio::test]
async fn a_module_s_publish_wakes_its_token_with_no_device_named() {
    let s = setup(with_default());
    let outcome = s
        .modules
        .publish(publish(Some("monalProdiOS"), TOKEN))
        .await;
    assert_eq!(outcome, TokenPublishOutcome::Woken);
    let calls = s.production.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].service, PushService::Apns);
    assert_eq!(calls[0].token, TOKEN);
    assert_eq!(calls[0].device, "", "a token node names no device");
    assert!(s.sandbox.calls().is_empty());
}

#[tokio::test]
async fn the_sandbox_suffix_and_the_default_module_pick_their_waker() {
    let s = setup(with_default());
    assert_eq!(
        s.modules
            .publish(publish(Some("monalProdiOS-sandbox"), TOKEN))
            .await,
        TokenPublishOutcome::Woken
    );
    assert_eq!(s.sandbox.calls().len(), 1);
    assert!(s.production.calls().is_empty());
    // No pushModule: the default module.
    let other = "ff".repeat(32);
    assert_eq!(
        s.modules.publish(publish(None, &other)).await,
        TokenPublishOutcome::Woken
    );
    assert_eq!(s.production.calls()[0].token, other);
    // A module without a sandbox has no `-sandbox` name.
    assert_eq!(
        s.modules
            .publish(publish(Some("whiteLabelAndroid-sandbox"), "fcm:token"))
            .await,
        TokenPublishOutcome::UnknownModule
    );
    assert_eq!(
        s.modules
            .publish(publish(Some("whiteLabelAndroid"), "fcm:token"))
            .await,
        TokenPublishOutcome::Woken
    );
    assert_eq!(s.fcm.calls().len(), 1);
}

#[tokio::test]
async fn without_a_default_several_modules_leave_a_bare_publish_unanswered_by_any() {
    let s = setup(PushModulesConfig::default());
    assert_eq!(s.modules.default_module(), None);
    assert_eq!(
        s.modules.publish(publish(None, TOKEN)).await,
        TokenPublishOutcome::UnknownModule
    );
}

#[tokio::test]
async fn bad_nodes_unknown_modules_and_resources_never_reach_a_waker() {
    let s = setup(with_default());
    let huge = "a".repeat(10_240);
    let long_name = "m".repeat(1000);
    for (request, expected) in [
        (
            publish(Some("monalProdiOS"), "not-hex-at-all"),
            TokenPublishOutcome::BadNode,
        ),
        (
            publish(Some("monalProdiOS"), &huge),
            TokenPublishOutcome::BadNode,
        ),
        (
            publish(Some("monalProdiOS"), &TOKEN[..62]),
            TokenPublishOutcome::BadNode,
        ),
        (
            publish(Some("whiteLabelAndroid"), "<evil/>"),
            TokenPublishOutcome::BadNode,
        ),
        (
            publish(Some("nope"), TOKEN),
            TokenPublishOutcome::UnknownModule,
        ),
        (
            publish(Some(&long_name), TOKEN),
            TokenPublishOutcome::UnknownModule,
        ),
        (
            TokenPublish {
                from_has_resource: false,
                node: None,
                module: Some("monalProdiOS"),
            },
            TokenPublishOutcome::BadNode,
        ),
        (
            TokenPublish {
                from_has_resource: true,
                node: Some(TOKEN),
                module: Some("monalProdiOS"),
            },
            TokenPublishOutcome::Forbidden,
        ),
    ] {
        assert_eq!(s.modules.publish(request).await, expected, "{request:?}");
    }
    assert!(s.production.calls().is_empty());
    assert!(s.fcm.calls().is_empty());
}

#[tokio::test]
async fn a_dead_token_is_remembered_and_a_storm_for_it_stays_here() {
    let s = setup(with_default());
    s.production.answer(WakeOutcome::TokenDead);
    assert_eq!(
        s.modules
            .publish(publish(Some("monalProdiOS"), TOKEN))
            .await,
        TokenPublishOutcome::TokenDead
    );
    for _ in 0..100 {
        s.clock.advance(5_000);
        assert_eq!(
            s.modules
                .publish(publish(Some("monalProdiOS"), TOKEN))
                .await,
            TokenPublishOutcome::TokenDead
        );
    }
    assert_eq!(s.production.calls().len(), 1, "Apple was asked once");
    // The same token under the sandbox name is another app's token: asked.
    s.sandbox.answer(WakeOutcome::Accepted);
    assert_eq!(
        s.modules
            .publish(publish(Some("monalProdiOS-sandbox"), TOKEN))
            .await,
        TokenPublishOutcome::Woken
    );
    // After a day it is asked again (an app reinstalled may get its old token back).
    s.clock.advance(86_400_000);
    s.production.answer(WakeOutcome::Accepted);
    assert_eq!(
        s.modules
            .publish(publish(Some("monalProdiOS"), TOKEN))
            .await,
        TokenPublishOutcome::Woken
    );
}

#[tokio::test]
async fn passing_trouble_and_refusals_are_wait_never_dead() {
    let s = setup(with_default());
    s.production.answer(WakeOutcome::Transient("503".into()));
    assert_eq!(
        s.modules
            .publish(publish(Some("monalProdiOS"), TOKEN))
            .await,
        TokenPublishOutcome::Unavailable
    );
    s.clock.advance(10_000);
    s.production
        .answer(WakeOutcome::Rejected("400 BadPriority".into()));
    assert_eq!(
        s.modules
            .publish(publish(Some("monalProdiOS"), TOKEN))
            .await,
        TokenPublishOutcome::Unavailable
    );
    s.clock.advance(10_000);
    s.production.answer(WakeOutcome::Accepted);
    assert_eq!(
        s.modules
            .publish(publish(Some("monalProdiOS"), TOKEN))
            .await,
        TokenPublishOutcome::Woken,
        "nothing was remembered as dead"
    );
}

#[tokio::test]
async fn a_burst_within_the_interval_makes_one_more_push_after_it() {
    let s = setup(with_default());
    let first = s
        .modules
        .publish(publish(Some("monalProdiOS"), TOKEN))
        .await;
    assert_eq!(first, TokenPublishOutcome::Woken);
    // 500 ms later: this publish waits for the end of the interval and pushes then.
    s.clock.advance(500);
    let modules = &s.modules;
    let second = modules.publish(publish(Some("monalProdiOS"), TOKEN));
    let second = second.await;
    assert_eq!(second, TokenPublishOutcome::Woken);
    assert_eq!(s.sleeper.slept(), [Duration::from_millis(1500)]);
    assert_eq!(s.production.calls().len(), 2);
    // Within the next interval again: planned once more, and the ones after it are coalesced
    // into that planned push while it waits.
    s.clock.advance(100);
    let planned = s
        .modules
        .bursts
        .turn(&format!("monalProdiOS\0{TOKEN}"), s.clock.now());
    assert!(matches!(planned, Turn::At(_)), "{planned:?}");
    assert_eq!(
        s.modules
            .publish(publish(Some("monalProdiOS"), TOKEN))
            .await,
        TokenPublishOutcome::Coalesced
    );
    assert_eq!(
        s.production.calls().len(),
        2,
        "a coalesced publish sends nothing"
    );
    // Another token is not held up.
    let other = "ab".repeat(32);
    assert_eq!(
        s.modules
            .publish(publish(Some("monalProdiOS"), &other))
            .await,
        TokenPublishOutcome::Woken
    );
    assert_eq!(s.sleeper.slept().len(), 1);
}
