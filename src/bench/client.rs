//! gRPC connections to the benchmarked endpoints: `--conns` HTTP/2 connections (each a tonic
//! `Channel` of its own TCP connection), round-robin over `--endpoints`, plaintext or TLS
//! (`--cacert`, `--cert`/`--key`) as etcd's `benchmark` dials them (`cmd/util.go`).

use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::args::GlobalOpts;
use super::error::BenchError;
use crate::config::limits::BENCH_DIAL_TIMEOUT;

/// TLS material read once from the `--cacert`, `--cert` and `--key` files.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    ca: Option<Certificate>,
    identity: Option<Identity>,
}

impl Tls {
    /// Reads the files named by the global flags. `--cert` and `--key` go together.
    pub fn from_opts(opts: &GlobalOpts) -> Result<Tls, BenchError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| BenchError::ReadFile {
                path: p.to_path_buf(),
                source,
            })
        };
        let ca = match &opts.cacert {
            Some(p) => Some(Certificate::from_pem(read(p)?)),
            None => None,
        };
        let identity = match (&opts.cert, &opts.key) {
            (Some(c), Some(k)) => Some(Identity::from_pem(read(c)?, read(k)?)),
            (None, None) => None,
            _ => {
                return Err(BenchError::Invalid(
                    "--cert and --key must be given together".to_string(),
                ));
            }
        };
        Ok(Tls { ca, identity })
    }

    fn enabled(&self) -> bool {
        self.ca.is_some() || self.identity.is_some()
    }
}

/// The URL for an endpoint given as `host:port` or with a scheme: `https://` when TLS
/// material was given, else `http://` (etcd's clientv3 decides the same way).
pub fn endpoint_url(endpoint: &str, tls: bool) -> String {
    let e = endpoint.trim();
    if e.starts_with("http://") || e.starts_with("https://") {
        e.to_string()
    } else if let Some(rest) = e.strip_prefix("unix://") {
        format!("http://{rest}")
    } else if tls {
        format!("https://{e}")
    } else {
        format!("http://{e}")
    }
}

/// Dials one connection to `endpoint`.
pub async fn connect(endpoint: &str, tls: &Tls, dial_timeout: Duration) -> Result<Channel, BenchError> {
    let url = endpoint_url(endpoint, tls.enabled());
    let err = |source| BenchError::Connect {
        endpoint: url.clone(),
        source,
    };
    let timeout = if dial_timeout.is_zero() {
        BENCH_DIAL_TIMEOUT
    } else {
        dial_timeout
    };
    let mut ep = Endpoint::from_shared(url.clone())
        .map_err(err)?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    if url.starts_with("https://") {
        let Some(ca) = tls.ca.clone() else {
            return Err(BenchError::Invalid(format!(
                "{url}: --cacert is required for https endpoints"
            )));
        };
        let mut cfg = ClientTlsConfig::new().ca_certificate(ca);
        if let Some(id) = tls.identity.clone() {
            cfg = cfg.identity(id);
        }
        ep = ep.tls_config(cfg).map_err(err)?;
    }
    ep.connect().await.map_err(err)
}

/// Dials `opts.conns` connections (at least one), connection `i` to endpoint
/// `i mod len(endpoints)`.
pub async fn connect_all(opts: &GlobalOpts) -> Result<Vec<Channel>, BenchError> {
    if opts.endpoints.is_empty() {
        return Err(BenchError::Invalid("no --endpoints".to_string()));
    }
    let tls = Tls::from_opts(opts)?;
    let n = opts.conns.max(1);
    let dials = (0..n).map(|i| {
        let ep = &opts.endpoints[i % opts.endpoints.len()];
        connect(ep, &tls, opts.dial_timeout)
    });
    futures::future::try_join_all(dials).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_without_scheme_get_http_or_https() {
        assert_eq!(endpoint_url("127.0.0.1:2379", false), "http://127.0.0.1:2379");
        assert_eq!(endpoint_url("127.0.0.1:2379", true), "https://127.0.0.1:2379");
        assert_eq!(endpoint_url("https://h:1", false), "https://h:1");
        assert_eq!(endpoint_url(" http://h:1 ", true), "http://h:1");
    }
}
