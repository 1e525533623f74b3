//! The MVCC store: reads at any uncompacted revision, and write transactions that commit data
//! plus caller-supplied metadata (the applied log id) in one atomic fjall batch.
//!
//! Only the apply path writes (one `WriteTxn` at a time); reads run concurrently from API tasks.
//! Lock order: `state` is taken alone and never held across fjall I/O on the write side except
//! for the in-memory index update after the batch is committed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use fjall::OwnedWriteBatch;
use prost::Message;

use super::compactor::Compactor;
use super::key_index::{IndexEntry, KeyIndex};
use super::key_range::KeyRange;
use super::revision::RevisionKey;
use crate::error::{Error, StorageError};
use crate::proto::mvccpb::KeyValue;
use crate::storage::{Storage, schema};
use crate::types::{LeaseId, Revision};

/// The compaction revision of a store never compacted (etcd initialises `compactMainRev` to -1,
/// so `Compact(0)` and `Compact(1)` succeed on a fresh store).
pub const NEVER_COMPACTED: Revision = Revision(-1);

/// What a read asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeOptions {
    /// At most this many key-values (0 = all). `count` is not affected.
    pub limit: usize,
    /// The revision to read at; ≤ 0 means the latest.
    pub revision: i64,
    /// Return only the count, no key-values.
    pub count_only: bool,
}

/// What a read returns.
#[derive(Debug, Clone, Default)]
pub struct RangeResult {
    /// Live key-values in ascending key order, at most `limit`.
    pub kvs: Vec<KeyValue>,
    /// Number of live keys in the range at the read revision, ignoring `limit`.
    pub count: i64,
    /// The store (or transaction view) revision the read was served at — etcd reports this,
    /// not the requested revision, in response headers.
    pub revision: Revision,
}

/// One change made by a write transaction, in execution order (its index is the sub-revision).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The new key-value; for a deletion only `key` and `mod_revision` are set.
    pub kv: KeyValue,
    /// Whether the change deleted the key.
    pub tombstone: bool,
}

/// The changes of one revision, in sub-revision order: what watchers receive.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionEvents {
    /// The store revision.
    pub revision: Revision,
    /// Its changes (a PUT carries the full KeyValue, a DELETE only key and mod_revision).
    pub changes: Vec<Change>,
}

struct State {
    index: KeyIndex,
    current: Revision,
    compacted: Revision,
}

/// The MVCC key-value store. Cheap to share behind an `Arc`.
pub struct Store {
    storage: Storage,
    state: RwLock<State>,
    /// Values staged by the apply path but not yet written to fjall, by revision key.
    staged: RwLock<HashMap<RevisionKey, KeyValue>>,
    /// The newest revision whose batch is written to fjall (watch catch-up reads up to here).
    committed: AtomicI64,
    compactor: Compactor,
}

impl Store {
    /// Opens the store, rebuilding the key index by scanning the `kv` keyspace (as etcd rebuilds
    /// its `treeIndex`) and resuming any compaction the previous run did not finish.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when a stored revision key or value does not decode.
    pub fn open(storage: Storage) -> Result<Arc<Store>, StorageError> {
        let compactor = Compactor::start(storage.clone())?;
        let (state, dropped) = load(&storage)?;
        if let Some((at, dropped)) = dropped {
            compactor.schedule(at, dropped)?;
        }
        let committed = AtomicI64::new(state.current.0);
        Ok(Arc::new(Store {
            storage,
            state: RwLock::new(state),
            staged: RwLock::new(HashMap::new()),
            committed,
            compactor,
        }))
    }

    /// Rebuilds the in-memory state from disk after the data was replaced underneath (a raft
    /// snapshot was installed). Only the apply path calls this, between batches.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn reload(&self) -> Result<(), StorageError> {
        let (state, dropped) = load(&self.storage)?;
        self.committed.store(state.current.0, Ordering::SeqCst);
        *self.write_state() = state;
        self.write_staged().clear();
        if let Some((at, dropped)) = dropped {
            self.compactor.schedule(at, dropped)?;
        }
        Ok(())
    }

    /// The current store revision.
    pub fn current_revision(&self) -> Revision {
        self.read_state().current
    }

    /// The newest revision written to fjall; watchers replay history up to it and receive
    /// later revisions live.
    pub fn committed_revision(&self) -> Revision {
        Revision(self.committed.load(Ordering::SeqCst))
    }

    /// Reads the changes of revisions `from..=to` in revision order, at most `max_revisions`
    /// revisions (watch catch-up, etcd `watchableStore.syncWatchers`).
    ///
    /// # Errors
    /// [`Error::Compacted`] when `from` is below the compaction revision.
    pub fn history(
        &self,
        from: Revision,
        to: Revision,
        max_revisions: usize,
    ) -> Result<Vec<RevisionEvents>, Error> {
        if from < self.compact_revision() {
            return Err(Error::Compacted);
        }
        let mut out: Vec<RevisionEvents> = Vec::new();
        if from > to {
            return Ok(out);
        }
        let range = RevisionKey::lower_bound(from)..RevisionKey::lower_bound(to.next());
        for item in self.storage.kv.range(range) {
            let (k, v) = item.into_inner().map_err(internal)?;
            let Some((rev, tombstone)) = RevisionKey::decode(&k) else {
                return Err(Error::Internal(format!("corrupt revision key {k:?}")));
            };
            let kv = KeyValue::decode(v.as_ref())
                .map_err(|e| Error::Internal(format!("corrupt revision {}: {e}", rev.main)))?;
            let kv = if tombstone {
                KeyValue {
                    key: kv.key,
                    mod_revision: rev.main,
                    ..KeyValue::default()
                }
            } else {
                kv
            };
            match out.last_mut() {
                Some(last) if last.revision.0 == rev.main => last.changes.push(Change { kv, tombstone }),
                _ => {
                    if out.len() == max_revisions {
                        break;
                    }
                    out.push(RevisionEvents {
                        revision: Revision(rev.main),
                        changes: vec![Change { kv, tombstone }],
                    });
                }
            }
        }
        // A compaction that ran while reading may have removed part of the range.
        if from < self.compact_revision() {
            return Err(Error::Compacted);
        }
        Ok(out)
    }

    /// etcd's HashKV: a CRC-32C over the key space as of `rev` (0 = current) that does not
    /// depend on when old versions were physically deleted — the live versions at the
    /// compaction revision, then every change after it up to `rev`. Returns (hash, compaction
    /// revision, hashed revision).
    ///
    /// # Errors
    /// `Compacted` / `FutureRevision` for `rev` outside the retained history.
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, Revision, Revision), Error> {
        let (current, compacted) = {
            let s = self.read_state();
            (s.current, s.compacted)
        };
        let at = check_read_revision(rev, current, compacted)?;
        let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
        let mut digest = crc.digest();
        if compacted.0 > 0 {
            let base = self.range(
                &KeyRange::new(b"\0", b"\0"),
                RangeOptions {
                    revision: compacted.0,
                    ..RangeOptions::default()
                },
            )?;
            for kv in base.kvs {
                digest.update(
                    &RevisionKey {
                        main: kv.mod_revision,
                        sub: 0,
                    }
                    .encode(false),
                );
                digest.update(&kv.encode_to_vec());
            }
        }
        let mut from = Revision(compacted.0.max(0)).next();
        loop {
            let chunk = self.history(from, at, 1000)?;
            let Some(last) = chunk.last().map(|r| r.revision) else {
                break;
            };
            for rev in &chunk {
                for (sub, c) in rev.changes.iter().enumerate() {
                    digest.update(&RevisionKey::new(rev.revision, sub as i64).encode(c.tombstone));
                    digest.update(&c.kv.encode_to_vec());
                }
            }
            from = last.next();
        }
        Ok((digest.finalize(), compacted, at))
    }

    /// The revision of the last compaction ([`NEVER_COMPACTED`] when never compacted).
    pub fn compact_revision(&self) -> Revision {
        self.read_state().compacted
    }

    /// Number of keys the index tracks (live or deleted but not yet compacted).
    pub fn indexed_keys(&self) -> usize {
        self.read_state().index.len()
    }

    /// Reads `range` (etcd `storeTxnRead.Range`).
    ///
    /// # Errors
    /// [`Error::FutureRevision`] when `opts.revision` > current, [`Error::Compacted`] when it is
    /// below the compaction revision (reading exactly at it is allowed).
    pub fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, Error> {
        let _read = crate::metrics::record::open_read();
        let (found, count, revision) = {
            let state = self.read_state();
            let at = check_read_revision(opts.revision, state.current, state.compacted)?;
            let (found, count) = collect(&state.index, range, at, opts);
            (found, count, state.current)
        };
        let kvs = found
            .into_iter()
            .map(|rev| self.read_value(rev))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RangeResult { kvs, count, revision })
    }

    /// Starts a write transaction over the current revision. Only the apply path calls this,
    /// one transaction at a time.
    pub fn write(&self) -> WriteTxn<'_> {
        WriteTxn {
            store: self,
            begin: self.current_revision(),
            changes: Vec::new(),
            pending: BTreeMap::new(),
            compact: None,
        }
    }

    /// A consistent read view at the current revision for executing read-only requests with
    /// the same code as writes (etcd reads through a `TxnRead`). It is a transaction that is
    /// never committed; dropping it changes nothing.
    pub fn view(&self) -> WriteTxn<'_> {
        self.write()
    }

    /// The newest compaction whose dropped versions are physically deleted (0 before the
    /// first); a fjall view taken afterwards holds no version that compaction dropped.
    pub fn compaction_deleted(&self) -> Revision {
        self.compactor.finished()
    }

    /// Waits until old versions dropped by the compaction at `at` are physically deleted
    /// (etcd's `physical=true`).
    pub async fn wait_compacted(&self, at: Revision) {
        self.compactor.wait_finished(at).await;
    }

    fn read_value(&self, rev: RevisionKey) -> Result<KeyValue, Error> {
        if let Some(kv) = self
            .staged
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&rev)
        {
            return Ok(kv.clone());
        }
        // The version may have been deleted by a compaction that ran after the index lookup:
        // answer as etcd does for a read below the compaction revision.
        let bytes = self
            .storage
            .kv
            .get(rev.encode(false))
            .map_err(internal)?
            .ok_or(Error::Compacted)?;
        KeyValue::decode(bytes.as_ref())
            .map_err(|e| Error::Internal(format!("corrupt revision {}: {e}", rev.main)))
    }

    /// Starts an apply batch.
    pub fn batch(&self) -> ApplyBatch<'_> {
        ApplyBatch {
            store: self,
            batch: self.storage.db.batch(),
            staged: Vec::new(),
            revision: None,
            compactions: Vec::new(),
            events: Vec::new(),
        }
    }

    fn write_staged(&self) -> RwLockWriteGuard<'_, HashMap<RevisionKey, KeyValue>> {
        self.staged
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Scans the `kv` keyspace into a fresh index and resumes the recorded compaction; returns the
/// state and the versions that compaction still has to delete.
fn load(storage: &Storage) -> Result<(State, Option<(Revision, Dropped)>), StorageError> {
    let mut index = KeyIndex::default();
    let mut newest = 0i64;
    for item in storage.kv.iter() {
        let (k, v) = item.into_inner()?;
        let (rev, tombstone) = RevisionKey::decode(&k)
            .ok_or_else(|| StorageError::Corrupt(format!("bad revision key {k:?}")))?;
        let kv = KeyValue::decode(v.as_ref())
            .map_err(|e| StorageError::Corrupt(format!("revision {}: {e}", rev.main)))?;
        index.insert(kv.key, rev, tombstone);
        newest = newest.max(rev.main);
    }
    let compacted = Revision(
        storage
            .meta_i64(schema::META_COMPACT_REVISION)?
            .unwrap_or(NEVER_COMPACTED.0),
    );
    let recorded = storage.meta_i64(schema::META_REVISION)?.unwrap_or(0);
    let current = Revision(newest.max(recorded).max(compacted.0).max(Revision::INITIAL.0));
    let dropped = (compacted.0 > 0).then(|| (compacted, index.compact(compacted)));
    Ok((
        State {
            index,
            current,
            compacted,
        },
        dropped,
    ))
}

fn check_read_revision(requested: i64, current: Revision, compacted: Revision) -> Result<Revision, Error> {
    if requested > current.0 {
        return Err(Error::FutureRevision);
    }
    let at = if requested <= 0 {
        current
    } else {
        Revision(requested)
    };
    if at < compacted {
        return Err(Error::Compacted);
    }
    Ok(at)
}

fn collect(index: &KeyIndex, range: &KeyRange, at: Revision, opts: RangeOptions) -> (Vec<RevisionKey>, i64) {
    let mut found = Vec::new();
    let mut count = 0i64;
    index.visit(range, at, |_, rev| {
        count += 1;
        if !opts.count_only && (opts.limit == 0 || found.len() < opts.limit) {
            found.push(rev);
        }
        true
    });
    (found, count)
}

fn internal(e: fjall::Error) -> Error {
    Error::Internal(format!("storage: {e}"))
}

/// A write transaction (etcd `storeTxnWrite`): every change gets revision `begin + 1` and the
/// next sub-revision; reads inside it see its own earlier writes.
pub struct WriteTxn<'s> {
    store: &'s Store,
    begin: Revision,
    changes: Vec<Change>,
    pending: BTreeMap<Bytes, Option<KeyValue>>,
    compact: Option<Revision>,
}

/// The outcome of a committed write transaction.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The store revision after the transaction.
    pub revision: Revision,
    /// The changes, in sub-revision order (watch events).
    pub changes: Vec<Change>,
}

impl WriteTxn<'_> {
    /// The revision the transaction started at.
    pub fn begin_revision(&self) -> Revision {
        self.begin
    }

    /// The revision reads inside the transaction see: `begin + 1` once something changed.
    pub fn view_revision(&self) -> Revision {
        if self.changes.is_empty() {
            self.begin
        } else {
            self.begin.next()
        }
    }

    /// The store's compaction revision.
    pub fn compact_revision(&self) -> Revision {
        self.store.compact_revision()
    }

    /// Whether the transaction changed anything yet.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Reads inside the transaction (etcd `storeTxnWrite.Range`).
    ///
    /// # Errors
    /// As [`Store::range`], against the view revision.
    pub fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, Error> {
        let view = self.view_revision();
        let compacted = self.store.compact_revision();
        let at = check_read_revision(opts.revision, view, compacted)?;
        if self.pending.is_empty() || at < view {
            let mut r = self.store.range(
                range,
                RangeOptions {
                    revision: at.0,
                    ..opts
                },
            )?;
            r.revision = view;
            return Ok(r);
        }
        let base = self.store.range(
            range,
            RangeOptions {
                revision: self.begin.0,
                limit: 0,
                count_only: false,
            },
        )?;
        let mut merged: BTreeMap<Bytes, KeyValue> =
            base.kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        for (key, change) in &self.pending {
            if !range.contains(key) {
                continue;
            }
            match change {
                Some(kv) => merged.insert(key.clone(), kv.clone()),
                None => merged.remove(key),
            };
        }
        let count = i64::try_from(merged.len()).unwrap_or(i64::MAX);
        let kvs = if opts.count_only {
            Vec::new()
        } else if opts.limit > 0 {
            merged.into_values().take(opts.limit).collect()
        } else {
            merged.into_values().collect()
        };
        Ok(RangeResult {
            kvs,
            count,
            revision: view,
        })
    }

    /// The live value of one key as the transaction sees it.
    ///
    /// # Errors
    /// Storage failures only.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, Error> {
        if let Some(p) = self.pending.get(key) {
            return Ok(p.clone());
        }
        let r = self.store.range(
            &KeyRange::Single(key.to_vec()),
            RangeOptions {
                revision: self.begin.0,
                ..RangeOptions::default()
            },
        )?;
        Ok(r.kvs.into_iter().next())
    }

    /// Puts `key` (etcd `storeTxnWrite.put`): keeps `create_revision` and increments `version`
    /// of a live key, starts a new generation otherwise. Returns the transaction's revision.
    ///
    /// # Errors
    /// Storage failures only.
    pub fn put(&mut self, key: Bytes, value: Bytes, lease: LeaseId) -> Result<Revision, Error> {
        let rev = self.begin.next();
        let (create_revision, version) = match self.get(&key)? {
            Some(prev) => (prev.create_revision, prev.version + 1),
            None => (rev.0, 1),
        };
        let kv = KeyValue {
            key: key.clone(),
            value,
            create_revision,
            mod_revision: rev.0,
            version,
            lease: lease.0,
        };
        self.changes.push(Change {
            kv: kv.clone(),
            tombstone: false,
        });
        self.pending.insert(key, Some(kv));
        Ok(rev)
    }

    /// Deletes every live key of `range`; returns how many and the revision to report
    /// (etcd: `begin + 1` if anything changed in the transaction so far, else `begin`).
    ///
    /// # Errors
    /// Storage failures only.
    pub fn delete_range(&mut self, range: &KeyRange) -> Result<(i64, Revision), Error> {
        let live = self.range(
            range,
            RangeOptions {
                revision: 0,
                limit: 0,
                count_only: false,
            },
        )?;
        let rev = self.begin.next();
        for kv in &live.kvs {
            let tomb = KeyValue {
                key: kv.key.clone(),
                mod_revision: rev.0,
                ..KeyValue::default()
            };
            self.changes.push(Change {
                kv: tomb,
                tombstone: true,
            });
            self.pending.insert(kv.key.clone(), None);
        }
        let deleted = i64::try_from(live.kvs.len()).unwrap_or(i64::MAX);
        Ok((deleted, self.view_revision()))
    }

    /// Schedules a compaction at `at` (etcd `store.Compact`), applied when the transaction
    /// commits.
    ///
    /// # Errors
    /// [`Error::Compacted`] when `at` ≤ the last compaction, [`Error::FutureRevision`] when
    /// `at` > current.
    pub fn compact(&mut self, at: Revision) -> Result<(), Error> {
        let (current, compacted) = {
            let s = self.store.read_state();
            (s.current, s.compacted)
        };
        if at <= compacted {
            return Err(Error::Compacted);
        }
        if at > current {
            return Err(Error::FutureRevision);
        }
        self.compact = Some(at);
        Ok(())
    }

    /// Commits the changes and `meta` (the caller's applied-index bookkeeping) in one atomic
    /// batch, then publishes them to readers. Nothing is fsynced here: the raft log is the
    /// durability point and the next log flush persists this batch too.
    ///
    /// # Errors
    /// Storage failures, which are fatal for the member.
    pub fn commit(self, meta: impl FnOnce(&mut OwnedWriteBatch)) -> Result<Committed, StorageError> {
        let mut batch = self.store.batch();
        let committed = self.stage(&mut batch);
        batch.commit(meta)?;
        Ok(committed)
    }

    /// Stages the changes into `batch`: they are visible to readers at once (their values are
    /// served from the staging map until the batch is written), and become part of the store's
    /// on-disk state atomically when the batch commits.
    pub fn stage(self, batch: &mut ApplyBatch<'_>) -> Committed {
        let store = self.store;
        let revision = self.view_revision();
        {
            let mut staged = store.write_staged();
            for (sub, change) in self.changes.iter().enumerate() {
                let rev = RevisionKey::new(revision, sub as i64);
                batch.batch.insert(
                    &store.storage.kv,
                    rev.encode(change.tombstone),
                    change.kv.encode_to_vec(),
                );
                staged.insert(rev, change.kv.clone());
                batch.staged.push(rev);
            }
        }
        let mut state = store.write_state();
        for (sub, change) in self.changes.iter().enumerate() {
            state.index.insert(
                change.kv.key.clone(),
                RevisionKey::new(revision, sub as i64),
                change.tombstone,
            );
        }
        if !self.changes.is_empty() {
            state.current = revision;
            batch.revision = Some(revision);
            batch.events.push(RevisionEvents {
                revision,
                changes: self.changes.clone(),
            });
        }
        if let Some(at) = self.compact {
            state.compacted = at;
            batch.compactions.push((
                at,
                crate::metrics::record::index_compaction(|| state.index.compact(at)),
            ));
        }
        Committed {
            revision,
            changes: self.changes,
        }
    }
}

/// Several write transactions written to fjall as one atomic batch (the apply path stages every
/// entry of one apply call, then commits once together with the applied log id).
pub struct ApplyBatch<'s> {
    store: &'s Store,
    batch: OwnedWriteBatch,
    staged: Vec<RevisionKey>,
    revision: Option<Revision>,
    compactions: Vec<(Revision, Dropped)>,
    events: Vec<RevisionEvents>,
}

impl ApplyBatch<'_> {
    /// Writes a lease record in the same batch (the lease table is part of the state machine).
    pub fn put_lease(&mut self, key: [u8; 8], record: Vec<u8>) {
        self.batch.insert(&self.store.storage.lease, key, record);
    }

    /// Writes a state-machine meta value (e.g. the alarm table) in the same batch.
    pub fn put_meta(&mut self, key: &[u8], value: Vec<u8>) {
        self.batch.insert(&self.store.storage.meta, key, value);
    }

    /// Removes a lease record in the same batch.
    pub fn remove_lease(&mut self, key: [u8; 8]) {
        self.batch.remove(&self.store.storage.lease, key);
    }

    /// Writes everything staged, the store's revision bookkeeping and `meta` (the caller's
    /// applied log id) in one atomic fjall batch, then hands dropped versions to the
    /// compactor. Nothing is fsynced here: the raft log is the durability point and the next
    /// log flush persists this batch too.
    ///
    /// # Errors
    /// Storage failures, which are fatal for the member.
    pub fn commit(
        mut self,
        meta: impl FnOnce(&mut OwnedWriteBatch),
    ) -> Result<Vec<RevisionEvents>, StorageError> {
        let store = self.store;
        if let Some(revision) = self.revision {
            self.batch.insert(
                &store.storage.meta,
                schema::META_REVISION,
                revision.0.to_be_bytes(),
            );
        }
        if let Some((at, _)) = self.compactions.last() {
            self.batch.insert(
                &store.storage.meta,
                schema::META_COMPACT_REVISION,
                at.0.to_be_bytes(),
            );
        }
        meta(&mut self.batch);
        let started = std::time::Instant::now();
        self.batch.commit()?;
        crate::metrics::with(|m| m.backend_commit.observe(started.elapsed().as_secs_f64()));
        {
            let mut staged = store.write_staged();
            for rev in &self.staged {
                staged.remove(rev);
            }
        }
        if let Some(revision) = self.revision {
            store.committed.store(revision.0, Ordering::SeqCst);
        }
        // Only now: the compactor must never delete a version before the batch that wrote it.
        for (at, dropped) in self.compactions {
            store.compactor.schedule(at, dropped)?;
        }
        Ok(self.events)
    }
}

/// The stored versions a compaction dropped.
pub type Dropped = Vec<IndexEntry>;

#[cfg(test)]
#[path = "store_test.rs"]
mod tests;
