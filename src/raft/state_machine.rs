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

use super::types::{LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};
use crate::apply::Applier;
use crate::apply::command::Response;
use crate::config::limits::APPLY_BATCH_ENTRIES_MAX;
use crate::storage::{Storage, schema};

/// The state machine handed to openraft.
pub struct StateMachine {
    storage: Storage,
    applier: Arc<Applier>,
    applied: Option<LogId>,
    membership: StoredMembership,
}

impl StateMachine {
    /// Loads the applied log id and membership recorded in `storage`.
    ///
    /// # Errors
    /// `InvalidData` when the recorded values do not decode.
    pub fn open(storage: Storage, applier: Arc<Applier>) -> io::Result<StateMachine> {
        let applied = read(&storage, schema::META_APPLIED)?;
        let membership = read(&storage, schema::META_MEMBERSHIP)?.unwrap_or_default();
        Ok(StateMachine {
            storage,
            applier,
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
        // and the last applied log id, then every responder is answered.
        let mut chunks = entries.ready_chunks(APPLY_BATCH_ENTRIES_MAX);
        while let Some(chunk) = chunks.next().await {
            let store = self.applier.store().clone();
            let mut batch = store.batch();
            let mut replies = Vec::with_capacity(chunk.len());
            let mut last = None;
            let mut membership_changed = false;
            for item in chunk {
                let (entry, responder) = item?;
                let log_id = entry.log_id;
                let response = match entry.payload {
                    EntryPayload::Normal(command) => self
                        .applier
                        .apply(&command, &mut batch)
                        .map_err(io::Error::other)?,
                    EntryPayload::Blank => Response::default(),
                    EntryPayload::Membership(m) => {
                        self.membership = StoredMembership::new(Some(log_id), m);
                        membership_changed = true;
                        Response::default()
                    }
                };
                last = Some(log_id);
                replies.push((responder, response));
            }
            if let Some(log_id) = last {
                batch
                    .commit(self.meta_writer(&log_id, membership_changed)?)
                    .map_err(io::Error::other)?;
                self.applied = Some(log_id);
            }
            for (responder, response) in replies {
                if let Some(r) = responder {
                    r.send(response);
                }
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            storage: self.storage.clone(),
            meta: SnapshotMeta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
            },
        }
    }

    async fn install_snapshot(&mut self, _meta: &SnapshotMeta, _snapshot: SnapshotData) -> io::Result<()> {
        // A single voter never receives a snapshot; streaming the store to another member
        // arrives with clustering. Refusing is safe: openraft stops rather than diverging.
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "installing a raft snapshot from another member is not supported yet",
        ))
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        // None makes openraft rebuild one through `build_snapshot` when it needs it.
        Ok(None)
    }
}

/// Builds a raft snapshot: makes the applied state durable so openraft may purge the log
/// entries it covers (etcd force-commits its backend before a snapshot for the same reason).
pub struct SnapshotBuilder {
    storage: Storage,
    meta: SnapshotMeta,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || storage.sync().map_err(io::Error::other))
            .await
            .map_err(io::Error::other)??;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: SnapshotData::default(),
        })
    }
}
