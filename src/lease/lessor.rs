//! The lessor: the in-memory lease table (etcd `lease/lessor.go`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;

use crate::apply::ops::LeaseLookup;
use crate::error::StorageError;
use crate::mvcc::{Change, KeyRange, RangeOptions, Store};
use crate::proto::mainstaypb::Lease;
use crate::storage::Storage;
use crate::types::LeaseId;

#[derive(Debug)]
struct Entry {
    ttl_secs: i64,
    /// Last checkpointed remaining TTL in seconds; 0 when unset (etcd `Lease.remainingTTL`).
    /// The clock starts from it instead of the full TTL after a restart or leader change.
    remaining_secs: i64,
    keys: BTreeSet<Bytes>,
    /// Local deadline; `None` until the expiry task or a keep-alive starts the clock.
    deadline: Option<Instant>,
    /// When the leader checkpoints this lease next; `None` when none is scheduled.
    next_checkpoint: Option<Instant>,
}

impl Entry {
    fn new(ttl_secs: i64, remaining_secs: i64) -> Entry {
        Entry {
            ttl_secs,
            remaining_secs,
            keys: BTreeSet::new(),
            deadline: None,
            next_checkpoint: None,
        }
    }

    /// The TTL the clock starts from: the checkpointed remaining TTL when set (etcd
    /// `Lease.RemainingTTL`), else the granted TTL.
    fn starting_secs(&self) -> i64 {
        if self.remaining_secs > 0 {
            self.remaining_secs
        } else {
            self.ttl_secs
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    leases: BTreeMap<LeaseId, Entry>,
    key_lease: HashMap<Bytes, LeaseId>,
}

/// What LeaseTimeToLive reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeToLive {
    /// Remaining seconds, truncated.
    pub remaining_secs: i64,
    /// Granted TTL in seconds.
    pub granted_secs: i64,
    /// Attached keys, in key order.
    pub keys: Vec<Bytes>,
}

/// The lease table. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Lessor {
    table: Mutex<Table>,
}

/// The `lease` keyspace key of a lease.
pub fn lease_key(id: LeaseId) -> [u8; 8] {
    id.0.to_be_bytes()
}

/// The stored record of a lease: granted TTL and checkpointed remaining TTL in seconds (0 =
/// none), etcd's `leasepb.Lease`.
pub fn lease_record(id: LeaseId, ttl_secs: i64, remaining_secs: i64) -> Vec<u8> {
    Lease {
        id: id.0,
        ttl: ttl_secs,
        remaining_ttl: remaining_secs,
    }
    .encode_to_vec()
}

impl Lessor {
    /// Loads leases from `storage` and attaches the live keys of `store` to them.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when a record does not decode.
    pub fn load(storage: &Storage, store: &Store) -> Result<Arc<Lessor>, StorageError> {
        let lessor = Arc::new(Lessor::default());
        lessor.reload(storage, store)?;
        Ok(lessor)
    }

    /// Replaces the table with what `storage` and `store` hold (start-up, snapshot install).
    ///
    /// # Errors
    /// As [`Lessor::load`].
    pub fn reload(&self, storage: &Storage, store: &Store) -> Result<(), StorageError> {
        let mut table = Table::default();
        for item in storage.lease.iter() {
            let (_, v) = item.into_inner()?;
            let l =
                Lease::decode(v.as_ref()).map_err(|e| StorageError::Corrupt(format!("lease record: {e}")))?;
            table
                .leases
                .insert(LeaseId(l.id), Entry::new(l.ttl, l.remaining_ttl));
        }
        let all = store
            .range(&KeyRange::new(b"\0", b"\0"), RangeOptions::default())
            .map_err(|e| StorageError::Corrupt(format!("loading leased keys: {e}")))?;
        for kv in all.kvs.into_iter().filter(|kv| kv.lease != 0) {
            let id = LeaseId(kv.lease);
            if let Some(entry) = table.leases.get_mut(&id) {
                entry.keys.insert(kv.key.clone());
                table.key_lease.insert(kv.key, id);
            }
        }
        *self.lock() = table;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Apply: records a granted lease.
    pub fn grant(&self, id: LeaseId, ttl_secs: i64) {
        crate::metrics::record::lease_granted(ttl_secs);
        self.lock().leases.insert(id, Entry::new(ttl_secs, 0));
    }

    /// Apply: records a checkpointed remaining TTL in seconds (0 clears it) and returns the
    /// lease's granted TTL, or `None` for an unknown lease (etcd `lessor.Checkpoint`). The
    /// running clock is not touched: the value matters when the clock restarts.
    pub fn checkpoint(&self, id: LeaseId, remaining_secs: i64) -> Option<i64> {
        let mut t = self.lock();
        let entry = t.leases.get_mut(&id)?;
        entry.remaining_secs = remaining_secs.max(0);
        Some(entry.ttl_secs)
    }

    /// Whether the lease has a checkpointed remaining TTL, which a keep-alive must clear
    /// through raft before renewing (etcd `lessor.Renew`).
    pub fn has_checkpoint(&self, id: LeaseId) -> bool {
        self.lock().leases.get(&id).is_some_and(|e| e.remaining_secs > 0)
    }

    /// Leader: the checkpoints due at `now`, at most `max`, as (lease, remaining TTL in whole
    /// seconds rounded up). A lease whose remaining TTL exceeds `interval` gets its next
    /// checkpoint scheduled `interval` from now; leases at their full TTL are skipped (etcd
    /// `scheduleCheckpointIfNeeded`, `findDueScheduledCheckpoints`).
    pub fn take_checkpoints(&self, now: Instant, max: usize, interval: Duration) -> Vec<(LeaseId, i64)> {
        let mut t = self.lock();
        let mut out = Vec::new();
        for (id, entry) in t.leases.iter_mut() {
            let Some(deadline) = entry.deadline else {
                continue;
            };
            let left = deadline.saturating_duration_since(now);
            match entry.next_checkpoint {
                None if left > interval => entry.next_checkpoint = Some(now + interval),
                Some(due) if due <= now && out.len() < max => {
                    entry.next_checkpoint = None;
                    let remaining = i64::try_from(left.as_secs() + u64::from(left.subsec_nanos() > 0))
                        .unwrap_or(i64::MAX);
                    if remaining > 0 && remaining < entry.ttl_secs {
                        out.push((*id, remaining));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Apply: the keys a revoke must delete, in key order (`None` for an unknown lease).
    pub fn keys(&self, id: LeaseId) -> Option<Vec<Bytes>> {
        self.lock()
            .leases
            .get(&id)
            .map(|e| e.keys.iter().cloned().collect())
    }

    /// Apply: forgets a revoked lease.
    pub fn remove(&self, id: LeaseId) {
        let mut t = self.lock();
        if let Some(entry) = t.leases.remove(&id) {
            crate::metrics::record::lease_revoked();
            for k in entry.keys {
                t.key_lease.remove(&k);
            }
        }
    }

    /// Apply: follows committed changes — a put attaches its key to its lease (detaching it
    /// from the previous one), a delete detaches it.
    pub fn on_changes(&self, changes: &[Change]) {
        let mut t = self.lock();
        for c in changes {
            if let Some(old) = t.key_lease.remove(&c.kv.key)
                && let Some(entry) = t.leases.get_mut(&old)
            {
                entry.keys.remove(&c.kv.key);
            }
            if !c.tombstone && c.kv.lease != 0 {
                let id = LeaseId(c.kv.lease);
                if let Some(entry) = t.leases.get_mut(&id) {
                    entry.keys.insert(c.kv.key.clone());
                    t.key_lease.insert(c.kv.key.clone(), id);
                }
            }
        }
    }

    /// Keep-alive: restarts the lease's clock; its granted TTL, or `None` for an unknown lease.
    pub fn renew(&self, id: LeaseId, now: Instant) -> Option<i64> {
        let mut t = self.lock();
        let entry = t.leases.get_mut(&id)?;
        entry.deadline = Some(now + secs(entry.ttl_secs));
        crate::metrics::record::lease_renewed();
        Some(entry.ttl_secs)
    }

    /// LeaseTimeToLive; `None` for an unknown lease.
    pub fn time_to_live(&self, id: LeaseId, now: Instant) -> Option<TimeToLive> {
        let t = self.lock();
        let entry = t.leases.get(&id)?;
        let remaining_secs = match entry.deadline {
            None => entry.starting_secs(),
            Some(d) => i64::try_from(d.saturating_duration_since(now).as_secs()).unwrap_or(i64::MAX),
        };
        Some(TimeToLive {
            remaining_secs,
            granted_secs: entry.ttl_secs,
            keys: entry.keys.iter().cloned().collect(),
        })
    }

    /// Leader change: stops every lease clock; the expiry task restarts each from the lease's
    /// TTL (or checkpointed remaining TTL) on its next tick (etcd `lessor.Promote`/`Demote`).
    pub fn reset_clocks(&self) {
        for entry in self.lock().leases.values_mut() {
            entry.deadline = None;
            entry.next_checkpoint = None;
        }
    }

    /// Every lease ID.
    pub fn ids(&self) -> Vec<LeaseId> {
        self.lock().leases.keys().copied().collect()
    }

    /// Expiry task: starts the clock of leases not seen yet and returns up to `max` expired
    /// leases, pushing their deadline by `retry` so a revoke in flight is not proposed again.
    pub fn take_expired(&self, now: Instant, max: usize, retry: Duration) -> Vec<LeaseId> {
        let mut t = self.lock();
        let mut out = Vec::new();
        for (id, entry) in t.leases.iter_mut() {
            match entry.deadline {
                None => entry.deadline = Some(now + secs(entry.starting_secs())),
                Some(d) if d <= now && out.len() < max => {
                    entry.deadline = Some(now + retry);
                    out.push(*id);
                }
                Some(_) => {}
            }
        }
        out
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

impl LeaseLookup for Lessor {
    fn exists(&self, id: LeaseId) -> bool {
        self.lock().leases.contains_key(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::KeyValue;

    fn put(key: &str, lease: i64) -> Change {
        Change {
            kv: KeyValue {
                key: key.to_string().into(),
                lease,
                ..KeyValue::default()
            },
            tombstone: false,
        }
    }

    #[test]
    fn puts_attach_move_and_deletes_detach_keys() {
        let l = Lessor::default();
        l.grant(LeaseId(1), 10);
        l.grant(LeaseId(2), 10);
        l.on_changes(&[put("b", 1), put("a", 1)]);
        assert_eq!(
            l.keys(LeaseId(1)).unwrap(),
            vec![Bytes::from("a"), Bytes::from("b")]
        );
        l.on_changes(&[put("a", 2)]);
        assert_eq!(l.keys(LeaseId(1)).unwrap(), vec![Bytes::from("b")]);
        l.on_changes(&[Change {
            kv: KeyValue {
                key: "a".into(),
                ..KeyValue::default()
            },
            tombstone: true,
        }]);
        assert!(l.keys(LeaseId(2)).unwrap().is_empty());
        l.on_changes(&[put("b", 0)]);
        assert!(
            l.keys(LeaseId(1)).unwrap().is_empty(),
            "a put without lease detaches"
        );
    }

    #[test]
    fn expiry_starts_the_clock_first_and_renew_restarts_it() {
        let l = Lessor::default();
        l.grant(LeaseId(7), 2);
        let t0 = Instant::now();
        assert!(
            l.take_expired(t0, 10, Duration::from_secs(1)).is_empty(),
            "first sight starts the clock"
        );
        assert!(
            l.take_expired(t0 + Duration::from_secs(1), 10, Duration::from_secs(1))
                .is_empty()
        );
        assert_eq!(l.renew(LeaseId(7), t0 + Duration::from_secs(1)), Some(2));
        assert!(
            l.take_expired(t0 + Duration::from_millis(2500), 10, Duration::from_secs(1))
                .is_empty()
        );
        assert_eq!(
            l.take_expired(t0 + Duration::from_secs(3), 10, Duration::from_secs(1)),
            vec![LeaseId(7)]
        );
        assert!(
            l.take_expired(t0 + Duration::from_secs(3), 10, Duration::from_secs(1))
                .is_empty(),
            "not proposed twice"
        );
        assert_eq!(l.renew(LeaseId(8), t0), None);
    }

    /// etcd `lessor.scheduleCheckpointIfNeeded` / `findDueScheduledCheckpoints`: a lease whose
    /// remaining TTL exceeds the interval is checkpointed one interval later with its remaining
    /// TTL rounded up; a lease at its full TTL or short-lived is not.
    #[test]
    fn checkpoints_are_scheduled_one_interval_ahead_and_carry_the_remaining_ttl() {
        let l = Lessor::default();
        let iv = Duration::from_secs(10);
        l.grant(LeaseId(1), 60);
        l.grant(LeaseId(2), 5);
        let t0 = Instant::now();
        assert!(l.take_checkpoints(t0, 10, iv).is_empty(), "clock not started yet");
        l.take_expired(t0, 10, Duration::from_secs(1));
        assert!(l.take_checkpoints(t0, 10, iv).is_empty(), "scheduled, not due");
        assert!(l.take_checkpoints(t0 + Duration::from_secs(9), 10, iv).is_empty());
        assert_eq!(
            l.take_checkpoints(t0 + Duration::from_millis(10_500), 10, iv),
            vec![(LeaseId(1), 50)],
            "49.5 s left rounds up to 50; lease 2 (5 s) never scheduled"
        );
        assert!(
            l.take_checkpoints(t0 + Duration::from_millis(10_600), 10, iv)
                .is_empty(),
            "rescheduled one interval later"
        );
        assert!(!l.has_checkpoint(LeaseId(1)), "nothing applied yet");
    }

    /// etcd `Lease.RemainingTTL` / `refresh`: an applied checkpoint is where the clock restarts
    /// (restart, leader change) and what TimeToLive reports before that; clearing it (the
    /// keep-alive path) restores the full TTL.
    #[test]
    fn applied_checkpoint_sets_where_the_clock_restarts_and_zero_clears_it() {
        let l = Lessor::default();
        l.grant(LeaseId(1), 60);
        assert_eq!(l.checkpoint(LeaseId(1), 42), Some(60));
        assert_eq!(l.checkpoint(LeaseId(9), 42), None, "unknown lease");
        assert!(l.has_checkpoint(LeaseId(1)));
        let t0 = Instant::now();
        assert_eq!(l.time_to_live(LeaseId(1), t0).unwrap().remaining_secs, 42);
        l.take_expired(t0, 10, Duration::from_secs(1));
        assert_eq!(
            l.take_expired(t0 + Duration::from_secs(42), 10, Duration::from_secs(1)),
            vec![LeaseId(1)],
            "expires 42 s after the clock started, not 60"
        );
        l.checkpoint(LeaseId(1), 0);
        assert!(!l.has_checkpoint(LeaseId(1)));
        assert_eq!(l.renew(LeaseId(1), t0), Some(60));
        assert_eq!(l.time_to_live(LeaseId(1), t0).unwrap().remaining_secs, 60);
    }
}
