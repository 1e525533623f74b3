//! etcd's distributed mutex (`client/v3/concurrency/mutex.go`, 3.5 semantics), as the Lock
//! service's `Lock` runs it.
//!
//! Each contender owns the key `name/<lease in hex>`, attached to its lease; the contender whose
//! key has the lowest create revision holds the lock. A waiter watches only for the deletion of
//! the newest key created before its own, so each release wakes one waiter.

use std::sync::Arc;

use bytes::Bytes;
use tonic::Status;

use super::{
    Cleanup, Client, ERR_SESSION_EXPIRED, contender_key, create_revision_is, first_or_last_create, get,
    go_error, op_delete, op_put, op_range, prefix_of, range_kvs, revision_of,
};
use crate::proto::etcdserverpb::{ResponseHeader, TxnRequest, range_request};

/// A held lock.
#[derive(Debug, Clone)]
pub struct Locked {
    /// The contender key that exists for as long as the lock is held.
    pub key: Bytes,
    /// The header of the read that established ownership.
    pub header: Option<ResponseHeader>,
}

/// etcd `Mutex.Lock` on the session of `lease` (lease 0 grants a 60 s session lease, see
/// [`Client::session`]).
///
/// One Txn: if `name/<lease>` does not exist, put it (value "", with the lease), else read it
/// (the same lease locking again reuses its key); both branches also read the prefix's oldest
/// key. If that is ours the lock is held at once (header: the Txn's). Otherwise wait until every
/// key created before ours is deleted, then re-read our key: gone means the lease expired while
/// waiting (`session expired`), present means the lock is held (header: that read's).
///
/// If the wait fails, or the caller goes away while waiting, the key is deleted (etcd
/// `Unlock(client.Ctx())`).
///
/// # Errors
/// The KV service's errors (`etcdserver: requested lease not found` for an unknown lease),
/// `session expired` (Unknown).
pub async fn lock(client: &Arc<Client>, name: &[u8], lease: i64) -> Result<Locked, Status> {
    let lease = client.session(lease).await?;
    let prefix = prefix_of(name);
    let key = contender_key(&prefix, lease);
    let owner = || op_range(first_or_last_create(&prefix, range_request::SortOrder::Ascend));
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![op_put(&key, Bytes::new(), lease), owner()],
            failure: vec![op_range(get(&key)), owner()],
        })
        .await?;
    let my_rev = if resp.succeeded {
        revision_of(resp.header.as_ref())
    } else {
        range_kvs(&resp, 0)
            .first()
            .map_or_else(|| revision_of(resp.header.as_ref()), |kv| kv.create_revision)
    };
    match range_kvs(&resp, 1).first() {
        None => {
            return Ok(Locked {
                key,
                header: resp.header,
            });
        }
        Some(kv) if kv.create_revision == my_rev => {
            return Ok(Locked {
                key,
                header: resp.header,
            });
        }
        Some(_) => {}
    }
    let unlock = Cleanup::new(client.clone(), unlock_txn(&key));
    if let Err(e) = client.wait_deletes(&prefix, my_rev - 1).await {
        unlock.run().await;
        return Err(e);
    }
    // etcd 3.5: make sure the session is not expired and the owner key still exists.
    let mine = match client.range(get(&key)).await {
        Ok(r) => r,
        Err(e) => {
            unlock.run().await;
            return Err(e);
        }
    };
    unlock.disarm();
    if mine.kvs.is_empty() {
        return Err(go_error(ERR_SESSION_EXPIRED));
    }
    Ok(Locked {
        key,
        header: mine.header,
    })
}

/// etcd `Mutex.Unlock`: a plain delete of the key.
fn unlock_txn(key: &Bytes) -> TxnRequest {
    TxnRequest {
        compare: Vec::new(),
        success: vec![op_delete(key)],
        failure: Vec::new(),
    }
}
