//! The Cluster service (etcd `v3rpc/member.go`): MemberList from the raft membership, and
//! membership changes decided by the leader (`raft::reconfig`).

use std::time::{SystemTime, UNIX_EPOCH};

use tonic::{Request, Response, Status};

use super::Ctx;
use crate::cluster::ids::member_id;
use crate::error::Error;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest,
    MemberUpdateResponse,
};
use crate::raft::reconfig::MemberChange;

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
    /// etcd `ClusterServer.MemberAdd`: the new member's ID is derived from its peer URLs and
    /// the current time (etcd `membership.NewMember` with an empty cluster name); it has no
    /// name or client URLs until it starts and publishes them.
    async fn member_add(&self, r: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        self.ctx.admin(&r)?;
        let r = r.into_inner();
        let peer_urls = valid_peer_urls(&r.peer_ur_ls)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let id = member_id(&peer_urls, "", Some(now));
        self.ctx
            .raft
            .change_members(MemberChange::Add {
                id: id.0,
                peer_urls: peer_urls.clone(),
                learner: r.is_learner,
            })
            .await?;
        Ok(Response::new(MemberAddResponse {
            header: self.ctx.header(crate::types::Revision(0)),
            member: Some(Member {
                id: id.0,
                name: String::new(),
                peer_ur_ls: peer_urls,
                client_ur_ls: Vec::new(),
                is_learner: r.is_learner,
            }),
            members: self.members(),
        }))
    }

    /// etcd `ClusterServer.MemberRemove`.
    async fn member_remove(
        &self,
        r: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.ctx.admin(&r)?;
        let id = r.into_inner().id;
        self.ctx.raft.change_members(MemberChange::Remove { id }).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.ctx.header(crate::types::Revision(0)),
            members: self.members(),
        }))
    }

    /// etcd `ClusterServer.MemberUpdate`: new peer URLs for a member.
    async fn member_update(
        &self,
        r: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.ctx.admin(&r)?;
        let r = r.into_inner();
        let peer_urls = valid_peer_urls(&r.peer_ur_ls)?;
        self.ctx
            .raft
            .change_members(MemberChange::Update { id: r.id, peer_urls })
            .await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.ctx.header(crate::types::Revision(0)),
            members: self.members(),
        }))
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
        let members = self.members();
        Ok(Response::new(MemberListResponse {
            // etcd's ClusterServer header carries cluster_id, member_id and raft_term, no revision.
            header: ctx.header(crate::types::Revision(0)),
            members,
        }))
    }

    /// etcd `ClusterServer.MemberPromote`: a learner whose log is in sync becomes a voter.
    async fn member_promote(
        &self,
        r: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.ctx.admin(&r)?;
        let id = r.into_inner().id;
        self.ctx.raft.change_members(MemberChange::Promote { id }).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: self.ctx.header(crate::types::Revision(0)),
            members: self.members(),
        }))
    }
}

impl ClusterService {
    /// The members as etcd lists them.
    fn members(&self) -> Vec<Member> {
        self.ctx
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
            .collect()
    }
}

/// Peer URLs as etcd accepts them in MemberAdd/MemberUpdate (`types.NewURLs`): at least one,
/// each `http(s)://host[:port]`, sorted.
///
/// # Errors
/// `etcdserver: given member URLs are invalid` (InvalidArgument; etcd `ErrGRPCMemberBadURLs`).
fn valid_peer_urls(urls: &[String]) -> Result<Vec<String>, Error> {
    let valid = |u: &String| {
        url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host_str().is_some())
    };
    if urls.is_empty() || !urls.iter().all(valid) {
        return Err(Error::MemberBadUrls);
    }
    let mut out = urls.to_vec();
    out.sort();
    Ok(out)
}
