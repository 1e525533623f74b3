//! The expiry task: on the leader, revokes expired leases through raft, at most
//! [`LEASE_REVOKES_PER_SEC_MAX`] per second (etcd `leaseRevokeRate`), checking every 500 ms;
//! with lease checkpointing on, it also proposes the due checkpoints of remaining TTLs (etcd
//! `lessor.checkpointScheduledLeases`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Lessor;
use crate::apply::command::Command;
use crate::config::limits::{
    LEASE_CHECKPOINTS_PER_ENTRY_MAX, LEASE_EXPIRY_CHECK_INTERVAL, LEASE_REVOKE_ENTRY_LEASES_MAX,
    LEASE_REVOKE_RETRY, LEASE_REVOKES_PER_SEC_MAX,
};
use crate::proto::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest};
use crate::proto::mainstaypb::{LeaseRevokeBatch, internal_request};
use crate::raft::RaftNode;

/// Runs until the process ends. `checkpoint_interval`: `Some` when lease checkpointing is on
/// (`Config::lease_checkpoint_interval`).
pub async fn run(lessor: Arc<Lessor>, raft: RaftNode, checkpoint_interval: Option<Duration>) {
    let mut ticker = tokio::time::interval(LEASE_EXPIRY_CHECK_INTERVAL);
    let per_tick = LEASE_REVOKES_PER_SEC_MAX * LEASE_EXPIRY_CHECK_INTERVAL.as_millis() as usize / 1000;
    loop {
        ticker.tick().await;
        if raft.leader() != raft.member_id().0 {
            continue;
        }
        if let Some(interval) = checkpoint_interval {
            let due = lessor.take_checkpoints(Instant::now(), LEASE_CHECKPOINTS_PER_ENTRY_MAX, interval);
            if !due.is_empty() {
                let checkpoints = due
                    .iter()
                    .map(|(id, remaining)| LeaseCheckpoint {
                        id: id.0,
                        remaining_ttl: *remaining,
                    })
                    .collect();
                let cmd = Command::new(internal_request::Request::LeaseCheckpoint(
                    LeaseCheckpointRequest { checkpoints },
                ));
                let raft = raft.clone();
                tokio::spawn(async move {
                    if let Err(e) = raft.propose(cmd).await {
                        tracing::warn!(leases = due.len(), error = %e, "failed to checkpoint leases");
                    }
                });
            }
        }
        let expired = lessor.take_expired(Instant::now(), per_tick, LEASE_REVOKE_RETRY);
        if expired.is_empty() {
            continue;
        }
        // A few small raft entries per tick rather than one per lease: a mass expiry costs a
        // handful of proposals, and proposing them one after another lets client writes
        // interleave, so none waits behind more than one small revoke.
        let chunks: Vec<Vec<i64>> = expired
            .chunks(LEASE_REVOKE_ENTRY_LEASES_MAX)
            .map(|chunk| chunk.iter().map(|id| id.0).collect())
            .collect();
        let raft = raft.clone();
        tokio::spawn(async move {
            for ids in chunks {
                let leases = ids.len();
                let cmd = Command::new(internal_request::Request::LeaseRevokeBatch(LeaseRevokeBatch {
                    ids,
                }));
                match raft.propose(cmd).await {
                    Ok(_) => crate::metrics::record::leases_expired(leases),
                    Err(e) => tracing::warn!(leases, error = %e, "failed to revoke expired leases"),
                }
            }
        });
    }
}
