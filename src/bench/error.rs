//! Errors of `mainstayctl bench`.

use std::path::PathBuf;

/// Why a benchmark could not run. Failed requests during a run are not errors: they are
/// counted in the report's error distribution, as etcd's `benchmark` does.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An argument has a value the benchmark cannot use (the text says which and why).
    #[error("{0}")]
    Invalid(String),
    /// A TLS file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file named by `--cacert`, `--cert` or `--key`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A gRPC connection to an endpoint could not be set up.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint URL.
        endpoint: String,
        /// The transport error.
        source: tonic::transport::Error,
    },
    /// A set-up request (watch creation, lease grant) failed.
    #[error("{what}: {status}")]
    Setup {
        /// What was being set up.
        what: &'static str,
        /// The gRPC status the server answered.
        status: tonic::Status,
    },
    /// A phase did not finish within its deadline.
    #[error("{0} did not finish in time")]
    Timeout(&'static str),
}
