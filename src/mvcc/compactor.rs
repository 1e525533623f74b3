//! Physical compaction: deletes the versions a compaction dropped from the index, in paced
//! batches on a background thread, so neither reads nor writes stop (no stop-the-world step).
//! fjall's own LSM compaction then reclaims the disk space.

use std::sync::mpsc::{SyncSender, sync_channel};

use tokio::sync::watch;

use super::key_index::IndexEntry;
use crate::config::limits::{COMPACTION_BATCH_KEYS_MAX, COMPACTION_QUEUE_MAX};
use crate::error::StorageError;
use crate::storage::Storage;
use crate::types::Revision;

type Job = (Revision, Vec<IndexEntry>);

/// Handle to the background deleter.
pub struct Compactor {
    jobs: SyncSender<Job>,
    finished: watch::Receiver<Revision>,
}

impl Compactor {
    /// Starts the deleter thread.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn start(storage: Storage) -> Result<Compactor, StorageError> {
        let (jobs, rx) = sync_channel::<Job>(COMPACTION_QUEUE_MAX);
        let (done, finished) = watch::channel(Revision(0));
        std::thread::Builder::new()
            .name("mvcc-compactor".into())
            .spawn(move || {
                while let Ok((at, dropped)) = rx.recv() {
                    let started = std::time::Instant::now();
                    if let Err(e) = delete(&storage, &dropped) {
                        tracing::error!(error = %e, revision = at.0, "compaction failed to delete old versions");
                        continue;
                    }
                    tracing::info!(revision = at.0, deleted = dropped.len(), "finished scheduled compaction");
                    crate::metrics::record::db_compaction_done(dropped.len(), started);
                    done.send_replace(at);
                }
            })
            .map_err(|e| StorageError::Io("mvcc-compactor thread".into(), e))?;
        Ok(Compactor { jobs, finished })
    }

    /// Queues the deletion of `dropped` for the compaction at `at`; waits when the queue is full.
    ///
    /// # Errors
    /// When the deleter thread is gone.
    pub fn schedule(&self, at: Revision, dropped: Vec<IndexEntry>) -> Result<(), StorageError> {
        self.jobs
            .send((at, dropped))
            .map_err(|_| StorageError::Corrupt("compaction thread stopped".into()))
    }

    /// The newest compaction whose dropped versions are deleted (0 before the first one).
    pub fn finished(&self) -> Revision {
        *self.finished.borrow()
    }

    /// Resolves once the compaction at `at` (or a later one) has been physically applied.
    pub async fn wait_finished(&self, at: Revision) {
        let mut rx = self.finished.clone();
        // An error means the deleter stopped; nothing more will finish.
        let _ = rx.wait_for(|done| *done >= at).await;
    }
}

fn delete(storage: &Storage, dropped: &[IndexEntry]) -> Result<(), StorageError> {
    for chunk in dropped.chunks(COMPACTION_BATCH_KEYS_MAX) {
        let started = std::time::Instant::now();
        let mut batch = storage.db.batch();
        for e in chunk {
            batch.remove(&storage.kv, e.rev.encode(e.tombstone));
        }
        batch.commit()?;
        crate::metrics::record::db_compaction_batch(started);
    }
    Ok(())
}
