//! Two instances on one PostgreSQL database in front of a real Prosody, which accepts one
//! connection per component: one holds the link (its lease is an advisory lock), the other
//! stands by and serves HTTP; when the holder is killed, the standby holds the link within
//! two seconds, and Prosody never sees a second component connect.
//!
//! Runs when `PUSHGATE_TEST_POSTGRES_URL` names a PostgreSQL server (CI sets it); skipped
//! with a printed reason otherwise, and when Prosody is not installed unless
//! `PUSHGATE_INTEROP=required`.

#![allow(clippy::unwrap_used)]

mod e2e;

use std::time::{Duration, Instant};

use e2e::{COMPONENT, Pushgate, PushgateOptions, ServerKind, XmppServer};
use pushgate_testkit::conversations::{read_up_registered, up_hash, up_register};
use pushgate_testkit::interop::notice;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection as _, Executor as _};

/// The link's state in a `/health` body.
async fn link_state(pushgate: &Pushgate) -> Option<String> {
    let (_, body) = pushgate.health().await?;
    let health: serde_json::Value = serde_json::from_str(&body).ok()?;
    health["links"][0]["state"].as_str().map(str::to_owned)
}

async fn wait_for_state(pushgate: &Pushgate, state: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if link_state(pushgate).await.as_deref() == Some(state) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not {state} within {within:?} (now {:?}):\n{}",
            link_state(pushgate).await,
            pushgate.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_holds_the_prosody_link_within_two_seconds_of_the_holder_s_death() {
    let test = "a_standby_holds_the_prosody_link_within_two_seconds_of_the_holder_s_death";
    let Some(server_url) = std::env::var("PUSHGATE_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        notice(&format!(
            "SKIPPED {test}: PUSHGATE_TEST_POSTGRES_URL is not set"
        ));
        return;
    };
    let Some(server) = XmppServer::start(ServerKind::Prosody, test, &["alice"]).await else {
        return;
    };
    // A schema of the test's own on the shared server.
    let schema = format!("pushgate_e2e_{:016x}", rand_u64());
    let mut admin = PgConnection::connect(&server_url).await.unwrap();
    admin
        .execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .unwrap();
    let separator = if server_url.contains('?') { '&' } else { '?' };
    let url = format!("{server_url}{separator}options=-c%20search_path%3D{schema}");

    let options = || {
        let mut options = PushgateOptions::new(server.component_port());
        options.database_url = Some(url.clone());
        options
    };
    // Healthy (`/health` 200) as soon as it stands by; the link is up once the lease is taken.
    let mut first = Pushgate::start(options()).await;
    wait_for_state(&first, "up", Duration::from_secs(5)).await;
    // The second is healthy on standby: it serves HTTP, and holds no link.
    let second = Pushgate::start(options()).await;
    wait_for_state(&second, "standby", Duration::from_secs(5)).await;
    let conflicts = "Second component attempted to connect";
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.log_count(conflicts), 0, "the standby never tried");

    // The holder dies without a word: the standby holds the link within two seconds.
    first.kill();
    let took = wait_for_state(&second, "up", Duration::from_secs(2)).await;
    notice(&format!(
        "{test}: the standby held the link {took:?} after SIGKILL"
    ));
    assert_eq!(server.log_count(conflicts), 0, "never two components");

    // And it serves: a client registers through the new holder.
    let alice = server.login("alice", "phone").await;
    let answer = alice
        .iq(up_register(
            COMPONENT,
            &up_hash("account", "app"),
            &up_hash("account", "instance"),
        ))
        .await
        .unwrap();
    let endpoint = read_up_registered(&answer, COMPONENT).unwrap().endpoint;
    assert!(endpoint.contains("/push/v2.local."), "{endpoint}");
    alice.close().await.unwrap();

    drop(second);
    drop(first);
    admin
        .execute(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await
        .unwrap();
}

fn rand_u64() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32
}
