//! The recording calls the instrumented code paths make: one call (or one guard) per site,
//! each naming the etcd metric it feeds and where etcd records it.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus::Histogram;

use super::{Metrics, with};
use crate::apply::command::{Command, Response};
use crate::config::limits::{APPLY_WARN_DURATION, READ_INDEX_SLOW};
use crate::proto::etcdserverpb::{TxnRequest, request_op};
use crate::proto::mainstaypb::{ApplyErrorCode, internal_request};

/// `etcd_server_proposals_pending` while alive (etcd `processInternalRaftRequestOnce`).
#[must_use = "the proposal stays pending until the guard drops"]
pub struct Pending(());

/// A proposal starts; it is pending until the returned guard drops.
pub fn proposal() -> Pending {
    with(|m| m.proposals_pending.inc());
    Pending(())
}

impl Drop for Pending {
    fn drop(&mut self) {
        with(|m| m.proposals_pending.dec());
    }
}

/// `etcd_server_proposals_failed_total`: raft did not commit a proposal (no leader, timeout,
/// stopped) — not apply-level errors such as `key not found`.
pub fn proposal_failed() {
    with(|m| m.proposals_failed.inc());
}

/// A read barrier (ReadIndex) finished: failures count in `etcd_server_read_indexes_failed_total`,
/// slow ones (≥ [`READ_INDEX_SLOW`]) in `etcd_server_slow_read_indexes_total`.
pub fn read_index(started: Instant, ok: bool) {
    with(|m| {
        if !ok {
            m.read_indexes_failed.inc();
        }
        if started.elapsed() >= READ_INDEX_SLOW {
            m.slow_read_indexes.inc();
        }
    });
}

/// etcd's `op` label of `etcd_server_apply_duration_seconds` (applierV3backend.Apply).
fn apply_op(command: &Command) -> &'static str {
    use internal_request::Request as R;
    match &command.0.request {
        Some(R::Put(_)) => "Put",
        Some(R::DeleteRange(_)) => "DeleteRange",
        Some(R::Txn(_)) => "Txn",
        Some(R::Compaction(_)) => "Compaction",
        Some(R::LeaseGrant(_)) => "LeaseGrant",
        Some(R::LeaseRevoke(_) | R::LeaseRevokeBatch(_)) => "LeaseRevoke",
        Some(R::Alarm(_)) => "Alarm",
        Some(R::LeaseCheckpoint(_)) => "LeaseCheckpoint",
        // etcd's op names for its auth applies.
        Some(R::AuthEnable(_)) => "AuthEnable",
        Some(R::AuthDisable(_)) => "AuthDisable",
        Some(R::Authenticate(_)) => "Authenticate",
        Some(R::AuthUserAdd(_)) => "AuthUserAdd",
        Some(R::AuthUserDelete(_)) => "AuthUserDelete",
        Some(R::AuthUserChangePassword(_)) => "AuthUserChangePassword",
        Some(R::AuthUserGrantRole(_)) => "AuthUserGrantRole",
        Some(R::AuthUserRevokeRole(_)) => "AuthUserRevokeRole",
        Some(R::AuthRoleAdd(_)) => "AuthRoleAdd",
        Some(R::AuthRoleDelete(_)) => "AuthRoleDelete",
        Some(R::AuthRoleGrantPermission(_)) => "AuthRoleGrantPermission",
        Some(R::AuthRoleRevokePermission(_)) => "AuthRoleRevokePermission",
        None => "unknown",
    }
}

/// Runs one apply and records `etcd_server_apply_duration_seconds{version="v3",op,success}`
/// (success as etcd decides it: no error, or `ErrCompacted`) and `etcd_server_slow_apply_total`
/// for applies over [`APPLY_WARN_DURATION`].
///
/// # Errors
/// `apply`'s own.
pub fn timed_apply<E>(command: &Command, apply: impl FnOnce() -> Result<Response, E>) -> Result<Response, E> {
    let started = Instant::now();
    let result = apply();
    let took = started.elapsed();
    with(|m| {
        let success = result.as_ref().is_ok_and(|r| {
            r.0.error == ApplyErrorCode::ApplyOk as i32 || r.0.error == ApplyErrorCode::Compacted as i32
        });
        m.apply_duration
            .with_label_values(&["v3", apply_op(command), if success { "true" } else { "false" }])
            .observe(took.as_secs_f64());
        if took > APPLY_WARN_DURATION {
            m.slow_applies.inc();
        }
    });
    result
}

/// One Range in the MVCC layer (a Range request, a Txn's range or compare, a prev_kv read):
/// `etcd_mvcc_range_total` (mvcc `metricsTxnWrite.Range`).
pub fn mvcc_range() {
    with(|m| m.range_total.iter().for_each(|c| c.inc()));
}

/// One Put of `key_bytes + value_bytes`: `etcd_mvcc_put_total`,
/// `etcd_debugging_mvcc_total_put_size_in_bytes`.
pub fn mvcc_put(size: usize) {
    with(|m| {
        m.put_total.iter().for_each(|c| c.inc());
        m.put_size.add(i64::try_from(size).unwrap_or(i64::MAX));
    });
}

/// One DeleteRange: `etcd_mvcc_delete_total` (counted per request, not per key, as etcd does).
pub fn mvcc_delete() {
    with(|m| m.delete_total.iter().for_each(|c| c.inc()));
}

/// A Txn executed along `path` (one compare outcome per visited Txn, in pre-order):
/// `etcd_mvcc_txn_total` counts it when it did more than one MVCC operation — etcd counts a
/// transaction in `metricsTxnWrite.End` when its ranges (compares included), puts and deletes
/// add up to more than one.
pub fn mvcc_txn(rt: &TxnRequest, path: &[bool]) {
    fn operations(rt: &TxnRequest, path: &[bool], at: &mut usize) -> usize {
        let succeeded = path.get(*at).copied().unwrap_or(false);
        *at += 1;
        let ops = if succeeded { &rt.success } else { &rt.failure };
        let mut n = rt.compare.len();
        for op in ops {
            n += match &op.request {
                Some(request_op::Request::RequestTxn(nested)) => operations(nested, path, at),
                Some(_) => 1,
                None => 0,
            };
        }
        n
    }
    if operations(rt, path, &mut 0) > 1 {
        with(|m| m.txn_total.iter().for_each(|c| c.inc()));
    }
}

/// `etcd_mvcc_db_open_read_transactions` while alive.
#[must_use = "the read counts as open until the guard drops"]
pub struct OpenRead(());

/// A store read starts.
pub fn open_read() -> OpenRead {
    with(|m| m.open_read_txns.inc());
    OpenRead(())
}

impl Drop for OpenRead {
    fn drop(&mut self) {
        with(|m| m.open_read_txns.dec());
    }
}

/// A lease was granted with `ttl_secs` (lease `lessor.Grant`): `etcd_debugging_lease_granted_total`
/// and `etcd_debugging_lease_ttl_total`.
pub fn lease_granted(ttl_secs: i64) {
    with(|m| {
        m.lease_granted.inc();
        m.lease_ttl.observe(ttl_secs as f64);
    });
}

/// A lease was revoked (lease `lessor.Revoke`): `etcd_debugging_lease_revoked_total`.
pub fn lease_revoked() {
    with(|m| m.lease_revoked.inc());
}

/// A keep-alive renewed a lease (lease `lessor.Renew`): `etcd_debugging_lease_renewed_total`.
pub fn lease_renewed() {
    with(|m| m.lease_renewed.inc());
}

/// The leader revoked `n` expired leases (etcdserver `revokeExpiredLeases`):
/// `etcd_debugging_server_lease_expired_total`.
pub fn leases_expired(n: usize) {
    with(|m| m.lease_expired.inc_by(n as u64));
}

/// `bytes` of raft log entries written: `etcd_disk_wal_write_bytes_total`.
pub fn wal_written(bytes: usize) {
    with(|m| m.wal_write_bytes.add(i64::try_from(bytes).unwrap_or(i64::MAX)));
}

/// Observes the seconds from its creation to its drop into one histogram.
#[must_use = "the time is observed when the guard drops"]
pub struct Timer {
    started: Instant,
    pick: fn(&Metrics) -> &Histogram,
}

/// Starts timing into the histogram `pick` selects.
pub fn timer(pick: fn(&Metrics) -> &Histogram) -> Timer {
    Timer {
        started: Instant::now(),
        pick,
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let secs = self.started.elapsed().as_secs_f64();
        with(|m| (self.pick)(m).observe(secs));
    }
}

/// A defragmentation in progress: `etcd_disk_defrag_inflight` is 1 and its duration goes to
/// `etcd_disk_backend_defrag_duration_seconds` when the guard drops.
#[must_use = "the defragmentation ends when the guard drops"]
pub struct Defrag(#[allow(dead_code)] Timer);

/// A defragmentation starts.
pub fn defrag() -> Defrag {
    with(|m| m.defrag_inflight.set(1));
    Defrag(timer(|m| &m.defrag_duration))
}

impl Drop for Defrag {
    fn drop(&mut self) {
        with(|m| m.defrag_inflight.set(0));
    }
}

/// Runs the in-memory index compaction `f` (the writers' pause):
/// `etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds`.
pub fn index_compaction<T>(f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    with(|m| m.index_compaction_pause.observe(millis(started)));
    out
}

/// One batch of old versions deleted by the compactor:
/// `etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds`.
pub fn db_compaction_batch(started: Instant) {
    with(|m| m.db_compaction_pause.observe(millis(started)));
}

/// A compaction finished deleting `keys` old versions:
/// `etcd_debugging_mvcc_db_compaction_total_duration_milliseconds`, `_keys_total`, `_last`.
pub fn db_compaction_done(keys: usize, started: Instant) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    with(|m| {
        m.db_compaction_total.observe(millis(started));
        m.db_compaction_keys.inc_by(keys as u64);
        m.db_compaction_last.set(now);
    });
}

fn millis(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// `/health` answered: `etcd_server_health_success` / `etcd_server_health_failures`.
pub fn health(healthy: bool) {
    with(|m| {
        if healthy {
            m.health_success.inc();
        } else {
            m.health_failures.inc();
        }
    });
}

/// One livez/readyz check ran (etcdhttp `recordMetrics`): `etcd_server_healthcheck{type,name}`
/// is 1 or 0, `etcd_server_healthchecks_total{type,name,status}` counts `success` / `error`.
pub fn healthcheck(kind: &str, name: &str, ok: bool) {
    with(|m| {
        m.healthcheck.with_label_values(&[kind, name]).set(i64::from(ok));
        m.healthchecks
            .with_label_values(&[kind, name, if ok { "success" } else { "error" }])
            .inc();
    });
}

/// A watch stream registered (`etcd_debugging_mvcc_watch_stream_total` + 1).
pub fn watch_stream_opened() {
    with(|m| m.watch_streams.inc());
}

/// A watch stream went away (`etcd_debugging_mvcc_watch_stream_total` − 1).
pub fn watch_stream_closed() {
    with(|m| m.watch_streams.dec());
}

/// One stream's contribution to `etcd_debugging_mvcc_watcher_total` and
/// `etcd_debugging_mvcc_slow_watcher_total`; withdrawn when dropped.
#[derive(Default)]
pub struct WatcherGauges {
    watchers: i64,
    slow: i64,
}

impl WatcherGauges {
    /// The stream now has `watchers` watchers, `slow` of them unsynced (catching up).
    pub fn set(&mut self, watchers: usize, slow: usize) {
        let (w, s) = (
            i64::try_from(watchers).unwrap_or(i64::MAX),
            i64::try_from(slow).unwrap_or(i64::MAX),
        );
        if (w, s) != (self.watchers, self.slow) {
            with(|m| {
                m.watchers.add(w - self.watchers);
                m.slow_watchers.add(s - self.slow);
            });
            (self.watchers, self.slow) = (w, s);
        }
    }
}

impl Drop for WatcherGauges {
    fn drop(&mut self) {
        self.set(0, 0);
    }
}

/// `n` events sent to a watcher: `etcd_debugging_mvcc_events_total`.
pub fn events_sent(n: usize) {
    with(|m| m.events_total.inc_by(n as u64));
}
