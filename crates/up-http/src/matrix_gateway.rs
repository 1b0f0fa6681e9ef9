//! `/_matrix/push/v1/notify`: the Matrix Push Gateway API on the UnifiedPush listener
//! (docs/matrix-gateway.md). Matrix apps that use UnifiedPush (Element, SchildiChat,
//! FluffyChat) look for a gateway at their endpoint's own origin; their homeserver then posts
//! each notification here, and pushgate delivers it to the endpoint inside the process, as an
//! RFC 8030 POST would be. Core decides (`pushgate_core::matrix_gateway`); this maps HTTP.
//!
//! The route is answered before the router, like the push POST: its body may be larger than
//! the listener's cap for push messages (a notification's `content` may be a whole event).

use std::net::SocketAddr;

use axum::Json;
use axum::body::{Bytes, HttpBody};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use pushgate_core::matrix_gateway::{Notify, NotifyError, Rejection, own_token, rejection_of};
use pushgate_core::provider::IncomingMessage;
use serde_json::json;

use crate::client_address::client_key;
use crate::push::PushEndpoint;
use crate::rate_limit::retry_after_secs;

/// The gateway's path, fixed by the spec.
pub(crate) const NOTIFY_PATH: &str = "/_matrix/push/v1/notify";

/// The largest `notify` body read: a notification carries at most one event, and a Matrix
/// event is at most 64 KiB.
pub const MAX_NOTIFY_BYTES: usize = 64 * 1024;

/// What the gateway needs beside the push endpoint's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixGatewaySettings {
    /// The `TTL` each notification asks for (the provider's cap bounds it).
    pub ttl_secs: u32,
}

/// The gateway's answer to `method` on its path.
pub(crate) async fn respond<B>(
    endpoint: &PushEndpoint,
    settings: &MatrixGatewaySettings,
    method: &Method,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    body: B,
) -> Response
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    if method == Method::GET || method == Method::HEAD {
        // What Element and its forks probe before they choose this gateway.
        return Json(json!({"gateway": "matrix", "unifiedpush": {"gateway": "matrix"}}))
            .into_response();
    }
    if method != Method::POST {
        crate::metrics::notify("method_not_allowed");
        return matrix_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "M_UNRECOGNIZED",
            "only GET and POST",
        );
    }
    // The spec's one retry rule: 429 with Retry-After, and only for the homeserver that sends
    // too much.
    let client = client_key(headers, peer, endpoint.trust_forwarded_for);
    if let Err(wait) = endpoint.per_client.check(&client) {
        pushgate_core::metric_handles::LOAD_SHED.increment("rate_limited_client", 1);
        crate::metrics::notify("rate_limited");
        let mut response = matrix_error(
            StatusCode::TOO_MANY_REQUESTS,
            "M_LIMIT_EXCEEDED",
            "too many requests",
        );
        let secs = retry_after_secs(wait);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return response;
    }
    if crate::limits::declares_too_large(headers, MAX_NOTIFY_BYTES) {
        crate::metrics::notify("too_large");
        return too_large();
    }
    let body = match Limited::new(body, MAX_NOTIFY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let too_big = std::iter::successors(
                Some(&*error as &(dyn std::error::Error + 'static)),
                |cause| cause.source(),
            )
            .any(|cause| cause.is::<LengthLimitError>());
            crate::metrics::notify(if too_big { "too_large" } else { "bad_json" });
            return if too_big {
                too_large()
            } else {
                matrix_error(
                    StatusCode::BAD_REQUEST,
                    "M_BAD_JSON",
                    "the body could not be read",
                )
            };
        }
    };
    let notify = match Notify::read(&body) {
        Ok(notify) => notify,
        Err(error) => {
            crate::metrics::notify("bad_json");
            let code = match error {
                NotifyError::NotJson => "M_NOT_JSON",
                NotifyError::Shape(_) | NotifyError::TooManyDevices => "M_BAD_JSON",
            };
            return matrix_error(StatusCode::BAD_REQUEST, code, &error.to_string());
        }
    };
    let rejected = deliver(endpoint, settings, &notify).await;
    crate::metrics::notify("ok");
    Json(json!({ "rejected": rejected })).into_response()
}

/// Hands the notification to each device that is one of pushgate's endpoints; returns the
/// pushkeys the homeserver should forget.
async fn deliver(
    endpoint: &PushEndpoint,
    settings: &MatrixGatewaySettings,
    notify: &Notify,
) -> Vec<String> {
    let mut rejected = Vec::new();
    for pushkey in &notify.pushkeys {
        let rejection = match own_token(pushkey, &endpoint.push_url_prefix) {
            None => Some(Rejection::Foreign),
            Some(token) => match &notify.message {
                None => Some(Rejection::TooLarge),
                Some(message) => {
                    // The endpoint's own rate: a notify is an RFC 8030 POST to it by another
                    // road. Over it, the message is not sent, and the pusher is kept.
                    if endpoint
                        .per_endpoint
                        .check(&endpoint.endpoint_key(token))
                        .is_err()
                    {
                        pushgate_core::metric_handles::LOAD_SHED
                            .increment("rate_limited_endpoint", 1);
                        continue;
                    }
                    let outcome = endpoint
                        .provider
                        .accept(
                            token,
                            IncomingMessage {
                                body: message,
                                ttl_secs: Some(settings.ttl_secs),
                                topic: None,
                                urgency: Some(notify.urgency),
                            },
                        )
                        .await;
                    rejection_of(&outcome)
                }
            },
        };
        if let Some(rejection) = rejection {
            crate::metrics::rejected_pushkey(rejection.label());
            rejected.push(pushkey.clone());
        }
    }
    rejected
}

/// A Matrix error body (`{"errcode", "error"}`), as the spec's clients read it.
fn matrix_error(status: StatusCode, errcode: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "errcode": errcode, "error": message })),
    )
        .into_response()
}

fn too_large() -> Response {
    matrix_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "M_TOO_LARGE",
        "request body too large",
    )
}
