//! Multi-version concurrency control over fjall: etcd's revision model (etcd-compat.md §2.1).
//!
//! Owns the `kv` keyspace and the in-memory key index. Knows nothing about gRPC or raft; the
//! apply path drives writes, API handlers drive reads.

pub mod compactor;
pub mod key_index;
pub mod key_range;
pub mod revision;
pub mod store;

pub use key_range::KeyRange;
pub use revision::RevisionKey;
pub use store::{ApplyBatch, Change, Committed, RangeOptions, RangeResult, RevisionEvents, Store, WriteTxn};
