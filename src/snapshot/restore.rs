//! `mainstayctl snapshot restore`: builds a Mainstay data directory from an etcd snapshot file —
//! one saved by `etcdctl snapshot save` from Mainstay or from the real etcd 3.4–3.6 (the way in
//! from etcd), or an etcd member's raw `member/snap/db` (with `--skip-hash-check`) — with
//! etcdutl's flags, checks and error texts (etcd 3.5 `etcdutl/snapshot/v3_snapshot.go`
//! `Restore`, `etcdutl/etcdutl/snapshot_command.go`; etcd-compat.md §8.1).
//!
//! What is carried over, bucket by bucket (§8.5):
//! * `key` is copied as is: our `kv` keyspace uses etcd's revision keys and `mvccpb.KeyValue`
//!   values, so every key keeps its create/mod revision, version and lease.
//! * `lease` is copied as is (same `leasepb.Lease` records); the keys' lease attachments come
//!   from their `KeyValue.lease` when the member loads.
//! * `meta`: `scheduledCompactRev` (else `finishedCompactRev`) becomes the compaction revision;
//!   the current revision is the newest in `key`, at least the compaction revision (etcd
//!   `mvcc.store.restore`). `consistent_index`, `term` and `confState` describe the old
//!   cluster's raft log and are dropped: the restored member starts a new log.
//! * `alarm` becomes the alarm table (etcd keeps alarms across a restore, too).
//! * `members`, `members_removed`, `cluster` are dropped; membership is rebuilt from the flags
//!   (etcd `TrimMembershipFromBackend`), member and cluster IDs derived as etcd derives them.
//! * `auth`: Mainstay does not implement etcd auth yet, so a snapshot with auth **enabled** is
//!   refused (serving it without auth would open it to everyone); users and roles of a
//!   snapshot with auth disabled are reported as not carried over.
//!
//! How the directory presents itself to `mainstay`: the state-machine keyspaces hold the data,
//! the meta keyspace holds the member ID, cluster ID and the bootstrap members, and there is no
//! raft state at all (no log, vote or applied id). The member therefore starts like a brand-new
//! member whose identity is already recorded: raft bootstraps with the recorded members
//! (identical on every member restored with the same `--initial-cluster`), and the data sits
//! below the first log entry. This matches etcd, where a restored member ignores
//! `--initial-cluster` at start because its new WAL already names the members.
//!
//! Nothing is left behind on failure: the file is checked (trailer, bbolt structure, auth)
//! before the directory is touched, and a directory this run created or filled is removed if
//! the conversion fails part-way.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use fjall::PersistMode;
use prost::Message;
use sha2::{Digest, Sha256};

use super::etcd_image::{bucket, meta_key};
use crate::bbolt::{BboltError, BucketRoot, PageSource, Reader};
use crate::cluster::bootstrap::Bootstrap;
use crate::config::duration::go_quote;
use crate::config::limits::{RESTORE_BATCH_BYTES, RESTORE_HASH_READ_BYTES};
use crate::error::StorageError;
use crate::mvcc::RevisionKey;
use crate::mvcc::store::NEVER_COMPACTED;
use crate::proto::etcdserverpb::{AlarmMember, AlarmResponse};
use crate::proto::mainstaypb::Lease;
use crate::proto::mvccpb::KeyValue;
use crate::storage::{Storage, schema};
use crate::types::Revision;

/// Bytes of the SHA-256 trailer `etcdctl snapshot save` appends.
pub const TRAILER_BYTES: u64 = 32;
/// A file carries a trailer when its size modulo this is [`TRAILER_BYTES`] (bbolt files are
/// whole pages; etcd `hasChecksum`).
const SECTOR_BYTES: u64 = 512;

/// etcd's `auth` bucket key for the auth switch (1 byte: 1 = enabled).
const AUTH_ENABLED: &[u8] = b"authEnabled";

/// How to restore (etcdutl's flags).
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// `--data-dir`: must not exist or be empty.
    pub data_dir: PathBuf,
    /// The identity derived from `--name`, `--initial-cluster`, `--initial-cluster-token`,
    /// `--initial-advertise-peer-urls`.
    pub bootstrap: Bootstrap,
    /// `--skip-hash-check`: accept a file without (or with a wrong) SHA-256 trailer.
    pub skip_hash_check: bool,
    /// `--bump-revision`: revisions added to the newest one (0 = none).
    pub bump_revision: u64,
    /// `--mark-compacted`: the bumped revision becomes the compaction revision.
    pub mark_compacted: bool,
}

/// What a restore wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// The store revision the member starts at.
    pub revision: Revision,
    /// The compaction revision ([`NEVER_COMPACTED`] when none).
    pub compact_revision: Revision,
    /// Entries written to the MVCC history (the bump marker included).
    pub key_entries: u64,
    /// Leases written.
    pub leases: u64,
    /// Active alarms carried over.
    pub alarms: usize,
    /// Users in the snapshot that were not carried over (auth disabled, not implemented).
    pub dropped_users: u64,
    /// Roles in the snapshot that were not carried over.
    pub dropped_roles: u64,
}

/// Why a restore failed. Texts of the etcdutl checks are etcd's.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// `--bump-revision` and `--mark-compacted` must be given together (etcdutl's text, which
    /// names the flag `--revision-bump`).
    #[error("--mark-compacted required if --revision-bump > 0")]
    BumpNeedsMarkCompacted,
    /// The target directory exists and is not empty (Go-quoted path).
    #[error("data-dir {0} not empty or could not be read")]
    DataDirNotEmpty(String),
    /// The file has no SHA-256 trailer and `--skip-hash-check` was not given.
    #[error("snapshot missing hash but --skip-hash-check=false")]
    MissingHash,
    /// The trailer does not match the contents (Go's `%v` of both byte slices).
    #[error("expected sha256 {expected}, got {actual}")]
    HashMismatch {
        /// The trailer.
        expected: String,
        /// The SHA-256 of the contents.
        actual: String,
    },
    /// The snapshot file cannot be opened or read.
    #[error("open {0}: {1}")]
    Open(String, std::io::Error),
    /// The file is not a valid bbolt database.
    #[error(transparent)]
    Bbolt(#[from] BboltError),
    /// A record in the snapshot does not decode as etcd's encoding.
    #[error("snapshot holds corrupt data: {0}")]
    Corrupt(String),
    /// The snapshot has auth enabled, which Mainstay does not implement yet.
    #[error(
        "the snapshot has etcd auth enabled; Mainstay does not implement etcd auth yet and will not serve \
         this data without it (disable auth on the source cluster with `etcdctl auth disable` and take a \
         new snapshot)"
    )]
    AuthEnabled,
    /// `--bump-revision` would overflow the revision.
    #[error("--bump-revision {0} overflows the latest revision {1}")]
    BumpOverflow(u64, i64),
    /// Writing the data directory failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Creating or cleaning the data directory failed.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

impl From<fjall::Error> for RestoreError {
    fn from(e: fjall::Error) -> Self {
        RestoreError::Storage(StorageError::Engine(e))
    }
}

/// Restores `snapshot` into `opts.data_dir`.
///
/// # Errors
/// Any [`RestoreError`]; the data directory is then as it was before (absent or empty).
pub fn restore(snapshot: &Path, opts: &RestoreOptions) -> Result<Restored, RestoreError> {
    if (opts.bump_revision > 0) != opts.mark_compacted {
        return Err(RestoreError::BumpNeedsMarkCompacted);
    }
    let existed = check_data_dir(&opts.data_dir)?;
    let open_err = |e| RestoreError::Open(snapshot.display().to_string(), e);
    let file = File::open(snapshot).map_err(open_err)?;
    verify_trailer(&file, opts.skip_hash_check).map_err(|e| match e {
        TrailerError::Io(e) => open_err(e),
        TrailerError::Restore(e) => e,
    })?;
    let reader = Reader::open(file)?;
    reader.check()?;
    // Refusals that need no writing come before the directory is touched.
    preflight(&reader)?;
    if !existed {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DATA_DIR_MODE)
            .create(&opts.data_dir)
            .map_err(|e| RestoreError::Io(opts.data_dir.clone(), e))?;
    }
    let result = Storage::open(&opts.data_dir)
        .map_err(RestoreError::from)
        .and_then(|storage| {
            let restored = convert(&reader, &storage, opts.bump_revision, opts.mark_compacted)?;
            opts.bootstrap.record(&storage)?;
            storage.db.persist(PersistMode::SyncAll)?;
            Ok(restored)
        });
    if result.is_err() {
        clean_up(&opts.data_dir, existed);
    }
    result
}

/// Permissions of a data directory created by restore (etcd `fileutil.PrivateDirMode`).
const DATA_DIR_MODE: u32 = 0o700;

/// Whether `dir` exists (then it is empty); etcd refuses a non-empty target.
fn check_data_dir(dir: &Path) -> Result<bool, RestoreError> {
    let not_empty = || RestoreError::DataDirNotEmpty(go_quote(&dir.display().to_string()));
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(true),
            Some(_) => Err(not_empty()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(_) => Err(not_empty()),
    }
}

/// Removes what a failed restore wrote: the directory if it created it, else its contents.
fn clean_up(dir: &Path, existed: bool) {
    let removed = if existed {
        std::fs::read_dir(dir).and_then(|entries| {
            entries.flatten().try_for_each(|e| {
                if e.file_type()?.is_dir() {
                    std::fs::remove_dir_all(e.path())
                } else {
                    std::fs::remove_file(e.path())
                }
            })
        })
    } else {
        std::fs::remove_dir_all(dir)
    };
    if let Err(e) = removed {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a partially restored data directory");
    }
}

enum TrailerError {
    Io(std::io::Error),
    Restore(RestoreError),
}

impl From<std::io::Error> for TrailerError {
    fn from(e: std::io::Error) -> Self {
        TrailerError::Io(e)
    }
}

/// Checks the SHA-256 trailer as etcdutl does (`copyAndVerifyDB`): a file whose size modulo
/// 512 is 32 carries one; without one the file is accepted only with `skip_hash_check` (a raw
/// member `db`); a mismatch is refused unless `skip_hash_check`. Returns the database bytes
/// (the file without its trailer).
fn verify_trailer(file: &File, skip_hash_check: bool) -> Result<u64, TrailerError> {
    let len = file.metadata()?.len();
    if len % SECTOR_BYTES != TRAILER_BYTES {
        return if skip_hash_check {
            Ok(len)
        } else {
            Err(TrailerError::Restore(RestoreError::MissingHash))
        };
    }
    let db_len = len - TRAILER_BYTES;
    if skip_hash_check {
        return Ok(db_len);
    }
    let mut expected = [0u8; TRAILER_BYTES as usize];
    file.read_exact_at(&mut expected, db_len)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; RESTORE_HASH_READ_BYTES];
    let mut at = 0u64;
    while at < db_len {
        let n = usize::try_from(db_len - at).map_or(buf.len(), |rest| rest.min(buf.len()));
        let chunk = &mut buf[..n];
        file.read_exact_at(chunk, at)?;
        hasher.update(&*chunk);
        at += n as u64;
    }
    let actual = hasher.finalize();
    if actual.as_slice() != expected {
        return Err(TrailerError::Restore(RestoreError::HashMismatch {
            expected: go_bytes(&expected),
            actual: go_bytes(&actual),
        }));
    }
    Ok(db_len)
}

/// Go's `%v` of a byte slice: `[1 2 3]`.
fn go_bytes(b: &[u8]) -> String {
    let parts: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", parts.join(" "))
}

/// The small buckets, read before anything is written.
#[derive(Debug, Default)]
struct Small {
    finished_compact: Option<i64>,
    scheduled_compact: Option<i64>,
    alarms: Vec<AlarmMember>,
    users: u64,
    roles: u64,
}

fn buckets<S: PageSource>(reader: &Reader<S>) -> Result<BTreeMap<Vec<u8>, BucketRoot>, RestoreError> {
    Ok(reader.buckets()?.into_iter().collect())
}

/// Reads `meta`, `alarm` and the auth buckets; refuses a snapshot with auth enabled.
fn preflight<S: PageSource>(reader: &Reader<S>) -> Result<Small, RestoreError> {
    let buckets = buckets(reader)?;
    let mut small = Small::default();
    if let Some(root) = buckets.get(bucket::AUTH) {
        let mut enabled = false;
        reader.for_each(root, |k, v| {
            if k == AUTH_ENABLED {
                enabled = v == [1];
            }
            Ok::<(), RestoreError>(())
        })?;
        if enabled {
            return Err(RestoreError::AuthEnabled);
        }
    }
    for (name, count) in [
        (bucket::AUTH_USERS, &mut small.users),
        (bucket::AUTH_ROLES, &mut small.roles),
    ] {
        if let Some(root) = buckets.get(name) {
            reader.for_each(root, |_, _| {
                *count += 1;
                Ok::<(), RestoreError>(())
            })?;
        }
    }
    if let Some(root) = buckets.get(bucket::META) {
        reader.for_each(root, |k, v| {
            let slot = if k == meta_key::FINISHED_COMPACT_REV {
                &mut small.finished_compact
            } else if k == meta_key::SCHEDULED_COMPACT_REV {
                &mut small.scheduled_compact
            } else {
                return Ok(());
            };
            let (rev, _) = RevisionKey::decode(v).ok_or_else(|| {
                RestoreError::Corrupt(format!(
                    "meta {} is not a revision: {v:?}",
                    String::from_utf8_lossy(k)
                ))
            })?;
            *slot = Some(rev.main);
            Ok::<(), RestoreError>(())
        })?;
    }
    if let Some(root) = buckets.get(bucket::ALARM) {
        reader.for_each(root, |k, _| {
            let alarm =
                AlarmMember::decode(k).map_err(|e| RestoreError::Corrupt(format!("alarm {k:?}: {e}")))?;
            small.alarms.push(alarm);
            Ok::<(), RestoreError>(())
        })?;
    }
    Ok(small)
}

/// A fjall batch flushed whenever it holds [`RESTORE_BATCH_BYTES`].
struct Batches<'s> {
    storage: &'s Storage,
    batch: fjall::OwnedWriteBatch,
    bytes: usize,
}

impl Batches<'_> {
    fn insert(&mut self, ks: &fjall::Keyspace, k: &[u8], v: &[u8]) -> Result<(), RestoreError> {
        self.batch.insert(ks, k, v);
        self.bytes += k.len() + v.len();
        if self.bytes >= RESTORE_BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RestoreError> {
        std::mem::replace(&mut self.batch, self.storage.db.batch()).commit()?;
        self.bytes = 0;
        Ok(())
    }
}

/// Writes the etcd backend image read by `reader` into the (empty) `storage`: MVCC history,
/// leases, current and compaction revisions, alarms; then applies etcdutl's
/// `--bump-revision`/`--mark-compacted` (etcd `modifyLatestRevision`: a marker entry with an
/// empty value at `(latest.main + bump, 0)`, and a scheduled compaction at it).
///
/// # Errors
/// [`RestoreError::AuthEnabled`], [`RestoreError::Corrupt`] for records that are not etcd's
/// encodings, bbolt and storage failures. `storage` may hold part of the data on error.
pub fn convert<S: PageSource>(
    reader: &Reader<S>,
    storage: &Storage,
    bump_revision: u64,
    mark_compacted: bool,
) -> Result<Restored, RestoreError> {
    let small = preflight(reader)?;
    let roots = buckets(reader)?;
    let mut out = Batches {
        storage,
        batch: storage.db.batch(),
        bytes: 0,
    };
    let mut latest: Option<RevisionKey> = None;
    let mut key_entries = 0u64;
    if let Some(root) = roots.get(bucket::KEY) {
        reader.for_each(root, |k, v| {
            let (rev, _) = RevisionKey::decode(k)
                .ok_or_else(|| RestoreError::Corrupt(format!("key bucket entry {k:?} is not a revision")))?;
            KeyValue::decode(v).map_err(|e| RestoreError::Corrupt(format!("revision {}: {e}", rev.main)))?;
            out.insert(&storage.kv, k, v)?;
            latest = latest.max(Some(rev));
            key_entries += 1;
            Ok::<(), RestoreError>(())
        })?;
    } else {
        return Err(BboltError::NoSuchBucket("key".into()).into());
    }
    let mut leases = 0u64;
    if let Some(root) = roots.get(bucket::LEASE) {
        reader.for_each(root, |k, v| {
            if k.len() != 8 {
                return Err(RestoreError::Corrupt(format!("lease key {k:?}")));
            }
            Lease::decode(v).map_err(|e| RestoreError::Corrupt(format!("lease {k:?}: {e}")))?;
            out.insert(&storage.lease, k, v)?;
            leases += 1;
            Ok(())
        })?;
    }
    let mut newest = latest.map_or(0, |r| r.main);
    // etcd resumes a scheduled compaction at start; the finished one is at or below it.
    let mut compacted = small.scheduled_compact.max(small.finished_compact);
    if bump_revision > 0 {
        let base = latest.unwrap_or_default();
        let bumped = i64::try_from(bump_revision)
            .ok()
            .and_then(|b| base.main.checked_add(b))
            .ok_or(RestoreError::BumpOverflow(bump_revision, base.main))?;
        tracing::info!(
            latest_revision = base.main,
            bump_amount = bump_revision,
            new_latest_revision = bumped,
            "bumping latest revision"
        );
        out.insert(
            &storage.kv,
            &RevisionKey::new(Revision(bumped), 0).encode(false),
            b"",
        )?;
        key_entries += 1;
        newest = bumped;
        if mark_compacted {
            tracing::info!(revision = bumped, "marking revision compacted");
            compacted = Some(bumped);
        }
    }
    let revision = Revision(
        newest
            .max(small.finished_compact.unwrap_or(0))
            .max(Revision::INITIAL.0),
    );
    out.insert(&storage.meta, schema::META_REVISION, &revision.0.to_be_bytes())?;
    if let Some(c) = compacted {
        out.insert(&storage.meta, schema::META_COMPACT_REVISION, &c.to_be_bytes())?;
    }
    if !small.alarms.is_empty() {
        let table = AlarmResponse {
            header: None,
            alarms: small.alarms.clone(),
        };
        out.insert(&storage.meta, schema::META_ALARMS, &table.encode_to_vec())?;
    }
    out.flush()?;
    Ok(Restored {
        revision,
        compact_revision: compacted.map_or(NEVER_COMPACTED, Revision),
        key_entries,
        leases,
        alarms: small.alarms.len(),
        dropped_users: small.users,
        dropped_roles: small.roles,
    })
}

#[cfg(test)]
#[path = "restore_test.rs"]
mod tests;
