//! An in-process watch from a start revision: every committed revision from `from` on, in order,
//! without gaps or duplicates — what a clientv3 `Watch(key, WithRev(from))` gives the etcd
//! concurrency recipes, minus the key filter (callers look at the changes they care about).
//!
//! History before the subscription (and anything missed while the hub's bounded channel was
//! full) is replayed from the store in steps of at most 1000 revisions, as the Watch service's
//! streams catch up; then revisions arrive live from the [`Hub`].

use std::collections::VecDeque;
use std::sync::Arc;

use crate::config::limits::WATCH_CATCHUP_REVISIONS_MAX;
use crate::error::Error;
use crate::mvcc::{RevisionEvents, Store};
use crate::types::Revision;
use crate::watch::Hub;
use crate::watch::hub::Subscription;

/// Every revision from a start revision on. Holds one hub subscription while alive.
pub struct Feed {
    store: Arc<Store>,
    hub: Arc<Hub>,
    sub: Subscription,
    /// The next revision to hand out.
    next: Revision,
    /// Replayed revisions not yet handed out.
    backlog: VecDeque<Arc<RevisionEvents>>,
    /// Whether revisions between `next` and the hub's revision may be missing from `sub`.
    catching_up: bool,
}

impl Feed {
    /// A feed of revisions `from`, `from + 1`, …; subscribes at once, so nothing committed from
    /// now on is missed.
    pub fn new(store: Arc<Store>, hub: Arc<Hub>, from: Revision) -> Feed {
        let sub = hub.subscribe();
        Feed {
            store,
            hub,
            sub,
            next: from,
            backlog: VecDeque::new(),
            catching_up: true,
        }
    }

    /// The next committed revision (with changes) at or after the feed's position. Waits for it
    /// when there is none yet; cancel-safe (dropping the future loses nothing).
    ///
    /// # Errors
    /// [`Error::Compacted`] when the history to replay is compacted (etcd cancels the watch
    /// with `ErrCompacted`); [`Error::Internal`] for a store read failure.
    pub async fn next(&mut self) -> Result<Arc<RevisionEvents>, Error> {
        loop {
            if let Some(events) = self.backlog.pop_front() {
                return Ok(events);
            }
            if self.sub.take_lagging() {
                self.catching_up = true;
            }
            if self.catching_up {
                let upto = self.hub.revision();
                if self.next > upto {
                    self.catching_up = false;
                    continue;
                }
                let history = self.store.history(self.next, upto, WATCH_CATCHUP_REVISIONS_MAX)?;
                let last = history.last().map(|r| r.revision);
                let done = history.len() < WATCH_CATCHUP_REVISIONS_MAX || last.is_none_or(|l| l >= upto);
                self.next = if done {
                    upto.next()
                } else {
                    last.map_or(self.next, Revision::next)
                };
                self.catching_up = !done;
                self.backlog.extend(history.into_iter().map(Arc::new));
                continue;
            }
            match self.sub.events.recv().await {
                Some(events) if events.revision >= self.next => {
                    self.next = events.revision.next();
                    return Ok(events);
                }
                // Already replayed from history.
                Some(_) => {}
                None => return Err(Error::Internal("watch hub closed".into())),
            }
        }
    }
}
