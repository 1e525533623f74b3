//! KV service behaviour through a Rust gRPC client against the built binary
//! (etcd-compat.md §2.1–2.5, §3).

use bytes::Bytes;
use mainstay::proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, compare,
    range_request, request_op, response_op,
};
use tonic::Code;

use crate::harness::Server;

fn put(k: &[u8], v: &[u8]) -> PutRequest {
    PutRequest {
        key: Bytes::copy_from_slice(k),
        value: Bytes::copy_from_slice(v),
        ..Default::default()
    }
}

fn get(k: &[u8]) -> RangeRequest {
    RangeRequest {
        key: Bytes::copy_from_slice(k),
        ..Default::default()
    }
}

fn range(k: &[u8], end: &[u8]) -> RangeRequest {
    RangeRequest {
        key: Bytes::copy_from_slice(k),
        range_end: Bytes::copy_from_slice(end),
        ..Default::default()
    }
}

fn op_put(k: &[u8], v: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put(k, v))),
    }
}

fn op_get(k: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(get(k))),
    }
}

fn op_del(k: &[u8], end: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key: Bytes::copy_from_slice(k),
            range_end: Bytes::copy_from_slice(end),
            prev_kv: false,
        })),
    }
}

fn cmp_mod(k: &[u8], result: compare::CompareResult, rev: i64) -> Compare {
    Compare {
        result: result as i32,
        target: compare::CompareTarget::Mod as i32,
        key: Bytes::copy_from_slice(k),
        target_union: Some(compare::TargetUnion::ModRevision(rev)),
        range_end: Bytes::new(),
    }
}

#[tokio::test]
async fn revisions_start_at_one_and_every_write_adds_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let mut kv = s.kv().await;
    let r = kv.range(get(b"a")).await.unwrap().into_inner();
    assert_eq!(r.header.unwrap().revision, 1, "a fresh store is at revision 1");
    let p = kv.put(put(b"a", b"1")).await.unwrap().into_inner();
    assert_eq!(p.header.unwrap().revision, 2);
    kv.put(put(b"a", b"2")).await.unwrap();
    let r = kv.range(get(b"a")).await.unwrap().into_inner();
    let a = &r.kvs[0];
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 3, 2));
    // A delete matching nothing makes no revision.
    let d = kv
        .delete_range(DeleteRangeRequest {
            key: "zz".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((d.deleted, d.header.unwrap().revision), (0, 3));
    // Delete then re-create: new generation, version restarts at 1.
    kv.delete_range(DeleteRangeRequest {
        key: "a".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    kv.put(put(b"a", b"3")).await.unwrap();
    let a = kv.range(get(b"a")).await.unwrap().into_inner().kvs.remove(0);
    assert_eq!((a.create_revision, a.mod_revision, a.version), (5, 5, 1));
}

#[tokio::test]
async fn put_returns_prev_kv_and_honours_ignore_flags() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let mut kv = s.kv().await;
    let first = kv
        .put(PutRequest {
            prev_kv: true,
            ..put(b"k", b"v1")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(first.prev_kv.is_none(), "no prev_kv for a new key");
    let second = kv
        .put(PutRequest {
            prev_kv: true,
            ..put(b"k", b"v2")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.prev_kv.unwrap().value, "v1");
    kv.put(PutRequest {
        ignore_value: true,
        ..put(b"k", b"")
    })
    .await
    .unwrap();
    let k = kv.range(get(b"k")).await.unwrap().into_inner().kvs.remove(0);
    assert_eq!(
        (k.value.as_ref(), k.version),
        (&b"v2"[..], 3),
        "ignore_value keeps the value"
    );
    let e = kv
        .put(PutRequest {
            ignore_value: true,
            ..put(b"missing", b"")
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: key not found")
    );
    let e = kv
        .put(PutRequest {
            ignore_value: true,
            ..put(b"k", b"x")
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: value is provided");
    let e = kv
        .put(PutRequest {
            lease: 42,
            ..put(b"k", b"x")
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
    let e = kv.put(put(b"", b"x")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: key is not provided")
    );
}

#[tokio::test]
async fn history_reads_and_compaction_errors_follow_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let mut kv = s.kv().await;
    for v in 1..=4 {
        kv.put(put(b"h", format!("v{v}").as_bytes())).await.unwrap(); // revisions 2..=5
    }
    let old = kv
        .range(RangeRequest {
            revision: 3,
            ..get(b"h")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.kvs[0].value, "v2");
    assert_eq!(
        old.header.unwrap().revision,
        5,
        "header carries the current revision, not the requested one"
    );
    let e = kv
        .range(RangeRequest {
            revision: 6,
            ..get(b"h")
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision"
        )
    );
    kv.compact(CompactionRequest {
        revision: 4,
        physical: true,
    })
    .await
    .unwrap();
    let at = kv
        .range(RangeRequest {
            revision: 4,
            ..get(b"h")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        at.kvs[0].value, "v3",
        "reading exactly at the compaction revision is allowed"
    );
    let e = kv
        .range(RangeRequest {
            revision: 3,
            ..get(b"h")
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted"
        )
    );
    let e = kv
        .compact(CompactionRequest {
            revision: 4,
            physical: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let e = kv
        .compact(CompactionRequest {
            revision: 99,
            physical: false,
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "etcdserver: mvcc: required revision is a future revision"
    );
}

#[tokio::test]
async fn sort_limit_count_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let mut kv = s.kv().await;
    for (k, v) in [("b", "2"), ("a", "3"), ("c", "1"), ("a", "4")] {
        kv.put(put(k.as_bytes(), v.as_bytes())).await.unwrap(); // b@2 a@3 c@4 a@5
    }
    let r = kv
        .range(RangeRequest {
            limit: 2,
            ..range(b"a", b"\0")
        })
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<_> = r.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec!["a", "b"]);
    assert!(r.more);
    assert_eq!(r.count, 3, "count ignores limit");
    let r = kv
        .range(RangeRequest {
            sort_order: range_request::SortOrder::Descend as i32,
            sort_target: range_request::SortTarget::Mod as i32,
            limit: 2,
            ..range(b"a", b"\0")
        })
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<_> = r.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(
        keys,
        vec!["a", "c"],
        "sorted by mod revision descending, then limited"
    );
    assert!(r.more);
    let r = kv
        .range(RangeRequest {
            sort_target: range_request::SortTarget::Value as i32,
            ..range(b"a", b"\0")
        })
        .await
        .unwrap()
        .into_inner();
    let values: Vec<_> = r.kvs.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(
        values,
        vec!["1", "2", "4"],
        "a non-key target with NONE order sorts ascending"
    );
    let r = kv
        .range(RangeRequest {
            min_mod_revision: 4,
            ..range(b"a", b"\0")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.kvs.len(), 2);
    assert_eq!(r.count, 3, "count ignores min/max filters");
    let r = kv
        .range(RangeRequest {
            count_only: true,
            ..range(b"a", b"\0")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 3);
    let r = kv
        .range(RangeRequest {
            keys_only: true,
            ..get(b"a")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.kvs[0].value.is_empty());
    assert_eq!(r.kvs[0].version, 2);
    let e = kv
        .range(RangeRequest {
            sort_order: 9,
            ..get(b"a")
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: invalid sort option")
    );
}

#[tokio::test]
async fn binary_keys_ending_in_ff_and_prefix_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let mut kv = s.kv().await;
    let keys: [&[u8]; 4] = [b"p\xff", b"p\xff\xff", b"p\xff\x00", b"q"];
    for k in keys {
        kv.put(put(k, b"v")).await.unwrap();
    }
    // Prefix "p\xff": end = "q" (trailing 0xff dropped, last byte incremented).
    let end = mainstay::mvcc::key_range::prefix_end(b"p\xff");
    assert_eq!(end, b"q");
    let r = kv.range(range(b"p\xff", &end)).await.unwrap().into_inner();
    assert_eq!(r.count, 3);
    // All keys: key "\0", range_end "\0".
    let all = kv.range(range(b"\0", b"\0")).await.unwrap().into_inner();
    assert_eq!(all.count, 4);
    let d = kv
        .delete_range(DeleteRangeRequest {
            key: Bytes::from_static(b"p\xff"),
            range_end: end.into(),
            prev_kv: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((d.deleted, d.prev_kvs.len()), (3, 3));
}

#[tokio::test]
async fn oversized_requests_are_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let mut kv = s.kv().await;
    // Over --max-request-bytes (1.5 MiB) but under the gRPC limit (+512 KiB).
    let big = vec![b'x'; 1_600_000];
    let e = kv.put(put(b"big", &big)).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: request is too large")
    );
    // Over the gRPC receive limit: refused by the transport with ResourceExhausted.
    let huge = vec![b'x'; 2_200_000];
    let e = kv.put(put(b"huge", &huge)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert_eq!(
        e.message(),
        "grpc: received message larger than max (2200011 vs. 2097152)"
    );
    // Just under the limit works.
    let fits = vec![b'y'; 1_500_000];
    kv.put(put(b"fits", &fits)).await.unwrap();
    let r = kv.range(get(b"fits")).await.unwrap().into_inner();
    assert_eq!(r.kvs[0].value.len(), 1_500_000);
}

#[tokio::test]
async fn txn_compares_branches_nested_txns_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let mut kv = s.kv().await;
    // "Create if absent": mod_revision == 0 holds for a missing key.
    let t = TxnRequest {
        compare: vec![cmp_mod(b"x", compare::CompareResult::Equal, 0)],
        success: vec![op_put(b"x", b"1"), op_get(b"x")],
        failure: vec![op_get(b"x")],
    };
    let r = kv.txn(t.clone()).await.unwrap().into_inner();
    assert!(r.succeeded);
    assert_eq!(r.header.unwrap().revision, 2);
    let Some(response_op::Response::ResponsePut(p)) = &r.responses[0].response else {
        panic!("put response")
    };
    assert_eq!(
        p.header.as_ref().unwrap().revision,
        2,
        "nested put header carries the txn revision"
    );
    let Some(response_op::Response::ResponseRange(g)) = &r.responses[1].response else {
        panic!("range response")
    };
    assert_eq!(
        g.kvs[0].value, "1",
        "later ops see earlier writes of the same txn"
    );
    // Second time the compare fails and the failure branch runs, creating no revision.
    let r = kv.txn(t).await.unwrap().into_inner();
    assert!(!r.succeeded);
    assert_eq!(r.header.unwrap().revision, 2);
    // Value compare on a missing key is always false.
    let t = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::NotEqual as i32,
            target: compare::CompareTarget::Value as i32,
            key: "missing".into(),
            target_union: Some(compare::TargetUnion::Value("v".into())),
            range_end: Bytes::new(),
        }],
        ..Default::default()
    };
    assert!(!kv.txn(t).await.unwrap().into_inner().succeeded);
    // Range compare: every key in [x, y) must satisfy.
    kv.put(put(b"x2", b"1")).await.unwrap();
    let t = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Greater as i32,
            target: compare::CompareTarget::Version as i32,
            key: "x".into(),
            target_union: Some(compare::TargetUnion::Version(0)),
            range_end: "y".into(),
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestTxn(TxnRequest {
                compare: vec![],
                success: vec![op_put(b"n", b"nested")],
                failure: vec![],
            })),
        }],
        failure: vec![],
    };
    let r = kv.txn(t).await.unwrap().into_inner();
    assert!(r.succeeded);
    let Some(response_op::Response::ResponseTxn(n)) = &r.responses[0].response else {
        panic!("txn response")
    };
    assert!(n.succeeded);
    assert_eq!(
        kv.range(get(b"n")).await.unwrap().into_inner().kvs[0].value,
        "nested"
    );
}

#[tokio::test]
async fn txn_rejects_duplicate_keys_and_too_many_ops() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let mut kv = s.kv().await;
    let e = kv
        .txn(TxnRequest {
            success: vec![op_put(b"a", b"1"), op_put(b"a", b"2")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request"
        )
    );
    let e = kv
        .txn(TxnRequest {
            success: vec![op_del(b"a", b"c"), op_put(b"b", b"2")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: duplicate key given in txn request");
    let ops: Vec<RequestOp> = (0..129)
        .map(|i| op_put(format!("k{i}").as_bytes(), b"v"))
        .collect();
    let e = kv
        .txn(TxnRequest {
            success: ops,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request"
        )
    );
    // A failing op detected up front leaves nothing applied.
    let e = kv
        .txn(TxnRequest {
            success: vec![
                op_put(b"ok", b"1"),
                RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        lease: 7,
                        ..put(b"bad", b"1")
                    })),
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: requested lease not found");
    assert_eq!(kv.range(get(b"ok")).await.unwrap().into_inner().count, 0);
    assert_eq!(
        kv.range(get(b"ok"))
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .revision,
        1
    );
}

#[tokio::test]
async fn restart_preserves_data_revision_compaction_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::mainstay(dir.path()).await;
    let mut kv = s.kv().await;
    for i in 0..10 {
        kv.put(put(format!("k{i}").as_bytes(), b"v")).await.unwrap();
    }
    kv.compact(CompactionRequest {
        revision: 5,
        physical: true,
    })
    .await
    .unwrap();
    let before = kv.range(range(b"k", b"l")).await.unwrap().into_inner();
    s.restart().await;
    let mut kv = s.kv().await;
    let after = kv.range(range(b"k", b"l")).await.unwrap().into_inner();
    assert_eq!(after.kvs, before.kvs);
    assert_eq!(after.header.as_ref().unwrap().revision, 11);
    assert_eq!(
        after.header.as_ref().unwrap().member_id,
        before.header.as_ref().unwrap().member_id
    );
    assert_eq!(
        after.header.as_ref().unwrap().cluster_id,
        before.header.as_ref().unwrap().cluster_id
    );
    let e = kv
        .range(RangeRequest {
            revision: 4,
            ..get(b"k0")
        })
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let p = kv.put(put(b"next", b"v")).await.unwrap().into_inner();
    assert_eq!(p.header.unwrap().revision, 12, "the revision counter continues");
}
