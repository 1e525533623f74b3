//! Wiring: storage, MVCC store, raft, gRPC services and listeners. Owns every task and the
//! shutdown path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::alarm::Alarms;
use crate::api::auth::AuthService;
use crate::api::cluster::ClusterService;
use crate::api::election::ElectionService;
use crate::api::kv::KvService;
use crate::api::lease::{LeaseService, min_ttl_secs};
use crate::api::lock::LockService;
use crate::api::maintenance::MaintenanceService;
use crate::api::watch::WatchService;
use crate::api::{Ctx, Limits};
use crate::apply::Applier;
use crate::cluster::bootstrap::Bootstrap;
use crate::config::limits::{GRPC_OVERHEAD_BYTES, PUBLISH_RETRY, SHUTDOWN_DRAIN_MAX};
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
use crate::storage::Storage;
use crate::transport::listener;
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
    crate::version::set(config.emulated_etcd_version.clone());
    for flag in &config.not_yet_effective {
        tracing::warn!(flag = %flag, "flag is accepted but not yet effective in mainstay");
    }
    // TLS and listener layout are checked before any data is touched (etcd configures its
    // listeners first, too).
    let client_tls = crate::tls::ServerTls::build(
        crate::tls::Side::Client,
        &config.client_tls,
        &config.tls,
        &config.data_dir,
        &hosts(
            config
                .listen_client_urls
                .iter()
                .chain(&config.listen_client_http_urls),
        ),
    )?;
    let peer_tls = peer_tls(&config)?;
    let peer_client_tls = match &peer_tls {
        Some(tls) => Some(crate::tls::peer_client::client_config(tls)?),
        None => None,
    };
    let auth_settings = crate::auth::AuthSettings::from_config(&config)?;
    let plans = listener::plan(&config, client_tls.as_deref())?;
    if let Some(tls) = &client_tls
        && let Err(e) = crate::tls::reload::spawn_watcher(tls.clone(), "client")
    {
        tracing::warn!(error = %e, "cannot watch the client TLS files; they are polled instead");
    }
    let storage =
        Storage::open(&config.data_dir).with_context(|| format!("opening {}", config.data_dir.display()))?;
    let (member, cluster, members) = identity(&config, &storage)?;
    tracing::info!(member_id = %member, cluster_id = %cluster, data_dir = %config.data_dir.display(), "starting member");
    let store = Store::open(storage.clone())?;
    let hub = Hub::new(store.committed_revision());
    let lessor = Lessor::load(&storage, &store)?;
    let alarms = Alarms::load(&storage)?;
    let auth = crate::auth::Auth::new(crate::auth::state::AuthState::load(&storage)?, auth_settings);
    let applier = Arc::new(Applier::new(store.clone(), lessor.clone(), alarms).with_auth(Arc::new(auth)));
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
        Peers::new(cluster, peer_client_tls),
    )
    .await?;
    // Peers must be reachable before this member can join an election.
    let peer_router = tonic::service::Routes::new(
        PeerServer::new(PeerService::new(raft.clone(), lessor.clone(), cluster))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX),
    )
    .into_axum_router();
    if let Some(tls) = &peer_tls
        && let Err(e) = crate::tls::reload::spawn_watcher(tls.clone(), "peer")
    {
        tracing::warn!(error = %e, "cannot watch the peer TLS files; they are polled instead");
    }
    let peer_listeners =
        listener::Listeners::start_peers(&config.listen_peer_urls, peer_router, peer_tls).await?;
    raft.wait_for_leader(LEADER_WAIT).await?;
    // etcd logs these two lines once the member is part of the cluster; tools that start etcd
    // and wait for them (etcd's own e2e suite among them) work unchanged.
    let cluster_version = crate::version::current().cluster_minor();
    tracing::info!(cluster_version = %cluster_version, "enabled capabilities for version {cluster_version}");
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
    let (grpc, gateway) = grpc_router(ctx.clone(), hub, &config).await;
    let routers = listener::Routers::new(grpc, ctx, gateway);
    let listeners =
        listener::Listeners::start(&plans, &routers, client_tls, config.max_concurrent_streams).await?;
    tracing::info!(member_id = %member, "ready to serve client requests");
    if let Err(e) = crate::systemd::notify_ready() {
        tracing::warn!(error = %e, "failed to notify systemd of readiness");
    }
    shutdown_signal().await;
    tracing::info!("received shutdown signal, stopping");
    listeners.shutdown(SHUTDOWN_DRAIN_MAX).await;
    peer_listeners.shutdown(SHUTDOWN_DRAIN_MAX).await;
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

/// This member's and its cluster's IDs and the members raft bootstraps with, read from the data
/// directory (a previous start, or `mainstayctl snapshot restore`), or derived from the
/// bootstrap flags on first start (etcd `--initial-cluster`, `--initial-cluster-token`) and
/// recorded. The members only matter while raft is not initialized.
fn identity(config: &Config, storage: &Storage) -> anyhow::Result<(MemberId, ClusterId, InitialMembers)> {
    if let Some(b) = Bootstrap::load(storage)? {
        return Ok((b.member, b.cluster, b.members));
    }
    if config.initial_cluster_state == ClusterState::Existing {
        bail!("--initial-cluster-state=existing: joining an existing cluster is not supported yet");
    }
    let b = Bootstrap::from_config(config)?;
    b.record(storage)?;
    Ok((b.member, b.cluster, b.members))
}

/// The gRPC services as one axum router (HTTP routes and layers are added per listener).
/// The gRPC services as an axum router, and the JSON gateway over the same service objects
/// (`None` with `--enable-grpc-gateway=false`).
async fn grpc_router(
    ctx: Ctx,
    hub: Arc<Hub>,
    config: &Config,
) -> (axum::Router, Option<Arc<crate::gateway::Gateway>>) {
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
        auth: Arc::new(AuthService::new(ctx.clone())),
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
    let gateway = config.enable_grpc_gateway.then(|| {
        Arc::new(crate::gateway::Gateway::new(
            services,
            max_recv,
            config.max_concurrent_streams,
        ))
    });
    (routes.into_axum_router(), gateway)
}

/// Bare host names of listener URLs, for auto-TLS certificates.
fn hosts<'a>(urls: impl Iterator<Item = &'a url::Url>) -> Vec<String> {
    urls.filter_map(|u| u.host_str())
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        .collect()
}

/// The peer listener arrives with clustering; its TLS flags are validated now so a bad
/// configuration fails at start-up, as in etcd.
/// The peer side's TLS (`--peer-*` flags or `--peer-auto-tls`), checked as etcd checks it.
fn peer_tls(config: &Config) -> anyhow::Result<Option<Arc<crate::tls::ServerTls>>> {
    let peer_tls = crate::tls::ServerTls::build(
        crate::tls::Side::Peer,
        &config.peer_tls,
        &config.tls,
        &config.data_dir,
        &hosts(config.listen_peer_urls.iter()),
    )?;
    if peer_tls.is_none()
        && let Some(u) = config.listen_peer_urls.iter().find(|u| u.scheme() == "https")
    {
        bail!(
            "cannot listen on TLS for {}: KeyFile and CertFile are not presented",
            u.host_str()
                .map(|h| format!("{h}:{}", u.port().unwrap_or(2380)))
                .unwrap_or_default()
        );
    }
    Ok(peer_tls)
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
