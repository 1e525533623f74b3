//! The peer transport, server side: the `mainstaypeerpb.Peer` service on `--listen-peer-urls`.
//! Raft RPCs go to openraft; forwarded proposals, ReadIndex, lease calls and member
//! attributes are served when this member leads.

use std::sync::Arc;
use std::time::Instant;

use openraft::ReadPolicy;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use tonic::{Request, Response, Status};

use super::RaftNode;
use super::peer::{LeaseAnswer, LeaseCall, PEER_FORMAT, RemoteError, SnapshotTransfer, decode, encode};
use super::types::{MemberNode, Snapshot, SnapshotData, TypeConfig};
use crate::apply::command::Command;
use crate::error::Error;
use crate::lease::Lessor;
use crate::proto::mainstaypeerpb::peer_server::Peer;
use crate::proto::mainstaypeerpb::{PeerReply, PeerRequest};
use crate::types::{ClusterId, LeaseId};

/// The Peer service of one member.
pub struct PeerService {
    node: RaftNode,
    lessor: Arc<Lessor>,
    cluster_id: ClusterId,
}

impl PeerService {
    /// The service for `node` in cluster `cluster_id`.
    pub fn new(node: RaftNode, lessor: Arc<Lessor>, cluster_id: ClusterId) -> PeerService {
        PeerService {
            node,
            lessor,
            cluster_id,
        }
    }

    /// The payload of `request` after checking its format and cluster (etcd refuses peers of
    /// another cluster: `request cluster ID mismatch`).
    fn payload(&self, request: Request<PeerRequest>) -> Result<Vec<u8>, Status> {
        let r = request.into_inner();
        if r.format != PEER_FORMAT {
            return Err(Status::failed_precondition(format!(
                "peer message format {} is not supported (this member speaks {PEER_FORMAT})",
                r.format
            )));
        }
        if r.cluster_id != self.cluster_id.0 {
            return Err(Status::failed_precondition(format!(
                "request cluster ID mismatch (got {:x} want {})",
                r.cluster_id, self.cluster_id
            )));
        }
        Ok(r.payload.to_vec())
    }
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<PeerReply>, Status> {
    let payload = encode(value).map_err(Status::internal)?;
    Ok(Response::new(PeerReply {
        payload: payload.into(),
    }))
}

fn bad(e: String) -> Status {
    Status::invalid_argument(e)
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, request: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&self.payload(request)?).map_err(bad)?;
        let resp = self
            .node
            .raft
            .append_entries(rpc)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        reply(&resp)
    }

    async fn vote(&self, request: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let rpc: VoteRequest<TypeConfig> = decode(&self.payload(request)?).map_err(bad)?;
        let resp = self
            .node
            .raft
            .vote(rpc)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        reply(&resp)
    }

    async fn install_snapshot(&self, request: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let (vote, meta, data): SnapshotTransfer = decode(&self.payload(request)?).map_err(bad)?;
        let snapshot = Snapshot {
            meta,
            snapshot: SnapshotData::new(data),
        };
        let resp = self
            .node
            .raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        reply(&resp)
    }

    async fn propose(&self, request: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let command: Command = decode(&self.payload(request)?).map_err(bad)?;
        let result = self
            .node
            .propose_here(command)
            .await
            .map_err(|e| RemoteError::from(&e));
        reply(&result)
    }

    async fn read_index(&self, request: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        self.payload(request)?;
        let result = match self.node.raft.get_read_linearizer(ReadPolicy::ReadIndex).await {
            Ok(linearizer) => Ok(*linearizer.read_log_id().log_id()),
            Err(_) => Err(RemoteError::from(&Error::NotLeader)),
        };
        reply(&result)
    }

    async fn lease(&self, request: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let call: LeaseCall = decode(&self.payload(request)?).map_err(bad)?;
        if !self.node.is_leader() {
            return reply(&Err::<LeaseAnswer, _>(RemoteError::NotLeader));
        }
        let answer = match call {
            LeaseCall::Renew(id) => {
                LeaseAnswer::Renewed(self.lessor.renew(LeaseId(id), Instant::now()).unwrap_or(0))
            }
            LeaseCall::TimeToLive(id) => {
                LeaseAnswer::TimeToLive(self.lessor.time_to_live(LeaseId(id), Instant::now()).map(|t| {
                    (
                        t.remaining_secs,
                        t.granted_secs,
                        t.keys.into_iter().map(|k| k.to_vec()).collect(),
                    )
                }))
            }
        };
        reply(&Ok::<_, RemoteError>(answer))
    }

    async fn reconfigure(&self, request: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let change: super::reconfig::MemberChange = decode(&self.payload(request)?).map_err(bad)?;
        let result = self
            .node
            .change_members_here(change)
            .await
            .map_err(|e| RemoteError::from(&e));
        reply(&result)
    }

    async fn publish(&self, request: Request<PeerRequest>) -> Result<Response<PeerReply>, Status> {
        let (id, member): (u64, MemberNode) = decode(&self.payload(request)?).map_err(bad)?;
        let result = self
            .node
            .publish_here(id, member)
            .await
            .map_err(|e| RemoteError::from(&e));
        reply(&result)
    }
}
