//! The etcd v3 gRPC services, one module per service. Handlers validate, propose or read, and
//! fill the response header; state changes happen only in the apply path.

pub mod auth;
pub mod cluster;
pub mod election;
pub mod interceptor;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod status;
pub mod validate;
pub mod watch;

use std::sync::Arc;

use crate::apply::Applier;
use crate::mvcc::Store;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::raft::RaftNode;
use crate::storage::Storage;
use crate::types::{ClusterId, Revision};

/// Request limits from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--max-request-bytes`: largest proposal, in bytes.
    pub max_request_bytes: u64,
    /// `--max-txn-ops`: most operations in one Txn list.
    pub max_txn_ops: usize,
    /// `--quota-backend-bytes` resolved (etcd's 0 is already 2 GiB), reported by Status.
    pub quota_backend_bytes: u64,
}

/// What every service handler needs. Cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    /// This member's raft node.
    pub raft: RaftNode,
    /// The MVCC store.
    pub store: Arc<Store>,
    /// The applier (read-only Txns run its checks locally).
    pub applier: Arc<Applier>,
    /// The storage engine (for its on-disk size).
    pub storage: Storage,
    /// The cluster ID.
    pub cluster_id: ClusterId,
    /// Request limits.
    pub limits: Limits,
    /// `--advertise-client-urls`, for MemberList.
    pub client_urls: Vec<String>,
}

impl Ctx {
    /// A full response header at `revision` (etcd `v3rpc/header.go`).
    pub fn header(&self, revision: Revision) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.cluster_id.0,
            member_id: self.raft.member_id().0,
            revision: revision.0,
            raft_term: self.raft.term(),
        })
    }

    /// etcd `IsAdminPermitted` for the caller of `request`: the root role while auth is
    /// enabled (etcd-compat.md §2.10: Compact, Defragment, Snapshot, Hash, HashKV, Alarm
    /// ACTIVATE/DEACTIVATE, MoveLeader, Downgrade, member changes, auth management).
    ///
    /// # Errors
    /// `InvalidAuthToken`, `UserEmpty`, `UserNotFound`, `PermissionDenied`.
    pub fn admin<T>(
        &self,
        request: &tonic::Request<T>,
    ) -> Result<crate::auth::Identity, crate::error::Error> {
        let auth = self.applier.auth();
        let who = auth.identity(request)?;
        auth.check_admin(&who)?;
        Ok(who)
    }

    /// Fills cluster_id, member_id and raft_term into a header that carries only a revision.
    pub fn complete(&self, header: Option<ResponseHeader>) -> Option<ResponseHeader> {
        let revision = header.map_or_else(|| self.store.current_revision(), |h| Revision(h.revision));
        self.header(revision)
    }
}
