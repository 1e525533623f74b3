use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;

use super::*;
use crate::bbolt::{BboltError, Reader};
use crate::lease::lessor::{lease_key, lease_record};
use crate::mvcc::{KeyRange, Store};
use crate::raft::types::MemberNode;
use crate::types::LeaseId;

fn settings(compaction_pending: bool) -> ImageSettings {
    ImageSettings {
        cluster_version: "3.5.0".into(),
        compaction_deleted: if compaction_pending {
            Revision(0)
        } else {
            Revision(i64::MAX)
        },
    }
}

/// The image as bucket name → (key → value).
fn buckets(bytes: Vec<u8>) -> BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> {
    let r = Reader::open(bytes).unwrap();
    r.check().unwrap();
    let mut out = BTreeMap::new();
    for (name, root) in r.buckets().unwrap() {
        let mut pairs = BTreeMap::new();
        r.for_each(&root, |k, v| {
            pairs.insert(k.to_vec(), v.to_vec());
            Ok::<(), BboltError>(())
        })
        .unwrap();
        out.insert(String::from_utf8(name).unwrap(), pairs);
    }
    out
}

fn image(storage: &Storage, pending: bool) -> (Vec<u8>, ImageInfo) {
    let (out, info) = write_image(
        Cursor::new(Vec::new()),
        storage,
        &storage.db.snapshot(),
        &settings(pending),
    )
    .unwrap();
    (out.into_inner(), info)
}

fn revs(bucket: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<(i64, bool)> {
    bucket
        .keys()
        .map(|k| {
            let (r, t) = RevisionKey::decode(k).unwrap();
            (r.main, t)
        })
        .collect()
}

fn put(store: &Store, k: &str, v: &str, lease: i64) {
    let mut t = store.write();
    t.put(
        Bytes::from(k.to_string()),
        Bytes::from(v.to_string()),
        LeaseId(lease),
    )
    .unwrap();
    t.commit(|_| {}).unwrap();
}

fn del(store: &Store, k: &str) {
    let mut t = store.write();
    t.delete_range(&KeyRange::Single(k.as_bytes().to_vec())).unwrap();
    t.commit(|_| {}).unwrap();
}

#[test]
fn the_image_has_etcds_buckets_and_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path()).unwrap();
    let store = Store::open(s.clone()).unwrap();
    s.lease
        .insert(lease_key(LeaseId(7)), lease_record(LeaseId(7), 100, 0))
        .unwrap();
    // The same history as tests/fixtures/etcd-3.4.23-snapshot.db.
    put(&store, "a", "1", 0);
    put(&store, "b", "2", 0);
    put(&store, "a", "3", 0);
    del(&store, "b");
    put(&store, "c", "4", 7);
    let mut t = store.write();
    t.compact(Revision(3)).unwrap();
    t.commit(|_| {}).unwrap();
    let log_id: LogId = openraft::LogId::new_term_index(3, 42);
    s.meta
        .insert(
            schema::META_APPLIED,
            postcard::to_allocvec(&Some(log_id)).unwrap(),
        )
        .unwrap();
    let node = MemberNode {
        name: "n1".into(),
        peer_urls: vec!["http://127.0.0.1:2380".into()],
        client_urls: vec!["http://127.0.0.1:2379".into()],
    };
    let membership = openraft::Membership::new(
        vec![BTreeSet::from([0x8e9e_05c5_2164_694d])],
        BTreeMap::from([(0x8e9e_05c5_2164_694du64, node)]),
    )
    .unwrap();
    let stored = StoredMembership::new(Some(log_id), membership);
    s.meta
        .insert(
            schema::META_MEMBERSHIP,
            postcard::to_allocvec(&Some(stored)).unwrap(),
        )
        .unwrap();

    let (bytes, info) = image(&s, false);
    assert_eq!(info.revision, Revision(6));
    assert_eq!(info.store_revision, Revision(6));
    assert_eq!(info.compact_revision, Revision(3));
    assert_eq!((info.key_entries, info.leases, info.consistent_index), (5, 1, 42));
    let b = buckets(bytes);
    let names: Vec<&str> = b.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "alarm",
            "auth",
            "authRoles",
            "authUsers",
            "cluster",
            "key",
            "lease",
            "members",
            "members_removed",
            "meta"
        ]
    );
    // Byte-for-byte what etcd 3.4.23 wrote for this history (tests/fixtures), except the lease
    // ID, which etcd chose at random.
    let key = &b["key"];
    assert_eq!(
        revs(key),
        [(2, false), (3, false), (4, false), (5, true), (6, false)]
    );
    let values: Vec<String> = key.values().map(|v| hex(v)).collect();
    assert_eq!(
        values[..4],
        [
            "0a01611002180220012a0131",
            "0a01621003180320012a0132",
            "0a01611002180420022a0133",
            "0a0162"
        ]
    );
    assert_eq!(values[4], "0a01631006180620012a01343007");
    assert_eq!(b["lease"][&7u64.to_be_bytes().to_vec()], [0x08, 0x07, 0x10, 0x64]);
    assert_eq!(b["auth"][&b"authRevision".to_vec()], 1u64.to_be_bytes());
    assert_eq!(b["cluster"][&b"clusterVersion".to_vec()], b"3.5.0");
    let compact = RevisionKey::new(Revision(3), 0).encode(false);
    let meta = &b["meta"];
    assert_eq!(meta[&b"finishedCompactRev".to_vec()], compact);
    assert_eq!(meta[&b"scheduledCompactRev".to_vec()], compact);
    assert_eq!(meta[&b"consistent_index".to_vec()], 42u64.to_be_bytes());
    assert_eq!(meta[&b"term".to_vec()], 3u64.to_be_bytes());
    assert_eq!(
        String::from_utf8(b["members"][&b"8e9e05c52164694d".to_vec()].clone()).unwrap(),
        r#"{"id":10276657743932975437,"peerURLs":["http://127.0.0.1:2380"],"name":"n1","clientURLs":["http://127.0.0.1:2379"]}"#
    );
    assert!(b["alarm"].is_empty() && b["members_removed"].is_empty() && b["authUsers"].is_empty());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes revision `main` of `key` straight into the `kv` keyspace, as the apply path stores it.
fn raw(s: &Storage, main: i64, key: &str, create: i64, version: i64, tombstone: bool) {
    let kv = KeyValue {
        key: Bytes::from(key.to_string()),
        value: if tombstone { Bytes::new() } else { Bytes::from("v") },
        create_revision: if tombstone { 0 } else { create },
        mod_revision: main,
        version: if tombstone { 0 } else { version },
        lease: 0,
    };
    s.kv.insert(
        RevisionKey::new(Revision(main), 0).encode(tombstone),
        kv.encode_to_vec(),
    )
    .unwrap();
}

#[test]
fn versions_a_compaction_dropped_but_not_yet_deleted_are_left_out() {
    // put a (2), put b (3), put a (4), del b (5), put c (6), compaction at 5 recorded but the
    // background deleter has not run: etcd keeps a@4 and c@6 only (keyIndex.compact).
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path()).unwrap();
    raw(&s, 2, "a", 2, 1, false);
    raw(&s, 3, "b", 3, 1, false);
    raw(&s, 4, "a", 2, 2, false);
    raw(&s, 5, "b", 0, 0, true);
    raw(&s, 6, "c", 6, 1, false);
    s.meta.insert(schema::META_REVISION, 6i64.to_be_bytes()).unwrap();
    s.meta
        .insert(schema::META_COMPACT_REVISION, 5i64.to_be_bytes())
        .unwrap();

    let (pending, info) = image(&s, true);
    assert_eq!(revs(&buckets(pending)["key"]), [(4, false), (6, false)]);
    assert_eq!((info.revision, info.key_entries), (Revision(6), 2));
    let (stale, _) = image(&s, false);
    assert_eq!(
        revs(&buckets(stale)["key"]).len(),
        5,
        "without the filter the stale versions stay"
    );
}

fn history(store: &Store) {
    for i in 0..300 {
        put(store, &format!("k{}", i % 37), &format!("v{i}"), 0);
        if i % 11 == 0 {
            del(store, &format!("k{}", i % 5));
        }
    }
}

#[test]
fn the_filtered_image_equals_the_image_after_physical_compaction() {
    // Two stores with the same history; the first only records the compaction (as if the
    // deleter had not run yet), the second compacts for real.
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (s1, s2) = (
        Storage::open(d1.path()).unwrap(),
        Storage::open(d2.path()).unwrap(),
    );
    let (store1, store2) = (Store::open(s1.clone()).unwrap(), Store::open(s2.clone()).unwrap());
    history(&store1);
    history(&store2);
    let at = Revision(store2.current_revision().0 - 50);
    let mut t = store2.write();
    t.compact(at).unwrap();
    t.commit(|_| {}).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(store2.wait_compacted(at));
    s1.meta
        .insert(schema::META_COMPACT_REVISION, at.0.to_be_bytes())
        .unwrap();
    let (compacted, _) = image(&s2, false);
    let (filtered, _) = image(&s1, true);
    let (unfiltered, _) = image(&s1, false);
    let compacted = buckets(compacted);
    assert_eq!(buckets(filtered)["key"], compacted["key"]);
    assert!(buckets(unfiltered)["key"].len() > compacted["key"].len());
}

#[test]
fn compacting_away_every_version_keeps_the_revision() {
    // Deleting every key and compacting at the current revision leaves `key` empty; etcd then
    // takes the current revision from finishedCompactRev.
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path()).unwrap();
    let store = Store::open(s.clone()).unwrap();
    put(&store, "a", "1", 0);
    del(&store, "a");
    let mut t = store.write();
    t.compact(Revision(3)).unwrap();
    t.commit(|_| {}).unwrap();
    let (bytes, info) = image(&s, true);
    assert_eq!(
        (info.revision, info.store_revision, info.key_entries),
        (Revision(3), Revision(3), 0)
    );
    assert!(buckets(bytes)["key"].is_empty());
}

#[test]
fn an_empty_store_images_like_a_fresh_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path()).unwrap();
    let (bytes, info) = image(&s, false);
    assert_eq!(info.revision, Revision::INITIAL);
    assert_eq!(info.compact_revision, NEVER_COMPACTED);
    let b = buckets(bytes);
    assert!(!b["meta"].contains_key(b"finishedCompactRev".as_slice()));
    assert!(b["key"].is_empty());
}

#[test]
fn auth_users_roles_and_flags_are_written_in_etcds_encodings() {
    // etcd server/auth/store.go: authUsers name → authpb.User, authRoles name → authpb.Role,
    // auth/authEnabled one byte, auth/authRevision u64 big-endian.
    use crate::auth::state::{Change, ROOT, Snapshot};
    use crate::proto::authpb::{Role, User};
    use crate::proto::etcdserverpb as pb;
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path()).unwrap();
    let mut state = Snapshot::default();
    state
        .apply(&Change::UserAdd(&pb::AuthUserAddRequest {
            name: ROOT.into(),
            hashed_password: "$2a$10$hash".into(),
            ..Default::default()
        }))
        .unwrap();
    state
        .apply(&Change::RoleAdd(&pb::AuthRoleAddRequest { name: ROOT.into() }))
        .unwrap();
    state
        .apply(&Change::UserGrantRole(&pb::AuthUserGrantRoleRequest {
            user: ROOT.into(),
            role: ROOT.into(),
        }))
        .unwrap();
    state.apply(&Change::Enable).unwrap();
    s.meta.insert(schema::META_AUTH, state.encode()).unwrap();
    let b = buckets(image(&s, false).0);
    assert_eq!(b["auth"][&b"authEnabled".to_vec()], vec![1u8]);
    assert_eq!(b["auth"][&b"authRevision".to_vec()], 4u64.to_be_bytes());
    let user = User::decode(b["authUsers"][&b"root".to_vec()].as_slice()).unwrap();
    assert_eq!(&user.name[..], b"root");
    assert_eq!(&user.password[..], b"$2a$10$hash");
    assert_eq!(user.roles, vec!["root".to_string()]);
    let role = Role::decode(b["authRoles"][&b"root".to_vec()].as_slice()).unwrap();
    assert_eq!(&role.name[..], b"root");
}
