//! The expiry task: on the leader, revokes expired leases through raft, at most
//! [`LEASE_REVOKES_PER_SEC_MAX`] per second (etcd `leaseRevokeRate`), checking every 500 ms.

use std::sync::Arc;
use std::time::Instant;

use super::Lessor;
use crate::apply::command::Command;
use crate::config::limits::{LEASE_EXPIRY_CHECK_INTERVAL, LEASE_REVOKE_RETRY, LEASE_REVOKES_PER_SEC_MAX};
use crate::proto::mainstaypb::{LeaseRevokeBatch, internal_request};
use crate::raft::RaftNode;

/// Runs until the process ends.
pub async fn run(lessor: Arc<Lessor>, raft: RaftNode) {
    let mut ticker = tokio::time::interval(LEASE_EXPIRY_CHECK_INTERVAL);
    let per_tick = LEASE_REVOKES_PER_SEC_MAX * LEASE_EXPIRY_CHECK_INTERVAL.as_millis() as usize / 1000;
    loop {
        ticker.tick().await;
        if raft.leader() != raft.member_id().0 {
            continue;
        }
        let expired = lessor.take_expired(Instant::now(), per_tick, LEASE_REVOKE_RETRY);
        if expired.is_empty() {
            continue;
        }
        // One raft entry per tick for all expired leases: a mass expiry costs a few proposals,
        // not thousands competing with client writes.
        let ids = expired.iter().map(|id| id.0).collect();
        let cmd = Command::new(internal_request::Request::LeaseRevokeBatch(LeaseRevokeBatch {
            ids,
        }));
        let raft = raft.clone();
        tokio::spawn(async move {
            match raft.propose(cmd).await {
                Ok(_) => crate::metrics::record::leases_expired(expired.len()),
                Err(e) => {
                    tracing::warn!(leases = expired.len(), error = %e, "failed to revoke expired leases")
                }
            }
        });
    }
}
