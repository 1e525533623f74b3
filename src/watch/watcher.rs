//! One watcher: its key range, filters and position, and how it turns revisions into
//! `WatchResponse`s (etcd `mvcc/watcher.go`, `v3rpc/watch.go` sendLoop).

use prost::Message;

use crate::mvcc::{Change, KeyRange, RangeOptions, RevisionEvents, Store};
use crate::proto::etcdserverpb::WatchResponse;
use crate::proto::mvccpb::{Event, KeyValue, event::EventType};
use crate::types::Revision;

/// A watcher on one stream.
#[derive(Debug, Clone)]
pub struct Watcher {
    /// The stream-local watch ID.
    pub id: i64,
    /// The keys watched.
    pub range: KeyRange,
    /// Drop PUT events (filter NOPUT).
    pub no_put: bool,
    /// Drop DELETE events (filter NODELETE).
    pub no_delete: bool,
    /// Attach the previous KeyValue to every event.
    pub prev_kv: bool,
    /// Split oversized responses (`fragment=true`).
    pub fragment: bool,
    /// Send empty progress responses at the progress interval.
    pub progress_notify: bool,
    /// The revision the watcher started at (the requested one, or current + 1 for "from now").
    pub start: Revision,
    /// The next revision this watcher must see.
    pub next: Revision,
    /// Whether the watcher receives live revisions (false while it replays history).
    pub synced: bool,
    /// Whether an event was sent since the last progress tick.
    pub sent_since_tick: bool,
}

impl Watcher {
    /// The events of `rev` this watcher wants, with prev_kv filled when asked for.
    pub fn events(&self, store: &Store, rev: &RevisionEvents) -> Vec<Event> {
        rev.changes
            .iter()
            .filter(|c| self.range.contains(&c.kv.key))
            .filter(|c| !(c.tombstone && self.no_delete || !c.tombstone && self.no_put))
            .map(|c| self.event(store, c))
            .collect()
    }

    fn event(&self, store: &Store, c: &Change) -> Event {
        let prev_kv = if self.prev_kv {
            previous(store, &c.kv)
        } else {
            None
        };
        let (r#type, kv) = if c.tombstone {
            let kv = KeyValue {
                key: c.kv.key.clone(),
                mod_revision: c.kv.mod_revision,
                ..KeyValue::default()
            };
            (EventType::Delete, kv)
        } else {
            (EventType::Put, c.kv.clone())
        };
        Event {
            r#type: r#type as i32,
            kv: Some(kv),
            prev_kv,
        }
    }

    /// The responses carrying `events`: one, or — with `fragment` and an encoded size above
    /// `max_bytes` — several parts of at least one event each, all but the last marked
    /// `fragment=true` (etcd `sendFragments`).
    pub fn responses(
        &self,
        header_revision: Revision,
        events: Vec<Event>,
        max_bytes: usize,
        header: &dyn Fn(Revision) -> Option<crate::proto::etcdserverpb::ResponseHeader>,
    ) -> Vec<WatchResponse> {
        crate::metrics::record::events_sent(events.len());
        let whole = WatchResponse {
            header: header(header_revision),
            watch_id: self.id,
            events,
            ..WatchResponse::default()
        };
        if !self.fragment || whole.events.len() < 2 || whole.encoded_len() <= max_bytes {
            return vec![whole];
        }
        let mut parts = Vec::new();
        let mut current = WatchResponse {
            header: whole.header,
            watch_id: self.id,
            fragment: true,
            ..WatchResponse::default()
        };
        for event in whole.events {
            if !current.events.is_empty() && current.encoded_len() + event.encoded_len() > max_bytes {
                let next = WatchResponse {
                    header: whole.header,
                    watch_id: self.id,
                    fragment: true,
                    ..WatchResponse::default()
                };
                parts.push(std::mem::replace(&mut current, next));
            }
            current.events.push(event);
        }
        current.fragment = false;
        parts.push(current);
        parts
    }
}

/// The key's version before `kv` changed it (etcd reads at mod_revision - 1); `None` for a
/// newly created key or when that revision is compacted.
fn previous(store: &Store, kv: &KeyValue) -> Option<KeyValue> {
    let opts = RangeOptions {
        revision: kv.mod_revision - 1,
        ..RangeOptions::default()
    };
    store
        .range(&KeyRange::Single(kv.key.to_vec()), opts)
        .ok()?
        .kvs
        .into_iter()
        .next()
}
