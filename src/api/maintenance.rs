//! The Maintenance service (etcd `v3rpc/maintenance.go`, `etcdserver/v3_server.go`): Status,
//! Alarm, Defragment, Hash, HashKV, Snapshot (an etcd backend image, `snapshot`), MoveLeader and
//! Downgrade.

use std::pin::Pin;

use futures::Stream;
use prost::Message;
use tonic::{Request, Response, Status};

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::Ctx;
use crate::apply::command::Command;
use crate::config::limits::{SNAPSHOT_CHUNK_BYTES, SNAPSHOT_COMPACTION_WAIT};
use crate::error::Error;
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::downgrade_request::DowngradeAction;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse, DowngradeInfo,
    DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse,
    MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use crate::proto::mainstaypb::{apply_result, internal_request};
use crate::snapshot::ImageSettings;

/// The storage schema version Status reports (`storageVersion`, etcd 3.6 field 11): the etcd
/// data format Mainstay's snapshots and data tools follow — 3.5's (what etcd 3.6's
/// `schema.DetectSchemaVersion` reports for a 3.5 backend).
pub const STORAGE_VERSION: &str = "3.5.0";

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

/// etcd `convertToClusterVersion`: `X.Y.Z` or `X.Y`, reduced to (major, minor).
fn parse_cluster_version(v: &str) -> Option<(u64, u64)> {
    let parts: Vec<&str> = v.split('.').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let nums: Option<Vec<u64>> = parts.iter().map(|p| p.parse().ok()).collect();
    let nums = nums?;
    Some((nums[0], nums[1]))
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type SnapshotStream = SnapshotStream;

    /// GET lists active alarms (type NONE = all) from the local table; ACTIVATE and DEACTIVATE
    /// go through raft and answer the alarm that changed (etcd `applierV3backend.Alarm`).
    async fn alarm(&self, request: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let ctx = &self.ctx;
        if AlarmAction::try_from(request.get_ref().action) != Ok(AlarmAction::Get) {
            ctx.admin(&request)?;
        }
        let r = request.into_inner();
        if AlarmAction::try_from(r.action) == Ok(AlarmAction::Get) {
            let alarms = ctx.applier.alarms().get(r.alarm);
            return Ok(Response::new(AlarmResponse {
                header: ctx.header(ctx.store.current_revision()),
                alarms,
            }));
        }
        let result = ctx
            .raft
            .propose(Command::new(internal_request::Request::Alarm(r)))
            .await?;
        match result.0.response {
            Some(apply_result::Response::Alarm(mut resp)) => {
                resp.header = ctx.complete(resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(Error::Internal("apply returned no alarm response".into()).into()),
        }
    }

    /// etcd `maintenanceServer.Status`: dbSize must be > 0 (`etcdctl endpoint status` divides
    /// by it); `errors` lists active alarms in protobuf text form.
    async fn status(&self, _r: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let ctx = &self.ctx;
        let (raft_index, applied) = ctx.raft.indexes();
        let db_size = i64::try_from(ctx.storage.disk_bytes().max(1)).unwrap_or(i64::MAX);
        let leader = ctx.raft.leader();
        let mut errors = ctx.applier.alarms().status_errors();
        if leader == 0 {
            errors.insert(0, "etcdserver: no leader".to_string());
        }
        let resp = StatusResponse {
            header: ctx.header(ctx.store.current_revision()),
            version: crate::version::current().server().to_owned(),
            db_size,
            leader,
            raft_index,
            raft_term: ctx.raft.term(),
            raft_applied_index: applied,
            errors,
            db_size_in_use: db_size,
            is_learner: false,
            storage_version: STORAGE_VERSION.to_owned(),
            db_size_quota: i64::try_from(ctx.limits.quota_backend_bytes).unwrap_or(i64::MAX),
            // etcd 3.6 always sends it; no downgrade is ever in progress here.
            downgrade_info: Some(DowngradeInfo::default()),
        };
        Ok(Response::new(resp))
    }

    /// Rewrites the MVCC tables to drop space freed by compaction. fjall compacts while reads
    /// and writes go on, so unlike etcd's bbolt defrag nothing is blocked.
    async fn defragment(
        &self,
        r: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.ctx.admin(&r)?;
        let storage = self.ctx.storage.clone();
        let _defrag = crate::metrics::record::defrag();
        tokio::task::spawn_blocking(move || storage.defragment())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(Response::new(DefragmentResponse {
            header: self.ctx.header(self.ctx.store.current_revision()),
        }))
    }

    /// A CRC-32C over the replicated key space and leases (etcd hashes its whole backend; ours
    /// leaves out member-local raft state so members can be compared).
    async fn hash(&self, r: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.ctx.admin(&r)?;
        let ctx = &self.ctx;
        let _timer = crate::metrics::record::timer(|m| &m.hash_duration);
        let (kv_hash, _, _) = ctx.store.hash_kv(0)?;
        let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
        let mut digest = crc.digest();
        digest.update(&kv_hash.to_be_bytes());
        for id in ctx.applier.lessor().ids() {
            digest.update(&id.0.to_be_bytes());
        }
        digest.update(&ctx.applier.alarms().encoded());
        Ok(Response::new(HashResponse {
            header: ctx.header(ctx.store.current_revision()),
            hash: digest.finalize(),
        }))
    }

    /// etcd `HashKV`: the hash of the key space at `revision` (0 = current), with the
    /// compaction revision and (3.6) the hashed revision.
    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        self.ctx.admin(&request)?;
        let ctx = &self.ctx;
        let _timer = crate::metrics::record::timer(|m| &m.hash_rev_duration);
        let (hash, compact, at) = ctx.store.hash_kv(request.into_inner().revision)?;
        Ok(Response::new(HashKvResponse {
            header: ctx.header(ctx.store.current_revision()),
            hash,
            compact_revision: compact.0,
            hash_revision: at.0,
        }))
    }

    /// etcd `maintenanceServer.Snapshot`: a point-in-time image of the store as an etcd
    /// backend file (bbolt, etcd's buckets), in 32 KiB messages whose `remaining_bytes` counts
    /// the image bytes still to come, then one message carrying the SHA-256 of the image
    /// (`etcdctl snapshot save` appends it to the file; `snapshot restore` verifies it). No
    /// header, as etcd sends none. The image comes from a fjall read view, so writes go on
    /// while it is built; it is spooled to an unnamed temporary file first (the stream needs
    /// its size up front) and memory stays bounded.
    async fn snapshot(&self, r: Request<SnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        self.ctx.admin(&r)?;
        let ctx = &self.ctx;
        // Let a compaction in flight finish deleting, so the image is usually a plain copy.
        let pending = ctx.store.compact_revision();
        if tokio::time::timeout(SNAPSHOT_COMPACTION_WAIT, ctx.store.wait_compacted(pending))
            .await
            .is_err()
        {
            tracing::info!(
                revision = pending.0,
                "snapshot: compaction still deleting; filtering its versions"
            );
        }
        let settings = ImageSettings {
            cluster_version: crate::version::current().cluster(),
            compaction_deleted: ctx.store.compaction_deleted(),
        };
        // Taken after reading `compaction_deleted`: what was deleted then is absent from it.
        let view = ctx.storage.db.snapshot();
        let storage = ctx.storage.clone();
        let (file, info) = tokio::task::spawn_blocking(move || {
            let dir = storage.path().parent().unwrap_or(storage.path()).to_path_buf();
            crate::snapshot::spool(&dir, &storage, &view, &settings)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::Internal(e.to_string()))?;
        tracing::info!(
            total_bytes = info.file.bytes,
            revision = info.revision.0,
            "sending database snapshot to client"
        );
        Ok(Response::new(Box::pin(snapshot_stream(
            tokio::fs::File::from_std(file),
            info.file.bytes,
        ))))
    }

    /// etcd: only the leader moves leadership (`etcdserver: not leader`), to a voting member
    /// (`etcdserver: bad leader transferee`); with one member that is the leader itself.
    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.ctx.admin(&request)?;
        let ctx = &self.ctx;
        let me = ctx.raft.member_id().0;
        if ctx.raft.leader() != me {
            return Err(Error::NotLeader.into());
        }
        let target = request.into_inner().target_id;
        let voter = ctx
            .raft
            .members()
            .into_iter()
            .any(|(id, _, voter)| id.0 == target && voter);
        if !voter {
            return Err(Error::BadLeaderTransferee.into());
        }
        Ok(Response::new(MoveLeaderResponse {
            header: ctx.header(ctx.store.current_revision()),
        }))
    }

    /// etcd 3.5 Downgrade: VALIDATE checks the target is exactly one minor version below the
    /// cluster version; CANCEL without a job fails with `no inflight downgrade job`. ENABLE
    /// would rewrite the data for an older etcd, which Mainstay cannot do: it answers
    /// Unimplemented after the same validation.
    async fn downgrade(
        &self,
        request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        self.ctx.admin(&request)?;
        let r = request.into_inner();
        let ctx = &self.ctx;
        let version = crate::version::current().cluster();
        let cluster = crate::version::current().cluster_pair();
        match DowngradeAction::try_from(r.action) {
            Ok(DowngradeAction::Cancel) => Err(Error::NoInflightDowngrade.into()),
            Ok(action) => {
                let target = parse_cluster_version(&r.version).ok_or(Error::WrongDowngradeVersionFormat)?;
                ctx.raft.read_barrier().await?;
                if target != (cluster.0, cluster.1.saturating_sub(1)) {
                    return Err(Error::InvalidDowngradeTargetVersion.into());
                }
                if action == DowngradeAction::Enable {
                    return Err(Error::Unimplemented("Maintenance.Downgrade ENABLE").into());
                }
                Ok(Response::new(DowngradeResponse {
                    header: ctx.header(ctx.store.current_revision()),
                    version,
                }))
            }
            Err(_) => Err(Error::Internal("unknown downgrade action".into()).into()),
        }
    }
}

/// Streams `total` bytes of `file` in [`SNAPSHOT_CHUNK_BYTES`] messages, then their SHA-256.
fn snapshot_stream(
    file: tokio::fs::File,
    total: u64,
) -> impl Stream<Item = Result<SnapshotResponse, Status>> + Send {
    struct Sending {
        file: tokio::fs::File,
        sent: u64,
        hash: Option<Sha256>,
    }
    let start = Sending {
        file,
        sent: 0,
        hash: Some(Sha256::new()),
    };
    futures::stream::unfold(start, move |mut s| async move {
        let hash = s.hash.take()?;
        if s.sent >= total {
            tracing::info!(
                total_bytes = total,
                "sent database snapshot and its sha256 checksum to client"
            );
            return Some((
                Ok(SnapshotResponse {
                    blob: hash.finalize().to_vec().into(),
                    ..SnapshotResponse::default()
                }),
                s,
            ));
        }
        let n = usize::try_from(total - s.sent)
            .map_or(SNAPSHOT_CHUNK_BYTES, |left| left.min(SNAPSHOT_CHUNK_BYTES));
        let mut blob = vec![0u8; n];
        if let Err(e) = s.file.read_exact(&mut blob).await {
            // `hash` stays taken: the stream ends after this error.
            return Some((
                Err(Status::from(Error::Internal(format!("reading snapshot: {e}")))),
                s,
            ));
        }
        let mut hash = hash;
        hash.update(&blob);
        s.sent += n as u64;
        s.hash = Some(hash);
        Some((
            Ok(SnapshotResponse {
                remaining_bytes: total - s.sent,
                blob: blob.into(),
                ..SnapshotResponse::default()
            }),
            s,
        ))
    })
}

/// Checks a write against the backend quota (etcd `quotaKVServer` / `quotaAlarmer`): while
/// NOSPACE is raised, or when this request would push the database over
/// `--quota-backend-bytes`, the request fails with `etcdserver: mvcc: database space exceeded`
/// and (in the second case) NOSPACE is raised through raft.
///
/// # Errors
/// [`Error::NoSpace`].
pub async fn check_quota(ctx: &Ctx, request_bytes: usize) -> Result<(), Error> {
    if ctx.applier.alarms().is_active(AlarmType::Nospace) {
        return Err(Error::NoSpace);
    }
    // etcd's cost model: the request plus per-key overhead (storage/quota.go kvOverhead = 256).
    let cost = request_bytes as u64 + 256;
    if ctx.storage.disk_bytes().saturating_add(cost) <= ctx.limits.quota_backend_bytes {
        return Ok(());
    }
    let raise = AlarmRequest {
        action: AlarmAction::Activate as i32,
        member_id: ctx.raft.member_id().0,
        alarm: AlarmType::Nospace as i32,
    };
    if let Err(e) = ctx
        .raft
        .propose(Command::new(internal_request::Request::Alarm(raise)))
        .await
    {
        tracing::warn!(error = %e, "failed to raise the NOSPACE alarm");
    }
    Err(Error::NoSpace)
}

/// Encoded size of a request, for [`check_quota`].
pub fn request_size(m: &impl Message) -> usize {
    m.encoded_len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_versions_parse_like_etcd() {
        assert_eq!(parse_cluster_version("3.4"), Some((3, 4)));
        assert_eq!(parse_cluster_version("3.4.0"), Some((3, 4)));
        assert_eq!(parse_cluster_version("3"), None);
        assert_eq!(parse_cluster_version("three.four"), None);
    }
}
