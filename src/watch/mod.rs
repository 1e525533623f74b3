//! Watch: live and historical change streams (etcd-compat.md §2.6).
//!
//! The apply path offers each committed batch to the [`hub::Hub`]; each gRPC Watch stream is one
//! task ([`stream::run`]) owning its watchers. Memory is bounded by the per-stream channels;
//! streams that fall behind replay from the MVCC store.

pub mod hub;
pub mod stream;
pub mod watcher;

pub use hub::Hub;
