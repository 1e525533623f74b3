//! openraft glue: the log store, the state machine, the (single-member) transport and the
//! [`RaftNode`] handle through which the API proposes writes and waits for read barriers.
//!
//! Every write goes through raft, even with one voter, so adding members later adds peers, not
//! a second write path (design.md §2).

pub mod log_store;
pub mod peer;
pub mod peer_service;
pub mod reconfig;
pub mod snapshot;
pub mod state_machine;
pub mod types;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::linearizable_read::{Linearizer, ReadLogId};
use openraft::{ChangeMembers, ReadPolicy, SnapshotPolicy};

use self::log_store::LogStore;
use self::peer::{LeaseAnswer, LeaseCall, PeerNetwork, Peers};
use self::state_machine::StateMachine;
use self::types::{MemberNode, Raft};
use crate::apply::command::{Command, Response};
use crate::apply::{Applier, code_to_error};
use crate::config::limits::APPLY_BACKLOG_ENTRIES_MAX;
use crate::error::Error;
use crate::storage::Storage;
use crate::types::MemberId;
use crate::watch::Hub;

/// Raft timing and log-retention settings taken from etcd's flags.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// `--heartbeat-interval`.
    pub heartbeat_interval: Duration,
    /// `--election-timeout`; openraft draws election timeouts from `[et, 2·et]`.
    pub election_timeout: Duration,
    /// `--snapshot-count`: applied entries between raft snapshots (log compaction).
    pub snapshot_count: u64,
    /// `--snapshot-catchup-entries`: entries kept after a snapshot.
    pub snapshot_catchup_entries: u64,
    /// `--initial-cluster-token`, used as openraft's cluster name.
    pub cluster_token: String,
}

/// This member's raft node.
#[derive(Clone)]
pub struct RaftNode {
    raft: Raft,
    member_id: MemberId,
    request_timeout: Duration,
    peers: Peers,
}

impl RaftNode {
    /// Starts raft over `storage`; on a fresh data directory, bootstraps the cluster whose
    /// voters are `members` (etcd's `--initial-cluster` with `--initial-cluster-state=new`, or
    /// the members `mainstayctl snapshot restore` recorded: a restored directory holds state
    /// machine data but no raft log, vote or applied id, so it bootstraps like a fresh one).
    /// Every member of a new cluster bootstraps with the identical membership, so whichever
    /// starts first simply waits for a quorum.
    ///
    /// # Errors
    /// Storage or configuration failures; the caller exits.
    pub async fn start(
        member_id: MemberId,
        members: BTreeMap<u64, MemberNode>,
        settings: &RaftSettings,
        storage: Storage,
        applier: Arc<Applier>,
        hub: Arc<Hub>,
        peers: Peers,
    ) -> anyhow::Result<RaftNode> {
        let et_ms = u64::try_from(settings.election_timeout.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: settings.cluster_token.clone(),
            heartbeat_interval: u64::try_from(settings.heartbeat_interval.as_millis()).unwrap_or(u64::MAX),
            election_timeout_min: et_ms,
            election_timeout_max: et_ms.saturating_mul(2),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_count),
            max_in_snapshot_log_to_keep: settings.snapshot_catchup_entries,
            ..openraft::Config::default()
        }
        .validate()?;
        let log_store = LogStore::open(storage.clone())?;
        let state_machine = StateMachine::open(storage, applier, hub)?;
        let network = PeerNetwork::new(peers.clone());
        let raft = Raft::new(member_id.0, Arc::new(config), network, log_store, state_machine).await?;
        if !raft.is_initialized().await? {
            if members.is_empty() {
                anyhow::bail!(
                    "the data directory has a member ID but neither raft state nor bootstrap members; \
                     it was not written completely — remove it and bootstrap or restore again"
                );
            }
            raft.initialize(members).await?;
        }
        let request_timeout = Duration::from_secs(crate::config::limits::REQUEST_TIMEOUT_SECS_BASE)
            + 2 * settings.election_timeout;
        Ok(RaftNode {
            raft,
            member_id,
            request_timeout,
            peers,
        })
    }

    /// Waits until this member knows a leader (at most `timeout`).
    ///
    /// # Errors
    /// When no leader appears in time.
    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<()> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await?;
        Ok(())
    }

    /// Proposes `command` and returns its apply result once it is committed on a quorum
    /// (its log entry fsynced) and applied.
    ///
    /// # Errors
    /// `TooManyRequests` when more than 5000 committed entries wait to be applied, `NoLeader`
    /// when there is no leader, `Timeout` after the request timeout (etcd:
    /// `etcdserver: request timed out`), `Stopped` when raft has shut down, and the request
    /// error that apply decided (e.g. `KeyNotFound`).
    pub async fn propose(&self, command: Command) -> Result<Response, Error> {
        let response = match self.propose_here(command.clone()).await {
            Err(Error::NotLeader) => match self.leader_node() {
                Some((_, node)) => self.peers.propose(&node, &command, self.request_timeout).await?,
                None => return Err(Error::NoLeader),
            },
            other => other?,
        };
        match code_to_error(response.0.error) {
            Some(e) => Err(e),
            None => Ok(response),
        }
    }

    /// Proposes `command` on this member, which must lead (a follower's forwarded proposal
    /// lands here). Returns the raw apply result, request error code included.
    ///
    /// # Errors
    /// As [`RaftNode::propose`], with `NotLeader` when another member leads.
    pub async fn propose_here(&self, command: Command) -> Result<Response, Error> {
        // etcd refuses new proposals while the apply backlog exceeds 5000 entries
        // (v3_server.go processInternalRaftRequestOnce: `etcdserver: too many requests`).
        let (committed, applied) = self.indexes();
        if committed.saturating_sub(applied) > APPLY_BACKLOG_ENTRIES_MAX {
            return Err(Error::TooManyRequests);
        }
        let _pending = crate::metrics::record::proposal();
        let write = tokio::time::timeout(self.request_timeout, self.raft.client_write(command)).await;
        if !matches!(
            write,
            Ok(Ok(_)) | Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))))
        ) {
            crate::metrics::record::proposal_failed();
        }
        match write {
            Err(_) => Err(Error::Timeout),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(if f.leader_id.is_some() {
                    Error::NotLeader
                } else {
                    Error::NoLeader
                })
            }
            Ok(Err(RaftError::APIError(e))) => Err(Error::Internal(e.to_string())),
            Ok(Err(RaftError::Fatal(_))) => Err(Error::Stopped),
            Ok(Ok(resp)) => Ok(resp.data),
        }
    }

    /// Waits until this member has applied everything committed before the call (ReadIndex),
    /// so a following local read is linearizable. A follower asks the leader for its read
    /// index, then waits for its own apply to reach it (etcd `linearizableReadLoop`).
    ///
    /// # Errors
    /// `NoLeader` / `LeaderChanged` / `Timeout` / `Stopped`.
    pub async fn read_barrier(&self) -> Result<(), Error> {
        let started = std::time::Instant::now();
        let result = self.barrier().await;
        crate::metrics::record::read_index(started, result.is_ok());
        result
    }

    async fn barrier(&self) -> Result<(), Error> {
        let local = tokio::time::timeout(
            self.request_timeout,
            self.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await;
        match local {
            Err(_) => Err(Error::Timeout),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(e))) => match e {
                openraft::error::LinearizableReadError::ForwardToLeader(f) if f.leader_id.is_some() => {
                    self.follower_read_barrier().await
                }
                openraft::error::LinearizableReadError::ForwardToLeader(_) => Err(Error::NoLeader),
                _ => Err(Error::LeaderChanged),
            },
            Ok(Err(RaftError::Fatal(_))) => Err(Error::Stopped),
        }
    }

    async fn follower_read_barrier(&self) -> Result<(), Error> {
        let (_, leader) = self.leader_node().ok_or(Error::NoLeader)?;
        let read_log_id = self.peers.read_index(&leader, self.request_timeout).await?;
        let linearizer = Linearizer::new(self.member_id.0, ReadLogId::from_log_id(read_log_id), None);
        match linearizer
            .try_await_ready(&self.raft, Some(self.request_timeout))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Timeout),
            Err(_) => Err(Error::Stopped),
        }
    }

    /// Whether this member leads.
    pub fn is_leader(&self) -> bool {
        self.leader() == self.member_id.0
    }

    /// The leader's ID and attributes, when a leader is known.
    pub fn leader_node(&self) -> Option<(u64, MemberNode)> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let leader = m.current_leader?;
        let node = m.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, node))
    }

    /// Sends a lease call to the leader (which may be this member's own lessor: the caller
    /// handles that case).
    ///
    /// # Errors
    /// `NoLeader` without a reachable leader, or the leader's error.
    pub async fn lease_call(&self, call: &LeaseCall) -> Result<LeaseAnswer, Error> {
        let (_, leader) = self.leader_node().ok_or(Error::NoLeader)?;
        self.peers.lease(&leader, call, self.request_timeout).await
    }

    /// Records this member's attributes (name, client URLs) in the membership through the
    /// leader, unless they are already recorded (etcd `publishV3`).
    ///
    /// # Errors
    /// `NoLeader`, `Timeout` or the leader's error; the caller retries.
    pub async fn publish(&self, node: MemberNode) -> Result<(), Error> {
        let recorded = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            m.membership_config
                .membership()
                .get_node(&self.member_id.0)
                .cloned()
        };
        if recorded.as_ref() == Some(&node) {
            return Ok(());
        }
        if self.is_leader() {
            return self.publish_here(self.member_id.0, node).await;
        }
        let (_, leader) = self.leader_node().ok_or(Error::NoLeader)?;
        self.peers
            .publish(&leader, (self.member_id.0, &node), self.request_timeout)
            .await
    }

    /// Leader: records member `id`'s attributes with a membership entry that keeps every
    /// voter and learner.
    ///
    /// # Errors
    /// `NotLeader` on a follower, `Timeout`, or a membership change in progress.
    pub async fn publish_here(&self, id: u64, node: MemberNode) -> Result<(), Error> {
        let change = ChangeMembers::SetNodes(BTreeMap::from([(id, node)]));
        match tokio::time::timeout(self.request_timeout, self.raft.change_membership(change, true)).await {
            Err(_) => Err(Error::Timeout),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Err(Error::NotLeader),
            Ok(Err(RaftError::APIError(e))) => Err(Error::Internal(e.to_string())),
            Ok(Err(RaftError::Fatal(_))) => Err(Error::Stopped),
        }
    }

    /// This member's ID.
    pub fn member_id(&self) -> MemberId {
        self.member_id
    }

    /// Current raft term.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    /// Current leader's member ID (0 when there is none, as etcd reports it).
    pub fn leader(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_leader.unwrap_or(0)
    }

    /// (committed index, applied index), as Status reports `raftIndex` and `raftAppliedIndex`.
    pub fn indexes(&self) -> (u64, u64) {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        (
            m.local_committed.as_ref().map_or(0, |l| l.index),
            m.last_applied.as_ref().map_or(0, |l| l.index),
        )
    }

    /// The members of the current membership config with their IDs, and whether each is a
    /// voter.
    pub fn members(&self) -> Vec<(MemberId, MemberNode, bool)> {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| (MemberId(*id), node.clone(), voters.contains(id)))
            .collect()
    }

    /// Calls `changed` every time the known leader changes (including the first election),
    /// until raft stops.
    pub async fn watch_leader(&self, mut changed: impl FnMut()) {
        let mut rx = self.raft.metrics();
        let mut last = None;
        loop {
            let leader = rx.borrow_watched().current_leader;
            if leader.is_some() && leader != last {
                changed();
            }
            last = leader;
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops raft.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}

#[cfg(test)]
mod suite_test {
    //! openraft's own storage conformance suite on our log store and state machine
    //! (style.md §8.5 rule 13).

    use std::sync::Arc;

    use openraft::StorageError;
    use openraft::testing::log::{StoreBuilder, Suite};

    use super::log_store::LogStore;
    use super::state_machine::StateMachine;
    use super::types::TypeConfig;
    use crate::apply::Applier;
    use crate::mvcc::Store;
    use crate::storage::Storage;

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
            let dir = tempfile::tempdir().unwrap();
            let storage = Storage::open(dir.path()).unwrap();
            let store = Store::open(storage.clone()).unwrap();
            let lessor = crate::lease::Lessor::load(&storage, &store).unwrap();
            let alarms = crate::alarm::Alarms::load(&storage).unwrap();
            let applier = Arc::new(Applier::new(store, lessor, alarms));
            let log = LogStore::open(storage.clone()).unwrap();
            let hub = crate::watch::Hub::new(crate::types::Revision(1));
            let sm = StateMachine::open(storage, applier, hub).unwrap();
            Ok((dir, log, sm))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn openraft_storage_suite_passes() {
        Suite::test_all(Builder).await.unwrap();
    }
}
