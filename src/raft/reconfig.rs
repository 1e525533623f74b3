//! Membership changes — etcd's MemberAdd, MemberRemove, MemberUpdate and MemberPromote —
//! as openraft membership changes, decided by the leader (followers forward them).
//!
//! etcd applies a single-step conf change; openraft uses joint consensus, which commits as soon
//! as a majority of both the old and the new voters has the entry. Adding a voter to a healthy
//! cluster whose old members are a majority of the new one (3 → 4) therefore completes at once,
//! as in etcd. When it cannot complete before the new member runs (1 → 2), the change stays
//! proposed and MemberAdd answers after [`MEMBER_ADD_WAIT`], as etcd answers once its conf
//! change is applied: the cluster then waits for the new member either way.

use std::collections::{BTreeMap, BTreeSet};

use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};

use super::RaftNode;
use super::types::MemberNode;
use crate::config::limits::{LEARNER_PROMOTE_IN_SYNC_PERCENT, LEARNERS_MAX, MEMBER_ADD_WAIT};
use crate::error::Error;

/// A membership change as the leader receives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum MemberChange {
    /// MemberAdd: a new member `id` (chosen by the caller) with `peer_urls`; a learner or a
    /// voter.
    Add {
        /// The new member's ID.
        id: u64,
        /// Its peer URLs.
        peer_urls: Vec<String>,
        /// Whether it joins as a learner.
        learner: bool,
    },
    /// MemberRemove.
    Remove {
        /// The member to remove.
        id: u64,
    },
    /// MemberUpdate: new peer URLs.
    Update {
        /// The member to update.
        id: u64,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
    /// MemberPromote: learner to voter.
    Promote {
        /// The learner to promote.
        id: u64,
    },
}

impl RaftNode {
    /// Applies `change` through the leader.
    ///
    /// # Errors
    /// etcd's: `MemberNotFound`, `PeerUrlExists`, `MemberExists`, `MemberNotLearner`,
    /// `LearnerNotReady`, `TooManyLearners`; `NoLeader`/`Timeout` when the cluster cannot
    /// decide.
    pub async fn change_members(&self, change: MemberChange) -> Result<(), Error> {
        if self.is_leader() {
            return self.change_members_here(change).await;
        }
        let (_, leader) = self.leader_node().ok_or(Error::NoLeader)?;
        self.peers
            .reconfigure(&leader, &change, self.request_timeout)
            .await
    }

    /// Leader: checks `change` against the current membership and proposes it.
    ///
    /// # Errors
    /// As [`RaftNode::change_members`], plus `NotLeader` on a follower.
    pub async fn change_members_here(&self, change: MemberChange) -> Result<(), Error> {
        let (nodes, voters) = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            let membership = m.membership_config.membership();
            let nodes: BTreeMap<u64, MemberNode> =
                membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
            let voters: BTreeSet<u64> = membership.voter_ids().collect();
            (nodes, voters)
        };
        let url_taken = |urls: &[String], except: Option<u64>| {
            nodes
                .iter()
                .filter(|(id, _)| Some(**id) != except)
                .any(|(_, n)| n.peer_urls.iter().any(|u| urls.contains(u)))
        };
        match change {
            MemberChange::Add {
                id,
                peer_urls,
                learner,
            } => {
                if url_taken(&peer_urls, None) {
                    return Err(Error::PeerUrlExists);
                }
                if nodes.contains_key(&id) {
                    return Err(Error::MemberExists);
                }
                let node = MemberNode {
                    name: String::new(),
                    peer_urls,
                    client_urls: Vec::new(),
                };
                if learner {
                    let learners = nodes.keys().filter(|id| !voters.contains(id)).count();
                    if learners >= LEARNERS_MAX {
                        return Err(Error::TooManyLearners);
                    }
                    let added =
                        tokio::time::timeout(self.request_timeout, self.raft.add_learner(id, node, false));
                    return match added.await {
                        Err(_) => Err(Error::Timeout),
                        Ok(r) => r.map(|_| ()).map_err(write_error),
                    };
                }
                let raft = self.raft.clone();
                let change = ChangeMembers::AddVoters(BTreeMap::from([(id, node)]));
                let mut proposal = tokio::spawn(async move { raft.change_membership(change, true).await });
                match tokio::time::timeout(MEMBER_ADD_WAIT, &mut proposal).await {
                    // Still waiting for the new member: the change is proposed and completes
                    // when it starts (the spawned task carries on).
                    Err(_) => Ok(()),
                    Ok(Err(_)) => Err(Error::Stopped),
                    Ok(Ok(r)) => r.map(|_| ()).map_err(write_error),
                }
            }
            MemberChange::Remove { id } => {
                if !nodes.contains_key(&id) {
                    return Err(Error::MemberNotFound);
                }
                let change = if voters.contains(&id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                self.membership_change(change).await
            }
            MemberChange::Update { id, peer_urls } => {
                let Some(node) = nodes.get(&id) else {
                    return Err(Error::MemberNotFound);
                };
                if url_taken(&peer_urls, Some(id)) {
                    return Err(Error::PeerUrlExists);
                }
                let node = MemberNode {
                    peer_urls,
                    ..node.clone()
                };
                self.membership_change(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
                    .await
            }
            MemberChange::Promote { id } => {
                if !nodes.contains_key(&id) {
                    return Err(Error::MemberNotFound);
                }
                if voters.contains(&id) {
                    return Err(Error::MemberNotLearner);
                }
                if !self.in_sync(id) {
                    return Err(Error::LearnerNotReady);
                }
                self.membership_change(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
                    .await
            }
        }
    }

    /// Whether learner `id`'s replicated log reaches 90 % of the leader's (etcd
    /// `isLearnerReady`).
    fn in_sync(&self, id: u64) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let last = m.last_log_index.unwrap_or(0);
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map_or(0, |l| l.index);
        matched.saturating_mul(100) >= last.saturating_mul(LEARNER_PROMOTE_IN_SYNC_PERCENT)
    }

    async fn membership_change(&self, change: ChangeMembers<u64, MemberNode>) -> Result<(), Error> {
        match tokio::time::timeout(self.request_timeout, self.raft.change_membership(change, false)).await {
            Err(_) => Err(Error::Timeout),
            Ok(r) => r.map(|_| ()).map_err(write_error),
        }
    }
}

fn write_error(e: RaftError<super::types::TypeConfig, ClientWriteError<super::types::TypeConfig>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => Error::NotLeader,
        RaftError::APIError(e) => Error::Internal(e.to_string()),
        RaftError::Fatal(_) => Error::Stopped,
    }
}
