//! Gauges of what the store holds, read from it every minute by the maintenance loop, never
//! per scrape: a scrape must not cost the database a table scan.

use std::collections::BTreeMap;

use metrics::gauge;
use pushgate_store::{SqlStore, StoreStats};

/// Reads the store's counts and sets the state gauges; a failed read keeps the last values.
pub async fn refresh_state(store: &SqlStore) {
    match store.stats().await {
        Ok(stats) => record(&stats),
        Err(error) => tracing::warn!(%error, "reading the store's counts for metrics failed"),
    }
}

fn record(stats: &StoreStats) {
    // By service only: domains are not a closed set.
    let mut by_service: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for services in ["fcm", "apns"] {
        by_service.insert(services, (0, 0));
    }
    for count in &stats.registrations {
        let entry = by_service.entry(count.service.as_str()).or_default();
        entry.0 += count.live;
        entry.1 += count.dead;
    }
    for (service, (live, dead)) in by_service {
        // Only known services get a series; a stray value in the table makes none.
        let Some(service) = ["fcm", "apns"].into_iter().find(|known| *known == service) else {
            continue;
        };
        gauge!("pushgate_registrations", "service" => service, "state" => "live").set(live as f64);
        gauge!("pushgate_registrations", "service" => service, "state" => "dead").set(dead as f64);
    }
    gauge!("pushgate_up_stored_messages").set(stats.stored_messages as f64);
    gauge!("pushgate_up_owners_with_stored_messages").set(stats.owners_with_messages as f64);
    gauge!("pushgate_up_revoked_endpoints").set(stats.revocations as f64);
}
