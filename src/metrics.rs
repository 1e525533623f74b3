//! Prometheus metrics with etcd's names, types and buckets (etcd-compat.md §7.2), served at
//! `/metrics` on the client port and the metrics listener in the classic text format etcd uses.
//!
//! One process-wide registry: the instrumented paths (log fsync, backend commit, gRPC calls) are
//! deep in the stack, and a server process runs one member. State gauges (leader, sizes,
//! indexes) are refreshed from the live server at scrape time.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder, exponential_buckets,
};

use crate::api::Ctx;
use crate::api::maintenance::ETCD_VERSION;

/// Every metric Mainstay exports.
pub struct Metrics {
    registry: Registry,
    /// `etcd_server_has_leader` (gauge): 1 when a leader is known.
    pub has_leader: IntGauge,
    /// `etcd_server_is_leader` (gauge): 1 on the leader.
    pub is_leader: IntGauge,
    /// `etcd_server_leader_changes_seen_total` (counter).
    pub leader_changes: IntCounter,
    /// `etcd_server_proposals_committed_total` (gauge, as in etcd).
    pub proposals_committed: IntGauge,
    /// `etcd_server_proposals_applied_total` (gauge, as in etcd).
    pub proposals_applied: IntGauge,
    /// `etcd_server_proposals_pending` (gauge).
    pub proposals_pending: IntGauge,
    /// `etcd_server_proposals_failed_total` (counter).
    pub proposals_failed: IntCounter,
    /// `etcd_disk_wal_fsync_duration_seconds` (histogram): raft log fsyncs.
    pub wal_fsync: Histogram,
    /// `etcd_disk_backend_commit_duration_seconds` (histogram): apply batch commits.
    pub backend_commit: Histogram,
    /// `etcd_mvcc_db_total_size_in_bytes` (gauge).
    pub db_total_size: IntGauge,
    /// `etcd_mvcc_db_total_size_in_use_in_bytes` (gauge).
    pub db_in_use: IntGauge,
    /// `etcd_server_quota_backend_bytes` (gauge).
    pub quota_backend_bytes: IntGauge,
    /// `etcd_debugging_mvcc_keys_total` (gauge, as in etcd).
    pub keys_total: IntGauge,
    /// `etcd_debugging_mvcc_watch_stream_total` (gauge): open Watch streams, gRPC and gateway.
    pub watch_streams: IntGauge,
    /// `etcd_mvcc_put_total` (counter).
    pub put_total: IntCounter,
    /// `etcd_mvcc_range_total` (counter).
    pub range_total: IntCounter,
    /// `etcd_server_id{server_id}` (gauge, 1).
    pub server_id: IntGaugeVec,
    /// `etcd_server_version{server_version}` (gauge, 1).
    pub server_version: IntGaugeVec,
    /// `etcd_cluster_version{cluster_version}` (gauge, 1).
    pub cluster_version: IntGaugeVec,
    /// `grpc_server_started_total{grpc_type,grpc_service,grpc_method}` (counter).
    pub grpc_started: IntCounterVec,
    /// `grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}` (counter).
    pub grpc_handled: IntCounterVec,
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

/// etcd's disk latency buckets: 1 ms doubling 14 times (wal.go, backend metrics.go).
fn disk_histogram(r: &Registry, name: &str, help: &str) -> prometheus::Result<Histogram> {
    let h =
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(exponential_buckets(0.001, 2.0, 14)?))?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    fn new() -> prometheus::Result<Metrics> {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let grpc = ["grpc_type", "grpc_service", "grpc_method"];
        Ok(Metrics {
            has_leader: gauge(
                &r,
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            )?,
            is_leader: gauge(
                &r,
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            )?,
            leader_changes: counter(
                &r,
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            )?,
            proposals_committed: gauge(
                &r,
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            )?,
            proposals_applied: gauge(
                &r,
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            )?,
            proposals_pending: gauge(
                &r,
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            )?,
            proposals_failed: counter(
                &r,
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            )?,
            wal_fsync: disk_histogram(
                &r,
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
            )?,
            backend_commit: disk_histogram(
                &r,
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
            )?,
            db_total_size: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            )?,
            db_in_use: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            )?,
            quota_backend_bytes: gauge(
                &r,
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
            )?,
            keys_total: gauge(&r, "etcd_debugging_mvcc_keys_total", "Total number of keys.")?,
            watch_streams: gauge(
                &r,
                "etcd_debugging_mvcc_watch_stream_total",
                "Total number of watch streams.",
            )?,
            put_total: counter(
                &r,
                "etcd_mvcc_put_total",
                "Total number of puts seen by this member.",
            )?,
            range_total: counter(
                &r,
                "etcd_mvcc_range_total",
                "Total number of ranges seen by this member.",
            )?,
            server_id: gauge_vec(
                &r,
                "etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                &["server_id"],
            )?,
            server_version: gauge_vec(
                &r,
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
                &["server_version"],
            )?,
            cluster_version: gauge_vec(
                &r,
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                &["cluster_version"],
            )?,
            grpc_started: counter_vec(
                &r,
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
                &grpc,
            )?,
            grpc_handled: counter_vec(
                &r,
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &[grpc[0], grpc[1], grpc[2], "grpc_code"],
            )?,
            registry: r,
        })
    }

    /// Refreshes the state gauges from `ctx` and renders the registry in Prometheus' text
    /// format (`text/plain; version=0.0.4`, as etcd serves it).
    pub fn render(&self, ctx: &Ctx) -> String {
        let leader = ctx.raft.leader();
        let me = ctx.raft.member_id();
        self.has_leader.set(i64::from(leader != 0));
        self.is_leader.set(i64::from(leader == me.0));
        let (committed, applied) = ctx.raft.indexes();
        self.proposals_committed
            .set(i64::try_from(committed).unwrap_or(i64::MAX));
        self.proposals_applied
            .set(i64::try_from(applied).unwrap_or(i64::MAX));
        self.proposals_pending
            .set(i64::try_from(committed.saturating_sub(applied)).unwrap_or(0));
        let size = i64::try_from(ctx.storage.disk_bytes()).unwrap_or(i64::MAX);
        self.db_total_size.set(size);
        self.db_in_use.set(size);
        self.quota_backend_bytes
            .set(i64::try_from(ctx.limits.quota_backend_bytes).unwrap_or(i64::MAX));
        self.keys_total
            .set(i64::try_from(ctx.store.indexed_keys()).unwrap_or(i64::MAX));
        self.server_id.with_label_values(&[&me.to_string()]).set(1);
        self.server_version.with_label_values(&[ETCD_VERSION]).set(1);
        self.cluster_version.with_label_values(&["3.5"]).set(1);
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The process-wide metrics; `None` only if registering them failed (a programming error,
/// logged once), in which case nothing is recorded.
pub static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| match Metrics::new() {
    Ok(m) => Some(m),
    Err(e) => {
        tracing::error!(error = %e, "metrics registry could not be built");
        None
    }
});

/// Runs `f` on the metrics when they exist.
pub fn with(f: impl FnOnce(&Metrics)) {
    if let Some(m) = METRICS.as_ref() {
        f(m);
    }
}

/// gRPC call accounting as etcd's go-grpc-prometheus interceptors do it, from the request path
/// (`/etcdserverpb.KV/Range`) and the response's `grpc-status` (absent = OK, as a unary
/// success carries its status in the trailers).
pub async fn grpc_layer(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = request.uri().path().to_string();
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return next.run(request).await;
    };
    if !service.starts_with("etcdserverpb.")
        && !service.starts_with("v3lockpb.")
        && !service.starts_with("v3electionpb.")
        && !service.starts_with("grpc.health")
    {
        return next.run(request).await;
    }
    let kind = grpc_type(method);
    let (service, method) = (service.to_string(), method.to_string());
    with(|m| m.grpc_started.with_label_values(&[kind, &service, &method]).inc());
    let response = next.run(request).await;
    let code = tonic::Status::from_header_map(response.headers()).map_or(tonic::Code::Ok, |s| s.code());
    with(|m| {
        m.grpc_handled
            .with_label_values(&[kind, &service, &method, code_name(code)])
            .inc()
    });
    response
}

fn grpc_type(method: &str) -> &'static str {
    match method {
        "Watch" | "LeaseKeepAlive" => "bidi_stream",
        "Snapshot" | "Observe" => "server_stream",
        _ => "unary",
    }
}

/// The Go name of a gRPC code, as the `grpc_code` label carries it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_with_etcds_name_and_type() {
        let m = Metrics::new().unwrap();
        m.put_total.inc();
        m.wal_fsync.observe(0.002);
        m.grpc_started
            .with_label_values(&["unary", "etcdserverpb.KV", "Range"])
            .inc();
        m.grpc_handled
            .with_label_values(&["unary", "etcdserverpb.KV", "Range", "OK"])
            .inc();
        let mut out = Vec::new();
        TextEncoder::new().encode(&m.registry.gather(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for (name, kind) in [
            ("etcd_server_has_leader", "gauge"),
            ("etcd_server_proposals_committed_total", "gauge"),
            ("etcd_debugging_mvcc_keys_total", "gauge"),
            ("etcd_debugging_mvcc_watch_stream_total", "gauge"),
            ("etcd_mvcc_put_total", "counter"),
            ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
            ("grpc_server_handled_total", "counter"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} {kind} missing:\n{text}"
            );
        }
        // etcd's fsync buckets start at 1 ms and end at 8.192 s.
        assert!(text.contains(r#"etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"}"#));
        assert!(text.contains(r#"etcd_disk_wal_fsync_duration_seconds_bucket{le="8.192"}"#));
        assert!(text.contains(r#"grpc_server_handled_total{grpc_code="OK",grpc_method="Range""#));
    }

    #[test]
    fn go_code_names_are_used_for_labels() {
        assert_eq!(code_name(tonic::Code::Cancelled), "Canceled");
        assert_eq!(grpc_type("Watch"), "bidi_stream");
    }
}
