//! What answers a request: the axum router for every route, except `POST /push/{token}`, which
//! is taken straight to its handler.
//!
//! The push POST is the one request an HTTP server of pushgate sees thousands of times a second.
//! Through the router it would be matched, have its path parameters collected and decoded, and
//! pass two boxed middleware layers before its handler, all to reach the same function with the
//! same limits; taken directly it costs a prefix check. The answer is the same either way: both
//! paths run [`accept_push`](crate::post_message::accept_push) under the same body cap and
//! deadline, and the tests send every request through [`App`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use axum::response::Response;
use http_body_util::Limited;
use tower::ServiceExt as _;

use crate::limits::{ServerConfig, declares_too_large, timed_out, too_large};
use crate::matrix_gateway::NOTIFY_PATH;
use crate::post_message::accept_push;
use crate::push::PushEndpoint;

/// The routes an HTTP server answers, and the push endpoint among them, if any.
///
/// Built from a plain [`Router`] (`Routes::from`) or by [`push_routes`](crate::push_routes);
/// more routes join with [`merge`](Self::merge).
#[derive(Clone, Default)]
pub struct Routes {
    router: Router,
    push: Option<Arc<PushEndpoint>>,
}

impl Routes {
    pub(crate) fn with_push(router: Router, push: Arc<PushEndpoint>) -> Self {
        Self {
            router,
            push: Some(push),
        }
    }

    /// These routes and those of `router` (whose paths must not overlap, as for
    /// [`Router::merge`]).
    #[must_use]
    pub fn merge(self, router: Router) -> Self {
        Self {
            router: self.router.merge(router),
            push: self.push,
        }
    }
}

impl From<Router> for Routes {
    fn from(router: Router) -> Self {
        Self { router, push: None }
    }
}

/// `routes` with what every pushgate route gets: a JSON 404 for unknown paths, a JSON 405 for
/// wrong methods, the body cap and the request deadline. [`serve`](crate::serve) serves this;
/// tests can call it directly, as a `tower::Service`.
pub fn app(routes: impl Into<Routes>, config: &ServerConfig) -> App {
    let Routes { router, push } = routes.into();
    App {
        router: crate::limits::with_limits(router, config),
        push,
        request_timeout: config.request_timeout,
        max_body_bytes: config.max_body_bytes,
    }
}

/// The routes under the server's limits, ready to answer requests.
#[derive(Clone)]
pub struct App {
    router: Router,
    push: Option<Arc<PushEndpoint>>,
    request_timeout: Duration,
    max_body_bytes: usize,
}

impl App {
    /// The answer to `request` from the client at `peer` (the per-client rate limit keys on
    /// it; `None` for a request made in-process).
    pub async fn respond<B>(&self, request: Request<B>, peer: Option<SocketAddr>) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        if !request.uri().path().starts_with(PUSH_PREFIX) {
            return self.respond_any(request, peer).await;
        }
        let started = Instant::now();
        let response = self.respond_any(request, peer).await;
        crate::metrics::push_request(response.status(), started.elapsed());
        response
    }

    async fn respond_any<B>(&self, request: Request<B>, peer: Option<SocketAddr>) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        match &self.push {
            Some(endpoint) if is_direct_push(&request) => {
                self.post_directly(endpoint, request, peer).await
            }
            Some(endpoint) if request.uri().path() == NOTIFY_PATH => {
                match &endpoint.matrix_gateway {
                    Some(settings) => {
                        let (parts, body) = request.into_parts();
                        let answered = crate::matrix_gateway::respond(
                            endpoint,
                            settings,
                            &parts.method,
                            &parts.headers,
                            peer,
                            body,
                        );
                        tokio::time::timeout(self.request_timeout, answered)
                            .await
                            .unwrap_or_else(|_| timed_out())
                    }
                    None => {
                        crate::errors::json_error(axum::http::StatusCode::NOT_FOUND, "not found")
                    }
                }
            }
            _ => {
                let mut request = request.map(Body::new);
                if let Some(peer) = peer {
                    request.extensions_mut().insert(ConnectInfo(peer));
                }
                match self.router.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(infallible) => match infallible {},
                }
            }
        }
    }

    /// `POST /push/{token}` under the same cap and deadline the router's layers apply.
    async fn post_directly<B>(
        &self,
        endpoint: &PushEndpoint,
        request: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let (parts, body) = request.into_parts();
        if declares_too_large(&parts.headers, self.max_body_bytes) {
            return too_large();
        }
        let token = parts.uri.path().strip_prefix(PUSH_PREFIX);
        let body = Limited::new(body, self.max_body_bytes);
        let handled = accept_push(endpoint, peer, &parts.headers, token, body);
        tokio::time::timeout(self.request_timeout, handled)
            .await
            .unwrap_or_else(|_| timed_out())
    }
}

const PUSH_PREFIX: &str = "/push/";

/// Whether the router would give `request` to the push POST handler with the path's last
/// segment as it stands: a POST to `/push/{token}` whose token needs no percent-decoding (a
/// `%` goes through the router, which decodes it).
fn is_direct_push<B>(request: &Request<B>) -> bool {
    request.method() == Method::POST
        && request
            .uri()
            .path()
            .strip_prefix(PUSH_PREFIX)
            .is_some_and(|token| !token.is_empty() && !token.contains(['/', '%']))
}

/// The peer is taken from axum's `ConnectInfo`, as a router reads it.
impl<B> tower::Service<Request<B>> for App
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let app = self.clone();
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer);
        Box::pin(async move { Ok(app.respond(request, peer).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .expect("request")
    }

    #[test]
    fn only_a_post_to_a_plain_token_goes_directly() {
        for path in [
            "/push/v2.local.abc",
            "/push/x",
            "/push/v2.local.a-b_c?ttl=1",
        ] {
            assert!(is_direct_push(&request(Method::POST, path)), "{path}");
        }
        for path in [
            "/push/",
            "/push",
            "/push/a/b",
            "/push/a/",
            "/push/a%2Fb",
            "/pushx/a",
            "/message/a",
            "/",
        ] {
            assert!(!is_direct_push(&request(Method::POST, path)), "{path}");
        }
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::HEAD] {
            assert!(!is_direct_push(&request(method, "/push/v2.local.abc")));
        }
    }
}
