//! `pushgate import-p2` as an operator switching from p2 runs it: p2's `target` table (created
//! with p2's own DDL) in a real MariaDB, the real binary importing it, and then a real Prosody
//! or ejabberd whose user enabled push with p2's node and secret long ago: a message to that
//! user wakes the phone through pushgate with no new registration.
//!
//! The MariaDB part runs when `PUSHGATE_TEST_MYSQL_URL` is set (like the store tests) and is
//! skipped with a printed reason otherwise; each test gets a database of its own. A missing
//! Prosody or ejabberd skips or fails as `PUSHGATE_INTEROP` says.

#![allow(clippy::unwrap_used)]

mod common;
mod e2e;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{MINIMAL, Workdir};
use e2e::{COMPONENT, DOMAIN, Pushgate, PushgateOptions, ServerKind, XmppServer};
use pushgate_testkit::c2s_client::stanza::{self, stanza_type};
use pushgate_testkit::conversations::{account_fingerprint, push_enable};
use pushgate_testkit::fake_fcm::FakeFcm;
use pushgate_testkit::interop::notice;
use sqlx::{AnyConnection, AssertSqlSafe, Connection as _, Executor as _, Row as _};

/// p2's table, exactly as p2 creates it at start-up (docs/protocol.md B.1.4).
const P2_DDL: &str = "create table if not exists target(service char(4), device CHAR(40) NOT NULL, \
     channel CHAR(40) NOT NULL DEFAULT '', domain varchar(253), token varchar(255), \
     node char(12), secret char(24), primary key(device, channel), \
     index nodeDomain (node,domain))";

const ALICE_ANDROID_ID: &str = "92afd7a91cdba9a0";
/// What p2 handed Alice's phone, and her server still holds from her `enable`.
const ALICE_NODE: &str = "Al1ce+Node/x";
const ALICE_SECRET: &str = "Al1ceSecretFromP2+/abcde";
const ALICE_TOKEN: &str = "p2-fcm-token-of-alices-phone";
const CAROL_TOKEN: &str = "p2-fcm-token-of-carols-phone";
const DAVE_TOKEN: &str = "p2-apns-token-of-daves-phone";
const STEP: Duration = Duration::from_secs(15);

/// Values no output of the command may contain.
const PRIVATE: &[&str] = &[
    ALICE_NODE,
    ALICE_SECRET,
    ALICE_TOKEN,
    CAROL_TOKEN,
    DAVE_TOKEN,
    "CarolNode123",
    "CarolSecretFromP2abcdefg",
    "@example.test",
];

/// A database of its own on the test MariaDB, dropped at the end.
struct P2Database {
    server: String,
    name: String,
}

impl P2Database {
    /// Creates the database with p2's table and rows, or `None` (after saying why) when
    /// `PUSHGATE_TEST_MYSQL_URL` is not set.
    async fn create(test: &str) -> Option<Self> {
        let server = match std::env::var("PUSHGATE_TEST_MYSQL_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                notice(&format!(
                    "SKIPPED {test}: PUSHGATE_TEST_MYSQL_URL is not set"
                ));
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let name = format!("p2_import_{}_{nanos:09}", std::process::id());
        execute(&server, &[&format!("CREATE DATABASE {name}")]).await;
        let database = Self { server, name };
        database.fill().await;
        Some(database)
    }

    fn url(&self) -> String {
        with_database(&self.server, &self.name)
    }

    /// p2's rows: Alice's and Carol's phones (FCM), Dave's iPhone (APNs), a channel (MUC)
    /// row, and a row whose token is NULL.
    async fn fill(&self) {
        let alice = account_fingerprint(&format!("alice@{DOMAIN}"), ALICE_ANDROID_ID);
        let carol = account_fingerprint(&format!("carol@{DOMAIN}"), "0c2a5e1f9b8d7c6a");
        let dave = account_fingerprint(&format!("dave@{DOMAIN}"), "7e3f00d1c0ffee42");
        let muc = account_fingerprint(&format!("alice@{DOMAIN}"), "5555aaaa5555aaaa");
        let channel = account_fingerprint(&format!("room@conference.{DOMAIN}"), "5555aaaa5555aaaa");
        let eve = account_fingerprint(&format!("eve@{DOMAIN}"), "1234123412341234");
        let rows = [
            format!(
                "INSERT INTO target (service, device, domain, token, node, secret) VALUES \
                 ('FCM', '{alice}', '{DOMAIN}', '{ALICE_TOKEN}', '{ALICE_NODE}', '{ALICE_SECRET}')"
            ),
            format!(
                "INSERT INTO target (service, device, domain, token, node, secret) VALUES \
                 ('FCM', '{carol}', '{DOMAIN}', '{CAROL_TOKEN}', 'CarolNode123', \
                 'CarolSecretFromP2abcdefg')"
            ),
            format!(
                "INSERT INTO target (service, device, domain, token, node, secret) VALUES \
                 ('APNS', '{dave}', '{DOMAIN}', '{DAVE_TOKEN}', 'DaveNode1234', \
                 'DaveSecretFromP2abcdefgh')"
            ),
            format!(
                "INSERT INTO target (service, device, channel, domain, token, node, secret) \
                 VALUES ('FCM', '{muc}', '{channel}', '{DOMAIN}', 'muc-token', 'MucNode12345', \
                 'MucSecretFromP2abcdefghi')"
            ),
            format!(
                "INSERT INTO target (service, device, domain, token, node, secret) VALUES \
                 ('FCM', '{eve}', '{DOMAIN}', NULL, 'EveNode12345', 'EveSecretFromP2abcdefghi')"
            ),
        ];
        let mut statements = vec![P2_DDL.to_owned()];
        statements.extend(rows);
        let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
        execute(&self.url(), &statements).await;
    }

    async fn drop(&self) {
        execute(&self.server, &[&format!("DROP DATABASE {}", self.name)]).await;
    }
}

/// Runs `statements` on the database at `url`.
async fn execute(url: &str, statements: &[&str]) {
    sqlx::any::install_default_drivers();
    let mut connection = tokio::time::timeout(Duration::from_secs(10), AnyConnection::connect(url))
        .await
        .expect("the test MariaDB answers")
        .expect("the test MariaDB is reachable");
    for statement in statements {
        connection
            .execute(AssertSqlSafe((*statement).to_owned()))
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }
    let _ = connection.close().await;
}

/// `scheme://authority/<database>?query` from a server URL.
fn with_database(server: &str, database: &str) -> String {
    let (scheme, rest) = server.split_once("://").expect("server URL has a scheme");
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// The real binary: `pushgate import-p2 --config CONFIG --from URL [--json]`.
fn import_p2(config: &Path, from: &str, json: bool) -> common::Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pushgate"));
    command
        .arg("import-p2")
        .arg("--config")
        .arg(config)
        .args(["--from", from])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    if json {
        command.arg("--json");
    }
    let output = command.output().expect("run pushgate import-p2");
    common::Run::from(output)
}

fn assert_nothing_private(run: &common::Run) {
    for value in PRIVATE {
        assert!(
            !run.stdout.contains(value) && !run.stderr.contains(value),
            "the output shows {value:?}:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

/// Every row of pushgate's `registrations` table: (service, device, token, account is NULL).
async fn registrations(database: &Path) -> Vec<(String, String, String, bool)> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", database.display());
    let mut connection = AnyConnection::connect(&url).await.unwrap();
    let rows = sqlx::query(
        "SELECT service, device, token, account IS NULL AS untagged FROM registrations \
         ORDER BY service, device",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let _ = connection.close().await;
    rows.iter()
        .map(|row| {
            let untagged: i64 = row.get("untagged");
            (
                row.get("service"),
                row.get("device"),
                row.get("token"),
                untagged == 1,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_p2_registration_wakes_the_phone_through_prosody() {
    import_then_publish(
        ServerKind::Prosody,
        "imported_p2_registration_wakes_the_phone_through_prosody",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_p2_registration_wakes_the_phone_through_ejabberd() {
    import_then_publish(
        ServerKind::Ejabberd,
        "imported_p2_registration_wakes_the_phone_through_ejabberd",
    )
    .await;
}

async fn import_then_publish(kind: ServerKind, test: &str) {
    let Some(p2) = P2Database::create(test).await else {
        return;
    };
    let url = p2.url();
    let test = test.to_owned();
    // In a task of its own, so a failed assertion still lets the database be dropped.
    let outcome =
        tokio::spawn(async move { import_then_publish_on(kind, &test, &url).await }).await;
    p2.drop().await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

async fn import_then_publish_on(kind: ServerKind, test: &str, p2_url: &str) {
    let Some(server) = XmppServer::start(kind, test, &["alice", "bob"]).await else {
        return;
    };
    let fcm = FakeFcm::start().await.unwrap();
    let service_account = fcm.write_service_account().unwrap();
    let mut options = PushgateOptions::new(server.component_port());
    options.fcm = Some((fcm.api_url(), service_account.path().to_owned()));
    let mut pushgate = Pushgate::configure(options);

    // 1. p2 is stopped; its rows go into pushgate's database (created and migrated by the
    //    command itself).
    let first = import_p2(&pushgate.config_path(), p2_url, false);
    assert_nothing_private(&first);
    let text = first.ok();
    notice(&format!("{test}: first import:\n{text}"));
    assert!(text.contains("read 5 rows"), "{text}");
    assert!(text.contains("imported:        3"), "{text}");
    assert!(text.contains("of which APNs: 1"), "{text}");
    assert!(text.contains("already present: 0"), "{text}");
    assert!(text.contains("skipped:         2"), "{text}");
    assert!(text.contains("(channel_registration)"), "{text}");
    assert!(text.contains("(null_token)"), "{text}");

    // 2. Running it again changes nothing and says so.
    let second = import_p2(&pushgate.config_path(), p2_url, true);
    assert_nothing_private(&second);
    let summary: serde_json::Value = serde_json::from_str(second.ok().trim()).unwrap();
    assert_eq!(summary["read"], 5, "{summary}");
    assert_eq!(summary["imported"], 0, "{summary}");
    assert_eq!(summary["already_present"], 3, "{summary}");
    assert_eq!(
        summary["skipped"],
        serde_json::json!({ "channel_registration": 1, "null_token": 1 })
    );
    assert_eq!(summary["complete"], true, "{summary}");

    // One row per device, tokens as p2 kept them, no account tag (no JID was ever stored).
    let alice = account_fingerprint(&format!("alice@{DOMAIN}"), ALICE_ANDROID_ID);
    let rows = registrations(&pushgate.database_path()).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|row| row.3), "untagged: {rows:?}");
    assert!(
        rows.contains(&(
            "fcm".to_owned(),
            alice.clone(),
            ALICE_TOKEN.to_owned(),
            true
        )),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|row| row.0 == "apns" && row.2 == DAVE_TOKEN)
    );

    // 3. pushgate takes p2's place (same component JID and secret).
    pushgate.launch().await;

    // 4. Alice's server holds the push registration her phone enabled while p2 served: the
    //    `enable` with p2's node and secret. She is offline; Bob writes to her.
    let alice_client = server.login("alice", "phone").await;
    let answer = alice_client
        .iq(push_enable(COMPONENT, ALICE_NODE, ALICE_SECRET))
        .await
        .unwrap();
    assert_eq!(stanza_type(&answer), "result", "{}", server.log_tail(30));
    alice_client.close().await.unwrap();

    let bob = server.login("bob", "desktop").await;
    bob.send(stanza::chat_message(
        &format!("alice@{DOMAIN}"),
        "still there?",
    ))
    .await
    .unwrap();
    let woke = e2e::wait_until(STEP, || fcm.accepted_count() >= 1).await;
    assert!(
        woke.is_some(),
        "no wake-up reached FCM\n--- server ---\n{}\n--- pushgate ---\n{}",
        server.log_tail(60),
        pushgate.log()
    );
    let message = &fcm.messages()[0];
    assert_eq!(message.token, ALICE_TOKEN);
    assert_eq!(message.account, alice);

    // Still one row per device: the publish registered nothing.
    assert_eq!(registrations(&pushgate.database_path()).await.len(), 3);
    bob.close().await.unwrap();
    assert_eq!(pushgate.stop().await, Some(0));
}

/// A settings file whose database is a SQLite file in `dir`.
fn settings_in(dir: &Workdir) -> std::path::PathBuf {
    dir.write(
        "pushgate.toml",
        &format!("{MINIMAL}\n[database]\nurl = \"sqlite://pushgate.db?mode=rwc\"\n"),
    )
}

#[test]
fn a_source_that_is_not_mysql_is_a_usage_error() {
    let dir = Workdir::new();
    let config = settings_in(&dir);
    let config = config.to_str().unwrap();
    let run = dir.run(
        &[
            "import-p2",
            "--config",
            config,
            "--from",
            "postgres://p2:hunter2@db/p2",
        ],
        &[],
    );
    assert_eq!(run.code, Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("mysql://"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2") && !run.stdout.contains("hunter2"));
    // Nothing was touched: pushgate's database was not even created.
    assert!(!dir.path().join("pushgate.db").exists());

    let missing = dir.run(&["import-p2", "--config", config], &[]);
    assert_eq!(missing.code, Some(2), "{}", missing.stderr);
    assert!(missing.stderr.contains("--from"), "{}", missing.stderr);
}

#[test]
fn an_unreachable_source_exits_1_without_its_password() {
    let dir = Workdir::new();
    let config = settings_in(&dir);
    let config = config.to_str().unwrap();
    // Port 1 on the loopback: nothing listens there, the connection is refused at once.
    let run = dir.run(
        &[
            "import-p2",
            "--config",
            config,
            "--from",
            "mysql://p2:hunter2@127.0.0.1:1/p2",
            "--json",
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("cannot connect to p2's database"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2") && !run.stdout.contains("hunter2"));
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(summary["complete"], false, "{summary}");
    assert!(
        summary["error"]
            .as_str()
            .is_some_and(|e| e.contains("p2:***@")),
        "{summary}"
    );
}

#[test]
fn bad_settings_are_a_usage_error() {
    let dir = Workdir::new();
    let config = dir.write(
        "pushgate.toml",
        "[component]\njid = \"push.example.test\"\n",
    );
    let run = dir.run(
        &[
            "import-p2",
            "--config",
            config.to_str().unwrap(),
            "--from",
            "mysql://root@127.0.0.1:1/p2",
        ],
        &[],
    );
    assert_eq!(run.code, Some(2), "{}\n{}", run.stdout, run.stderr);
}
