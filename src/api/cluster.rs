//! The Cluster service. MemberList is served from the raft membership; membership changes
//! arrive with clustering and answer `Unimplemented` until then.

use tonic::{Request, Response, Status};

use super::Ctx;
use crate::error::Error;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest,
    MemberUpdateResponse,
};

/// The Cluster service.
pub struct ClusterService {
    ctx: Ctx,
}

impl ClusterService {
    /// A Cluster service over `ctx`.
    pub fn new(ctx: Ctx) -> ClusterService {
        ClusterService { ctx }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, r: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        self.ctx.admin(&r)?;
        Err(Error::Unimplemented("Cluster.MemberAdd").into())
    }

    async fn member_remove(
        &self,
        r: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.ctx.admin(&r)?;
        Err(Error::Unimplemented("Cluster.MemberRemove").into())
    }

    async fn member_update(
        &self,
        r: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.ctx.admin(&r)?;
        Err(Error::Unimplemented("Cluster.MemberUpdate").into())
    }

    /// etcd `ClusterServer.MemberList`; with `linearizable` the membership is read after a
    /// ReadIndex barrier (etcd 3.5 `LinearizableReadNotify`).
    async fn member_list(
        &self,
        r: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let ctx = &self.ctx;
        if r.into_inner().linearizable {
            ctx.raft.read_barrier().await?;
        }
        let members = ctx
            .raft
            .members()
            .into_iter()
            .map(|(id, node, voter)| Member {
                id: id.0,
                name: node.name,
                peer_ur_ls: node.peer_urls,
                client_ur_ls: node.client_urls,
                is_learner: !voter,
            })
            .collect();
        Ok(Response::new(MemberListResponse {
            // etcd's ClusterServer header carries cluster_id, member_id and raft_term, no revision.
            header: ctx.header(crate::types::Revision(0)),
            members,
        }))
    }

    async fn member_promote(
        &self,
        r: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.ctx.admin(&r)?;
        Err(Error::Unimplemented("Cluster.MemberPromote").into())
    }
}
