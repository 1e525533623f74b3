//! `lease-keepalive` (etcd `cmd/lease.go`): each client grants one lease with a 100 s TTL,
//! then renews it `--total / --clients` times. etcd's tool calls `KeepAliveOnce`, which opens
//! a new LeaseKeepAlive stream per renewal; here each client keeps one stream open and
//! sends one request per answer, as clientv3's `KeepAlive` (and so Kubernetes) uses it.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

use super::error::BenchError;
use super::runner::Worker;
use crate::config::limits::{BENCH_LEASE_TTL_SECS, BENCH_STREAM_BUFFER};
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse};

/// One client's keep-alive stream and lease.
pub struct KeepAliveWorker {
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    rx: Streaming<LeaseKeepAliveResponse>,
    id: i64,
}

impl KeepAliveWorker {
    /// Grants a lease and opens its keep-alive stream (one unmeasured renewal: a gRPC server
    /// sends the stream's headers with its first answer).
    pub async fn open(ch: Channel) -> Result<KeepAliveWorker, BenchError> {
        let mut client = LeaseClient::new(ch);
        let id = client
            .lease_grant(LeaseGrantRequest {
                ttl: BENCH_LEASE_TTL_SECS,
                id: 0,
            })
            .await
            .map_err(|status| BenchError::Setup {
                what: "lease grant",
                status,
            })?
            .into_inner()
            .id;
        let (tx, rx) = mpsc::channel(BENCH_STREAM_BUFFER);
        let setup = |status| BenchError::Setup {
            what: "lease keep-alive stream",
            status,
        };
        tx.send(LeaseKeepAliveRequest { id })
            .await
            .map_err(|_| setup(tonic::Status::cancelled("stream closed")))?;
        let mut rx = client
            .lease_keep_alive(ReceiverStream::new(rx))
            .await
            .map_err(setup)?
            .into_inner();
        rx.message().await.map_err(setup)?;
        Ok(KeepAliveWorker { tx, rx, id })
    }
}

impl Worker for KeepAliveWorker {
    async fn call(&mut self, _i: usize) -> (usize, Result<(), tonic::Status>) {
        if self.tx.send(LeaseKeepAliveRequest { id: self.id }).await.is_err() {
            return (0, Err(tonic::Status::unavailable("keep-alive stream closed")));
        }
        let res = match self.rx.message().await {
            Ok(Some(r)) if r.ttl > 0 => Ok(()),
            Ok(Some(_)) => Err(tonic::Status::not_found("etcdserver: requested lease not found")),
            Ok(None) => Err(tonic::Status::unavailable("keep-alive stream ended")),
            Err(e) => Err(e),
        };
        (0, res)
    }
}

/// The client loops of `lease-keepalive`.
pub async fn workers(conns: &[Channel], clients: usize) -> Result<Vec<KeepAliveWorker>, BenchError> {
    let opens = (0..clients.max(1)).map(|c| KeepAliveWorker::open(conns[c % conns.len()].clone()));
    futures::future::try_join_all(opens).await
}
