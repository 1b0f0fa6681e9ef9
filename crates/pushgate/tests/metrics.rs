//! `/metrics`, the delivery trace (`pushgate trace`, the `push-status` command) and the log
//! after real traffic through Prosody and ejabberd, both roles on one link: a
//! wake-up through the fake FCM and one that FCM refuses (`UNREGISTERED`), a UnifiedPush
//! message delivered at once, one dropped (`TTL: 0`), two kept under one `Topic` (the second
//! replaces the first) and flushed on presence, a revoked endpoint, and one oversized stanza.
//! Then the scrape: `promtool check metrics` is clean, every metric docs/metrics.md lists is
//! there, and the counts are what the test did. `pushgate trace` shows each hop of the wake-ups
//! and of the UnifiedPush deliveries; `push-status` shows the caller its own and another user
//! nothing; the trace ids join the events to log lines, and no info line names a JID.
//!
//! Skipped with a printed reason when a server is not installed, unless
//! `PUSHGATE_INTEROP=required` (which also requires `promtool`).

#![allow(clippy::unwrap_used)]

mod e2e;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::http::{post_push, post_push_with, request};
use e2e::{COMPONENT, DOMAIN, Pushgate, PushgateOptions, ServerKind, XmppServer};
use pushgate_testkit::c2s_client::C2sClient;
use pushgate_testkit::c2s_client::stanza::{self, Element, iq_result_to, stanza_type};
use pushgate_testkit::conversations::{
    directed_presence, iq_error_to, read_up_push, read_up_registered, up_hash, up_register,
};
use pushgate_testkit::fake_fcm::{Answer, FakeFcm, FcmErrorCode};

const ANDROID_ID: &str = "92afd7a91cdba9a0";
const ACCOUNT_UUID: &str = "5d3b0b3e-6c61-4a2f-9f3e-2f6f6d1d9a10";
const RESOURCE: &str = "Conversations.metrics";
const STEP: Duration = Duration::from_secs(15);
/// Where ad-hoc commands are sent: the component.
const COMMANDS_TO: &str = COMPONENT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_traffic_through_prosody() {
    metrics_after_traffic(ServerKind::Prosody, "metrics_after_traffic_through_prosody").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_traffic_through_ejabberd() {
    metrics_after_traffic(
        ServerKind::Ejabberd,
        "metrics_after_traffic_through_ejabberd",
    )
    .await;
}

async fn metrics_after_traffic(kind: ServerKind, test: &str) {
    let Some(server) = XmppServer::start(kind, test, &["alice", "bob"]).await else {
        return;
    };
    let fcm = FakeFcm::start().await.unwrap();
    let service_account = fcm.write_service_account().unwrap();
    let mut options = PushgateOptions::new(server.component_port());
    options.fcm = Some((fcm.api_url(), service_account.path().to_owned()));
    options.metrics = true;
    let pushgate = Pushgate::start(options).await;

    // XEP-0357: Conversations registers and enables, goes away; a message wakes it.
    let alice = server.login("alice", "phone").await;
    let registration = e2e::register_and_enable(&alice, "fcm-token-1", ANDROID_ID).await;
    alice.close().await.unwrap();
    let bob = server.login("bob", "desktop").await;
    let to_alice = || stanza::chat_message(&format!("alice@{DOMAIN}"), "are you there?");
    bob.send(to_alice()).await.unwrap();
    let woke = e2e::wait_until(STEP, || fcm.accepted_count() >= 1).await;
    assert!(woke.is_some(), "no wake-up\n{}", pushgate.log());
    // One FCM failure: the token is gone.
    fcm.set_default_answer(Answer::error(FcmErrorCode::Unregistered));
    let sends = fcm.send_requests();
    bob.send(to_alice()).await.unwrap();
    let refused = e2e::wait_until(STEP, || fcm.send_requests() > sends).await;
    assert!(refused.is_some(), "FCM not asked again\n{}", pushgate.log());

    // UnifiedPush: a registration and a message delivered at once.
    let mut alice = come_online(&server).await;
    let application = up_hash(ACCOUNT_UUID, "org.joinmastodon.android");
    let instance = up_hash(ACCOUNT_UUID, "token-1");
    let answer = alice
        .iq(up_register(COMPONENT, &application, &instance))
        .await
        .unwrap();
    let endpoint = read_up_registered(&answer, COMPONENT).unwrap().endpoint;
    let (status, _) = tokio::join!(
        async { post_push(&endpoint, b"at once", 60).await.status },
        answer_next_push(&mut alice, iq_result_to)
    );
    assert_eq!(status, 201);
    // Away: `TTL: 0` is dropped; a newer message with the same topic replaces the kept one.
    alice.close().await.unwrap();
    assert_eq!(post_push(&endpoint, b"now or never", 0).await.status, 201);
    let topic = [("TTL", "3600"), ("Topic", "timeline")];
    for body in [&b"stale"[..], b"fresh"] {
        assert_eq!(post_push_with(&endpoint, body, &topic).await.status, 201);
    }
    // Back: the one kept message is flushed on presence.
    let mut alice = come_online(&server).await;
    answer_next_push(&mut alice, iq_result_to).await;
    // The client no longer knows the instance: revoked, 404, and 404 from then on.
    let (status, _) = tokio::join!(
        async { post_push(&endpoint, b"revoking", 60).await.status },
        answer_next_push(&mut alice, |request| {
            iq_error_to(request, "cancel", "item-not-found")
        })
    );
    assert_eq!(status, 404);
    assert_eq!(post_push(&endpoint, b"after", 60).await.status, 404);
    // One stanza over a limit, from a plain user.
    let mut payload = Element::builder("foo", "urn:x").build();
    stanza::set_attr(&mut payload, "a", &"v".repeat(9000));
    let answer = bob.iq(stanza::iq("get", COMPONENT, payload)).await.unwrap();
    assert_eq!(stanza_type(&answer), "error");

    let address = pushgate.metrics_address().unwrap();
    let scrape = || async {
        let response = request(address, "GET", "/metrics", &[], b"", STEP)
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        Samples::parse(&response.text())
    };
    // The flush deletes after the answer: wait for the last counts to land.
    let mut samples = scrape().await;
    for _ in 0..50 {
        if samples.get("pushgate_up_deliveries_total", &[("outcome", "revoked")]) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        samples = scrape().await;
    }

    promtool_check(&samples.text);
    for name in documented_metrics() {
        assert!(
            samples.has(&name),
            "{name} is in docs/metrics.md but not served:\n{}",
            samples.text
        );
    }
    let accepted = fcm.accepted_count() as f64;
    let unregistered = fcm.send_requests() as f64 - accepted;
    let expect = |name: &str, labels: &[(&str, &str)], value: f64| {
        assert_eq!(
            samples.get(name, labels),
            value,
            "{name}{labels:?}\n{}",
            samples.text
        );
    };
    expect("pushgate_component_connected", &[("jid", COMPONENT)], 1.0);
    expect(
        "pushgate_xmpp_commands_total",
        &[("command", "register-push-fcm"), ("outcome", "completed")],
        1.0,
    );
    expect(
        "pushgate_xmpp_publishes_total",
        &[("outcome", "woken")],
        accepted,
    );
    expect(
        "pushgate_xmpp_publishes_total",
        &[("outcome", "token_dead")],
        unregistered,
    );
    assert!(unregistered >= 1.0);
    expect(
        "pushgate_upstream_requests_total",
        &[("service", "fcm"), ("outcome", "success")],
        accepted,
    );
    expect(
        "pushgate_upstream_requests_total",
        &[("service", "fcm"), ("outcome", "dead_token")],
        unregistered,
    );
    expect(
        "pushgate_upstream_request_duration_seconds_count",
        &[("service", "fcm")],
        accepted + unregistered,
    );
    expect(
        "pushgate_upstream_token_refreshes_total",
        &[("service", "fcm"), ("outcome", "ok")],
        fcm.token_requests() as f64,
    );
    expect(
        "pushgate_up_registrations_total",
        &[("outcome", "registered")],
        1.0,
    );
    for (code, count) in [("201", 4.0), ("404", 2.0)] {
        expect(
            "pushgate_http_push_requests_total",
            &[("code", code)],
            count,
        );
    }
    expect(
        "pushgate_http_push_request_duration_seconds_count",
        &[],
        6.0,
    );
    expect("pushgate_http_push_body_size_bytes_count", &[], 6.0);
    for (outcome, count) in [
        ("delivered", 2.0),
        ("stored", 2.0),
        ("dropped_ttl0", 1.0),
        ("replaced_topic", 1.0),
        ("revoked", 1.0),
    ] {
        expect(
            "pushgate_up_deliveries_total",
            &[("outcome", outcome)],
            count,
        );
    }
    expect("pushgate_up_stored_to_delivered_seconds_count", &[], 1.0);
    for (answer, count) in [("delivered", 2.0), ("revoked", 1.0), ("not_delivered", 3.0)] {
        expect("pushgate_up_push_iqs_total", &[("answer", answer)], count);
    }
    expect("pushgate_up_push_round_trip_seconds_count", &[], 6.0);
    expect(
        "pushgate_xmpp_stanzas_refused_total",
        &[("reason", "attribute_too_long")],
        1.0,
    );
    assert!(samples.get("process_resident_memory_bytes", &[]) > 1e6);

    // The operator's view: `pushgate trace` over the metrics listener.
    let wake = trace_json(&pushgate, &["--node", &registration.node]);
    let hops = |events: &[serde_json::Value]| -> Vec<(String, String)> {
        events
            .iter()
            .map(|event| {
                (
                    event["hop"].as_str().unwrap().to_owned(),
                    event["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let wake_hops = hops(&wake);
    for expected in [
        ("upstream_answered", "ok"),
        ("upstream_answered", "dead_token"),
    ] {
        assert!(
            wake_hops.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not in {wake_hops:?}"
        );
    }
    let account = format!("alice@{DOMAIN}");
    let up = trace_json(&pushgate, &["--jid", &account]);
    assert_eq!(
        hops(&up),
        [
            ("client_answered", "ok"),
            ("client_answered", "not_delivered"),
            ("dropped", "ok"),
            ("client_answered", "not_delivered"),
            ("stored", "ok"),
            ("client_answered", "not_delivered"),
            ("stored", "ok"),
            ("flushed_on_presence", "ok"),
            ("client_answered", "revoked"),
            ("revoked", "revoked"),
        ]
        .map(|(hop, outcome)| (hop.to_owned(), outcome.to_owned()))
    );
    assert_eq!(trace_json(&pushgate, &["--endpoint", &endpoint]), up);
    let table = pushgate_command(&pushgate, &["trace", "--jid", &account]);
    assert!(table.contains("flushed_on_presence"), "{table}");
    // Every event's trace id is on the log lines of its delivery.
    let log = pushgate.log();
    for event in wake.iter().chain(&up) {
        let id = event["trace_id"].as_str().unwrap();
        assert!(
            log.contains(&format!("trace={id}")),
            "trace id {id} not in the log"
        );
    }
    assert!(
        pushgate.info_lines_naming(DOMAIN).is_empty(),
        "{:?}",
        pushgate.info_lines_naming(DOMAIN)
    );

    // The user's view: `push-status` answers alice with her own deliveries, bob with none.
    let rows = push_status_rows(&alice).await;
    assert_eq!(rows.len(), up.len(), "{rows:?}");
    assert!(
        rows.iter().any(|row| row == "flushed_on_presence"),
        "{rows:?}"
    );
    assert!(push_status_rows(&bob).await.is_empty());
    // No label holds a user's JID, a node, a token or an endpoint.
    for secret in [
        "alice",
        "bob@",
        registration.node.as_str(),
        "fcm-token-1",
        "v2.local.",
    ] {
        assert!(
            !samples.text.contains(secret),
            "{secret} in /metrics:\n{}",
            samples.text
        );
    }
}

/// deploy/grafana-dashboard.json parses, and every metric its queries name is documented (a
/// histogram through its `_bucket`, `_sum` or `_count` series).
#[test]
fn the_dashboard_names_only_documented_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queries = Vec::new();
    let panels = dashboard["panels"].as_array().unwrap();
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(queries.len() > 20, "{queries:?}");
    let documented = documented_metrics();
    let mut named = 0;
    for query in &queries {
        let words = query.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        for word in words.filter(|w| w.starts_with("pushgate_") || w.starts_with("process_")) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .filter(|base| documented.iter().any(|name| name == base))
                .unwrap_or(word);
            assert!(
                documented.iter().any(|name| name == base),
                "{word} in {query:?} is not in docs/metrics.md"
            );
            named += 1;
        }
    }
    assert!(
        named >= queries.len(),
        "{named} names in {} queries",
        queries.len()
    );
}

/// `pushgate trace ARGS --json` against the running pushgate: its events.
fn trace_json(pushgate: &Pushgate, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["trace"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = pushgate_command(pushgate, &all);
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    answer["events"].as_array().unwrap().clone()
}

/// Runs the pushgate binary with `args` on the running one's settings; its stdout (exit 0).
fn pushgate_command(pushgate: &Pushgate, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .arg("--config")
        .arg(pushgate.config_path())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "pushgate {args:?}: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Executes `push-status` as `client`; the `step` column of the answer's rows.
async fn push_status_rows(client: &C2sClient) -> Vec<String> {
    const COMMANDS: &str = "http://jabber.org/protocol/commands";
    const DATA: &str = "jabber:x:data";
    let mut command = Element::builder("command", COMMANDS).build();
    stanza::set_attr(&mut command, "node", "push-status");
    stanza::set_attr(&mut command, "action", "execute");
    let answer = client
        .iq(stanza::iq("set", COMMANDS_TO, command))
        .await
        .unwrap();
    assert_eq!(stanza_type(&answer), "result", "{}", String::from(&answer));
    let form = answer
        .get_child("command", COMMANDS)
        .and_then(|command| command.get_child("x", DATA))
        .unwrap_or_else(|| panic!("no form: {}", String::from(&answer)));
    assert_eq!(form.attr("type"), Some("result"));
    assert!(form.get_child("reported", DATA).is_some());
    form.children()
        .filter(|child| child.is("item", DATA))
        .map(|item| {
            item.children()
                .find(|field| field.attr("var") == Some("step"))
                .and_then(|field| field.get_child("value", DATA))
                .map(Element::text)
                .unwrap_or_default()
        })
        .collect()
}

/// Logs in with the fixed resource and says hello as Conversations does on bind.
async fn come_online(server: &XmppServer) -> C2sClient {
    let client = server.login("alice", RESOURCE).await;
    client.send_presence().await.unwrap();
    client.send(directed_presence(COMPONENT)).await.unwrap();
    client
}

/// Waits for the next `<push/>` and answers it with `answer`.
async fn answer_next_push(client: &mut C2sClient, answer: fn(&Element) -> Element) {
    let stanza = client
        .recv_where(|stanza| read_up_push(stanza).is_some())
        .await
        .unwrap_or_else(|error| panic!("no push arrived: {error}"));
    client.send(answer(&stanza)).await.unwrap();
}

/// Every metric name in the tables of docs/metrics.md (a first column in backticks).
fn documented_metrics() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md");
    let text = std::fs::read_to_string(path).unwrap();
    let names: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.starts_with("pushgate_") || name.starts_with("process_"))
        .map(str::to_owned)
        .collect();
    assert!(names.len() > 30, "docs/metrics.md lists {names:?}");
    names
}

/// `promtool check metrics` on the scrape: clean, or the test fails. Without promtool the
/// check is skipped with a notice, unless the interop servers are required.
fn promtool_check(text: &str) {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            assert!(
                std::env::var("PUSHGATE_INTEROP").as_deref() != Ok("required"),
                "promtool is required (scripts/install-test-deps.sh installs it): {error}"
            );
            pushgate_testkit::interop::notice(&format!("promtool not run: {error}"));
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{text}"
    );
}

/// One sample: its labels and its value.
type Sample = (BTreeMap<String, String>, f64);

/// A scrape, parsed into samples by name and labels.
struct Samples {
    text: String,
    values: BTreeMap<String, Vec<Sample>>,
}

impl Samples {
    fn parse(text: &str) -> Self {
        let mut values: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(key, value)| (key.to_owned(), value.trim_matches('"').to_owned()))
                .collect();
            values
                .entry(name.to_owned())
                .or_default()
                .push((labels, value.parse().unwrap_or(f64::NAN)));
        }
        Self {
            text: text.to_owned(),
            values,
        }
    }

    /// Whether `name` (or, for a histogram, `name_bucket`) has a sample.
    fn has(&self, name: &str) -> bool {
        self.values.contains_key(name) || self.values.contains_key(&format!("{name}_bucket"))
    }

    /// The sum of `name`'s samples whose labels include `labels` (0 when there are none).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.values
            .get(name)
            .into_iter()
            .flatten()
            .filter(|(have, _)| {
                labels
                    .iter()
                    .all(|(key, value)| have.get(*key).map(String::as_str) == Some(*value))
            })
            .map(|(_, value)| value)
            .sum()
    }
}
