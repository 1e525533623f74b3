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
