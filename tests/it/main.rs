//! One integration-test binary (each `tests/*.rs` file would link the whole dependency graph
//! again). Modules drive the built `mainstay` binary, and the real etcd where a test compares.

mod crash;
mod harness;
mod kv;
