//! Lays out a read view of the store as etcd's backend (etcd-compat.md §8.5; etcd 3.4/3.5
//! `mvcc/kvstore.go`, `lease/lessor.go`, `etcdserver/api/membership/store.go`, `auth/store.go`,
//! `etcdserver/api/v3alarm/alarms.go`): the buckets a real etcd snapshot holds, with etcd's
//! encodings, so that `etcdctl snapshot status` reads it and `etcdctl snapshot restore` plus a
//! stock etcd serve the same keys, revisions, compaction and leases.
//!
//! Our `kv` keyspace already uses etcd's `key` bucket layout (revision keys, `mvccpb.KeyValue`
//! values) and our `lease` keyspace etcd's `lease` layout, so most of the image is a copy. Two
//! things are rewritten: a tombstone's value is `KeyValue{key}` only, as etcd stores it; and
//! versions that a compaction dropped but the background deleter has not yet removed are left
//! out (when [`ImageSettings::compaction_deleted`] says some may remain), so the image holds
//! exactly what etcd keeps after a finished compaction and `scheduledCompactRev` /
//! `finishedCompactRev` both name the compaction revision.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{Seek, Write};

use bytes::Bytes;
use fjall::Readable;
use prost::Message;
use serde::Serialize;

use super::SnapshotError;
use crate::bbolt::{PAGE_SIZE_DEFAULT, WriteSummary, Writer};
use crate::mvcc::RevisionKey;
use crate::mvcc::store::NEVER_COMPACTED;
use crate::proto::etcdserverpb::AlarmResponse;
use crate::proto::mainstaypb::Lease;
use crate::proto::mvccpb::KeyValue;
use crate::raft::types::{LogId, StoredMembership};
use crate::storage::{Storage, schema};
use crate::types::Revision;

/// etcd's bucket names (etcd 3.5 `server/storage/schema/bucket.go`).
pub mod bucket {
    /// Active alarms: key = marshalled `AlarmMember`, value empty.
    pub const ALARM: &[u8] = b"alarm";
    /// Auth flags: `authEnabled`, `authRevision`.
    pub const AUTH: &[u8] = b"auth";
    /// Roles: name → `authpb.Role`.
    pub const AUTH_ROLES: &[u8] = b"authRoles";
    /// Users: name → `authpb.User`.
    pub const AUTH_USERS: &[u8] = b"authUsers";
    /// Cluster-wide values: `clusterVersion`.
    pub const CLUSTER: &[u8] = b"cluster";
    /// MVCC history: revision key → `mvccpb.KeyValue`.
    pub const KEY: &[u8] = b"key";
    /// Leases: ID (u64 big-endian) → `leasepb.Lease`.
    pub const LEASE: &[u8] = b"lease";
    /// Members: hex ID → JSON.
    pub const MEMBERS: &[u8] = b"members";
    /// Removed members: hex ID → `removed`.
    pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
    /// Backend metadata: consistent index, term, compaction revisions.
    pub const META: &[u8] = b"meta";
}

/// etcd's `meta` bucket keys.
pub mod meta_key {
    /// Applied raft index, u64 big-endian.
    pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
    /// Raft term of the applied entry, u64 big-endian (etcd 3.5+; 3.4 ignores it).
    pub const TERM: &[u8] = b"term";
    /// Revision of the last finished compaction (17-byte revision key, sub 0).
    pub const FINISHED_COMPACT_REV: &[u8] = b"finishedCompactRev";
    /// Revision of the last scheduled compaction (17-byte revision key, sub 0).
    pub const SCHEDULED_COMPACT_REV: &[u8] = b"scheduledCompactRev";
}

/// etcd's `auth` bucket key holding the enabled flag (one byte, 1 or 0).
const AUTH_ENABLED: &[u8] = b"authEnabled";
/// etcd's `auth` bucket key holding the auth revision (u64 big-endian; a fresh etcd writes 1).
const AUTH_REVISION: &[u8] = b"authRevision";
/// etcd's `cluster` bucket key holding the cluster version.
const CLUSTER_VERSION: &[u8] = b"clusterVersion";

/// What the image is built with besides the read view.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    /// Written as `cluster/clusterVersion` (e.g. `3.5.0`).
    pub cluster_version: String,
    /// The newest compaction whose dropped versions the background deleter had removed
    /// before the view was taken. When the view's compaction revision is newer, dropped
    /// versions may still be stored and are filtered out, at the cost of a pass over the
    /// history up to the compaction revision and a map of the keys found there.
    pub compaction_deleted: Revision,
}

/// What an image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The store revision of the view (`meta/revision`).
    pub store_revision: Revision,
    /// The revision etcd derives when it opens the image: the newest revision in `key`, at
    /// least the compaction revision (etcd `store.restore`). Equal to `store_revision`.
    pub revision: Revision,
    /// The compaction revision ([`NEVER_COMPACTED`] when never compacted).
    pub compact_revision: Revision,
    /// Applied raft index written as `consistent_index`.
    pub consistent_index: u64,
    /// Entries of the `key` bucket.
    pub key_entries: u64,
    /// Leases in the `lease` bucket.
    pub leases: u64,
    /// The bbolt file written.
    pub file: WriteSummary,
}

/// etcd's member record (`membership.Member` marshalled with `encoding/json`: ID, then the
/// embedded RaftAttributes, then the embedded Attributes).
#[derive(Serialize)]
struct MemberJson<'a> {
    id: u64,
    #[serde(rename = "peerURLs")]
    peer_urls: &'a [String],
    #[serde(rename = "isLearner", skip_serializing_if = "std::ops::Not::not")]
    is_learner: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(rename = "clientURLs", skip_serializing_if = "<[String]>::is_empty")]
    client_urls: &'a [String],
}

/// Writes the etcd image of `view` to `out` as a bbolt file.
///
/// # Errors
/// [`SnapshotError::Corrupt`] when a stored record does not decode, storage and I/O failures.
pub fn write_image<W: Write + Seek>(
    out: W,
    storage: &Storage,
    view: &fjall::Snapshot,
    settings: &ImageSettings,
) -> Result<(W, ImageInfo), SnapshotError> {
    let meta = |key: &[u8]| view.get(&storage.meta, key);
    let store_revision = Revision(meta_i64(meta(schema::META_REVISION)?, "revision")?.unwrap_or(0));
    let compact_revision = Revision(
        meta_i64(meta(schema::META_COMPACT_REVISION)?, "compact_revision")?.unwrap_or(NEVER_COMPACTED.0),
    );
    let applied: Option<LogId> = postcard_meta(meta(schema::META_APPLIED)?, "applied")?;
    let membership: StoredMembership =
        postcard_meta(meta(schema::META_MEMBERSHIP)?, "membership")?.unwrap_or_default();
    let alarms = match meta(schema::META_ALARMS)? {
        None => Vec::new(),
        Some(v) => {
            AlarmResponse::decode(v.as_ref())
                .map_err(|e| SnapshotError::Corrupt(format!("alarm table: {e}")))?
                .alarms
        }
    };

    let mut w = Writer::new(out, PAGE_SIZE_DEFAULT)?;
    // Buckets in bytewise name order, as the writer requires.
    w.bucket(bucket::ALARM)?;
    let alarm_keys: BTreeSet<Vec<u8>> = alarms.iter().map(Message::encode_to_vec).collect();
    for k in &alarm_keys {
        w.put(k, b"")?;
    }
    let auth = match meta(schema::META_AUTH)? {
        None => None,
        Some(v) => Some(
            crate::auth::state::Snapshot::decode(&v).map_err(|e| SnapshotError::Corrupt(e.to_string()))?,
        ),
    };
    w.bucket(bucket::AUTH)?;
    // etcd writes `authEnabled` once auth was enabled or disabled; keys in bytewise order.
    if let Some(a) = &auth {
        w.put(AUTH_ENABLED, &[u8::from(a.enabled)])?;
    }
    let auth_revision = auth.as_ref().map_or(1, |a| a.revision);
    w.put(AUTH_REVISION, &auth_revision.to_be_bytes())?;
    w.bucket(bucket::AUTH_ROLES)?;
    for (name, role) in auth.iter().flat_map(|a| &a.roles) {
        w.put(name.as_bytes(), &role.encode_to_vec())?;
    }
    w.bucket(bucket::AUTH_USERS)?;
    for (name, user) in auth.iter().flat_map(|a| &a.users) {
        w.put(name.as_bytes(), &user.encode_to_vec())?;
    }
    w.bucket(bucket::CLUSTER)?;
    w.put(CLUSTER_VERSION, settings.cluster_version.as_bytes())?;
    w.bucket(bucket::KEY)?;
    let keep = if compact_revision > settings.compaction_deleted && compact_revision.0 > 0 {
        Some(kept_at_compaction(storage, view, compact_revision)?)
    } else {
        None
    };
    let (key_entries, newest) = write_history(&mut w, storage, view, compact_revision, keep.as_ref())?;
    w.bucket(bucket::LEASE)?;
    let mut leases = 0u64;
    for item in view.iter(&storage.lease) {
        let (k, v) = item.into_inner()?;
        if k.len() != 8 {
            return Err(SnapshotError::Corrupt(format!("lease key {k:?}")));
        }
        Lease::decode(v.as_ref()).map_err(|e| SnapshotError::Corrupt(format!("lease record: {e}")))?;
        w.put(&k, &v)?;
        leases += 1;
    }
    w.bucket(bucket::MEMBERS)?;
    for (key, value) in members(&membership)? {
        w.put(key.as_bytes(), &value)?;
    }
    w.bucket(bucket::MEMBERS_REMOVED)?;
    w.bucket(bucket::META)?;
    let mut meta_pairs: BTreeMap<&[u8], Vec<u8>> = BTreeMap::new();
    let (index, term) = applied.map_or((0, 0), |l| (l.index, l.leader_id.term));
    meta_pairs.insert(meta_key::CONSISTENT_INDEX, index.to_be_bytes().to_vec());
    meta_pairs.insert(meta_key::TERM, term.to_be_bytes().to_vec());
    if compact_revision.0 >= 0 {
        let rev = RevisionKey::new(compact_revision, 0).encode(false);
        meta_pairs.insert(meta_key::FINISHED_COMPACT_REV, rev.clone());
        meta_pairs.insert(meta_key::SCHEDULED_COMPACT_REV, rev);
    }
    for (k, v) in &meta_pairs {
        w.put(k, v)?;
    }
    let (out, file) = w.finish()?;
    let revision = Revision(newest.max(compact_revision.0).max(Revision::INITIAL.0));
    if revision != store_revision.max(Revision::INITIAL) {
        tracing::warn!(
            store = store_revision.0,
            image = revision.0,
            "snapshot image revision differs from the store's"
        );
    }
    Ok((
        out,
        ImageInfo {
            store_revision,
            revision,
            compact_revision,
            consistent_index: index,
            key_entries,
            leases,
            file,
        },
    ))
}

/// Writes the `key` bucket; returns the entries written and the newest main revision.
fn write_history<W: Write + Seek>(
    w: &mut Writer<W>,
    storage: &Storage,
    view: &fjall::Snapshot,
    compacted: Revision,
    keep: Option<&HashSet<RevisionKey>>,
) -> Result<(u64, i64), SnapshotError> {
    let mut entries = 0u64;
    let mut newest = 0i64;
    for item in view.iter(&storage.kv) {
        let (k, v) = item.into_inner()?;
        let (rev, tombstone) =
            RevisionKey::decode(&k).ok_or_else(|| SnapshotError::Corrupt(format!("revision key {k:?}")))?;
        if let Some(keep) = keep
            && rev.main <= compacted.0
            && !keep.contains(&rev)
        {
            continue;
        }
        if tombstone {
            // etcd stores a deletion as `KeyValue{key}` (mvcc `storeTxnWrite.delete`).
            let kv = decode_kv(&v, rev)?;
            let value = KeyValue {
                key: kv.key,
                ..KeyValue::default()
            }
            .encode_to_vec();
            w.put(&k, &value)?;
        } else {
            w.put(&k, &v)?;
        }
        entries += 1;
        newest = newest.max(rev.main);
    }
    Ok((entries, newest))
}

/// The versions at or below `compacted` that etcd's compaction keeps (etcd
/// `keyIndex.compact`): per key, the newest version at or below it unless that is a deletion.
fn kept_at_compaction(
    storage: &Storage,
    view: &fjall::Snapshot,
    compacted: Revision,
) -> Result<HashSet<RevisionKey>, SnapshotError> {
    let mut newest: HashMap<Bytes, (RevisionKey, bool)> = HashMap::new();
    for item in view.range(&storage.kv, ..RevisionKey::lower_bound(compacted.next())) {
        let (k, v) = item.into_inner()?;
        let (rev, tombstone) =
            RevisionKey::decode(&k).ok_or_else(|| SnapshotError::Corrupt(format!("revision key {k:?}")))?;
        // Revision order: a later version of the same key replaces an earlier one.
        newest.insert(decode_kv(&v, rev)?.key, (rev, tombstone));
    }
    Ok(newest
        .into_values()
        .filter(|(_, tombstone)| !tombstone)
        .map(|(rev, _)| rev)
        .collect())
}

fn decode_kv(v: &[u8], rev: RevisionKey) -> Result<KeyValue, SnapshotError> {
    KeyValue::decode(v).map_err(|e| SnapshotError::Corrupt(format!("revision {}: {e}", rev.main)))
}

/// The `members` bucket: lowercase hex ID → etcd's JSON, learners marked.
fn members(m: &StoredMembership) -> Result<BTreeMap<String, Vec<u8>>, SnapshotError> {
    let membership = m.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, node)| {
            let json = serde_json::to_vec(&MemberJson {
                id: *id,
                peer_urls: &node.peer_urls,
                is_learner: !voters.contains(id),
                name: &node.name,
                client_urls: &node.client_urls,
            })
            .map_err(|e| SnapshotError::Corrupt(format!("member {id:x}: {e}")))?;
            Ok((format!("{id:x}"), json))
        })
        .collect()
}

fn meta_i64(v: Option<fjall::Slice>, what: &str) -> Result<Option<i64>, SnapshotError> {
    v.map(|v| {
        <[u8; 8]>::try_from(v.as_ref())
            .map(i64::from_be_bytes)
            .map_err(|_| SnapshotError::Corrupt(format!("meta {what} is not 8 bytes")))
    })
    .transpose()
}

fn postcard_meta<T: serde::de::DeserializeOwned>(
    v: Option<fjall::Slice>,
    what: &str,
) -> Result<Option<T>, SnapshotError> {
    match v {
        None => Ok(None),
        Some(v) => postcard::from_bytes::<Option<T>>(&v)
            .map_err(|e| SnapshotError::Corrupt(format!("meta {what}: {e}"))),
    }
}

#[cfg(test)]
#[path = "etcd_image_test.rs"]
mod tests;
