//! The KV workloads: put, txn-put, range and txn-mixed (etcd `cmd/put.go`, `txn_put.go`,
//! `range.go`, `txn_mixed.go`).

use bytes::Bytes;
use tonic::transport::Channel;

use super::args::{Consistency, KeyOpts, PutOpts, RangeOpts, TxnMixedOpts, TxnPutOpts};
use super::error::BenchError;
use super::keys::{self, Rng};
use super::runner::Worker;
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest};

/// The `(key, range_end)` of every key starting with `prefix`, as clientv3's `WithPrefix`
/// makes it: an empty prefix becomes `("\0", "\0")` (the whole key space; etcd rejects an
/// empty key), otherwise the end is [`prefix_end`].
pub fn prefix_range(prefix: &[u8]) -> (Bytes, Bytes) {
    if prefix.is_empty() {
        (Bytes::from_static(b"\0"), Bytes::from_static(b"\0"))
    } else {
        (Bytes::copy_from_slice(prefix), prefix_end(prefix))
    }
}

/// The end of the range of every key starting with `prefix` (etcd clientv3
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff incremented and the rest
/// dropped; `"\0"` (to the end of the key space) when there is no such byte.
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return Bytes::from(end);
        }
        end.pop();
    }
    Bytes::from_static(b"\0")
}

fn check_key_space(k: &KeyOpts) -> Result<(), BenchError> {
    if k.key_space_size == 0 {
        return Err(BenchError::Invalid(format!(
            "expected positive --key-space-size, got ({})",
            k.key_space_size
        )));
    }
    Ok(())
}

/// A put or txn-put client loop.
pub struct PutWorker {
    kv: KvClient<Channel>,
    value: Bytes,
    key_size: usize,
    space: u64,
    sequential: bool,
    /// `Some(ops)`: a Txn of `ops` puts (txn-put); `None`: a plain Put.
    txn_ops: Option<usize>,
    rng: Rng,
}

impl Worker for PutWorker {
    async fn call(&mut self, i: usize) -> (usize, Result<(), tonic::Status>) {
        let res = match self.txn_ops {
            None => {
                let idx = keys::index(i as u64, self.space, self.sequential, &mut self.rng);
                let req = PutRequest {
                    key: keys::key(idx, self.key_size),
                    value: self.value.clone(),
                    ..PutRequest::default()
                };
                self.kv.put(req).await.map(drop)
            }
            Some(ops) => {
                // etcd txn_put.go: key (i·ops + j) mod key-space-size.
                let success = (0..ops)
                    .map(|j| RequestOp {
                        request: Some(Request::RequestPut(PutRequest {
                            key: keys::key(((i * ops + j) as u64) % self.space, self.key_size),
                            value: self.value.clone(),
                            ..PutRequest::default()
                        })),
                    })
                    .collect();
                let req = TxnRequest {
                    success,
                    ..TxnRequest::default()
                };
                self.kv.txn(req).await.map(drop)
            }
        };
        (0, res)
    }
}

fn put_workers(
    conns: &[Channel],
    clients: usize,
    k: &KeyOpts,
    txn_ops: Option<usize>,
) -> Result<Vec<PutWorker>, BenchError> {
    check_key_space(k)?;
    let mut rng = Rng::new(0x6d61_696e_7374_6179);
    let value = keys::value(k.val_size, &mut rng);
    Ok((0..clients.max(1))
        .map(|c| PutWorker {
            kv: KvClient::new(conns[c % conns.len()].clone()),
            value: value.clone(),
            key_size: k.key_size,
            space: k.key_space_size,
            sequential: k.sequential_keys,
            txn_ops,
            rng: Rng::new(c as u64 + 1),
        })
        .collect())
}

/// The client loops of `put`.
pub fn put(conns: &[Channel], clients: usize, o: &PutOpts) -> Result<Vec<PutWorker>, BenchError> {
    put_workers(conns, clients, &o.keys, None)
}

/// The client loops of `txn-put`; `--txn-ops` may not exceed `--key-space-size` (etcd).
pub fn txn_put(conns: &[Channel], clients: usize, o: &TxnPutOpts) -> Result<Vec<PutWorker>, BenchError> {
    if o.txn_ops as u64 > o.keys.key_space_size {
        return Err(BenchError::Invalid(format!(
            "expected --txn-ops no larger than --key-space-size, got txn-ops({}) key-space-size({})",
            o.txn_ops, o.keys.key_space_size
        )));
    }
    put_workers(conns, clients, &o.keys, Some(o.txn_ops.max(1)))
}

/// A range client loop: the same request every time.
pub struct RangeWorker {
    kv: KvClient<Channel>,
    req: RangeRequest,
}

impl Worker for RangeWorker {
    async fn call(&mut self, _i: usize) -> (usize, Result<(), tonic::Status>) {
        (0, self.kv.range(self.req.clone()).await.map(drop))
    }
}

/// The request `range` sends.
pub fn range_request(o: &RangeOpts) -> Result<RangeRequest, BenchError> {
    let key = Bytes::from(o.key.clone().into_bytes());
    let (key, range_end) = match (&o.end, o.prefix) {
        (Some(_), true) => {
            return Err(BenchError::Invalid(
                "--prefix and an END key exclude each other".to_string(),
            ));
        }
        (Some(e), false) => (key, Bytes::from(e.clone().into_bytes())),
        (None, true) => prefix_range(&key),
        (None, false) => (key, Bytes::new()),
    };
    Ok(RangeRequest {
        key,
        range_end,
        limit: o.limit,
        serializable: o.consistency == Consistency::Serializable,
        keys_only: o.keys_only,
        count_only: o.count_only,
        ..RangeRequest::default()
    })
}

/// The client loops of `range`.
pub fn range(conns: &[Channel], clients: usize, o: &RangeOpts) -> Result<Vec<RangeWorker>, BenchError> {
    let req = range_request(o)?;
    Ok((0..clients.max(1))
        .map(|c| RangeWorker {
            kv: KvClient::new(conns[c % conns.len()].clone()),
            req: req.clone(),
        })
        .collect())
}

/// Series index of txn-mixed's reads.
pub const READ_SERIES: usize = 0;
/// Series index of txn-mixed's writes.
pub const WRITE_SERIES: usize = 1;

/// A txn-mixed client loop: each request a Txn of one range or one put.
pub struct MixedWorker {
    kv: KvClient<Channel>,
    read: RangeRequest,
    value: Bytes,
    key_size: usize,
    space: u64,
    read_probability: f64,
    rng: Rng,
}

impl Worker for MixedWorker {
    async fn call(&mut self, i: usize) -> (usize, Result<(), tonic::Status>) {
        let (series, op) = if self.rng.unit() < self.read_probability {
            (READ_SERIES, Request::RequestRange(self.read.clone()))
        } else {
            // etcd txn_mixed.go: key i mod key-space-size.
            let put = PutRequest {
                key: keys::key(i as u64 % self.space, self.key_size),
                value: self.value.clone(),
                ..PutRequest::default()
            };
            (WRITE_SERIES, Request::RequestPut(put))
        };
        let req = TxnRequest {
            success: vec![RequestOp { request: Some(op) }],
            ..TxnRequest::default()
        };
        (series, self.kv.txn(req).await.map(drop))
    }
}

/// The client loops of `txn-mixed`.
pub fn txn_mixed(
    conns: &[Channel],
    clients: usize,
    o: &TxnMixedOpts,
) -> Result<Vec<MixedWorker>, BenchError> {
    check_key_space(&o.keys)?;
    if !(o.rw_ratio >= 0.0 && o.rw_ratio.is_finite()) {
        return Err(BenchError::Invalid(format!(
            "expected non-negative --rw-ratio, got {}",
            o.rw_ratio
        )));
    }
    let (key, range_end) = match &o.end {
        Some(e) => (
            Bytes::from(o.key.clone().into_bytes()),
            Bytes::from(e.clone().into_bytes()),
        ),
        None => prefix_range(o.key.as_bytes()),
    };
    let read = RangeRequest {
        key,
        range_end,
        limit: o.limit,
        serializable: o.consistency == Consistency::Serializable,
        ..RangeRequest::default()
    };
    let mut rng = Rng::new(0x7478_6e6d_6978_6564);
    let value = keys::value(o.keys.val_size, &mut rng);
    Ok((0..clients.max(1))
        .map(|c| MixedWorker {
            kv: KvClient::new(conns[c % conns.len()].clone()),
            read: read.clone(),
            value: value.clone(),
            key_size: o.keys.key_size,
            space: o.keys.key_space_size,
            read_probability: o.rw_ratio / (1.0 + o.rw_ratio),
            rng: Rng::new(c as u64 + 1),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_matches_clientv3() {
        assert_eq!(prefix_end(b"foo"), Bytes::from_static(b"fop"));
        assert_eq!(prefix_end(b"a\xff"), Bytes::from_static(b"b"));
        assert_eq!(prefix_end(b"\xff\xff"), Bytes::from_static(b"\0"));
        assert_eq!(prefix_end(b""), Bytes::from_static(b"\0"));
        let all = (Bytes::from_static(b"\0"), Bytes::from_static(b"\0"));
        assert_eq!(prefix_range(b""), all);
    }
}
