use std::collections::BTreeMap;
use std::io::Cursor;

use bytes::Bytes;

use super::*;
use crate::bbolt::{PAGE_SIZE_DEFAULT, Writer};
use crate::error::Error;
use crate::lease::lessor::{lease_key, lease_record};
use crate::mvcc::{KeyRange, RangeOptions, Store};
use crate::raft::types::MemberNode;
use crate::snapshot::{ImageSettings, write_image};
use crate::types::{ClusterId, LeaseId, MemberId};

/// `etcdctl snapshot save` from etcd 3.4.23 after: put a 1, put b 2, put a 3, del b, lease
/// grant 100, put c 4 --lease, compaction 3 (revisions 2..6; see bbolt/tests.rs).
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/etcd-3.4.23-snapshot.db"
);

fn fixture() -> Vec<u8> {
    std::fs::read(FIXTURE).unwrap()
}

/// Converts `image` into a fresh storage under `dir`.
fn converted(dir: &Path, image: Vec<u8>, bump: u64) -> (Storage, Restored) {
    let storage = Storage::open(dir).unwrap();
    let restored = convert(&Reader::open(image).unwrap(), &storage, bump, bump > 0).unwrap();
    (storage, restored)
}

fn all(store: &Store, revision: i64) -> Result<Vec<KeyValue>, Error> {
    store
        .range(
            &KeyRange::From(vec![0]),
            RangeOptions {
                revision,
                ..RangeOptions::default()
            },
        )
        .map(|r| r.kvs)
}

fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64, lease: i64) -> KeyValue {
    KeyValue {
        key: Bytes::from(key.to_owned()),
        value: Bytes::from(value.to_owned()),
        create_revision: create,
        mod_revision: modified,
        version,
        lease,
    }
}

fn bootstrap() -> Bootstrap {
    let node = |n: &str, port: u16| MemberNode {
        name: n.into(),
        peer_urls: vec![format!("http://127.0.0.1:{port}")],
        client_urls: Vec::new(),
    };
    Bootstrap {
        member: MemberId(11),
        cluster: ClusterId(99),
        members: BTreeMap::from([(11, node("a", 1)), (12, node("b", 2))]),
    }
}

fn options(data_dir: PathBuf) -> RestoreOptions {
    RestoreOptions {
        data_dir,
        bootstrap: bootstrap(),
        skip_hash_check: false,
        bump_revision: 0,
        mark_compacted: false,
    }
}

#[test]
fn a_real_etcd_snapshot_becomes_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, restored) = converted(dir.path(), fixture(), 0);
    assert_eq!(restored.revision, Revision(6));
    assert_eq!(restored.compact_revision, Revision(3));
    assert_eq!(
        (restored.key_entries, restored.leases, restored.alarms),
        (5, 1, 0)
    );
    let store = Store::open(storage.clone()).unwrap();
    assert_eq!(store.current_revision(), Revision(6));
    assert_eq!(store.compact_revision(), Revision(3));
    let lease = all(&store, 0).unwrap()[1].lease;
    assert_ne!(lease, 0, "c is attached to the lease");
    assert_eq!(
        all(&store, 0).unwrap(),
        [kv("a", "3", 2, 4, 2, 0), kv("c", "4", 6, 6, 1, lease)]
    );
    // History above the compaction is readable; below it is compacted (etcd kvstore.restore).
    assert_eq!(
        all(&store, 4).unwrap(),
        [kv("a", "3", 2, 4, 2, 0), kv("b", "2", 3, 3, 1, 0)]
    );
    assert_eq!(all(&store, 2), Err(Error::Compacted));
    let lessor = crate::lease::Lessor::load(&storage, &store).unwrap();
    assert_eq!(lessor.ids(), [LeaseId(lease)]);
    assert_eq!(lessor.keys(LeaseId(lease)), Some(vec![Bytes::from("c")]));
}

#[test]
fn bump_and_mark_compacted_move_the_revision_and_compact_below_it() {
    // etcdutl `modifyLatestRevision`: latest (6) + 1000, marker entry, scheduled compaction.
    let dir = tempfile::tempdir().unwrap();
    let (storage, restored) = converted(dir.path(), fixture(), 1000);
    assert_eq!(restored.revision, Revision(1006));
    assert_eq!(restored.compact_revision, Revision(1006));
    assert_eq!(restored.key_entries, 6);
    let marker = storage
        .kv
        .get(RevisionKey::new(Revision(1006), 0).encode(false))
        .unwrap();
    assert_eq!(marker.as_deref(), Some(&b""[..]), "etcd writes an empty value");
    let store = Store::open(storage).unwrap();
    assert_eq!(store.current_revision(), Revision(1006));
    assert_eq!(store.compact_revision(), Revision(1006));
    let lease = all(&store, 0).unwrap()[1].lease;
    assert_eq!(
        all(&store, 0).unwrap(),
        [kv("a", "3", 2, 4, 2, 0), kv("c", "4", 6, 6, 1, lease)],
        "the marker is not a visible key"
    );
    assert_eq!(all(&store, 1005), Err(Error::Compacted));
    assert_eq!(all(&store, 6), Err(Error::Compacted));
    assert_eq!(
        store.history(Revision(7), Revision(1006), 10),
        Err(Error::Compacted)
    );
}

#[test]
fn a_mainstay_image_round_trips_through_restore() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = Storage::open(src_dir.path()).unwrap();
    let store = Store::open(src.clone()).unwrap();
    src.lease
        .insert(lease_key(LeaseId(7)), lease_record(LeaseId(7), 100, 40))
        .unwrap();
    for i in 0..200i64 {
        let mut t = store.write();
        let key = format!("k{}", i % 17);
        if i % 11 == 5 {
            t.delete_range(&KeyRange::Single(key.into_bytes())).unwrap();
        } else {
            let lease = if i % 3 == 0 { 7 } else { 0 };
            t.put(
                Bytes::from(key),
                Bytes::from(vec![b'x'; (i * 37 % 900) as usize]),
                LeaseId(lease),
            )
            .unwrap();
        }
        if i == 120 {
            t.compact(Revision(60)).unwrap();
        }
        t.commit(|_| {}).unwrap();
    }
    let (image, _) = write_image(
        Cursor::new(Vec::new()),
        &src,
        &src.db.snapshot(),
        &ImageSettings {
            cluster_version: "3.5.0".into(),
            compaction_deleted: Revision(0),
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (storage, restored) = converted(dir.path(), image.into_inner(), 0);
    let restored_store = Store::open(storage.clone()).unwrap();
    assert_eq!(restored.revision, store.current_revision());
    assert_eq!(restored_store.current_revision(), store.current_revision());
    assert_eq!(restored_store.compact_revision(), Revision(60));
    for rev in [0, 60, 61, 100, 150, store.current_revision().0] {
        assert_eq!(all(&restored_store, rev), all(&store, rev), "at {rev}");
    }
    assert_eq!(restored_store.hash_kv(0), store.hash_kv(0));
    assert_eq!(
        storage.lease.get(lease_key(LeaseId(7))).unwrap().as_deref(),
        Some(&lease_record(LeaseId(7), 100, 40)[..])
    );
}

/// Key/value pairs of one bucket.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A bbolt file with etcd's buckets, from `(bucket, pairs)` in name order.
fn etcd_file(buckets: &[(&[u8], Pairs)]) -> Vec<u8> {
    let mut w = Writer::new(Cursor::new(Vec::new()), PAGE_SIZE_DEFAULT).unwrap();
    for (name, pairs) in buckets {
        w.bucket(name).unwrap();
        for (k, v) in pairs {
            w.put(k, v).unwrap();
        }
    }
    w.finish().unwrap().0.into_inner()
}

#[test]
fn alarms_are_carried_over_and_auth_enabled_is_refused() {
    let alarm = AlarmMember {
        member_id: 5,
        alarm: crate::proto::etcdserverpb::AlarmType::Nospace as i32,
    };
    let key = vec![(
        RevisionKey::new(Revision(2), 0).encode(false),
        kv("a", "1", 2, 2, 1, 0).encode_to_vec(),
    )];
    let file = etcd_file(&[
        (bucket::ALARM, vec![(alarm.encode_to_vec(), Vec::new())]),
        (bucket::AUTH, vec![(b"authEnabled".to_vec(), vec![0])]),
        (bucket::AUTH_USERS, vec![(b"root".to_vec(), b"x".to_vec())]),
        (bucket::KEY, key.clone()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (storage, restored) = converted(dir.path(), file, 0);
    assert_eq!((restored.alarms, restored.dropped_users), (1, 1));
    assert_eq!(restored.compact_revision, NEVER_COMPACTED);
    let alarms = crate::alarm::Alarms::load(&storage).unwrap();
    assert!(alarms.is_active(crate::proto::etcdserverpb::AlarmType::Nospace));

    let enabled = etcd_file(&[
        (bucket::AUTH, vec![(b"authEnabled".to_vec(), vec![1])]),
        (bucket::KEY, key),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let e = convert(&Reader::open(enabled).unwrap(), &storage, 0, false).unwrap_err();
    assert!(matches!(e, RestoreError::AuthEnabled), "{e}");
}

#[test]
fn a_record_that_is_not_etcds_encoding_is_refused() {
    let file = etcd_file(&[(bucket::KEY, vec![(b"not-a-revision".to_vec(), Vec::new())])]);
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path()).unwrap();
    let e = convert(&Reader::open(file).unwrap(), &storage, 0, false).unwrap_err();
    assert!(matches!(e, RestoreError::Corrupt(_)), "{e}");
}

#[test]
fn restore_records_the_identity_and_a_fresh_raft_state() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.db");
    std::fs::write(&file, fixture()).unwrap();
    let data = dir.path().join("data");
    let restored = restore(&file, &options(data.clone())).unwrap();
    assert_eq!(restored.revision, Revision(6));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let storage = Storage::open(&data).unwrap();
    assert_eq!(Bootstrap::load(&storage).unwrap(), Some(bootstrap()));
    assert!(storage.raft_log.is_empty().unwrap());
    assert!(storage.raft_meta.is_empty().unwrap());
    assert_eq!(storage.meta.get(schema::META_APPLIED).unwrap(), None);
}

#[test]
fn a_wrong_trailer_is_refused_with_etcdutls_text_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = fixture();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let file = dir.path().join("snap.db");
    std::fs::write(&file, &bytes).unwrap();
    let data = dir.path().join("data");
    let e = restore(&file, &options(data.clone())).unwrap_err();
    // etcdutl copyAndVerifyDB: fmt.Errorf("expected sha256 %v, got %v", sha, dbsha).
    let text = e.to_string();
    assert!(text.starts_with("expected sha256 ["), "{text}");
    let expected: Vec<String> = bytes[bytes.len() - 32..].iter().map(u8::to_string).collect();
    assert!(text.contains(&format!("[{}]", expected.join(" "))), "{text}");
    assert!(!data.exists());
    // --skip-hash-check accepts it.
    let opts = RestoreOptions {
        skip_hash_check: true,
        ..options(data.clone())
    };
    assert_eq!(restore(&file, &opts).unwrap().revision, Revision(6));
}

#[test]
fn a_raw_member_db_needs_skip_hash_check() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fixture();
    let file = dir.path().join("db");
    std::fs::write(&file, &bytes[..bytes.len() - 32]).unwrap();
    let data = dir.path().join("data");
    let e = restore(&file, &options(data.clone())).unwrap_err();
    assert_eq!(e.to_string(), "snapshot missing hash but --skip-hash-check=false");
    assert!(!data.exists());
    let opts = RestoreOptions {
        skip_hash_check: true,
        ..options(data)
    };
    assert_eq!(restore(&file, &opts).unwrap().revision, Revision(6));
}

#[test]
fn a_damaged_file_fails_and_leaves_an_empty_target_empty() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fixture();
    // Truncated: the trailer check fails first (size % 512 != 32).
    let file = dir.path().join("snap.db");
    std::fs::write(&file, &bytes[..bytes.len() - 4096]).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    assert!(restore(&file, &options(data.clone())).is_err());
    // A flipped byte inside a page, trailer skipped: the bbolt check refuses it.
    let mut damaged = bytes.clone();
    let root = u64::from_le_bytes(damaged[32..40].try_into().unwrap()) as usize;
    damaged[root * 4096 + 8] = 0xee;
    std::fs::write(&file, &damaged).unwrap();
    let opts = RestoreOptions {
        skip_hash_check: true,
        ..options(data.clone())
    };
    assert!(matches!(restore(&file, &opts), Err(RestoreError::Bbolt(_))));
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
}

#[test]
fn flags_and_target_are_checked_like_etcdutl() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snap.db");
    std::fs::write(&file, fixture()).unwrap();
    let data = dir.path().join("data");
    let bump_only = RestoreOptions {
        bump_revision: 5,
        ..options(data.clone())
    };
    assert_eq!(
        restore(&file, &bump_only).unwrap_err().to_string(),
        "--mark-compacted required if --revision-bump > 0"
    );
    let mark_only = RestoreOptions {
        mark_compacted: true,
        ..options(data.clone())
    };
    assert!(matches!(
        restore(&file, &mark_only),
        Err(RestoreError::BumpNeedsMarkCompacted)
    ));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("x"), b"").unwrap();
    assert_eq!(
        restore(&file, &options(data.clone())).unwrap_err().to_string(),
        format!("data-dir \"{}\" not empty or could not be read", data.display())
    );
}
