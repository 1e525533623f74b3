//! Mainstay: an etcd-compatible, Raft-replicated key-value server for Kubernetes control planes.
//!
//! The write path (design.md §2):
//!
//! ```text
//! client ─gRPC─▶ api::kv (validate, limits) ─propose Command─▶ raft::RaftNode (openraft)
//!   ─▶ raft::log_store (fjall, group-committed fsync) ─committed─▶ raft::state_machine
//!   ─▶ apply::Applier (one dispatch match, deterministic) ─▶ mvcc::Store (one fjall batch:
//!      data + applied log id) ─▶ response with header {cluster_id, member_id, revision, raft_term}
//! ```
//!
//! Reads: a linearizable Range waits on a raft ReadIndex barrier, then reads the local store; a
//! serializable Range reads the local store directly.
//!
//! After each apply batch is written, `watch::Hub` offers its revisions to every Watch stream
//! (bounded channels; a stream that falls behind replays from the store). Leases live in
//! `lease::Lessor` (changed only by apply; deadlines kept by a leader-only expiry task that
//! proposes revokes), alarms in `alarm::Alarms`. `concurrency` runs etcd's Lock and Election on
//! top of KV, Lease and Watch. `gateway` serves etcd's grpc-gateway JSON API (`/v3/*`) by calling
//! the same service implementations in process. `bench` is the load generator behind
//! `mainstayctl bench`.

pub mod alarm;
pub mod api;
pub mod apply;
pub mod auth;
pub mod bbolt;
pub mod bench;
pub mod cluster;
pub mod concurrency;
pub mod config;
pub mod ctl;
pub mod error;
pub mod gateway;
pub mod http;
pub mod lease;
pub mod logging;
pub mod metrics;
pub mod mvcc;
pub mod proto;
pub mod raft;
pub mod server;
pub mod snapshot;
pub mod storage;
pub mod systemd;
pub mod tls;
pub mod transport;
pub mod types;
pub mod version;
pub mod watch;
