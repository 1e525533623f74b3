//! Generated protobuf and gRPC code: etcd's `etcdserverpb`, `mvccpb` and `authpb` packages
//! (wire-identical to etcd v3.6, field numbers per etcd-compat.md §1) and Mainstay's internal
//! `mainstaypb` log-entry messages, plus serde impls (pbjson) of etcd's packages in grpc-gateway's
//! JSON mapping for the `/v3/*` gateway. No hand-written logic lives here.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// etcd's `mvccpb` package: `KeyValue` and `Event`.
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
    include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
}

/// etcd's `authpb` package: users, roles, permissions.
pub mod authpb {
    tonic::include_proto!("authpb");
    include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
}

/// etcd's `etcdserverpb` package: the six v3 services and their messages.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
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
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.serde.rs"));
}

/// etcd's `v3electionpb` package: the Election service (etcd `api/v3election/v3electionpb`).
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.serde.rs"));
}
