//! Cluster identity: member and cluster IDs derived as etcd derives them.

pub mod ids;
