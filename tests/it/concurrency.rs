//! The Lock and Election services (etcd `v3lock`, `v3election`) through Rust gRPC clients, and
//! etcdctl 3.4.23's `lock` / `elect` commands, against the built binary.
//!
//! Every scenario is written against etcd's behaviour and also runs against the real etcd
//! (`MAINSTAY_CONCURRENCY_TARGET=etcd cargo test --test it concurrency`, Debian 3.4.23); the
//! error texts and codes are compared with etcd's in one test that drives both servers.
//!
//! Note: etcdctl's `lock` and `elect` do not call the Lock and Election services — they run
//! `clientv3/concurrency` on the client over KV, Lease and Watch. They use the same key scheme
//! (`name/<lease hex>`, oldest create revision wins), so the etcdctl tests also check that the
//! services interoperate with them.
//!
//! Waits are bounded by deadlines. "Still waiting" is asserted with a short bounded timeout on
//! the pending call, after a later write through the same server proved the system moved on.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mainstay::proto::etcdserverpb::lease_client::LeaseClient;
use mainstay::proto::etcdserverpb::{LeaseGrantRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest};
use mainstay::proto::v3electionpb::election_client::ElectionClient;
use mainstay::proto::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ResignRequest,
};
use mainstay::proto::v3lockpb::lock_client::LockClient;
use mainstay::proto::v3lockpb::{LockRequest, UnlockRequest};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::harness::{Kind, Server, etcdctl_bin};

/// How long any single awaited answer may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// How long a call that must still be waiting is given to (wrongly) return.
const STILL_WAITING: Duration = Duration::from_millis(300);

/// The server under test: mainstay, or the real etcd with `MAINSTAY_CONCURRENCY_TARGET=etcd`.
fn kind() -> Kind {
    match std::env::var("MAINSTAY_CONCURRENCY_TARGET").as_deref() {
        Ok("etcd") => Kind::Etcd,
        _ => Kind::Mainstay,
    }
}

async fn start(dir: &Path) -> Server {
    Server::start(kind(), dir, &[]).await
}

async fn lock_client(s: &Server) -> LockClient<Channel> {
    LockClient::connect(s.endpoint()).await.unwrap()
}

async fn election_client(s: &Server) -> ElectionClient<Channel> {
    ElectionClient::connect(s.endpoint()).await.unwrap()
}

async fn lease_client(s: &Server) -> LeaseClient<Channel> {
    LeaseClient::connect(s.endpoint()).await.unwrap()
}

async fn grant(s: &Server, ttl: i64) -> i64 {
    lease_client(s)
        .await
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id
}

fn key_of(name: &str, lease: i64) -> Bytes {
    Bytes::from(format!("{name}/{lease:x}"))
}

async fn exists(s: &Server, key: &Bytes) -> bool {
    let r = s
        .kv()
        .await
        .range(RangeRequest {
            key: key.clone(),
            ..RangeRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    !r.kvs.is_empty()
}

/// Waits (with [`DEADLINE`]) until `key` is gone.
async fn until_deleted(s: &Server, key: &Bytes) {
    let deadline = Instant::now() + DEADLINE;
    while exists(s, key).await {
        assert!(
            Instant::now() < deadline,
            "{key:?} still exists after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes an unrelated key: once it is answered, everything proposed before it was applied.
async fn write_marker(s: &Server) -> i64 {
    s.kv()
        .await
        .put(PutRequest {
            key: Bytes::from_static(b"~marker"),
            value: Bytes::from_static(b"x"),
            ..PutRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision
}

async fn next_observed(stream: &mut Streaming<LeaderResponse>) -> LeaderResponse {
    timeout(DEADLINE, stream.message())
        .await
        .expect("observe: no response in time")
        .unwrap()
        .expect("observe stream ended")
}

// ---------------------------------------------------------------------------------------------
// Lock

#[tokio::test]
async fn lock_is_mutually_exclusive_until_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (l1, l2) = (grant(&s, 30).await, grant(&s, 30).await);
    let mut a = lock_client(&s).await;
    let held = timeout(
        DEADLINE,
        a.lock(LockRequest {
            name: Bytes::from_static(b"mx"),
            lease: l1,
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .into_inner();
    assert_eq!(held.key, key_of("mx", l1));

    let mut b = lock_client(&s).await;
    let mut second = tokio::spawn(async move {
        b.lock(LockRequest {
            name: Bytes::from_static(b"mx"),
            lease: l2,
        })
        .await
    });
    // The second contender's key is written before it starts waiting.
    let deadline = Instant::now() + DEADLINE;
    while !exists(&s, &key_of("mx", l2)).await {
        assert!(Instant::now() < deadline, "second contender never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    write_marker(&s).await;
    assert!(
        timeout(STILL_WAITING, &mut second).await.is_err(),
        "second Lock returned while the first holds the lock"
    );

    let unlocked = a
        .unlock(UnlockRequest { key: held.key })
        .await
        .unwrap()
        .into_inner();
    let unlock_rev = unlocked.header.unwrap().revision;
    let got = timeout(DEADLINE, second)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(got.key, key_of("mx", l2));
    assert!(got.header.unwrap().revision >= unlock_rev);
}

#[tokio::test]
async fn locking_again_with_the_same_lease_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let l = grant(&s, 30).await;
    let mut c = lock_client(&s).await;
    let req = LockRequest {
        name: Bytes::from_static(b"again"),
        lease: l,
    };
    let first = c.lock(req.clone()).await.unwrap().into_inner();
    let second = timeout(DEADLINE, c.lock(req))
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(first.key, second.key);
    // The re-lock only read: no new revision.
    assert_eq!(first.header.unwrap().revision, second.header.unwrap().revision);
}

#[tokio::test]
async fn an_expired_lease_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let short = grant(&s, 2).await;
    let long = grant(&s, 60).await;
    let mut c = lock_client(&s).await;
    let held = c
        .lock(LockRequest {
            name: Bytes::from_static(b"exp"),
            lease: short,
        })
        .await
        .unwrap()
        .into_inner();
    let started = Instant::now();
    // Nobody keeps `short` alive: its key goes with it, which wakes the next waiter.
    let got = timeout(
        Duration::from_secs(2 + 8),
        c.lock(LockRequest {
            name: Bytes::from_static(b"exp"),
            lease: long,
        }),
    )
    .await
    .expect("the lock was not released within TTL + grace")
    .unwrap()
    .into_inner();
    assert_eq!(got.key, key_of("exp", long));
    assert!(!exists(&s, &held.key).await);
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn lock_without_a_lease_grants_a_60s_session_lease() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let held = lock_client(&s)
        .await
        .lock(LockRequest {
            name: Bytes::from_static(b"nolease"),
            lease: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let hex = std::str::from_utf8(&held.key)
        .unwrap()
        .strip_prefix("nolease/")
        .unwrap()
        .to_string();
    let lease = i64::from_str_radix(&hex, 16).unwrap();
    assert!(lease > 0);
    let ttl = lease_client(&s)
        .await
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: lease,
            keys: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ttl.granted_ttl, 60);
    assert_eq!(ttl.keys, vec![held.key.to_vec()]);
}

#[tokio::test]
async fn an_abandoned_lock_waiter_removes_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (l1, l2) = (grant(&s, 30).await, grant(&s, 30).await);
    let mut c = lock_client(&s).await;
    c.lock(LockRequest {
        name: Bytes::from_static(b"gone"),
        lease: l1,
    })
    .await
    .unwrap();
    let waiter_key = key_of("gone", l2);
    let mut w = lock_client(&s).await;
    let waiting = tokio::spawn(async move {
        w.lock(LockRequest {
            name: Bytes::from_static(b"gone"),
            lease: l2,
        })
        .await
    });
    let deadline = Instant::now() + DEADLINE;
    while !exists(&s, &waiter_key).await {
        assert!(Instant::now() < deadline, "waiter never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The client goes away: the call (and its connection) is dropped.
    waiting.abort();
    let _ = waiting.await;
    // etcd's Mutex.Lock deletes the waiter's key when its context ends.
    until_deleted(&s, &waiter_key).await;
}

/// etcd 3.5+ `Mutex.Lock` re-reads its own key after waiting: a waiter whose lease expired
/// meanwhile gets `session expired` instead of a lock it does not hold. (etcd 3.4.23 still
/// answers with the vanished key, so this is checked against mainstay only.)
#[tokio::test]
async fn a_waiter_whose_lease_expired_gets_session_expired() {
    if kind() == Kind::Etcd {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (holder_lease, short) = (grant(&s, 60).await, grant(&s, 2).await);
    let mut c = lock_client(&s).await;
    let held = c
        .lock(LockRequest {
            name: Bytes::from_static(b"se"),
            lease: holder_lease,
        })
        .await
        .unwrap()
        .into_inner();
    let mut w = lock_client(&s).await;
    let waiting = tokio::spawn(async move {
        w.lock(LockRequest {
            name: Bytes::from_static(b"se"),
            lease: short,
        })
        .await
    });
    let waiter_key = key_of("se", short);
    let deadline = Instant::now() + DEADLINE;
    while !exists(&s, &waiter_key).await {
        assert!(Instant::now() < deadline, "waiter never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_deleted(&s, &waiter_key).await;
    c.unlock(UnlockRequest { key: held.key }).await.unwrap();
    let err = timeout(DEADLINE, waiting).await.unwrap().unwrap().unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unknown, "session expired"));
}

#[tokio::test]
async fn lock_with_an_unknown_lease_fails_like_a_put() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let err = lock_client(&s)
        .await
        .lock(LockRequest {
            name: Bytes::from_static(b"x"),
            lease: 0x1234,
        })
        .await
        .unwrap_err();
    // etcd's in-process client turns the KV error into a plain error: code Unknown, same text.
    assert_eq!(err.code(), Code::Unknown);
    assert_eq!(err.message(), "etcdserver: requested lease not found");
}

// ---------------------------------------------------------------------------------------------
// Election

#[tokio::test]
async fn election_campaign_leader_proclaim_observe_resign() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (l1, l2) = (grant(&s, 30).await, grant(&s, 30).await);
    let mut e = election_client(&s).await;
    let name = Bytes::from_static(b"el");

    let err = e.leader(LeaderRequest { name: name.clone() }).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unknown, "election: no leader")
    );

    // An observer started before anyone campaigns sees the first leader. grpc-go (etcd) sends
    // the response headers only with the first message, so the call is awaited after the
    // campaign.
    let mut oc = election_client(&s).await;
    let oname = name.clone();
    let observe_call = tokio::spawn(async move { oc.observe(LeaderRequest { name: oname }).await });

    let first = e
        .campaign(CampaignRequest {
            name: name.clone(),
            lease: l1,
            value: Bytes::from_static(b"one"),
        })
        .await
        .unwrap()
        .into_inner();
    let leader1 = first.leader.clone().unwrap();
    assert_eq!(leader1.name, name);
    assert_eq!(leader1.key, key_of("el", l1));
    assert_eq!(leader1.lease, l1);
    assert_eq!(leader1.rev, first.header.unwrap().revision);

    let mut observer = timeout(DEADLINE, observe_call)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_inner();
    let seen = next_observed(&mut observer).await;
    let kv = seen.kv.unwrap();
    assert_eq!(
        (kv.key.clone(), kv.value.clone()),
        (leader1.key.clone(), Bytes::from_static(b"one"))
    );
    assert_eq!(seen.header.unwrap().revision, leader1.rev);

    let now = e
        .leader(LeaderRequest { name: name.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.kv.unwrap().value, Bytes::from_static(b"one"));

    // A second candidate waits.
    let mut e2 = election_client(&s).await;
    let name2 = name.clone();
    let mut second = tokio::spawn(async move {
        e2.campaign(CampaignRequest {
            name: name2,
            lease: l2,
            value: Bytes::from_static(b"two"),
        })
        .await
    });

    let proclaimed = e
        .proclaim(ProclaimRequest {
            leader: Some(leader1.clone()),
            value: Bytes::from_static(b"one-bis"),
        })
        .await
        .unwrap()
        .into_inner();
    let seen = next_observed(&mut observer).await;
    assert_eq!(seen.kv.unwrap().value, Bytes::from_static(b"one-bis"));
    assert_eq!(seen.header.unwrap().revision, proclaimed.header.unwrap().revision);
    assert!(
        timeout(STILL_WAITING, &mut second).await.is_err(),
        "second candidate elected early"
    );

    e.resign(ResignRequest {
        leader: Some(leader1.clone()),
    })
    .await
    .unwrap();
    let won = timeout(DEADLINE, second)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_inner();
    let leader2 = won.leader.unwrap();
    assert_eq!(leader2.key, key_of("el", l2));
    let seen = next_observed(&mut observer).await;
    assert_eq!(seen.kv.unwrap().value, Bytes::from_static(b"two"));

    // The former leader can neither proclaim nor (harmfully) resign.
    let err = e
        .proclaim(ProclaimRequest {
            leader: Some(leader1.clone()),
            value: Bytes::from_static(b"stale"),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unknown, "election: not leader")
    );
    e.resign(ResignRequest {
        leader: Some(leader1),
    })
    .await
    .unwrap();
    let now = e.leader(LeaderRequest { name }).await.unwrap().into_inner();
    assert_eq!(now.kv.unwrap().value, Bytes::from_static(b"two"));
}

#[tokio::test]
async fn an_expired_leader_lease_hands_leadership_over() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (short, long) = (grant(&s, 2).await, grant(&s, 60).await);
    let mut e = election_client(&s).await;
    e.campaign(CampaignRequest {
        name: Bytes::from_static(b"ex"),
        lease: short,
        value: Bytes::from_static(b"a"),
    })
    .await
    .unwrap();
    let won = timeout(
        Duration::from_secs(2 + 8),
        e.campaign(CampaignRequest {
            name: Bytes::from_static(b"ex"),
            lease: long,
            value: Bytes::from_static(b"b"),
        }),
    )
    .await
    .expect("leadership not handed over within TTL + grace")
    .unwrap()
    .into_inner();
    assert_eq!(won.leader.unwrap().key, key_of("ex", long));
}

#[tokio::test]
async fn an_abandoned_campaign_resigns() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (l1, l2) = (grant(&s, 30).await, grant(&s, 30).await);
    election_client(&s)
        .await
        .campaign(CampaignRequest {
            name: Bytes::from_static(b"ab"),
            lease: l1,
            value: Bytes::from_static(b"a"),
        })
        .await
        .unwrap();
    let mut e2 = election_client(&s).await;
    let waiting = tokio::spawn(async move {
        e2.campaign(CampaignRequest {
            name: Bytes::from_static(b"ab"),
            lease: l2,
            value: Bytes::from_static(b"b"),
        })
        .await
    });
    let key = key_of("ab", l2);
    let deadline = Instant::now() + DEADLINE;
    while !exists(&s, &key).await {
        assert!(Instant::now() < deadline, "candidate never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    waiting.abort();
    let _ = waiting.await;
    until_deleted(&s, &key).await;
}

/// An observer that does not read for a while misses nothing: its server side falls behind the
/// live revisions and replays them from history, in order, without duplicates.
#[tokio::test]
async fn a_slow_observer_sees_every_proclamation_in_order() {
    const N: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let lease = grant(&s, 60).await;
    let mut e = election_client(&s).await;
    let name = Bytes::from_static(b"slow");
    let leader = e
        .campaign(CampaignRequest {
            name: name.clone(),
            lease,
            value: Bytes::from_static(b"start"),
        })
        .await
        .unwrap()
        .into_inner()
        .leader
        .unwrap();
    // A small HTTP/2 window, so the server cannot buffer much for the stalled observer.
    let narrow = tonic::transport::Endpoint::from_shared(s.endpoint())
        .unwrap()
        .initial_stream_window_size(4096)
        .initial_connection_window_size(4096)
        .connect()
        .await
        .unwrap();
    let mut observer = ElectionClient::new(narrow)
        .observe(LeaderRequest { name })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        next_observed(&mut observer).await.kv.unwrap().value,
        Bytes::from_static(b"start")
    );
    let mut kv = s.kv().await;
    for i in 0..N {
        kv.put(PutRequest {
            key: leader.key.clone(),
            value: Bytes::from(i.to_string()),
            lease,
            ..PutRequest::default()
        })
        .await
        .unwrap();
    }
    let mut last_rev = 0;
    for i in 0..N {
        let seen = next_observed(&mut observer).await;
        assert_eq!(seen.kv.unwrap().value, Bytes::from(i.to_string()));
        let rev = seen.header.unwrap().revision;
        assert!(rev > last_rev);
        last_rev = rev;
    }
}

/// Error texts and codes, compared with the real etcd.
#[tokio::test]
async fn errors_match_etcd() {
    async fn errors(kind: Kind) -> Vec<(String, Code, String)> {
        let dir = tempfile::tempdir().unwrap();
        let s = Server::start(kind, dir.path(), &[]).await;
        let mut e = election_client(&s).await;
        let mut l = lock_client(&s).await;
        let stale = LeaderKey {
            name: Bytes::from_static(b"n"),
            key: Bytes::from_static(b"n/1"),
            rev: 5,
            lease: 1,
        };
        let mut out = Vec::new();
        let mut push = |what: &str, r: Result<(), tonic::Status>| {
            let (code, msg) = r.map_or_else(
                |e| (e.code(), e.message().to_string()),
                |()| (Code::Ok, String::new()),
            );
            out.push((what.to_string(), code, msg));
        };
        push(
            "leader without a leader",
            e.leader(LeaderRequest {
                name: Bytes::from_static(b"n"),
            })
            .await
            .map(drop),
        );
        push(
            "proclaim without leader",
            e.proclaim(ProclaimRequest::default()).await.map(drop),
        );
        push(
            "resign without leader",
            e.resign(ResignRequest::default()).await.map(drop),
        );
        push(
            "proclaim as a non-leader",
            e.proclaim(ProclaimRequest {
                leader: Some(stale.clone()),
                value: Bytes::from_static(b"v"),
            })
            .await
            .map(drop),
        );
        push(
            "resign as a non-leader",
            e.resign(ResignRequest { leader: Some(stale) }).await.map(drop),
        );
        push(
            "campaign with an unknown lease",
            e.campaign(CampaignRequest {
                name: Bytes::from_static(b"n"),
                lease: 0x77,
                value: Bytes::new(),
            })
            .await
            .map(drop),
        );
        push(
            "lock with an unknown lease",
            l.lock(LockRequest {
                name: Bytes::from_static(b"n"),
                lease: 0x77,
            })
            .await
            .map(drop),
        );
        push(
            "unlock without a key",
            l.unlock(UnlockRequest::default()).await.map(drop),
        );
        push(
            "unlock a missing key",
            l.unlock(UnlockRequest {
                key: Bytes::from_static(b"n/none"),
            })
            .await
            .map(drop),
        );
        out
    }
    let ours = errors(Kind::Mainstay).await;
    let etcd = errors(Kind::Etcd).await;
    assert_eq!(ours, etcd);
}

// ---------------------------------------------------------------------------------------------
// etcdctl 3.4.23 `lock` and `elect`

/// A long-running etcdctl whose stdout is read line by line with deadlines.
struct Ctl {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Ctl {
    fn spawn(s: &Server, args: &[&str]) -> Ctl {
        let mut child = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", s.endpoint()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run etcdctl ({e}); install Debian's etcd-client"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Ctl { child, lines }
    }

    async fn line(&mut self) -> String {
        timeout(DEADLINE, self.lines.recv())
            .await
            .expect("etcdctl printed nothing in time")
            .expect("etcdctl exited")
    }

    /// SIGTERM: etcdctl unlocks / resigns and exits.
    async fn terminate(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let deadline = Instant::now() + DEADLINE;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "etcdctl did not exit on SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `name/<lowercase hex lease>`.
fn is_contender_key(line: &str, name: &str) -> bool {
    line.strip_prefix(name)
        .and_then(|r| r.strip_prefix('/'))
        .is_some_and(|hex| {
            !hex.is_empty()
                && hex
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        })
}

#[tokio::test]
async fn etcdctl_lock_prints_the_key_and_holds_it_against_grpc_lock() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut holder = Ctl::spawn(&s, &["lock", "ctl-lock"]);
    let key = holder.line().await;
    assert!(is_contender_key(&key, "ctl-lock"), "etcdctl lock printed {key:?}");
    // display.Get in the simple format: the key, then its (empty) value.
    assert_eq!(holder.line().await, "");
    assert!(exists(&s, &Bytes::from(key.clone())).await);

    // A gRPC Lock on the same name queues behind etcdctl's client-side mutex.
    let lease = grant(&s, 30).await;
    let mut c = lock_client(&s).await;
    let mut waiting = tokio::spawn(async move {
        c.lock(LockRequest {
            name: Bytes::from_static(b"ctl-lock"),
            lease,
        })
        .await
    });
    let deadline = Instant::now() + DEADLINE;
    while !exists(&s, &key_of("ctl-lock", lease)).await {
        assert!(Instant::now() < deadline, "gRPC Lock never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    write_marker(&s).await;
    assert!(timeout(STILL_WAITING, &mut waiting).await.is_err());

    holder.terminate().await;
    let got = timeout(DEADLINE, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(got.key, key_of("ctl-lock", lease));
    assert!(!exists(&s, &Bytes::from(key)).await, "etcdctl unlocks on SIGTERM");
}

#[tokio::test]
async fn etcdctl_lock_runs_a_command_while_holding_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let (ok, stdout, stderr) = s.etcdctl(&["lock", "ctl-run", "echo", "hi"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "hi\n");
    // The command sees the lock key in its environment.
    let (ok, stdout, stderr) = s.etcdctl(&["lock", "ctl-run", "--", "sh", "-c", "echo $ETCD_LOCK_KEY"]);
    assert!(ok, "{stderr}");
    assert!(is_contender_key(stdout.trim_end(), "ctl-run"), "{stdout:?}");
    // Unlocked afterwards: nothing left under the prefix.
    let (ok, stdout, _) = s.etcdctl(&["get", "--prefix", "ctl-run/"]);
    assert!(ok);
    assert_eq!(stdout, "");
}

#[tokio::test]
async fn etcdctl_lock_waits_for_a_grpc_lock_holder() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let lease = grant(&s, 30).await;
    let mut c = lock_client(&s).await;
    let held = c
        .lock(LockRequest {
            name: Bytes::from_static(b"mixed"),
            lease,
        })
        .await
        .unwrap()
        .into_inner();
    let mut waiter = Ctl::spawn(&s, &["lock", "mixed", "echo", "got it"]);
    assert!(
        timeout(STILL_WAITING, waiter.lines.recv()).await.is_err(),
        "etcdctl ran its command while the gRPC holder held the lock"
    );
    c.unlock(UnlockRequest { key: held.key }).await.unwrap();
    assert_eq!(waiter.line().await, "got it");
}

#[tokio::test]
async fn etcdctl_elect_prints_the_leader_and_observers_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut candidate = Ctl::spawn(&s, &["elect", "ctl-el", "prop-a"]);
    let key = candidate.line().await;
    assert!(is_contender_key(&key, "ctl-el"), "etcdctl elect printed {key:?}");
    assert_eq!(candidate.line().await, "prop-a");

    // The Election service sees etcdctl's leadership.
    let mut e = election_client(&s).await;
    let now = e
        .leader(LeaderRequest {
            name: Bytes::from_static(b"ctl-el"),
        })
        .await
        .unwrap()
        .into_inner();
    let kv = now.kv.unwrap();
    assert_eq!(kv.key, Bytes::from(key.clone()));
    assert_eq!(kv.value, Bytes::from_static(b"prop-a"));

    let mut observer = Ctl::spawn(&s, &["elect", "-l", "ctl-el"]);
    assert_eq!(observer.line().await, key);
    assert_eq!(observer.line().await, "prop-a");

    // etcdctl resigns on SIGTERM; a gRPC candidate takes over and the observer sees it.
    let lease = grant(&s, 30).await;
    let mut e2 = election_client(&s).await;
    let next = tokio::spawn(async move {
        e2.campaign(CampaignRequest {
            name: Bytes::from_static(b"ctl-el"),
            lease,
            value: Bytes::from_static(b"prop-b"),
        })
        .await
    });
    let deadline = Instant::now() + DEADLINE;
    while !exists(&s, &key_of("ctl-el", lease)).await {
        assert!(Instant::now() < deadline, "gRPC candidate never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    candidate.terminate().await;
    let won = timeout(DEADLINE, next)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(won.leader.unwrap().key, key_of("ctl-el", lease));
    assert_eq!(observer.line().await, format!("ctl-el/{lease:x}"));
    assert_eq!(observer.line().await, "prop-b");
}
