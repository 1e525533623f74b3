//! The raft state machine: applies committed entries to the MVCC store through the
//! [`Applier`], writing the applied log id (and membership) in the same fjall batch as the data.
//!
//! After a crash the store is exactly at its recorded applied id, and openraft replays the log
//! from `applied + 1`; the store never claims an index whose data it lacks.

use std::io;
use std::sync::Arc;

use fjall::OwnedWriteBatch;
use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};

use super::snapshot;
use super::types::{LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};
use crate::apply::Applier;
use crate::apply::command::Response;
use crate::config::limits::APPLY_BATCH_ENTRIES_MAX;
use crate::storage::{Storage, schema};
use crate::watch::Hub;

/// The state machine handed to openraft.
pub struct StateMachine {
    storage: Storage,
    applier: Arc<Applier>,
    hub: Arc<Hub>,
    applied: Option<LogId>,
    membership: StoredMembership,
}

impl StateMachine {
    /// Loads the applied log id and membership recorded in `storage`.
    ///
    /// # Errors
    /// `InvalidData` when the recorded values do not decode.
    pub fn open(storage: Storage, applier: Arc<Applier>, hub: Arc<Hub>) -> io::Result<StateMachine> {
        let applied = read(&storage, schema::META_APPLIED)?;
        let membership = read(&storage, schema::META_MEMBERSHIP)?.unwrap_or_default();
        Ok(StateMachine {
            storage,
            applier,
            hub,
            applied,
            membership,
        })
    }

    fn meta_writer(
        &self,
        log_id: &LogId,
        membership_changed: bool,
    ) -> io::Result<impl FnOnce(&mut OwnedWriteBatch)> {
        let applied = postcard::to_allocvec(&Some(log_id)).map_err(io::Error::other)?;
        let membership = if membership_changed {
            Some(postcard::to_allocvec(&Some(&self.membership)).map_err(io::Error::other)?)
        } else {
            None
        };
        let meta = self.storage.meta.clone();
        Ok(move |batch: &mut OwnedWriteBatch| {
            batch.insert(&meta, schema::META_APPLIED, applied);
            if let Some(m) = membership {
                batch.insert(&meta, schema::META_MEMBERSHIP, m);
            }
        })
    }
}

fn read<T: serde::de::DeserializeOwned>(storage: &Storage, key: &[u8]) -> io::Result<Option<T>> {
    match storage.meta.get(key).map_err(io::Error::other)? {
        None => Ok(None),
        Some(v) => {
            postcard::from_bytes::<Option<T>>(&v).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        // Entries already available are applied as one batch: one fjall write for all of them
        // and the last applied log id. Each responder is answered as soon as its entry is
        // applied: the entry is already durable in the raft log and reads see staged changes,
        // so a client never waits for the entries behind its own (a large lease revoke) nor
        // for the batch write.
        let mut chunks = entries.ready_chunks(APPLY_BATCH_ENTRIES_MAX);
        while let Some(chunk) = chunks.next().await {
            let store = self.applier.store().clone();
            let mut batch = store.batch();
            let mut last = None;
            let mut membership_changed = false;
            for item in chunk {
                let (entry, responder) = item?;
                let log_id = entry.log_id;
                let response = match entry.payload {
                    EntryPayload::Normal(command) => crate::metrics::record::timed_apply(&command, || {
                        self.applier.set_index(log_id.index);
                        self.applier.apply(&command, &mut batch)
                    })
                    .map_err(io::Error::other)?,
                    EntryPayload::Blank => Response::default(),
                    EntryPayload::Membership(m) => {
                        self.membership = StoredMembership::new(Some(log_id), m);
                        membership_changed = true;
                        Response::default()
                    }
                };
                last = Some(log_id);
                if let Some(r) = responder {
                    r.send(response);
                }
            }
            if let Some(log_id) = last {
                let events = batch
                    .commit(self.meta_writer(&log_id, membership_changed)?)
                    .map_err(io::Error::other)?;
                self.applied = Some(log_id);
                // Watchers see a revision only once it is written (readable by their catch-up).
                self.hub.notify(events);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        // Taken on the state-machine task between apply batches, so the fjall view and the
        // applied log id describe the same point.
        SnapshotBuilder {
            storage: self.storage.clone(),
            view: self.storage.db.snapshot(),
            meta: SnapshotMeta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
            },
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> io::Result<()> {
        let bytes = snapshot.into_inner();
        let storage = self.storage.clone();
        let installed = tokio::task::spawn_blocking(move || {
            let installed = snapshot::install(&storage, &bytes)?;
            snapshot::save(&storage.raft_snapshot_path(), &bytes)?;
            Ok::<_, io::Error>(installed)
        })
        .await
        .map_err(io::Error::other)??;
        if installed.last_log_id != meta.last_log_id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "raft snapshot metadata does not match its data",
            ));
        }
        self.applier.store().reload().map_err(io::Error::other)?;
        self.applier
            .lessor()
            .reload(&self.storage, self.applier.store())
            .map_err(io::Error::other)?;
        self.applier
            .auth()
            .state()
            .reload(&self.storage)
            .map_err(io::Error::other)?;
        self.applier
            .alarms()
            .reload(&self.storage)
            .map_err(io::Error::other)?;
        self.applied = installed.last_log_id;
        self.membership = installed.last_membership;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let Some(bytes) = snapshot::load(&self.storage.raft_snapshot_path())? else {
            return Ok(None);
        };
        let (meta, _) = snapshot::decode(&bytes)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: SnapshotData::new(bytes),
        }))
    }
}

/// Builds a raft snapshot: makes the applied state durable so openraft may purge the log
/// entries it covers (etcd force-commits its backend before a snapshot for the same reason).
pub struct SnapshotBuilder {
    storage: Storage,
    view: fjall::Snapshot,
    meta: SnapshotMeta,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let storage = self.storage.clone();
        let view = self.view.clone();
        let meta = self.meta.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            storage.sync().map_err(io::Error::other)?;
            let bytes = {
                let _timer = crate::metrics::record::timer(|m| &m.snap_marshalling);
                snapshot::export(&storage, &view, &meta)?
            };
            let _timer = crate::metrics::record::timer(|m| &m.snap_save_total);
            snapshot::save(&storage.raft_snapshot_path(), &bytes)?;
            Ok::<_, io::Error>(bytes)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: SnapshotData::new(bytes),
        })
    }
}
