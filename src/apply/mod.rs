//! The apply path: decodes a committed [`Command`] and runs it against the MVCC store in one
//! write transaction, committing the result together with the applied log id.
//!
//! Deterministic: everything comes from the log entry and the replicated state (no clock, no
//! randomness, no node-local config), so every member computes the same store and answers.

pub mod command;
pub mod ops;

use std::sync::Arc;

use self::command::{COMMAND_FORMAT, Command, Response};
use self::ops::LeaseLookup;
use crate::error::{Error, StorageError};
use crate::mvcc::{ApplyBatch, Store};
use crate::proto::etcdserverpb::{CompactionResponse, ResponseHeader};
use crate::proto::mainstaypb::{ApplyErrorCode, ApplyResult, apply_result, internal_request};
use crate::types::Revision;

/// Applies commands to the store.
pub struct Applier {
    store: Arc<Store>,
    leases: Box<dyn LeaseLookup + Send + Sync>,
}

impl Applier {
    /// An applier over `store`, checking lease IDs against `leases`.
    pub fn new(store: Arc<Store>, leases: Box<dyn LeaseLookup + Send + Sync>) -> Applier {
        Applier { store, leases }
    }

    /// The store this applier writes.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Applies one command, staging its changes into `batch` (the caller commits the batch with
    /// the applied log id). Request-level failures — etcd errors decided by the replicated
    /// state, such as `key not found` for ignore_value on a missing key — are returned inside
    /// the [`Response`] and stage nothing.
    ///
    /// # Errors
    /// Storage failures only; they are fatal for the member.
    pub fn apply(&self, command: &Command, batch: &mut ApplyBatch<'_>) -> Result<Response, StorageError> {
        let mut txn = self.store.write();
        let outcome = match (command.0.format, &command.0.request) {
            (COMMAND_FORMAT, Some(request)) => self.dispatch(&mut txn, request)?,
            (COMMAND_FORMAT, None) => Err(ApplyErrorCode::EmptyCommand),
            _ => Err(ApplyErrorCode::UnknownCommandFormat),
        };
        let result = match outcome {
            Ok(mut response) => {
                let committed = txn.stage(batch);
                if let apply_result::Response::Txn(t) = &mut response {
                    t.header = Some(ResponseHeader {
                        revision: committed.revision.0,
                        ..Default::default()
                    });
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
        let leases = self.leases.as_ref();
        let result = match request {
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
        };
        match result {
            Ok(r) => Ok(Ok(r)),
            Err(e) => error_code(&e)
                .map(Err)
                .ok_or_else(|| StorageError::Corrupt(format!("apply failed: {e}"))),
        }
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
        _ => None,
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
        ApplyErrorCode::UnknownCommandFormat => Some(Error::Internal(
            "command written by a newer Mainstay format".into(),
        )),
        ApplyErrorCode::EmptyCommand => Some(Error::Internal("empty or failed command".into())),
    }
}

#[cfg(test)]
#[path = "robustness_test.rs"]
mod robustness_test;
