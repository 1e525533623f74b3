//! etcd's request semantics over one MVCC transaction (etcd `server/etcdserver/txn/txn.go`):
//! Range with sort/limit/filters, Put with prev_kv and ignore flags, DeleteRange, and Txn with
//! compares, nested transactions and up-front checks.
//!
//! Runs inside the apply path for writes and on the API side for read-only Txns, against a
//! [`WriteTxn`] that is committed (writes) or dropped (reads). Deterministic: no clock, no
//! randomness, no local config.

use std::cmp::Ordering;

use crate::error::Error;
use crate::mvcc::{KeyRange, RangeOptions, WriteTxn};
use crate::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse, compare, range_request, request_op,
    response_op,
};
use crate::proto::mvccpb::KeyValue;
use crate::types::{LeaseId, Revision};

/// Answers whether a lease exists (the lease issue plugs in the lessor; until then no lease
/// exists and every non-zero lease is `etcdserver: requested lease not found`).
pub trait LeaseLookup {
    /// Whether `id` names a live lease.
    fn exists(&self, id: LeaseId) -> bool;
}

/// The lease table before leases exist: empty.
pub struct NoLeases;

impl LeaseLookup for NoLeases {
    fn exists(&self, _id: LeaseId) -> bool {
        false
    }
}

fn header(revision: Revision) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision: revision.0,
        ..ResponseHeader::default()
    })
}

/// Executes a Range (etcd `executeRange`).
///
/// # Errors
/// `FutureRevision` / `Compacted` for the requested revision.
pub fn range(txn: &WriteTxn<'_>, r: &RangeRequest) -> Result<RangeResponse, Error> {
    let filtered = r.sort_order != range_request::SortOrder::None as i32
        || r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let requested_limit = usize::try_from(r.limit).unwrap_or(0);
    // Fetch one extra key to learn `more`; fetch everything when sorting or filtering.
    let limit = if filtered || requested_limit == 0 {
        0
    } else {
        requested_limit.saturating_add(1)
    };
    let opts = RangeOptions {
        limit,
        revision: r.revision,
        count_only: r.count_only,
    };
    crate::metrics::record::mvcc_range();
    let mut rr = txn.range(&KeyRange::new(&r.key, &r.range_end), opts)?;
    rr.kvs.retain(|kv| {
        !(r.max_mod_revision != 0 && kv.mod_revision > r.max_mod_revision
            || r.min_mod_revision != 0 && kv.mod_revision < r.min_mod_revision
            || r.max_create_revision != 0 && kv.create_revision > r.max_create_revision
            || r.min_create_revision != 0 && kv.create_revision < r.min_create_revision)
    });
    sort(&mut rr.kvs, r.sort_order, r.sort_target);
    let mut more = false;
    if requested_limit > 0 && rr.kvs.len() > requested_limit {
        rr.kvs.truncate(requested_limit);
        more = true;
    }
    if r.keys_only {
        for kv in &mut rr.kvs {
            kv.value = bytes::Bytes::new();
        }
    }
    Ok(RangeResponse {
        header: header(rr.revision),
        kvs: rr.kvs,
        more,
        count: rr.count,
    })
}

fn sort(kvs: &mut [KeyValue], order: i32, target: i32) {
    use range_request::{SortOrder, SortTarget};
    let target = SortTarget::try_from(target).unwrap_or(SortTarget::Key);
    let mut order = SortOrder::try_from(order).unwrap_or(SortOrder::None);
    // etcd: results are already key-ascending; sort ASCEND by default for non-key targets.
    if target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    } else if target == SortTarget::Key && order == SortOrder::Ascend {
        order = SortOrder::None;
    }
    let cmp = |a: &KeyValue, b: &KeyValue| -> Ordering {
        match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        }
    };
    // Stable sorts: Go's sort.Sort is an insertion sort for small inputs, which keeps ties in
    // key order for both directions.
    match order {
        SortOrder::Ascend => kvs.sort_by(cmp),
        SortOrder::Descend => kvs.sort_by(|a, b| cmp(b, a)),
        SortOrder::None => {}
    }
}

/// Executes a Put (etcd `put`).
///
/// # Errors
/// `LeaseNotFound` for an unknown lease; `KeyNotFound` for ignore_value/ignore_lease on a
/// missing key.
pub fn put(txn: &mut WriteTxn<'_>, p: &PutRequest, leases: &dyn LeaseLookup) -> Result<PutResponse, Error> {
    check_put(txn, p, leases)?;
    let prev = if p.ignore_value || p.ignore_lease || p.prev_kv {
        txn.get(&p.key)?
    } else {
        None
    };
    let (value, lease) = match &prev {
        Some(prev) => (
            if p.ignore_value {
                prev.value.clone()
            } else {
                p.value.clone()
            },
            if p.ignore_lease {
                LeaseId(prev.lease)
            } else {
                LeaseId(p.lease)
            },
        ),
        None => (p.value.clone(), LeaseId(p.lease)),
    };
    crate::metrics::record::mvcc_put(p.key.len() + value.len());
    let revision = txn.put(p.key.clone(), value, lease)?;
    Ok(PutResponse {
        header: header(revision),
        prev_kv: if p.prev_kv { prev } else { None },
    })
}

fn check_put(txn: &WriteTxn<'_>, p: &PutRequest, leases: &dyn LeaseLookup) -> Result<(), Error> {
    if p.lease != 0 && !leases.exists(LeaseId(p.lease)) {
        return Err(Error::LeaseNotFound);
    }
    if (p.ignore_value || p.ignore_lease) && txn.get(&p.key)?.is_none() {
        return Err(Error::KeyNotFound);
    }
    Ok(())
}

/// Executes a DeleteRange (etcd `deleteRange`).
///
/// # Errors
/// Storage failures only.
pub fn delete_range(txn: &mut WriteTxn<'_>, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, Error> {
    let range = KeyRange::new(&d.key, &d.range_end);
    let prev_kvs = if d.prev_kv {
        txn.range(&range, RangeOptions::default())?.kvs
    } else {
        Vec::new()
    };
    crate::metrics::record::mvcc_delete();
    let (deleted, revision) = txn.delete_range(&range)?;
    Ok(DeleteRangeResponse {
        header: header(revision),
        deleted,
        prev_kvs,
    })
}

/// Executes a Txn (etcd `Txn`): evaluates every compare of the taken path first, checks the
/// taken operations up front (so a failing one leaves nothing applied), then runs them in order.
/// The caller commits the transaction and sets the outer header's revision.
///
/// # Errors
/// The first error of the up-front checks or of execution; the caller discards the transaction.
pub fn txn(txn: &mut WriteTxn<'_>, rt: &TxnRequest, leases: &dyn LeaseLookup) -> Result<TxnResponse, Error> {
    let mut path = Vec::new();
    compare_to_path(txn, rt, &mut path)?;
    check_txn(txn, rt, &path, &mut 0, leases)?;
    crate::metrics::record::mvcc_txn(rt, &path);
    execute_txn(txn, rt, &path, &mut 0, leases)
}

fn compare_to_path(txn: &WriteTxn<'_>, rt: &TxnRequest, path: &mut Vec<bool>) -> Result<(), Error> {
    let mut ok = true;
    for c in &rt.compare {
        if !apply_compare(txn, c)? {
            ok = false;
            break;
        }
    }
    path.push(ok);
    for op in branch(rt, ok) {
        if let Some(request_op::Request::RequestTxn(nested)) = &op.request {
            compare_to_path(txn, nested, path)?;
        }
    }
    Ok(())
}

fn branch(rt: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded { &rt.success } else { &rt.failure }
}

/// Evaluates one compare (etcd `applyCompare`): every key of the compare's range must satisfy
/// it; an empty range compares a zero KeyValue, except VALUE compares, which then fail.
///
/// # Errors
/// Storage failures only (a compare never reports compaction).
pub fn apply_compare(txn: &WriteTxn<'_>, c: &Compare) -> Result<bool, Error> {
    crate::metrics::record::mvcc_range();
    let rr = match txn.range(&KeyRange::new(&c.key, &c.range_end), RangeOptions::default()) {
        Ok(rr) => rr,
        Err(Error::Compacted | Error::FutureRevision) => return Ok(false),
        Err(e) => return Err(e),
    };
    if rr.kvs.is_empty() {
        if c.target == compare::CompareTarget::Value as i32 {
            return Ok(false);
        }
        return Ok(compare_kv(c, &KeyValue::default()));
    }
    Ok(rr.kvs.iter().all(|kv| compare_kv(c, kv)))
}

/// Compares one KeyValue against a compare's target (etcd `compareKV`). A target union of the
/// wrong kind compares against zero / empty, as in etcd.
pub fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    let ordering = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => {
            let v: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_ref().cmp(v)
        }
        Ok(CompareTarget::Create) => kv.create_revision.cmp(&int_target(c, |t| match t {
            TargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Mod) => kv.mod_revision.cmp(&int_target(c, |t| match t {
            TargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Version) => kv.version.cmp(&int_target(c, |t| match t {
            TargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        Ok(CompareTarget::Lease) => kv.lease.cmp(&int_target(c, |t| match t {
            TargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
        Err(_) => Ordering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ordering == Ordering::Equal,
        Ok(CompareResult::NotEqual) => ordering != Ordering::Equal,
        Ok(CompareResult::Greater) => ordering == Ordering::Greater,
        Ok(CompareResult::Less) => ordering == Ordering::Less,
        Err(_) => true,
    }
}

fn int_target(c: &Compare, pick: impl Fn(&compare::TargetUnion) -> Option<i64>) -> i64 {
    c.target_union.as_ref().and_then(pick).unwrap_or(0)
}

fn check_txn(
    txn: &WriteTxn<'_>,
    rt: &TxnRequest,
    path: &[bool],
    at: &mut usize,
    leases: &dyn LeaseLookup,
) -> Result<(), Error> {
    let succeeded = path.get(*at).copied().unwrap_or(false);
    *at += 1;
    for op in branch(rt, succeeded) {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) => {
                let current = txn.view_revision();
                if r.revision > current.0 {
                    return Err(Error::FutureRevision);
                }
                // etcd checkRequestRange: any non-zero revision below the compaction fails,
                // negative ones included.
                if r.revision != 0 && r.revision < txn.compact_revision().0 {
                    return Err(Error::Compacted);
                }
            }
            Some(request_op::Request::RequestPut(p)) => check_put(txn, p, leases)?,
            Some(request_op::Request::RequestTxn(nested)) => check_txn(txn, nested, path, at, leases)?,
            Some(request_op::Request::RequestDeleteRange(_)) | None => {}
        }
    }
    Ok(())
}

fn execute_txn(
    txn: &mut WriteTxn<'_>,
    rt: &TxnRequest,
    path: &[bool],
    at: &mut usize,
    leases: &dyn LeaseLookup,
) -> Result<TxnResponse, Error> {
    let succeeded = path.get(*at).copied().unwrap_or(false);
    *at += 1;
    let mut responses = Vec::new();
    for op in branch(rt, succeeded) {
        let response = match &op.request {
            Some(request_op::Request::RequestRange(r)) => {
                response_op::Response::ResponseRange(range(txn, r)?)
            }
            Some(request_op::Request::RequestPut(p)) => {
                response_op::Response::ResponsePut(put(txn, p, leases)?)
            }
            Some(request_op::Request::RequestDeleteRange(d)) => {
                response_op::Response::ResponseDeleteRange(delete_range(txn, d)?)
            }
            Some(request_op::Request::RequestTxn(nested)) => {
                let mut resp = execute_txn(txn, nested, path, at, leases)?;
                resp.header = Some(ResponseHeader::default());
                response_op::Response::ResponseTxn(resp)
            }
            None => return Err(Error::KeyNotFound),
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    Ok(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}

/// Whether a Txn puts anything in any branch at any depth (etcd's quota `Cost > 0`).
pub fn txn_puts(rt: &TxnRequest) -> bool {
    rt.success
        .iter()
        .chain(rt.failure.iter())
        .any(|op| match &op.request {
            Some(request_op::Request::RequestPut(_)) => true,
            Some(request_op::Request::RequestTxn(nested)) => txn_puts(nested),
            _ => false,
        })
}

/// Whether a Txn only reads, in every branch at every depth (etcd `IsTxnReadonly`); such a Txn
/// is served without raft.
pub fn is_txn_read_only(rt: &TxnRequest) -> bool {
    rt.success
        .iter()
        .chain(rt.failure.iter())
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(_)) => true,
            Some(request_op::Request::RequestTxn(nested)) => is_txn_read_only(nested),
            _ => false,
        })
}

/// Whether a read-only Txn asks only for serializable Ranges (etcd `IsTxnSerializable`).
pub fn is_txn_serializable(rt: &TxnRequest) -> bool {
    rt.success
        .iter()
        .chain(rt.failure.iter())
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(r)) => r.serializable,
            Some(request_op::Request::RequestTxn(nested)) => is_txn_serializable(nested),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};

    fn kv(version: i64, create: i64, modr: i64, value: &str, lease: i64) -> KeyValue {
        KeyValue {
            key: "k".into(),
            create_revision: create,
            mod_revision: modr,
            version,
            value: value.to_string().into(),
            lease,
        }
    }

    fn cmp(target: CompareTarget, result: CompareResult, union: Option<TargetUnion>) -> Compare {
        Compare {
            result: result as i32,
            target: target as i32,
            key: "k".into(),
            target_union: union,
            range_end: Default::default(),
        }
    }

    #[test]
    fn integer_targets_compare_numerically() {
        let k = kv(3, 2, 5, "v", 0);
        assert!(compare_kv(
            &cmp(
                CompareTarget::Version,
                CompareResult::Equal,
                Some(TargetUnion::Version(3))
            ),
            &k
        ));
        assert!(compare_kv(
            &cmp(
                CompareTarget::Create,
                CompareResult::Less,
                Some(TargetUnion::CreateRevision(3))
            ),
            &k
        ));
        assert!(compare_kv(
            &cmp(
                CompareTarget::Mod,
                CompareResult::Greater,
                Some(TargetUnion::ModRevision(4))
            ),
            &k
        ));
        assert!(compare_kv(
            &cmp(
                CompareTarget::Lease,
                CompareResult::NotEqual,
                Some(TargetUnion::Lease(1))
            ),
            &k
        ));
    }

    #[test]
    fn values_compare_bytewise() {
        let k = kv(1, 1, 1, "b", 0);
        assert!(compare_kv(
            &cmp(
                CompareTarget::Value,
                CompareResult::Greater,
                Some(TargetUnion::Value("a".into()))
            ),
            &k
        ));
        assert!(compare_kv(
            &cmp(
                CompareTarget::Value,
                CompareResult::Less,
                Some(TargetUnion::Value("ba".into()))
            ),
            &k
        ));
    }

    #[test]
    fn a_mismatched_target_union_compares_against_zero() {
        // etcd compareKV: a MOD compare carrying a version union compares mod_revision with 0.
        let k = kv(1, 1, 7, "v", 0);
        assert!(compare_kv(
            &cmp(
                CompareTarget::Mod,
                CompareResult::Greater,
                Some(TargetUnion::Version(100))
            ),
            &k
        ));
    }

    #[test]
    fn the_zero_key_value_makes_create_if_absent_work() {
        assert!(compare_kv(
            &cmp(
                CompareTarget::Mod,
                CompareResult::Equal,
                Some(TargetUnion::ModRevision(0))
            ),
            &KeyValue::default()
        ));
    }

    #[test]
    fn read_only_detection_covers_nested_txns() {
        let range = RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest::default())),
        };
        let put = RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest::default())),
        };
        let nested = |op: RequestOp| RequestOp {
            request: Some(request_op::Request::RequestTxn(TxnRequest {
                success: vec![op],
                ..Default::default()
            })),
        };
        assert!(is_txn_read_only(&TxnRequest {
            success: vec![nested(range.clone())],
            ..Default::default()
        }));
        assert!(!is_txn_read_only(&TxnRequest {
            failure: vec![nested(put)],
            ..Default::default()
        }));
        assert!(!is_txn_serializable(&TxnRequest {
            success: vec![range],
            ..Default::default()
        }));
    }
}
