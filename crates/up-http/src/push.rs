//! `/push/{token}`: the UnifiedPush endpoint URLs handed to clients (PROTOCOL.md A.3).

use axum::Json;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;

/// The largest message body a UnifiedPush endpoint accepts (PROTOCOL.md A.3; the UnifiedPush
/// spec's 4096-byte message limit).
pub const UP_MAX_MESSAGE_BYTES: usize = 4096;

/// The routes under `/push/{token}`.
pub fn push_routes() -> Router {
    Router::new().route("/push/{token}", get(discovery))
}

/// `GET /push/{token}`: the UnifiedPush discovery answer, the same for any token (PROTOCOL.md
/// A.3, first row; up answers so for every token too).
async fn discovery() -> impl IntoResponse {
    Json(serde_json::json!({ "unifiedpush": { "version": 1 } }))
}
