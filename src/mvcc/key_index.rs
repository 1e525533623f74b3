//! The in-memory key index: for every user key, the revisions at which it changed.
//!
//! Like etcd's `treeIndex`, it is rebuilt at start-up by scanning the `kv` keyspace and answers
//! "which revision of key K is live at revision R" without touching the disk; values are then
//! read from fjall by revision key. Entries per key are sorted by revision; a tombstone ends a
//! generation (etcd's `keyIndex.generations`).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::key_range::KeyRange;
use super::revision::RevisionKey;
use crate::types::Revision;

/// One change of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Where the change is stored.
    pub rev: RevisionKey,
    /// Whether the change deleted the key.
    pub tombstone: bool,
}

/// Every key's change history, ordered by key.
#[derive(Debug, Default)]
pub struct KeyIndex {
    keys: BTreeMap<Bytes, Vec<IndexEntry>>,
}

impl KeyIndex {
    /// Records a change. Changes of one key must arrive in revision order (apply order, or a
    /// scan of the `kv` keyspace).
    pub fn insert(&mut self, key: Bytes, rev: RevisionKey, tombstone: bool) {
        self.keys
            .entry(key)
            .or_default()
            .push(IndexEntry { rev, tombstone });
    }

    /// The revision of `key` live at `at`, `None` when the key does not exist then.
    pub fn get(&self, key: &[u8], at: Revision) -> Option<RevisionKey> {
        self.keys.get(key).and_then(|h| live_at(h, at))
    }

    /// Visits the keys of `range` live at `at`, in ascending key order, until `visit` returns
    /// `false`.
    pub fn visit(&self, range: &KeyRange, at: Revision, mut visit: impl FnMut(&Bytes, RevisionKey) -> bool) {
        let Some(bounds) = range.bounds() else { return };
        for (key, history) in self.keys.range::<[u8], _>(bounds) {
            if let Some(rev) = live_at(history, at)
                && !visit(key, rev)
            {
                return;
            }
        }
    }

    /// Compacts at `at` (etcd `keyIndex.compact`): per key, drops every change older than the
    /// newest change ≤ `at`, and that one too if it is a tombstone. Returns the dropped changes
    /// so their stored versions can be deleted.
    pub fn compact(&mut self, at: Revision) -> Vec<IndexEntry> {
        let mut dropped = Vec::new();
        self.keys.retain(|_, history| {
            let newer = history.partition_point(|e| e.rev.main <= at.0);
            if newer == 0 {
                return true;
            }
            let mut keep_from = newer - 1;
            if history[keep_from].tombstone {
                keep_from += 1;
            }
            dropped.extend(history.drain(..keep_from));
            !history.is_empty()
        });
        dropped
    }

    /// Number of keys with any retained history (live or deleted-but-uncompacted).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn live_at(history: &[IndexEntry], at: Revision) -> Option<RevisionKey> {
    let newer = history.partition_point(|e| e.rev.main <= at.0);
    let entry = history.get(newer.checked_sub(1)?)?;
    (!entry.tombstone).then_some(entry.rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rk(main: i64) -> RevisionKey {
        RevisionKey { main, sub: 0 }
    }

    fn index(changes: &[(&str, i64, bool)]) -> KeyIndex {
        let mut ix = KeyIndex::default();
        for &(k, main, tomb) in changes {
            ix.insert(Bytes::copy_from_slice(k.as_bytes()), rk(main), tomb);
        }
        ix
    }

    #[test]
    fn get_returns_newest_version_at_or_below_revision() {
        let ix = index(&[("a", 2, false), ("a", 4, false), ("a", 6, true)]);
        assert_eq!(ix.get(b"a", Revision(1)), None);
        assert_eq!(ix.get(b"a", Revision(3)), Some(rk(2)));
        assert_eq!(ix.get(b"a", Revision(5)), Some(rk(4)));
        assert_eq!(ix.get(b"a", Revision(6)), None, "deleted at 6");
    }

    #[test]
    fn visit_walks_live_keys_in_order() {
        let ix = index(&[("b", 2, false), ("a", 3, false), ("c", 4, false), ("c", 5, true)]);
        let mut seen = Vec::new();
        ix.visit(&KeyRange::new(b"a", b"\0"), Revision(5), |k, _| {
            seen.push(k.clone());
            true
        });
        assert_eq!(seen, vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
    }

    #[test]
    fn compaction_keeps_latest_version_at_or_below_and_drops_tombstones() {
        let mut ix = index(&[
            ("a", 2, false),
            ("a", 3, false),
            ("b", 4, false),
            ("b", 5, true),
            ("c", 6, false),
        ]);
        let dropped = ix.compact(Revision(5));
        let mains: Vec<i64> = dropped.iter().map(|e| e.rev.main).collect();
        assert_eq!(mains, vec![2, 4, 5]);
        assert_eq!(ix.get(b"a", Revision(5)), Some(rk(3)));
        assert_eq!(ix.len(), 2, "b is gone entirely, a and c remain");
    }

    #[test]
    fn compaction_keeps_newer_generation_after_tombstone() {
        let mut ix = index(&[("a", 2, false), ("a", 3, true), ("a", 5, false)]);
        let dropped = ix.compact(Revision(4));
        assert_eq!(dropped.len(), 2);
        assert_eq!(ix.get(b"a", Revision(5)), Some(rk(5)));
    }
}
