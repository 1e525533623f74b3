//! openraft type configuration. Every openraft type the rest of the crate sees is named here.

use crate::apply::command::{Command, Response};

/// A member as the raft membership records it: etcd's `Member` without the ID (the ID is the
/// raft node ID).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct MemberNode {
    /// `--name`.
    pub name: String,
    /// `--initial-advertise-peer-urls`.
    pub peer_urls: Vec<String>,
    /// `--advertise-client-urls`.
    pub client_urls: Vec<String>,
}

openraft::declare_raft_types!(
    /// Mainstay's raft types: etcd commands in, apply results out, etcd member IDs as node IDs,
    /// standard Raft leader ids (one leader per term, matching etcd's `raft_term`).
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = u64,
        Node = MemberNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

/// A raft log id.
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A raft vote.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// A raft log entry.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// The membership as of an applied log id.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// Raft snapshot metadata.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// The raft handle.
pub type Raft = openraft::Raft<TypeConfig, super::state_machine::StateMachine>;
/// Raft snapshot payload: the bytes a member streams to another (clustering issue).
pub type SnapshotData = std::io::Cursor<Vec<u8>>;
/// A raft snapshot.
pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;
