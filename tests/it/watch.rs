//! Watch service behaviour through a Rust gRPC client against the built binary (etcd-compat.md
//! §2.6 "Watch" — the contract — and the watch texts of §3).
//!
//! Every test starts its own server in its own temporary directory and is named after the rule
//! it pins. Responses are awaited with deadlines. The absence of a response is never asserted
//! by sleeping: the test sends a later request, or makes a later write watched by a "sentinel"
//! watcher on the same stream, waits for that answer, and checks that what must not come did not
//! come before it (a stream answers its requests in order, and live revisions reach the synced
//! watchers of a stream in revision order).
//!
//! The scenarios are written against etcd's contract, so they also run against the real etcd
//! (`MAINSTAY_WATCH_TARGET=etcd cargo test --test it watch`, Debian `etcd-server` 3.4.23). Where
//! etcd 3.4 differs from the 3.5/3.6 behaviour the spec prescribes, the assertion follows the
//! spec, says so in a comment, and is skipped against etcd 3.4 ([`spec_only`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use mainstay::proto::etcdserverpb::kv_client::KvClient;
use mainstay::proto::etcdserverpb::watch_client::WatchClient;
use mainstay::proto::etcdserverpb::watch_create_request::FilterType;
use mainstay::proto::etcdserverpb::watch_request::RequestUnion;
use mainstay::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse, request_op,
    response_op,
};
use mainstay::proto::mvccpb::event::EventType;
use mainstay::proto::mvccpb::{Event, KeyValue};
use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::harness::{Kind, Server};

/// How long any single awaited answer may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// A key written to mark a point in a stream (see [`barrier`]); no test watches it otherwise.
const SENTINEL: &[u8] = b"~sentinel";

/// etcd's cancel reasons (§3 "Other client-visible texts").
const REASON_EMPTY_RANGE: &str = "mvcc: watcher range is empty";
const REASON_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
const REASON_COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

/// The server under test: mainstay, or the real etcd with `MAINSTAY_WATCH_TARGET=etcd`.
fn kind() -> Kind {
    match std::env::var("MAINSTAY_WATCH_TARGET").as_deref() {
        Ok("etcd") => Kind::Etcd,
        _ => Kind::Mainstay,
    }
}

/// Whether assertions on 3.5/3.6 behaviour that etcd 3.4.23 lacks are checked.
fn spec_only() -> bool {
    kind() == Kind::Mainstay
}

async fn start(dir: &Path, extra: &[&str]) -> Server {
    Server::start(kind(), dir, extra).await
}

// ---------------------------------------------------------------------------------------------
// A watch stream driven over time.

/// One bidi Watch stream: requests go through a channel, responses are read with deadlines.
struct Ws {
    tx: Option<mpsc::Sender<WatchRequest>>,
    /// The pending `Watch` call. grpc-go (etcd) sends the response headers only with the first
    /// response, so the call is awaited lazily, after the first request went out.
    call: Option<JoinHandle<Result<tonic::Response<Streaming<WatchResponse>>, tonic::Status>>>,
    rx: Option<Streaming<WatchResponse>>,
}

impl Ws {
    async fn open(s: &Server) -> Ws {
        Ws::open_with_metadata(s, &[]).await
    }

    async fn open_with_metadata(s: &Server, metadata: &[(&'static str, &'static str)]) -> Ws {
        let mut client = WatchClient::connect(s.endpoint())
            .await
            .unwrap()
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let (tx, rx) = mpsc::channel(4096);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        for (k, v) in metadata {
            request.metadata_mut().insert(*k, v.parse().unwrap());
        }
        let call = tokio::spawn(async move { client.watch(request).await });
        Ws {
            tx: Some(tx),
            call: Some(call),
            rx: None,
        }
    }

    async fn send(&self, request: RequestUnion) {
        let tx = self.tx.as_ref().expect("the request stream is still open");
        tx.send(WatchRequest {
            request_union: Some(request),
        })
        .await
        .unwrap();
    }

    async fn create(&self, c: WatchCreateRequest) {
        self.send(RequestUnion::CreateRequest(c)).await;
    }

    async fn cancel(&self, watch_id: i64) {
        self.send(RequestUnion::CancelRequest(WatchCancelRequest { watch_id }))
            .await;
    }

    async fn progress(&self) {
        self.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
            .await;
    }

    /// Ends the request stream (the client half-closes).
    fn half_close(&mut self) {
        self.tx = None;
    }

    async fn stream(&mut self) -> &mut Streaming<WatchResponse> {
        if self.rx.is_none() {
            let call = self.call.take().unwrap();
            let response = timeout(DEADLINE, call)
                .await
                .expect("the Watch call was not answered in time")
                .unwrap()
                .unwrap();
            self.rx = Some(response.into_inner());
        }
        self.rx.as_mut().unwrap()
    }

    /// The next response; `None` when the server ended the stream with status OK.
    async fn recv(&mut self) -> Option<WatchResponse> {
        let rx = self.stream().await;
        timeout(DEADLINE, rx.message())
            .await
            .expect("no watch response within the deadline")
            .unwrap()
    }

    /// The next response.
    async fn next(&mut self) -> WatchResponse {
        self.recv().await.expect("the watch stream ended")
    }

    /// The next response if one arrives within `d` (for polling only, never to prove absence).
    async fn recv_within(&mut self, d: Duration) -> Option<WatchResponse> {
        let rx = self.stream().await;
        timeout(d, rx.message())
            .await
            .ok()
            .map(|r| r.unwrap().expect("the watch stream ended"))
    }

    /// Sends a create and returns the next response (whatever it is).
    async fn next_after_create(&mut self, c: WatchCreateRequest) -> WatchResponse {
        self.create(c).await;
        self.next().await
    }

    /// Creates a watcher and returns its id; its `created` reply must be the very next response.
    async fn watch(&mut self, c: WatchCreateRequest) -> i64 {
        self.watch_reply(c).await.watch_id
    }

    /// Creates a watcher and returns its successful `created` reply (the very next response).
    async fn watch_reply(&mut self, c: WatchCreateRequest) -> WatchResponse {
        self.create(c).await;
        let r = self.next().await;
        assert!(
            r.created && !r.canceled && r.events.is_empty(),
            "expected a successful created reply, got {r:?}"
        );
        r
    }
}

// ---------------------------------------------------------------------------------------------
// Request builders and KV helpers.

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

fn on_key(k: &[u8]) -> WatchCreateRequest {
    WatchCreateRequest {
        key: b(k),
        ..Default::default()
    }
}

fn on_range(k: &[u8], end: &[u8]) -> WatchCreateRequest {
    WatchCreateRequest {
        key: b(k),
        range_end: b(end),
        ..Default::default()
    }
}

fn on_prefix(p: &[u8]) -> WatchCreateRequest {
    on_range(p, &prefix_end(p))
}

/// etcd's `GetPrefixRangeEnd`.
fn prefix_end(p: &[u8]) -> Vec<u8> {
    let mut end = p.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn op_put(k: &[u8], v: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: b(k),
            value: b(v),
            ..Default::default()
        })),
    }
}

fn op_del(k: &[u8], end: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key: b(k),
            range_end: b(end),
            prev_kv: true,
        })),
    }
}

/// Puts `k=v` and returns the new revision.
async fn put(kv: &mut KvClient<Channel>, k: &[u8], v: &[u8]) -> i64 {
    kv.put(PutRequest {
        key: b(k),
        value: b(v),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .header
    .unwrap()
    .revision
}

/// Deletes `[k, end)` (or `k` with an empty end) and returns the header revision.
async fn del(kv: &mut KvClient<Channel>, k: &[u8], end: &[u8]) -> i64 {
    kv.delete_range(DeleteRangeRequest {
        key: b(k),
        range_end: b(end),
        prev_kv: false,
    })
    .await
    .unwrap()
    .into_inner()
    .header
    .unwrap()
    .revision
}

/// Runs `ops` as an unconditional Txn and returns the header revision.
async fn txn(kv: &mut KvClient<Channel>, ops: Vec<RequestOp>) -> i64 {
    kv.txn(TxnRequest {
        compare: vec![],
        success: ops,
        failure: vec![],
    })
    .await
    .unwrap()
    .into_inner()
    .header
    .unwrap()
    .revision
}

/// The store's current revision.
async fn current(kv: &mut KvClient<Channel>) -> i64 {
    kv.range(RangeRequest {
        key: b(b"\0"),
        count_only: true,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .header
    .unwrap()
    .revision
}

/// The KeyValue of `k` as Range returns it now.
async fn get(kv: &mut KvClient<Channel>, k: &[u8]) -> KeyValue {
    kv.range(RangeRequest {
        key: b(k),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .kvs
    .remove(0)
}

async fn compact(kv: &mut KvClient<Channel>, revision: i64) {
    kv.compact(CompactionRequest {
        revision,
        physical: true,
    })
    .await
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Response helpers.

/// An event reduced to (type, key, mod_revision).
type Ev = (EventType, String, i64);

fn ev_type(e: &Event) -> EventType {
    EventType::try_from(e.r#type).unwrap()
}

fn ev(e: &Event) -> Ev {
    let kv = e.kv.as_ref().unwrap();
    (
        ev_type(e),
        String::from_utf8_lossy(&kv.key).into_owned(),
        kv.mod_revision,
    )
}

fn evs(r: &WatchResponse) -> Vec<Ev> {
    r.events.iter().map(ev).collect()
}

fn put_ev(k: &str, rev: i64) -> Ev {
    (EventType::Put, k.to_string(), rev)
}

fn del_ev(k: &str, rev: i64) -> Ev {
    (EventType::Delete, k.to_string(), rev)
}

fn header_rev(r: &WatchResponse) -> i64 {
    r.header.as_ref().map_or(0, |h| h.revision)
}

/// Whether `r` is a progress notification as clients detect one (§2.6): no events, not created,
/// not canceled, compact_revision 0, header.revision != 0.
fn is_progress(r: &WatchResponse) -> bool {
    r.events.is_empty() && !r.created && !r.canceled && r.compact_revision == 0 && header_rev(r) != 0
}

/// The events of `responses`, grouped by watch id, in arrival order.
fn events_by_id(responses: &[WatchResponse]) -> BTreeMap<i64, Vec<Ev>> {
    let mut by_id: BTreeMap<i64, Vec<Ev>> = BTreeMap::new();
    for r in responses {
        by_id.entry(r.watch_id).or_default().extend(evs(r));
    }
    by_id
}

/// Writes [`SENTINEL`] and returns every response that arrived before the `sentinel_id`
/// watcher's event for that write. Live revisions reach a stream's synced watchers in revision
/// order, so every response of a synced watcher for an earlier revision is among them.
async fn barrier(ws: &mut Ws, kv: &mut KvClient<Channel>, sentinel_id: i64) -> Vec<WatchResponse> {
    let rev = put(kv, SENTINEL, b"").await;
    let mut before = Vec::new();
    for _ in 0..100_000 {
        let r = ws.next().await;
        if r.watch_id == sentinel_id && evs(&r).contains(&put_ev("~sentinel", rev)) {
            return before;
        }
        before.push(r);
    }
    panic!("the sentinel event never arrived; got {before:?}");
}

/// Reads until `done` says the responses read so far are complete (bounded by the deadline per
/// response and a response count).
async fn read_until(ws: &mut Ws, mut done: impl FnMut(&[WatchResponse]) -> bool) -> Vec<WatchResponse> {
    let mut got = Vec::new();
    for _ in 0..200_000 {
        if done(&got) {
            return got;
        }
        got.push(ws.next().await);
    }
    panic!("too many responses without completion: {} read", got.len());
}

/// Reads until watcher `id` received an event at revision `rev` (or later).
async fn read_until_rev(ws: &mut Ws, id: i64, rev: i64) -> Vec<WatchResponse> {
    read_until(ws, |got| {
        got.iter().any(|r| {
            r.watch_id == id
                && r.events
                    .iter()
                    .any(|e| e.kv.as_ref().unwrap().mod_revision >= rev)
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Streams, watchers, ids.

/// §2.6: one bidi stream carries many watchers; every response is tagged with its watcher's
/// `watch_id`. `cancel_request{watch_id}` → `{watch_id, canceled=true}`; the canceled watcher gets
/// nothing more while the others keep running.
#[tokio::test]
async fn one_stream_carries_many_watchers_and_cancel_stops_only_that_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open(&s).await;
    let wa = ws.watch(on_key(b"a")).await;
    let wb = ws.watch(on_key(b"b")).await;
    let wp = ws.watch(on_prefix(b"p/")).await;
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    assert_eq!(
        [wa, wb, wp, sentinel].iter().collect::<BTreeSet<_>>().len(),
        4,
        "distinct watch ids"
    );
    let ra = put(&mut kv, b"a", b"1").await;
    let rb = put(&mut kv, b"b", b"1").await;
    let rp = put(&mut kv, b"p/x", b"1").await;
    put(&mut kv, b"unwatched", b"1").await;
    let got = barrier(&mut ws, &mut kv, sentinel).await;
    assert_eq!(got.len(), 3, "one response per watcher and revision: {got:?}");
    let by_id = events_by_id(&got);
    assert_eq!(by_id[&wa], vec![put_ev("a", ra)]);
    assert_eq!(by_id[&wb], vec![put_ev("b", rb)]);
    assert_eq!(by_id[&wp], vec![put_ev("p/x", rp)]);

    ws.cancel(wb).await;
    let c = ws.next().await;
    assert_eq!(
        (
            c.watch_id,
            c.canceled,
            c.created,
            c.compact_revision,
            c.cancel_reason.as_str()
        ),
        (wb, true, false, 0, ""),
        "cancel reply: {c:?}"
    );
    assert!(c.events.is_empty());
    put(&mut kv, b"b", b"2").await;
    let ra = put(&mut kv, b"a", b"2").await;
    let rp = put(&mut kv, b"p/y", b"2").await;
    let got = barrier(&mut ws, &mut kv, sentinel).await;
    let by_id = events_by_id(&got);
    assert!(!by_id.contains_key(&wb), "a canceled watcher got events: {got:?}");
    assert_eq!(by_id[&wa], vec![put_ev("a", ra)]);
    assert_eq!(by_id[&wp], vec![put_ev("p/y", rp)]);
}

/// §2.6: `watch_id=0` asks for an automatic id: a per-stream counter **starting at 0** that skips
/// ids in use. It is a counter: an id freed by a cancel is not handed out again (etcd
/// `watchStream.Watch` increments `nextID` after each assignment; checked against etcd 3.4.23).
/// Client-chosen non-zero ids are used as given.
#[tokio::test]
async fn auto_watch_ids_count_from_zero_per_stream_and_skip_ids_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut ws = Ws::open(&s).await;
    let auto = || on_key(b"k");
    let chosen = |id| WatchCreateRequest {
        watch_id: id,
        ..on_key(b"k")
    };
    assert_eq!(ws.watch(auto()).await, 0, "the first automatic id is 0");
    assert_eq!(ws.watch(chosen(2)).await, 2);
    assert_eq!(ws.watch(auto()).await, 1);
    assert_eq!(ws.watch(auto()).await, 3, "2 is in use and skipped");
    assert_eq!(ws.watch(chosen(7)).await, 7);
    ws.cancel(0).await;
    let c = ws.next().await;
    assert!(c.canceled && c.watch_id == 0, "{c:?}");
    assert_eq!(
        ws.watch(auto()).await,
        4,
        "the counter moves on; the freed 0 is not reused"
    );
    assert_eq!(ws.watch(auto()).await, 5);
    assert_eq!(ws.watch(auto()).await, 6);
    assert_eq!(ws.watch(auto()).await, 8, "7 is in use and skipped");

    let mut other = Ws::open(&s).await;
    assert_eq!(other.watch(auto()).await, 0, "ids are per stream");
}

/// §2.6/§3: a client may choose a non-zero id; reusing an id that is live on the stream is
/// refused with `created=true, canceled=true, watch_id=-1` and the reason
/// `mvcc: duplicate watch ID provided on the WatchStream`; the original watcher is unaffected,
/// and the id can be chosen again once its watcher is canceled.
#[tokio::test]
async fn duplicate_watch_id_is_created_then_canceled_with_etcd_reason() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open(&s).await;
    let sentinel = ws
        .watch(WatchCreateRequest {
            watch_id: 100,
            ..on_key(SENTINEL)
        })
        .await;
    assert_eq!(
        ws.watch(WatchCreateRequest {
            watch_id: 7,
            ..on_key(b"d")
        })
        .await,
        7
    );
    assert_eq!(ws.watch(on_key(b"auto")).await, 0);
    for (id, key) in [(7, &b"e"[..]), (sentinel, b"f")] {
        ws.create(WatchCreateRequest {
            watch_id: id,
            ..on_key(key)
        })
        .await;
        let r = ws.next().await;
        assert_eq!(
            (r.created, r.canceled, r.watch_id, r.cancel_reason.as_str()),
            (true, true, -1, REASON_DUPLICATE_ID),
            "duplicate of {id}: {r:?}"
        );
        assert!(r.events.is_empty());
    }
    // `watch_id=0` means "automatic", so it is never a duplicate; an automatic id that is live
    // cannot be chosen explicitly.
    ws.create(WatchCreateRequest {
        watch_id: 0,
        ..on_key(b"auto")
    })
    .await;
    let r = ws.next().await;
    assert_eq!((r.created, r.canceled, r.watch_id), (true, false, 1), "{r:?}");
    ws.create(WatchCreateRequest {
        watch_id: 1,
        ..on_key(b"h")
    })
    .await;
    let r = ws.next().await;
    assert_eq!(
        (r.created, r.canceled, r.watch_id, r.cancel_reason.as_str()),
        (true, true, -1, REASON_DUPLICATE_ID),
        "{r:?}"
    );

    let rd = put(&mut kv, b"d", b"1").await;
    put(&mut kv, b"e", b"1").await;
    let got = barrier(&mut ws, &mut kv, sentinel).await;
    assert_eq!(
        events_by_id(&got),
        BTreeMap::from([(7, vec![put_ev("d", rd)])]),
        "the original watcher 7 still watches d; the refused create watches nothing"
    );
    ws.cancel(7).await;
    assert!(ws.next().await.canceled);
    assert_eq!(
        ws.watch(WatchCreateRequest {
            watch_id: 7,
            ..on_key(b"e")
        })
        .await,
        7,
        "a freed id can be chosen again"
    );
}

/// §2.6/§3: `key >= range_end` (non-empty end) is refused with `created=true, canceled=true,
/// watch_id=-1, cancel_reason="mvcc: watcher range is empty"`; the stream stays usable.
#[tokio::test]
async fn empty_range_is_refused_with_etcd_reason() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut ws = Ws::open(&s).await;
    for (k, end) in [
        (&b"b"[..], &b"a"[..]),
        (b"a", b"a"),
        (b"ab", b"a"),
        (b"\x01", b"\x00\x01"),
    ] {
        ws.create(on_range(k, end)).await;
        let r = ws.next().await;
        assert_eq!(
            (r.created, r.canceled, r.watch_id, r.cancel_reason.as_str()),
            (true, true, -1, REASON_EMPTY_RANGE),
            "[{:?}, {:?}): {r:?}",
            k.escape_ascii().to_string(),
            end.escape_ascii().to_string()
        );
    }
    assert_eq!(
        ws.watch(on_range(b"a", b"b")).await,
        0,
        "no id was used up by the refusals"
    );
}

/// §2.6/§3: `start_revision < 0` is refused with `created=true, canceled=true, watch_id=-1,
/// cancel_reason="etcdserver: mvcc: required revision has been compacted"`; the stream stays
/// usable. (etcd 3.4.23 instead creates an ordinary watcher, id 0, that replays from the start;
/// the spec follows 3.5+, so the etcd run only prints its answer.)
#[tokio::test]
async fn negative_start_revision_is_refused_as_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut ws = Ws::open(&s).await;
    ws.create(WatchCreateRequest {
        start_revision: -1,
        ..on_key(b"a")
    })
    .await;
    let r = ws.next().await;
    if !spec_only() {
        eprintln!("etcd 3.4 answer to start_revision=-1: {r:?}");
        return;
    }
    assert_eq!(
        (r.created, r.canceled, r.watch_id, r.cancel_reason.as_str()),
        (true, true, -1, REASON_COMPACTED),
        "{r:?}"
    );
    assert!(r.events.is_empty() && r.compact_revision == 0, "{r:?}");
    assert_eq!(ws.watch(on_key(b"a")).await, 0, "the refusal used up no id");
}

/// §2.6: cancel of an unknown id gets no reply. Checked without sleeping: a create sent after the
/// cancel must be answered first.
#[tokio::test]
async fn cancel_of_unknown_watch_id_gets_no_reply() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut ws = Ws::open(&s).await;
    ws.cancel(12345).await;
    ws.cancel(0).await;
    ws.cancel(-1).await;
    let r = ws.watch_reply(on_key(b"a")).await;
    assert_eq!(r.watch_id, 0);
    ws.cancel(0).await;
    ws.cancel(0).await; // canceled already: unknown now
    let c = ws.next().await;
    assert!(c.canceled && c.watch_id == 0, "{c:?}");
    let r = ws.next_after_create(on_key(b"b")).await;
    assert!(
        r.created,
        "the second cancel of 0 must not be answered; got {r:?}"
    );
}

/// §2.6: the created reply carries the assigned id and `header.revision` = the current store
/// revision, and it is delivered before any event of that watcher — also when the watcher
/// replays history and while other clients write concurrently.
#[tokio::test]
async fn created_reply_comes_before_any_event_of_its_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let before = put(&mut kv, b"c/seed", b"0").await;
    let mut ws = Ws::open(&s).await;
    let r = ws.watch_reply(on_prefix(b"c/")).await;
    assert_eq!(
        header_rev(&r),
        before,
        "created header.revision is the current revision"
    );

    let (done_tx, mut done_rx) = tokio::sync::watch::channel(0_i64);
    let mut writer_kv = kv.clone();
    let writer = tokio::spawn(async move {
        let mut last = 0;
        for i in 0..400 {
            last = put(&mut writer_kv, format!("c/{i}").as_bytes(), b"v").await;
            done_tx.send_replace(last);
        }
        last
    });
    // Wait until the writer is under way, then create watchers while it writes.
    timeout(DEADLINE, done_rx.wait_for(|r| *r >= before + 20))
        .await
        .unwrap()
        .unwrap();
    let mut created: BTreeSet<i64> = BTreeSet::from([r.watch_id]);
    let mut all = Vec::new();
    for i in 0..8_i64 {
        let start_revision = if i % 2 == 0 { 0 } else { before - 1 + i };
        ws.create(WatchCreateRequest {
            start_revision,
            ..on_prefix(b"c/")
        })
        .await;
        let got = read_until(&mut ws, |got| got.last().is_some_and(|r| r.created)).await;
        for r in &got {
            assert!(
                r.created || created.contains(&r.watch_id),
                "a response for watcher {} came before its created reply: {r:?}",
                r.watch_id
            );
        }
        let reply = got.last().unwrap();
        assert!(!reply.canceled && created.insert(reply.watch_id), "{reply:?}");
        all.extend(got);
    }
    let last = writer.await.unwrap();
    assert!(
        all.iter().all(|r| !r.canceled),
        "no watcher was canceled: {all:?}"
    );
    let _ = read_until(&mut ws, |got| {
        created.iter().all(|id| {
            got.iter()
                .chain(&all)
                .any(|r| r.watch_id == *id && evs(r).iter().any(|e| e.2 == last))
        })
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Key selection.

/// §2.6 Create: `range_end` follows the Range rules — empty = the single key, a prefix end, any
/// `[key, range_end)`, `"\0"` = every key ≥ key; an empty `key` is treated as `"\0"`, so
/// `key="" range_end="\0"` watches every key and `key=""` alone watches the key `"\0"`.
#[tokio::test]
async fn key_range_prefix_from_key_and_empty_key_select_the_right_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open(&s).await;
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    let w_key = ws.watch(on_key(b"a")).await;
    let w_range = ws.watch(on_range(b"b", b"d")).await;
    let w_prefix = ws.watch(on_prefix(b"p/")).await;
    let w_from = ws.watch(on_range(b"m", b"\0")).await;
    let w_all = ws.watch(on_range(b"", b"\0")).await;
    let w_nul = ws.watch(on_key(b"")).await;
    let keys: [&[u8]; 14] = [
        b"\0", b"\0\0", b"a", b"aa", b"b", b"c", b"cz", b"d", b"m", b"p", b"p/", b"p/x", b"p0", b"z",
    ];
    let mut rev_of = HashMap::new();
    for k in keys {
        rev_of.insert(
            String::from_utf8_lossy(k).into_owned(),
            put(&mut kv, k, b"v").await,
        );
    }
    let got = barrier(&mut ws, &mut kv, sentinel).await;
    let mut by_id = events_by_id(&got);
    for list in by_id.values_mut() {
        list.retain(|e| e.1 != "~sentinel");
    }
    let want = |ks: &[&str]| -> Vec<Ev> { ks.iter().map(|k| put_ev(k, rev_of[*k])).collect() };
    assert_eq!(by_id[&w_key], want(&["a"]), "single key");
    assert_eq!(by_id[&w_range], want(&["b", "c", "cz"]), "[b, d)");
    assert_eq!(by_id[&w_prefix], want(&["p/", "p/x"]), "prefix p/");
    assert_eq!(
        by_id[&w_from],
        want(&["m", "p", "p/", "p/x", "p0", "z"]),
        "from key m"
    );
    let every: Vec<String> = keys
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    let every: Vec<&str> = every.iter().map(String::as_str).collect();
    assert_eq!(by_id[&w_all], want(&every), "empty key + \"\\0\": every key");
    assert_eq!(by_id[&w_nul], want(&["\0"]), "empty key alone: the key \"\\0\"");
}

// ---------------------------------------------------------------------------------------------
// Start revisions.

/// §2.6: `start_revision=0` delivers only changes with revision > the current one.
#[tokio::test]
async fn start_revision_zero_watches_from_now() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    put(&mut kv, b"a", b"1").await;
    let now = put(&mut kv, b"a", b"2").await;
    let mut ws = Ws::open(&s).await;
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    let r = ws.watch_reply(on_key(b"a")).await;
    assert_eq!(header_rev(&r), now);
    let next = put(&mut kv, b"a", b"3").await;
    let got = barrier(&mut ws, &mut kv, sentinel).await;
    assert_eq!(
        events_by_id(&got),
        BTreeMap::from([(r.watch_id, vec![put_ev("a", next)])])
    );
}

/// §2.6: `start_revision=N` in the past delivers every change with `mod_revision >= N`
/// (inclusive), replayed from history, then live — with no gap and no duplicate at the switch,
/// even while writes go on concurrently.
#[tokio::test]
async fn past_start_revision_replays_history_then_live_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let first = put(&mut kv, b"h/first", b"0").await;
    let (tx, mut rx) = tokio::sync::watch::channel(first);
    let mut writer_kv = kv.clone();
    let writer = tokio::spawn(async move {
        let mut log = vec![(first, "h/first".to_string())];
        for i in 0..600 {
            let k = format!("h/{:03}", i % 50);
            let rev = put(&mut writer_kv, k.as_bytes(), format!("{i}").as_bytes()).await;
            log.push((rev, k));
            tx.send_replace(rev);
        }
        log
    });
    timeout(DEADLINE, rx.wait_for(|r| *r >= first + 150))
        .await
        .unwrap()
        .unwrap();
    let start_revision = first + 3;
    let mut ws = Ws::open(&s).await;
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    let w = ws
        .watch(WatchCreateRequest {
            start_revision,
            ..on_prefix(b"h/")
        })
        .await;
    let log = writer.await.unwrap();
    let last = log.last().unwrap().0;
    let got = read_until_rev(&mut ws, w, last).await;
    let seen: Vec<Ev> = got.iter().filter(|r| r.watch_id == w).flat_map(evs).collect();
    let want: Vec<Ev> = log
        .iter()
        .filter(|(rev, _)| *rev >= start_revision)
        .map(|(rev, k)| put_ev(k, *rev))
        .collect();
    assert_eq!(seen.len(), want.len(), "event count");
    assert_eq!(seen, want, "exactly the history from start_revision on, in order");
    // Nothing more (no duplicate after the switch to live).
    let after = barrier(&mut ws, &mut kv, sentinel).await;
    assert!(
        after.iter().all(|r| r.watch_id != w),
        "extra responses: {after:?}"
    );
}

/// §2.6: a `start_revision` in the future waits: the watcher gets nothing before that revision,
/// then every change from it on.
#[tokio::test]
async fn future_start_revision_waits_for_that_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let now = put(&mut kv, b"f", b"0").await;
    let mut ws = Ws::open(&s).await;
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    let r = ws
        .watch_reply(WatchCreateRequest {
            start_revision: now + 3,
            ..on_key(b"f")
        })
        .await;
    assert_eq!(
        header_rev(&r),
        now,
        "created header.revision is the current revision"
    );
    let early = barrier(&mut ws, &mut kv, sentinel).await; // now+1
    assert!(early.is_empty(), "{early:?}");
    put(&mut kv, b"f", b"1").await; // now+2
    let r3 = put(&mut kv, b"f", b"2").await;
    let r4 = put(&mut kv, b"f", b"3").await;
    assert_eq!((r3, r4), (now + 3, now + 4));
    let got = barrier(&mut ws, &mut kv, sentinel).await;
    assert_eq!(
        events_by_id(&got),
        BTreeMap::from([(r.watch_id, vec![put_ev("f", r3), put_ev("f", r4)])])
    );
}

/// §2.6: a start revision below the compaction revision gets, after its created reply, a single
/// response `{watch_id, compact_revision=<compact rev>, canceled=true}` without cancel_reason,
/// and then nothing more for that id. Starting exactly at the compaction revision is allowed.
#[tokio::test]
async fn start_revision_below_compaction_gets_one_compacted_response() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    for v in 0..5 {
        put(&mut kv, b"a", format!("{v}").as_bytes()).await; // revisions 2..=6
    }
    compact(&mut kv, 5).await;
    let mut ws = Ws::open(&s).await;
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    let w = ws
        .watch(WatchCreateRequest {
            start_revision: 4,
            ..on_key(b"a")
        })
        .await;
    let r = ws.next().await;
    assert_eq!(
        (
            r.watch_id,
            r.canceled,
            r.created,
            r.compact_revision,
            r.cancel_reason.as_str()
        ),
        (w, true, false, 5, ""),
        "{r:?}"
    );
    assert!(r.events.is_empty());

    // At the compaction revision: replays the surviving version at 5, and 6.
    let at = ws
        .watch(WatchCreateRequest {
            start_revision: 5,
            ..on_key(b"a")
        })
        .await;
    let got = read_until_rev(&mut ws, at, 6).await;
    let by_id = events_by_id(&got);
    assert_eq!(
        by_id.get(&at),
        Some(&vec![put_ev("a", 5), put_ev("a", 6)]),
        "{got:?}"
    );
    let r7 = put(&mut kv, b"a", b"7").await;
    let got = barrier(&mut ws, &mut kv, sentinel).await;
    assert_eq!(
        events_by_id(&got),
        BTreeMap::from([(at, vec![put_ev("a", r7)])]),
        "nothing more for the compacted watcher {w}"
    );
}

/// How many bytes a "big" value has: a stream whose client does not read fills the client's
/// HTTP/2 window (2 MiB), the server's send buffer and the server's response queue (128
/// responses) with fewer than 200 such responses.
const BIG: usize = 100 * 1024;

/// Leaves `ws` (watching `big/`) behind: writes 200 big values under `big/` that the client does
/// not read, so the stream's responses back up, then `small` more revisions elsewhere, more than
/// the 1024 revisions the server queues per stream. Returns the log of (revision, key) written
/// under `big/` and under `small/`.
async fn fall_behind(kv: &mut KvClient<Channel>, small: usize) -> (Vec<(i64, String)>, Vec<(i64, String)>) {
    let value = vec![b'x'; BIG];
    let mut big_log = Vec::new();
    for i in 0..200 {
        let k = format!("big/{i:03}");
        big_log.push((put(kv, k.as_bytes(), &value).await, k));
    }
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            let mut log = Vec::new();
            for i in (t..small).step_by(8) {
                let k = format!("small/{i:04}");
                log.push((put(&mut kv, k.as_bytes(), b"s").await, k));
            }
            log
        }));
    }
    let mut small_log = Vec::new();
    for t in tasks {
        small_log.extend(t.await.unwrap());
    }
    small_log.sort();
    (big_log, small_log)
}

/// §2.6: "The same happens later for a slow watcher overtaken by compaction": a stream that does
/// not read its responses falls behind; once the history it still needs is compacted, the
/// watcher gets `{watch_id, compact_revision, canceled=true}` (after the events it was sent
/// before, without a gap) and then nothing more.
#[tokio::test]
async fn slow_watcher_overtaken_by_compaction_gets_compacted_response() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open(&s).await;
    let w = ws.watch(on_range(b"big/", b"small0")).await;
    let (big_log, small_log) = fall_behind(&mut kv, 1500).await;
    let compact_rev = small_log.last().unwrap().0;
    compact(&mut kv, compact_rev).await;

    let got = read_until(&mut ws, |got| {
        got.last().is_some_and(|r| r.watch_id == w && r.canceled)
    })
    .await;
    let last = got.last().unwrap();
    assert_eq!(
        (last.compact_revision, last.created, last.cancel_reason.as_str()),
        (compact_rev, false, ""),
        "{:?}",
        WatchResponse {
            events: vec![],
            ..last.clone()
        }
    );
    let seen: Vec<Ev> = got.iter().flat_map(evs).collect();
    let all: Vec<Ev> = big_log
        .iter()
        .chain(&small_log)
        .map(|(r, k)| put_ev(k, *r))
        .collect();
    assert!(
        seen.len() < all.len(),
        "the watcher was not left behind ({} events seen), so the test proves nothing",
        seen.len()
    );
    assert_eq!(
        seen,
        all[..seen.len()],
        "events before the cancel are a gapless prefix"
    );
    // Nothing more for w.
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    let after = barrier(&mut ws, &mut kv, sentinel).await;
    assert!(after.iter().all(|r| r.watch_id != w), "{after:?}");
}

/// §2.6 slow consumer: a stream that falls behind (the server stops queueing live revisions for
/// it) catches up from the store without loss, duplicates or reordering, for every watcher on
/// the stream.
#[tokio::test]
async fn slow_stream_falls_behind_and_catches_up_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open(&s).await;
    let w_big = ws.watch(on_prefix(b"big/")).await;
    let w_small = ws.watch(on_prefix(b"small/")).await;
    let (big_log, small_log) = fall_behind(&mut kv, 1500).await;
    let last = small_log.last().unwrap().0;
    let got = read_until_rev(&mut ws, w_small, last).await;
    let by_id = events_by_id(&got);
    let want = |log: &[(i64, String)]| -> Vec<Ev> { log.iter().map(|(r, k)| put_ev(k, *r)).collect() };
    assert_eq!(by_id[&w_big], want(&big_log));
    assert_eq!(by_id[&w_small].len(), small_log.len());
    assert_eq!(by_id[&w_small], want(&small_log));
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    let after = barrier(&mut ws, &mut kv, sentinel).await;
    assert!(after.is_empty(), "extra responses after catching up: {after:?}");
}

// ---------------------------------------------------------------------------------------------
// Events.

/// §2.6 Events: a PUT carries the full new KeyValue (as Range returns it); a DELETE carries a
/// KeyValue with only `key` and `mod_revision` (= the deletion revision).
#[tokio::test]
async fn put_event_has_full_kv_and_delete_event_only_key_and_mod_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open(&s).await;
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    let w = ws.watch(on_key(b"k")).await;
    put(&mut kv, b"k", b"v1").await;
    let v1 = get(&mut kv, b"k").await;
    put(&mut kv, b"k", b"v2").await;
    let v2 = get(&mut kv, b"k").await;
    let rd = del(&mut kv, b"k", b"").await;
    let got = barrier(&mut ws, &mut kv, sentinel).await;
    assert_eq!(got.len(), 3, "one response per revision: {got:?}");
    let events: Vec<&Event> = got.iter().flat_map(|r| &r.events).collect();
    assert!(got.iter().all(|r| r.watch_id == w));
    assert_eq!(
        (ev_type(events[0]), events[0].kv.as_ref()),
        (EventType::Put, Some(&v1))
    );
    assert_eq!(
        (ev_type(events[1]), events[1].kv.as_ref()),
        (EventType::Put, Some(&v2))
    );
    assert_eq!(v2.version, 2);
    assert_eq!(ev_type(events[2]), EventType::Delete);
    assert_eq!(
        events[2].kv,
        Some(KeyValue {
            key: b(b"k"),
            mod_revision: rd,
            ..Default::default()
        }),
        "DELETE carries only key and mod_revision"
    );
    assert!(
        events.iter().all(|e| e.prev_kv.is_none()),
        "no prev_kv unless asked"
    );
    for r in &got {
        assert!(
            header_rev(r) >= r.events.last().unwrap().kv.as_ref().unwrap().mod_revision,
            "header.revision >= the last event's revision: {r:?}"
        );
    }
}

/// §2.6: a live watcher gets one response per revision containing all its events of that
/// revision, ordered by sub-revision: a Txn putting three keys is one response with three events
/// in the Txn's op order.
#[tokio::test]
async fn txn_events_of_one_revision_arrive_in_one_response_in_op_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open(&s).await;
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    let w = ws.watch(on_prefix(b"t/")).await;
    let rev = txn(
        &mut kv,
        vec![
            op_put(b"t/c", b"1"),
            op_put(b"t/a", b"2"),
            op_put(b"x", b"3"),
            op_put(b"t/b", b"4"),
        ],
    )
    .await;
    let got = barrier(&mut ws, &mut kv, sentinel).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].watch_id, w);
    assert_eq!(
        evs(&got[0]),
        vec![put_ev("t/c", rev), put_ev("t/a", rev), put_ev("t/b", rev)]
    );
    assert!(header_rev(&got[0]) >= rev);
}

/// §2.3/§2.6: a Txn (or DeleteRange) that deletes several keys writes one revision; watchers see
/// all the DELETE events of that revision in one response, in sub-revision order (a range
/// delete removes its keys in key order, then the next op's deletions follow).
#[tokio::test]
async fn txn_deleting_several_keys_gives_delete_events_at_one_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    for k in ["d/1", "d/2", "d/3", "d/4", "e/1", "e/2"] {
        put(&mut kv, k.as_bytes(), b"v").await;
    }
    let mut ws = Ws::open(&s).await;
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    let w = ws.watch(on_range(b"d/", b"f")).await;
    let rt = txn(&mut kv, vec![op_del(b"d/4", b""), op_del(b"d/1", b"d/3")]).await;
    let rd = del(&mut kv, b"e/", b"e0").await;
    let got = barrier(&mut ws, &mut kv, sentinel).await;
    assert_eq!(got.len(), 2, "one response per revision: {got:?}");
    assert!(got.iter().all(|r| r.watch_id == w));
    assert_eq!(
        evs(&got[0]),
        vec![del_ev("d/4", rt), del_ev("d/1", rt), del_ev("d/2", rt)]
    );
    assert_eq!(evs(&got[1]), vec![del_ev("e/1", rd), del_ev("e/2", rd)]);
}

/// §2.6: a catching-up watcher may get responses covering up to 1000 distinct revisions each,
/// but never splits a revision across responses.
#[tokio::test]
async fn catch_up_responses_never_split_a_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let first = current(&mut kv).await + 1;
    let mut tasks = Vec::new();
    for t in 0..4 {
        let mut kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            let mut log: Vec<(i64, Vec<String>)> = Vec::new();
            for i in 0..300 {
                if i % 10 == 3 {
                    let keys: Vec<String> = (0..3).map(|j| format!("s/{t}/{i}/{j}")).collect();
                    let ops = keys.iter().map(|k| op_put(k.as_bytes(), b"v")).collect();
                    log.push((txn(&mut kv, ops).await, keys));
                } else {
                    let k = format!("s/{t}/{i}");
                    log.push((put(&mut kv, k.as_bytes(), b"v").await, vec![k]));
                }
            }
            log
        }));
    }
    let mut log = Vec::new();
    for t in tasks {
        log.extend(t.await.unwrap());
    }
    log.sort();
    let last = log.last().unwrap().0;
    assert_eq!(log.len(), 1200);
    let mut ws = Ws::open(&s).await;
    let w = ws
        .watch(WatchCreateRequest {
            start_revision: first,
            ..on_prefix(b"s/")
        })
        .await;
    let got = read_until_rev(&mut ws, w, last).await;
    let mut seen_revs = BTreeSet::new();
    for r in &got {
        assert_eq!(r.watch_id, w);
        let revs: BTreeSet<i64> = r
            .events
            .iter()
            .map(|e| e.kv.as_ref().unwrap().mod_revision)
            .collect();
        assert!(revs.len() <= 1000, "a response covers {} revisions", revs.len());
        for rev in &revs {
            assert!(seen_revs.insert(*rev), "revision {rev} split across responses");
        }
    }
    let seen: Vec<Ev> = got.iter().flat_map(evs).collect();
    let want: Vec<Ev> = log
        .iter()
        .flat_map(|(rev, keys)| keys.iter().map(|k| put_ev(k, *rev)))
        .collect();
    assert_eq!(seen, want);
    eprintln!(
        "catch-up of {} revisions came in {} responses",
        log.len(),
        got.len()
    );
}

/// §2.6 prev_kv: with `prev_kv=true` each non-create event carries the key's previous version
/// (PUT over an existing key, DELETE); a PUT that creates the key (also after a delete) has none.
#[tokio::test]
async fn prev_kv_is_attached_to_updates_and_deletes_but_not_to_creates() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open(&s).await;
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    let w = ws
        .watch(WatchCreateRequest {
            prev_kv: true,
            ..on_prefix(b"k")
        })
        .await;
    put(&mut kv, b"k", b"v1").await;
    let v1 = get(&mut kv, b"k").await;
    put(&mut kv, b"k", b"v2").await;
    let v2 = get(&mut kv, b"k").await;
    put(&mut kv, b"k2", b"w").await;
    let w1 = get(&mut kv, b"k2").await;
    del(&mut kv, b"k", b"").await;
    put(&mut kv, b"k", b"v3").await;
    let v3 = get(&mut kv, b"k").await;
    del(&mut kv, b"k", b"l").await; // deletes k and k2 at one revision
    let got = barrier(&mut ws, &mut kv, sentinel).await;
    assert!(got.iter().all(|r| r.watch_id == w));
    let events: Vec<&Event> = got.iter().flat_map(|r| &r.events).collect();
    let summary: Vec<(Ev, Option<&KeyValue>)> = events.iter().map(|e| (ev(e), e.prev_kv.as_ref())).collect();
    assert_eq!(
        summary,
        vec![
            (put_ev("k", v1.mod_revision), None),
            (put_ev("k", v2.mod_revision), Some(&v1)),
            (put_ev("k2", w1.mod_revision), None),
            (del_ev("k", w1.mod_revision + 1), Some(&v2)),
            (put_ev("k", v3.mod_revision), None),
            (del_ev("k", v3.mod_revision + 1), Some(&v3)),
            (del_ev("k2", v3.mod_revision + 1), Some(&w1)),
        ]
    );
}

/// §2.6 filters: NOPUT / NODELETE drop those events server-side, and a response left with no
/// events is not sent at all.
#[tokio::test]
async fn noput_and_nodelete_filters_drop_events_and_send_no_empty_responses() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open(&s).await;
    let sentinel = ws.watch(on_key(SENTINEL)).await;
    let filtered = |filters: Vec<FilterType>| WatchCreateRequest {
        filters: filters.into_iter().map(|f| f as i32).collect(),
        ..on_prefix(b"f")
    };
    let no_put = ws.watch(filtered(vec![FilterType::Noput])).await;
    let no_del = ws.watch(filtered(vec![FilterType::Nodelete])).await;
    let neither = ws
        .watch(filtered(vec![FilterType::Noput, FilterType::Nodelete]))
        .await;
    let p1 = put(&mut kv, b"f", b"1").await;
    let p2 = put(&mut kv, b"f", b"2").await;
    let d1 = del(&mut kv, b"f", b"").await;
    let p3 = put(&mut kv, b"f", b"3").await;
    put(&mut kv, b"f2", b"x").await;
    let mixed = txn(&mut kv, vec![op_del(b"f2", b""), op_put(b"f", b"4")]).await;
    let got = barrier(&mut ws, &mut kv, sentinel).await;
    for r in &got {
        assert!(!r.events.is_empty(), "an empty response was sent: {r:?}");
    }
    let per_watcher =
        |id: i64| -> Vec<Vec<Ev>> { got.iter().filter(|r| r.watch_id == id).map(evs).collect() };
    assert_eq!(
        per_watcher(no_put),
        vec![vec![del_ev("f", d1)], vec![del_ev("f2", mixed)]]
    );
    assert_eq!(
        per_watcher(no_del),
        vec![
            vec![put_ev("f", p1)],
            vec![put_ev("f", p2)],
            vec![put_ev("f", p3)],
            vec![put_ev("f2", p3 + 1)],
            vec![put_ev("f", mixed)],
        ]
    );
    assert!(per_watcher(neither).is_empty());
}

/// §2.6 fragment (3.4+): with `fragment=true`, a response larger than `max-request-bytes` + 512
/// KiB with ≥2 events is split: every part has ≥1 event, all but the last have `fragment=true`,
/// and the parts' events concatenate to the whole. A watcher without `fragment` gets the whole
/// response in one message.
#[tokio::test]
async fn oversized_response_is_fragmented_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--max-request-bytes=4096"]).await;
    let limit = 4096 + 512 * 1024;
    let mut kv = s.kv().await;
    let value = vec![b'v'; 3000];
    let mut tasks = Vec::new();
    for t in 0..5 {
        let mut kv = kv.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..250).step_by(5) {
                put(&mut kv, format!("g/{i:03}").as_bytes(), &value).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut ws = Ws::open(&s).await;
    let whole = ws
        .watch(WatchCreateRequest {
            prev_kv: true,
            ..on_prefix(b"g/")
        })
        .await;
    let frag = ws
        .watch(WatchCreateRequest {
            prev_kv: true,
            fragment: true,
            ..on_prefix(b"g/")
        })
        .await;
    // One revision of 250 DELETE events, each with a ~3 KB prev_kv: ~770 KB in all.
    let rd = del(&mut kv, b"g/", b"g0").await;
    let want: Vec<Ev> = (0..250).map(|i| del_ev(&format!("g/{i:03}"), rd)).collect();
    let got = read_until(&mut ws, |got| {
        got.iter().any(|r| r.watch_id == whole) && got.iter().any(|r| r.watch_id == frag && !r.fragment)
    })
    .await;
    let whole_parts: Vec<&WatchResponse> = got.iter().filter(|r| r.watch_id == whole).collect();
    assert_eq!(whole_parts.len(), 1, "without fragment=true: one response");
    assert!(!whole_parts[0].fragment);
    assert_eq!(evs(whole_parts[0]), want);
    assert!(
        whole_parts[0].encoded_len() > limit,
        "the test response must exceed the limit"
    );

    let parts: Vec<&WatchResponse> = got.iter().filter(|r| r.watch_id == frag).collect();
    assert!(parts.len() >= 2, "split into {} parts", parts.len());
    for (i, p) in parts.iter().enumerate() {
        assert!(!p.events.is_empty(), "part {i} has no event");
        assert_eq!(p.fragment, i + 1 < parts.len(), "fragment flag of part {i}");
        assert!(
            p.events.len() == 1 || p.encoded_len() <= limit,
            "part {i} ({} bytes, {} events) exceeds the limit",
            p.encoded_len(),
            p.events.len()
        );
        assert!(!p.created && !p.canceled);
    }
    let joined: Vec<Ev> = parts.iter().flat_map(|p| evs(p)).collect();
    assert_eq!(joined, want, "the parts concatenate to the whole");
    let joined_full: Vec<&Event> = parts.iter().flat_map(|p| &p.events).collect();
    let whole_full: Vec<&Event> = whole_parts[0].events.iter().collect();
    assert_eq!(joined_full, whole_full, "events (with prev_kv) are the same");
}

// ---------------------------------------------------------------------------------------------
// Progress.

/// §2.6 progress_notify: every interval, a synced watcher with `progress_notify=true` that got no
/// event since the last tick receives an empty response `{watch_id, header.revision=current}`:
/// no events, not created, not canceled, compact_revision 0. Watchers without the flag get none.
async fn idle_watcher_gets_progress_notifications(flag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[flag]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open(&s).await;
    let quiet = ws.watch(on_key(b"q")).await;
    let notify = ws
        .watch(WatchCreateRequest {
            progress_notify: true,
            ..on_key(b"n")
        })
        .await;
    assert_ne!(quiet, notify);
    // Each write elsewhere moves the current revision (and takes it past the watchers' start
    // revision, which the newest etcd requires before it reports progress); the notifications
    // that follow report it.
    let before = current(&mut kv).await;
    let first = put(&mut kv, b"elsewhere", b"1").await;
    expect_progress_at(&mut ws, notify, first, before).await;
    let second = put(&mut kv, b"elsewhere", b"2").await;
    expect_progress_at(&mut ws, notify, second, first).await;
}

/// Reads progress notifications for `notify` (and nothing else) until one reports `rev`; earlier
/// ones (ticks taken just before the write) may report revisions from `floor` on. The next two
/// must report exactly `rev` again (idle: header.revision is the current revision).
async fn expect_progress_at(ws: &mut Ws, notify: i64, rev: i64, floor: i64) {
    let mut seen = Vec::new();
    for _ in 0..10 {
        let r = ws.next().await;
        assert!(
            is_progress(&r) && r.watch_id == notify,
            "expected a progress notification for watcher {notify} only: {r:?}"
        );
        assert!((floor..=rev).contains(&header_rev(&r)), "{r:?}");
        seen.push(header_rev(&r));
        if header_rev(&r) == rev {
            break;
        }
    }
    assert_eq!(
        seen.last(),
        Some(&rev),
        "no progress notification at revision {rev}: {seen:?}"
    );
    for _ in 0..2 {
        let r = ws.next().await;
        assert!(is_progress(&r) && r.watch_id == notify, "{r:?}");
        assert_eq!(header_rev(&r), rev, "header.revision is the current revision");
    }
}

/// The 3.6 flag name, `--watch-progress-notify-interval` (etcd 3.4 knows only the experimental
/// spelling, so the etcd run uses that).
#[tokio::test]
async fn progress_notify_interval_flag_sends_empty_progress_responses() {
    let flag = if spec_only() {
        "--watch-progress-notify-interval=200ms"
    } else {
        "--experimental-watch-progress-notify-interval=200ms"
    };
    idle_watcher_gets_progress_notifications(flag).await;
}

/// The pre-3.6 flag name kubeadm passes, `--experimental-watch-progress-notify-interval`.
#[tokio::test]
async fn experimental_progress_notify_interval_flag_sends_empty_progress_responses() {
    idle_watcher_gets_progress_notifications("--experimental-watch-progress-notify-interval=200ms").await;
}

/// §2.6 progress_request: when every watcher on the stream is synced, the server answers once
/// with `{watch_id=-1, header.revision=current, no events}`. (etcd 3.4.23 answers every progress
/// request unconditionally; the "only if synced" rule is 3.4.31+/3.5.13+.)
#[tokio::test]
async fn progress_request_with_all_watchers_synced_is_answered_once_with_minus_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open(&s).await;
    ws.watch(on_key(b"a")).await;
    ws.watch(WatchCreateRequest {
        start_revision: 1,
        ..on_key(b"b")
    })
    .await;
    let now = put(&mut kv, b"z", b"1").await;
    ws.progress().await;
    let r = ws.next().await;
    assert_eq!(r.watch_id, -1, "{r:?}");
    assert!(is_progress(&r), "{r:?}");
    assert_eq!(header_rev(&r), now, "header.revision is the current revision");
    // Answered once: the reply to a later create comes next.
    let c = ws.next_after_create(on_key(b"c")).await;
    assert!(c.created, "expected the created reply, got {c:?}");
}

/// §2.6 progress_request: a stream without watchers gets no answer (checked by sending a create
/// after it: its created reply must be the first response).
#[tokio::test]
async fn progress_request_without_watchers_is_not_answered() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut ws = Ws::open(&s).await;
    ws.progress().await;
    let r = ws.next_after_create(on_key(b"a")).await;
    if spec_only() {
        assert!(r.created, "the progress request must not be answered: {r:?}");
    }
    // After the only watcher is canceled, the stream has no watchers again.
    let id = if r.created {
        r.watch_id
    } else {
        ws.next().await.watch_id
    };
    ws.cancel(id).await;
    assert!(ws.next().await.canceled);
    ws.progress().await;
    let r = ws.next_after_create(on_key(b"a")).await;
    if spec_only() {
        assert!(r.created, "the progress request must not be answered: {r:?}");
    }
}

/// §2.6 progress_request: not answered while a watcher waits for a future start revision
/// (current < its start_revision — etcd 3.5.13+/3.6 `progressIfSync`: `rev < w.startRev`), also
/// when current is just one short of it; answered once that revision is reached. (etcd 3.4.23
/// answers unconditionally.)
#[tokio::test]
async fn progress_request_is_not_answered_while_a_watcher_waits_for_a_future_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let now = current(&mut kv).await;
    let mut ws = Ws::open(&s).await;
    ws.watch(on_key(b"a")).await;
    let future = ws
        .watch(WatchCreateRequest {
            start_revision: now + 2,
            ..on_key(b"f")
        })
        .await;
    ws.progress().await;
    let r = ws.next_after_create(on_key(b"c")).await;
    if spec_only() {
        assert!(r.created, "the progress request must not be answered: {r:?}");
    }
    if !r.created {
        ws.next().await;
    }
    let short = put(&mut kv, b"x", b"1").await; // now+1: still short of the start revision
    ws.progress().await;
    let r = ws.next_after_create(on_key(b"d")).await;
    if spec_only() {
        assert!(
            r.created,
            "the progress request must not be answered while the current revision ({short}) is \
             below watcher {future}'s start_revision ({}); got {r:?}",
            now + 2
        );
    }
    if !r.created {
        ws.next().await;
    }
    let reached = put(&mut kv, b"f", b"1").await; // now+2
    let got = read_until_rev(&mut ws, future, reached).await;
    assert_eq!(
        events_by_id(&got),
        BTreeMap::from([(future, vec![put_ev("f", reached)])])
    );
    ws.progress().await;
    let r = ws.next().await;
    assert_eq!((r.watch_id, header_rev(&r)), (-1, reached), "{r:?}");
    assert!(is_progress(&r));
}

/// §2.6 progress_request: not answered while a watcher replays history; any answer must come
/// after every event at or below its revision. The requests are interleaved with creates whose
/// replies mark the order in which the stream handled them; every progress request handled
/// before the replaying watcher's last event must stay unanswered.
#[tokio::test]
async fn progress_request_is_not_answered_while_a_watcher_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..600 {
                put(&mut kv, format!("h/{t}/{i}").as_bytes(), b"v").await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let last = current(&mut kv).await;
    let mut ws = Ws::open(&s).await;
    // One burst, so the requests reach the server together with the create: the replaying
    // watcher (automatic id 0), then progress, create(marker 100), progress, create(101), ...
    ws.create(WatchCreateRequest {
        start_revision: 2,
        ..on_prefix(b"h/")
    })
    .await;
    for i in 0..20 {
        ws.progress().await;
        ws.create(WatchCreateRequest {
            watch_id: 100 + i,
            ..on_key(b"marker")
        })
        .await;
    }
    let w = 0;
    let got = read_until(&mut ws, |got| {
        got.iter().any(|r| r.watch_id == 119 && r.created)
            && got
                .iter()
                .any(|r| r.watch_id == w && evs(r).iter().any(|e| e.2 == last))
    })
    .await;
    assert!(
        got[0].created && !got[0].canceled && got[0].watch_id == w,
        "the first reply is the replaying watcher's created: {:?}",
        got[0]
    );
    let mut caught_up = false;
    let mut max_event_rev = 0;
    let mut markers_during_catch_up = 0;
    let mut answers = 0;
    for r in &got[1..] {
        if r.watch_id == w {
            max_event_rev = max_event_rev.max(evs(r).iter().map(|e| e.2).max().unwrap_or(0));
            caught_up = max_event_rev == last;
        } else if r.watch_id == -1 {
            answers += 1;
            assert!(is_progress(r), "{r:?}");
            if spec_only() {
                assert!(
                    caught_up,
                    "a progress answer at revision {} came while watcher {w} was still catching up \
                     (it has seen events up to {max_event_rev} of {last})",
                    header_rev(r)
                );
            }
            if spec_only() {
                assert!(
                    max_event_rev >= header_rev(r).min(last),
                    "a progress answer at revision {} overtook events (seen up to {max_event_rev})",
                    header_rev(r)
                );
            }
        } else if r.created && !caught_up {
            markers_during_catch_up += 1;
        }
    }
    eprintln!(
        "{markers_during_catch_up} of 20 progress requests were handled during catch-up; {answers} answered"
    );
    assert!(
        markers_during_catch_up > 0,
        "test premise: the requests sent right behind the create reach the server before a replay \
         of {last} revisions ends"
    );
}

// ---------------------------------------------------------------------------------------------
// Stream lifecycle.

/// §2.6 Stream end: when the client half-closes the request stream, the server ends the
/// response stream with status OK. (This follows the spec. Real etcd — 3.4.23 checked, and the
/// 3.5/3.6 `serverWatchStream.recvLoop` returns nil on EOF the same way — keeps the response
/// stream open until the client cancels it, so the etcd run skips this test.)
#[tokio::test]
async fn half_closing_the_request_stream_ends_the_response_stream_ok() {
    if !spec_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open(&s).await;
    let w = ws.watch(on_key(b"a")).await;
    let rev = put(&mut kv, b"a", b"1").await;
    assert_eq!(evs(&ws.next().await), vec![put_ev("a", rev)]);
    ws.half_close();
    // The stream ends with OK (`recv` fails the test on an error status or a deadline); a late
    // response for w before the end would be tolerable.
    for _ in 0..10 {
        match ws.recv().await {
            None => return,
            Some(r) => assert_eq!(r.watch_id, w, "{r:?}"),
        }
    }
    panic!("the response stream did not end after the half-close");
}

/// §2.6/§2.11: gRPC metadata `hasleader=true` (clientv3.WithRequireLeader, set by kube-apiserver
/// on every watch) is accepted when the cluster has a leader: the stream works normally.
#[tokio::test]
async fn hasleader_metadata_is_accepted_when_there_is_a_leader() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut ws = Ws::open_with_metadata(&s, &[("hasleader", "true")]).await;
    let w = ws
        .watch(WatchCreateRequest {
            prev_kv: true,
            progress_notify: true,
            ..on_prefix(b"/registry/pods/")
        })
        .await;
    let rev = put(&mut kv, b"/registry/pods/default/p", b"1").await;
    let r = ws.next().await;
    assert_eq!(
        (r.watch_id, evs(&r)),
        (w, vec![put_ev("/registry/pods/default/p", rev)])
    );
    ws.progress().await;
    let r = ws.next().await;
    assert_eq!((r.watch_id, header_rev(&r)), (-1, rev));
}

// ---------------------------------------------------------------------------------------------
// Randomized: concurrent writers and watchers against the store's history.

/// A small deterministic PRNG (splitmix64), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const RANDOM_KEYS: u64 = 8;

fn random_key(rng: &mut Rng) -> Vec<u8> {
    if rng.below(10) == 0 {
        format!("s/{}", rng.below(2)).into_bytes()
    } else {
        format!("r/{}", rng.below(RANDOM_KEYS)).into_bytes()
    }
}

/// One writer: `ops` random puts, deletes, range deletes and txns over a small key space.
/// Returns, for each write that made a revision, (revision, changed keys in sub-revision order).
async fn random_writer(mut kv: KvClient<Channel>, seed: u64, ops: usize) -> Vec<(i64, Vec<Vec<u8>>)> {
    let mut rng = Rng(seed);
    let mut log = Vec::new();
    for i in 0..ops {
        let value = format!("{seed:x}-{i}").into_bytes();
        match rng.below(20) {
            0..=10 => {
                let k = random_key(&mut rng);
                log.push((put(&mut kv, &k, &value).await, vec![k]));
            }
            11..=13 => {
                let k = random_key(&mut rng);
                let r = kv
                    .delete_range(DeleteRangeRequest {
                        key: b(&k),
                        range_end: Bytes::new(),
                        prev_kv: true,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                if r.deleted > 0 {
                    log.push((r.header.unwrap().revision, vec![k]));
                }
            }
            14 => {
                let lo = rng.below(RANDOM_KEYS);
                let hi = lo + 1 + rng.below(3);
                let r = kv
                    .delete_range(DeleteRangeRequest {
                        key: format!("r/{lo}").into(),
                        range_end: format!("r/{hi}").into(),
                        prev_kv: true,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                if r.deleted > 0 {
                    let keys = r.prev_kvs.iter().map(|kv| kv.key.to_vec()).collect();
                    log.push((r.header.unwrap().revision, keys));
                }
            }
            _ => {
                let mut keys: Vec<Vec<u8>> = Vec::new();
                for _ in 0..2 + rng.below(2) {
                    let k = random_key(&mut rng);
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
                let ops: Vec<RequestOp> = keys
                    .iter()
                    .map(|k| {
                        if rng.below(3) == 0 {
                            op_del(k, b"")
                        } else {
                            op_put(k, &value)
                        }
                    })
                    .collect();
                let r = kv
                    .txn(TxnRequest {
                        compare: vec![],
                        success: ops,
                        failure: vec![],
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let mut changed = Vec::new();
                for (k, resp) in keys.iter().zip(&r.responses) {
                    match &resp.response {
                        Some(response_op::Response::ResponsePut(_)) => changed.push(k.clone()),
                        Some(response_op::Response::ResponseDeleteRange(d)) if d.deleted > 0 => {
                            changed.push(k.clone());
                        }
                        _ => {}
                    }
                }
                if !changed.is_empty() {
                    log.push((r.header.unwrap().revision, changed));
                }
            }
        }
    }
    log
}

/// What one randomized watcher asked for.
#[derive(Debug, Clone)]
struct Spec {
    key: Vec<u8>,
    range_end: Vec<u8>,
    start_revision: i64,
    prev_kv: bool,
}

impl Spec {
    fn contains(&self, k: &[u8]) -> bool {
        let key: &[u8] = if self.key.is_empty() { b"\0" } else { &self.key };
        match self.range_end.as_slice() {
            [] => k == key,
            [0] => k >= key,
            end => k >= key && k < end,
        }
    }
}

/// §2.6 as a whole, randomized (bounded in count and time): 4 concurrent writers do random puts,
/// deletes, range deletes and txns over a small key space while 6 watchers on 3 streams are
/// created at random past revisions (and some at 0), with assorted ranges and prev_kv. The
/// expected history is rebuilt from Range at every revision (and the writers' own log for the
/// order inside a revision); a reference watcher from revision 1 on all keys must equal it, and
/// every watcher must see exactly that history from its start revision for its range: in order,
/// without gaps or duplicates, one response per revision, full KeyValues and correct prev_kv.
#[tokio::test]
async fn randomized_concurrent_writers_and_watchers_see_exactly_the_store_history() {
    let seed = std::env::var("WATCH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("randomized watch test seed: WATCH_SEED={seed}");
    timeout(Duration::from_secs(120), randomized(seed))
        .await
        .unwrap_or_else(|_| panic!("randomized watch test (WATCH_SEED={seed}) took too long"));
}

async fn randomized(seed: u64) {
    const WRITERS: u64 = 4;
    const OPS_PER_WRITER: usize = 150;
    const WATCHERS: usize = 6;
    const STREAMS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]).await;
    let mut kv = s.kv().await;
    let mut rng = Rng(seed);

    // The reference: all keys from revision 1, prev_kv, on its own stream.
    let mut reference = Ws::open(&s).await;
    let ref_id = reference
        .watch(WatchCreateRequest {
            start_revision: 1,
            prev_kv: true,
            ..on_range(b"\0", b"\0")
        })
        .await;

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(random_writer(
                kv.clone(),
                seed ^ ((w + 1) * 0x1234_5678_9abc),
                OPS_PER_WRITER,
            ))
        })
        .collect();

    let mut streams: Vec<Ws> = Vec::new();
    for _ in 0..STREAMS {
        streams.push(Ws::open(&s).await);
    }
    let mut buffered: Vec<Vec<WatchResponse>> = vec![Vec::new(); STREAMS];
    let mut watchers: Vec<(usize, i64, Spec, i64)> = Vec::new(); // (stream, id, spec, first revision)
    for i in 0..WATCHERS {
        // Let the writers make some progress between creates (bounded).
        for _ in 0..(5 + rng.below(20)) {
            put(&mut kv, b"t/tick", b"").await;
        }
        let now = current(&mut kv).await;
        let start_revision = if i % 3 == 0 {
            0
        } else {
            1 + rng.below(now as u64) as i64
        };
        let (key, range_end): (Vec<u8>, Vec<u8>) = match rng.below(5) {
            0 => (b"r/".to_vec(), b"r0".to_vec()),
            1 => (format!("r/{}", rng.below(RANDOM_KEYS)).into_bytes(), vec![]),
            2 => {
                let lo = rng.below(RANDOM_KEYS);
                (
                    format!("r/{lo}").into_bytes(),
                    format!("r/{}", lo + 2).into_bytes(),
                )
            }
            3 => (format!("r/{}", rng.below(RANDOM_KEYS)).into_bytes(), vec![0]),
            _ => (vec![], vec![0]),
        };
        let spec = Spec {
            key,
            range_end,
            start_revision,
            prev_kv: rng.below(2) == 0,
        };
        let si = i % STREAMS;
        let ws = &mut streams[si];
        ws.create(WatchCreateRequest {
            key: b(&spec.key),
            range_end: b(&spec.range_end),
            start_revision: spec.start_revision,
            prev_kv: spec.prev_kv,
            ..Default::default()
        })
        .await;
        let known: BTreeSet<i64> = watchers.iter().filter(|w| w.0 == si).map(|w| w.1).collect();
        let got = read_until(ws, |got| got.last().is_some_and(|r| r.created)).await;
        let reply = got.last().unwrap().clone();
        assert!(!reply.canceled, "{reply:?}");
        for r in &got[..got.len() - 1] {
            assert!(
                known.contains(&r.watch_id),
                "response before its created reply: {r:?}"
            );
        }
        buffered[si].extend(got[..got.len() - 1].iter().cloned());
        let first = if start_revision == 0 {
            header_rev(&reply) + 1
        } else {
            start_revision
        };
        eprintln!(
            "watcher {i}: stream {si} id {} {spec:?} from {first}",
            reply.watch_id
        );
        watchers.push((si, reply.watch_id, spec, first));
    }
    let mut log = Vec::new();
    for w in writers {
        log.extend(w.await.unwrap());
    }
    // One more write, so that every watcher's start revision (also "from now") is <= the last
    // revision and the stream can answer progress requests at it.
    let last = put(&mut kv, b"t/final", b"").await;

    // The expected history: the state at every revision, from Range.
    let mut states: Vec<BTreeMap<Vec<u8>, KeyValue>> = vec![BTreeMap::new(); (last + 1) as usize];
    for rev in 1..=last {
        let r = kv
            .range(RangeRequest {
                key: b(b"\0"),
                range_end: b(b"\0"),
                revision: rev,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        states[rev as usize] = r.kvs.into_iter().map(|kv| (kv.key.to_vec(), kv)).collect();
    }
    // The order inside a revision: the writers' log (t/tick puts are single-key).
    let order: HashMap<i64, Vec<Vec<u8>>> = log.into_iter().collect();
    let mut history: Vec<Event> = Vec::new();
    for rev in 2..=last {
        let (before, after) = (&states[rev as usize - 1], &states[rev as usize]);
        let mut changed: BTreeMap<Vec<u8>, Event> = BTreeMap::new();
        for (k, kv) in after {
            if kv.mod_revision == rev {
                changed.insert(
                    k.clone(),
                    Event {
                        r#type: EventType::Put as i32,
                        kv: Some(kv.clone()),
                        prev_kv: before.get(k).cloned(),
                    },
                );
            }
        }
        for (k, prev) in before {
            if !after.contains_key(k) {
                changed.insert(
                    k.clone(),
                    Event {
                        r#type: EventType::Delete as i32,
                        kv: Some(KeyValue {
                            key: b(k),
                            mod_revision: rev,
                            ..Default::default()
                        }),
                        prev_kv: Some(prev.clone()),
                    },
                );
            }
        }
        let keys = order
            .get(&rev)
            .cloned()
            .unwrap_or_else(|| changed.keys().cloned().collect());
        let keyset: BTreeSet<Vec<u8>> = keys.iter().cloned().collect();
        assert_eq!(
            keyset,
            changed.keys().cloned().collect::<BTreeSet<_>>(),
            "Range at {rev} vs the writers' log"
        );
        for k in keys {
            history.push(changed.remove(&k).unwrap());
        }
    }

    // The reference watcher sees exactly the history, one response per revision.
    let got = read_until_rev(&mut reference, ref_id, last).await;
    check_watcher(
        "reference",
        &got,
        ref_id,
        &Spec {
            key: b"\0".to_vec(),
            range_end: vec![0],
            start_revision: 1,
            prev_kv: true,
        },
        1,
        &history,
    );

    // Each random watcher: read its stream until every watcher on it saw its last expected
    // event, then confirm with the stream's progress (all events <= last come before it).
    for (si, ws) in streams.iter_mut().enumerate() {
        let mine: Vec<&(usize, i64, Spec, i64)> = watchers.iter().filter(|w| w.0 == si).collect();
        let expected_last: HashMap<i64, Option<i64>> = mine
            .iter()
            .map(|(_, id, spec, first)| {
                let last_rev = history
                    .iter()
                    .filter(|e| e.kv.as_ref().unwrap().mod_revision >= *first)
                    .filter(|e| spec.contains(&e.kv.as_ref().unwrap().key))
                    .map(|e| e.kv.as_ref().unwrap().mod_revision)
                    .next_back();
                (*id, last_rev)
            })
            .collect();
        let mut got = std::mem::take(&mut buffered[si]);
        let done = |got: &[WatchResponse]| {
            expected_last.iter().all(|(id, rev)| {
                rev.is_none_or(|rev| {
                    got.iter().any(|r| {
                        r.watch_id == *id
                            && r.events
                                .iter()
                                .any(|e| e.kv.as_ref().unwrap().mod_revision == rev)
                    })
                })
            })
        };
        if !done(&got) {
            let more = read_until(ws, |more| {
                let all: Vec<WatchResponse> = got.iter().chain(more).cloned().collect();
                done(&all)
            })
            .await;
            got.extend(more);
        }
        // Anything else still queued (duplicates, events past `last`) arrives before the answer
        // to a progress request at revision >= last.
        // A request handled while some watcher still replays is rightly not answered: re-request
        // (as kube-apiserver does), bounded.
        let mut answered = false;
        'poll: for _ in 0..50 {
            ws.progress().await;
            while let Some(r) = ws.recv_within(Duration::from_millis(500)).await {
                if r.watch_id == -1 && header_rev(&r) >= last {
                    answered = true;
                    break 'poll;
                }
                if r.watch_id != -1 {
                    got.push(r);
                }
            }
        }
        assert!(answered, "stream {si}: no progress answer at revision >= {last}");
        for (_, id, spec, first) in &mine {
            check_watcher(
                &format!("watcher {id} on stream {si}"),
                &got,
                *id,
                spec,
                *first,
                &history,
            );
        }
    }
}

/// Checks that watcher `id` got exactly `history` from `first` on, within its range, with prev_kv
/// as asked, and no revision split across responses.
fn check_watcher(name: &str, got: &[WatchResponse], id: i64, spec: &Spec, first: i64, history: &[Event]) {
    let mine: Vec<&WatchResponse> = got.iter().filter(|r| r.watch_id == id).collect();
    let want: Vec<Event> = history
        .iter()
        .filter(|e| {
            e.kv.as_ref().unwrap().mod_revision >= first && spec.contains(&e.kv.as_ref().unwrap().key)
        })
        .map(|e| Event {
            prev_kv: if spec.prev_kv { e.prev_kv.clone() } else { None },
            ..e.clone()
        })
        .collect();
    let seen: Vec<Event> = mine.iter().flat_map(|r| r.events.iter().cloned()).collect();
    let short = |es: &[Event]| -> Vec<Ev> { es.iter().map(ev).collect() };
    assert_eq!(short(&seen), short(&want), "{name}: event sequence");
    assert_eq!(seen, want, "{name}: event contents (kv, prev_kv)");
    let mut revs_seen = BTreeSet::new();
    for r in &mine {
        assert!(!r.events.is_empty() && !r.canceled && !r.created, "{name}: {r:?}");
        let revs: BTreeSet<i64> = r
            .events
            .iter()
            .map(|e| e.kv.as_ref().unwrap().mod_revision)
            .collect();
        for rev in revs {
            assert!(
                revs_seen.insert(rev),
                "{name}: revision {rev} split across responses"
            );
        }
    }
}
