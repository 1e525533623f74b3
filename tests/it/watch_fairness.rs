//! Watch delivery is not held up by large Range responses on the same connection (HTTP/2
//! multiplexing; the watch issue's fairness rule).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use mainstay::proto::etcdserverpb::kv_client::KvClient;
use mainstay::proto::etcdserverpb::watch_client::WatchClient;
use mainstay::proto::etcdserverpb::{
    PutRequest, RangeRequest, WatchCreateRequest, WatchRequest, watch_request,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::harness::Server;

const BIG_KEYS: usize = 40;
const BIG_VALUE_BYTES: usize = 100 * 1024;
const CONCURRENT_RANGES: usize = 24;
const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_event_overtakes_large_ranges_on_the_same_connection() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let mut writer = s.kv().await;
    for i in 0..BIG_KEYS {
        let req = PutRequest {
            key: Bytes::from(format!("big/{i:03}")),
            value: Bytes::from(vec![b'x'; BIG_VALUE_BYTES]),
            ..Default::default()
        };
        writer.put(req).await.unwrap();
    }
    // One HTTP/2 connection shared by the watch and the ranges.
    let channel = Channel::from_shared(s.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    let mut watch = WatchClient::new(channel.clone());
    let create = WatchCreateRequest {
        key: Bytes::from_static(b"ping"),
        ..Default::default()
    };
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
    })
    .await
    .unwrap();
    let mut responses = watch.watch(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let created = responses.next().await.unwrap().unwrap();
    assert!(created.created);

    let mut ranges = Vec::new();
    for _ in 0..CONCURRENT_RANGES {
        let mut kv = KvClient::new(channel.clone()).max_decoding_message_size(usize::MAX);
        ranges.push(tokio::spawn(async move {
            let r = RangeRequest {
                key: Bytes::from_static(b"big/"),
                range_end: Bytes::from_static(b"big0"),
                ..Default::default()
            };
            let resp = kv.range(r).await.unwrap().into_inner();
            assert_eq!(resp.kvs.len(), BIG_KEYS);
            Instant::now()
        }));
    }
    writer
        .put(PutRequest {
            key: Bytes::from_static(b"ping"),
            ..Default::default()
        })
        .await
        .unwrap();
    let event = tokio::time::timeout(DEADLINE, responses.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let event_at = Instant::now();
    assert_eq!(event.events.len(), 1);
    let mut last_range_done = event_at;
    for r in ranges {
        last_range_done = last_range_done.max(tokio::time::timeout(DEADLINE, r).await.unwrap().unwrap());
    }
    assert!(
        event_at < last_range_done,
        "the watch event waited until all {} MB of range responses were sent",
        CONCURRENT_RANGES * BIG_KEYS * BIG_VALUE_BYTES / (1024 * 1024)
    );
    drop(tx);
}
