//! The Election service (etcd `server/etcdserver/api/v3election/election.go`): leader election
//! per name, run server-side by [`crate::concurrency::election`] over the server's own KV,
//! Lease and Watch, as etcd runs `clientv3/concurrency.Election` over its in-process client.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::Ctx;
use crate::concurrency::election::{self, Leadership};
use crate::concurrency::{Client, ERR_MISSING_LEADER_KEY, Need, check_auth, go_error};
use crate::proto::v3electionpb::election_server::Election;
use crate::proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use crate::watch::Hub;

/// Observe responses buffered per stream before the observer waits for the client.
const OBSERVE_BUFFER: usize = 16;

/// The Election service.
pub struct ElectionService {
    client: Arc<Client>,
}

impl ElectionService {
    /// An Election service over `ctx`; campaigners and observers are woken through `hub`.
    pub fn new(ctx: Ctx, hub: Arc<Hub>) -> ElectionService {
        ElectionService {
            client: Client::new(ctx, hub),
        }
    }

    /// etcd `electionServer.session` for a request's `LeaderKey`: lease 0 grants a fresh 60 s
    /// lease (which Proclaim then attaches to the key), any other lease is used as given.
    /// etcd resolves this session for Resign too, so a lease-0 Resign also grants a lease.
    async fn leadership(&self, leader: Option<LeaderKey>) -> Result<Leadership, Status> {
        let leader = leader.ok_or_else(|| go_error(ERR_MISSING_LEADER_KEY))?;
        Ok(Leadership {
            lease: self.client.session(leader.lease).await?,
            key: leader.key,
            rev: leader.rev,
        })
    }
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    type ObserveStream = ObserveStream;

    /// etcd `electionServer.Campaign`: puts `name/<lease hex>` = value with the lease (lease 0:
    /// a fresh 60 s lease nobody keeps alive) and answers once it is the oldest key under
    /// `name/`, with the Txn's header and `LeaderKey{name, key, rev: create revision, lease}`.
    /// If the client goes away while waiting, the candidacy is resigned.
    ///
    /// # Errors
    /// Code Unknown, as etcd relays them: `etcdserver: requested lease not found` for an
    /// unknown lease, other KV errors.
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let name = request.get_ref().name.clone();
        check_auth(
            self.client.ctx(),
            &request,
            Need::Prefix {
                name: &name,
                write: true,
            },
        )?;
        let r = request.into_inner();
        let (header, l) = election::campaign(&self.client, &r.name, r.lease, r.value).await?;
        Ok(Response::new(CampaignResponse {
            header,
            leader: Some(LeaderKey {
                name: r.name,
                key: l.key,
                rev: l.rev,
                lease: l.lease,
            }),
        }))
    }

    /// etcd `electionServer.Proclaim`: overwrites the leader's value if `leader.key` still has
    /// create revision `leader.rev`.
    ///
    /// # Errors
    /// `"leader" field must be provided` and `election: not leader` (both Unknown, plain Go
    /// errors in etcd); KV errors (relayed as Unknown).
    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        if let Some(key) = request.get_ref().leader.as_ref().map(|l| l.key.clone()) {
            check_auth(self.client.ctx(), &request, Need::Key(&key))?;
        }
        let r = request.into_inner();
        let leadership = self.leadership(r.leader).await?;
        let header = election::proclaim(&self.client, &leadership, r.value).await?;
        Ok(Response::new(ProclaimResponse { header }))
    }

    /// etcd `electionServer.Leader`: the current leader's key-value.
    ///
    /// # Errors
    /// `election: no leader` (Unknown) when nobody campaigns; KV errors (relayed as Unknown).
    async fn leader(&self, request: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        let name = request.get_ref().name.clone();
        check_auth(
            self.client.ctx(),
            &request,
            Need::Prefix {
                name: &name,
                write: false,
            },
        )?;
        let (header, kv) = election::leader(&self.client, &request.into_inner().name).await?;
        Ok(Response::new(LeaderResponse { header, kv: Some(kv) }))
    }

    /// etcd `electionServer.Observe`: streams the leader's key-value now (or when the first
    /// leader appears) and on every proclamation and change of leader. The stream ends when the
    /// client goes away.
    async fn observe(&self, request: Request<LeaderRequest>) -> Result<Response<ObserveStream>, Status> {
        let name = request.get_ref().name.clone();
        check_auth(
            self.client.ctx(),
            &request,
            Need::Prefix {
                name: &name,
                write: false,
            },
        )?;
        let name = request.into_inner().name;
        let (tx, rx) = mpsc::channel(OBSERVE_BUFFER);
        let client = self.client.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = election::observe(&client, &name, &tx) => {}
                () = tx.closed() => {}
            }
        });
        let responses =
            ReceiverStream::new(rx).map(|(header, kv)| Ok(LeaderResponse { header, kv: Some(kv) }));
        Ok(Response::new(Box::pin(responses)))
    }

    /// etcd `electionServer.Resign`: deletes `leader.key` if it still has create revision
    /// `leader.rev`; resigning a lost leadership succeeds without a change.
    ///
    /// # Errors
    /// `"leader" field must be provided` (Unknown); KV errors (relayed as Unknown).
    async fn resign(&self, request: Request<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        if let Some(key) = request.get_ref().leader.as_ref().map(|l| l.key.clone()) {
            check_auth(self.client.ctx(), &request, Need::Key(&key))?;
        }
        let leadership = self.leadership(request.into_inner().leader).await?;
        let header = election::resign(&self.client, &leadership).await?;
        Ok(Response::new(ResignResponse { header }))
    }
}
