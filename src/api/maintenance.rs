//! The Maintenance service. Status is complete enough for `etcdctl endpoint status`; the other
//! RPCs arrive with the operations and backup issues and answer `Unimplemented` until then.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::Ctx;
use crate::error::Error;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};

/// The etcd version Mainstay reports in Status and `/version`. kube-apiserver gates watch
/// progress requests on ≥ 3.5.13 (etcd-compat.md §6), so this is a 3.5 release string.
pub const ETCD_VERSION: &str = "3.5.21";

/// The Maintenance service.
pub struct MaintenanceService {
    ctx: Ctx,
}

impl MaintenanceService {
    /// A Maintenance service over `ctx`.
    pub fn new(ctx: Ctx) -> MaintenanceService {
        MaintenanceService { ctx }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = SnapshotStream;

    async fn alarm(&self, _r: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        Err(Error::Unimplemented("Maintenance.Alarm").into())
    }

    /// etcd `maintenanceServer.Status`: dbSize must be > 0 (`etcdctl endpoint status` divides
    /// by it).
    async fn status(&self, _r: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let ctx = &self.ctx;
        let (raft_index, applied) = ctx.raft.indexes();
        let db_size = i64::try_from(ctx.storage.disk_bytes().max(1)).unwrap_or(i64::MAX);
        let leader = ctx.raft.leader();
        let quota = ctx.limits.quota_backend_bytes;
        let resp = StatusResponse {
            header: ctx.header(ctx.store.current_revision()),
            version: ETCD_VERSION.to_string(),
            db_size,
            leader,
            raft_index,
            raft_term: ctx.raft.term(),
            raft_applied_index: applied,
            errors: if leader == 0 {
                vec!["etcdserver: no leader".to_string()]
            } else {
                Vec::new()
            },
            db_size_in_use: db_size,
            is_learner: false,
            storage_version: String::new(),
            db_size_quota: i64::try_from(quota).unwrap_or(i64::MAX),
            downgrade_info: None,
        };
        Ok(Response::new(resp))
    }

    async fn defragment(
        &self,
        _r: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(Error::Unimplemented("Maintenance.Defragment").into())
    }

    async fn hash(&self, _r: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(Error::Unimplemented("Maintenance.Hash").into())
    }

    async fn hash_kv(&self, _r: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        Err(Error::Unimplemented("Maintenance.HashKV").into())
    }

    async fn snapshot(&self, _r: Request<SnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        Err(Error::Unimplemented("Maintenance.Snapshot").into())
    }

    async fn move_leader(
        &self,
        _r: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(Error::Unimplemented("Maintenance.MoveLeader").into())
    }

    async fn downgrade(&self, _r: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        Err(Error::Unimplemented("Maintenance.Downgrade").into())
    }
}
