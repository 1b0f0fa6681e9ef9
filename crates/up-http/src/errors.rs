//! Error responses: always a small JSON object, never an HTML or empty body.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A response with `status` and the body `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The answer for a path no route matches.
pub(crate) async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not found")
}

/// The answer for a known path with a method it does not take.
pub(crate) async fn method_not_allowed() -> Response {
    json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}
