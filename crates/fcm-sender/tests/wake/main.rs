//! `FcmSender` against the fake FCM and OAuth2 endpoint: an HTTP exchange in, a `WakeOutcome`
//! out.

mod connection;
mod deadline;
mod errors;
mod http2;
mod message;
mod oauth;
mod pool;
mod transport;

use std::time::Duration;

use pushgate_core::{DeviceHash, PushService, WakeOutcome, WakeRequest, Waker as _};
use pushgate_fcm::{FcmConfig, FcmSender, RetryPolicy, ServiceAccount};
use pushgate_testkit::fake_fcm::FakeFcm;

/// The p2 README device: `xiaomia1@jabber.de` with android-id `92afd7a91cdba9a0`.
const HASH: &str = "ec164939a8485ee6b7f7871071a11c7bb18aead5";

fn device() -> DeviceHash {
    DeviceHash::from_hex(HASH).expect("valid hash")
}

/// Settings for tests: the fake's URL, a short deadline, quick retries.
fn config(fake: &FakeFcm) -> FcmConfig {
    FcmConfig {
        api_url: fake.api_url(),
        request_deadline: Duration::from_secs(3),
        ..FcmConfig::default()
    }
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    }
}

fn sender_with(fake: &FakeFcm, config: &FcmConfig) -> FcmSender {
    let account = ServiceAccount::from_json(&fake.service_account_json()).expect("fake key");
    FcmSender::new(config, account)
        .expect("sender")
        .with_retry_policy(quick_retries())
}

async fn start() -> (FakeFcm, FcmSender) {
    let fake = FakeFcm::start().await.expect("fake FCM");
    let sender = sender_with(&fake, &config(&fake));
    (fake, sender)
}

async fn wake(sender: &FcmSender, token: &str) -> WakeOutcome {
    sender
        .wake(WakeRequest {
            service: PushService::Fcm,
            token,
            device: Some(&device()),
        })
        .await
}

fn is_transient(outcome: &WakeOutcome) -> bool {
    matches!(outcome, WakeOutcome::Transient(_))
}
