//! The Watch service (etcd `v3rpc/watch.go`): one task per bidi stream, see `watch::stream`.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Ctx;
use crate::auth::ClientCertCn;
use crate::auth::perm::Access;
use crate::config::limits::WATCH_STREAM_RESPONSES_MAX;
use crate::error::Error;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{WatchRequest, WatchResponse};
use crate::watch::Hub;
use crate::watch::stream::{self, HeaderFn, LeaderCheck, PermitFn, StreamContext, StreamSettings};

/// The Watch service.
pub struct WatchService {
    ctx: Ctx,
    hub: Arc<Hub>,
    settings: StreamSettings,
}

impl WatchService {
    /// A Watch service over `ctx`, fed by `hub`.
    pub fn new(ctx: Ctx, hub: Arc<Hub>, settings: StreamSettings) -> WatchService {
        WatchService { ctx, hub, settings }
    }
}

impl WatchService {
    /// The per-creation auth check of a stream: READ over the watched range while auth is
    /// enabled, with the stream's token or client-certificate CN evaluated at each creation.
    fn permit<T>(&self, request: &Request<T>) -> PermitFn {
        let auth = self.ctx.applier.auth().clone();
        let metadata = request.metadata().clone();
        let cn = request.extensions().get::<ClientCertCn>().cloned();
        Arc::new(move |key: &[u8], range_end: &[u8]| {
            if !auth.enabled() {
                return Ok(());
            }
            auth.identity_of(&metadata, cn.as_ref())
                .and_then(|who| auth.check_range(&who, key, range_end, Access::Read))
                .map_err(|_| crate::api::status::go_status_text(&Error::PermissionDenied))
        })
    }
}

/// Whether the client asked to require a leader (`clientv3.WithRequireLeader`, gRPC metadata
/// `hasleader=true`; kube-apiserver sets it on every watch).
fn requires_leader<T>(request: &Request<T>) -> bool {
    request.metadata().get("hasleader").and_then(|v| v.to_str().ok()) == Some("true")
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    /// # Errors
    /// `etcdserver: no leader` (Unavailable) when `hasleader=true` and there is no leader; such
    /// a stream is also cancelled with that error after three election timeouts without one.
    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let require_leader = requires_leader(&request).then(|| {
            let raft = self.ctx.raft.clone();
            LeaderCheck(Arc::new(move || raft.leader() != 0))
        });
        if require_leader.is_some() && self.ctx.raft.leader() == 0 {
            return Err(Error::NoLeader.into());
        }
        let permit = Some(self.permit(&request));
        let requests = request.into_inner();
        let (tx, rx) = mpsc::channel(WATCH_STREAM_RESPONSES_MAX);
        let ctx = self.ctx.clone();
        let header: HeaderFn = Arc::new(move |rev| ctx.header(rev));
        let sub = self.hub.subscribe();
        let context = StreamContext {
            store: self.ctx.store.clone(),
            hub: self.hub.clone(),
            header,
            settings: self.settings.clone(),
            require_leader,
            permit,
        };
        tokio::spawn(async move {
            stream::run(context, sub, requests, tx).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
