//! The KV service: Range, Put, DeleteRange, Txn, Compact (etcd `v3rpc/key.go`,
//! `etcdserver/v3_server.go`).

use tonic::{Request, Response, Status};

use super::{Ctx, validate};
use crate::apply::command::Command;
use crate::apply::ops::{self, NoLeases};
use crate::error::Error;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use crate::proto::mainstaypb::{apply_result, internal_request};
use crate::types::Revision;

/// The KV service.
pub struct KvService {
    ctx: Ctx,
}

impl KvService {
    /// A KV service over `ctx`.
    pub fn new(ctx: Ctx) -> KvService {
        KvService { ctx }
    }

    async fn propose(&self, request: internal_request::Request) -> Result<apply_result::Response, Error> {
        let command = Command::new(request);
        if command.encoded_len() as u64 > self.ctx.limits.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let result = self.ctx.raft.propose(command).await?;
        result
            .0
            .response
            .ok_or_else(|| Error::Internal("apply returned no response".into()))
    }

    async fn barrier(&self, serializable: bool) -> Result<(), Error> {
        if serializable {
            Ok(())
        } else {
            self.ctx.raft.read_barrier().await
        }
    }
}

fn unexpected() -> Status {
    Error::Internal("apply returned a response of another kind".into()).into()
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let r = request.into_inner();
        validate::range(&r)?;
        self.barrier(r.serializable).await?;
        let view = self.ctx.store.view();
        let mut resp = ops::range(&view, &r)?;
        resp.header = self.ctx.complete(resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let p = request.into_inner();
        validate::put(&p)?;
        match self.propose(internal_request::Request::Put(p)).await? {
            apply_result::Response::Put(mut resp) => {
                resp.header = self.ctx.complete(resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let d = request.into_inner();
        validate::delete_range(&d)?;
        match self.propose(internal_request::Request::DeleteRange(d)).await? {
            apply_result::Response::DeleteRange(mut resp) => {
                resp.header = self.ctx.complete(resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let t = request.into_inner();
        validate::txn(&t, self.ctx.limits.max_txn_ops)?;
        if ops::is_txn_read_only(&t) {
            // etcd serves read-only Txns locally after a ReadIndex barrier (v3_server.go Txn).
            self.barrier(ops::is_txn_serializable(&t)).await?;
            let mut view = self.ctx.store.view();
            let mut resp = ops::txn(&mut view, &t, &NoLeases)?;
            resp.header = self.ctx.header(view.view_revision());
            return Ok(Response::new(resp));
        }
        match self.propose(internal_request::Request::Txn(t)).await? {
            apply_result::Response::Txn(mut resp) => {
                resp.header = self.ctx.complete(resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let c = request.into_inner();
        let physical = c.physical;
        let at = Revision(c.revision);
        match self.propose(internal_request::Request::Compaction(c)).await? {
            apply_result::Response::Compaction(mut resp) => {
                if physical {
                    self.ctx.store.wait_compacted(at).await;
                }
                resp.header = self.ctx.complete(resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(unexpected()),
        }
    }
}
