//! One bidi Watch stream: many watchers, their create / cancel / progress requests, live
//! delivery from the hub and catch-up from the store (etcd `v3rpc/watch.go` serverWatchStream,
//! `mvcc/watchable_store.go`).
//!
//! The stream task owns all its watchers. Live revisions arrive from the [`Hub`]; a watcher that
//! starts in the past, or a whole stream that fell behind (hub channel full), replays history
//! from the store in steps of at most 1000 revisions and then switches to live delivery; the
//! per-watcher `next` revision makes the switch free of gaps and duplicates. Responses go out
//! through a bounded channel, so a slow client only slows its own stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tonic::Status;

use super::hub::{Hub, Subscription};
use super::watcher::Watcher;
use crate::config::limits::WATCH_CATCHUP_REVISIONS_MAX;
use crate::error::Error;
use crate::mvcc::{KeyRange, RevisionEvents, Store};
use crate::proto::etcdserverpb::{
    ResponseHeader, WatchCancelRequest, WatchCreateRequest, WatchRequest, WatchResponse,
    watch_create_request, watch_request,
};
use crate::types::Revision;

/// etcd's cancel reasons (mvcc/watcher.go, v3rpc/watch.go).
const REASON_EMPTY_RANGE: &str = "mvcc: watcher range is empty";
const REASON_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
const REASON_COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

/// The shortest progress-notify interval (etcd-compat.md §2.6: minimum 100 ms).
const PROGRESS_INTERVAL_MIN: Duration = Duration::from_millis(100);

/// The ID etcd uses for "no watcher" (stream-wide progress, refused creates).
pub const INVALID_WATCH_ID: i64 = -1;

/// Fills a response header at a revision.
pub type HeaderFn = Arc<dyn Fn(Revision) -> Option<ResponseHeader> + Send + Sync>;

/// Settings of one stream.
#[derive(Clone)]
pub struct StreamSettings {
    /// Responses larger than this (bytes) are split when the watcher asked for fragments.
    pub max_response_bytes: usize,
    /// `--watch-progress-notify-interval`.
    pub progress_interval: Duration,
    /// `--election-timeout`: a stream opened with `hasleader=true` is cancelled with
    /// `etcdserver: no leader` after three of these without a leader (etcd `monitorLeader`).
    pub election_timeout: Duration,
}

/// Leader monitoring for streams opened with gRPC metadata `hasleader=true`.
#[derive(Clone)]
pub struct LeaderCheck(pub Arc<dyn Fn() -> bool + Send + Sync>);

/// Consecutive election timeouts without a leader before a `hasleader` stream is cancelled.
const NO_LEADER_TIMEOUTS_MAX: u32 = 3;

type Out = mpsc::Sender<Result<WatchResponse, Status>>;

struct WatchStream {
    store: Arc<Store>,
    hub: Arc<Hub>,
    header: HeaderFn,
    settings: StreamSettings,
    out: Out,
    watchers: BTreeMap<i64, Watcher>,
    next_auto_id: i64,
    permit: Option<PermitFn>,
}

/// What a stream task shares with the rest of the server.
pub struct StreamContext {
    /// The MVCC store (history replay, prev_kv).
    pub store: Arc<Store>,
    /// The hub the stream is subscribed to.
    pub hub: Arc<Hub>,
    /// Fills response headers.
    pub header: HeaderFn,
    /// Limits and intervals.
    pub settings: StreamSettings,
    /// Set for streams opened with `hasleader=true`.
    pub require_leader: Option<LeaderCheck>,
    /// The auth check of a watch creation (READ over its range); `Err` carries the cancel
    /// reason. Runs on every creation, so a token that expired meanwhile is noticed.
    pub permit: Option<PermitFn>,
}

/// Decides whether this stream may watch `[key, range_end)`; `Err(reason)` refuses.
pub type PermitFn = Arc<dyn Fn(&[u8], &[u8]) -> Result<(), String> + Send + Sync>;

/// Runs one stream until the client half-closes it, its connection goes away, or the
/// response channel closes.
pub async fn run<S>(ctx: StreamContext, mut sub: Subscription, mut requests: S, out: Out)
where
    S: Stream<Item = Result<WatchRequest, Status>> + Unpin,
{
    let StreamContext {
        store,
        hub,
        header,
        settings,
        require_leader,
        permit,
    } = ctx;
    let mut ticker = tokio::time::interval(settings.progress_interval.max(PROGRESS_INTERVAL_MIN));
    ticker.tick().await;
    let mut leader_ticker = tokio::time::interval(settings.election_timeout.max(PROGRESS_INTERVAL_MIN));
    leader_ticker.tick().await;
    let mut leaderless = 0u32;
    let mut ws = WatchStream {
        store,
        hub,
        header,
        settings,
        out,
        watchers: BTreeMap::new(),
        next_auto_id: 0,
        permit,
    };
    let mut gauges = crate::metrics::record::WatcherGauges::default();
    loop {
        gauges.set(
            ws.watchers.len(),
            ws.watchers.values().filter(|w| !w.synced).count(),
        );
        if sub.take_lagging() {
            for w in ws.watchers.values_mut() {
                w.synced = false;
            }
        }
        let catching_up = ws.catch_up_step().await.is_some();
        if ws.out.is_closed() {
            return;
        }
        if catching_up {
            // Keep answering requests and draining live revisions between catch-up steps.
            tokio::task::yield_now().await;
            while let Ok(events) = sub.events.try_recv() {
                ws.deliver(&events).await;
            }
            match futures::FutureExt::now_or_never(requests.next()) {
                Some(Some(Ok(req))) => ws.handle(req, &mut sub).await,
                Some(_) => return,
                None => {}
            }
            continue;
        }
        tokio::select! {
            req = requests.next() => match req {
                Some(Ok(req)) => ws.handle(req, &mut sub).await,
                _ => return,
            },
            Some(events) = sub.events.recv() => ws.deliver(&events).await,
            _ = ticker.tick() => ws.progress_tick(&mut sub).await,
            _ = leader_ticker.tick(), if require_leader.is_some() => {
                let has_leader = require_leader.as_ref().is_none_or(|check| (check.0)());
                leaderless = if has_leader { 0 } else { leaderless + 1 };
                if leaderless >= NO_LEADER_TIMEOUTS_MAX {
                    let _ = ws.out.send(Err(Error::NoLeader.into())).await;
                    return;
                }
            }
        }
    }
}

impl WatchStream {
    async fn send(&self, resp: WatchResponse) {
        // A closed channel means the client went away; the main loop notices and ends.
        let _ = self.out.send(Ok(resp)).await;
    }

    fn header_at(&self, rev: Revision) -> Option<ResponseHeader> {
        (self.header)(rev)
    }

    async fn handle(&mut self, req: WatchRequest, sub: &mut Subscription) {
        match req.request_union {
            Some(watch_request::RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(watch_request::RequestUnion::CancelRequest(WatchCancelRequest { watch_id }))
                if self.watchers.remove(&watch_id).is_some() =>
            {
                let header = self.header_at(self.hub.revision());
                self.send(WatchResponse {
                    header,
                    watch_id,
                    canceled: true,
                    ..WatchResponse::default()
                })
                .await;
            }
            Some(watch_request::RequestUnion::CancelRequest(_)) => {}
            Some(watch_request::RequestUnion::ProgressRequest(_)) => self.progress_all(sub).await,
            None => {}
        }
    }

    async fn create(&mut self, c: WatchCreateRequest) {
        let now = self.hub.revision();
        let key = if c.key.is_empty() { vec![0] } else { c.key.to_vec() };
        let range = KeyRange::new(&key, &c.range_end);
        let refuse = |reason: &str| WatchResponse {
            header: (self.header)(now),
            watch_id: INVALID_WATCH_ID,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..WatchResponse::default()
        };
        // etcd checks READ permission before anything else (etcd `v3rpc/watch.go`
        // isWatchPermitted); etcd 3.4 answers with watch ID -1.
        if let Some(permit) = &self.permit
            && let Err(reason) = permit(&key, &c.range_end)
        {
            return self.send(refuse(&reason)).await;
        }
        if matches!(&range, KeyRange::Between(start, end) if end <= start) {
            return self.send(refuse(REASON_EMPTY_RANGE)).await;
        }
        if c.start_revision < 0 {
            return self.send(refuse(REASON_COMPACTED)).await;
        }
        let id = if c.watch_id != 0 {
            if self.watchers.contains_key(&c.watch_id) {
                return self.send(refuse(REASON_DUPLICATE_ID)).await;
            }
            c.watch_id
        } else {
            while self.watchers.contains_key(&self.next_auto_id) {
                self.next_auto_id += 1;
            }
            self.next_auto_id
        };
        let filters: Vec<i32> = c.filters.clone();
        let next = if c.start_revision == 0 {
            now.next()
        } else {
            Revision(c.start_revision)
        };
        let watcher = Watcher {
            id,
            range,
            no_put: filters.contains(&(watch_create_request::FilterType::Noput as i32)),
            no_delete: filters.contains(&(watch_create_request::FilterType::Nodelete as i32)),
            prev_kv: c.prev_kv,
            fragment: c.fragment,
            progress_notify: c.progress_notify,
            start: next,
            next,
            synced: next > now,
            sent_since_tick: false,
        };
        self.watchers.insert(id, watcher);
        self.send(WatchResponse {
            header: self.header_at(now),
            watch_id: id,
            created: true,
            ..WatchResponse::default()
        })
        .await;
    }

    /// Sends one live revision to every synced watcher that wants it.
    async fn deliver(&mut self, rev: &RevisionEvents) {
        let ids: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.synced && w.next <= rev.revision)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(w) = self.watchers.get(&id).cloned() else {
                continue;
            };
            let events = w.events(&self.store, rev);
            if let Some(w) = self.watchers.get_mut(&id) {
                w.next = rev.revision.next();
                w.sent_since_tick |= !events.is_empty();
            }
            if !events.is_empty() {
                for resp in w.responses(
                    rev.revision,
                    events,
                    self.settings.max_response_bytes,
                    &*self.header,
                ) {
                    self.send(resp).await;
                }
            }
        }
    }

    /// Replays up to 1000 revisions of history for one unsynced watcher; `None` when every
    /// watcher is synced.
    async fn catch_up_step(&mut self) -> Option<()> {
        let w = self.watchers.values().find(|w| !w.synced)?.clone();
        let upto = self.hub.revision();
        match self.store.history(w.next, upto, WATCH_CATCHUP_REVISIONS_MAX) {
            Err(Error::Compacted) => {
                self.watchers.remove(&w.id);
                let compact_revision = self.store.compact_revision().0;
                // etcd sends the compaction notice with revision 0 in its header.
                let header = self.header_at(Revision(0));
                self.send(WatchResponse {
                    header,
                    watch_id: w.id,
                    canceled: true,
                    compact_revision,
                    ..WatchResponse::default()
                })
                .await;
            }
            Err(e) => {
                tracing::error!(error = %e, watch_id = w.id, "watch catch-up failed");
                self.watchers.remove(&w.id);
                let header = self.header_at(upto);
                let cancel_reason = crate::api::status::code_and_message(&e).1;
                self.send(WatchResponse {
                    header,
                    watch_id: w.id,
                    canceled: true,
                    cancel_reason,
                    ..WatchResponse::default()
                })
                .await;
            }
            Ok(history) => {
                let last = history.last().map(|r| r.revision);
                let done = last.is_none_or(|l| l >= upto) || history.len() < WATCH_CATCHUP_REVISIONS_MAX;
                let events: Vec<_> = history.iter().flat_map(|r| w.events(&self.store, r)).collect();
                let next = if done {
                    upto.next()
                } else {
                    last.map_or(w.next, Revision::next)
                };
                if let Some(entry) = self.watchers.get_mut(&w.id) {
                    entry.next = next;
                    entry.synced = done;
                    entry.sent_since_tick |= !events.is_empty();
                }
                if !events.is_empty() {
                    for resp in w.responses(upto, events, self.settings.max_response_bytes, &*self.header) {
                        self.send(resp).await;
                    }
                }
            }
        }
        Some(())
    }

    /// Delivers everything the hub already offered this stream, so a progress response at
    /// the hub revision never overtakes an event at or below it.
    async fn drain(&mut self, sub: &mut Subscription) -> Revision {
        let rev = self.hub.revision();
        while let Ok(events) = sub.events.try_recv() {
            self.deliver(&events).await;
        }
        rev
    }

    /// etcd `progressIfSync`: every watcher synced and none started after `rev` (a "from now"
    /// watcher starts at current + 1, so an idle stream gets its first answer after a write).
    fn all_synced_at(&self, rev: Revision, lagging: bool) -> bool {
        !lagging && self.watchers.values().all(|w| w.synced && w.start <= rev)
    }

    /// etcd `RequestProgressAll`: one `watch_id=-1` response at the current revision, only when
    /// the stream has watchers and all of them are synced; otherwise nothing.
    async fn progress_all(&mut self, sub: &mut Subscription) {
        let rev = self.drain(sub).await;
        if self.watchers.is_empty() || !self.all_synced_at(rev, sub.lagging.load(Ordering::SeqCst)) {
            return;
        }
        let header = self.header_at(rev);
        self.send(WatchResponse {
            header,
            watch_id: INVALID_WATCH_ID,
            ..WatchResponse::default()
        })
        .await;
    }

    /// Per-watcher progress notifications: a synced watcher with `progress_notify` that got no
    /// event since the last tick receives an empty response at the current revision.
    async fn progress_tick(&mut self, sub: &mut Subscription) {
        let rev = self.drain(sub).await;
        let lagging = sub.lagging.load(Ordering::SeqCst);
        let due: Vec<i64> = self
            .watchers
            .values()
            .filter(|w| {
                w.progress_notify && w.synced && !lagging && !w.sent_since_tick && w.next <= rev.next()
            })
            .map(|w| w.id)
            .collect();
        for w in self.watchers.values_mut() {
            w.sent_since_tick = false;
        }
        for watch_id in due {
            let header = self.header_at(rev);
            self.send(WatchResponse {
                header,
                watch_id,
                ..WatchResponse::default()
            })
            .await;
        }
    }
}
