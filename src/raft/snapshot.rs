//! Raft snapshots of the state machine: a versioned byte image of the MVCC history and the
//! store's revision bookkeeping, plus the raft snapshot metadata (last applied log id and
//! membership). Built from a fjall snapshot (a fixed point in time, so applies go on while it
//! is written), kept in one file next to the database, and installed atomically.
//!
//! Layout (all integers big-endian): magic `MSSNAP01` · u32 metadata length · postcard
//! `SnapshotMeta` · records until the end, each `tag(u8) · u32 key length · key · u32 value
//! length · value`, tag 1 = `kv` keyspace entry, tag 2 = `meta` keyspace entry, tag 3 = `lease`
//! keyspace entry.

use std::io::{self, Write};
use std::path::Path;

use fjall::Readable;

use super::types::SnapshotMeta;
use crate::storage::{Storage, schema};

/// Format marker and version of the snapshot image.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"MSSNAP01";
const TAG_KV: u8 = 1;
const TAG_META: u8 = 2;
const TAG_LEASE: u8 = 3;
/// Store-bookkeeping meta keys carried in a snapshot (the applied id and membership come from
/// the raft metadata instead).
const META_KEYS: [&[u8]; 4] = [
    schema::META_REVISION,
    schema::META_COMPACT_REVISION,
    schema::META_ALARMS,
    schema::META_AUTH,
];

fn put_record(out: &mut Vec<u8>, tag: u8, key: &[u8], value: &[u8]) -> io::Result<()> {
    let len = |n: usize| u32::try_from(n).map_err(|_| io::Error::other("snapshot record too large"));
    out.push(tag);
    out.extend_from_slice(&len(key.len())?.to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&len(value.len())?.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

/// Writes the image of `view` with `meta`.
///
/// # Errors
/// Storage read failures.
pub fn export(storage: &Storage, view: &fjall::Snapshot, meta: &SnapshotMeta) -> io::Result<Vec<u8>> {
    let mut out = SNAPSHOT_MAGIC.to_vec();
    let meta_bytes = postcard::to_allocvec(meta).map_err(io::Error::other)?;
    out.extend_from_slice(
        &u32::try_from(meta_bytes.len())
            .map_err(io::Error::other)?
            .to_be_bytes(),
    );
    out.extend_from_slice(&meta_bytes);
    for item in view.iter(&storage.kv) {
        let (k, v) = item.into_inner().map_err(io::Error::other)?;
        put_record(&mut out, TAG_KV, &k, &v)?;
    }
    for item in view.iter(&storage.lease) {
        let (k, v) = item.into_inner().map_err(io::Error::other)?;
        put_record(&mut out, TAG_LEASE, &k, &v)?;
    }
    for key in META_KEYS {
        if let Some(v) = view.get(&storage.meta, key).map_err(io::Error::other)? {
            put_record(&mut out, TAG_META, key, &v)?;
        }
    }
    Ok(out)
}

/// One decoded record: (tag, key, value).
type Record<'a> = (u8, &'a [u8], &'a [u8]);

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("raft snapshot: {what}"))
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> io::Result<&'a [u8]> {
    if bytes.len() < n {
        return Err(invalid("truncated"));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn take_u32(bytes: &mut &[u8]) -> io::Result<usize> {
    let b = take(bytes, 4)?;
    let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    usize::try_from(n).map_err(|_| invalid("length overflow"))
}

/// Decodes and validates a whole image before anything is changed.
///
/// # Errors
/// `InvalidData` for a wrong magic, a truncated or malformed image.
pub fn decode(mut bytes: &[u8]) -> io::Result<(SnapshotMeta, Vec<Record<'_>>)> {
    if take(&mut bytes, SNAPSHOT_MAGIC.len())? != SNAPSHOT_MAGIC {
        return Err(invalid("unknown format"));
    }
    let meta_len = take_u32(&mut bytes)?;
    let meta = postcard::from_bytes(take(&mut bytes, meta_len)?).map_err(|e| invalid(&e.to_string()))?;
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let tag = take(&mut bytes, 1)?[0];
        if ![TAG_KV, TAG_META, TAG_LEASE].contains(&tag) {
            return Err(invalid("unknown record tag"));
        }
        let klen = take_u32(&mut bytes)?;
        let key = take(&mut bytes, klen)?;
        let vlen = take_u32(&mut bytes)?;
        records.push((tag, key, take(&mut bytes, vlen)?));
    }
    Ok((meta, records))
}

/// Replaces the state-machine data in `storage` with the image, in one atomic batch that also
/// records the snapshot's applied log id and membership, then syncs.
///
/// # Errors
/// `InvalidData` for a bad image (nothing is changed then), storage failures.
pub fn install(storage: &Storage, bytes: &[u8]) -> io::Result<SnapshotMeta> {
    let (meta, records) = decode(bytes)?;
    let mut batch = storage.db.batch();
    for item in storage.kv.iter() {
        batch.remove(&storage.kv, item.key().map_err(io::Error::other)?);
    }
    for item in storage.lease.iter() {
        batch.remove(&storage.lease, item.key().map_err(io::Error::other)?);
    }
    for key in META_KEYS {
        batch.remove(&storage.meta, key);
    }
    for (tag, key, value) in records {
        let keyspace = match tag {
            TAG_KV => &storage.kv,
            TAG_LEASE => &storage.lease,
            _ => &storage.meta,
        };
        batch.insert(keyspace, key, value);
    }
    let applied = postcard::to_allocvec(&meta.last_log_id).map_err(io::Error::other)?;
    let membership = postcard::to_allocvec(&Some(&meta.last_membership)).map_err(io::Error::other)?;
    batch.insert(&storage.meta, schema::META_APPLIED, applied);
    batch.insert(&storage.meta, schema::META_MEMBERSHIP, membership);
    batch.commit().map_err(io::Error::other)?;
    storage
        .db
        .persist(fjall::PersistMode::SyncAll)
        .map_err(io::Error::other)?;
    Ok(meta)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
///
/// # Errors
/// Filesystem failures.
pub fn save(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    let fsync = crate::metrics::record::timer(|m| &m.snap_fsync);
    f.sync_all()?;
    drop(fsync);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads the saved image, `None` when there is none.
///
/// # Errors
/// Filesystem failures other than "not found".
pub fn load(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::mvcc::{KeyRange, RangeOptions, Store};
    use crate::types::{LeaseId, Revision};

    fn put(store: &Store, k: &str, v: &str) {
        let mut t = store.write();
        t.put(
            Bytes::from(k.to_string()),
            Bytes::from(v.to_string()),
            LeaseId::NONE,
        )
        .unwrap();
        t.commit(|_| {}).unwrap();
    }

    #[test]
    fn an_installed_snapshot_serves_the_same_history_and_revisions() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Storage::open(a_dir.path()).unwrap();
        let store_a = Store::open(a.clone()).unwrap();
        for v in ["1", "2", "3"] {
            put(&store_a, "k", v);
        }
        let mut t = store_a.write();
        t.compact(Revision(3)).unwrap();
        t.commit(|_| {}).unwrap();
        let image = export(&a, &a.db.snapshot(), &SnapshotMeta::default()).unwrap();

        let b = Storage::open(b_dir.path()).unwrap();
        let store_b = Store::open(b.clone()).unwrap();
        put(&store_b, "stale", "x");
        install(&b, &image).unwrap();
        store_b.reload().unwrap();
        assert_eq!(store_b.current_revision(), Revision(4));
        assert_eq!(store_b.compact_revision(), Revision(3));
        let at3 = store_b.range(
            &KeyRange::new(b"k", b""),
            RangeOptions {
                revision: 3,
                ..Default::default()
            },
        );
        assert_eq!(at3.unwrap().kvs[0].value, "2");
        let stale = store_b
            .range(&KeyRange::new(b"stale", b""), RangeOptions::default())
            .unwrap();
        assert_eq!(stale.count, 0, "the snapshot replaces what was there");
    }

    #[test]
    fn the_auth_state_travels_in_the_snapshot() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Storage::open(a_dir.path()).unwrap();
        a.meta.insert(schema::META_AUTH, b"auth-record").unwrap();
        let image = export(&a, &a.db.snapshot(), &SnapshotMeta::default()).unwrap();
        let b = Storage::open(b_dir.path()).unwrap();
        b.meta.insert(schema::META_AUTH, b"stale").unwrap();
        install(&b, &image).unwrap();
        assert_eq!(
            b.meta.get(schema::META_AUTH).unwrap().as_deref(),
            Some(&b"auth-record"[..])
        );
    }

    #[test]
    fn a_corrupt_image_is_refused_before_anything_changes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::open(dir.path()).unwrap();
        let store = Store::open(s.clone()).unwrap();
        put(&store, "k", "v");
        let mut image = export(&s, &s.db.snapshot(), &SnapshotMeta::default()).unwrap();
        image.truncate(image.len() - 1);
        assert_eq!(
            install(&s, &image).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            install(&s, b"garbage").unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            store
                .range(&KeyRange::new(b"k", b""), RangeOptions::default())
                .unwrap()
                .count,
            1
        );
    }
}
