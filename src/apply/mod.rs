//! The apply path: decodes a committed [`Command`] and runs it against the MVCC store in one
//! write transaction, committing the result together with the applied log id.
//!
//! Deterministic: everything comes from the log entry and the replicated state (no clock, no
//! randomness, no node-local config), so every member computes the same store and answers.

pub mod auth;
pub mod command;
pub mod ops;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use self::command::{COMMAND_FORMAT, Command, Response};
use self::ops::LeaseLookup;
use crate::alarm::Alarms;
use crate::auth::Auth;
use crate::error::{Error, StorageError};
use crate::lease::Lessor;
use crate::lease::lessor::{lease_key, lease_record};
use crate::mvcc::{ApplyBatch, KeyRange, Store};
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::{
    AlarmResponse, AlarmType, CompactionResponse, LeaseCheckpointRequest, LeaseCheckpointResponse,
    LeaseGrantResponse, LeaseRevokeResponse, ResponseHeader,
};
use crate::proto::mainstaypb::{ApplyErrorCode, ApplyResult, apply_result, internal_request};
use crate::storage::schema;
use crate::types::{LeaseId, Revision};

/// Applies commands to the store and the lease table.
pub struct Applier {
    store: Arc<Store>,
    lessor: Arc<Lessor>,
    alarms: Arc<Alarms>,
    auth: Arc<Auth>,
    /// Raft index of the entry being applied (simple tokens end with it).
    index: AtomicU64,
}

impl Applier {
    /// An applier over `store`, `lessor` and `alarms`.
    pub fn new(store: Arc<Store>, lessor: Arc<Lessor>, alarms: Arc<Alarms>) -> Applier {
        Applier {
            store,
            lessor,
            alarms,
            auth: Arc::new(Auth::default()),
            index: AtomicU64::new(0),
        }
    }

    /// The applier with `auth` as its auth store (loaded from storage at start-up).
    #[must_use]
    pub fn with_auth(mut self, auth: Arc<Auth>) -> Applier {
        self.auth = auth;
        self
    }

    /// The auth store this applier keeps.
    pub fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }

    /// Records the raft index of the entry about to be applied.
    pub fn set_index(&self, index: u64) {
        self.index.store(index, Ordering::Relaxed);
    }

    /// The alarm table this applier keeps.
    pub fn alarms(&self) -> &Arc<Alarms> {
        &self.alarms
    }

    /// The store this applier writes.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The lease table this applier keeps.
    pub fn lessor(&self) -> &Arc<Lessor> {
        &self.lessor
    }

    /// Applies one command, staging its changes into `batch` (the caller commits the batch with
    /// the applied log id). Request-level failures — etcd errors decided by the replicated
    /// state, such as `key not found` for ignore_value on a missing key — are returned inside
    /// the [`Response`] and stage nothing.
    ///
    /// # Errors
    /// Storage failures only; they are fatal for the member.
    pub fn apply(&self, command: &Command, batch: &mut ApplyBatch<'_>) -> Result<Response, StorageError> {
        if command.0.format == COMMAND_FORMAT
            && let Some(code) = self.stale_auth(command)
        {
            return Ok(Response(ApplyResult {
                error: code as i32,
                response: None,
            }));
        }
        if let (COMMAND_FORMAT, Some(request)) = (command.0.format, &command.0.request)
            && let Some(result) = self.apply_auth(request, batch)
        {
            return Ok(Response(result));
        }
        if let (COMMAND_FORMAT, Some(internal_request::Request::LeaseRevokeBatch(b))) =
            (command.0.format, &command.0.request)
        {
            return Ok(Response(self.revoke_batch(&b.ids, batch)));
        }
        if let (COMMAND_FORMAT, Some(internal_request::Request::LeaseCheckpoint(c))) =
            (command.0.format, &command.0.request)
        {
            return Ok(Response(self.checkpoint(c, batch)));
        }
        let mut txn = self.store.write();
        let outcome = match (command.0.format, &command.0.request) {
            (COMMAND_FORMAT, Some(request)) => self.dispatch(&mut txn, request)?,
            (COMMAND_FORMAT, None) => Err(ApplyErrorCode::EmptyCommand),
            _ => Err(ApplyErrorCode::UnknownCommandFormat),
        };
        let result = match outcome {
            Ok(mut response) => {
                let committed = txn.stage(batch);
                self.lessor.on_changes(&committed.changes);
                match (&mut response, &command.0.request) {
                    (apply_result::Response::Txn(t), _) => {
                        t.header = Some(ResponseHeader {
                            revision: committed.revision.0,
                            ..Default::default()
                        });
                    }
                    (_, Some(internal_request::Request::LeaseGrant(g))) => {
                        let id = LeaseId(g.id);
                        batch.put_lease(lease_key(id), lease_record(id, g.ttl, 0));
                        self.lessor.grant(id, g.ttl);
                    }
                    (apply_result::Response::Alarm(_), _) => {
                        batch.put_meta(schema::META_ALARMS, self.alarms.encoded());
                    }
                    (
                        apply_result::Response::LeaseRevoke(r),
                        Some(internal_request::Request::LeaseRevoke(req)),
                    ) => {
                        r.header = Some(ResponseHeader {
                            revision: committed.revision.0,
                            ..Default::default()
                        });
                        let id = LeaseId(req.id);
                        batch.remove_lease(lease_key(id));
                        self.lessor.remove(id);
                    }
                    _ => {}
                }
                ApplyResult {
                    error: ApplyErrorCode::ApplyOk as i32,
                    response: Some(response),
                }
            }
            Err(code) => ApplyResult {
                error: code as i32,
                response: None,
            },
        };
        Ok(Response(result))
    }

    fn dispatch(
        &self,
        txn: &mut crate::mvcc::WriteTxn<'_>,
        request: &internal_request::Request,
    ) -> Result<Result<apply_result::Response, ApplyErrorCode>, StorageError> {
        let leases: &dyn LeaseLookup = self.lessor.as_ref();
        if let Some(code) = self.gate(request) {
            return Ok(Err(code));
        }
        let result = match request {
            internal_request::Request::Alarm(a) => {
                let changed = match AlarmAction::try_from(a.action) {
                    Ok(AlarmAction::Activate) => self.alarms.activate(a.member_id, a.alarm),
                    Ok(AlarmAction::Deactivate) => self.alarms.deactivate(a.member_id, a.alarm),
                    _ => None,
                };
                let header = Some(ResponseHeader {
                    revision: txn.begin_revision().0,
                    ..Default::default()
                });
                Ok(apply_result::Response::Alarm(AlarmResponse {
                    header,
                    alarms: changed.into_iter().collect(),
                }))
            }
            internal_request::Request::Put(p) => ops::put(txn, p, leases).map(apply_result::Response::Put),
            internal_request::Request::DeleteRange(d) => {
                ops::delete_range(txn, d).map(apply_result::Response::DeleteRange)
            }
            internal_request::Request::Txn(t) => ops::txn(txn, t, leases).map(apply_result::Response::Txn),
            internal_request::Request::Compaction(c) => txn.compact(Revision(c.revision)).map(|()| {
                let header = Some(ResponseHeader {
                    revision: txn.begin_revision().0,
                    ..Default::default()
                });
                apply_result::Response::Compaction(CompactionResponse { header })
            }),
            internal_request::Request::LeaseGrant(g) => {
                if leases.exists(LeaseId(g.id)) {
                    Err(Error::LeaseExists)
                } else {
                    let header = Some(ResponseHeader {
                        revision: txn.begin_revision().0,
                        ..Default::default()
                    });
                    Ok(apply_result::Response::LeaseGrant(LeaseGrantResponse {
                        header,
                        id: g.id,
                        ttl: g.ttl,
                        error: String::new(),
                    }))
                }
            }
            internal_request::Request::LeaseRevokeBatch(_)
            | internal_request::Request::LeaseCheckpoint(_)
            | internal_request::Request::AuthEnable(_)
            | internal_request::Request::AuthDisable(_)
            | internal_request::Request::Authenticate(_)
            | internal_request::Request::AuthUserAdd(_)
            | internal_request::Request::AuthUserDelete(_)
            | internal_request::Request::AuthUserChangePassword(_)
            | internal_request::Request::AuthUserGrantRole(_)
            | internal_request::Request::AuthUserRevokeRole(_)
            | internal_request::Request::AuthRoleAdd(_)
            | internal_request::Request::AuthRoleDelete(_)
            | internal_request::Request::AuthRoleGrantPermission(_)
            | internal_request::Request::AuthRoleRevokePermission(_) => {
                return Ok(Err(ApplyErrorCode::EmptyCommand));
            }
            internal_request::Request::LeaseRevoke(r) => match self.lessor.keys(LeaseId(r.id)) {
                None => Err(Error::LeaseNotFound),
                // etcd: all attached keys go in one write transaction, in key order.
                Some(keys) => keys
                    .into_iter()
                    .try_for_each(|k| txn.delete_range(&KeyRange::Single(k.to_vec())).map(|_| ()))
                    .map(|()| apply_result::Response::LeaseRevoke(LeaseRevokeResponse { header: None })),
            },
        };
        match result {
            Ok(r) => Ok(Ok(r)),
            Err(e) => error_code(&e)
                .map(Err)
                .ok_or_else(|| StorageError::Corrupt(format!("apply failed: {e}"))),
        }
    }
}

impl Applier {
    /// Revokes expired leases, each in its own write transaction (one revision per lease that
    /// holds keys, its keys deleted in key order), skipping leases already gone.
    fn revoke_batch(&self, ids: &[i64], batch: &mut ApplyBatch<'_>) -> ApplyResult {
        if self.alarms.is_active(AlarmType::Corrupt) {
            return ApplyResult {
                error: ApplyErrorCode::Corrupt as i32,
                response: None,
            };
        }
        let mut revoked = 0u64;
        for &raw in ids {
            let id = LeaseId(raw);
            let Some(keys) = self.lessor.keys(id) else {
                continue;
            };
            let mut txn = self.store.write();
            for k in keys {
                // A delete cannot fail on a key the lessor holds; storage errors surface later
                // through the batch commit.
                if txn.delete_range(&KeyRange::Single(k.to_vec())).is_err() {
                    break;
                }
            }
            let committed = txn.stage(batch);
            self.lessor.on_changes(&committed.changes);
            batch.remove_lease(lease_key(id));
            self.lessor.remove(id);
            revoked += 1;
        }
        ApplyResult {
            error: ApplyErrorCode::ApplyOk as i32,
            response: Some(apply_result::Response::LeasesRevoked(revoked)),
        }
    }

    /// Records checkpointed remaining TTLs and persists them in the lease records (etcd
    /// `applierV3.LeaseCheckpoint`; persisted always, as etcd 3.6 does). No revision changes;
    /// unknown leases are skipped.
    fn checkpoint(&self, request: &LeaseCheckpointRequest, batch: &mut ApplyBatch<'_>) -> ApplyResult {
        for cp in &request.checkpoints {
            let id = LeaseId(cp.id);
            if let Some(ttl) = self.lessor.checkpoint(id, cp.remaining_ttl) {
                batch.put_lease(lease_key(id), lease_record(id, ttl, cp.remaining_ttl.max(0)));
            }
        }
        ApplyResult {
            error: ApplyErrorCode::ApplyOk as i32,
            response: Some(apply_result::Response::LeaseCheckpoint(
                LeaseCheckpointResponse::default(),
            )),
        }
    }

    /// etcd's capped and corrupt appliers: while NOSPACE is raised, Put, Txns that put and
    /// LeaseGrant fail with `database space exceeded`; while CORRUPT is raised, every KV and lease
    /// write fails with `corrupt cluster`. Alarm requests always pass.
    fn gate(&self, request: &internal_request::Request) -> Option<ApplyErrorCode> {
        use internal_request::Request as R;
        if matches!(request, R::Alarm(_)) {
            return None;
        }
        if self.alarms.is_active(AlarmType::Corrupt) {
            return Some(ApplyErrorCode::Corrupt);
        }
        let costs_space = match request {
            R::Put(_) | R::LeaseGrant(_) => true,
            R::Txn(t) => ops::txn_puts(t),
            _ => false,
        };
        (costs_space && self.alarms.is_active(AlarmType::Nospace)).then_some(ApplyErrorCode::NoSpace)
    }
}

/// The apply error code of a request error decided by the replicated state; `None` for
/// failures that are not request errors (storage), which stop the member instead.
fn error_code(e: &Error) -> Option<ApplyErrorCode> {
    match e {
        Error::KeyNotFound => Some(ApplyErrorCode::KeyNotFound),
        Error::Compacted => Some(ApplyErrorCode::Compacted),
        Error::FutureRevision => Some(ApplyErrorCode::FutureRevision),
        Error::LeaseNotFound => Some(ApplyErrorCode::LeaseNotFound),
        Error::LeaseExists => Some(ApplyErrorCode::LeaseExists),
        Error::NoSpace => Some(ApplyErrorCode::NoSpace),
        Error::Corrupt => Some(ApplyErrorCode::Corrupt),
        e => auth::error_code(e),
    }
}

/// Converts an apply error code back into the request error it stands for.
pub fn code_to_error(code: i32) -> Option<Error> {
    match ApplyErrorCode::try_from(code).ok()? {
        ApplyErrorCode::ApplyOk => None,
        ApplyErrorCode::KeyNotFound => Some(Error::KeyNotFound),
        ApplyErrorCode::Compacted => Some(Error::Compacted),
        ApplyErrorCode::FutureRevision => Some(Error::FutureRevision),
        ApplyErrorCode::LeaseNotFound => Some(Error::LeaseNotFound),
        ApplyErrorCode::LeaseExists => Some(Error::LeaseExists),
        ApplyErrorCode::NoSpace => Some(Error::NoSpace),
        ApplyErrorCode::Corrupt => Some(Error::Corrupt),
        ApplyErrorCode::UnknownCommandFormat => Some(Error::Internal(
            "command written by a newer Mainstay format".into(),
        )),
        ApplyErrorCode::EmptyCommand => Some(Error::Internal("empty or failed command".into())),
        auth_code => auth::code_error(auth_code),
    }
}

#[cfg(test)]
#[path = "robustness_test.rs"]
mod robustness_test;
