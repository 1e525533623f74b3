//! One integration-test binary (each `tests/*.rs` file would link the whole dependency graph
//! again). Modules drive the built `mainstay` binary, and the real etcd where a test compares.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: failing loudly is the point"
)]

mod auth;
mod bench;
mod cluster;
mod concurrency;
mod crash;
mod differential;
mod etcdctl;
mod etcdctl_check;
mod etcdctl_lease;
mod etcdctl_watch;
mod gateway;
mod harness;
mod kube;
mod kv;
mod lease;
mod logging;
mod maintenance;
mod metrics;
mod restore;
mod service;
mod snapshot;
mod tls;
mod watch;
mod watch_fairness;
