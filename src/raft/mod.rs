//! openraft glue: the log store, the state machine, the (single-member) transport and the
//! [`RaftNode`] handle through which the API proposes writes and waits for read barriers.
//!
//! Every write goes through raft, even with one voter, so adding members later adds peers, not
//! a second write path (design.md §2).

pub mod log_store;
pub mod network;
pub mod snapshot;
pub mod state_machine;
pub mod types;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ReadPolicy, SnapshotPolicy};

use self::log_store::LogStore;
use self::network::NoPeers;
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
}

impl RaftNode {
    /// Starts raft over `storage`; on a fresh data directory, bootstraps a one-voter cluster
    /// whose only member is `member` (etcd's `--initial-cluster-state=new` with one member).
    ///
    /// # Errors
    /// Storage or configuration failures; the caller exits.
    pub async fn start(
        member_id: MemberId,
        member: MemberNode,
        settings: &RaftSettings,
        storage: Storage,
        applier: Arc<Applier>,
        hub: Arc<Hub>,
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
        let raft = Raft::new(member_id.0, Arc::new(config), NoPeers, log_store, state_machine).await?;
        if !raft.is_initialized().await? {
            let mut members = BTreeMap::new();
            members.insert(member_id.0, member);
            raft.initialize(members).await?;
        }
        let request_timeout = Duration::from_secs(crate::config::limits::REQUEST_TIMEOUT_SECS_BASE)
            + 2 * settings.election_timeout;
        Ok(RaftNode {
            raft,
            member_id,
            request_timeout,
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
        // etcd refuses new proposals while the apply backlog exceeds 5000 entries
        // (v3_server.go processInternalRaftRequestOnce: `etcdserver: too many requests`).
        let (committed, applied) = self.indexes();
        if committed.saturating_sub(applied) > APPLY_BACKLOG_ENTRIES_MAX {
            return Err(Error::TooManyRequests);
        }
        let _pending = crate::metrics::record::proposal();
        let write = tokio::time::timeout(self.request_timeout, self.raft.client_write(command)).await;
        if !matches!(write, Ok(Ok(_))) {
            crate::metrics::record::proposal_failed();
        }
        let resp = match write {
            Err(_) => return Err(Error::Timeout),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                return Err(if f.leader_id.is_some() {
                    Error::NotLeader
                } else {
                    Error::NoLeader
                });
            }
            Ok(Err(RaftError::APIError(e))) => return Err(Error::Internal(e.to_string())),
            Ok(Err(RaftError::Fatal(_))) => return Err(Error::Stopped),
            Ok(Ok(resp)) => resp,
        };
        match code_to_error(resp.data.0.error) {
            Some(e) => Err(e),
            None => Ok(resp.data),
        }
    }

    /// Waits until this member has applied everything committed before the call (ReadIndex),
    /// so a following local read is linearizable.
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
        match tokio::time::timeout(
            self.request_timeout,
            self.raft.ensure_linearizable(ReadPolicy::ReadIndex),
        )
        .await
        {
            Err(_) => Err(Error::Timeout),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(RaftError::APIError(e))) => Err(match e {
                openraft::error::LinearizableReadError::ForwardToLeader(f) if f.leader_id.is_some() => {
                    Error::NotLeader
                }
                openraft::error::LinearizableReadError::ForwardToLeader(_) => Error::NoLeader,
                _ => Error::LeaderChanged,
            }),
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
