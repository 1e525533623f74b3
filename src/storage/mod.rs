//! The storage engine: one fjall database per member, opened with a checked format version.
//!
//! Everything durable — raft log, raft hard state, MVCC history and state-machine metadata —
//! lives in one fjall database so that a single journal orders all writes: persisting after a
//! raft append makes every earlier state-machine write durable too (design.md §2, deps.md §3.2).
//! This module knows nothing about etcd; `mvcc` and `raft` give the bytes their meaning.

pub mod schema;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::error::StorageError;

/// Handles to the member's fjall database and its keyspaces. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    /// The database (one journal for all keyspaces).
    pub db: Database,
    /// The raft log ([`schema::KEYSPACE_RAFT_LOG`]).
    pub raft_log: Keyspace,
    /// Raft hard state ([`schema::KEYSPACE_RAFT_META`]).
    pub raft_meta: Keyspace,
    /// MVCC history ([`schema::KEYSPACE_KV`]).
    pub kv: Keyspace,
    /// State-machine metadata ([`schema::KEYSPACE_META`]).
    pub meta: Keyspace,
    /// Leases ([`schema::KEYSPACE_LEASE`]).
    pub lease: Keyspace,
    path: PathBuf,
}

impl Storage {
    /// Opens (or creates) the database under `data_dir`.
    ///
    /// # Errors
    /// [`StorageError::ForeignDataDir`] when `data_dir` holds an etcd data directory,
    /// [`StorageError::FormatVersion`] when it was written by an incompatible format, and
    /// [`StorageError::Engine`] when fjall cannot open it (corrupt or locked by another process).
    pub fn open(data_dir: &Path) -> Result<Storage, StorageError> {
        if data_dir.join("member").join("wal").exists() || data_dir.join("member").join("snap").exists() {
            return Err(StorageError::ForeignDataDir(data_dir.to_path_buf()));
        }
        let path = data_dir.join(schema::DB_DIR);
        let fresh = !path.exists();
        std::fs::create_dir_all(data_dir).map_err(|e| StorageError::Io(data_dir.to_path_buf(), e))?;
        let db = Database::builder(&path)
            // We decide when the journal is fsynced: after raft appends and votes (group commit).
            .manual_journal_persist(true)
            .cache_size(crate::config::limits::STORAGE_CACHE_BYTES)
            .open()?;
        let raft_log = db.keyspace(schema::KEYSPACE_RAFT_LOG, KeyspaceCreateOptions::default)?;
        let raft_meta = db.keyspace(schema::KEYSPACE_RAFT_META, KeyspaceCreateOptions::default)?;
        let kv = db.keyspace(schema::KEYSPACE_KV, KeyspaceCreateOptions::default)?;
        let meta = db.keyspace(schema::KEYSPACE_META, KeyspaceCreateOptions::default)?;
        let lease = db.keyspace(schema::KEYSPACE_LEASE, KeyspaceCreateOptions::default)?;
        let storage = Storage {
            db,
            raft_log,
            raft_meta,
            kv,
            meta,
            lease,
            path,
        };
        storage.check_format(fresh)?;
        Ok(storage)
    }

    fn check_format(&self, fresh: bool) -> Result<(), StorageError> {
        match self.meta.get(schema::META_FORMAT_VERSION)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .unwrap_or(u32::MAX);
                if found != schema::FORMAT_VERSION {
                    return Err(StorageError::FormatVersion {
                        found,
                        expected: schema::FORMAT_VERSION,
                    });
                }
                Ok(())
            }
            None if fresh || self.is_empty()? => {
                self.meta
                    .insert(schema::META_FORMAT_VERSION, schema::FORMAT_VERSION.to_be_bytes())?;
                self.db.persist(PersistMode::SyncAll)?;
                Ok(())
            }
            None => Err(StorageError::FormatVersion {
                found: 0,
                expected: schema::FORMAT_VERSION,
            }),
        }
    }

    fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.raft_log.is_empty()? && self.kv.is_empty()? && self.meta.is_empty()?)
    }

    /// Makes every write so far durable (fdatasync of the journal).
    ///
    /// # Errors
    /// A failed persist poisons fjall; callers treat it as fatal.
    pub fn sync(&self) -> Result<(), StorageError> {
        self.db.persist(PersistMode::SyncData)?;
        Ok(())
    }

    /// The size of the state-machine data in bytes — what etcd's Status `dbSize` and the
    /// backend quota measure for its bbolt file: the on-disk tables of the `kv`, `lease` and
    /// `meta` keyspaces plus the write buffers not yet flushed. The raft log (etcd's WAL) is not
    /// counted, as etcd does not count its WAL.
    pub fn disk_bytes(&self) -> u64 {
        let tables: u64 = [&self.kv, &self.lease, &self.meta]
            .iter()
            .map(|ks| ks.disk_space())
            .sum();
        tables + self.db.write_buffer_size()
    }

    /// Where the last raft snapshot image is kept (next to the database directory).
    pub fn raft_snapshot_path(&self) -> PathBuf {
        self.path.with_file_name(schema::RAFT_SNAPSHOT_FILE)
    }

    /// Bytes all files under the database directory occupy (allocated blocks).
    pub fn footprint_bytes(&self) -> u64 {
        dir_bytes(&self.path)
    }

    /// Rewrites the tables of the state-machine keyspaces (fjall major compaction), dropping
    /// space freed by MVCC compaction; reads and writes continue meanwhile.
    ///
    /// # Errors
    /// Storage failures.
    pub fn defragment(&self) -> Result<(), StorageError> {
        for ks in [&self.kv, &self.lease, &self.meta] {
            ks.rotate_memtable_and_wait()?;
            ks.major_compact()?;
        }
        Ok(())
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a big-endian i64 meta value, `None` when absent.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when the stored value is not 8 bytes.
    pub fn meta_i64(&self, key: &[u8]) -> Result<Option<i64>, StorageError> {
        match self.meta.get(key)? {
            None => Ok(None),
            Some(v) => <[u8; 8]>::try_from(v.as_ref())
                .map(|b| Some(i64::from_be_bytes(b)))
                .map_err(|_| {
                    StorageError::Corrupt(format!(
                        "meta key {:?} is not 8 bytes",
                        String::from_utf8_lossy(key)
                    ))
                }),
        }
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            // Allocated bytes, not the apparent length: fjall pre-sizes its journal sparsely.
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.blocks() * 512),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopening_keeps_the_format_version() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        drop(Storage::open(dir.path()).unwrap_or_else(|e| panic!("{e}")));
        let s = Storage::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.meta
                .get(schema::META_FORMAT_VERSION)
                .unwrap_or_else(|e| panic!("{e}"))
                .as_deref(),
            Some(&schema::FORMAT_VERSION.to_be_bytes()[..])
        );
    }

    #[test]
    fn another_format_version_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let s = Storage::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            s.meta
                .insert(schema::META_FORMAT_VERSION, 99u32.to_be_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            s.db.persist(PersistMode::SyncAll)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        match Storage::open(dir.path()) {
            Err(StorageError::FormatVersion {
                found: 99,
                expected: schema::FORMAT_VERSION,
            }) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("format 99 was accepted"),
        }
    }

    #[test]
    fn an_etcd_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("member/wal")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            Storage::open(dir.path()),
            Err(StorageError::ForeignDataDir(_))
        ));
    }

    #[test]
    fn a_corrupt_database_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = dir.path().join(schema::DB_DIR);
        std::fs::create_dir_all(&db).unwrap_or_else(|e| panic!("{e}"));
        // Garbage where fjall keeps its version marker and journal.
        for name in ["version", "journals", "0.jnl"] {
            std::fs::write(db.join(name), b"\xffgarbage").unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(Storage::open(dir.path()).is_err());
    }
}
