//! Server-side port of etcd's `client/v3/concurrency` (Session, Mutex, Election), used by the
//! Lock and Election gRPC services exactly as etcd's `v3lock` and `v3election` servers use it:
//! over the server's own KV, Lease and Watch, never by touching the store directly.
//!
//! - writes are proposed through raft by the KV service's own handlers ([`Client::txn`],
//!   [`Client::delete`]), so validation, limits and response headers are the KV service's;
//! - reads are linearizable KV Ranges ([`Client::range`]);
//! - waiting is a watch: a [`feed::Feed`] subscribes to the watch hub and replays history from
//!   the store, like a clientv3 watch started at a revision.
//!
//! Every wait is a future with no task of its own: when the gRPC client goes away the handler
//! future is dropped and the wait ends with it. Keys a dropped waiter leaves behind are cleaned
//! up as etcd cleans them up (see [`Cleanup`]).

pub mod election;
pub mod feed;
pub mod mutex;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tonic::{Request, Status};

use crate::api::Ctx;
use crate::api::kv::KvService;
use crate::apply::command::Command;
use crate::error::Error;
use crate::mvcc::key_range::prefix_end;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest, PutRequest, RangeRequest,
    RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse, compare, range_request, request_op,
    response_op,
};
use crate::proto::mainstaypb::{apply_result, internal_request};
use crate::proto::mvccpb::KeyValue;
use crate::types::Revision;
use crate::watch::Hub;
use feed::Feed;

/// etcd `concurrency.defaultSessionTTL`: the TTL, in seconds, of the lease a session grants when
/// the request names no lease (lease 0).
pub const SESSION_TTL_SECS: i64 = 60;

/// Tries for a fresh lease ID before giving up (a collision answers `lease already exists`).
const GRANT_ID_ATTEMPTS_MAX: usize = 8;

/// etcd `concurrency.ErrSessionExpired` (3.5+ `Mutex.Lock`: the waiter's own key vanished,
/// usually because its lease expired, while it waited).
pub const ERR_SESSION_EXPIRED: &str = "session expired";
/// etcd `concurrency.ErrElectionNotLeader`.
pub const ERR_ELECTION_NOT_LEADER: &str = "election: not leader";
/// etcd `concurrency.ErrElectionNoLeader`.
pub const ERR_ELECTION_NO_LEADER: &str = "election: no leader";
/// etcd `v3election.ErrMissingLeaderKey`.
pub const ERR_MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";

/// An error of the server's own KV or Lease service as the lock and election servers return
/// it: etcd's in-process clientv3 turns the gRPC status into an `rpctypes.EtcdError`, which
/// grpc-go sends as code Unknown with the same text (`etcdserver: requested lease not found`
/// arrives as Unknown, not NotFound). Go clients map it back by its text.
pub fn relayed(s: Status) -> Status {
    Status::unknown(s.message())
}

/// A plain Go `error` returned by an etcd gRPC handler: grpc-go sends it as code Unknown with
/// the error's text, which is what etcd's lock and election servers do with the concurrency
/// package's errors.
pub fn go_error(text: &str) -> Status {
    Status::unknown(text)
}

/// A request of the server's own Lock/Election client: the caller's permissions were checked
/// by [`check_auth`], so it runs with root's (see [`crate::auth::InternalCaller`]).
fn internal<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.extensions_mut().insert(crate::auth::InternalCaller);
    r
}

/// Go's `fmt.Sprintf("%x", int64)`: lowercase hex, a minus sign for negative values.
pub fn go_hex(v: i64) -> String {
    if v < 0 {
        format!("-{:x}", v.unsigned_abs())
    } else {
        format!("{v:x}")
    }
}

/// `key + "/"`: the prefix under which a Mutex or Election keeps its contenders' keys.
pub fn prefix_of(name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(name.len() + 1);
    p.extend_from_slice(name);
    p.push(b'/');
    p
}

/// `prefix + "%x" of lease`: one contender's key (etcd Mutex `myKey`, Election `leaderKey`).
pub fn contender_key(prefix: &[u8], lease: i64) -> Bytes {
    let mut k = prefix.to_vec();
    k.extend_from_slice(go_hex(lease).as_bytes());
    Bytes::from(k)
}

/// The server's own KV, Lease and Watch, as the concurrency recipes see them (etcd's
/// `v3client`, an in-process clientv3 over the server). Cheap to share behind an `Arc`.
pub struct Client {
    ctx: Ctx,
    kv: KvService,
    hub: Arc<Hub>,
    grant_seed: RandomState,
    grants: AtomicU64,
}

impl Client {
    /// The server context the client runs on.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// A client over `ctx`; waits are fed by `hub`.
    pub fn new(ctx: Ctx, hub: Arc<Hub>) -> Arc<Client> {
        Arc::new(Client {
            kv: KvService::new(ctx.clone()),
            ctx,
            hub,
            grant_seed: RandomState::new(),
            grants: AtomicU64::new(0),
        })
    }

    /// A full response header at `revision`.
    pub fn header(&self, revision: Revision) -> Option<ResponseHeader> {
        self.ctx.header(revision)
    }

    /// A KV Txn, proposed through raft (read-only ones are served after a read barrier).
    ///
    /// # Errors
    /// The KV service's errors, [`relayed`].
    pub async fn txn(&self, t: TxnRequest) -> Result<TxnResponse, Status> {
        Ok(self.kv.txn(internal(t)).await.map_err(relayed)?.into_inner())
    }

    /// A linearizable KV Range.
    ///
    /// # Errors
    /// The KV service's errors, [`relayed`].
    pub async fn range(&self, r: RangeRequest) -> Result<RangeResponse, Status> {
        Ok(self.kv.range(internal(r)).await.map_err(relayed)?.into_inner())
    }

    /// A KV DeleteRange of one key (clientv3 `Delete(key)`).
    ///
    /// # Errors
    /// The KV service's errors, [`relayed`].
    pub async fn delete(&self, key: Bytes) -> Result<DeleteRangeResponse, Status> {
        let d = DeleteRangeRequest {
            key,
            ..DeleteRangeRequest::default()
        };
        Ok(self
            .kv
            .delete_range(internal(d))
            .await
            .map_err(relayed)?
            .into_inner())
    }

    /// etcd `concurrency.NewSession(WithLease(lease))` as the lock and election servers call it:
    /// lease 0 (`NoLease`) grants a fresh lease of [`SESSION_TTL_SECS`]; any other ID is used as
    /// given (an unknown one fails later, on the Put that attaches it). The servers orphan the
    /// session at once, so the granted lease is never kept alive: it expires after 60 s unless
    /// the caller refreshes it.
    ///
    /// # Errors
    /// The grant's errors, [`relayed`].
    pub async fn session(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        for _ in 0..GRANT_ID_ATTEMPTS_MAX {
            match self.grant(self.fresh_lease_id(), SESSION_TTL_SECS).await {
                Err(Error::LeaseExists) => continue,
                other => return other.map_err(|e| relayed(e.into())),
            }
        }
        Err(relayed(Error::LeaseExists.into()))
    }

    /// A random positive lease ID (a collision is retried by [`Client::session`]).
    fn fresh_lease_id(&self) -> i64 {
        let mut h = self.grant_seed.build_hasher();
        h.write_u64(self.grants.fetch_add(1, Ordering::Relaxed));
        ((h.finish() & (i64::MAX as u64)) as i64).max(1)
    }

    async fn grant(&self, id: i64, ttl: i64) -> Result<i64, Error> {
        let cmd = Command::new(internal_request::Request::LeaseGrant(LeaseGrantRequest {
            ttl,
            id,
        }));
        match self.ctx.raft.propose(cmd).await?.0.response {
            Some(apply_result::Response::LeaseGrant(r)) => Ok(r.id),
            _ => Err(Error::Internal("apply returned no lease grant".into())),
        }
    }

    /// A watch-like feed of every revision from `from` on.
    pub fn feed(&self, from: Revision) -> Feed {
        Feed::new(self.ctx.store.clone(), self.hub.clone(), from)
    }

    /// etcd `waitDelete`: waits for a DELETE of `key` at a revision ≥ `rev`.
    ///
    /// # Errors
    /// The watch's errors (a compacted start revision), relayed like KV errors.
    pub async fn wait_delete(&self, key: &[u8], rev: Revision) -> Result<(), Status> {
        let mut feed = self.feed(rev);
        loop {
            let events = feed.next().await.map_err(|e| relayed(e.into()))?;
            if events.changes.iter().any(|c| c.tombstone && c.kv.key == key) {
                return Ok(());
            }
        }
    }

    /// etcd `waitDeletes`: waits until no key under `prefix` has a create revision ≤
    /// `max_create_rev`, watching for the deletion of the newest such key each time round.
    /// Returns the header of the final (empty) read.
    ///
    /// # Errors
    /// The reads' and watches' errors.
    pub async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create_rev: i64,
    ) -> Result<Option<ResponseHeader>, Status> {
        loop {
            let mut r = first_or_last_create(prefix, range_request::SortOrder::Descend);
            r.max_create_revision = max_create_rev;
            let resp = self.range(r).await?;
            let Some(kv) = resp.kvs.first() else {
                return Ok(resp.header);
            };
            let rev = Revision(resp.header.map_or(0, |h| h.revision));
            self.wait_delete(&kv.key, rev).await?;
        }
    }
}

/// clientv3 `Get(prefix, WithFirstCreate()...)` (ascending) or `WithLastCreate()` (descending):
/// the prefix's key with the lowest or highest create revision.
pub fn first_or_last_create(prefix: &[u8], order: range_request::SortOrder) -> RangeRequest {
    RangeRequest {
        key: Bytes::copy_from_slice(prefix),
        range_end: Bytes::from(prefix_end(prefix)),
        limit: 1,
        sort_order: order as i32,
        sort_target: range_request::SortTarget::Create as i32,
        ..RangeRequest::default()
    }
}

/// clientv3 `Compare(CreateRevision(key), "=", rev)`.
pub fn create_revision_is(key: &Bytes, rev: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.clone(),
        target_union: Some(compare::TargetUnion::CreateRevision(rev)),
        range_end: Bytes::new(),
    }
}

/// clientv3 `OpPut(key, value, WithLease(lease))`.
pub fn op_put(key: &Bytes, value: Bytes, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.clone(),
            value,
            lease,
            ..PutRequest::default()
        })),
    }
}

/// clientv3 `OpGet(key)` with the given range.
pub fn op_range(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(r)),
    }
}

/// clientv3 `OpDelete(key)`.
pub fn op_delete(key: &Bytes) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key: key.clone(),
            ..DeleteRangeRequest::default()
        })),
    }
}

/// clientv3 `OpGet(key)`: one key.
pub fn get(key: &Bytes) -> RangeRequest {
    RangeRequest {
        key: key.clone(),
        ..RangeRequest::default()
    }
}

/// The key-values of the Txn's `i`-th response when it is a Range.
pub fn range_kvs(resp: &TxnResponse, i: usize) -> &[KeyValue] {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

/// The revision in a response header (0 when absent).
pub fn revision_of(header: Option<&ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision)
}

/// A write that must happen if a waiting request is abandoned: when the gRPC client goes away
/// its handler future is dropped, and etcd's recipes then clean up with the client's own
/// context (`Mutex.Lock` calls `Unlock`, `Election.Campaign` calls `Resign`). Dropping an armed
/// `Cleanup` proposes its Txn from a new task; [`Cleanup::disarm`] cancels it.
pub struct Cleanup {
    client: Arc<Client>,
    txn: Option<TxnRequest>,
}

impl Cleanup {
    /// Arms `txn` to run if this guard is dropped before [`Cleanup::disarm`].
    pub fn new(client: Arc<Client>, txn: TxnRequest) -> Cleanup {
        Cleanup {
            client,
            txn: Some(txn),
        }
    }

    /// The request went on normally: nothing to clean up.
    pub fn disarm(mut self) {
        self.txn = None;
    }

    /// Runs the cleanup now and waits for it (a failed wait that returns its error).
    pub async fn run(mut self) {
        if let Some(t) = self.txn.take()
            && let Err(e) = self.client.txn(t).await
        {
            tracing::warn!(error = %e.message(), "concurrency cleanup failed");
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(t) = self.txn.take() else {
            return;
        };
        let client = self.client.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = client.txn(t).await {
                    tracing::warn!(error = %e.message(), "concurrency cleanup failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_formatted_like_go() {
        assert_eq!(go_hex(0x694d_7a1b_2c3d), "694d7a1b2c3d");
        assert_eq!(go_hex(-1), "-1");
        assert_eq!(
            contender_key(&prefix_of(b"mylock"), 255),
            Bytes::from_static(b"mylock/ff")
        );
    }

    #[test]
    fn first_create_covers_the_prefix() {
        let r = first_or_last_create(b"a/", range_request::SortOrder::Ascend);
        assert_eq!(&r.range_end[..], b"a0");
        assert_eq!(r.limit, 1);
    }
}

/// The auth check of a Lock or Election request while auth is enabled: what etcd's
/// in-process client would need for the KV operations the request runs (READ over the
/// `name/` prefix, plus WRITE over it when the request creates or deletes keys there, or WRITE
/// on one `key`). Failures come back as etcd relays them: code Unknown with etcd's text.
///
/// # Errors
/// `etcdserver: invalid auth token`, `etcdserver: user name is empty`,
/// `etcdserver: permission denied` (all Unknown).
pub fn check_auth<T>(
    ctx: &crate::api::Ctx,
    request: &tonic::Request<T>,
    need: Need<'_>,
) -> Result<(), Status> {
    use crate::auth::perm::Access;
    let auth = ctx.applier.auth();
    if !auth.enabled() {
        return Ok(());
    }
    let relay = |e: crate::error::Error| relayed(e.into());
    let who = auth.identity(request).map_err(relay)?;
    match need {
        Need::Prefix { name, write } => {
            let mut prefix = name.to_vec();
            prefix.push(b'/');
            let end = crate::mvcc::key_range::prefix_end(&prefix);
            auth.check_range(&who, &prefix, &end, Access::Read)
                .map_err(relay)?;
            if write {
                auth.check_range(&who, &prefix, &end, Access::Write)
                    .map_err(relay)?;
            }
        }
        Need::Key(key) => auth.check_range(&who, key, &[], Access::Write).map_err(relay)?,
    }
    Ok(())
}

/// What a Lock or Election request touches, for [`check_auth`].
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// The keys under `name/`: read, and written too when `write`.
    Prefix {
        /// The lock or election name.
        name: &'a [u8],
        /// Whether the request creates keys there.
        write: bool,
    },
    /// One key written or deleted.
    Key(&'a [u8]),
}
