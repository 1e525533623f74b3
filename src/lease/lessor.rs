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
    keys: BTreeSet<Bytes>,
    /// Local deadline; `None` until the expiry task or a keep-alive starts the clock.
    deadline: Option<Instant>,
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

/// The stored record of a lease.
pub fn lease_record(id: LeaseId, ttl_secs: i64) -> Vec<u8> {
    Lease {
        id: id.0,
        ttl: ttl_secs,
        remaining_ttl: 0,
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
            table.leases.insert(
                LeaseId(l.id),
                Entry {
                    ttl_secs: l.ttl,
                    keys: BTreeSet::new(),
                    deadline: None,
                },
            );
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
        self.lock().leases.insert(
            id,
            Entry {
                ttl_secs,
                keys: BTreeSet::new(),
                deadline: None,
            },
        );
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
            None => entry.ttl_secs,
            Some(d) => i64::try_from(d.saturating_duration_since(now).as_secs()).unwrap_or(i64::MAX),
        };
        Some(TimeToLive {
            remaining_secs,
            granted_secs: entry.ttl_secs,
            keys: entry.keys.iter().cloned().collect(),
        })
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
                None => entry.deadline = Some(now + secs(entry.ttl_secs)),
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
}
