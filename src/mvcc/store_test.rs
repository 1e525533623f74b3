//! MVCC rules on a real fjall store (etcd-compat.md §2.1–2.5).

use bytes::Bytes;

use super::*;
use crate::storage::Storage;
use crate::types::{LeaseId, Revision};

fn open() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(Storage::open(dir.path()).unwrap()).unwrap();
    (dir, store)
}

fn put(store: &Store, k: &str, v: &str) -> Revision {
    let mut t = store.write();
    t.put(Bytes::from(k.to_string()), Bytes::from(v.to_string()), LeaseId::NONE).unwrap();
    t.commit(|_| {}).unwrap().revision
}

fn get(store: &Store, k: &str, rev: i64) -> Option<KeyValue> {
    let r = store.range(&KeyRange::Single(k.as_bytes().to_vec()), RangeOptions { revision: rev, ..Default::default() });
    r.unwrap().kvs.into_iter().next()
}

#[test]
fn versions_count_puts_and_reset_after_delete() {
    let (_d, s) = open();
    assert_eq!(put(&s, "a", "1"), Revision(2));
    assert_eq!(put(&s, "a", "2"), Revision(3));
    let a = get(&s, "a", 0).unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 3, 2));
    let mut t = s.write();
    assert_eq!(t.delete_range(&KeyRange::Single(b"a".to_vec())).unwrap(), (1, Revision(4)));
    t.commit(|_| {}).unwrap();
    assert_eq!(put(&s, "a", "3"), Revision(5));
    let a = get(&s, "a", 0).unwrap();
    assert_eq!((a.create_revision, a.version), (5, 1), "a new generation");
    assert_eq!(get(&s, "a", 4), None, "deleted at revision 4");
    assert_eq!(get(&s, "a", 3).unwrap().value, "2");
}

#[test]
fn writes_in_one_transaction_share_a_revision_with_increasing_sub_revisions() {
    let (_d, s) = open();
    let mut t = s.write();
    t.put("x".into(), "1".into(), LeaseId::NONE).unwrap();
    t.put("y".into(), "2".into(), LeaseId::NONE).unwrap();
    let seen = t.range(&KeyRange::new(b"x", b"z"), RangeOptions::default()).unwrap();
    assert_eq!(seen.kvs.len(), 2, "reads see the transaction's own writes");
    assert_eq!(seen.revision, Revision(2), "the view revision is begin + 1 once something changed");
    let committed = t.commit(|_| {}).unwrap();
    assert_eq!(committed.revision, Revision(2));
    assert_eq!(committed.changes.len(), 2);
    assert_eq!(s.current_revision(), Revision(2));
}

#[test]
fn a_transaction_without_changes_keeps_the_revision() {
    let (_d, s) = open();
    put(&s, "a", "1");
    let mut t = s.write();
    assert_eq!(t.delete_range(&KeyRange::Single(b"zz".to_vec())).unwrap(), (0, Revision(2)));
    assert_eq!(t.commit(|_| {}).unwrap().revision, Revision(2));
}

#[test]
fn compaction_drops_old_versions_but_keeps_the_latest_at_or_below() {
    let (_d, s) = open();
    for v in ["1", "2", "3"] {
        put(&s, "a", v); // 2, 3, 4
    }
    let mut t = s.write();
    t.compact(Revision(3)).unwrap();
    t.commit(|_| {}).unwrap();
    assert_eq!(s.compact_revision(), Revision(3));
    assert_eq!(get(&s, "a", 3).unwrap().value, "2");
    assert!(matches!(
        s.range(&KeyRange::Single(b"a".to_vec()), RangeOptions { revision: 2, ..Default::default() }),
        Err(Error::Compacted)
    ));
    let mut t = s.write();
    assert_eq!(t.compact(Revision(3)), Err(Error::Compacted));
    assert_eq!(t.compact(Revision(9)), Err(Error::FutureRevision));
}

#[test]
fn reopening_rebuilds_the_index_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(Storage::open(dir.path()).unwrap()).unwrap();
        put(&s, "a", "1");
        put(&s, "b", "1");
        let mut t = s.write();
        t.delete_range(&KeyRange::Single(b"b".to_vec())).unwrap();
        t.commit(|_| {}).unwrap();
    }
    let s = Store::open(Storage::open(dir.path()).unwrap()).unwrap();
    assert_eq!(s.current_revision(), Revision(4));
    assert_eq!(get(&s, "a", 0).unwrap().value, "1");
    assert_eq!(get(&s, "b", 0), None);
    assert_eq!(get(&s, "b", 3).unwrap().value, "1");
}
