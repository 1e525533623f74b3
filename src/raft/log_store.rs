//! The raft log on fjall, with group commit.
//!
//! `append` writes the entries into the journal buffer and hands the flush callback to a
//! dedicated flusher thread; the flusher drains every callback queued so far, fsyncs once and
//! completes them all. So appends keep arriving while an fsync is in flight and one fsync
//! acknowledges many writes (design.md §2 "Group commit"). Callbacks complete in submission
//! order. Votes, truncations and purges are made durable before they are acknowledged.

use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};

use super::types::{Entry, LogId, TypeConfig, Vote};
use crate::config::limits::LOG_FLUSH_QUEUE_MAX;
use crate::storage::{Storage, schema};

type Flush = IOFlushed<TypeConfig>;

/// The raft log store. Cheap to clone (the reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    storage: Storage,
    flushes: SyncSender<Flush>,
}

impl LogStore {
    /// Opens the log over `storage` and starts the flusher thread.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn open(storage: Storage) -> io::Result<LogStore> {
        let durable = storage.clone();
        LogStore::open_with_sync(storage, move || durable.sync().map_err(|e| e.to_string()))
    }

    /// Opens the log with `sync` as the flusher's fsync (tests gate it to observe group commit).
    fn open_with_sync(
        storage: Storage,
        sync: impl FnMut() -> Result<(), String> + Send + 'static,
    ) -> io::Result<LogStore> {
        let (flushes, rx) = sync_channel(LOG_FLUSH_QUEUE_MAX);
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flusher(sync, &rx))?;
        Ok(LogStore { storage, flushes })
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        match self.storage.raft_meta.get(key).map_err(io::Error::other)? {
            None => Ok(None),
            Some(v) => postcard::from_bytes(&v).map(Some).map_err(|e| corrupt(key, e)),
        }
    }

    fn write_meta<T: serde::Serialize>(&self, key: &[u8], value: &T) -> io::Result<()> {
        let bytes = postcard::to_allocvec(value).map_err(io::Error::other)?;
        self.storage
            .raft_meta
            .insert(key, bytes)
            .map_err(io::Error::other)
    }

    async fn sync(&self) -> io::Result<()> {
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || storage.sync().map_err(io::Error::other))
            .await
            .map_err(io::Error::other)?
    }
}

fn corrupt(what: &[u8], e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("raft {}: {e}", String::from_utf8_lossy(what)),
    )
}

/// The group-commit loop: waits for one flush request, takes every other request queued
/// meanwhile, fsyncs once and completes them all in submission order.
fn flusher(mut sync: impl FnMut() -> Result<(), String>, rx: &Receiver<Flush>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let started = std::time::Instant::now();
        let result = sync();
        crate::metrics::with(|m| m.wal_fsync.observe(started.elapsed().as_secs_f64()));
        for callback in batch {
            callback.io_completed(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::other(e.clone())),
            });
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(index_key(i)),
            Bound::Excluded(&i) => Bound::Excluded(index_key(i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in self.storage.raft_log.range::<[u8; 8], _>((start, end)) {
            let (k, v) = item.into_inner().map_err(io::Error::other)?;
            out.push(postcard::from_bytes(&v).map_err(|e| corrupt(&k, e))?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.read_meta(schema::RAFT_META_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = self.read_meta(schema::RAFT_META_PURGED)?;
        let last = match self.storage.raft_log.last_key_value() {
            None => None,
            Some(g) => {
                let (k, v) = g.into_inner().map_err(io::Error::other)?;
                let entry: Entry = postcard::from_bytes(&v).map_err(|e| corrupt(&k, e))?;
                Some(entry.log_id)
            }
        };
        let last_log_id = last.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        self.write_meta(schema::RAFT_META_VOTE, vote)?;
        self.sync().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        // Buffered: made durable by the next log flush. A lost update only means the committed
        // index is re-learned from the log after restart.
        self.write_meta(schema::RAFT_META_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self
            .read_meta::<Option<LogId>>(schema::RAFT_META_COMMITTED)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: Flush) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = self.storage.db.batch();
        for entry in entries {
            let bytes = postcard::to_allocvec(&entry).map_err(io::Error::other)?;
            crate::metrics::record::wal_written(bytes.len());
            batch.insert(&self.storage.raft_log, index_key(entry.log_id.index), bytes);
        }
        batch.commit().map_err(io::Error::other)?;
        self.flushes
            .send(callback)
            .map_err(|_| io::Error::other("raft log flusher stopped"))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = last_log_id.map_or(0, |l| l.index + 1);
        let mut batch = self.storage.db.batch();
        for item in self.storage.raft_log.range(index_key(from)..) {
            batch.remove(&self.storage.raft_log, item.key().map_err(io::Error::other)?);
        }
        batch.commit().map_err(io::Error::other)?;
        self.sync().await
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        self.write_meta(schema::RAFT_META_PURGED, &log_id)?;
        let mut batch = self.storage.db.batch();
        for item in self.storage.raft_log.range(..=index_key(log_id.index)) {
            batch.remove(&self.storage.raft_log, item.key().map_err(io::Error::other)?);
        }
        batch.commit().map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::channel;

    use openraft::entry::RaftEntry;
    use openraft::type_config::TypeConfigExt;

    use super::*;

    fn entry(index: u64) -> Entry {
        Entry::new_blank(openraft::LogId::new_term_index(1, index))
    }

    #[tokio::test]
    async fn appends_arriving_during_an_fsync_share_the_next_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let (started_tx, started_rx) = channel::<()>();
        let (release_tx, release_rx) = channel::<()>();
        let syncs = Arc::new(AtomicUsize::new(0));
        let counted = syncs.clone();
        let mut log = LogStore::open_with_sync(storage, move || {
            let _ = started_tx.send(());
            release_rx.recv().map_err(|e| e.to_string())?;
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        let mut done = Vec::new();
        let (tx, rx) = TypeConfig::oneshot();
        log.append([entry(1)], IOFlushed::signal(tx)).await.unwrap();
        done.push(rx);
        started_rx.recv().unwrap(); // the first fsync is now in flight
        for i in 2..=11 {
            let (tx, rx) = TypeConfig::oneshot();
            // Returns at once although the previous fsync has not finished.
            log.append([entry(i)], IOFlushed::signal(tx)).await.unwrap();
            done.push(rx);
        }
        release_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
        for rx in done {
            rx.await.unwrap().unwrap();
        }
        assert_eq!(syncs.load(Ordering::SeqCst), 2, "eleven appends, two fsyncs");
        let read = log.try_get_log_entries(1..=11).await.unwrap();
        assert_eq!(read.len(), 11);
    }

    #[tokio::test]
    async fn vote_and_log_state_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = LogStore::open(Storage::open(dir.path()).unwrap()).unwrap();
            let (tx, rx) = TypeConfig::oneshot();
            log.append([entry(1), entry(2)], IOFlushed::signal(tx))
                .await
                .unwrap();
            rx.await.unwrap().unwrap();
            log.save_vote(&Vote::new(1, 7)).await.unwrap();
        }
        let mut log = LogStore::open(Storage::open(dir.path()).unwrap()).unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(1, 7)));
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|l| l.index), Some(2));
        log.truncate_after(Some(openraft::LogId::new_term_index(1, 1)))
            .await
            .unwrap();
        log.purge(openraft::LogId::new_term_index(1, 1)).await.unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(1));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(1));
        assert!(log.try_get_log_entries(0..10).await.unwrap().is_empty());
    }
}
