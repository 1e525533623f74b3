//! Client, HTTP-only and metrics listeners: binding, TLS, serving, graceful shutdown.
//!
//! Layout (etcd `embed.configureClientListeners`, `serve.go`, 3.5+):
//! * every `--listen-client-urls` address serves gRPC and the HTTP routes (`/health`,
//!   `/livez`, `/readyz`, `/metrics`, `/version`) on one port, HTTP/1.1 and HTTP/2, with or
//!   without TLS;
//! * with `--listen-client-http-urls`, those addresses serve only the HTTP routes and the
//!   client URLs then serve only gRPC (a non-gRPC request there gets 404). An address in both
//!   lists is a start-up error;
//! * `--listen-metrics-urls` serve the health routes and `/metrics`; an `https` metrics URL
//!   uses the client TLS material, as in etcd.
//!
//! On a TLS listener each accepted connection is checked before the handshake: a first byte
//! other than a TLS handshake record means a plaintext client, which is logged and dropped.
//! A failed handshake (no client certificate, unknown CA, expired, revoked, host name not
//! allowed, version or cipher mismatch) is logged with the peer address and rustls' reason,
//! and only that connection is closed. The decrypted stream is then wrapped in
//! [`AuthoritySanitizer`] exactly like a plaintext one.
//!
//! [`Listeners::shutdown`] stops accepting, asks every connection to finish (HTTP/2 GOAWAY,
//! HTTP/1 close after the current response) and waits at most a given deadline for in-flight
//! requests and streams.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use url::Url;

use crate::api::Ctx;
use crate::config::limits::{GRPC_CONCURRENT_STREAMS_MAX_DEFAULT, TLS_HANDSHAKE_TIMEOUT};
use crate::config::{Config, go_url};
use crate::tls::ServerTls;
use crate::transport::h2_authority::AuthoritySanitizer;

/// First byte of a TLS record carrying a handshake message (RFC 8446 §5.1, content type 22).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// gRPC and the client HTTP routes (no `--listen-client-http-urls`).
    GrpcAndHttp,
    /// gRPC only (a client URL while `--listen-client-http-urls` is set).
    GrpcOnly,
    /// The client HTTP routes only (`--listen-client-http-urls`).
    HttpOnly,
    /// Health and metrics (`--listen-metrics-urls`).
    Metrics,
}

/// One listener to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The URL as configured.
    pub url: Url,
    /// What it serves.
    pub serves: Serves,
    /// Whether it speaks TLS (`https`).
    pub tls: bool,
}

/// Checks the listener URLs against each other and the TLS configuration, before anything is
/// started (etcd `configureClientListeners`).
///
/// # Errors
/// `TLS key/cert (--cert-file, --key-file) must be provided for client url <u> with HTTPS
/// scheme`; `cannot bind both --listen-client-urls and --listen-client-http-urls on the same
/// url <u>` (etcd 3.6 wording; 3.5 misnames the flags `--client-listen-*`); unsupported
/// schemes (`unix`, `unixs`).
pub fn plan(config: &Config, client_tls: Option<&ServerTls>) -> anyhow::Result<Vec<Plan>> {
    let client_lists = [&config.listen_client_urls, &config.listen_client_http_urls];
    for u in client_lists.into_iter().flatten() {
        match u.scheme() {
            "http" => {
                if client_tls.is_some() {
                    tracing::warn!(client_url = %go_url(u), "scheme is HTTP while key and cert files are present; ignoring key and cert files");
                }
                if config.client_tls.client_cert_auth {
                    tracing::warn!(client_url = %go_url(u), "scheme is HTTP while --client-cert-auth is enabled; ignoring client cert auth for this URL");
                }
            }
            "https" if client_tls.is_none() => bail!(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme",
                go_url(u)
            ),
            "https" => {}
            other => bail!("{}: listen URL scheme {other:?} is not supported yet", go_url(u)),
        }
    }
    let split = !config.listen_client_http_urls.is_empty();
    let mut plans: Vec<Plan> = Vec::new();
    let client = if split {
        Serves::GrpcOnly
    } else {
        Serves::GrpcAndHttp
    };
    for u in &config.listen_client_urls {
        plans.push(Plan {
            url: u.clone(),
            serves: client,
            tls: u.scheme() == "https",
        });
    }
    for u in &config.listen_client_http_urls {
        let same_address = plans
            .iter()
            .any(|p| p.url.host_str() == u.host_str() && p.url.port() == u.port());
        if same_address {
            bail!(
                "cannot bind both --listen-client-urls and --listen-client-http-urls on the same url {}",
                go_url(u)
            );
        }
        plans.push(Plan {
            url: u.clone(),
            serves: Serves::HttpOnly,
            tls: u.scheme() == "https",
        });
    }
    for u in &config.listen_metrics_urls {
        match u.scheme() {
            "http" => {}
            "https" if client_tls.is_none() => bail!(
                "cannot listen on TLS for {}: KeyFile and CertFile are not presented",
                go_url(u)
            ),
            "https" => {}
            other => bail!("{}: listen URL scheme {other:?} is not supported yet", go_url(u)),
        }
        plans.push(Plan {
            url: u.clone(),
            serves: Serves::Metrics,
            tls: u.scheme() == "https",
        });
    }
    Ok(plans)
}

/// The routers of the client port variants.
#[derive(Clone)]
pub struct Routers {
    grpc: Router,
    ctx: Ctx,
    gateway: Option<Arc<crate::gateway::Gateway>>,
}

impl Routers {
    /// From the gRPC services (as an axum router, without HTTP routes or layers) and the JSON
    /// gateway (`None` with `--enable-grpc-gateway=false`), which the HTTP-serving listeners
    /// mount.
    pub fn new(grpc: Router, ctx: Ctx, gateway: Option<Arc<crate::gateway::Gateway>>) -> Self {
        Self { grpc, ctx, gateway }
    }

    fn with_gateway(&self, router: Router) -> Router {
        match &self.gateway {
            Some(g) => crate::gateway::routes(router, g.clone()),
            None => router,
        }
    }

    fn for_listener(&self, serves: Serves) -> Router {
        let router = match serves {
            Serves::GrpcAndHttp => {
                crate::http::client_routes(self.with_gateway(self.grpc.clone()), self.ctx.clone())
            }
            Serves::GrpcOnly => self
                .grpc
                .clone()
                .layer(axum::middleware::from_fn(grpc_requests_only)),
            Serves::HttpOnly => {
                crate::http::client_routes(self.with_gateway(Router::new()), self.ctx.clone())
            }
            Serves::Metrics => crate::http::health_routes(Router::new(), self.ctx.clone()),
        };
        router
            .layer(axum::middleware::map_response(
                crate::api::interceptor::grpc_go_errors,
            ))
            .layer(axum::middleware::from_fn(crate::metrics::grpc_layer))
    }
}

/// On a gRPC-only client listener, anything that is not a gRPC request is not found (etcd
/// serves no HTTP handler there once `--listen-client-http-urls` is set).
async fn grpc_requests_only(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        next.run(request).await
    } else {
        (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
    }
}

/// The running listeners.
pub struct Listeners {
    graceful: Arc<GracefulShutdown>,
    stop: watch::Sender<bool>,
    accept_loops: JoinSet<()>,
}

impl Listeners {
    /// Binds every planned listener and starts serving.
    ///
    /// # Errors
    /// An address does not resolve or cannot be bound.
    /// `max_streams`: HTTP/2 streams per connection (`--max-concurrent-streams`).
    pub async fn start(
        plans: &[Plan],
        routers: &Routers,
        client_tls: Option<Arc<ServerTls>>,
        max_streams: u32,
    ) -> anyhow::Result<Self> {
        let graceful = Arc::new(GracefulShutdown::new());
        let (stop, _) = watch::channel(false);
        let mut accept_loops = JoinSet::new();
        for plan in plans {
            let listener = bind(&plan.url).await?;
            let tls = if plan.tls { client_tls.clone() } else { None };
            tracing::info!(
                address = %go_url(&plan.url),
                serves = ?plan.serves,
                tls = tls.is_some(),
                client_cert_auth = tls.as_ref().is_some_and(|t| t.requires_client_cert()),
                "serving client traffic"
            );
            accept_loops.spawn(accept_loop(
                listener,
                plan.url.clone(),
                routers.for_listener(plan.serves),
                tls,
                graceful.clone(),
                stop.subscribe(),
                max_streams,
            ));
        }
        Ok(Self {
            graceful,
            stop,
            accept_loops,
        })
    }

    /// Binds the peer listeners (`--listen-peer-urls`) and serves `router` on them, with the
    /// peer TLS on `https` URLs.
    ///
    /// # Errors
    /// An address does not resolve or cannot be bound, or an `https` URL without peer TLS.
    pub async fn start_peers(
        urls: &[Url],
        router: Router,
        tls: Option<Arc<ServerTls>>,
    ) -> anyhow::Result<Self> {
        let graceful = Arc::new(GracefulShutdown::new());
        let (stop, _) = watch::channel(false);
        let mut accept_loops = JoinSet::new();
        for url in urls {
            let tls = match url.scheme() {
                "https" => Some(
                    tls.clone()
                        .ok_or_else(|| anyhow::anyhow!("{url}: peer TLS is not configured"))?,
                ),
                _ => None,
            };
            let listener = bind(url).await?;
            tracing::info!(address = %go_url(url), tls = tls.is_some(), "serving peer traffic");
            accept_loops.spawn(accept_loop(
                listener,
                url.clone(),
                router.clone(),
                tls,
                graceful.clone(),
                stop.subscribe(),
                GRPC_CONCURRENT_STREAMS_MAX_DEFAULT,
            ));
        }
        Ok(Self {
            graceful,
            stop,
            accept_loops,
        })
    }

    /// Stops accepting, asks every connection to finish, and waits until they have or
    /// `deadline` has passed. Connections still open then are dropped with the runtime.
    pub async fn shutdown(mut self, deadline: Duration) {
        let _ = self.stop.send(true);
        while self.accept_loops.join_next().await.is_some() {}
        let Ok(graceful) = Arc::try_unwrap(self.graceful) else {
            return;
        };
        let open = graceful.count();
        if open > 0 {
            tracing::info!(connections = open, deadline = ?deadline, "waiting for in-flight requests");
        }
        if tokio::time::timeout(deadline, graceful.shutdown()).await.is_err() {
            tracing::warn!(deadline = ?deadline, "in-flight requests did not finish in time; closing their connections");
        }
    }
}

/// Binds a listener URL's address (`localhost` resolves to IPv4 first, as in Go).
///
/// # Errors
/// The host does not resolve, or the address cannot be bound.
pub async fn bind(url: &Url) -> anyhow::Result<TcpListener> {
    let host = url
        .host_str()
        .unwrap_or("localhost")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port().unwrap_or(2379);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied();
    let addr = addr.with_context(|| format!("{url}: host does not resolve"))?;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen tcp {addr}"))
}

async fn accept_loop(
    listener: TcpListener,
    url: Url,
    router: Router,
    tls: Option<Arc<ServerTls>>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
    max_streams: u32,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let (router, tls, url) = (router.clone(), tls.clone(), url.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, router, watcher, max_streams).await,
                Some(tls) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake(&tls, stream)).await
                {
                    Ok(Ok(s)) => {
                        // The verified client certificate's CN names the auth user of every
                        // request on this connection (etcd `AuthInfoFromTLS`).
                        let cn = s
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|certs| certs.first())
                            .and_then(|leaf| crate::tls::common_name(leaf));
                        let router = match cn {
                            Some(cn) => router.layer(axum::Extension(crate::auth::ClientCertCn(cn.into()))),
                            None => router,
                        };
                        serve_connection(s, peer, router, watcher, max_streams).await
                    }
                    // A bare TCP connect (port probes, load balancers) is not worth a warning.
                    Ok(Err(Rejection::Closed)) => tracing::debug!(
                        remote_addr = %peer,
                        listener = %go_url(&url),
                        "connection closed before the TLS handshake"
                    ),
                    Ok(Err(reason)) => tracing::warn!(
                        remote_addr = %peer,
                        listener = %go_url(&url),
                        reason = %reason,
                        "rejected connection"
                    ),
                    Err(_) => tracing::warn!(
                        remote_addr = %peer,
                        listener = %go_url(&url),
                        timeout = ?TLS_HANDSHAKE_TIMEOUT,
                        "rejected connection: TLS handshake timed out"
                    ),
                },
            }
        });
    }
}

/// Why a TLS connection was refused.
#[derive(Debug, thiserror::Error)]
enum Rejection {
    #[error("plaintext (non-TLS) request on a TLS listener")]
    Plaintext,
    #[error("closed before the TLS handshake")]
    Closed,
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
}

async fn handshake(
    tls: &ServerTls,
    stream: TcpStream,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, Rejection> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(0) => return Err(Rejection::Closed),
        Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => return Err(Rejection::Plaintext),
        Ok(_) => {}
        Err(e) => return Err(Rejection::Handshake(e)),
    }
    tls.acceptor().accept(stream).await.map_err(Rejection::Handshake)
}

async fn serve_connection<S>(io: S, peer: SocketAddr, router: Router, watcher: Watcher, max_streams: u32)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(max_streams);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(AuthoritySanitizer::new(io)), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(peer = %peer, error = %e, "client connection ended with an error");
    }
}
