//! Cluster identity: member and cluster IDs derived as etcd derives them, and the bootstrap
//! membership a new (or restored) member starts raft with.

pub mod bootstrap;
pub mod ids;
