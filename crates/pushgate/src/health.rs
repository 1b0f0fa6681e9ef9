//! `GET /health`: 200 when every component link is up (or on standby, held by another
//! instance) and the database answers, else 503; the body names each link's state either way.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pushgate_core::Store;
use serde::Serialize;

/// What `/health` needs to know about one component link.
pub trait LinkHealth: Send + Sync + 'static {
    /// The component JID (a domain: no user data).
    fn jid(&self) -> String;
    /// `up`, `standby`, `connecting` or `down`; `up` and `standby` are healthy (a standby
    /// instance serves HTTP and takes the link over when its holder goes).
    fn state_name(&self) -> &'static str;
    /// `single` (one instance at a time holds the link) or `shared` (each holds its own).
    fn mode(&self) -> &'static str;
}

/// The links and the database `/health` reports on.
#[derive(Clone)]
pub struct HealthSources {
    /// This process's instance id (the first part of its IQ ids), to tell instances apart.
    pub instance: String,
    /// Every configured link, in settings order.
    pub links: Vec<Arc<dyn LinkHealth>>,
    /// The store, pinged on every request.
    pub store: Arc<dyn Store>,
    /// How long the database may take to answer the ping.
    pub ping_timeout: Duration,
}

/// The `/health` route.
pub fn health_routes(sources: HealthSources) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state(sources)
}

/// The body of a `/health` answer.
#[derive(Debug, Serialize)]
struct HealthReport {
    status: &'static str,
    instance: String,
    links: Vec<LinkReport>,
    database: &'static str,
}

#[derive(Debug, Serialize)]
struct LinkReport {
    jid: String,
    state: &'static str,
    mode: &'static str,
}

async fn health(State(sources): State<HealthSources>) -> Response {
    let links: Vec<LinkReport> = sources
        .links
        .iter()
        .map(|link| LinkReport {
            jid: link.jid(),
            state: link.state_name(),
            mode: link.mode(),
        })
        .collect();
    let database = match tokio::time::timeout(sources.ping_timeout, sources.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(error)) => {
            tracing::warn!(%error, "health check: the database does not answer");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!("health check: the database ping timed out");
            "unavailable"
        }
    };
    let healthy = database == "ok"
        && links
            .iter()
            .all(|link| matches!(link.state, "up" | "standby"));
    let (status, word) = if healthy {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let mut response = (
        status,
        Json(HealthReport {
            status: word,
            instance: sources.instance.clone(),
            links,
            database,
        }),
    )
        .into_response();
    // A probe must see the state now, never a cached answer.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
