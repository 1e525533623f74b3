//! Lease service behaviour through a Rust gRPC client against the built binary
//! (etcd-compat.md §2.7 and the lease error texts of §3).
//!
//! Every expectation is etcd's: with `MAINSTAY_LEASE_TARGET=etcd` these tests run against the
//! real etcd (`/usr/bin/etcd`, 3.4.23) instead, to check that they hold there. Where etcd 3.4
//! returns lists in Go map order (LeaseLeases, LeaseTimeToLive keys) the tests compare sorted
//! lists; the order is not part of the contract.
//!
//! Timing: expiry is decided by the leader every ~500 ms, so "gone within TTL + grace" is
//! polled with a deadline of TTL + [`EXPIRY_GRACE`]; nothing waits a fixed time for a race to
//! settle. Every loop is bounded in count and time.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mainstay::proto::etcdserverpb::lease_client::LeaseClient;
use mainstay::proto::etcdserverpb::watch_client::WatchClient;
use mainstay::proto::etcdserverpb::watch_request::RequestUnion;
use mainstay::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest,
    WatchRequest, WatchResponse, compare, request_op,
};
use mainstay::proto::mvccpb::event::EventType;
use mainstay::proto::mvccpb::{Event, KeyValue};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::harness::{Kind, Server};

/// How long one awaited gRPC message may take.
const WAIT: Duration = Duration::from_secs(10);
/// Slack on top of a lease's TTL for the expiry check (etcd: every 500 ms) and the revoke
/// proposal to have happened.
const EXPIRY_GRACE: Duration = Duration::from_secs(3);
/// How often expiry is polled.
const POLL: Duration = Duration::from_millis(50);
/// etcd's largest lease TTL (`MaxLeaseTTL`, 9,000,000,000 s).
const MAX_TTL: i64 = 9_000_000_000;
/// etcd's minimum TTL with the default 100 ms heartbeat and 1000 ms election timeout.
const MIN_TTL: i64 = 2;

// ---------------------------------------------------------------- helpers

/// Starts the server under test: mainstay, or the real etcd with `MAINSTAY_LEASE_TARGET=etcd`.
async fn start(dir: &Path) -> Server {
    let kind = match std::env::var("MAINSTAY_LEASE_TARGET").as_deref() {
        Ok("etcd") => Kind::Etcd,
        _ => Kind::Mainstay,
    };
    Server::start(kind, dir, &[]).await
}

async fn lease_client(s: &Server) -> LeaseClient<Channel> {
    LeaseClient::connect(s.endpoint()).await.unwrap()
}

async fn grant(l: &mut LeaseClient<Channel>, ttl: i64, id: i64) -> LeaseGrantResponse {
    l.lease_grant(LeaseGrantRequest { ttl, id })
        .await
        .unwrap_or_else(|e| panic!("grant ttl {ttl} id {id}: {e}"))
        .into_inner()
}

async fn time_to_live(l: &mut LeaseClient<Channel>, id: i64, keys: bool) -> LeaseTimeToLiveResponse {
    l.lease_time_to_live(LeaseTimeToLiveRequest { id, keys })
        .await
        .unwrap()
        .into_inner()
}

/// The attached keys LeaseTimeToLive reports, sorted (etcd 3.4 lists them in map order).
async fn attached(l: &mut LeaseClient<Channel>, id: i64) -> Vec<String> {
    let mut keys: Vec<String> = time_to_live(l, id, true)
        .await
        .keys
        .iter()
        .map(|k| String::from_utf8(k.to_vec()).unwrap())
        .collect();
    keys.sort();
    keys
}

/// LeaseLeases as a set of IDs.
async fn lease_ids(l: &mut LeaseClient<Channel>) -> BTreeSet<i64> {
    l.lease_leases(LeaseLeasesRequest {})
        .await
        .unwrap()
        .into_inner()
        .leases
        .iter()
        .map(|s| s.id)
        .collect()
}

fn put(k: &str, v: &str, lease: i64) -> PutRequest {
    PutRequest {
        key: Bytes::copy_from_slice(k.as_bytes()),
        value: Bytes::copy_from_slice(v.as_bytes()),
        lease,
        ..Default::default()
    }
}

/// Puts and returns the new revision.
async fn put_rev(s: &Server, k: &str, v: &str, lease: i64) -> i64 {
    s.kv()
        .await
        .put(put(k, v, lease))
        .await
        .unwrap_or_else(|e| panic!("put {k} lease {lease}: {e}"))
        .into_inner()
        .header
        .unwrap()
        .revision
}

/// The live key `k`, if any.
async fn get(s: &Server, k: &str) -> Option<KeyValue> {
    s.kv()
        .await
        .range(RangeRequest {
            key: Bytes::copy_from_slice(k.as_bytes()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .kvs
        .pop()
}

/// The keys in `[key, end)` and the store revision.
async fn range(s: &Server, key: &str, end: &str) -> (Vec<String>, i64) {
    let r = s
        .kv()
        .await
        .range(RangeRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            range_end: Bytes::copy_from_slice(end.as_bytes()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let keys = r
        .kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.to_vec()).unwrap())
        .collect();
    (keys, r.header.unwrap().revision)
}

/// The current store revision.
async fn revision(s: &Server) -> i64 {
    range(s, "any", "").await.1
}

/// Waits for `fut` at most [`WAIT`].
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

/// A watch stream with one watcher on `[key, end)` from the current revision on (with
/// `prev_kv` if asked).
struct Watcher {
    _requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

impl Watcher {
    async fn open(s: &Server, key: &str, end: &str, prev_kv: bool) -> Watcher {
        let (tx, rx) = mpsc::channel(4);
        // Queued before the call: etcd sends the stream's response headers with its first
        // message, so the create must already be on its way.
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: Bytes::copy_from_slice(key.as_bytes()),
                range_end: Bytes::copy_from_slice(end.as_bytes()),
                prev_kv,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let mut client = WatchClient::connect(s.endpoint()).await.unwrap();
        let mut responses = within("watch stream", client.watch(ReceiverStream::new(rx)))
            .await
            .unwrap()
            .into_inner();
        let created = within("watch created", responses.message())
            .await
            .unwrap()
            .unwrap();
        assert!(created.created && !created.canceled, "{created:?}");
        Watcher {
            _requests: tx,
            responses,
        }
    }

    /// The next response that carries events.
    async fn next_events(&mut self, what: &str) -> WatchResponse {
        let deadline = Instant::now() + WAIT;
        for _ in 0..1000 {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = tokio::time::timeout(left, self.responses.message())
                .await
                .unwrap_or_else(|_| panic!("{what}: no watch events within {WAIT:?}"))
                .unwrap()
                .unwrap_or_else(|| panic!("{what}: watch stream ended"));
            assert!(!r.canceled, "{what}: watch canceled: {r:?}");
            if !r.events.is_empty() {
                return r;
            }
        }
        panic!("{what}: too many empty watch responses");
    }
}

/// `(type, key, mod_revision)` of each event.
fn events(evs: &[Event]) -> Vec<(EventType, String, i64)> {
    evs.iter()
        .map(|e| {
            let kv = e.kv.clone().unwrap_or_default();
            (
                EventType::try_from(e.r#type).unwrap(),
                String::from_utf8(kv.key.to_vec()).unwrap(),
                kv.mod_revision,
            )
        })
        .collect()
}

fn deletes(keys: &[&str], rev: i64) -> Vec<(EventType, String, i64)> {
    keys.iter()
        .map(|k| (EventType::Delete, k.to_string(), rev))
        .collect()
}

/// Polls until no key in `[key, end)` is left, at most until `deadline`; returns when that
/// was seen, or `None` at the deadline.
async fn wait_until_empty(s: &Server, key: &str, end: &str, deadline: Instant) -> Option<Instant> {
    let max_polls = (deadline.saturating_duration_since(Instant::now()).as_millis() / POLL.as_millis()) + 2;
    for _ in 0..max_polls {
        if range(s, key, end).await.0.is_empty() {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

/// Opens a keep-alive stream whose first request is `first`.
async fn keep_alive_stream(
    l: &mut LeaseClient<Channel>,
    first: i64,
) -> (
    mpsc::Sender<LeaseKeepAliveRequest>,
    Streaming<LeaseKeepAliveResponse>,
) {
    let (tx, rx) = mpsc::channel(16);
    // Queued before the call, as for watches (see `Watcher::open`).
    tx.send(LeaseKeepAliveRequest { id: first }).await.unwrap();
    let responses = within("keep-alive stream", l.lease_keep_alive(ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    (tx, responses)
}

async fn next_keep_alive(responses: &mut Streaming<LeaseKeepAliveResponse>) -> LeaseKeepAliveResponse {
    within("keep-alive response", responses.message())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("keep-alive stream ended"))
}

// ---------------------------------------------------------------- grant

/// etcd §2.7: `ID=0` → the server picks a unique positive ID; the response TTL is the granted
/// TTL; a grant makes no revision (§2.1).
#[tokio::test]
async fn grant_with_id_zero_picks_unique_positive_ids() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    let rev = put_rev(&s, "before", "x", 0).await;
    let mut ids = BTreeSet::new();
    for ttl in [60, 61, 62, 63, 64, 65, 66, 67] {
        let g = grant(&mut l, ttl, 0).await;
        assert!(g.id > 0, "server-chosen ID must be positive: {g:?}");
        assert_eq!(g.ttl, ttl, "response TTL = effective TTL");
        assert_eq!(g.error, "", "LeaseGrantResponse.error is never filled");
        assert_eq!(g.header.unwrap().revision, rev, "a grant makes no revision");
        assert!(ids.insert(g.id), "duplicate server-chosen ID {}", g.id);
    }
    assert_eq!(lease_ids(&mut l).await, ids);
    assert_eq!(revision(&s).await, rev, "grants made no revision");
}

/// etcd §2.7: an explicit client ID is used as given; granting it again fails with
/// FailedPrecondition `etcdserver: lease already exists` and leaves the first lease unchanged.
#[tokio::test]
async fn grant_with_client_id_uses_it_and_rejects_an_existing_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    let g = grant(&mut l, 60, 1234).await;
    assert_eq!((g.id, g.ttl), (1234, 60));
    let e = l
        .lease_grant(LeaseGrantRequest { ttl: 30, id: 1234 })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::FailedPrecondition, "etcdserver: lease already exists")
    );
    let t = time_to_live(&mut l, 1234, false).await;
    assert_eq!(t.granted_ttl, 60, "the existing lease is untouched");
    assert_eq!(lease_ids(&mut l).await, BTreeSet::from([1234]));
    // A server-chosen ID never collides with the client's.
    let other = grant(&mut l, 60, 0).await;
    assert_ne!(other.id, 1234);
    assert_eq!(lease_ids(&mut l).await, BTreeSet::from([1234, other.id]));

    // Any non-zero ID is the client's choice, negative ones too (etcd only replaces 0).
    let neg = grant(&mut l, 60, -5).await;
    assert_eq!((neg.id, neg.ttl), (-5, 60));
    assert_eq!(time_to_live(&mut l, -5, false).await.granted_ttl, 60);
    // Once revoked, the ID is free again.
    l.lease_revoke(LeaseRevokeRequest { id: 1234 }).await.unwrap();
    let again = grant(&mut l, 30, 1234).await;
    assert_eq!((again.id, again.ttl), (1234, 30));
}

/// etcd §2.7: a TTL below `minTTL` (2 s with the default 100 ms heartbeat and 1000 ms election
/// timeout) is raised to it; the response and LeaseTimeToLive report the raised TTL.
#[tokio::test]
async fn grant_raises_a_ttl_below_the_minimum_to_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    for (ttl, id) in [(1, 11), (0, 12), (-60, 13), (i64::MIN, 14), (MIN_TTL, 15)] {
        let g = grant(&mut l, ttl, id).await;
        assert_eq!((g.id, g.ttl), (id, MIN_TTL), "requested TTL {ttl}");
        let t = time_to_live(&mut l, id, false).await;
        assert_eq!(t.granted_ttl, MIN_TTL, "requested TTL {ttl}: {t:?}");
    }
    let g = grant(&mut l, 3, 16).await;
    assert_eq!(g.ttl, 3, "a TTL above the minimum is kept");
}

/// etcd §2.7/§3: TTL > 9,000,000,000 s → OutOfRange `etcdserver: too large lease TTL`, and no
/// lease is created; exactly the maximum is accepted, and such a lease lives on.
#[tokio::test]
async fn grant_rejects_a_ttl_above_nine_billion_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    for id in [0, 77] {
        let e = l
            .lease_grant(LeaseGrantRequest { ttl: MAX_TTL + 1, id })
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::OutOfRange, "etcdserver: too large lease TTL"),
            "id {id}"
        );
    }
    assert!(lease_ids(&mut l).await.is_empty(), "nothing was granted");
    let g = grant(&mut l, MAX_TTL, 78).await;
    assert_eq!((g.id, g.ttl), (78, MAX_TTL));
    // The maximum is usable: renewing it and the expiry check (proven to have run by a 2 s
    // lease expiring next to it) leave it alive with its full TTL.
    let (_tx, mut responses) = keep_alive_stream(&mut l, 78).await;
    assert_eq!(next_keep_alive(&mut responses).await.ttl, MAX_TTL);
    let short_granted = Instant::now();
    grant(&mut l, MIN_TTL, 79).await;
    put_rev(&s, "short", "v", 79).await;
    let ttl = Duration::from_secs(MIN_TTL as u64);
    assert!(
        wait_until_empty(&s, "short", "", short_granted + ttl + EXPIRY_GRACE)
            .await
            .is_some(),
        "the 2 s lease did not expire next to a {MAX_TTL} s lease"
    );
    let t = time_to_live(&mut l, 78, false).await;
    assert_eq!(t.granted_ttl, MAX_TTL);
    assert!(t.ttl >= MAX_TTL - 60 && t.ttl <= MAX_TTL, "{t:?}");
    assert_eq!(lease_ids(&mut l).await, BTreeSet::from([78]));
}

// ---------------------------------------------------------------- revoke

/// etcd §2.7: revoke deletes every attached key in ONE write transaction — one new revision,
/// deletes in key order — so a watcher gets N DELETE events in one response at that revision;
/// unattached keys stay. The lease is gone afterwards (TimeToLive -1, not listed).
#[tokio::test]
async fn revoke_deletes_all_attached_keys_in_one_revision_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    let id = grant(&mut l, 600, 0).await.id;
    for k in ["k/c", "k/a", "k/b"] {
        put_rev(&s, k, "v", id).await;
    }
    put_rev(&s, "k/d", "no lease", 0).await;
    let other = grant(&mut l, 600, 0).await.id;
    let before = put_rev(&s, "k/e", "other lease", other).await;
    let mut w = Watcher::open(&s, "k/", "k0", false).await;

    let r = l
        .lease_revoke(LeaseRevokeRequest { id })
        .await
        .unwrap()
        .into_inner();
    let rev = r.header.unwrap().revision;
    assert_eq!(rev, before + 1, "one new revision for all deletes");

    let resp = w.next_events("revoke").await;
    assert_eq!(
        events(&resp.events),
        deletes(&["k/a", "k/b", "k/c"], rev),
        "N DELETE events, in key order, in one response"
    );
    assert!(resp.header.unwrap().revision >= rev);
    assert_eq!(
        range(&s, "k/", "k0").await,
        (vec!["k/d".into(), "k/e".into()], rev)
    );
    let t = time_to_live(&mut l, id, true).await;
    assert_eq!((t.id, t.ttl, t.keys.len()), (id, -1, 0), "{t:?}");
    assert_eq!(lease_ids(&mut l).await, BTreeSet::from([other]));
    assert_eq!(
        attached(&mut l, other).await,
        vec!["k/e"],
        "other lease untouched"
    );
}

/// etcd §2.1: a revoke that deletes no key makes no revision.
#[tokio::test]
async fn revoke_of_a_lease_without_keys_makes_no_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    let rev = put_rev(&s, "k", "v", 0).await;
    let id = grant(&mut l, 600, 0).await.id;
    let r = l
        .lease_revoke(LeaseRevokeRequest { id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.header.unwrap().revision, rev);
    assert_eq!(put_rev(&s, "k", "v2", 0).await, rev + 1);
    assert!(lease_ids(&mut l).await.is_empty());
}

/// etcd §2.7/§3: revoking an unknown (or already revoked) lease → NotFound
/// `etcdserver: requested lease not found`.
#[tokio::test]
async fn revoke_of_an_unknown_lease_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    let id = grant(&mut l, 600, 0).await.id;
    l.lease_revoke(LeaseRevokeRequest { id }).await.unwrap();
    for unknown in [id, 4242] {
        let e = l
            .lease_revoke(LeaseRevokeRequest { id: unknown })
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::NotFound, "etcdserver: requested lease not found"),
            "lease {unknown}"
        );
    }
}

// ---------------------------------------------------------------- attach / detach

/// etcd §2.3/§2.7: Put with a lease attaches the key (KeyValue.lease, TimeToLive keys);
/// `ignore_lease` keeps the attachment; a Put with another lease moves the key; a Put without
/// lease detaches it; a delete detaches it; a Put with an unknown lease is NotFound.
#[tokio::test]
async fn put_with_a_lease_attaches_and_later_puts_detach_move_or_keep_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    let a = grant(&mut l, 600, 0).await.id;
    let b = grant(&mut l, 600, 0).await.id;

    put_rev(&s, "k", "v1", a).await;
    put_rev(&s, "j", "v1", a).await;
    assert_eq!(get(&s, "k").await.unwrap().lease, a);
    assert_eq!(attached(&mut l, a).await, vec!["j", "k"]);
    assert!(
        time_to_live(&mut l, a, false).await.keys.is_empty(),
        "keys only when asked for"
    );

    // ignore_lease: the key keeps lease a.
    s.kv()
        .await
        .put(PutRequest {
            ignore_lease: true,
            ..put("k", "v2", 0)
        })
        .await
        .unwrap();
    let k = get(&s, "k").await.unwrap();
    assert_eq!((k.value.as_ref(), k.lease), (&b"v2"[..], a));
    assert_eq!(attached(&mut l, a).await, vec!["j", "k"]);
    let e = s
        .kv()
        .await
        .put(PutRequest {
            ignore_lease: true,
            ..put("k", "v3", a)
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: lease is provided")
    );

    // Another lease: the key moves from a to b.
    put_rev(&s, "k", "v3", b).await;
    assert_eq!(get(&s, "k").await.unwrap().lease, b);
    assert_eq!(attached(&mut l, a).await, vec!["j"]);
    assert_eq!(attached(&mut l, b).await, vec!["k"]);

    // No lease: detached.
    put_rev(&s, "k", "v4", 0).await;
    assert_eq!(get(&s, "k").await.unwrap().lease, 0);
    assert!(attached(&mut l, b).await.is_empty());

    // A delete detaches too.
    s.kv()
        .await
        .delete_range(DeleteRangeRequest {
            key: "j".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(attached(&mut l, a).await.is_empty());

    // A detached key survives the revoke of its former lease.
    l.lease_revoke(LeaseRevokeRequest { id: b }).await.unwrap();
    assert_eq!(get(&s, "k").await.unwrap().value, "v4");

    let e = s.kv().await.put(put("k", "v5", 4242)).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
}

/// etcd §2.4/§2.7 and §6 (kube-apiserver's create: `Txn{MOD(key) == 0 → Put(key, lease)}`): a
/// Put inside a Txn attaches its key like a plain Put, and revoke deletes it; a Txn putting
/// with an unknown lease fails as a whole with NotFound and applies nothing.
#[tokio::test]
async fn txn_put_with_a_lease_attaches_the_key_and_an_unknown_lease_fails_the_txn() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    let id = grant(&mut l, 600, 0).await.id;
    let create = |key: &str, lease: i64| TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Mod as i32,
            key: Bytes::copy_from_slice(key.as_bytes()),
            target_union: Some(compare::TargetUnion::ModRevision(0)),
            range_end: Bytes::new(),
        }],
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(put(key, "obj", lease))),
            },
            RequestOp {
                request: Some(request_op::Request::RequestPut(put("plain", "p", 0))),
            },
        ],
        failure: vec![],
    };
    let mut kv = s.kv().await;
    let t = kv
        .txn(create("/registry/events/e1", id))
        .await
        .unwrap()
        .into_inner();
    assert!(t.succeeded);
    let rev = t.header.unwrap().revision;
    assert_eq!(get(&s, "/registry/events/e1").await.unwrap().lease, id);
    assert_eq!(attached(&mut l, id).await, vec!["/registry/events/e1"]);

    let e = kv.txn(create("/registry/events/e2", 4242)).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
    assert_eq!(revision(&s).await, rev, "the failed txn applied nothing");
    assert!(get(&s, "/registry/events/e2").await.is_none());

    let r = l
        .lease_revoke(LeaseRevokeRequest { id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.header.unwrap().revision, rev + 1);
    assert!(get(&s, "/registry/events/e1").await.is_none());
    assert_eq!(get(&s, "plain").await.unwrap().value, "p");
}

// ---------------------------------------------------------------- keep-alive / time-to-live / leases

/// etcd §2.7: every keep-alive request is answered with `{header, ID, TTL=granted}`; an unknown
/// lease gets TTL 0 and the stream stays usable (not an error).
#[tokio::test]
async fn keep_alive_answers_each_request_with_the_granted_ttl_and_unknown_with_zero() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    let id = grant(&mut l, 60, 0).await.id;
    let rev = revision(&s).await;
    let (tx, mut responses) = keep_alive_stream(&mut l, id).await;
    let r = next_keep_alive(&mut responses).await;
    assert_eq!((r.id, r.ttl), (id, 60));
    assert_eq!(r.header.unwrap().revision, rev, "a keep-alive makes no revision");
    for (ask, ttl) in [(id, 60), (4242, 0), (id, 60), (0, 0)] {
        tx.send(LeaseKeepAliveRequest { id: ask }).await.unwrap();
        let r = next_keep_alive(&mut responses).await;
        assert_eq!((r.id, r.ttl), (ask, ttl), "keep-alive of {ask}");
        assert!(r.header.is_some());
    }
    // A revoked lease is unknown from then on.
    l.lease_revoke(LeaseRevokeRequest { id }).await.unwrap();
    tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
    let r = next_keep_alive(&mut responses).await;
    assert_eq!((r.id, r.ttl), (id, 0));
}

/// etcd §2.7: LeaseTimeToLive of an unknown lease answers TTL -1 (grantedTTL 0, no keys) with
/// no error; of a live lease, the remaining seconds (truncated, so at most the granted TTL) and
/// the granted TTL.
#[tokio::test]
async fn time_to_live_of_an_unknown_lease_is_minus_one_without_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    for keys in [false, true] {
        let t = time_to_live(&mut l, 4242, keys).await;
        assert_eq!(
            (t.id, t.ttl, t.granted_ttl, t.keys.len()),
            (4242, -1, 0, 0),
            "{t:?}"
        );
        assert!(t.header.is_some());
    }
    let id = grant(&mut l, 600, 0).await.id;
    let t = time_to_live(&mut l, id, false).await;
    assert_eq!((t.id, t.granted_ttl), (id, 600));
    // Truncated seconds: 599 right after the grant; 600 only if no time has passed on the
    // lease's clock (Mainstay starts it when the expiry task first sees the lease).
    assert!((599..=600).contains(&t.ttl), "remaining {}", t.ttl);
}

/// etcd §2.7: LeaseLeases lists the IDs of all live leases.
#[tokio::test]
async fn lease_leases_lists_every_live_lease_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    assert!(lease_ids(&mut l).await.is_empty());
    let a = grant(&mut l, 600, 0).await.id;
    let b = grant(&mut l, 600, 7).await.id;
    let c = grant(&mut l, 600, 0).await.id;
    assert_eq!(lease_ids(&mut l).await, BTreeSet::from([a, b, c]));
    l.lease_revoke(LeaseRevokeRequest { id: b }).await.unwrap();
    assert_eq!(lease_ids(&mut l).await, BTreeSet::from([a, c]));
}

// ---------------------------------------------------------------- expiry

/// etcd §2.7: when a 2 s lease expires (the leader checks every ~500 ms), its keys are deleted
/// within TTL + grace — not earlier than the TTL — in one revision, seen by a watcher as DELETE
/// events in key order in one response (with `prev_kv` when asked, §2.6); the lease is gone.
#[tokio::test]
async fn expired_lease_deletes_its_keys_in_one_revision_within_ttl_and_grace() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    let mut w = Watcher::open(&s, "t/", "t0", true).await;
    let granted_at = Instant::now();
    let id = grant(&mut l, MIN_TTL, 0).await.id;
    for k in ["t/b", "t/c", "t/a"] {
        put_rev(&s, k, "v", id).await;
    }
    let last = put_rev(&s, "u", "unleased", 0).await;
    let ttl = Duration::from_secs(MIN_TTL as u64);
    let gone = wait_until_empty(&s, "t/", "t0", granted_at + ttl + EXPIRY_GRACE).await;
    let gone = gone.unwrap_or_else(|| {
        panic!(
            "keys of a {ttl:?} lease still there after {:?}",
            ttl + EXPIRY_GRACE
        )
    });
    assert!(
        gone.duration_since(granted_at) >= ttl,
        "expired early: after {:?}",
        gone.duration_since(granted_at)
    );
    let mut puts = Vec::new();
    for _ in 0..3 {
        puts.extend(events(&w.next_events("puts").await.events));
        if puts.len() >= 3 {
            break;
        }
    }
    assert_eq!(
        puts.iter().map(|e| (e.0, e.1.as_str())).collect::<Vec<_>>(),
        [
            (EventType::Put, "t/b"),
            (EventType::Put, "t/c"),
            (EventType::Put, "t/a")
        ]
    );
    let r = w.next_events("expiry").await;
    assert_eq!(
        events(&r.events),
        deletes(&["t/a", "t/b", "t/c"], last + 1),
        "one revision, DELETE events in key order, one response"
    );
    // §2.6: kube-apiserver needs prev_kv on every DELETE, expiry deletes included.
    for e in &r.events {
        let prev = e
            .prev_kv
            .clone()
            .unwrap_or_else(|| panic!("DELETE without prev_kv: {e:?}"));
        assert_eq!(
            (prev.key, prev.value.as_ref(), prev.lease),
            (e.kv.clone().unwrap().key, &b"v"[..], id)
        );
    }
    assert_eq!(revision(&s).await, last + 1);
    assert_eq!(get(&s, "u").await.unwrap().value, "unleased");
    assert_eq!(time_to_live(&mut l, id, false).await.ttl, -1);
    assert!(!lease_ids(&mut l).await.contains(&id));
}

/// etcd §2.7: keep-alives renew a lease to its full TTL, so it outlives its TTL while they go
/// on; once they stop it expires within TTL + grace.
#[tokio::test]
async fn keep_alives_keep_a_lease_alive_past_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    let granted_at = Instant::now();
    let id = grant(&mut l, MIN_TTL, 0).await.id;
    put_rev(&s, "ka", "v", id).await;
    let (tx, mut responses) = keep_alive_stream(&mut l, id).await;
    assert_eq!(next_keep_alive(&mut responses).await.ttl, MIN_TTL);
    // Renew every 500 ms (a quarter of the TTL) for three TTLs.
    let mut pace = tokio::time::interval(Duration::from_millis(500));
    pace.tick().await;
    for i in 0..12 {
        pace.tick().await;
        tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
        let r = next_keep_alive(&mut responses).await;
        assert_eq!((r.id, r.ttl), (id, MIN_TTL), "keep-alive #{i}");
        assert!(get(&s, "ka").await.is_some(), "expired despite keep-alive #{i}");
    }
    let alive_for = granted_at.elapsed();
    assert!(alive_for >= Duration::from_secs(3 * MIN_TTL as u64));
    let t = time_to_live(&mut l, id, true).await;
    assert!(t.ttl >= 1 && t.ttl <= MIN_TTL, "{t:?}");
    assert_eq!(t.keys, vec![Bytes::from("ka")]);

    drop(tx);
    let stopped = Instant::now();
    let ttl = Duration::from_secs(MIN_TTL as u64);
    let gone = wait_until_empty(&s, "ka", "", stopped + ttl + EXPIRY_GRACE).await;
    assert!(
        gone.is_some(),
        "lease not expired {:?} after the last keep-alive",
        ttl + EXPIRY_GRACE
    );
    assert_eq!(time_to_live(&mut l, id, false).await.ttl, -1);
}

// ---------------------------------------------------------------- restart

/// etcd §2.7: leases are durable (granted through raft): after a kill -9 and restart the lease
/// is still there with its granted TTL and its keys, renewed to a full TTL (etcd's new leader
/// renews every lease), and it still expires, deleting its keys; a lease revoked before the
/// crash does not come back.
#[tokio::test]
async fn lease_granted_before_a_crash_survives_restart_with_its_keys_and_still_expires() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path()).await;
    let mut l = lease_client(&s).await;
    const TTL: i64 = 5;
    let id = grant(&mut l, TTL, 0).await.id;
    let long = grant(&mut l, 600, 0).await.id;
    let revoked = grant(&mut l, 600, 0).await.id;
    put_rev(&s, "r/gone", "v", revoked).await;
    l.lease_revoke(LeaseRevokeRequest { id: revoked }).await.unwrap();
    put_rev(&s, "r/a", "v", id).await;
    let last = put_rev(&s, "r/b", "v", id).await;
    s.kill9();
    s.restart().await;
    let restarted = Instant::now();

    let mut l = lease_client(&s).await;
    let t = time_to_live(&mut l, id, true).await;
    assert_eq!(t.granted_ttl, TTL, "{t:?}");
    assert!(t.ttl >= 1 && t.ttl <= TTL, "lease alive after restart: {t:?}");
    let mut keys: Vec<_> = t.keys.clone();
    keys.sort();
    assert_eq!(keys, vec![Bytes::from("r/a"), Bytes::from("r/b")]);
    assert_eq!(
        lease_ids(&mut l).await,
        BTreeSet::from([id, long]),
        "a lease revoked before the crash stays revoked"
    );
    assert_eq!(time_to_live(&mut l, revoked, false).await.ttl, -1);
    assert_eq!(get(&s, "r/a").await.unwrap().lease, id);
    assert_eq!(revision(&s).await, last);
    // Server-chosen IDs stay unique across the restart.
    let fresh = grant(&mut l, 600, 0).await.id;
    assert!(![id, long, revoked].contains(&fresh), "fresh ID {fresh} reused");

    let ttl = Duration::from_secs(TTL as u64);
    // etcd renews on promotion to now + TTL + one election timeout (1 s); the grace covers it.
    let gone = wait_until_empty(&s, "r/", "r0", restarted + ttl + EXPIRY_GRACE).await;
    assert!(
        gone.is_some(),
        "lease not expired {:?} after the restart",
        ttl + EXPIRY_GRACE
    );
    assert_eq!(revision(&s).await, last + 1, "both keys deleted in one revision");
    assert_eq!(time_to_live(&mut l, id, false).await.ttl, -1);
    assert_eq!(lease_ids(&mut l).await, BTreeSet::from([long, fresh]));
}

/// etcd lease checkpointing (`--experimental-enable-lease-checkpoint(-persist)`, etcd
/// `lessor.checkpointScheduledLeases` and `Lease.refresh`): with checkpoints on, a member that
/// restarts resumes a lease from its last checkpointed remaining TTL; without them it renews
/// the lease to its full TTL (etcd §2.7, leader change). Mainstay-only: the short
/// `--lease-checkpoint-interval` is not an etcd flag.
#[tokio::test]
async fn checkpointed_lease_resumes_its_remaining_ttl_after_restart_instead_of_renewing() {
    const TTL: i64 = 30;
    async fn ttl_after_restart(flags: &[&str]) -> i64 {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Server::start(Kind::Mainstay, dir.path(), flags).await;
        let mut l = lease_client(&s).await;
        let id = grant(&mut l, TTL, 0).await.id;
        let deadline = Instant::now() + Duration::from_secs(20);
        while time_to_live(&mut l, id, false).await.ttl > TTL - 5 {
            assert!(Instant::now() < deadline, "lease clock never ran");
            tokio::time::sleep(POLL).await;
        }
        s.kill9();
        s.restart().await;
        let mut l = lease_client(&s).await;
        time_to_live(&mut l, id, false).await.ttl
    }
    let (checkpointed, renewed) = tokio::join!(
        ttl_after_restart(&[
            "--experimental-enable-lease-checkpoint",
            "--experimental-enable-lease-checkpoint-persist",
            "--lease-checkpoint-interval=1s",
        ]),
        ttl_after_restart(&[]),
    );
    assert!(
        (1..=TTL - 3).contains(&checkpointed),
        "checkpointed lease resumes below {}: {checkpointed}",
        TTL - 3
    );
    assert!(
        renewed >= TTL - 1,
        "without checkpoints the lease is renewed: {renewed}"
    );
}
