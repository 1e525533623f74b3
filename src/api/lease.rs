//! The Lease service (etcd `v3rpc/lease.go`, `etcdserver/v3_server.go` LeaseGrant & co.).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Ctx;
use super::maintenance::{check_quota, request_size};
use crate::apply::command::Command;
use crate::config::limits::{LEASE_TTL_SECS_MAX, WATCH_STREAM_RESPONSES_MAX};
use crate::error::Error;
use crate::lease::Lessor;
use crate::lease::lessor::TimeToLive;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::proto::mainstaypb::{apply_result, internal_request};
use crate::raft::peer::{LeaseAnswer, LeaseCall};
use crate::types::LeaseId;

/// Tries for a fresh server-chosen lease ID before giving up.
const GRANT_ID_ATTEMPTS_MAX: usize = 8;

/// The Lease service.
pub struct LeaseService {
    ctx: Ctx,
    lessor: Arc<Lessor>,
    min_ttl_secs: i64,
    next: AtomicU64,
}

/// etcd's minimum lease TTL: `ceil((3 × election ticks / 2) × heartbeat)` seconds — 2 s with the
/// default 100 ms heartbeat and 1000 ms election timeout (etcd `server.go` minTTL).
pub fn min_ttl_secs(heartbeat: Duration, election_timeout: Duration) -> i64 {
    let hb_ms = heartbeat.as_millis().max(1);
    let ticks = election_timeout.as_millis() / hb_ms;
    let min_ms = (3 * ticks / 2) * hb_ms;
    i64::try_from(min_ms.div_ceil(1000)).unwrap_or(i64::MAX)
}

impl LeaseService {
    /// A Lease service; `min_ttl_secs` from [`min_ttl_secs`].
    pub fn new(ctx: Ctx, lessor: Arc<Lessor>, min_ttl_secs: i64) -> LeaseService {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        LeaseService {
            ctx,
            lessor,
            min_ttl_secs,
            next: AtomicU64::new(seed << 8),
        }
    }

    /// A server-chosen lease ID: positive, with this member's low ID bits on top like etcd's
    /// request-ID generator, so members do not collide.
    fn fresh_id(&self) -> i64 {
        let member = (self.ctx.raft.member_id().0 & 0xffff) << 47;
        let n = self.next.fetch_add(1, Ordering::SeqCst) & ((1 << 47) - 1);
        ((member | n) & (i64::MAX as u64)).max(1) as i64
    }

    async fn grant_once(&self, id: i64, ttl: i64) -> Result<LeaseGrantResponse, Error> {
        let cmd = Command::new(internal_request::Request::LeaseGrant(LeaseGrantRequest {
            ttl,
            id,
        }));
        match self.ctx.raft.propose(cmd).await?.0.response {
            Some(apply_result::Response::LeaseGrant(mut r)) => {
                r.header = self.ctx.complete(r.header);
                Ok(r)
            }
            _ => Err(Error::Internal("apply returned no lease grant".into())),
        }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    type LeaseKeepAliveStream = KeepAliveStream;

    /// # Errors
    /// `etcdserver: too large lease TTL`, `etcdserver: lease already exists`.
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let r = request.into_inner();
        if r.ttl > LEASE_TTL_SECS_MAX {
            return Err(Error::LeaseTtlTooLarge.into());
        }
        check_quota(&self.ctx, request_size(&r)).await?;
        let ttl = r.ttl.max(self.min_ttl_secs);
        if r.id != 0 {
            return Ok(Response::new(self.grant_once(r.id, ttl).await?));
        }
        for _ in 0..GRANT_ID_ATTEMPTS_MAX {
            match self.grant_once(self.fresh_id(), ttl).await {
                Err(Error::LeaseExists) => continue,
                other => return Ok(Response::new(other?)),
            }
        }
        Err(Error::LeaseExists.into())
    }

    /// # Errors
    /// `etcdserver: requested lease not found` (NotFound).
    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        // etcd `authApplierV3.LeaseRevoke`: WRITE on every key attached to the lease.
        let auth = self.ctx.applier.auth();
        let who = auth.identity(&request)?;
        let r = request.into_inner();
        if auth.enabled() {
            for key in self.lessor.keys(LeaseId(r.id)).unwrap_or_default() {
                auth.check_range(&who, &key, &[], crate::auth::perm::Access::Write)?;
            }
        }
        let cmd = Command::new(internal_request::Request::LeaseRevoke(r)).with_auth(auth.stamp(&who));
        match self.ctx.raft.propose(cmd).await?.0.response {
            Some(apply_result::Response::LeaseRevoke(mut r)) => {
                r.header = self.ctx.complete(r.header);
                Ok(Response::new(r))
            }
            _ => Err(Error::Internal("apply returned no lease revoke".into()).into()),
        }
    }

    /// etcd: each request gets `{header, ID, TTL}` with the granted TTL after the renewal, or
    /// TTL 0 for an unknown or expired lease — not an error.
    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let mut requests = request.into_inner();
        let (tx, rx) = mpsc::channel(WATCH_STREAM_RESPONSES_MAX);
        let ctx = self.ctx.clone();
        let lessor = self.lessor.clone();
        tokio::spawn(async move {
            while let Some(Ok(req)) = requests.next().await {
                let id = LeaseId(req.id);
                // A checkpointed remaining TTL is cleared through raft before the renewal, so
                // a restart or new leader starts the renewed lease from its full TTL (etcd
                // `lessor.Renew`). On failure the renewal still happens locally.
                if lessor.has_checkpoint(id) {
                    let clear = Command::new(internal_request::Request::LeaseCheckpoint(
                        LeaseCheckpointRequest {
                            checkpoints: vec![LeaseCheckpoint {
                                id: req.id,
                                remaining_ttl: 0,
                            }],
                        },
                    ));
                    if let Err(e) = ctx.raft.propose(clear).await {
                        tracing::warn!(lease = req.id, error = %e, "failed to clear a lease checkpoint");
                    }
                }
                let ttl = if ctx.raft.is_leader() {
                    lessor.renew(id, Instant::now()).unwrap_or(0)
                } else {
                    // Only the leader keeps lease clocks (etcd forwards keep-alives to it).
                    match ctx.raft.lease_call(&LeaseCall::Renew(req.id)).await {
                        Ok(LeaseAnswer::Renewed(ttl)) => ttl,
                        Ok(LeaseAnswer::TimeToLive(_)) => 0,
                        Err(e) => {
                            let _ = tx.send(Err(e.into())).await;
                            return;
                        }
                    }
                };
                let header = ctx.header(ctx.store.current_revision());
                if tx
                    .send(Ok(LeaseKeepAliveResponse {
                        header,
                        id: req.id,
                        ttl,
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// etcd: remaining TTL in whole seconds, granted TTL and (on request) the keys; an unknown
    /// lease answers TTL -1 without an error.
    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let r = request.into_inner();
        // Only the leader keeps lease clocks: a follower asks it (etcd forwards
        // LeaseTimeToLive to the leader).
        let ttl = if self.ctx.raft.is_leader() {
            self.lessor.time_to_live(LeaseId(r.id), Instant::now())
        } else {
            match self.ctx.raft.lease_call(&LeaseCall::TimeToLive(r.id)).await? {
                LeaseAnswer::TimeToLive(t) => t.map(|(remaining_secs, granted_secs, keys)| TimeToLive {
                    remaining_secs,
                    granted_secs,
                    keys: keys.into_iter().map(Bytes::from).collect(),
                }),
                LeaseAnswer::Renewed(_) => {
                    return Err(Error::Internal("unexpected lease answer".into()).into());
                }
            }
        };
        let header = self.ctx.header(self.ctx.store.current_revision());
        let resp = match ttl {
            None => LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
            Some(t) => LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: t.remaining_secs,
                granted_ttl: t.granted_secs,
                keys: if r.keys { t.keys } else { Vec::new() },
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _r: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let leases = self
            .lessor
            .ids()
            .into_iter()
            .map(|id| LeaseStatus { id: id.0 })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: self.ctx.header(self.ctx.store.current_revision()),
            leases,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_ttl_is_two_seconds_with_etcds_defaults() {
        assert_eq!(
            min_ttl_secs(Duration::from_millis(100), Duration::from_millis(1000)),
            2
        );
        assert_eq!(
            min_ttl_secs(Duration::from_millis(100), Duration::from_millis(5000)),
            8
        );
    }
}
