//! The hub: fans committed revisions out to watch streams through bounded channels.
//!
//! The apply path calls [`Hub::notify`] after each batch is written to fjall. A stream whose
//! channel is full is marked lagging instead of being waited for, so one slow consumer never
//! delays the apply path or other streams; a lagging stream later replays what it missed from
//! the store (etcd's "victim" watchers). The hub's revision is advanced only after every
//! stream was offered the events, so "seen the hub at revision R" means "every event ≤ R is
//! either in my channel or my lagging flag is set".

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::config::limits::WATCH_STREAM_REVISIONS_MAX;
use crate::mvcc::RevisionEvents;
use crate::types::Revision;

struct Slot {
    tx: mpsc::Sender<Arc<RevisionEvents>>,
    lagging: Arc<AtomicBool>,
}

/// The registry of watch streams.
pub struct Hub {
    streams: Mutex<HashMap<u64, Slot>>,
    next_id: AtomicU64,
    revision: AtomicI64,
}

/// One stream's registration; unregisters when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    /// Committed revisions, in order, at most [`WATCH_STREAM_REVISIONS_MAX`] queued.
    pub events: mpsc::Receiver<Arc<RevisionEvents>>,
    /// Set when the hub dropped events for this stream because its channel was full.
    pub lagging: Arc<AtomicBool>,
}

impl Hub {
    /// A hub whose revision starts at `revision` (the store's committed revision at start-up).
    pub fn new(revision: Revision) -> Arc<Hub> {
        Arc::new(Hub {
            streams: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            revision: AtomicI64::new(revision.0),
        })
    }

    /// The newest revision every stream has been offered.
    pub fn revision(&self) -> Revision {
        Revision(self.revision.load(Ordering::SeqCst))
    }

    /// Registers a stream.
    pub fn subscribe(self: &Arc<Hub>) -> Subscription {
        let (tx, events) = mpsc::channel(WATCH_STREAM_REVISIONS_MAX);
        let lagging = Arc::new(AtomicBool::new(false));
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        crate::metrics::record::watch_stream_opened();
        self.lock().insert(
            id,
            Slot {
                tx,
                lagging: lagging.clone(),
            },
        );
        Subscription {
            hub: self.clone(),
            id,
            events,
            lagging,
        }
    }

    /// Offers committed revisions to every stream; never waits.
    pub fn notify(&self, batch: Vec<RevisionEvents>) {
        let Some(last) = batch.last().map(|e| e.revision) else {
            return;
        };
        let streams = self.lock();
        for events in batch.into_iter().map(Arc::new) {
            for slot in streams.values() {
                if slot.lagging.load(Ordering::SeqCst) {
                    continue;
                }
                if let Err(TrySendError::Full(_)) = slot.tx.try_send(events.clone()) {
                    slot.lagging.store(true, Ordering::SeqCst);
                }
            }
        }
        // Still under the lock: whoever clears a lagging flag afterwards sees this revision.
        self.revision.store(last.0, Ordering::SeqCst);
    }

    /// Number of registered streams.
    pub fn streams(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Slot>> {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Subscription {
    /// Clears the lagging flag and tells whether it was set. Taken under the hub lock, so every
    /// revision offered while the flag was set is ≤ [`Hub::revision`] afterwards.
    pub fn take_lagging(&self) -> bool {
        let _streams = self.hub.lock();
        self.lagging.swap(false, Ordering::SeqCst)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.lock().remove(&self.id);
        crate::metrics::record::watch_stream_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(r: i64) -> RevisionEvents {
        RevisionEvents {
            revision: Revision(r),
            changes: Vec::new(),
        }
    }

    #[test]
    fn a_full_stream_is_marked_lagging_and_others_keep_receiving() {
        let hub = Hub::new(Revision(1));
        let slow = hub.subscribe();
        let mut fast = hub.subscribe();
        let n = WATCH_STREAM_REVISIONS_MAX as i64 + 1;
        for r in 2..2 + n {
            hub.notify(vec![rev(r)]);
            while let Ok(e) = fast.events.try_recv() {
                assert_eq!(e.revision, Revision(r));
            }
        }
        assert!(slow.lagging.load(Ordering::SeqCst));
        assert!(!fast.lagging.load(Ordering::SeqCst));
        assert_eq!(hub.revision(), Revision(1 + n));
    }

    #[test]
    fn dropping_a_subscription_unregisters_it() {
        let hub = Hub::new(Revision(1));
        let s = hub.subscribe();
        assert_eq!(hub.streams(), 1);
        drop(s);
        assert_eq!(hub.streams(), 0);
    }
}
