//! etcd's leader election (`client/v3/concurrency/election.go`), as the Election service runs
//! it.
//!
//! Candidates own `name/<lease in hex>` like mutex contenders; the key with the lowest create
//! revision is the leader, and its value is the leader's proclamation. A `LeaderKey` names one
//! leadership: its key and that key's create revision, so a Proclaim or Resign from a former
//! leader whose key was deleted (and perhaps re-created) never touches the new one.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tonic::Status;

use super::{
    Cleanup, Client, ERR_ELECTION_NO_LEADER, ERR_ELECTION_NOT_LEADER, contender_key, create_revision_is,
    first_or_last_create, get, go_error, op_delete, op_put, op_range, prefix_of, range_kvs, revision_of,
};
use crate::proto::etcdserverpb::{ResponseHeader, TxnRequest, range_request};
use crate::proto::mvccpb::KeyValue;
use crate::types::Revision;

/// One leadership: the leader key and its create revision (the wire `LeaderKey` minus the name).
#[derive(Debug, Clone)]
pub struct Leadership {
    /// The leader key, `name/<lease in hex>`.
    pub key: Bytes,
    /// The key's create revision.
    pub rev: i64,
    /// The lease attached to the key.
    pub lease: i64,
}

/// One observed proclamation: the current leader's key-value and a header at its revision.
pub type Proclamation = (Option<ResponseHeader>, KeyValue);

/// etcd `Election.Campaign` on the session of `lease` (lease 0 grants a 60 s session lease).
///
/// One Txn puts `name/<lease>` = `value` with the lease if it does not exist, else reads it
/// (campaigning again with the same lease resumes that candidacy, proclaiming `value` if the
/// stored one differs). Then waits until every key created before ours is deleted. The header is
/// the first Txn's, even after a wait, as in etcd.
///
/// If the caller goes away while waiting, the candidacy is resigned (etcd
/// `Resign(client.Ctx())` on context cancel); other wait failures leave the key in place.
///
/// # Errors
/// The KV service's errors; `election: not leader` (Unknown) when the re-proclamation of a
/// resumed candidacy loses a race with its key's deletion.
pub async fn campaign(
    client: &Arc<Client>,
    name: &[u8],
    lease: i64,
    value: Bytes,
) -> Result<(Option<ResponseHeader>, Leadership), Status> {
    let lease = client.session(lease).await?;
    let prefix = prefix_of(name);
    let key = contender_key(&prefix, lease);
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![op_put(&key, value.clone(), lease)],
            failure: vec![op_range(get(&key))],
        })
        .await?;
    let mut leadership = Leadership {
        key,
        rev: revision_of(resp.header.as_ref()),
        lease,
    };
    if !resp.succeeded
        && let Some(kv) = range_kvs(&resp, 0).first()
    {
        leadership.rev = kv.create_revision;
        if kv.value != value
            && let Err(e) = proclaim(client, &leadership, value).await
        {
            // etcd resigns and returns the Proclaim error.
            let _ = resign(client, &leadership).await;
            return Err(e);
        }
    }
    let resign_on_drop = Cleanup::new(client.clone(), resign_txn(&leadership));
    let waited = client.wait_deletes(&prefix, leadership.rev - 1).await;
    resign_on_drop.disarm();
    waited?;
    Ok((resp.header, leadership))
}

/// etcd `Election.Proclaim`: puts `value` on the leader key (with the leadership's lease) only
/// if the key still has the leadership's create revision. Returns the Txn's header.
///
/// # Errors
/// `election: not leader` (Unknown) when it does not; the KV service's errors.
pub async fn proclaim(
    client: &Arc<Client>,
    leadership: &Leadership,
    value: Bytes,
) -> Result<Option<ResponseHeader>, Status> {
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_revision_is(&leadership.key, leadership.rev)],
            success: vec![op_put(&leadership.key, value, leadership.lease)],
            failure: Vec::new(),
        })
        .await?;
    if !resp.succeeded {
        return Err(go_error(ERR_ELECTION_NOT_LEADER));
    }
    Ok(resp.header)
}

/// etcd `Election.Resign`: deletes the leader key if it still has the leadership's create
/// revision; resigning a leadership already lost is not an error. Returns the Txn's header.
///
/// # Errors
/// The KV service's errors.
pub async fn resign(client: &Arc<Client>, leadership: &Leadership) -> Result<Option<ResponseHeader>, Status> {
    Ok(client.txn(resign_txn(leadership)).await?.header)
}

fn resign_txn(leadership: &Leadership) -> TxnRequest {
    TxnRequest {
        compare: vec![create_revision_is(&leadership.key, leadership.rev)],
        success: vec![op_delete(&leadership.key)],
        failure: Vec::new(),
    }
}

/// etcd `Election.Leader`: the key under `name/` with the lowest create revision.
///
/// # Errors
/// `election: no leader` (Unknown) when there is none; the KV service's errors.
pub async fn leader(client: &Arc<Client>, name: &[u8]) -> Result<Proclamation, Status> {
    let prefix = prefix_of(name);
    let resp = client
        .range(first_or_last_create(&prefix, range_request::SortOrder::Ascend))
        .await?;
    match resp.kvs.into_iter().next() {
        Some(kv) => Ok((resp.header, kv)),
        None => Err(go_error(ERR_ELECTION_NO_LEADER)),
    }
}

/// etcd `Election.observe`: sends the current leader's key-value, then every later PUT of that
/// key (each proclamation), and when the key is deleted starts over with the next leader. With
/// no leader it waits for the first PUT under `name/` (whatever its create revision, as etcd
/// does). Runs until `out` is closed or a read or watch fails (etcd then closes the channel and
/// the Observe stream ends without an error).
pub async fn observe(client: &Arc<Client>, name: &[u8], out: &mpsc::Sender<Proclamation>) {
    let prefix = prefix_of(name);
    loop {
        let resp = match client
            .range(first_or_last_create(&prefix, range_request::SortOrder::Ascend))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e.message(), "election observe: read failed");
                return;
            }
        };
        let (header, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header, kv),
            None => {
                // Wait for the first put on the prefix, watching from the read's revision.
                let mut feed = client.feed(Revision(revision_of(resp.header.as_ref())));
                'first: loop {
                    let events = match feed.next().await {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::debug!(error = %e, "election observe: watch failed");
                            return;
                        }
                    };
                    for c in &events.changes {
                        if !c.tombstone && c.kv.key.starts_with(&prefix) {
                            break 'first (client.header(Revision(c.kv.mod_revision)), c.kv.clone());
                        }
                    }
                }
            }
        };
        let watched = kv.key.clone();
        let after = revision_of(header.as_ref());
        if out.send((header, kv)).await.is_err() {
            return;
        }
        let mut feed = client.feed(Revision(after + 1));
        'leader: loop {
            let events = match feed.next().await {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(error = %e, "election observe: watch failed");
                    return;
                }
            };
            for c in events.changes.iter().filter(|c| c.kv.key == watched) {
                if c.tombstone {
                    break 'leader;
                }
                if out
                    .send((client.header(events.revision), c.kv.clone()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}
