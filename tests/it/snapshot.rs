//! `Maintenance.Snapshot` produces an etcd backend image that etcd's own tools accept
//! (etcd-compat.md §8.1, §8.5): the real `etcdctl snapshot save` stores it, `etcdctl snapshot
//! status` (3.4.23) reads it, and the real etcd 3.4 restored from it with `etcdctl snapshot
//! restore` serves the same keys, revisions, compaction and leases as the Mainstay member it
//! came from. A snapshot taken while writers keep writing is one consistent revision.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mainstay::bbolt::{BboltError, Reader};
use mainstay::mvcc::RevisionKey;
use mainstay::proto::etcdserverpb::lease_client::LeaseClient;
use mainstay::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, HashKvRequest, LeaseGrantRequest, LeaseLeasesRequest,
    LeaseTimeToLiveRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, SnapshotRequest,
    SnapshotResponse, TxnRequest, request_op,
};
use mainstay::proto::mvccpb::KeyValue;
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use crate::harness::Server;

/// etcd's snapshot chunk (`v3rpc/maintenance.go: snapshotSendBufferSize`).
const CHUNK_BYTES: usize = 32 * 1024;
/// Transactions each writer issues at most while a snapshot is taken.
const WRITES_MAX: usize = 5_000;
/// How long the writers may take to show progress.
const DEADLINE: Duration = Duration::from_secs(30);

pub(crate) fn put(k: &str, v: impl Into<Bytes>, lease: i64) -> PutRequest {
    PutRequest {
        key: Bytes::from(k.to_string()),
        value: v.into(),
        lease,
        ..PutRequest::default()
    }
}

pub(crate) async fn grant(s: &Server, ttl: i64) -> i64 {
    let mut l = LeaseClient::connect(s.endpoint()).await.unwrap();
    l.lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id
}

/// A varied history: overwritten and deleted keys, keys on two leases, a lease without keys,
/// values spanning many bbolt pages, a compaction and writes after it. Returns the compaction
/// revision.
pub(crate) async fn write_history(s: &Server) -> i64 {
    let mut kv = s.kv().await;
    let with_keys = grant(s, 600).await;
    let other = grant(s, 900).await;
    grant(s, 1200).await;
    for i in 0..120 {
        let lease = match i % 7 {
            0 => with_keys,
            3 => other,
            _ => 0,
        };
        let value = vec![b'a' + (i % 26) as u8; 50 + (i * 97) % 3000];
        kv.put(put(&format!("k/{:02}", i % 40), value, lease))
            .await
            .unwrap();
        if i % 13 == 0 {
            kv.delete_range(DeleteRangeRequest {
                key: Bytes::from(format!("k/{:02}", (i + 5) % 40)),
                ..DeleteRangeRequest::default()
            })
            .await
            .unwrap();
        }
    }
    // A value spanning many pages (bbolt overflow pages).
    kv.put(put("big", vec![7u8; 200_000], 0)).await.unwrap();
    let compact = kv
        .range(range_all(0))
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision
        - 20;
    kv.compact(CompactionRequest {
        revision: compact,
        physical: true,
    })
    .await
    .unwrap();
    for i in 0..30 {
        kv.put(put(&format!("k/{:02}", i), format!("after-{i}"), 0))
            .await
            .unwrap();
    }
    kv.txn(TxnRequest {
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(put("t/1", "x", with_keys))),
            },
            RequestOp {
                request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                    key: Bytes::from("k/39"),
                    ..DeleteRangeRequest::default()
                })),
            },
        ],
        ..TxnRequest::default()
    })
    .await
    .unwrap();
    compact
}

pub(crate) fn range_all(revision: i64) -> RangeRequest {
    RangeRequest {
        key: Bytes::from_static(b"\0"),
        range_end: Bytes::from_static(b"\0"),
        revision,
        ..RangeRequest::default()
    }
}

/// Runs `etcdctl snapshot save` against `s` into `file`.
pub(crate) fn save(s: &Server, file: &Path) {
    let (ok, out, err) = s.etcdctl(&["snapshot", "save", &file.display().to_string()]);
    assert!(
        ok,
        "etcdctl snapshot save failed: {out}{err}\nserver log:\n{}",
        s.log_text()
    );
}

/// `etcdctl snapshot status FILE -w json` (3.4 prints hash, revision, totalKey, totalSize).
fn etcdctl_status(s: &Server, file: &Path) -> serde_json::Value {
    let (ok, out, err) = s.etcdctl(&["snapshot", "status", &file.display().to_string(), "-w", "json"]);
    assert!(ok, "etcdctl snapshot status failed: {out}{err}");
    serde_json::from_str(out.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_saves_a_snapshot_whose_status_matches_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    write_history(&s).await;
    let revision = s
        .kv()
        .await
        .range(range_all(0))
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision;
    let file = dir.path().join("backup.db");
    save(&s, &file);

    // etcd's client keeps db bytes + SHA-256; bbolt files are whole pages, so size % 512 == 32.
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(bytes.len() % 512, 32);
    let (db, sha) = bytes.split_at(bytes.len() - 32);
    assert_eq!(Sha256::digest(db).as_slice(), sha);

    let status = etcdctl_status(&s, &file);
    assert_eq!(status["revision"], revision, "{status}");
    assert_eq!(status["totalSize"], db.len() as u64, "{status}");
    // Our status is pinned to etcdctl's on a real etcd file (snapshot::status unit test).
    let ours = mainstay::snapshot::status::status(&Reader::open(db.to_vec()).unwrap()).unwrap();
    assert_eq!(status["hash"], ours.hash, "{status}");
    assert_eq!(status["totalKey"], ours.total_key, "{status}");
    assert_eq!(ours.revision, revision);
}

/// Every key/value of the store, sorted.
pub(crate) async fn kvs(s: &Server, revision: i64) -> Result<RangeResponse, tonic::Status> {
    s.kv()
        .await
        .range(range_all(revision))
        .await
        .map(|r| r.into_inner())
}

/// (ID, granted TTL, sorted keys) of every lease, sorted by ID.
pub(crate) async fn leases(s: &Server) -> Vec<(i64, i64, Vec<Bytes>)> {
    let mut l: LeaseClient<Channel> = LeaseClient::connect(s.endpoint()).await.unwrap();
    let mut ids: Vec<i64> = l
        .lease_leases(LeaseLeasesRequest {})
        .await
        .unwrap()
        .into_inner()
        .leases
        .into_iter()
        .map(|x| x.id)
        .collect();
    ids.sort_unstable();
    let mut out = Vec::new();
    for id in ids {
        let t = l
            .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
            .await
            .unwrap()
            .into_inner();
        assert!(t.ttl > 0, "lease {id:x} alive");
        let mut keys = t.keys;
        keys.sort();
        out.push((t.id, t.granted_ttl, keys));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restored_from_a_mainstay_snapshot_serves_the_same_data() {
    let (dm, de) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = Server::mainstay(dm.path()).await;
    let compact = write_history(&m).await;
    let file = dm.path().join("backup.db");
    save(&m, &file);
    let e = Server::etcd_restored(de.path(), &file).await;

    let (a, b) = (kvs(&m, 0).await.unwrap(), kvs(&e, 0).await.unwrap());
    assert!(a.count > 30);
    assert_eq!(
        a.kvs, b.kvs,
        "keys, values, create/mod revisions, versions and leases"
    );
    assert_eq!(
        a.header.unwrap().revision,
        b.header.unwrap().revision,
        "current revision"
    );
    // History after the compaction, and the compaction boundary itself.
    for rev in [compact, compact + 7, compact + 25] {
        assert_eq!(
            kvs(&m, rev).await.unwrap().kvs,
            kvs(&e, rev).await.unwrap().kvs,
            "at {rev}"
        );
    }
    for s in [&m, &e] {
        let err = kvs(s, compact - 1).await.unwrap_err();
        assert_eq!(
            err.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
    }
    let hash_kv = |s: &Server| {
        let endpoint = s.endpoint();
        async move {
            mainstay::proto::etcdserverpb::maintenance_client::MaintenanceClient::connect(endpoint)
                .await
                .unwrap()
                .hash_kv(HashKvRequest { revision: 0 })
                .await
                .unwrap()
                .into_inner()
                .compact_revision
        }
    };
    assert_eq!(hash_kv(&m).await, compact);
    assert_eq!(hash_kv(&e).await, compact);
    let (lm, le) = (leases(&m).await, leases(&e).await);
    assert_eq!(lm.len(), 3);
    assert!(
        lm.iter().any(|(_, _, keys)| keys.is_empty()),
        "a lease without keys"
    );
    assert_eq!(lm, le, "lease IDs, TTLs and attached keys");
}

/// Takes a snapshot through gRPC; checks the stream's shape against etcd's (32 KiB chunks,
/// `remaining_bytes` counting down, no header, then one message with the SHA-256) and returns
/// the image.
async fn snapshot_stream(s: &Server) -> Vec<u8> {
    let mut stream = s
        .maintenance()
        .await
        .snapshot(SnapshotRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut messages: Vec<SnapshotResponse> = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        messages.push(m);
    }
    let (last, data) = messages.split_last().unwrap();
    let image: Vec<u8> = data.iter().flat_map(|m| m.blob.to_vec()).collect();
    let mut sent = 0u64;
    for m in data {
        assert!(m.header.is_none(), "etcd sends no header");
        assert!(!m.blob.is_empty() && m.blob.len() <= CHUNK_BYTES);
        sent += m.blob.len() as u64;
        assert_eq!(m.remaining_bytes, image.len() as u64 - sent);
    }
    assert!(data.len() > 1, "a multi-chunk image");
    assert_eq!(last.remaining_bytes, 0);
    assert_eq!(last.blob.as_ref(), Sha256::digest(&image).as_slice());
    image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_during_writes_is_one_consistent_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let mut kv = s.kv().await;
    for i in 0..100 {
        kv.put(put(&format!("bulk/{i}"), vec![1u8; 10_000], 0))
            .await
            .unwrap();
    }
    // Writers: every transaction puts x/<w>/<n> and y/<w>/<n> — one revision, two changes.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let (mut kv, stop) = (s.kv().await, stop.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..WRITES_MAX {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let op = |k: String| RequestOp {
                    request: Some(request_op::Request::RequestPut(put(&k, i.to_string(), 0))),
                };
                kv.txn(TxnRequest {
                    success: vec![op(format!("x/{w}/{}", i % 20)), op(format!("y/{w}/{}", i % 20))],
                    ..TxnRequest::default()
                })
                .await
                .unwrap();
            }
        }));
    }
    let start = kvs(&s, 0).await.unwrap().header.unwrap().revision;
    wait_for_revision(&s, start + 20).await;
    let image = snapshot_stream(&s).await;

    // Revisions in the image: each writer revision complete (subs 0 and 1), none partial.
    let r = Reader::open(image).unwrap();
    r.check().unwrap();
    let mut subs: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut live: BTreeMap<Bytes, KeyValue> = BTreeMap::new();
    r.for_each(&r.bucket(b"key").unwrap(), |k, v| {
        let (rev, tombstone) = RevisionKey::decode(k).unwrap();
        subs.entry(rev.main).or_default().push(rev.sub);
        let kv = KeyValue::decode(v).unwrap();
        assert!(!tombstone);
        live.insert(kv.key.clone(), kv);
        Ok::<(), BboltError>(())
    })
    .unwrap();
    let at = *subs.keys().last().unwrap();
    for (rev, s) in subs.range(start + 1..) {
        assert_eq!(s, &[0, 1], "revision {rev} is a whole transaction");
    }
    // Writers were not blocked: the store moves past the image's revision while they run.
    wait_for_revision(&s, at + 10).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    // The image is exactly the store at its revision.
    let expected = kvs(&s, at).await.unwrap().kvs;
    assert_eq!(live.into_values().collect::<Vec<_>>(), expected);
}

async fn wait_for_revision(s: &Server, revision: i64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if kvs(s, 0).await.unwrap().header.unwrap().revision >= revision {
            return;
        }
        assert!(Instant::now() < deadline, "revision {revision} not reached");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `mainstayctl snapshot status FILE -w FORMAT`; returns (exit ok, stdout).
fn mainstayctl_status(file: &Path, format: &str) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mainstayctl"))
        .args(["snapshot", "status"])
        .arg(file)
        .args(["-w", format])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainstayctl_snapshot_status_prints_what_etcdctl_prints() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    write_history(&s).await;
    let ours = dir.path().join("backup.db");
    save(&s, &ours);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/etcd-3.4.23-snapshot.db");
    for file in [ours.as_path(), fixture.as_path()] {
        for format in ["simple", "json", "fields"] {
            let (ok, etcdctl, err) =
                s.etcdctl(&["snapshot", "status", &file.display().to_string(), "-w", format]);
            assert!(ok, "{err}");
            assert_eq!(mainstayctl_status(file, format), (true, etcdctl), "-w {format}");
        }
    }
    // A damaged file is an error, not a status.
    let mut bytes = std::fs::read(&ours).unwrap();
    // The root bucket's page (meta: page header 16 bytes, then magic..flags 16 bytes, root).
    let root = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    bytes[root * 4096 + 8] = 0xee;
    let damaged = dir.path().join("damaged.db");
    std::fs::write(&damaged, bytes).unwrap();
    assert!(!mainstayctl_status(&damaged, "json").0);
}
