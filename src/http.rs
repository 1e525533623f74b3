//! Plain-HTTP endpoints on the client port: `/health` and `/version` (etcd
//! `etcdhttp/health.go`, `version.go`). `/livez`, `/readyz`, `/metrics` and the metrics listener
//! arrive with the operations issue.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::api::Ctx;
use crate::api::maintenance::ETCD_VERSION;
use crate::mvcc::{KeyRange, RangeOptions};

/// Adds the HTTP routes to `router`.
pub fn routes(router: Router, ctx: Ctx) -> Router {
    let health_ctx = ctx.clone();
    router
        .route("/health", get(move || health(health_ctx.clone())))
        .route("/version", get(version))
}

/// etcd's `/health`: 200 `{"health":"true","reason":""}`, or 503 with `"health":"false"` and
/// the reason (`RAFT NO LEADER`, `RANGE ERROR:<err>`). Other methods get 405 (axum's
/// `MethodRouter` answers them with `Allow: GET,HEAD`).
async fn health(ctx: Ctx) -> impl IntoResponse {
    let reason = if ctx.raft.leader() == 0 {
        Some("RAFT NO LEADER".to_string())
    } else {
        match ctx.raft.read_barrier().await.and_then(|()| {
            ctx.store.range(
                &KeyRange::new(b"health", b""),
                RangeOptions {
                    limit: 1,
                    ..RangeOptions::default()
                },
            )
        }) {
            Ok(_) => None,
            Err(e) => Some(format!(
                "RANGE ERROR:{}",
                crate::api::status::code_and_message(&e).1
            )),
        }
    };
    let (status, body) = match reason {
        None => (StatusCode::OK, r#"{"health":"true","reason":""}"#.to_string()),
        Some(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"health": "false", "reason": r}).to_string() + "\n",
        ),
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
}

async fn version() -> impl IntoResponse {
    let body = serde_json::json!({"etcdserver": ETCD_VERSION, "etcdcluster": "3.5.0"}).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body)
}
