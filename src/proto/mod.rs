//! Generated protobuf and gRPC code: etcd's `etcdserverpb`, `mvccpb` and `authpb` packages
//! (wire-identical to etcd v3.6, field numbers per etcd-compat.md §1) and Mainstay's internal
//! `mainstaypb` log-entry messages. No hand-written logic lives here.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// etcd's `mvccpb` package: `KeyValue` and `Event`.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's `authpb` package: users, roles, permissions.
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// etcd's `etcdserverpb` package: the six v3 services and their messages.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// Mainstay's replicated command and apply-result messages.
pub mod mainstaypb {
    tonic::include_proto!("mainstaypb");
}

/// Mainstay's member-to-member service on the peer port.
pub mod mainstaypeerpb {
    tonic::include_proto!("mainstaypeerpb");
}

/// etcd's `v3lockpb` package: the Lock service (etcd `api/v3lock/v3lockpb`).
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// etcd's `v3electionpb` package: the Election service (etcd `api/v3election/v3electionpb`).
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}
