//! The peer transport, client side: openraft's network (append entries, votes, snapshots) and
//! the requests a follower hands to the leader (proposals, ReadIndex, lease clocks, member
//! attributes), all over one gRPC channel per peer on its `--peer-urls` (design.md §4).
//!
//! Payloads are postcard-encoded openraft and Mainstay types inside `mainstaypeerpb`
//! messages; [`PEER_FORMAT`] versions that encoding.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, RaftNetworkFactory, RaftNetworkV2};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

use super::types::{LogId, MemberNode, Snapshot, SnapshotData, SnapshotMeta, TypeConfig, Vote};
use crate::apply::command::{Command, Response};
use crate::config::limits::{PEER_CONNECT_TIMEOUT, PEER_KEEPALIVE_INTERVAL};
use crate::error::Error;
use crate::proto::mainstaypeerpb::PeerRequest;
use crate::proto::mainstaypeerpb::peer_client::PeerClient;
use crate::types::ClusterId;

/// Version of the payload encoding carried in `PeerRequest.format`.
pub const PEER_FORMAT: u32 = 1;

/// A request errors that crossed from the leader back to a follower (the subset of [`Error`]
/// that proposing or a ReadIndex can produce on the leader).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum RemoteError {
    /// `etcdserver: too many requests`.
    TooManyRequests,
    /// `etcdserver: no leader`.
    NoLeader,
    /// `etcdserver: not leader` (leadership moved while forwarding).
    NotLeader,
    /// `etcdserver: leader changed`.
    LeaderChanged,
    /// `etcdserver: server stopped`.
    Stopped,
    /// `etcdserver: request timed out`.
    Timeout,
    /// `etcdserver: member not found`.
    MemberNotFound,
    /// `etcdserver: member ID already exist`.
    MemberExists,
    /// `etcdserver: Peer URLs already exists`.
    PeerUrlExists,
    /// `etcdserver: can only promote a learner member`.
    MemberNotLearner,
    /// `etcdserver: can only promote a learner member which is in sync with leader`.
    LearnerNotReady,
    /// `etcdserver: too many learner members in cluster`.
    TooManyLearners,
    /// Anything else, as text.
    Other(String),
}

impl From<&Error> for RemoteError {
    fn from(e: &Error) -> RemoteError {
        match e {
            Error::TooManyRequests => RemoteError::TooManyRequests,
            Error::NoLeader => RemoteError::NoLeader,
            Error::NotLeader => RemoteError::NotLeader,
            Error::LeaderChanged => RemoteError::LeaderChanged,
            Error::Stopped => RemoteError::Stopped,
            Error::Timeout => RemoteError::Timeout,
            Error::MemberNotFound => RemoteError::MemberNotFound,
            Error::MemberExists => RemoteError::MemberExists,
            Error::PeerUrlExists => RemoteError::PeerUrlExists,
            Error::MemberNotLearner => RemoteError::MemberNotLearner,
            Error::LearnerNotReady => RemoteError::LearnerNotReady,
            Error::TooManyLearners => RemoteError::TooManyLearners,
            other => RemoteError::Other(other.to_string()),
        }
    }
}

impl From<RemoteError> for Error {
    fn from(e: RemoteError) -> Error {
        match e {
            RemoteError::TooManyRequests => Error::TooManyRequests,
            RemoteError::NoLeader => Error::NoLeader,
            RemoteError::NotLeader => Error::NotLeader,
            RemoteError::LeaderChanged => Error::LeaderChanged,
            RemoteError::Stopped => Error::Stopped,
            RemoteError::Timeout => Error::Timeout,
            RemoteError::MemberNotFound => Error::MemberNotFound,
            RemoteError::MemberExists => Error::MemberExists,
            RemoteError::PeerUrlExists => Error::PeerUrlExists,
            RemoteError::MemberNotLearner => Error::MemberNotLearner,
            RemoteError::LearnerNotReady => Error::LearnerNotReady,
            RemoteError::TooManyLearners => Error::TooManyLearners,
            RemoteError::Other(text) => Error::Internal(text),
        }
    }
}

/// A lease request answered by the leader, which alone keeps lease clocks (etcd forwards
/// LeaseKeepAlive and LeaseTimeToLive to the leader the same way).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum LeaseCall {
    /// Keep-alive: the granted TTL after renewal, 0 for an unknown lease.
    Renew(i64),
    /// Remaining and granted TTL in seconds and the attached keys; `None` for unknown.
    TimeToLive(i64),
}

/// The leader's answer to a [`LeaseCall`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// Granted TTL after a renewal, or 0 for an unknown lease.
    Renewed(i64),
    /// (remaining seconds, granted seconds, keys) or `None` for an unknown lease.
    TimeToLive(Option<(i64, i64, Vec<Vec<u8>>)>),
}

/// Encodes a peer payload.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(value).map_err(|e| format!("encoding a peer message: {e}"))
}

/// Decodes a peer payload.
///
/// # Errors
/// A payload that does not decode (corrupt or from an incompatible release).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("decoding a peer message: {e}"))
}

/// One gRPC channel per peer URL, shared by raft replication and forwarded requests.
#[derive(Clone)]
pub struct Peers {
    cluster_id: ClusterId,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Peers {
    /// Peers of the cluster `cluster_id`; `tls` connects to `https` peer URLs (the member's
    /// peer TLS, see `tls::peer_client`).
    pub fn new(cluster_id: ClusterId, tls: Option<Arc<rustls::ClientConfig>>) -> Peers {
        Peers {
            cluster_id,
            channels: Arc::new(Mutex::new(HashMap::new())),
            tls,
        }
    }

    fn client(&self, node: &MemberNode) -> Result<PeerClient<Channel>, String> {
        let url = node
            .peer_urls
            .first()
            .ok_or_else(|| format!("member {:?} has no peer URL", node.name))?;
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ch) = channels.get(url) {
            return Ok(PeerClient::new(ch.clone()).max_decoding_message_size(usize::MAX));
        }
        // tonic refuses `https` URIs without its own TLS; the TLS connector below does the
        // TLS, so tonic sees the address as `http`.
        let target = match url.strip_prefix("https://") {
            Some(rest) => format!("http://{rest}"),
            None => url.clone(),
        };
        let endpoint = Endpoint::from_shared(target)
            .map_err(|e| format!("peer URL {url}: {e}"))?
            .connect_timeout(PEER_CONNECT_TIMEOUT)
            .http2_keep_alive_interval(PEER_KEEPALIVE_INTERVAL)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        let channel = if url.starts_with("https://") {
            let tls = self.tls.clone().ok_or_else(|| {
                format!("peer URL {url} needs peer TLS (--peer-cert-file or --peer-auto-tls)")
            })?;
            endpoint.connect_with_connector_lazy(tls_connector(tls))
        } else {
            endpoint.connect_lazy()
        };
        channels.insert(url.clone(), channel.clone());
        Ok(PeerClient::new(channel).max_decoding_message_size(usize::MAX))
    }

    fn request(&self, payload: Vec<u8>) -> PeerRequest {
        PeerRequest {
            format: PEER_FORMAT,
            cluster_id: self.cluster_id.0,
            payload: payload.into(),
        }
    }

    /// Sends `command` to the leader `node` to propose; its apply result (which may carry
    /// a request error code) or the leader's error.
    ///
    /// # Errors
    /// The leader's error, or `NoLeader` when the leader cannot be reached.
    pub async fn propose(
        &self,
        node: &MemberNode,
        command: &Command,
        timeout: Duration,
    ) -> Result<Response, Error> {
        let payload = encode(command).map_err(Error::Internal)?;
        let mut client = self.client(node).map_err(Error::Internal)?;
        let call = client.propose(self.request(payload));
        let reply = forward_reply(tokio::time::timeout(timeout, call).await)?;
        decode::<Result<Response, RemoteError>>(&reply)
            .map_err(Error::Internal)?
            .map_err(Error::from)
    }

    /// Asks the leader `node` for a ReadIndex: the log id a follower must apply before a
    /// linearizable read.
    ///
    /// # Errors
    /// As [`Peers::propose`].
    pub async fn read_index(&self, node: &MemberNode, timeout: Duration) -> Result<LogId, Error> {
        let mut client = self.client(node).map_err(Error::Internal)?;
        let call = client.read_index(self.request(Vec::new()));
        let reply = forward_reply(tokio::time::timeout(timeout, call).await)?;
        decode::<Result<LogId, RemoteError>>(&reply)
            .map_err(Error::Internal)?
            .map_err(Error::from)
    }

    /// Sends a lease request to the leader `node`.
    ///
    /// # Errors
    /// As [`Peers::propose`].
    pub async fn lease(
        &self,
        node: &MemberNode,
        call: &LeaseCall,
        timeout: Duration,
    ) -> Result<LeaseAnswer, Error> {
        let payload = encode(call).map_err(Error::Internal)?;
        let mut client = self.client(node).map_err(Error::Internal)?;
        let rpc = client.lease(self.request(payload));
        let reply = forward_reply(tokio::time::timeout(timeout, rpc).await)?;
        decode::<Result<LeaseAnswer, RemoteError>>(&reply)
            .map_err(Error::Internal)?
            .map_err(Error::from)
    }

    /// Asks the leader `node` to carry out a membership change.
    ///
    /// # Errors
    /// As [`Peers::propose`].
    pub async fn reconfigure(
        &self,
        node: &MemberNode,
        change: &super::reconfig::MemberChange,
        timeout: Duration,
    ) -> Result<(), Error> {
        let payload = encode(change).map_err(Error::Internal)?;
        let mut client = self.client(node).map_err(Error::Internal)?;
        let rpc = client.reconfigure(self.request(payload));
        let reply = forward_reply(tokio::time::timeout(timeout, rpc).await)?;
        decode::<Result<(), RemoteError>>(&reply)
            .map_err(Error::Internal)?
            .map_err(Error::from)
    }

    /// Asks the leader `node` to record `member`'s attributes in the membership.
    ///
    /// # Errors
    /// As [`Peers::propose`].
    pub async fn publish(
        &self,
        node: &MemberNode,
        member: (u64, &MemberNode),
        timeout: Duration,
    ) -> Result<(), Error> {
        let payload = encode(&member).map_err(Error::Internal)?;
        let mut client = self.client(node).map_err(Error::Internal)?;
        let rpc = client.publish(self.request(payload));
        let reply = forward_reply(tokio::time::timeout(timeout, rpc).await)?;
        decode::<Result<(), RemoteError>>(&reply)
            .map_err(Error::Internal)?
            .map_err(Error::from)
    }
}

/// Connects to an `https` peer URL: TCP, then TLS with `tls` (ALPN h2).
fn tls_connector(
    tls: Arc<rustls::ClientConfig>,
) -> impl tower::Service<
    http::Uri,
    Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    Error = std::io::Error,
    Future = impl Future<
        Output = std::io::Result<
            hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        >,
    > + Send,
> + Clone {
    let connector = tokio_rustls::TlsConnector::from(tls);
    tower::service_fn(move |uri: http::Uri| {
        let connector = connector.clone();
        async move {
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other(format!("peer URL {uri} has no host")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(2380);
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| std::io::Error::other(format!("peer host name: {e}")))?;
            let stream = connector.connect(name, tcp).await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        }
    })
}

/// A forwarded call's payload; an unreachable or timed-out leader is "no leader" to the client,
/// as in etcd when a follower cannot reach the leader.
fn forward_reply(
    result: Result<
        Result<tonic::Response<crate::proto::mainstaypeerpb::PeerReply>, tonic::Status>,
        tokio::time::error::Elapsed,
    >,
) -> Result<Vec<u8>, Error> {
    match result {
        Err(_) => Err(Error::Timeout),
        Ok(Err(status)) => {
            tracing::debug!(error = %status, "forwarding to the leader failed");
            Err(Error::NoLeader)
        }
        Ok(Ok(reply)) => Ok(reply.into_inner().payload.to_vec()),
    }
}

/// openraft's network factory over [`Peers`].
pub struct PeerNetwork {
    peers: Peers,
}

impl PeerNetwork {
    /// A network over `peers`.
    pub fn new(peers: Peers) -> PeerNetwork {
        PeerNetwork { peers }
    }
}

/// openraft's connection to one peer.
pub struct PeerConnection {
    peers: Peers,
    node: MemberNode,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, _target: u64, node: &MemberNode) -> PeerConnection {
        PeerConnection {
            peers: self.peers.clone(),
            node: node.clone(),
        }
    }
}

fn unreachable(e: &str) -> Unreachable<TypeConfig> {
    Unreachable::new(&std::io::Error::other(e.to_owned()))
}

impl PeerConnection {
    async fn call(
        &self,
        rpc: Rpc,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RPCError<TypeConfig>> {
        let mut client = self
            .peers
            .client(&self.node)
            .map_err(|e| RPCError::Unreachable(unreachable(&e)))?;
        let request = self.peers.request(payload);
        let call = async {
            match rpc {
                Rpc::Append => client.append_entries(request).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::Snapshot => client.install_snapshot(request).await,
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(RPCError::Unreachable(unreachable("peer request timed out"))),
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                Err(RPCError::Unreachable(unreachable(&status.to_string())))
            }
            Ok(Err(status)) => Err(RPCError::Network(NetworkError::new(&std::io::Error::other(
                status.to_string(),
            )))),
            Ok(Ok(reply)) => Ok(reply.into_inner().payload.to_vec()),
        }
    }
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

fn network_error(e: &str) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(e.to_owned())))
}

impl RaftNetworkV2<TypeConfig> for PeerConnection {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let payload = encode(&rpc).map_err(|e| network_error(&e))?;
        let reply = self.call(Rpc::Append, payload, option.hard_ttl()).await?;
        decode(&reply).map_err(|e| network_error(&e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let payload = encode(&rpc).map_err(|e| network_error(&e))?;
        let reply = self.call(Rpc::Vote, payload, option.hard_ttl()).await?;
        decode(&reply).map_err(|e| network_error(&e))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let data = snapshot.snapshot.into_inner();
        let payload = encode(&(vote, snapshot.meta, data))
            .map_err(|e| StreamingError::Network(NetworkError::new(&std::io::Error::other(e))))?;
        let reply = self
            .call(Rpc::Snapshot, payload, option.hard_ttl())
            .await
            .map_err(|e| match e {
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                other => {
                    StreamingError::Network(NetworkError::new(&std::io::Error::other(other.to_string())))
                }
            })?;
        decode(&reply).map_err(|e| StreamingError::Network(NetworkError::new(&std::io::Error::other(e))))
    }
}

/// A snapshot as it crosses the wire: the sender's vote, the metadata and the image bytes.
pub type SnapshotTransfer = (Vote, SnapshotMeta, Vec<u8>);
