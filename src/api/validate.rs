//! Request checks done before proposing, as etcd's `v3rpc/key.go` does them (checkRangeRequest,
//! checkPutRequest, checkDeleteRequest, checkTxnRequest, checkIntervals).

use std::collections::HashSet;

use crate::error::Error;
use crate::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, range_request, request_op,
};

/// Checks a Range.
///
/// # Errors
/// `KeyNotProvided` for an empty key, `InvalidSortOption` for unknown sort enums (etcd 3.6).
pub fn range(r: &RangeRequest) -> Result<(), Error> {
    if r.key.is_empty() {
        return Err(Error::KeyNotProvided);
    }
    if range_request::SortOrder::try_from(r.sort_order).is_err()
        || range_request::SortTarget::try_from(r.sort_target).is_err()
    {
        return Err(Error::InvalidSortOption);
    }
    Ok(())
}

/// Checks a Put.
///
/// # Errors
/// `KeyNotProvided`, `ValueProvided` (ignore_value with a value), `LeaseProvided`
/// (ignore_lease with a lease).
pub fn put(p: &PutRequest) -> Result<(), Error> {
    if p.key.is_empty() {
        return Err(Error::KeyNotProvided);
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

/// Checks a DeleteRange.
///
/// # Errors
/// `KeyNotProvided` for an empty key.
pub fn delete_range(d: &DeleteRangeRequest) -> Result<(), Error> {
    if d.key.is_empty() {
        return Err(Error::KeyNotProvided);
    }
    Ok(())
}

/// Checks a Txn: operation counts against `max_txn_ops` at every depth, each compare and
/// operation, and the duplicate-key rule.
///
/// # Errors
/// `TooManyOps`, `KeyNotProvided`, `KeyNotFound` (an empty RequestOp), `DuplicateKey`, and the
/// errors of the per-operation checks.
pub fn txn(t: &TxnRequest, max_txn_ops: usize) -> Result<(), Error> {
    check_txn(t, max_txn_ops)?;
    check_intervals(&t.success)?;
    check_intervals(&t.failure)?;
    Ok(())
}

fn check_txn(t: &TxnRequest, max_txn_ops: usize) -> Result<(), Error> {
    // etcd checkTxnRequest: the widest list counts, and nested txns get what is left of the limit.
    let ops = t.compare.len().max(t.success.len()).max(t.failure.len());
    if ops > max_txn_ops {
        return Err(Error::TooManyOps);
    }
    if t.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Error::KeyNotProvided);
    }
    for op in t.success.iter().chain(t.failure.iter()) {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) => range(r)?,
            Some(request_op::Request::RequestPut(p)) => put(p)?,
            Some(request_op::Request::RequestDeleteRange(d)) => delete_range(d)?,
            Some(request_op::Request::RequestTxn(nested)) => check_txn(nested, max_txn_ops - ops)?,
            None => return Err(Error::KeyNotFound),
        }
    }
    Ok(())
}

/// A delete's key interval as etcd's `checkIntervals` builds it: `[key, range_end)` taken
/// literally, so a from-key delete (`range_end == "\0"`) is an empty interval there and never
/// clashes with a put (etcd `adt.NewStringAffineInterval`).
struct Interval {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Interval {
    fn contains(&self, k: &[u8]) -> bool {
        match &self.end {
            None => self.start.as_slice() == k,
            Some(end) => k >= self.start.as_slice() && k < end.as_slice(),
        }
    }
}

/// etcd `checkIntervals`: within one branch a key may not be put twice, nor be put and covered
/// by a delete of the same branch, nested transactions included; a key put in both branches of
/// one nested transaction is fine (only one runs).
fn check_intervals(reqs: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Interval>), Error> {
    let mut dels: Vec<Interval> = reqs
        .iter()
        .filter_map(|op| match &op.request {
            Some(request_op::Request::RequestDeleteRange(d)) => Some(Interval {
                start: d.key.to_vec(),
                end: (!d.range_end.is_empty()).then(|| d.range_end.to_vec()),
            }),
            _ => None,
        })
        .collect();
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    let deleted = |dels: &[Interval], k: &[u8]| dels.iter().any(|r| r.contains(k));
    for op in reqs {
        let Some(request_op::Request::RequestTxn(nested)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&nested.success)?;
        let (puts_else, dels_else) = check_intervals(&nested.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || deleted(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in reqs {
        let Some(request_op::Request::RequestPut(p)) = &op.request else {
            continue;
        };
        let k = p.key.to_vec();
        if puts.contains(&k) || deleted(&dels, &k) {
            return Err(Error::DuplicateKey);
        }
        puts.insert(k);
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_op(k: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: k.to_string().into(),
                ..Default::default()
            })),
        }
    }

    fn del_op(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                key: k.to_string().into(),
                range_end: end.to_string().into(),
                ..Default::default()
            })),
        }
    }

    fn txn_op(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestTxn(TxnRequest {
                compare: vec![],
                success,
                failure,
            })),
        }
    }

    fn check(success: Vec<RequestOp>) -> Result<(), Error> {
        txn(
            &TxnRequest {
                compare: vec![],
                success,
                failure: vec![],
            },
            128,
        )
    }

    #[test]
    fn two_puts_of_one_key_are_a_duplicate() {
        assert_eq!(check(vec![put_op("a"), put_op("a")]), Err(Error::DuplicateKey));
    }

    #[test]
    fn put_inside_a_deleted_range_is_a_duplicate() {
        assert_eq!(
            check(vec![del_op("a", "c"), put_op("b")]),
            Err(Error::DuplicateKey)
        );
        // etcd takes range_end "\0" literally here: a from-key delete does not clash with a put
        // (found by the differential test against etcd 3.4.23; the same code is in 3.6).
        assert_eq!(check(vec![del_op("a", "\0"), put_op("zz")]), Ok(()));
    }

    #[test]
    fn overlapping_deletes_are_allowed() {
        assert_eq!(check(vec![del_op("a", "c"), del_op("b", "d")]), Ok(()));
    }

    #[test]
    fn same_key_in_both_branches_of_a_nested_txn_is_allowed() {
        assert_eq!(check(vec![txn_op(vec![put_op("a")], vec![put_op("a")])]), Ok(()));
    }

    #[test]
    fn nested_put_clashing_with_outer_put_is_a_duplicate() {
        assert_eq!(
            check(vec![txn_op(vec![put_op("a")], vec![]), put_op("a")]),
            Err(Error::DuplicateKey)
        );
    }

    #[test]
    fn too_many_ops_counts_each_list_separately() {
        let ops: Vec<RequestOp> = (0..3).map(|i| put_op(&format!("k{i}"))).collect();
        assert_eq!(
            txn(
                &TxnRequest {
                    compare: vec![],
                    success: ops.clone(),
                    failure: vec![]
                },
                2
            ),
            Err(Error::TooManyOps)
        );
        assert_eq!(
            txn(
                &TxnRequest {
                    compare: vec![],
                    success: ops,
                    failure: vec![]
                },
                3
            ),
            Ok(())
        );
    }

    #[test]
    fn nested_txns_get_what_is_left_of_the_op_limit() {
        let puts = |n: usize| (0..n).map(|i| put_op(&format!("k{i}"))).collect::<Vec<_>>();
        let outer = |inner: usize| TxnRequest {
            compare: vec![],
            success: vec![txn_op(puts(inner), vec![])],
            failure: vec![],
        };
        assert_eq!(txn(&outer(127), 128), Ok(()));
        assert_eq!(txn(&outer(128), 128), Err(Error::TooManyOps));
    }

    #[test]
    fn empty_request_op_is_key_not_found() {
        assert_eq!(check(vec![RequestOp { request: None }]), Err(Error::KeyNotFound));
    }

    #[test]
    fn unknown_sort_enum_is_invalid_sort_option() {
        let r = RangeRequest {
            key: "a".into(),
            sort_order: 7,
            ..Default::default()
        };
        assert_eq!(range(&r), Err(Error::InvalidSortOption));
    }

    #[test]
    fn ignore_value_with_value_is_rejected() {
        let p = PutRequest {
            key: "a".into(),
            value: "v".into(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(put(&p), Err(Error::ValueProvided));
        let p = PutRequest {
            key: "a".into(),
            lease: 5,
            ignore_lease: true,
            ..Default::default()
        };
        assert_eq!(put(&p), Err(Error::LeaseProvided));
    }
}
