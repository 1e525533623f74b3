//! Leases: TTLs for keys (etcd-compat.md §2.7).
//!
//! The replicated part — which leases exist, their granted TTL and which keys they hold — is
//! changed only by the apply path. Deadlines are local to the member and never read by apply:
//! the expiry task (leader only) assigns a deadline of now + TTL to a lease it has not seen yet
//! (so leases are renewed on restart, as etcd renews them on leader change), keep-alives move it,
//! and expired leases are revoked by proposing a revoke through raft.

pub mod expiry;
pub mod lessor;

pub use lessor::Lessor;
