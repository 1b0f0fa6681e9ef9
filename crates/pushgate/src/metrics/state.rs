//! Gauges of what the store holds, read from it every minute by the maintenance loop, never
//! per scrape: a scrape must not cost the database a table scan.

use std::collections::HashMap;

use metrics::gauge;
use pushgate_core::PushService;
use pushgate_store::{SqlStore, StoreStats};

/// Reads the store's counts and sets the state gauges; a failed read keeps the last values.
pub async fn refresh_state(store: &SqlStore) {
    match store.stats().await {
        Ok(stats) => record(&stats),
        Err(error) => tracing::warn!(%error, "reading the store's counts for metrics failed"),
    }
}

fn record(stats: &StoreStats) {
    // By service only: domains are not a closed set. Every known service gets its series, and
    // a stray value in the table makes none.
    let mut by_service: HashMap<PushService, (u64, u64)> = [PushService::Fcm, PushService::Apns]
        .into_iter()
        .map(|service| (service, (0, 0)))
        .collect();
    for count in &stats.registrations {
        if let Some(entry) =
            PushService::parse(&count.service).and_then(|service| by_service.get_mut(&service))
        {
            entry.0 += count.live;
            entry.1 += count.dead;
        }
    }
    for (service, (live, dead)) in by_service {
        let service = service.as_str();
        gauge!("pushgate_registrations", "service" => service, "state" => "live").set(live as f64);
        gauge!("pushgate_registrations", "service" => service, "state" => "dead").set(dead as f64);
    }
    gauge!("pushgate_up_stored_messages").set(stats.stored_messages as f64);
    gauge!("pushgate_up_owners_with_stored_messages").set(stats.owners_with_messages as f64);
    gauge!("pushgate_up_revoked_endpoints").set(stats.revocations as f64);
}
