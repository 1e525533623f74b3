//! The metric definitions: etcd 3.5's names, types, HELP texts, labels and buckets, one
//! registry. Field docs give the exported name and what records it.

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, exponential_buckets,
};

/// Every metric Mainstay exports.
pub struct Metrics {
    pub(super) registry: Registry,
    // --- etcd_server_* (etcdserver/metrics.go), refreshed at scrape time unless noted ---
    /// `etcd_server_has_leader` (gauge): 1 when a leader is known.
    pub has_leader: IntGauge,
    /// `etcd_server_is_leader` (gauge): 1 on the leader.
    pub is_leader: IntGauge,
    /// `etcd_server_is_learner` (gauge): 1 while this member is a learner.
    pub is_learner: IntGauge,
    /// `etcd_server_leader_changes_seen_total` (counter): every change of the known leader.
    pub leader_changes: IntCounter,
    /// `etcd_server_learner_promote_successes` (counter; a single member never promotes).
    pub learner_promotes: IntCounter,
    /// `etcd_server_heartbeat_send_failures_total` (counter; a single member sends none).
    pub heartbeat_send_failures: IntCounter,
    /// `etcd_server_slow_apply_total` (counter): applies slower than 100 ms.
    pub slow_applies: IntCounter,
    /// `etcd_server_snapshot_apply_in_progress_total` (gauge): 1 while installing a snapshot
    /// received from a leader.
    pub snapshot_apply_in_progress: IntGauge,
    /// `etcd_server_proposals_committed_total` (gauge, as in etcd): committed raft index.
    pub proposals_committed: IntGauge,
    /// `etcd_server_proposals_applied_total` (gauge, as in etcd): applied raft index.
    pub proposals_applied: IntGauge,
    /// `etcd_server_proposals_pending` (gauge): proposals in flight.
    pub proposals_pending: IntGauge,
    /// `etcd_server_proposals_failed_total` (counter): proposals that failed in raft.
    pub proposals_failed: IntCounter,
    /// `etcd_server_slow_read_indexes_total` (counter): read barriers slower than 500 ms.
    pub slow_read_indexes: IntCounter,
    /// `etcd_server_read_indexes_failed_total` (counter): failed read barriers.
    pub read_indexes_failed: IntCounter,
    /// `etcd_debugging_server_lease_expired_total` (counter): leases revoked on expiry.
    pub lease_expired: IntCounter,
    /// `etcd_server_quota_backend_bytes` (gauge).
    pub quota_backend_bytes: IntGauge,
    /// `etcd_server_version{server_version}` (gauge, 1).
    pub server_version: IntGaugeVec,
    /// `etcd_server_go_version{server_go_version}` (gauge, 1): the Rust toolchain.
    pub go_version: IntGaugeVec,
    /// `etcd_server_id{server_id}` (gauge, 1).
    pub server_id: IntGaugeVec,
    /// `etcd_cluster_version{cluster_version}` (gauge, 1).
    pub cluster_version: IntGaugeVec,
    /// `os_fd_used` (gauge).
    pub fd_used: IntGauge,
    /// `os_fd_limit` (gauge).
    pub fd_limit: IntGauge,
    /// `process_virtual_memory_max_bytes` (gauge; Go's process collector has it, the Rust
    /// one does not): the address-space limit, `2^64` when unlimited.
    pub virtual_memory_max: Gauge,
    /// `etcd_server_apply_duration_seconds{version,op,success}` (histogram).
    pub apply_duration: HistogramVec,
    /// `etcd_server_client_requests_total{type,client_api_version}` (counter).
    pub client_requests: IntCounterVec,
    /// `etcd_server_health_success` (counter): `/health` answered healthy.
    pub health_success: IntCounter,
    /// `etcd_server_health_failures` (counter): `/health` answered unhealthy.
    pub health_failures: IntCounter,
    /// `etcd_server_healthcheck{type,name}` (gauge): last result of a livez/readyz check.
    pub healthcheck: IntGaugeVec,
    /// `etcd_server_healthchecks_total{type,name,status}` (counter).
    pub healthchecks: IntCounterVec,
    // --- disk (wal, backend, snap) ---
    /// `etcd_disk_wal_fsync_duration_seconds` (histogram): raft log fsyncs.
    pub wal_fsync: Histogram,
    /// `etcd_disk_wal_write_bytes_total` (gauge, as in etcd): raft log bytes written.
    pub wal_write_bytes: IntGauge,
    /// `etcd_disk_backend_commit_duration_seconds` (histogram): apply batch commits.
    pub backend_commit: Histogram,
    /// `etcd_disk_backend_defrag_duration_seconds` (histogram).
    pub defrag_duration: Histogram,
    /// `etcd_disk_backend_snapshot_duration_seconds` (histogram): backend snapshots streamed.
    pub backend_snapshot: Histogram,
    /// `etcd_disk_defrag_inflight` (gauge).
    pub defrag_inflight: IntGauge,
    /// `etcd_snap_fsync_duration_seconds` (histogram): raft snapshot file fsyncs.
    pub snap_fsync: Histogram,
    /// `etcd_debugging_snap_save_total_duration_seconds` (histogram): raft snapshot saves.
    pub snap_save_total: Histogram,
    /// `etcd_debugging_snap_save_marshalling_duration_seconds` (histogram).
    pub snap_marshalling: Histogram,
    // --- mvcc ---
    /// `etcd_mvcc_db_total_size_in_bytes` (gauge).
    pub db_total_size: IntGauge,
    /// `etcd_debugging_mvcc_db_total_size_in_bytes` (gauge; deprecated in etcd, still there).
    pub db_total_size_debug: IntGauge,
    /// `etcd_mvcc_db_total_size_in_use_in_bytes` (gauge).
    pub db_in_use: IntGauge,
    /// `etcd_mvcc_db_open_read_transactions` (gauge): reads being served.
    pub open_read_txns: IntGauge,
    /// `etcd_mvcc_range_total` and `etcd_debugging_mvcc_range_total` (counters).
    pub range_total: [IntCounter; 2],
    /// `etcd_mvcc_put_total` and `etcd_debugging_mvcc_put_total` (counters).
    pub put_total: [IntCounter; 2],
    /// `etcd_mvcc_delete_total` and `etcd_debugging_mvcc_delete_total` (counters).
    pub delete_total: [IntCounter; 2],
    /// `etcd_mvcc_txn_total` and `etcd_debugging_mvcc_txn_total` (counters).
    pub txn_total: [IntCounter; 2],
    /// `etcd_debugging_mvcc_total_put_size_in_bytes` (gauge): key + value bytes put.
    pub put_size: IntGauge,
    /// `etcd_debugging_mvcc_keys_total` (gauge, as in etcd).
    pub keys_total: IntGauge,
    /// `etcd_debugging_mvcc_current_revision` (gauge).
    pub current_revision: IntGauge,
    /// `etcd_debugging_mvcc_compact_revision` (gauge).
    pub compact_revision: IntGauge,
    /// `etcd_debugging_mvcc_watch_stream_total` (gauge).
    pub watch_streams: IntGauge,
    /// `etcd_debugging_mvcc_watcher_total` (gauge).
    pub watchers: IntGauge,
    /// `etcd_debugging_mvcc_slow_watcher_total` (gauge): watchers catching up from history.
    pub slow_watchers: IntGauge,
    /// `etcd_debugging_mvcc_events_total` (counter): events sent to watchers.
    pub events_total: IntCounter,
    /// `etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds` (histogram).
    pub index_compaction_pause: Histogram,
    /// `etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds` (histogram).
    pub db_compaction_pause: Histogram,
    /// `etcd_debugging_mvcc_db_compaction_total_duration_milliseconds` (histogram).
    pub db_compaction_total: Histogram,
    /// `etcd_debugging_mvcc_db_compaction_last` (gauge): unix time of the last compaction.
    pub db_compaction_last: IntGauge,
    /// `etcd_debugging_mvcc_db_compaction_keys_total` (counter).
    pub db_compaction_keys: IntCounter,
    /// `etcd_mvcc_hash_duration_seconds` (histogram).
    pub hash_duration: Histogram,
    /// `etcd_mvcc_hash_rev_duration_seconds` (histogram).
    pub hash_rev_duration: Histogram,
    // --- lease ---
    /// `etcd_debugging_lease_granted_total` (counter).
    pub lease_granted: IntCounter,
    /// `etcd_debugging_lease_revoked_total` (counter).
    pub lease_revoked: IntCounter,
    /// `etcd_debugging_lease_renewed_total` (counter).
    pub lease_renewed: IntCounter,
    /// `etcd_debugging_lease_ttl_total` (histogram): granted TTLs in seconds.
    pub lease_ttl: Histogram,
    // --- network and gRPC ---
    /// `etcd_network_client_grpc_sent_bytes_total` (counter): protobuf message bytes sent.
    pub grpc_sent_bytes: IntCounter,
    /// `etcd_network_client_grpc_received_bytes_total` (counter).
    pub grpc_received_bytes: IntCounter,
    /// `grpc_server_started_total{grpc_type,grpc_service,grpc_method}` (counter).
    pub grpc_started: IntCounterVec,
    /// `grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}` (counter).
    pub grpc_handled: IntCounterVec,
    /// `grpc_server_msg_received_total{grpc_type,grpc_service,grpc_method}` (counter).
    pub grpc_msg_received: IntCounterVec,
    /// `grpc_server_msg_sent_total{grpc_type,grpc_service,grpc_method}` (counter).
    pub grpc_msg_sent: IntCounterVec,
    // --- the handler itself (promhttp) ---
    /// `promhttp_metric_handler_requests_in_flight` (gauge).
    pub scrapes_in_flight: IntGauge,
    /// `promhttp_metric_handler_requests_total{code}` (counter).
    pub scrapes: IntCounterVec,
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

/// etcd's stable counter and its deprecated `etcd_debugging_` twin (mvcc/metrics.go).
fn counter_pair(r: &Registry, name: &str, help: &str) -> prometheus::Result<[IntCounter; 2]> {
    Ok([
        counter(r, &format!("etcd_mvcc_{name}"), help)?,
        counter(r, &format!("etcd_debugging_mvcc_{name}"), help)?,
    ])
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

/// A histogram with etcd's `prometheus.ExponentialBuckets(start, factor, count)`.
fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    start: f64,
    count: usize,
) -> prometheus::Result<Histogram> {
    let opts = HistogramOpts::new(name, help).buckets(exponential_buckets(start, 2.0, count)?);
    let h = Histogram::with_opts(opts)?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

/// etcd's disk latency buckets: 1 ms doubling up to 8.192 s (wal, backend, snap metrics.go).
fn disk_histogram(r: &Registry, name: &str, help: &str) -> prometheus::Result<Histogram> {
    histogram(r, name, help, 0.001, 14)
}

impl Metrics {
    /// Builds and registers every metric (and the process collector on Linux).
    ///
    /// # Errors
    /// Invalid or duplicate definitions (a programming error).
    #[allow(clippy::too_many_lines)]
    pub(super) fn new() -> prometheus::Result<Metrics> {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let grpc = ["grpc_type", "grpc_service", "grpc_method"];
        let apply_duration = HistogramVec::new(
            HistogramOpts::new(
                "etcd_server_apply_duration_seconds",
                "The latency distributions of v2 apply called by backend.",
            )
            .buckets(exponential_buckets(0.0001, 2.0, 20)?),
            &["version", "op", "success"],
        )?;
        r.register(Box::new(apply_duration.clone()))?;
        let m = Metrics {
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
            is_learner: gauge(
                &r,
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            )?,
            leader_changes: counter(
                &r,
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            )?,
            learner_promotes: counter(
                &r,
                "etcd_server_learner_promote_successes",
                "The total number of successful learner promotions while this member is leader.",
            )?,
            heartbeat_send_failures: counter(
                &r,
                "etcd_server_heartbeat_send_failures_total",
                "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            )?,
            slow_applies: counter(
                &r,
                "etcd_server_slow_apply_total",
                "The total number of slow apply requests (likely overloaded from slow disk).",
            )?,
            snapshot_apply_in_progress: gauge(
                &r,
                "etcd_server_snapshot_apply_in_progress_total",
                "1 if the server is applying the incoming snapshot. 0 if none.",
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
            slow_read_indexes: counter(
                &r,
                "etcd_server_slow_read_indexes_total",
                "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
            )?,
            read_indexes_failed: counter(
                &r,
                "etcd_server_read_indexes_failed_total",
                "The total number of failed read indexes seen.",
            )?,
            lease_expired: counter(
                &r,
                "etcd_debugging_server_lease_expired_total",
                "The total number of expired leases.",
            )?,
            quota_backend_bytes: gauge(
                &r,
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
            )?,
            server_version: gauge_vec(
                &r,
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
                &["server_version"],
            )?,
            go_version: gauge_vec(
                &r,
                "etcd_server_go_version",
                "Which Go version server is running with. 1 for 'server_go_version' label with current version.",
                &["server_go_version"],
            )?,
            server_id: gauge_vec(
                &r,
                "etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                &["server_id"],
            )?,
            cluster_version: gauge_vec(
                &r,
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                &["cluster_version"],
            )?,
            fd_used: gauge(&r, "os_fd_used", "The number of used file descriptors.")?,
            fd_limit: gauge(&r, "os_fd_limit", "The file descriptor limit.")?,
            virtual_memory_max: {
                let g = Gauge::new(
                    "process_virtual_memory_max_bytes",
                    "Maximum amount of virtual memory available in bytes.",
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            apply_duration,
            client_requests: counter_vec(
                &r,
                "etcd_server_client_requests_total",
                "The total number of client requests per client version.",
                &["type", "client_api_version"],
            )?,
            health_success: counter(
                &r,
                "etcd_server_health_success",
                "The total number of successful health checks",
            )?,
            health_failures: counter(
                &r,
                "etcd_server_health_failures",
                "The total number of failed health checks",
            )?,
            healthcheck: gauge_vec(
                &r,
                "etcd_server_healthcheck",
                "The result of each kind of healthcheck.",
                &["type", "name"],
            )?,
            healthchecks: counter_vec(
                &r,
                "etcd_server_healthchecks_total",
                "The total number of each kind of healthcheck.",
                &["type", "name", "status"],
            )?,
            wal_fsync: disk_histogram(
                &r,
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
            )?,
            wal_write_bytes: gauge(
                &r,
                "etcd_disk_wal_write_bytes_total",
                "Total number of bytes written in WAL.",
            )?,
            backend_commit: disk_histogram(
                &r,
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
            )?,
            defrag_duration: histogram(
                &r,
                "etcd_disk_backend_defrag_duration_seconds",
                "The latency distribution of backend defragmentation.",
                0.1,
                13,
            )?,
            backend_snapshot: histogram(
                &r,
                "etcd_disk_backend_snapshot_duration_seconds",
                "The latency distribution of backend snapshots.",
                0.01,
                17,
            )?,
            defrag_inflight: gauge(
                &r,
                "etcd_disk_defrag_inflight",
                "Whether or not defrag is active on the member. 1 means active, 0 means not.",
            )?,
            snap_fsync: disk_histogram(
                &r,
                "etcd_snap_fsync_duration_seconds",
                "The latency distributions of fsync called by snap.",
            )?,
            snap_save_total: disk_histogram(
                &r,
                "etcd_debugging_snap_save_total_duration_seconds",
                "The total latency distributions of save called by snapshot.",
            )?,
            snap_marshalling: disk_histogram(
                &r,
                "etcd_debugging_snap_save_marshalling_duration_seconds",
                "The marshalling cost distributions of save called by snapshot.",
            )?,
            db_total_size: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            )?,
            db_total_size_debug: gauge(
                &r,
                "etcd_debugging_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            )?,
            db_in_use: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            )?,
            open_read_txns: gauge(
                &r,
                "etcd_mvcc_db_open_read_transactions",
                "The number of currently open read transactions",
            )?,
            range_total: counter_pair(&r, "range_total", "Total number of ranges seen by this member.")?,
            put_total: counter_pair(&r, "put_total", "Total number of puts seen by this member.")?,
            delete_total: counter_pair(&r, "delete_total", "Total number of deletes seen by this member.")?,
            txn_total: counter_pair(&r, "txn_total", "Total number of txns seen by this member.")?,
            put_size: gauge(
                &r,
                "etcd_debugging_mvcc_total_put_size_in_bytes",
                "The total size of put kv pairs seen by this member.",
            )?,
            keys_total: gauge(&r, "etcd_debugging_mvcc_keys_total", "Total number of keys.")?,
            current_revision: gauge(
                &r,
                "etcd_debugging_mvcc_current_revision",
                "The current revision of store.",
            )?,
            compact_revision: gauge(
                &r,
                "etcd_debugging_mvcc_compact_revision",
                "The revision of the last compaction in store.",
            )?,
            watch_streams: gauge(
                &r,
                "etcd_debugging_mvcc_watch_stream_total",
                "Total number of watch streams.",
            )?,
            watchers: gauge(
                &r,
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers.",
            )?,
            slow_watchers: gauge(
                &r,
                "etcd_debugging_mvcc_slow_watcher_total",
                "Total number of unsynced slow watchers.",
            )?,
            events_total: counter(
                &r,
                "etcd_debugging_mvcc_events_total",
                "Total number of events sent by this member.",
            )?,
            index_compaction_pause: histogram(
                &r,
                "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
                "Bucketed histogram of index compaction pause duration.",
                0.5,
                14,
            )?,
            db_compaction_pause: histogram(
                &r,
                "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
                "Bucketed histogram of db compaction pause duration.",
                1.0,
                13,
            )?,
            db_compaction_total: histogram(
                &r,
                "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
                "Bucketed histogram of db compaction total duration.",
                100.0,
                14,
            )?,
            db_compaction_last: gauge(
                &r,
                "etcd_debugging_mvcc_db_compaction_last",
                "The unix time of the last db compaction. Resets to 0 on start.",
            )?,
            db_compaction_keys: counter(
                &r,
                "etcd_debugging_mvcc_db_compaction_keys_total",
                "Total number of db keys compacted.",
            )?,
            hash_duration: histogram(
                &r,
                "etcd_mvcc_hash_duration_seconds",
                "The latency distribution of storage hash operation.",
                0.01,
                15,
            )?,
            hash_rev_duration: histogram(
                &r,
                "etcd_mvcc_hash_rev_duration_seconds",
                "The latency distribution of storage hash by revision operation.",
                0.01,
                15,
            )?,
            lease_granted: counter(
                &r,
                "etcd_debugging_lease_granted_total",
                "The total number of granted leases.",
            )?,
            lease_revoked: counter(
                &r,
                "etcd_debugging_lease_revoked_total",
                "The total number of revoked leases.",
            )?,
            lease_renewed: counter(
                &r,
                "etcd_debugging_lease_renewed_total",
                "The number of renewed leases seen by the leader.",
            )?,
            lease_ttl: histogram(
                &r,
                "etcd_debugging_lease_ttl_total",
                "Bucketed histogram of lease TTLs.",
                1.0,
                24,
            )?,
            grpc_sent_bytes: counter(
                &r,
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            )?,
            grpc_received_bytes: counter(
                &r,
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
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
            grpc_msg_received: counter_vec(
                &r,
                "grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.",
                &grpc,
            )?,
            grpc_msg_sent: counter_vec(
                &r,
                "grpc_server_msg_sent_total",
                "Total number of gRPC stream messages sent by the server.",
                &grpc,
            )?,
            scrapes_in_flight: gauge(
                &r,
                "promhttp_metric_handler_requests_in_flight",
                "Current number of scrapes being served.",
            )?,
            scrapes: counter_vec(
                &r,
                "promhttp_metric_handler_requests_total",
                "Total number of scrapes by HTTP status code.",
                &["code"],
            )?,
            registry: r,
        };
        for code in ["200", "500", "503"] {
            m.scrapes.with_label_values(&[code]);
        }
        super::grpc::initialize(&m);
        Ok(m)
    }
}
