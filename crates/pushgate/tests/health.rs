//! `/health` through the router: links and database in, status and JSON out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use pushgate::health::{HealthSources, LinkHealth, health_routes};
use pushgate_core::provider::{Provider, ProviderConfig};
use pushgate_core::test_support::MemoryStore;
use pushgate_core::{EndpointKey, EndpointKeys, MessageStoreLimits, SystemClock};
use pushgate_up_http::{App, PushEndpointConfig, ServerConfig, app, push_routes};
use pushgate_xmpp::XmppClientLink;
use serde_json::json;
use tower::ServiceExt;

/// A link whose state the test sets.
struct Link {
    jid: &'static str,
    state: Mutex<&'static str>,
}

impl Link {
    fn new(jid: &'static str, state: &'static str) -> Arc<Self> {
        Arc::new(Self {
            jid,
            state: Mutex::new(state),
        })
    }
}

impl LinkHealth for Link {
    fn jid(&self) -> String {
        self.jid.to_owned()
    }

    fn state_name(&self) -> &'static str {
        *self.state.lock().expect("lock")
    }

    fn mode(&self) -> &'static str {
        if self.jid.starts_with("shared") {
            "shared"
        } else {
            "single"
        }
    }
}

fn router(links: Vec<Arc<Link>>, store: Arc<MemoryStore>) -> App {
    let links = links
        .into_iter()
        .map(|link| link as Arc<dyn LinkHealth>)
        .collect();
    let provider = Provider::new(
        EndpointKeys::single(EndpointKey::generate()),
        store.clone(),
        Arc::new(XmppClientLink::default()),
        Arc::new(SystemClock),
        ProviderConfig {
            public_url: "https://up.example.test".to_owned(),
            registration_ttl_ms: 7 * 86_400_000,
            max_message_ttl_secs: 86_400,
            store_limits: MessageStoreLimits {
                max_per_owner: 10,
                max_total: 100,
            },
            allowed_domains: None,
        },
    );
    let push = push_routes(
        Arc::new(provider),
        PushEndpointConfig::new("https://up.example.test"),
    )
    .expect("push routes");
    let routes = push.merge(health_routes(HealthSources {
        instance: "a1b2c3d4".to_owned(),
        links,
        store,
        ping_timeout: Duration::from_secs(1),
    }));
    app(routes, &ServerConfig::default())
}

async fn get(router: App, path: &str) -> (StatusCode, serde_json::Value) {
    let request = Request::get(path).body(Body::empty()).expect("request");
    let response = router.oneshot(request).await.expect("response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&body).expect("JSON"))
}

#[tokio::test]
async fn all_links_up_and_the_database_answering_is_200() {
    let links = vec![
        Link::new("p2.example.test", "up"),
        Link::new("up.example.test", "up"),
    ];
    let (status, body) = get(router(links, Arc::new(MemoryStore::new())), "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "status": "ok",
            "instance": "a1b2c3d4",
            "links": [
                {"jid": "p2.example.test", "state": "up", "mode": "single"},
                {"jid": "up.example.test", "state": "up", "mode": "single"},
            ],
            "database": "ok",
        })
    );
}

#[tokio::test]
async fn a_link_that_is_not_up_makes_it_503_and_is_named() {
    let second = Link::new("up.example.test", "connecting");
    let links = vec![Link::new("p2.example.test", "up"), second.clone()];
    let router = router(links, Arc::new(MemoryStore::new()));
    let (status, body) = get(router.clone(), "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(
        body["links"][1],
        json!({"jid": "up.example.test", "state": "connecting", "mode": "single"})
    );
    assert_eq!(body["database"], "ok");

    *second.state.lock().expect("lock") = "down";
    let (status, body) = get(router.clone(), "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["links"][1]["state"], "down");

    *second.state.lock().expect("lock") = "up";
    let (status, _) = get(router, "/health").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "healthy again once the link is back"
    );
}

/// Several instances: the one holding a `single` link reports it `up`, the others `standby`
/// (healthy: they serve HTTP); a `shared` link is up at every instance.
#[tokio::test]
async fn each_instance_says_which_links_it_holds_and_how() {
    let links = vec![
        Link::new("p2.example.test", "standby"),
        Link::new("shared.example.test", "up"),
    ];
    let (status, body) = get(router(links, Arc::new(MemoryStore::new())), "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["instance"], "a1b2c3d4");
    assert_eq!(
        body["links"],
        json!([
            {"jid": "p2.example.test", "state": "standby", "mode": "single"},
            {"jid": "shared.example.test", "state": "up", "mode": "shared"},
        ])
    );
}

#[tokio::test]
async fn a_database_that_does_not_answer_makes_it_503() {
    let store = Arc::new(MemoryStore::new());
    store.set_unavailable(true);
    let (status, body) = get(
        router(vec![Link::new("push.example.test", "up")], store),
        "/health",
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({
            "status": "unavailable",
            "instance": "a1b2c3d4",
            "links": [{"jid": "push.example.test", "state": "up", "mode": "single"}],
            "database": "unavailable",
        })
    );
}

#[tokio::test]
async fn the_merged_router_serves_push_and_answers_404_elsewhere() {
    let router = router(vec![], Arc::new(MemoryStore::new()));
    let (status, body) = get(router.clone(), "/push/some-token").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"unifiedpush": {"version": 1}}))
    );
    let (status, body) = get(router, "/healthz").await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "not found"}))
    );
}
