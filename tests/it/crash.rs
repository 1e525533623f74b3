//! Durability under kill -9: every acknowledged write survives with the revision that was
//! acknowledged, and the revision counter continues after it (design.md §2 "One durability
//! point").

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mainstay::proto::etcdserverpb::{PutRequest, RangeRequest};

use crate::harness::Server;

const CYCLES: usize = 3;
const WRITERS: usize = 8;
const WRITES_PER_WRITER_MAX: usize = 5_000;
const ACKS_BEFORE_KILL: usize = 300;
const CYCLE_DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_with_their_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::mainstay(dir.path()).await;
    let mut all_acks: Vec<(String, i64)> = Vec::new();
    for cycle in 0..CYCLES {
        let acks: Arc<Mutex<Vec<(String, i64)>>> = Arc::new(Mutex::new(Vec::new()));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let mut kv = server.kv().await;
            let acks = acks.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..WRITES_PER_WRITER_MAX {
                    let key = format!("c{cycle}-w{w}-{i}");
                    let req = PutRequest {
                        key: Bytes::from(key.clone()),
                        value: Bytes::from(key.clone()),
                        ..Default::default()
                    };
                    match kv.put(req).await {
                        Ok(resp) => {
                            let rev = resp.into_inner().header.map_or(0, |h| h.revision);
                            acks.lock().unwrap().push((key, rev));
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        let deadline = Instant::now() + CYCLE_DEADLINE;
        while acks.lock().unwrap().len() < ACKS_BEFORE_KILL {
            assert!(Instant::now() < deadline, "writers made no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill9();
        for w in writers {
            let _ = w.await;
        }
        all_acks.extend(acks.lock().unwrap().drain(..));
        server.restart().await;
        let mut kv = server.kv().await;
        for (key, rev) in &all_acks {
            let r = kv
                .range(RangeRequest {
                    key: Bytes::from(key.clone()),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.kvs.len(), 1, "cycle {cycle}: acknowledged key {key} lost");
            assert_eq!(
                r.kvs[0].mod_revision, *rev,
                "cycle {cycle}: {key} has another revision"
            );
        }
        let max_ack = all_acks.iter().map(|(_, r)| *r).max().unwrap_or(0);
        let probe = kv
            .put(PutRequest {
                key: Bytes::from(format!("probe-{cycle}")),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            probe.header.unwrap().revision > max_ack,
            "revision counter went backwards after restart"
        );
    }
    assert!(all_acks.len() >= CYCLES * ACKS_BEFORE_KILL);
}
