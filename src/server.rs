//! Wiring: storage, MVCC store, raft, gRPC services and listeners. Owns every task and the
//! shutdown path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::alarm::Alarms;
use crate::api::cluster::ClusterService;
use crate::api::election::ElectionService;
use crate::api::kv::KvService;
use crate::api::lease::{LeaseService, min_ttl_secs};
use crate::api::lock::LockService;
use crate::api::maintenance::MaintenanceService;
use crate::api::unimplemented::AuthService;
use crate::api::watch::WatchService;
use crate::api::{Ctx, Limits};
use crate::apply::Applier;
use crate::cluster::ids::{cluster_id, member_id};
use crate::config::limits::GRPC_CONCURRENT_STREAMS_MAX;
use crate::config::limits::{GRPC_OVERHEAD_BYTES, PUBLISH_RETRY};
use crate::config::{ClusterState, Config, go_url};
use crate::lease::Lessor;
use crate::mvcc::Store;
use crate::proto::etcdserverpb::auth_server::AuthServer;
use crate::proto::etcdserverpb::cluster_server::ClusterServer;
use crate::proto::etcdserverpb::kv_server::KvServer;
use crate::proto::etcdserverpb::lease_server::LeaseServer;
use crate::proto::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::proto::etcdserverpb::watch_server::WatchServer;
use crate::proto::mainstaypeerpb::peer_server::PeerServer;
use crate::proto::v3electionpb::election_server::ElectionServer;
use crate::proto::v3lockpb::lock_server::LockServer;
use crate::raft::peer::Peers;
use crate::raft::peer_service::PeerService;
use crate::raft::types::MemberNode;
use crate::raft::{RaftNode, RaftSettings};
use crate::storage::{Storage, schema};
use crate::transport::h2_authority::AuthoritySanitizer;
use crate::types::{ClusterId, MemberId};
use crate::watch::Hub;
use crate::watch::stream::StreamSettings;

/// How long start-up waits for the single member to elect itself.
const LEADER_WAIT: Duration = Duration::from_secs(30);

/// Runs the server until SIGINT or SIGTERM.
///
/// # Errors
/// Start-up failures (bad data directory, port in use, unsupported configuration).
pub async fn run(config: Config) -> anyhow::Result<()> {
    for flag in &config.not_yet_effective {
        tracing::warn!(flag = %flag, "flag is accepted but not yet effective in mainstay");
    }
    let storage =
        Storage::open(&config.data_dir).with_context(|| format!("opening {}", config.data_dir.display()))?;
    let (member, cluster, members) = identity(&config, &storage)?;
    tracing::info!(member_id = %member, cluster_id = %cluster, data_dir = %config.data_dir.display(), "starting member");
    let store = Store::open(storage.clone())?;
    let hub = Hub::new(store.committed_revision());
    let lessor = Lessor::load(&storage, &store)?;
    let alarms = Alarms::load(&storage)?;
    let applier = Arc::new(Applier::new(store.clone(), lessor.clone(), alarms));
    let client_urls: Vec<String> = config.advertise_client_urls.iter().map(go_url).collect();
    let node = MemberNode {
        name: config.name.clone(),
        peer_urls: config.initial_advertise_peer_urls.iter().map(go_url).collect(),
        client_urls: client_urls.clone(),
    };
    let settings = RaftSettings {
        heartbeat_interval: config.heartbeat_interval,
        election_timeout: config.election_timeout,
        snapshot_count: config.snapshot_count,
        snapshot_catchup_entries: crate::config::limits::SNAPSHOT_CATCHUP_ENTRIES_DEFAULT,
        cluster_token: config.initial_cluster_token.clone(),
    };
    let raft = RaftNode::start(
        member,
        members,
        &settings,
        storage.clone(),
        applier.clone(),
        hub.clone(),
        Peers::new(cluster),
    )
    .await?;
    let mut tasks = JoinSet::new();
    // Peers must be reachable before this member can join an election.
    let peer_router = tonic::service::Routes::new(
        PeerServer::new(PeerService::new(raft.clone(), lessor.clone(), cluster))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX),
    )
    .into_axum_router();
    for url in &config.listen_peer_urls {
        let listener = bind(url).await?;
        tracing::info!(address = %go_url(url), "serving peer traffic");
        tasks.spawn(serve(listener, peer_router.clone()));
    }
    raft.wait_for_leader(LEADER_WAIT).await?;
    // etcd logs these two lines once the member is part of the cluster; tools that start etcd
    // and wait for them (etcd's own e2e suite among them) work unchanged.
    tracing::info!(cluster_version = "3.5", "enabled capabilities for version 3.5");
    publish(&raft, node).await;
    tracing::info!(member_id = %member, name = %config.name, "published local member to cluster through raft");
    let ctx = Ctx {
        raft: raft.clone(),
        store,
        applier,
        storage: storage.clone(),
        cluster_id: cluster,
        limits: Limits {
            max_request_bytes: config.max_request_bytes,
            max_txn_ops: config.max_txn_ops,
            quota_backend_bytes: config.quota_backend_bytes,
        },
        client_urls,
    };
    tokio::spawn(crate::lease::expiry::run(
        lessor,
        raft.clone(),
        config.lease_checkpoint_interval,
    ));
    let watched = raft.clone();
    let clocks = ctx.applier.lessor().clone();
    tokio::spawn(async move {
        watched
            .watch_leader(|| {
                crate::metrics::with(|m| m.leader_changes.inc());
                // A new leader restarts every lease clock from the lease's TTL (or its
                // checkpointed remaining TTL), as etcd's `lessor.Promote` does.
                clocks.reset_clocks();
            })
            .await;
    });
    let metrics_ctx = ctx.clone();
    let router = router(ctx, hub, &config).await;
    for url in &config.listen_metrics_urls {
        let listener = bind(url).await?;
        tracing::info!(address = %go_url(url), "serving /health, /livez and /readyz (metrics listener)");
        tasks.spawn(serve(
            listener,
            crate::http::health_routes(axum::Router::new(), metrics_ctx.clone()),
        ));
    }
    for url in &config.listen_client_urls {
        let listener = bind(url).await?;
        tracing::info!(address = %go_url(url), "serving client requests (gRPC and HTTP)");
        tasks.spawn(serve(listener, router.clone()));
    }
    tracing::info!(member_id = %member, "ready to serve client requests");
    if let Err(e) = crate::systemd::notify_ready() {
        tracing::warn!(error = %e, "failed to notify systemd of readiness");
    }
    shutdown_signal().await;
    tracing::info!("received shutdown signal, stopping");
    tasks.abort_all();
    raft.shutdown().await;
    storage.sync()?;
    Ok(())
}

/// Publishes this member's attributes through raft, retrying until it succeeds (etcd's
/// server publishes before it serves clients).
async fn publish(raft: &RaftNode, node: MemberNode) {
    loop {
        match raft.publish(node.clone()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "failed to publish local member to cluster through raft; retrying");
                tokio::time::sleep(PUBLISH_RETRY).await;
            }
        }
    }
}

/// The members of `--initial-cluster` by ID, as a new cluster records them (client URLs are
/// published by each member once it runs).
type InitialMembers = BTreeMap<u64, MemberNode>;

/// This member's and its cluster's IDs, read from the data directory, or derived from the
/// bootstrap flags on first start (etcd `--initial-cluster`, `--initial-cluster-token`),
/// together with the initial members (empty when the data directory already has them).
fn identity(config: &Config, storage: &Storage) -> anyhow::Result<(MemberId, ClusterId, InitialMembers)> {
    let stored = (
        storage.meta_i64(schema::META_MEMBER_ID)?,
        storage.meta_i64(schema::META_CLUSTER_ID)?,
    );
    if let (Some(m), Some(c)) = stored {
        return Ok((MemberId(m as u64), ClusterId(c as u64), BTreeMap::new()));
    }
    if config.initial_cluster_state == ClusterState::Existing {
        bail!("--initial-cluster-state=existing: joining an existing cluster is not supported yet");
    }
    config.verify_bootstrap()?;
    let mut by_name: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, url) in &config.initial_cluster {
        by_name.entry(name.as_str()).or_default().push(go_url(url));
    }
    let mut members = BTreeMap::new();
    for (name, urls) in by_name {
        let id = member_id(&urls, &config.initial_cluster_token, None);
        members.insert(
            id.0,
            MemberNode {
                name: name.to_owned(),
                peer_urls: urls,
                client_urls: Vec::new(),
            },
        );
    }
    let own: Vec<String> = config.own_initial_peer_urls().into_iter().map(go_url).collect();
    let member = member_id(&own, &config.initial_cluster_token, None);
    let ids: Vec<MemberId> = members.keys().map(|id| MemberId(*id)).collect();
    let cluster = cluster_id(&ids);
    storage
        .meta
        .insert(schema::META_MEMBER_ID, (member.0 as i64).to_be_bytes())?;
    storage
        .meta
        .insert(schema::META_CLUSTER_ID, (cluster.0 as i64).to_be_bytes())?;
    storage.sync()?;
    Ok((member, cluster, members))
}

async fn router(ctx: Ctx, hub: Arc<Hub>, config: &Config) -> axum::Router {
    let max_recv =
        usize::try_from(config.max_request_bytes.saturating_add(GRPC_OVERHEAD_BYTES)).unwrap_or(usize::MAX);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let services = crate::gateway::Services {
        kv: Arc::new(KvService::new(ctx.clone())),
        watch: Arc::new(WatchService::new(
            ctx.clone(),
            hub.clone(),
            StreamSettings {
                max_response_bytes: max_recv,
                progress_interval: config.watch_progress_notify_interval,
                election_timeout: config.election_timeout,
            },
        )),
        lease: Arc::new(LeaseService::new(
            ctx.clone(),
            ctx.applier.lessor().clone(),
            min_ttl_secs(config.heartbeat_interval, config.election_timeout),
        )),
        cluster: Arc::new(ClusterService::new(ctx.clone())),
        maintenance: Arc::new(MaintenanceService::new(ctx.clone())),
        auth: Arc::new(AuthService),
        lock: Arc::new(LockService::new(ctx.clone(), hub.clone())),
        election: Arc::new(ElectionService::new(ctx.clone(), hub)),
    };
    let routes = tonic::service::Routes::new(
        KvServer::from_arc(services.kv.clone())
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        WatchServer::from_arc(services.watch.clone())
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(LeaseServer::from_arc(services.lease.clone()).max_decoding_message_size(max_recv))
    .add_service(ClusterServer::from_arc(services.cluster.clone()).max_decoding_message_size(max_recv))
    .add_service(
        MaintenanceServer::from_arc(services.maintenance.clone())
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(AuthServer::from_arc(services.auth.clone()).max_decoding_message_size(max_recv))
    .add_service(LockServer::from_arc(services.lock.clone()).max_decoding_message_size(max_recv))
    .add_service(ElectionServer::from_arc(services.election.clone()).max_decoding_message_size(max_recv))
    .add_service(health_service);
    let mut router = routes.into_axum_router();
    if config.enable_grpc_gateway {
        let gateway = crate::gateway::Gateway::new(services, max_recv);
        router = crate::gateway::routes(router, Arc::new(gateway));
    }
    crate::http::client_routes(router, ctx)
        .layer(axum::middleware::map_response(
            crate::api::interceptor::grpc_go_errors,
        ))
        .layer(axum::middleware::from_fn(crate::metrics::grpc_layer))
}

async fn bind(url: &url::Url) -> anyhow::Result<TcpListener> {
    match url.scheme() {
        "http" => {}
        "https" => bail!("{url}: TLS client listeners are not supported yet"),
        other => bail!("{url}: listen URL scheme {other:?} is not supported yet"),
    }
    let host = url
        .host_str()
        .unwrap_or("localhost")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port().unwrap_or(2379);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    // Go resolves "localhost" to 127.0.0.1 first; prefer IPv4 as etcd does.
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

async fn serve(listener: TcpListener, router: axum::Router) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http2()
                .max_concurrent_streams(GRPC_CONCURRENT_STREAMS_MAX);
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(AuthoritySanitizer::new(stream)), service)
                .await
            {
                tracing::debug!(peer = %peer, error = %e, "client connection ended with an error");
            }
        });
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
