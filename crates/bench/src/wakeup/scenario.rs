//! The ways `wakeup` runs: which push service (a fake FCM or a fake APNs), how it answers and
//! what pushgate's `[fcm]` or `[apns]` says, and the load levels measured that way.

use std::time::Duration;

/// One load level: publishes in flight, a warm-up, then a measured window of at least
/// `duration` and `min_answers` answers, but no longer than `max_duration`.
pub(super) struct Level {
    pub in_flight: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub min_answers: u64,
    pub max_duration: Duration,
}

/// The push service a scenario wakes devices through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Service {
    /// `register-push-fcm`, the fake FCM, `[fcm]`.
    Fcm,
    /// `register-push-apns`, the fake APNs, `[apns]`.
    Apns,
}

/// A fake push service, pushgate's settings for it and the levels run against them, each
/// scenario with a pushgate process of its own.
pub(super) struct Scenario {
    /// What is measured, printed before the results.
    pub title: &'static str,
    /// FCM or APNs.
    pub service: Service,
    /// How long the fake takes to answer each send.
    pub fcm_delay: Duration,
    /// The `SETTINGS_MAX_CONCURRENT_STREAMS` the fake FCM advertises; `None` keeps the fake's
    /// own (4096, so one connection carries everything).
    pub fcm_streams_per_connection: Option<u32>,
    /// Lines added to pushgate's `[fcm]` (or `[apns]`) section; empty leaves its defaults.
    pub fcm_settings: &'static str,
    /// Lines added to pushgate's `[component]` section; empty leaves its defaults.
    pub component_settings: &'static str,
    pub levels: &'static [Level],
}

/// The issue "XEP-0357 app server" item 6: the pipeline's own cost, with FCM concurrency out
/// of the way.
const PIPELINE: Scenario = Scenario {
    title: "XEP-0357 publish -> FCM wake-up (fake FCM answers after 50 ms on one connection; [fcm] max_concurrent = 4096, [component] max_concurrent_iqs = 4096)",
    service: Service::Fcm,
    fcm_delay: Duration::from_millis(50),
    fcm_streams_per_connection: None,
    fcm_settings: "max_concurrent = 4096\n",
    component_settings: "max_concurrent_iqs = 4096\n",
    levels: &[
        Level {
            in_flight: 1,
            warmup: Duration::from_millis(500),
            duration: Duration::from_secs(3),
            min_answers: 0,
            max_duration: Duration::from_secs(3),
        },
        Level {
            in_flight: 100,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            min_answers: 0,
            max_duration: Duration::from_secs(5),
        },
        Level {
            in_flight: 1000,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            min_answers: 20_000,
            max_duration: Duration::from_secs(30),
        },
    ],
};

/// The issue "Load and abuse": `[fcm]` at its defaults against an FCM that, like Google's,
/// allows 100 streams per connection and here answers after 100 ms, so 10,000 wake-ups/s
/// need 1,000 in flight over ten connections. The warm-up lets the connections open.
const FCM_DEFAULTS: Scenario = Scenario {
    title: "XEP-0357 publish -> FCM wake-up (fake FCM answers after 100 ms, 100 streams per connection; [component] and [fcm] at their defaults: a burst past max_concurrent_iqs waits in the queue)",
    service: Service::Fcm,
    fcm_delay: Duration::from_millis(100),
    fcm_streams_per_connection: Some(100),
    fcm_settings: "",
    component_settings: "",
    levels: &[
        Level {
            in_flight: 1000,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(5),
            min_answers: 20_000,
            max_duration: Duration::from_secs(30),
        },
        Level {
            in_flight: 2000,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(5),
            min_answers: 20_000,
            max_duration: Duration::from_secs(30),
        },
    ],
};

/// The issue "iOS too": [`PIPELINE`] with APNs in place of FCM (an ES256 provider token per
/// request, a path per device), so the two compare level by level.
pub(super) const APNS_PIPELINE: Scenario = Scenario {
    title: "XEP-0357 publish -> APNs wake-up (fake APNs answers after 50 ms on one connection; [apns] max_concurrent = 4096, [component] max_concurrent_iqs = 4096)",
    service: Service::Apns,
    fcm_delay: Duration::from_millis(50),
    fcm_streams_per_connection: None,
    fcm_settings: "max_concurrent = 4096\n",
    component_settings: "max_concurrent_iqs = 4096\n",
    levels: PIPELINE.levels,
};

/// The scenario APNs is compared with.
pub(super) const FCM_PIPELINE_TITLE: &str = PIPELINE.title;

/// Every scenario, in the order they run.
pub(super) const SCENARIOS: [&Scenario; 3] = [&PIPELINE, &APNS_PIPELINE, &FCM_DEFAULTS];

impl Scenario {
    /// The levels to run: all, or with `only`, the one with that many in flight.
    pub fn levels(&self, only: Option<usize>) -> Vec<&Level> {
        self.levels
            .iter()
            .filter(|level| only.is_none_or(|only| only == level.in_flight))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fcm_defaults_scenario_keeps_a_thousand_and_two_thousand_in_flight_at_100_ms() {
        assert_eq!(FCM_DEFAULTS.fcm_delay, Duration::from_millis(100));
        assert_eq!(FCM_DEFAULTS.fcm_streams_per_connection, Some(100));
        assert!(
            FCM_DEFAULTS.fcm_settings.is_empty() && FCM_DEFAULTS.component_settings.is_empty(),
            "pushgate's own defaults"
        );
        let in_flight: Vec<usize> = FCM_DEFAULTS
            .levels
            .iter()
            .map(|level| level.in_flight)
            .collect();
        assert_eq!(in_flight, [1000, 2000]);
        assert_eq!(FCM_DEFAULTS.levels(Some(2000)).len(), 1);
        assert!(PIPELINE.levels(Some(2000)).is_empty());
        assert_eq!(PIPELINE.levels(None).len(), 3);
    }
}
