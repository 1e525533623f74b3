//! TLS for the listeners, shared by the client side (`--cert-file` family) and the peer side
//! (`--peer-*` family), with certificate and CA reload without restart.
//!
//! * [`ServerTls::build`] turns one side's flags into a rustls `ServerConfig` the way etcd's
//!   `transport.TLSInfo.ServerConfig` does: a client certificate is required and verified when
//!   `--trusted-ca-file` is set or `--client-cert-auth` is on; `--client-crl-file` revokes by
//!   serial; `--client-cert-allowed-hostname` requires one of the names to match a SAN of the
//!   client certificate; `--tls-min-version`/`--tls-max-version` bound the protocol (TLS 1.2
//!   default minimum, TLS 1.3 allowed as in etcd 3.5+; etcd 3.4 capped servers at TLS 1.2);
//!   `--cipher-suites` restricts TLS 1.2 suites (see [`ciphers`]); ALPN offers `h2` and
//!   `http/1.1` (grpc-go ≥ 1.67 refuses a TLS peer that does not select `h2`). `--auto-tls`
//!   generates a self-signed certificate under `<data-dir>/fixtures/<side>` ([`auto`]).
//! * [`reload`] (beyond etcd): the certificate/key and the CA bundle and CRL are watched on disk
//!   (inotify through `notify`, debounced, plus a slow poll) and swapped atomically. The
//!   `ServerConfig` never changes; its certificate resolver and client verifier read the current
//!   material from an `ArcSwap`, so new handshakes use new material and established connections
//!   are untouched. A file that does not parse, or a key that does not match its certificate,
//!   is logged and the previous material kept.
//!
//! Crypto: rustls with the `ring` provider (no C build toolchain beyond `cc`). Differences from
//! Go: auto-TLS keys are ECDSA P-256 (etcd: P-521, which ring cannot sign with); TLS session
//! resumption is off so every connection is verified against the current CA and CRL.

pub mod auto;
pub mod ciphers;
pub mod config;
pub mod peer_client;
pub mod reload;

use std::path::PathBuf;

pub use config::{ServerTls, Side};

/// Why TLS material or settings were rejected. Messages name the file and, where etcd has one,
/// use etcd's wording.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("open {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file has no usable PEM data of the expected kind, or a PEM block does not parse.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. `tls: failed to find any PEM data in certificate input`.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("{cert} and {key}: tls: private key does not match public key")]
    KeyMismatch {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
    },
    /// An invalid combination of flags (etcd's start-up errors).
    #[error("{0}")]
    Config(String),
    /// Writing the auto-TLS certificate failed.
    #[error("cannot generate self-signed certificate in {dir}: {reason}")]
    Generate {
        /// The fixtures directory.
        dir: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// The CommonName of a DER certificate's subject (etcd uses the verified client certificate's
/// CN as the auth user name, `auth.AuthInfoFromTLS`); `None` when it has none or does not
/// parse.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}
