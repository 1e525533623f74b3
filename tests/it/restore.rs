//! `mainstayctl snapshot restore` (etcd-compat.md §8.1; etcdutl `snapshot restore`): the way in
//! from etcd and the way back from a backup. A snapshot from the real etcd 3.4 (`etcdctl
//! snapshot save`) or an etcd member's raw `member/snap/db`, and a snapshot from Mainstay, are
//! restored into data directories that `mainstay` serves with the same keys, values,
//! create/mod revisions, versions, leases, current and compaction revisions as the member the
//! snapshot came from; `--bump-revision`/`--mark-compacted` move the revision and compact
//! below it (the Kubernetes restore recommendation); corrupted files are refused with
//! etcdutl's errors; one snapshot restored into three members starts a three-member cluster.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mainstay::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use mainstay::proto::etcdserverpb::watch_client::WatchClient;
use mainstay::proto::etcdserverpb::{
    HashKvRequest, MemberListRequest, RangeResponse, WatchCreateRequest, WatchRequest, watch_request,
};
use tokio_stream::wrappers::ReceiverStream;

use crate::harness::{Kind, Server};
use crate::snapshot::{kvs, leases, put, save, write_history};

/// How long a watch may take to answer.
const WATCH_DEADLINE: Duration = Duration::from_secs(10);

/// `mainstayctl snapshot restore FILE ARGS…`; returns (exit code, stderr).
fn mainstayctl_restore(file: &Path, args: &[String]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mainstayctl"))
        .args(["snapshot", "restore"])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Restores `file` into `member`'s data directory with the member's own bootstrap flags,
/// plus `extra`.
fn restore_into(member: &Server, file: &Path, extra: &[&str]) {
    let mut args = vec![
        format!("--data-dir={}", member.data_dir.display()),
        format!("--name={}", member.name),
        format!("--initial-cluster={}", member.initial_cluster()),
        format!("--initial-advertise-peer-urls={}", member.peer_url()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let (code, err) = mainstayctl_restore(file, &args);
    assert_eq!(code, 0, "mainstayctl snapshot restore failed: {err}");
}

async fn hash_kv(s: &Server) -> (u32, i64, i64) {
    let r = MaintenanceClient::connect(s.endpoint())
        .await
        .unwrap()
        .hash_kv(HashKvRequest { revision: 0 })
        .await
        .unwrap()
        .into_inner();
    (r.hash, r.compact_revision, r.header.unwrap().revision)
}

fn revision(r: &RangeResponse) -> i64 {
    r.header.as_ref().unwrap().revision
}

/// Asserts that `b` serves what `a` serves: every key with value, create/mod revision,
/// version and lease; the current revision; history after the compaction; the compaction
/// boundary; HashKV; and the leases with their TTLs and keys.
async fn assert_same_data(a: &Server, b: &Server, compact: i64) {
    let (x, y) = (kvs(a, 0).await.unwrap(), kvs(b, 0).await.unwrap());
    assert!(x.count > 30);
    assert_eq!(
        x.kvs, y.kvs,
        "keys, values, create/mod revisions, versions and leases"
    );
    assert_eq!(revision(&x), revision(&y), "current revision");
    for rev in [compact, compact + 7, compact + 25] {
        assert_eq!(
            kvs(a, rev).await.unwrap().kvs,
            kvs(b, rev).await.unwrap().kvs,
            "at {rev}"
        );
    }
    for s in [a, b] {
        let err = kvs(s, compact - 1).await.unwrap_err();
        assert_eq!(
            err.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
    }
    let (ha, hb) = (hash_kv(a).await, hash_kv(b).await);
    assert_eq!(
        (ha.1, ha.2),
        (hb.1, hb.2),
        "HashKV compaction revision and revision"
    );
    if a.kind == b.kind {
        // Mainstay's HashKV covers every kept version; it is compared between Mainstay members
        // only (its value differs from etcd's for the same data).
        assert_eq!(ha.0, hb.0, "HashKV");
    }
    let (la, lb) = (leases(a).await, leases(b).await);
    assert_eq!(la.len(), 3);
    assert_eq!(la, lb, "lease IDs, TTLs and attached keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_snapshot_and_an_etcd_member_db_restore_into_mainstay_with_the_same_data() {
    let (de, dm, dr) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut e = Server::start(Kind::Etcd, de.path(), &[]).await;
    let compact = write_history(&e).await;
    let file = de.path().join("backup.db");
    save(&e, &file);

    // The way in from etcd: etcdctl snapshot save on etcd, mainstayctl snapshot restore here.
    let mut m = Server::prepare(Kind::Mainstay, dm.path(), &[]);
    restore_into(&m, &file, &[]);
    Server::start_all(std::slice::from_mut(&mut m)).await;
    assert_same_data(&e, &m, compact).await;

    // A raw member db (a copied /var/lib/etcd) has no SHA-256 trailer: etcdutl's rule is
    // --skip-hash-check. Copied while etcd is stopped, as an operator would.
    let reference = kvs(&e, 0).await.unwrap();
    let expected = (hash_kv(&e).await.1, leases(&e).await);
    e.kill9();
    let db = de.path().join("member.db");
    std::fs::copy(e.data_dir.join("member/snap/db"), &db).unwrap();
    let mut r = Server::prepare(Kind::Mainstay, dr.path(), &[]);
    let (code, err) = mainstayctl_restore(&db, &[format!("--data-dir={}", r.data_dir.display())]);
    assert_eq!(
        (code, err.lines().last().unwrap_or_default()),
        (1, "Error: snapshot missing hash but --skip-hash-check=false")
    );
    assert!(!r.data_dir.exists(), "nothing written on a refused restore");
    restore_into(&r, &db, &["--skip-hash-check"]);
    Server::start_all(std::slice::from_mut(&mut r)).await;
    let got = kvs(&r, 0).await.unwrap();
    assert_eq!(got.kvs, reference.kvs);
    assert_eq!(revision(&got), revision(&reference));
    assert_eq!((hash_kv(&r).await.1, leases(&r).await), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mainstay_snapshot_restores_into_mainstay_with_the_same_data() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::mainstay(da.path()).await;
    let compact = write_history(&a).await;
    let file = da.path().join("backup.db");
    save(&a, &file);
    let mut b = Server::prepare(Kind::Mainstay, db.path(), &[]);
    restore_into(&b, &file, &[]);
    Server::start_all(std::slice::from_mut(&mut b)).await;
    assert_same_data(&a, &b, compact).await;
    // The restored member is a new cluster of one, with the IDs its flags give (etcd derives
    // them the same way from --initial-cluster and --initial-cluster-token).
    let members = b
        .cluster()
        .await
        .member_list(MemberListRequest { linearizable: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(members.members.len(), 1);
    assert_eq!(members.members[0].name, "n1");
    assert_eq!(members.members[0].peer_ur_ls, [b.peer_url()]);
    // It takes writes after the restored history.
    let before = revision(&kvs(&b, 0).await.unwrap());
    let r = b.kv().await.put(put("new", "v", 0)).await.unwrap().into_inner();
    assert_eq!(r.header.unwrap().revision, before + 1);
}

/// Opens a watch on every key from `start` and returns the first response after `created`.
async fn watch_from(s: &Server, start: i64) -> mainstay::proto::etcdserverpb::WatchResponse {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
            key: Bytes::from_static(b"\0"),
            range_end: Bytes::from_static(b"\0"),
            start_revision: start,
            ..WatchCreateRequest::default()
        })),
    })
    .await
    .unwrap();
    let mut stream = WatchClient::connect(s.endpoint())
        .await
        .unwrap()
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let deadline = Instant::now() + WATCH_DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = tokio::time::timeout(left, stream.message())
            .await
            .expect("watch answered in time")
            .unwrap()
            .unwrap();
        if !(r.created && r.events.is_empty() && r.compact_revision == 0 && !r.canceled) {
            drop(tx);
            return r;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bump_revision_and_mark_compacted_move_the_revision_and_compact_everything_below() {
    // etcdutl 3.5 `modifyLatestRevision`: latest + N, scheduled compaction at it; Kubernetes'
    // restore guidance uses it so that informers relist instead of resuming old watches.
    const BUMP: i64 = 1_000_000;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::mainstay(da.path()).await;
    write_history(&a).await;
    let file = da.path().join("backup.db");
    save(&a, &file);
    let before = kvs(&a, 0).await.unwrap();
    let old = revision(&before);

    let mut b = Server::prepare(Kind::Mainstay, db.path(), &[]);
    // Each flag alone is refused (etcdutl: exit status 128, ExitBadArgs).
    for alone in ["--bump-revision=5", "--mark-compacted"] {
        let (code, err) = mainstayctl_restore(
            &file,
            &[format!("--data-dir={}", b.data_dir.display()), alone.into()],
        );
        assert_eq!(
            (code, err.trim_end()),
            (128, "Error: --mark-compacted required if --revision-bump > 0"),
            "{alone}"
        );
    }
    restore_into(
        &b,
        &file,
        &["--bump-revision", &BUMP.to_string(), "--mark-compacted"],
    );
    Server::start_all(std::slice::from_mut(&mut b)).await;

    let after = kvs(&b, 0).await.unwrap();
    assert_eq!(after.kvs, before.kvs, "the data is unchanged, revisions included");
    assert_eq!(revision(&after), old + BUMP);
    let status = b.status().await;
    assert_eq!(status.header.unwrap().revision, old + BUMP);
    for rev in [old, old + BUMP - 1] {
        let err = kvs(&b, rev).await.unwrap_err();
        assert_eq!(
            err.message(),
            "etcdserver: mvcc: required revision has been compacted",
            "read at {rev}"
        );
    }
    assert_eq!(hash_kv(&b).await.1, old + BUMP, "compaction revision");
    // A watch resuming from before the restore is told it was compacted (and canceled).
    let w = watch_from(&b, old + 1).await;
    assert!(w.canceled, "{w:?}");
    assert_eq!(w.compact_revision, old + BUMP);
    // New writes continue above the bump, and watches from there see them.
    let r = b.kv().await.put(put("after", "x", 0)).await.unwrap().into_inner();
    assert_eq!(r.header.unwrap().revision, old + BUMP + 1);
    let w = watch_from(&b, old + BUMP + 1).await;
    assert_eq!(w.events.len(), 1, "{w:?}");
    assert_eq!(w.events[0].kv.as_ref().unwrap().key, Bytes::from("after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_is_refused_with_etcdutls_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/etcd-3.4.23-snapshot.db");
    let mut bytes = std::fs::read(&fixture).unwrap();
    // A flipped byte in the database: the SHA-256 trailer no longer matches.
    bytes[5000] ^= 0x01;
    let file = dir.path().join("flipped.db");
    std::fs::write(&file, &bytes).unwrap();
    let ours = dir.path().join("ours");
    let (code, err) = mainstayctl_restore(&file, &[format!("--data-dir={}", ours.display())]);
    let theirs = Command::new(crate::harness::etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "restore"])
        .arg(&file)
        .arg(format!("--data-dir={}", dir.path().join("theirs").display()))
        .output()
        .unwrap();
    assert_eq!(theirs.status.code(), Some(1));
    let etcd_err = String::from_utf8_lossy(&theirs.stderr);
    let etcd_line = etcd_err.lines().last().unwrap();
    assert!(etcd_line.starts_with("Error: expected sha256 ["), "{etcd_err}");
    assert_eq!(code, 1);
    assert_eq!(
        err.lines().last().unwrap(),
        etcd_line,
        "etcd's text, byte for byte"
    );
    assert!(!ours.exists(), "nothing written");

    // A truncated file has no trailer at all.
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let (code, err) = mainstayctl_restore(&truncated, &[format!("--data-dir={}", ours.display())]);
    assert_eq!(
        (code, err.lines().last().unwrap()),
        (1, "Error: snapshot missing hash but --skip-hash-check=false")
    );
    assert!(!ours.exists(), "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_snapshot_restored_into_three_members_starts_a_cluster_that_agrees() {
    let (da, dc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::mainstay(da.path()).await;
    write_history(&a).await;
    let file = da.path().join("backup.db");
    save(&a, &file);
    let source = kvs(&a, 0).await.unwrap();
    drop(a);

    // etcd's multi-member restore: every member restored from the same file with the same
    // --initial-cluster and its own --name / --initial-advertise-peer-urls.
    let mut members = Server::prepare_cluster(Kind::Mainstay, dc.path(), 3, &[]);
    for m in &members {
        restore_into(m, &file, &[]);
    }
    Server::start_all(&mut members).await;

    let mut cluster_ids = Vec::new();
    for m in &members {
        let got = kvs(m, 0).await.unwrap();
        assert_eq!(got.kvs, source.kvs, "member {}", m.name);
        assert_eq!(revision(&got), revision(&source), "member {}", m.name);
        let list = m
            .cluster()
            .await
            .member_list(MemberListRequest { linearizable: true })
            .await
            .unwrap()
            .into_inner();
        let mut names: Vec<String> = list.members.iter().map(|x| x.name.clone()).collect();
        names.sort();
        assert_eq!(names, ["m0", "m1", "m2"], "member {}", m.name);
        cluster_ids.push(list.header.unwrap().cluster_id);
    }
    assert!(cluster_ids.windows(2).all(|w| w[0] == w[1]), "{cluster_ids:?}");
    // A write through one member is replicated to the others.
    let r = members[2]
        .kv()
        .await
        .put(put("after-restore", "v", 0))
        .await
        .unwrap()
        .into_inner();
    let rev = r.header.unwrap().revision;
    assert_eq!(rev, revision(&source) + 1);
    for m in &members {
        let got = kvs(m, 0).await.unwrap();
        assert_eq!(revision(&got), rev, "member {}", m.name);
        assert!(got.kvs.iter().any(|kv| kv.key == "after-restore"));
    }
    let hashes: Vec<(u32, i64, i64)> = futures::future::join_all(members.iter().map(hash_kv)).await;
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
}

/// `mainstayctl snapshot save --endpoints URL FILE`; returns (exit code, stdout, stderr).
fn mainstayctl_save(endpoints: &str, file: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mainstayctl"))
        .args(["snapshot", "save", "--endpoints", endpoints])
        .arg(file)
        .env_remove("ETCDCTL_ENDPOINTS")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainstayctl_snapshot_save_stores_what_etcdctl_stores() {
    // etcdctl 3.5 `snapshot save` (client/v3/snapshot SaveWithVersion): one endpoint, a file
    // ending in the SHA-256 trailer, `Snapshot saved at FILE`.
    let (dm, de) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = Server::mainstay(dm.path()).await;
    let e = Server::start(Kind::Etcd, de.path(), &[]).await;
    for s in [&m, &e] {
        write_history(s).await;
        let theirs = dm.path().join(format!("{:?}-etcdctl.db", s.kind));
        let ours = dm.path().join(format!("{:?}-mainstayctl.db", s.kind));
        save(s, &theirs);
        let (code, out, err) = mainstayctl_save(&s.endpoint(), &ours);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, format!("Snapshot saved at {}\n", ours.display()));
        assert!(
            !dm.path()
                .join(format!("{:?}-mainstayctl.db.part", s.kind))
                .exists()
        );
        let status = |f: &Path| {
            let (ok, out, err) = s.etcdctl(&["snapshot", "status", &f.display().to_string(), "-w", "json"]);
            assert!(ok, "{err}");
            out
        };
        assert_eq!(status(&ours), status(&theirs), "{:?}", s.kind);
    }
    let (code, _, err) = mainstayctl_save(
        &format!("{},{}", m.endpoint(), e.endpoint()),
        &dm.path().join("x.db"),
    );
    assert_eq!(code, 1);
    assert_eq!(
        err.trim_end(),
        format!(
            "Error: snapshot must be requested to one selected node, not multiple [{} {}]",
            m.endpoint(),
            e.endpoint()
        )
    );
}
