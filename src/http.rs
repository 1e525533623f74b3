//! Plain-HTTP endpoints (etcd `etcdhttp/health.go`, `version.go`): `/health`, `/livez`,
//! `/readyz` (and their `/<check>` sub-paths) on the client port and on the metrics listener
//! (`--listen-metrics-urls`, kubeadm probes `http://127.0.0.1:2381/livez` and `/readyz`), and
//! `/version` on the client port only, and `/metrics` (see `metrics`) on both.

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::alarm::alarm_name;
use crate::api::Ctx;
use crate::error::Error;
use crate::mvcc::{KeyRange, RangeOptions};
use crate::proto::etcdserverpb::AlarmType;

/// The routes the client port adds to its gRPC router.
pub fn client_routes(router: Router, ctx: Ctx) -> Router {
    health_routes(router, ctx).route("/version", get(version))
}

/// The routes of the metrics listener (and the health part of the client port).
pub fn health_routes(router: Router, ctx: Ctx) -> Router {
    let (h, l, r, m) = (ctx.clone(), ctx.clone(), ctx.clone(), ctx.clone());
    let (l1, r1) = (ctx.clone(), ctx);
    router
        .route("/metrics", get(move || metrics(m.clone())))
        .route("/health", get(move |q: RawQuery| health(h.clone(), q)))
        .route(
            "/livez",
            get(move |q: RawQuery| probe(l.clone(), Probe::Livez, None, q)),
        )
        .route(
            "/readyz",
            get(move |q: RawQuery| probe(r.clone(), Probe::Readyz, None, q)),
        )
        .route(
            "/livez/{check}",
            get(move |p: Path<String>, q: RawQuery| probe(l1.clone(), Probe::Livez, Some(p.0), q)),
        )
        .route(
            "/readyz/{check}",
            get(move |p: Path<String>, q: RawQuery| probe(r1.clone(), Probe::Readyz, Some(p.0), q)),
        )
}

fn query_values(raw: &Option<String>, name: &str) -> Vec<String> {
    let Some(q) = raw else { return Vec::new() };
    q.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| v.to_string())
        })
        .collect()
}

fn has_param(raw: &Option<String>, name: &str) -> bool {
    raw.as_deref()
        .is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some(name)))
}

async fn serializable_read(ctx: &Ctx) -> Result<(), Error> {
    ctx.store
        .range(
            &KeyRange::new(b"health", b""),
            RangeOptions {
                limit: 1,
                ..RangeOptions::default()
            },
        )
        .map(|_| ())
}

async fn linearizable_read(ctx: &Ctx) -> Result<(), Error> {
    ctx.raft.read_barrier().await?;
    serializable_read(ctx).await
}

fn error_text(e: &Error) -> String {
    crate::api::status::code_and_message(e).1
}

/// etcd's `/health`: 200 `{"health":"true","reason":""}`, or 503 with `"health":"false"` and
/// the reason: `RAFT NO LEADER` (skipped with `?serializable=true`), or `RANGE ERROR:<err>`
/// from a Range with limit 1 (serializable when asked); before both, any active alarm not
/// named by `?exclude=<ALARM>` gives `ALARM NOSPACE` / `ALARM CORRUPT`.
async fn health(ctx: Ctx, RawQuery(q): RawQuery) -> Response {
    let serializable = query_values(&q, "serializable").iter().any(|v| v == "true");
    let excluded = query_values(&q, "exclude");
    let alarm = ctx
        .applier
        .alarms()
        .get(AlarmType::None as i32)
        .into_iter()
        .map(|a| alarm_name(a.alarm))
        .find(|name| !excluded.iter().any(|e| e == name));
    let reason = if let Some(name) = alarm {
        Some(format!("ALARM {name}"))
    } else if !serializable && ctx.raft.leader() == 0 {
        Some("RAFT NO LEADER".to_string())
    } else {
        let read = if serializable {
            serializable_read(&ctx).await
        } else {
            linearizable_read(&ctx).await
        };
        read.err().map(|e| format!("RANGE ERROR:{}", error_text(&e)))
    };
    crate::metrics::record::health(reason.is_none());
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
        .into_response()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Probe {
    Livez,
    Readyz,
}

impl Probe {
    /// etcd's check names, in its order (3.5.11+ / 3.6; `non_learner` since 3.5.19).
    fn checks(self) -> &'static [&'static str] {
        match self {
            Probe::Livez => &["serializable_read"],
            Probe::Readyz => &[
                "data_corruption",
                "serializable_read",
                "linearizable_read",
                "non_learner",
            ],
        }
    }
}

async fn run_check(ctx: &Ctx, name: &str) -> Result<(), String> {
    match name {
        "serializable_read" => serializable_read(ctx).await.map_err(|e| error_text(&e)),
        "linearizable_read" => linearizable_read(ctx).await.map_err(|e| error_text(&e)),
        "data_corruption" if ctx.applier.alarms().is_active(AlarmType::Corrupt) => {
            Err("etcdserver: corrupt cluster".to_string())
        }
        // NOSPACE does not fail readyz (etcd 3.6); a single voter is never a learner.
        "data_corruption" | "non_learner" => Ok(()),
        _ => Err(format!("unknown check {name}")),
    }
}

/// `/livez` and `/readyz` in etcd's (Kubernetes-style) format: 200 `ok\n` (with `?verbose`,
/// preceded by `[+]<check> ok` lines); 503 with `[-]<check> failed: <err>` lines on failure;
/// `?exclude=<check>` skips a check; `/<probe>/<check>` runs one check.
async fn probe(ctx: Ctx, probe: Probe, only: Option<String>, RawQuery(q): RawQuery) -> Response {
    let excluded = query_values(&q, "exclude");
    let names: Vec<&str> = match &only {
        Some(one) if probe.checks().contains(&one.as_str()) => vec![one.as_str()],
        Some(_) => return (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
        None => probe.checks().to_vec(),
    };
    let mut reason = String::new();
    let mut failed = false;
    for name in names {
        if excluded.iter().any(|e| e == name) {
            reason.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        let result = run_check(&ctx, name).await;
        let kind = if probe == Probe::Livez { "livez" } else { "readyz" };
        crate::metrics::record::healthcheck(kind, name, result.is_ok());
        match result {
            Ok(()) => reason.push_str(&format!("[+]{name} ok\n")),
            Err(e) => {
                failed = true;
                reason.push_str(&format!("[-]{name} failed: {e}\n"));
            }
        }
    }
    let plain = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    if failed {
        return (StatusCode::SERVICE_UNAVAILABLE, plain, format!("{reason}\n")).into_response();
    }
    let body = if has_param(&q, "verbose") {
        format!("{reason}ok\n")
    } else {
        "ok\n".to_string()
    };
    (StatusCode::OK, plain, body).into_response()
}

/// Prometheus text exposition (etcd serves `text/plain; version=0.0.4`).
async fn metrics(ctx: Ctx) -> Response {
    let body = crate::metrics::METRICS
        .as_ref()
        .map(|m| m.render(&ctx))
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn version() -> impl IntoResponse {
    let version = crate::version::current();
    let body =
        serde_json::json!({"etcdserver": version.server(), "etcdcluster": version.cluster()}).to_string();
    ([(header::CONTENT_TYPE, "application/json")], body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_repeat() {
        let q = Some("exclude=a&verbose&exclude=b".to_string());
        assert_eq!(query_values(&q, "exclude"), vec!["a", "b"]);
        assert!(has_param(&q, "verbose"));
        assert!(!has_param(&None, "verbose"));
    }
}
