//! Transport: the listeners (`listener`: binding, TLS, serving, graceful shutdown) and the
//! adapters applied to accepted client connections before they reach the HTTP/2 (gRPC) server.
//!
//! [`h2_authority::AuthoritySanitizer`] rewrites `:authority` values that etcd clients send but
//! the Rust `h2` server would reject (see that module for the details).

pub mod h2_authority;
pub mod listener;
