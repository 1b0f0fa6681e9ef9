//! `wakeup`: XEP-0357 publishes in, FCM (or APNs) wake-ups out, IQ results back.
//!
//! The release pushgate links as a component to the testkit's fake XMPP server, run here.
//! Devices register with `register-push-fcm` as Conversations does (docs/protocol.md B.3.1, from
//! the user's full JID as the server routes it); then Prosody-shaped publishes (`from` = the
//! bare server domain, docs/protocol.md B.4.1) are kept in flight at each level of each scenario
//! ([`scenario`]): first 1, 100 and 1000 while the fake FCM answers every send after 50 ms on
//! one connection (issue "XEP-0357 app server" item 6); then 1000 and 2000 with `[fcm]` at its
//! defaults while the fake FCM answers after 100 ms and allows 100 streams per connection, as
//! Google's does (issue "Load and abuse"), with `[component]` at its defaults too, so a burst
//! past `max_concurrent_iqs` waits in the link's queue (any refusal shows in the errors column).
//! In the first, the link's `max_concurrent_iqs` is 4096, so the link never holds publishes back.
//! The APNs scenario is the first with `register-push-apns` and a fake APNs (issue "iOS too"):
//! its CPU per wake-up is compared with the FCM one's at each level.

mod publisher;
mod scenario;
mod stanzas;

use std::path::Path;
use std::time::{Duration, Instant};

use pushgate_testkit::fake_apns::{FAKE_KEY_ID, FAKE_TEAM_ID, FAKE_TOPIC, FakeApns};
use pushgate_testkit::fake_fcm::{Answer, FakeFcm};
use pushgate_testkit::fake_xmpp_server::FakeXmppServer;
use pushgate_testkit::free_port::free_loopback_port;

use crate::error::BenchError;
use crate::proc_stats::{self, ClockTick, megabytes};
use crate::pushgate_process::PushgateProcess;
use crate::report::{Verdict, print_targets};
use crate::sampler::{Sampler, Usage};
use publisher::{HEADER, LevelResult, Publisher};
use scenario::{APNS_PIPELINE, FCM_PIPELINE_TITLE, Level, SCENARIOS, Scenario, Service};

const DOMAIN: &str = "example.test";
const COMPONENT: &str = "push.example.test";
const COMPONENT_SECRET: &str = "bench-component-secret";
/// Registered devices; publishes go to them in turn.
const DEVICES: u64 = 1000;
/// Registrations in flight at once.
const REGISTRATIONS_IN_FLIGHT: usize = 100;
/// How long pushgate's idle CPU time is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// After the last publish of a level, how long its answers may still take.
const DRAIN_LIMIT: Duration = Duration::from_secs(15);

/// Targets of the issue.
const CPU_TARGET_US: f64 = 30.0;
const RATE_TARGET: f64 = 10_000.0;
const RSS_TARGET_MB: f64 = 30.0;
/// The issue "iOS too": APNs' CPU per wake-up at most this much over FCM's.
const APNS_OVER_FCM_TARGET: f64 = 1.2;
const IDLE_RSS_TARGET_MB: f64 = 15.0;

/// Runs the benchmark against the binary at `pushgate` and prints the results; with `only`,
/// just the levels with that many publishes in flight.
pub async fn run(pushgate: &Path, only: Option<usize>) -> Result<(), BenchError> {
    let mut fcm = Vec::new();
    let mut apns = Vec::new();
    for scenario in SCENARIOS {
        let levels = scenario.levels(only);
        if !levels.is_empty() {
            let results = run_scenario(pushgate, scenario, &levels).await?;
            if scenario.title == FCM_PIPELINE_TITLE {
                fcm = results;
            } else if scenario.title == APNS_PIPELINE.title {
                apns = results;
            }
        }
    }
    let verdicts = apns_against_fcm(&fcm, &apns);
    if !verdicts.is_empty() {
        println!("APNs against FCM, the same pipeline:");
        print_targets(&verdicts);
    }
    Ok(())
}

/// APNs' CPU per wake-up against FCM's at each level both ran.
fn apns_against_fcm(fcm: &[LevelResult], apns: &[LevelResult]) -> Vec<Verdict> {
    apns.iter()
        .filter_map(|apns| {
            let fcm = fcm.iter().find(|fcm| fcm.in_flight == apns.in_flight)?;
            let ratio = apns.pushgate.cpu_us_per(apns.ok) / fcm.pushgate.cpu_us_per(fcm.ok);
            Some(Verdict::at_most(
                format!(
                    "APNs CPU per wake-up over FCM's at {} in flight ({:.1} / {:.1} µs)",
                    apns.in_flight,
                    apns.pushgate.cpu_us_per(apns.ok),
                    fcm.pushgate.cpu_us_per(fcm.ok)
                ),
                ratio,
                APNS_OVER_FCM_TARGET,
                "×",
            ))
        })
        .collect()
}

/// The fake push service of a scenario.
enum FakeUpstream {
    Fcm(FakeFcm),
    Apns(FakeApns),
}

impl FakeUpstream {
    async fn start(scenario: &Scenario) -> Result<Self, BenchError> {
        Ok(match scenario.service {
            Service::Fcm => {
                let fcm = FakeFcm::start()
                    .await
                    .map_err(BenchError::io("start the fake FCM"))?;
                fcm.set_default_answer(Answer::success().after(scenario.fcm_delay));
                if let Some(streams) = scenario.fcm_streams_per_connection {
                    fcm.set_max_concurrent_streams(streams);
                }
                Self::Fcm(fcm)
            }
            Service::Apns => {
                let apns = FakeApns::start()
                    .await
                    .map_err(BenchError::io("start the fake APNs"))?;
                apns.set_delay(scenario.fcm_delay);
                Self::Apns(apns)
            }
        })
    }

    /// pushgate's section for it, its key written into `dir`.
    fn section(&self, dir: &Path, extra: &str) -> Result<String, BenchError> {
        match self {
            Self::Fcm(fcm) => {
                let key_file = dir.join("service-account.json");
                std::fs::write(&key_file, fcm.service_account_json())
                    .map_err(BenchError::io("write the service-account key"))?;
                Ok(format!(
                    "[fcm]\nservice_account_file = \"{}\"\napi_url = \"{}\"\nrequest_deadline = \"10s\"\n{extra}",
                    key_file.display(),
                    fcm.api_url()
                ))
            }
            Self::Apns(apns) => {
                let key_file =
                    FakeApns::write_key_file(dir).map_err(BenchError::io("write the APNs key"))?;
                Ok(format!(
                    "[apns]\nkey_file = \"{}\"\nkey_id = \"{FAKE_KEY_ID}\"\nteam_id = \"{FAKE_TEAM_ID}\"\n\
                     topic = \"{FAKE_TOPIC}\"\napi_url = \"{}\"\nrequest_deadline = \"10s\"\n{extra}",
                    key_file.display(),
                    apns.base_url()
                ))
            }
        }
    }

    fn print_stats(&self) {
        match self {
            Self::Fcm(fcm) => println!(
                "fake FCM: {} sends, at most {} in flight at once; {} connections carried sends, at most {} open at once and {} sends at once on one",
                fcm.send_requests(),
                fcm.max_in_flight(),
                fcm.send_connections(),
                fcm.max_open_send_connections(),
                fcm.max_sends_per_connection()
            ),
            Self::Apns(apns) => println!(
                "fake APNs: {} requests ({} accepted), at most {} in flight at once, over {} connections; {} provider token(s)",
                apns.requests().len(),
                apns.accepted().len(),
                apns.max_in_flight(),
                apns.connections(),
                apns.distinct_jwts()
            ),
        }
    }
}

/// One scenario: a fake push service and a pushgate process of its own, registrations, then
/// `levels`; returns their results.
async fn run_scenario(
    pushgate: &Path,
    scenario: &Scenario,
    levels: &[&Level],
) -> Result<Vec<LevelResult>, BenchError> {
    let tick = ClockTick::of_this_system();
    let machine_cores = std::thread::available_parallelism().map_or(1, usize::from);
    let server = FakeXmppServer::start(COMPONENT, COMPONENT_SECRET)
        .await
        .map_err(BenchError::io("start the fake XMPP server"))?;
    server.answer_pings(true);
    let upstream = FakeUpstream::start(scenario).await?;

    let dir = PushgateProcess::workdir()?;
    let section = upstream.section(dir.path(), scenario.fcm_settings)?;
    let settings = settings(
        dir.path(),
        server.port(),
        &section,
        scenario.component_settings,
    )?;
    let mut process = PushgateProcess::start(pushgate, dir, &settings)?;
    let pid = process.pid();

    let Some(session) = server.next_session(Duration::from_secs(20)).await else {
        process.ensure_running()?;
        return Err(BenchError::Pushgate(format!(
            "did not link up within 20 s\n{}",
            process.log_tail(30)
        )));
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = proc_stats::memory(pid).map_err(BenchError::io("read pushgate's memory"))?;
    let idle_cpu = idle_cpu(pid, tick).await;

    let mut publisher = Publisher::new(session);
    let registered = Instant::now();
    publisher.register_devices(scenario.service).await?;
    let registration_time = registered.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_registration =
        proc_stats::memory(pid).map_err(BenchError::io("read pushgate's memory"))?;

    println!("wakeup: {}, {DEVICES} devices on SQLite", scenario.title);
    println!(
        "idle RSS after link-up: {:.1} MB; after {DEVICES} registrations ({:.1} s): {:.1} MB",
        megabytes(idle.rss_kib),
        registration_time.as_secs_f64(),
        megabytes(after_registration.rss_kib)
    );
    println!(
        "idle CPU (linked up, nothing to do): {:.2} ms per second",
        idle_cpu.cpu_share() * 1000.0
    );
    println!("{HEADER}");
    let mut results = Vec::new();
    for level in levels {
        process.ensure_running()?;
        let mut result = publisher
            .run_level(level, &[pid, std::process::id()], tick)
            .await?;
        result.print();
        results.push(result);
    }
    upstream.print_stats();

    let mut verdicts = targets(&results, machine_cores);
    verdicts.push(Verdict::at_most(
        "idle RSS (linked up, before registrations)".to_owned(),
        megabytes(idle.rss_kib),
        IDLE_RSS_TARGET_MB,
        "MB",
    ));
    print_targets(&verdicts);

    if let Ok(memory) = proc_stats::memory(pid) {
        println!(
            "pushgate peak RSS over the run (VmHWM): {:.1} MB",
            megabytes(memory.peak_kib)
        );
    }
    process.ensure_running()?;
    let clean = process.stop().await;
    println!(
        "pushgate stopped {}",
        if clean { "cleanly" } else { "by SIGKILL" }
    );
    Ok(results)
}

/// The issue's targets for the levels run: CPU per wake-up at each, the rate and RSS at 1000
/// in flight.
fn targets(results: &[LevelResult], machine_cores: usize) -> Vec<Verdict> {
    let mut verdicts: Vec<Verdict> = results
        .iter()
        .map(|result| {
            Verdict::at_most(
                format!("pushgate CPU per wake-up at {} in flight", result.in_flight),
                result.pushgate.cpu_us_per(result.ok),
                CPU_TARGET_US,
                "µs",
            )
        })
        .collect();
    if let Some(top) = results.iter().find(|result| result.in_flight == 1000) {
        verdicts.push(Verdict::at_least(
            format!(
                "wake-ups/s at {} in flight ({:.2} of {} cores busy, driver included)",
                top.in_flight, top.busy_cores, machine_cores
            ),
            top.rate(),
            RATE_TARGET,
            "/s",
        ));
        verdicts.push(Verdict::at_most(
            format!("RSS at {} in flight", top.in_flight),
            megabytes(top.pushgate.max_rss_kib),
            RSS_TARGET_MB,
            "MB",
        ));
    }
    verdicts
}

/// pushgate's CPU time while linked up with nothing to do, over [`IDLE_WINDOW`]: the floor
/// under the per-wake-up numbers of the slow levels.
async fn idle_cpu(pid: u32, tick: ClockTick) -> Usage {
    let sampler = Sampler::start(&[pid], tick);
    tokio::time::sleep(IDLE_WINDOW).await;
    sampler.finish().process(0)
}

/// pushgate's settings file: `upstream_section` (`[fcm]` or `[apns]`, whole) and
/// `component_settings` added to `[component]`.
fn settings(
    dir: &Path,
    port: u16,
    upstream_section: &str,
    component_settings: &str,
) -> Result<String, BenchError> {
    let http_port = free_loopback_port().map_err(BenchError::io("find a free port"))?;
    Ok(format!(
        r#"[component]
jid = "{COMPONENT}"
host = "127.0.0.1"
port = {port}
secret = "{COMPONENT_SECRET}"
{component_settings}roles = ["app_server"]

[database]
url = "sqlite://{db}?mode=rwc"

[http]
listen = "127.0.0.1:{http_port}"

{upstream_section}
[log]
level = "warn"
"#,
        db = dir.join("pushgate.db").display(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_section_and_component_settings_go_where_they_belong() {
        let dir = Path::new("/tmp/bench");
        let with = settings(
            dir,
            5347,
            "[fcm]\nmax_concurrent = 4096\n",
            "max_concurrent_iqs = 4096\n",
        )
        .expect("settings");
        let fcm = with.split("[fcm]").nth(1).expect("an [fcm] section");
        let fcm = fcm.split("\n[").next().unwrap_or_default();
        assert!(fcm.contains("\nmax_concurrent = 4096\n"), "{with}");
        let component = with.split("[database]").next().unwrap_or_default();
        assert!(
            component.contains("\nmax_concurrent_iqs = 4096\n"),
            "{with}"
        );
        let defaults = settings(dir, 5347, "[apns]\n", "").expect("settings");
        assert!(!defaults.contains("max_concurrent"), "{defaults}");
        assert!(defaults.contains("[apns]"), "{defaults}");
    }
}
