//! Arbitrary requests — random keys, ranges, revisions, out-of-range enum values, nested Txns —
//! through the API checks and the apply operations: an etcd error or a result, never a panic,
//! and a Txn that fails changes nothing.

use bytes::Bytes;
use proptest::prelude::*;

use super::ops::{self, NoLeases};
use crate::api::validate;
use crate::mvcc::Store;
use crate::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, compare, request_op,
};
use crate::storage::Storage;

fn bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::new()),
        Just(Bytes::from_static(b"\0")),
        Just(Bytes::from_static(b"\xff")),
        "[a-d]{1,2}".prop_map(Bytes::from)
    ]
}

fn range_req() -> impl Strategy<Value = RangeRequest> {
    (
        bytes(),
        bytes(),
        -2i64..4,
        -3i64..12,
        -1i32..6,
        -1i32..7,
        any::<bool>(),
        any::<bool>(),
        -1i64..12,
    )
        .prop_map(
            |(key, range_end, limit, revision, sort_order, sort_target, keys_only, count_only, min_mod)| {
                RangeRequest {
                    key,
                    range_end,
                    limit,
                    revision,
                    sort_order,
                    sort_target,
                    keys_only,
                    count_only,
                    min_mod_revision: min_mod,
                    ..Default::default()
                }
            },
        )
}

fn leaf_op() -> impl Strategy<Value = RequestOp> {
    let put = (
        bytes(),
        bytes(),
        -1i64..2,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(key, value, lease, prev_kv, ignore_value, ignore_lease)| {
            request_op::Request::RequestPut(PutRequest {
                key,
                value,
                lease,
                prev_kv,
                ignore_value,
                ignore_lease,
            })
        });
    let del = (bytes(), bytes(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| {
        request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key,
            range_end,
            prev_kv,
        })
    });
    let range = range_req().prop_map(request_op::Request::RequestRange);
    // An empty RequestOp (no oneof set) is part of the input space too.
    prop_oneof![5 => prop_oneof![put, del, range].prop_map(Some), 1 => Just(None)]
        .prop_map(|request| RequestOp { request })
}

fn compare_() -> impl Strategy<Value = Compare> {
    (-1i32..6, -1i32..6, bytes(), bytes(), -1i64..8).prop_map(|(result, target, key, range_end, n)| Compare {
        result,
        target,
        key,
        range_end,
        target_union: Some(match target {
            0 => compare::TargetUnion::Version(n),
            1 => compare::TargetUnion::CreateRevision(n),
            3 => compare::TargetUnion::Value(Bytes::from(n.to_string())),
            4 => compare::TargetUnion::Lease(n),
            _ => compare::TargetUnion::ModRevision(n),
        }),
    })
}

fn txn_req() -> impl Strategy<Value = TxnRequest> {
    let leaf = (
        proptest::collection::vec(compare_(), 0..3),
        proptest::collection::vec(leaf_op(), 0..4),
        proptest::collection::vec(leaf_op(), 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        });
    leaf.prop_recursive(2, 8, 3, |inner| {
        (
            proptest::collection::vec(compare_(), 0..2),
            proptest::collection::vec(
                prop_oneof![
                    leaf_op(),
                    inner.prop_map(|t| RequestOp {
                        request: Some(request_op::Request::RequestTxn(t))
                    })
                ],
                0..4,
            ),
        )
            .prop_map(|(compare, success)| TxnRequest {
                compare,
                success,
                failure: vec![],
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_txns_never_panic_and_failed_txns_change_nothing(txns in proptest::collection::vec(txn_req(), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Storage::open(dir.path()).unwrap()).unwrap();
        for t in txns {
            if validate::txn(&t, 128).is_err() {
                continue;
            }
            let before = store.current_revision();
            let mut w = store.write();
            match ops::txn(&mut w, &t, &NoLeases) {
                Ok(_) => {
                    let c = w.commit(|_| {}).unwrap();
                    prop_assert!(c.revision == before || c.revision == before.next());
                }
                Err(_) => {
                    drop(w);
                    prop_assert_eq!(store.current_revision(), before);
                }
            }
        }
    }
}
