//! Prometheus metrics with etcd's names, types, HELP texts, labels and histogram buckets
//! (etcd-compat.md §7.2), served at `/metrics` on the client port and the metrics listener in
//! the classic text format etcd uses.
//!
//! One process-wide registry: the instrumented paths (log fsync, apply, MVCC operations, gRPC
//! calls, leases, watches) are deep in the stack, and a server process runs one member. The
//! code paths record through the small functions of [`record`]; state gauges (leader, sizes,
//! indexes, revisions, file descriptors) are refreshed from the live server at scrape time.
//!
//! Sources of the definitions (etcd 3.5): `server/etcdserver/metrics.go`,
//! `server/mvcc/metrics.go`, `server/mvcc/backend/metrics.go`, `server/wal/metrics.go`,
//! `server/etcdserver/api/snap/metrics.go`, `server/lease/metrics.go`,
//! `server/etcdserver/api/v3rpc/metrics.go`, `server/etcdserver/api/etcdhttp/health.go`,
//! `server/etcdserver/api/membership/metrics.go`, and go-grpc-prometheus' server metrics.
//! Peer (`etcd_network_peer_*`, `etcd_snap_db_*`) metrics do not apply to a single member and,
//! like etcd's label vectors without children, are not exported.

mod defs;
mod grpc;
pub mod record;
mod system;

use std::sync::LazyLock;

use prometheus::{Encoder, TextEncoder};

pub use self::defs::Metrics;
pub use self::grpc::grpc_layer;
use crate::api::Ctx;

/// The toolchain that built this binary, in the shape Go reports its own (`go1.23.7`): the
/// value of the `server_go_version` label of `etcd_server_go_version`.
const TOOLCHAIN_VERSION: &str = match option_env!("MAINSTAY_RUSTC_VERSION") {
    Some(v) => v,
    None => "rust-unknown",
};

impl Metrics {
    /// Refreshes the state gauges from `ctx` and renders the registry in Prometheus' text
    /// format (`text/plain; version=0.0.4`, as etcd serves it).
    pub fn render(&self, ctx: &Ctx) -> String {
        self.scrapes_in_flight.inc();
        let leader = ctx.raft.leader();
        let me = ctx.raft.member_id();
        self.has_leader.set(i64::from(leader != 0));
        self.is_leader.set(i64::from(leader == me.0));
        let learner = ctx
            .raft
            .members()
            .iter()
            .any(|(id, _, voter)| *id == me && !voter);
        self.is_learner.set(i64::from(learner));
        let (committed, applied) = ctx.raft.indexes();
        self.proposals_committed.set(clamp(committed));
        self.proposals_applied.set(clamp(applied));
        let size = clamp(ctx.storage.disk_bytes());
        self.db_total_size.set(size);
        self.db_total_size_debug.set(size);
        // The same figure Status reports as dbSizeInUse: fjall keeps no free pages the way
        // bbolt does; space freed by compaction is returned by its own table compactions.
        self.db_in_use.set(size);
        self.quota_backend_bytes
            .set(clamp(ctx.limits.quota_backend_bytes));
        self.keys_total
            .set(i64::try_from(ctx.store.indexed_keys()).unwrap_or(i64::MAX));
        self.current_revision.set(ctx.store.current_revision().0);
        self.compact_revision.set(ctx.store.compact_revision().0.max(0));
        self.server_id.with_label_values(&[&me.to_string()]).set(1);
        let version = crate::version::current();
        self.server_version.with_label_values(&[version.server()]).set(1);
        self.cluster_version
            .with_label_values(&[version.cluster_minor().as_str()])
            .set(1);
        self.go_version.with_label_values(&[TOOLCHAIN_VERSION]).set(1);
        if let Some((used, limit)) = system::fd_usage() {
            self.fd_used.set(used);
            self.fd_limit.set(limit);
        }
        if let Some(max) = system::address_space_limit() {
            self.virtual_memory_max.set(max);
        }
        let mut out = Vec::new();
        let code = match TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            Ok(()) => "200",
            Err(e) => {
                tracing::warn!(error = %e, "encoding metrics failed");
                "500"
            }
        };
        self.scrapes.with_label_values(&[code]).inc();
        self.scrapes_in_flight.dec();
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
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

#[cfg(test)]
mod tests;
