//! The Lock service (etcd `server/etcdserver/api/v3lock/lock.go`): a distributed mutex per
//! name, run server-side by [`crate::concurrency::mutex`] over the server's own KV, Lease and
//! Watch, as etcd runs `clientv3/concurrency.Mutex` over its in-process client.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::Ctx;
use crate::concurrency::{Client, Need, check_auth, mutex};
use crate::proto::v3lockpb::lock_server::Lock;
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use crate::watch::Hub;

/// The Lock service.
pub struct LockService {
    client: Arc<Client>,
}

impl LockService {
    /// A Lock service over `ctx`; waiters are woken through `hub`.
    pub fn new(ctx: Ctx, hub: Arc<Hub>) -> LockService {
        LockService {
            client: Client::new(ctx, hub),
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    /// etcd `lockServer.Lock`: creates `name/<lease hex>` with the lease (lease 0: a fresh 60 s
    /// lease that nobody keeps alive) and answers once that key has the lowest create revision
    /// under `name/`, with `{header, key}`. Waits as long as it takes; if the client goes away
    /// first, the key is deleted.
    ///
    /// # Errors
    /// All code Unknown, as etcd relays them: `etcdserver: requested lease not found` for an
    /// unknown lease, `session expired` when the lease expired while waiting, other KV errors.
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
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
        let locked = mutex::lock(&self.client, &r.name, r.lease).await?;
        Ok(Response::new(LockResponse {
            header: locked.header,
            key: locked.key,
        }))
    }

    /// etcd `lockServer.Unlock`: deletes the key (no error when it is already gone).
    ///
    /// # Errors
    /// Code Unknown, as etcd relays them: `etcdserver: key is not provided` for an empty key,
    /// other KV errors.
    async fn unlock(&self, request: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        let key = request.get_ref().key.clone();
        check_auth(self.client.ctx(), &request, Need::Key(&key))?;
        let resp = self.client.delete(request.into_inner().key).await?;
        Ok(Response::new(UnlockResponse { header: resp.header }))
    }
}
