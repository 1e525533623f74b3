//! The KV service: Range, Put, DeleteRange, Txn, Compact (etcd `v3rpc/key.go`,
//! `etcdserver/v3_server.go`).

use tonic::{Request, Response, Status};

use super::maintenance::{check_quota, request_size};
use super::{Ctx, validate};
use crate::apply::command::Command;
use crate::apply::ops::{self, NoLeases};
use crate::auth::Identity;
use crate::error::Error;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
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

    /// Proposes `request` and returns the apply response `pick` expects, its header completed.
    async fn write<T>(
        &self,
        who: &Identity,
        request: internal_request::Request,
        pick: impl FnOnce(apply_result::Response) -> Option<T>,
        header: impl FnOnce(&mut T) -> &mut Option<ResponseHeader>,
    ) -> Result<T, Status> {
        let command = Command::new(request).with_auth(self.ctx.applier.auth().stamp(who));
        if command.encoded_len() as u64 > self.ctx.limits.max_request_bytes {
            return Err(Error::RequestTooLarge.into());
        }
        let result = self.ctx.raft.propose(command).await?;
        let mut resp = result
            .0
            .response
            .and_then(pick)
            .ok_or_else(|| Error::Internal("apply returned no response of the expected kind".into()))?;
        let h = header(&mut resp);
        *h = self.ctx.complete(h.take());
        Ok(resp)
    }

    async fn barrier(&self, serializable: bool) -> Result<(), Error> {
        if serializable {
            Ok(())
        } else {
            self.ctx.raft.read_barrier().await
        }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let who = self.ctx.applier.auth().identity(&request)?;
        let r = request.into_inner();
        validate::range(&r)?;
        self.barrier(r.serializable).await?;
        self.ctx.applier.auth().check_range_request(&who, &r)?;
        let view = self.ctx.store.view();
        let mut resp = ops::range(&view, &r)?;
        resp.header = self.ctx.complete(resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let who = self.ctx.applier.auth().identity(&request)?;
        let p = request.into_inner();
        validate::put(&p)?;
        let lease_keys = if p.lease != 0 && self.ctx.applier.auth().enabled() {
            self.ctx
                .applier
                .lessor()
                .keys(crate::types::LeaseId(p.lease))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        self.ctx.applier.auth().check_put(&who, &p, &lease_keys)?;
        check_quota(&self.ctx, request_size(&p)).await?;
        let resp = self
            .write(
                &who,
                internal_request::Request::Put(p),
                |r| match r {
                    apply_result::Response::Put(x) => Some(x),
                    _ => None,
                },
                |x| &mut x.header,
            )
            .await?;
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let who = self.ctx.applier.auth().identity(&request)?;
        let d = request.into_inner();
        validate::delete_range(&d)?;
        self.ctx.applier.auth().check_delete(&who, &d)?;
        let resp = self
            .write(
                &who,
                internal_request::Request::DeleteRange(d),
                |r| match r {
                    apply_result::Response::DeleteRange(x) => Some(x),
                    _ => None,
                },
                |x| &mut x.header,
            )
            .await?;
        Ok(Response::new(resp))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let who = self.ctx.applier.auth().identity(&request)?;
        let t = request.into_inner();
        validate::txn(&t, self.ctx.limits.max_txn_ops)?;
        self.ctx.applier.auth().check_txn(&who, &t)?;
        if ops::txn_puts(&t) {
            check_quota(&self.ctx, request_size(&t)).await?;
        }
        if ops::is_txn_read_only(&t) {
            // etcd serves read-only Txns locally after a ReadIndex barrier (v3_server.go Txn).
            self.barrier(ops::is_txn_serializable(&t)).await?;
            let mut view = self.ctx.store.view();
            let mut resp = ops::txn(&mut view, &t, &NoLeases)?;
            resp.header = self.ctx.header(view.view_revision());
            return Ok(Response::new(resp));
        }
        let resp = self
            .write(
                &who,
                internal_request::Request::Txn(t),
                |r| match r {
                    apply_result::Response::Txn(x) => Some(x),
                    _ => None,
                },
                |x| &mut x.header,
            )
            .await?;
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let who = self.ctx.applier.auth().identity(&request)?;
        self.ctx.applier.auth().check_admin(&who)?;
        let c = request.into_inner();
        let physical = c.physical;
        let at = Revision(c.revision);
        let resp = self
            .write(
                &who,
                internal_request::Request::Compaction(c),
                |r| match r {
                    apply_result::Response::Compaction(x) => Some(x),
                    _ => None,
                },
                |x| &mut x.header,
            )
            .await?;
        if physical {
            self.ctx.store.wait_compacted(at).await;
        }
        Ok(Response::new(resp))
    }
}
