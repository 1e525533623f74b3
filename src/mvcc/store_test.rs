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
    t.put(
        Bytes::from(k.to_string()),
        Bytes::from(v.to_string()),
        LeaseId::NONE,
    )
    .unwrap();
    t.commit(|_| {}).unwrap().revision
}

fn get(store: &Store, k: &str, rev: i64) -> Option<KeyValue> {
    let r = store.range(
        &KeyRange::Single(k.as_bytes().to_vec()),
        RangeOptions {
            revision: rev,
            ..Default::default()
        },
    );
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
    assert_eq!(
        t.delete_range(&KeyRange::Single(b"a".to_vec())).unwrap(),
        (1, Revision(4))
    );
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
    let seen = t
        .range(&KeyRange::new(b"x", b"z"), RangeOptions::default())
        .unwrap();
    assert_eq!(seen.kvs.len(), 2, "reads see the transaction's own writes");
    assert_eq!(
        seen.revision,
        Revision(2),
        "the view revision is begin + 1 once something changed"
    );
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
    assert_eq!(
        t.delete_range(&KeyRange::Single(b"zz".to_vec())).unwrap(),
        (0, Revision(2))
    );
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
        s.range(
            &KeyRange::Single(b"a".to_vec()),
            RangeOptions {
                revision: 2,
                ..Default::default()
            }
        ),
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

#[test]
fn compacting_a_fresh_store_at_zero_or_one_succeeds() {
    // etcd: compactMainRev starts at -1 (kvstore.go), so rev 0 and 1 are not "already compacted".
    let (_d, s) = open();
    let mut t = s.write();
    t.compact(Revision(1)).unwrap();
    t.commit(|_| {}).unwrap();
    assert_eq!(s.compact_revision(), Revision(1));
    assert!(
        s.range(
            &KeyRange::Single(b"a".to_vec()),
            RangeOptions {
                revision: 1,
                ..Default::default()
            }
        )
        .is_ok()
    );
}

mod model {
    //! The store against a naive model that keeps a full copy of the key space per revision.

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, u8),
        Delete(u8, u8),
        Compact(u8),
        Range(u8, u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            1 => (0u8..6, 0u8..7).prop_map(|(a, b)| Op::Delete(a, b)),
            1 => any::<u8>().prop_map(Op::Compact),
            3 => (0u8..6, 0u8..7, any::<u8>()).prop_map(|(a, b, r)| Op::Range(a, b, r)),
        ]
    }

    fn key(k: u8) -> Vec<u8> {
        vec![b'k', k]
    }

    fn range_of(a: u8, b: u8) -> KeyRange {
        if b <= a {
            KeyRange::Single(key(a))
        } else {
            KeyRange::Between(key(a), key(b))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn store_matches_a_per_revision_model(ops in proptest::collection::vec(op(), 1..60)) {
            let (_d, s) = open();
            // history[r] = live key space at revision r.
            let mut history: Vec<BTreeMap<Vec<u8>, KeyValue>> = vec![BTreeMap::new(), BTreeMap::new()];
            let mut compacted = -1i64;
            for op in ops {
                let current = (history.len() - 1) as i64;
                match op {
                    Op::Put(k, v) => {
                        let mut next = history[current as usize].clone();
                        let rev = current + 1;
                        let (create, version) = next.get(&key(k)).map_or((rev, 1), |p| (p.create_revision, p.version + 1));
                        next.insert(key(k), KeyValue { key: key(k).into(), value: vec![v].into(), create_revision: create, mod_revision: rev, version, lease: 0 });
                        history.push(next);
                        let mut t = s.write();
                        t.put(key(k).into(), vec![v].into(), LeaseId::NONE).unwrap();
                        prop_assert_eq!(t.commit(|_| {}).unwrap().revision, Revision(rev));
                    }
                    Op::Delete(a, b) => {
                        let range = range_of(a, b);
                        let mut next = history[current as usize].clone();
                        let before = next.len();
                        next.retain(|k, _| !range.contains(k));
                        let deleted = (before - next.len()) as i64;
                        let mut t = s.write();
                        let (n, _) = t.delete_range(&range).unwrap();
                        t.commit(|_| {}).unwrap();
                        prop_assert_eq!(n, deleted);
                        if deleted > 0 { history.push(next); }
                    }
                    Op::Compact(r) => {
                        let at = i64::from(r) % (current + 2);
                        let mut t = s.write();
                        let res = t.compact(Revision(at));
                        if at <= compacted {
                            prop_assert_eq!(res, Err(Error::Compacted));
                        } else if at > current {
                            prop_assert_eq!(res, Err(Error::FutureRevision));
                        } else {
                            prop_assert_eq!(res, Ok(()));
                            t.commit(|_| {}).unwrap();
                            compacted = at;
                        }
                    }
                    Op::Range(a, b, r) => {
                        let at = i64::from(r) % (current + 2);
                        let range = range_of(a, b);
                        let got = s.range(&range, RangeOptions { revision: at, ..Default::default() });
                        let read_at = if at <= 0 { current } else { at };
                        if at > current {
                            prop_assert_eq!(got.map(|r| r.count), Err(Error::FutureRevision));
                        } else if read_at < compacted {
                            prop_assert_eq!(got.map(|r| r.count), Err(Error::Compacted));
                        } else {
                            let want: Vec<KeyValue> = history[read_at as usize].iter().filter(|(k, _)| range.contains(k)).map(|(_, v)| v.clone()).collect();
                            let got = got.unwrap();
                            prop_assert_eq!(got.count, want.len() as i64);
                            prop_assert_eq!(got.kvs, want);
                            prop_assert_eq!(got.revision, Revision(current));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn compaction_physically_deletes_superseded_versions() {
    let (_d, s) = open();
    for v in 0..50 {
        put(&s, "hot", &v.to_string()); // revisions 2..=51
    }
    let stored = |s: &Store| s.storage.kv.iter().count();
    assert_eq!(stored(&s), 50);
    let mut t = s.write();
    t.compact(Revision(51)).unwrap();
    t.commit(|_| {}).unwrap();
    futures::executor::block_on(s.wait_compacted(Revision(51)));
    assert_eq!(
        stored(&s),
        1,
        "only the live version survives compaction at the current revision"
    );
    assert_eq!(get(&s, "hot", 0).unwrap().value, "49");
}
