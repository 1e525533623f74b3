//! Maintenance service: the NOSPACE quota walk, alarms, HashKV, MoveLeader and Downgrade
//! (etcd-compat.md §2.9, §3, §7.1), compared with the real etcd 3.4 where it has the feature.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mainstay::proto::etcdserverpb::lease_client::LeaseClient;
use mainstay::proto::etcdserverpb::{
    AlarmRequest, AlarmType, CompactionRequest, DefragmentRequest, DeleteRangeRequest, DowngradeRequest,
    HashKvRequest, LeaseGrantRequest, MoveLeaderRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    alarm_request::AlarmAction, downgrade_request::DowngradeAction, request_op,
};
use tonic::{Code, Status};

use crate::harness::{Kind, Server};

const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

/// (status code, body) of a plain HTTP GET on the client port.
async fn http_get(port: u16, path: &str) -> (u16, String) {
    let out = crate::harness::http_get(port, path).await;
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {out}"));
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// Incompressible bytes (xorshift64*), so fjall's compression cannot hide them from the quota.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn put(k: &[u8], v: &[u8]) -> PutRequest {
    PutRequest {
        key: Bytes::copy_from_slice(k),
        value: Bytes::copy_from_slice(v),
        ..Default::default()
    }
}

fn del(k: &[u8], end: &[u8]) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: Bytes::copy_from_slice(k),
        range_end: Bytes::copy_from_slice(end),
        prev_kv: false,
    }
}

fn txn(ops: Vec<request_op::Request>) -> TxnRequest {
    TxnRequest {
        success: ops.into_iter().map(|r| RequestOp { request: Some(r) }).collect(),
        ..Default::default()
    }
}

fn assert_err(e: &Status, code: Code, msg: &str, what: &str) {
    assert_eq!((e.code(), e.message()), (code, msg), "{what}: {e:?}");
}

async fn member_id(s: &Server) -> u64 {
    let st = s.status().await;
    st.header.unwrap().member_id
}

async fn db_size(s: &Server) -> i64 {
    s.status().await.db_size
}

async fn alarm(s: &Server, action: AlarmAction, member_id: u64, kind: AlarmType) -> Vec<(u64, i32)> {
    s.maintenance()
        .await
        .alarm(AlarmRequest {
            action: action as i32,
            member_id,
            alarm: kind as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .alarms
        .iter()
        .map(|a| (a.member_id, a.alarm))
        .collect()
}

/// The NOSPACE recovery walk (etcd-compat.md §2.9): fill past `--quota-backend-bytes`, check
/// what is refused and what still works, then delete + compact + defrag + disarm.
async fn nospace_walk(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(kind, dir.path(), &["--quota-backend-bytes=2000000"]).await;
    let mut kv = s.kv().await;
    let id = member_id(&s).await;

    // Fill with 100 KB incompressible values until the quota refuses a Put.
    let mut refused = None;
    for i in 0..200u64 {
        match kv
            .put(put(format!("k{i:04}").as_bytes(), &noise(i, 100_000)))
            .await
        {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.unwrap_or_else(|| panic!("{kind:?}: 20 MB of writes never exceeded a 2 MB quota"));
    assert_err(&e, Code::ResourceExhausted, NOSPACE, "put past the quota");
    let full_size = db_size(&s).await;

    // The alarm is listed by etcdctl, the Alarm RPC and Status.
    let expected = format!("memberID:{id} alarm:NOSPACE");
    let (ok, out, err) = s.etcdctl(&["alarm", "list"]);
    assert!(ok, "alarm list: {err}");
    assert_eq!(
        out.lines().map(str::trim).collect::<Vec<_>>(),
        vec![expected.as_str()],
        "{out}"
    );
    assert_eq!(
        alarm(&s, AlarmAction::Get, 0, AlarmType::None).await,
        vec![(id, AlarmType::Nospace as i32)]
    );
    let st = s.status().await;
    // Checked at the end, so a difference there does not hide the rest of the walk.
    let errors_when_full = st.errors;

    // Writes that need space are refused, even small ones.
    let e = kv.put(put(b"small", b"v")).await.unwrap_err();
    assert_err(&e, Code::ResourceExhausted, NOSPACE, "small put under NOSPACE");
    let e = kv
        .txn(txn(vec![request_op::Request::RequestPut(put(b"small", b"v"))]))
        .await
        .unwrap_err();
    assert_err(&e, Code::ResourceExhausted, NOSPACE, "txn put under NOSPACE");
    let mut lease = LeaseClient::connect(s.endpoint()).await.unwrap();
    let e = lease
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .unwrap_err();
    assert_err(&e, Code::ResourceExhausted, NOSPACE, "lease grant under NOSPACE");

    // Reads, deletes, compaction and defragmentation keep working.
    let got = kv
        .range(RangeRequest {
            key: Bytes::from_static(b"k"),
            range_end: Bytes::from_static(b"l"),
            count_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.count > 5, "range under NOSPACE: {got:?}");
    let d = kv.delete_range(del(b"k0000", b"")).await.unwrap().into_inner();
    assert_eq!(d.deleted, 1);
    let t = kv
        .txn(txn(vec![request_op::Request::RequestDeleteRange(del(
            b"k0001", b"",
        ))]))
        .await
        .unwrap()
        .into_inner();
    assert!(t.succeeded);
    let d = kv.delete_range(del(b"k", b"l")).await.unwrap().into_inner();
    assert!(d.deleted > 0);
    let rev = d.header.unwrap().revision;
    kv.compact(CompactionRequest {
        revision: rev,
        physical: true,
    })
    .await
    .unwrap();
    s.maintenance()
        .await
        .defragment(DefragmentRequest {})
        .await
        .unwrap();

    if kind == Kind::Mainstay {
        // etcd 3.4's /health has no `reason` field and no `exclude` parameter (3.5 behaviour).
        let (code, body) = http_get(s.client_port, "/health").await;
        assert_eq!(code, 503, "{body}");
        assert_eq!(body.trim_end(), r#"{"health":"false","reason":"ALARM NOSPACE"}"#);
        let (code, body) = http_get(s.client_port, "/health?exclude=NOSPACE").await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body.trim_end(), r#"{"health":"true","reason":""}"#);
        // NOSPACE does not make the member unready.
        let (code, body) = http_get(s.client_port, "/readyz").await;
        assert_eq!(code, 200, "{body}");
    }

    // etcdctl defrag shrinks the backend; space freed by deletes shows up (allow a moment
    // for background table work to settle, polling to a deadline).
    let (ok, _, err) = s.etcdctl(&["defrag"]);
    assert!(ok, "etcdctl defrag: {err}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = db_size(&s).await;
    while after >= full_size && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (ok, _, err) = s.etcdctl(&["defrag"]);
        assert!(ok, "etcdctl defrag: {err}");
        after = db_size(&s).await;
    }
    assert!(
        after < full_size,
        "{kind:?}: dbSize {after} after delete+compact+defrag, {full_size} when full"
    );

    // The alarm stays until disarmed; then small writes work again.
    let e = kv.put(put(b"small", b"v")).await.unwrap_err();
    assert_err(
        &e,
        Code::ResourceExhausted,
        NOSPACE,
        "put after defrag, before disarm",
    );
    let (ok, out, err) = s.etcdctl(&["alarm", "disarm"]);
    assert!(ok, "alarm disarm: {err}");
    assert!(out.contains(&expected), "disarm prints the cleared alarm: {out}");
    let (ok, out, _) = s.etcdctl(&["alarm", "list"]);
    assert!(ok && out.trim().is_empty(), "alarm list after disarm: {out:?}");
    kv.put(put(b"small", b"v")).await.unwrap();
    lease
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .unwrap();
    let st = s.status().await;
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    if kind == Kind::Mainstay {
        let (code, body) = http_get(s.client_port, "/health").await;
        assert_eq!(code, 200, "{body}");
    }
    // etcd formats each alarm with gogoproto's compact text form, which ends in a space
    // (observed on etcd 3.4.23: `memberID:<id> alarm:NOSPACE `).
    assert_eq!(errors_when_full, vec![format!("{expected} ")], "Status errors");
}

#[tokio::test]
async fn nospace_quota_walk_mainstay() {
    nospace_walk(Kind::Mainstay).await;
}

#[tokio::test]
async fn nospace_quota_walk_etcd() {
    nospace_walk(Kind::Etcd).await;
}

/// ACTIVATE / GET / DEACTIVATE through gRPC; CORRUPT refuses applies with DataLoss.
/// Returns the server (dropped first) with its directory, for the caller's further checks.
async fn corrupt_alarm(kind: Kind) -> (Server, tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(kind, dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let id = member_id(&s).await;
    kv.put(put(b"a", b"1")).await.unwrap();

    assert!(alarm(&s, AlarmAction::Get, 0, AlarmType::None).await.is_empty());
    let raised = alarm(&s, AlarmAction::Activate, id, AlarmType::Corrupt).await;
    assert_eq!(raised, vec![(id, AlarmType::Corrupt as i32)]);
    assert_eq!(
        alarm(&s, AlarmAction::Get, 0, AlarmType::None).await,
        vec![(id, AlarmType::Corrupt as i32)]
    );
    assert_eq!(
        alarm(&s, AlarmAction::Get, 0, AlarmType::Corrupt).await,
        vec![(id, AlarmType::Corrupt as i32)]
    );
    assert!(
        alarm(&s, AlarmAction::Get, 0, AlarmType::Nospace)
            .await
            .is_empty()
    );

    let e = kv.put(put(b"a", b"2")).await.unwrap_err();
    assert_err(
        &e,
        Code::DataLoss,
        "etcdserver: corrupt cluster",
        "put under CORRUPT",
    );
    let st = s.status().await;
    (s, dir, st.errors)
}

/// Status `errors` as etcd reports them: gogoproto compact text, with a trailing space
/// (observed on etcd 3.4.23).
async fn assert_corrupt_status_errors(s: &Server, errors: &[String]) {
    let id = member_id(s).await;
    assert_eq!(errors, [format!("memberID:{id} alarm:CORRUPT ")], "Status errors");
}

async fn corrupt_alarm_clear(s: &Server) {
    let id = member_id(s).await;
    let cleared = alarm(s, AlarmAction::Deactivate, id, AlarmType::Corrupt).await;
    assert_eq!(cleared, vec![(id, AlarmType::Corrupt as i32)]);
    assert!(alarm(s, AlarmAction::Get, 0, AlarmType::None).await.is_empty());
    s.kv().await.put(put(b"a", b"3")).await.unwrap();
}

#[tokio::test]
async fn corrupt_alarm_activate_get_deactivate_mainstay() {
    let (s, _dir, errors) = corrupt_alarm(Kind::Mainstay).await;
    let (code, body) = http_get(s.client_port, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.lines().any(|l| l.starts_with("[-]data_corruption failed: ")),
        "{body}"
    );
    let (code, body) = http_get(s.client_port, "/livez").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, body) = http_get(s.client_port, "/health").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body.trim_end(), r#"{"health":"false","reason":"ALARM CORRUPT"}"#);

    corrupt_alarm_clear(&s).await;
    let (code, body) = http_get(s.client_port, "/readyz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, _) = http_get(s.client_port, "/health").await;
    assert_eq!(code, 200);
    assert_corrupt_status_errors(&s, &errors).await;
}

#[tokio::test]
async fn corrupt_alarm_activate_get_deactivate_etcd() {
    // etcd 3.4 has no /livez or /readyz; only the gRPC part is compared.
    let (s, _dir, errors) = corrupt_alarm(Kind::Etcd).await;
    corrupt_alarm_clear(&s).await;
    assert_corrupt_status_errors(&s, &errors).await;
}

/// The same writes on each server: puts, an overwrite and a delete.
async fn history(s: &Server, last: &[u8]) -> i64 {
    let mut kv = s.kv().await;
    kv.put(put(b"a", b"1")).await.unwrap();
    kv.put(put(b"b", b"2")).await.unwrap();
    kv.put(put(b"c", b"3")).await.unwrap();
    kv.delete_range(del(b"b", b"")).await.unwrap();
    kv.put(put(b"a", last))
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision
}

async fn hash_kv(s: &Server, revision: i64) -> Result<(u32, i64, i64), Status> {
    s.maintenance()
        .await
        .hash_kv(HashKvRequest { revision })
        .await
        .map(|r| {
            let r = r.into_inner();
            (r.hash, r.compact_revision, r.hash_revision)
        })
}

async fn hashkv_case(kind: Kind) {
    let (d1, d2, d3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let s1 = Server::start(kind, d1.path(), &[]).await;
    let s2 = Server::start(kind, d2.path(), &[]).await;
    let s3 = Server::start(kind, d3.path(), &[]).await;
    let rev = history(&s1, b"4").await;
    assert_eq!(history(&s2, b"4").await, rev);
    assert_eq!(history(&s3, b"other").await, rev);

    let h1 = hash_kv(&s1, 0).await.unwrap();
    let h2 = hash_kv(&s2, 0).await.unwrap();
    let h3 = hash_kv(&s3, 0).await.unwrap();
    assert_eq!(h1, h2, "same history, same hash");
    assert_ne!(h1.0, h3.0, "different history, different hash");
    assert_eq!(h1.1, -1, "no compaction yet: etcd 3.4.23 answers -1");
    if kind == Kind::Mainstay {
        // hash_revision is 3.6 (etcd 3.4 leaves it 0).
        assert_eq!(h1.2, rev);
        assert_eq!(hash_kv(&s1, 3).await.unwrap().2, 3);
    }
    // A revision before the last write hashes the same on both, and differs from the current.
    let p1 = hash_kv(&s1, rev - 1).await.unwrap();
    assert_eq!(p1, hash_kv(&s2, rev - 1).await.unwrap());
    assert_eq!(
        p1.0,
        hash_kv(&s3, rev - 1).await.unwrap().0,
        "histories agree up to rev-1"
    );
    assert_ne!(p1.0, h1.0);

    // After the same compaction both still agree and report it.
    for s in [&s1, &s2] {
        s.kv()
            .await
            .compact(CompactionRequest {
                revision: 3,
                physical: true,
            })
            .await
            .unwrap();
    }
    let c1 = hash_kv(&s1, 0).await.unwrap();
    let c2 = hash_kv(&s2, 0).await.unwrap();
    assert_eq!(c1, c2);
    assert_eq!(c1.1, 3, "compact_revision");
    let e = hash_kv(&s1, 2).await.unwrap_err();
    assert_err(&e, Code::OutOfRange, COMPACTED, "hashkv below compaction");

    // etcdctl endpoint hashkv prints `<endpoint>, <hash>`.
    let (ok, out, err) = s1.etcdctl(&["endpoint", "hashkv"]);
    assert!(ok, "endpoint hashkv: {err}");
    assert_eq!(out.trim(), format!("{}, {}", s1.endpoint(), c1.0));
    let (ok, out, err) = s1.etcdctl(&["endpoint", "hashkv", "-w", "json"]);
    assert!(ok, "endpoint hashkv -w json: {err}");
    assert!(out.contains(&format!("\"hash\":{}", c1.0)), "{out}");
    assert!(out.contains("\"compact_revision\":3"), "{out}");
}

#[tokio::test]
async fn hashkv_agrees_on_equal_histories_mainstay() {
    hashkv_case(Kind::Mainstay).await;
}

#[tokio::test]
async fn hashkv_agrees_on_equal_histories_etcd() {
    hashkv_case(Kind::Etcd).await;
}

async fn move_leader_case(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(kind, dir.path(), &[]).await;
    let id = member_id(&s).await;
    let mut m = s.maintenance().await;
    // etcd 3.4 answers without a header, so only success is compared.
    m.move_leader(MoveLeaderRequest { target_id: id }).await.unwrap();
    let e = m
        .move_leader(MoveLeaderRequest {
            target_id: id ^ 0x5a5a,
        })
        .await
        .unwrap_err();
    assert_err(
        &e,
        Code::FailedPrecondition,
        "etcdserver: bad leader transferee",
        "move leader to an unknown member",
    );
}

#[tokio::test]
async fn move_leader_to_self_and_unknown_mainstay() {
    move_leader_case(Kind::Mainstay).await;
}

#[tokio::test]
async fn move_leader_to_self_and_unknown_etcd() {
    move_leader_case(Kind::Etcd).await;
}

/// Downgrade is a 3.5 API (etcd 3.4 answers Unimplemented), so only Mainstay is checked,
/// against the spec (§2.9, §3).
#[tokio::test]
async fn downgrade_validate_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let mut m = s.maintenance().await;
    let req = |action: DowngradeAction, version: &str| DowngradeRequest {
        action: action as i32,
        version: version.to_string(),
    };
    let r = m
        .downgrade(req(DowngradeAction::Validate, "3.4"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.version, "3.5.0");
    let r = m
        .downgrade(req(DowngradeAction::Validate, "3.4.0"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.version, "3.5.0");
    let e = m
        .downgrade(req(DowngradeAction::Validate, "3.3"))
        .await
        .unwrap_err();
    assert_err(
        &e,
        Code::InvalidArgument,
        "etcdserver: invalid downgrade target version",
        "validate 3.3",
    );
    let e = m
        .downgrade(req(DowngradeAction::Validate, "x"))
        .await
        .unwrap_err();
    assert_err(
        &e,
        Code::InvalidArgument,
        "etcdserver: wrong downgrade target version format",
        "validate x",
    );
    let e = m.downgrade(req(DowngradeAction::Cancel, "")).await.unwrap_err();
    assert_err(
        &e,
        Code::FailedPrecondition,
        "etcdserver: no inflight downgrade job",
        "cancel without a job",
    );
}
