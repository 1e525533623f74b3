//! `watch` and `watch-latency` (etcd `cmd/watch.go`, `cmd/watch_latency.go`).
//!
//! Watchers are created on `--streams` Watch streams (stream `s` on connection `s mod
//! --conns`), one create request at a time per stream; creation latency is create request →
//! `created` response. Then `--clients` loops put `--put-total` values at `--put-rate`. Every
//! value starts with the put's sequence number (8 bytes, big endian), so each event's latency
//! is measured from just before its Put was sent to the moment the event was decoded, for
//! every watcher that receives it. (etcd's `watch` tool times from the response's arrival,
//! which measures nothing; its `watch-latency` times as here.)

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

use super::args::{WatchLatencyOpts, WatchOpts};
use super::error::BenchError;
use super::keys::{self, Rng};
use super::progress::Progress;
use super::report::{Recorder, Summary};
use super::runner::{Worker, closed_loop};
use crate::config::limits::{BENCH_EVENT_DRAIN_TIMEOUT, BENCH_STREAM_BUFFER, BENCH_WATCH_CREATE_TIMEOUT};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest, WatchResponse};

/// Bytes of the sequence-number stamp at the start of every value.
const STAMP_BYTES: usize = 8;

/// What a watch run does.
#[derive(Debug, Clone)]
pub struct WatchPlan {
    /// The key of each watcher, stream by stream (`per_stream` consecutive watchers each).
    pub watcher_keys: Vec<Bytes>,
    /// Watch streams.
    pub streams: usize,
    /// Watchers per stream.
    pub per_stream: usize,
    /// Put number `i` writes `put_keys[i mod len]`.
    pub put_keys: Vec<Bytes>,
    /// Puts in all.
    pub put_total: usize,
    /// Puts per second (0: no limit).
    pub put_rate: u64,
    /// Bytes per value (at least the stamp's 8).
    pub value_size: usize,
    /// Ask for the previous key-value in events.
    pub prev_kv: bool,
}

/// The plan of etcd's `watch`: `--watched-key-total` keys (index sequential or random in
/// the key space), watcher `w` on key `w mod total`, put `i` on key `i mod total`.
pub fn watch_plan(o: &WatchOpts) -> Result<WatchPlan, BenchError> {
    if o.key_space_size == 0 || o.watched_key_total == 0 {
        return Err(BenchError::Invalid(format!(
            "expected positive --key-space-size and --watched-key-total, got ({}, {})",
            o.key_space_size, o.watched_key_total
        )));
    }
    let mut rng = Rng::new(0x5741_5443_4800_0001);
    let watched: Vec<Bytes> = (0..o.watched_key_total as u64)
        .map(|i| {
            keys::key(
                keys::index(i, o.key_space_size, o.sequential_keys, &mut rng),
                o.key_size,
            )
        })
        .collect();
    let n = o.streams * o.watch_per_stream;
    Ok(WatchPlan {
        watcher_keys: (0..n).map(|w| watched[w % watched.len()].clone()).collect(),
        streams: o.streams,
        per_stream: o.watch_per_stream,
        put_keys: watched,
        put_total: o.put_total,
        put_rate: o.put_rate,
        value_size: STAMP_BYTES,
        prev_kv: false,
    })
}

/// The plan of etcd's `watch-latency`: every watcher on one random key, every put to it.
pub fn latency_plan(o: &WatchLatencyOpts) -> WatchPlan {
    let mut rng = Rng::new(0x4c41_5445_4e43_5900);
    let key = keys::value(o.key_size.max(1), &mut rng);
    WatchPlan {
        watcher_keys: vec![key.clone(); o.streams * o.watchers_per_stream],
        streams: o.streams,
        per_stream: o.watchers_per_stream,
        put_keys: vec![key],
        put_total: o.put_total,
        put_rate: o.put_rate,
        value_size: o.val_size.max(STAMP_BYTES),
        prev_kv: o.prevkv,
    }
}

/// What a watch run measured.
#[derive(Debug)]
pub struct WatchOutcome {
    /// Create request → created response, per watcher.
    pub creation: Summary,
    /// Put sent → event decoded, per event and watcher; events that never arrived are
    /// counted as errors.
    pub events: Summary,
    /// Latency of the puts themselves.
    pub puts: Summary,
}

/// Sends put number `i` with its stamp and notes when it was sent.
struct StampedPut {
    kv: KvClient<Channel>,
    keys: Arc<Vec<Bytes>>,
    value: Bytes,
    base: Instant,
    starts: Arc<Vec<AtomicU64>>,
}

impl Worker for StampedPut {
    async fn call(&mut self, i: usize) -> (usize, Result<(), tonic::Status>) {
        let mut value = self.value.to_vec();
        value[..STAMP_BYTES].copy_from_slice(&(i as u64).to_be_bytes());
        let key = self.keys[i % self.keys.len()].clone();
        let sent = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.starts[i].store(sent.max(1), Ordering::Release);
        let req = PutRequest {
            key,
            value: value.into(),
            ..PutRequest::default()
        };
        (0, self.kv.put(req).await.map(drop))
    }
}

/// One watch stream with its watchers created.
struct OpenStream {
    _tx: mpsc::Sender<WatchRequest>,
    rx: Streaming<WatchResponse>,
    creation: Recorder,
}

fn create_request(key: &Bytes, prev_kv: bool) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.clone(),
            prev_kv,
            ..WatchCreateRequest::default()
        })),
    }
}

async fn open_stream(ch: Channel, keys: Vec<Bytes>, prev_kv: bool) -> Result<OpenStream, BenchError> {
    let setup = |status| BenchError::Setup {
        what: "watch create",
        status,
    };
    let closed = || setup(tonic::Status::unavailable("watch stream closed"));
    let (tx, rx) = mpsc::channel(BENCH_STREAM_BUFFER);
    let mut creation = Recorder::new()?;
    let mut it = keys.iter();
    let Some(first) = it.next() else {
        return Err(BenchError::Invalid(
            "a watch stream needs at least one watcher".to_string(),
        ));
    };
    // A gRPC server sends a stream's headers with its first message: send the first create
    // before waiting for the call to be answered.
    let mut st = Instant::now();
    tx.send(create_request(first, prev_kv))
        .await
        .map_err(|_| closed())?;
    let mut rx = crate::proto::etcdserverpb::watch_client::WatchClient::new(ch)
        .watch(ReceiverStream::new(rx))
        .await
        .map_err(setup)?
        .into_inner();
    let mut next = Some(first);
    while next.is_some() {
        let resp = rx.message().await.map_err(setup)?.ok_or_else(closed)?;
        if resp.canceled {
            return Err(setup(tonic::Status::failed_precondition(resp.cancel_reason)));
        }
        if !resp.created {
            continue;
        }
        creation.record(st.elapsed());
        next = it.next();
        if let Some(k) = next {
            st = Instant::now();
            tx.send(create_request(k, prev_kv)).await.map_err(|_| closed())?;
        }
    }
    Ok(OpenStream {
        _tx: tx,
        rx,
        creation,
    })
}

/// Receives `expected` events on one stream (or until `stop`), recording their latency.
async fn receive(
    mut s: OpenStream,
    expected: u64,
    base: Instant,
    starts: Arc<Vec<AtomicU64>>,
    progress: Progress,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(Recorder, Option<Instant>), BenchError> {
    let mut rec = Recorder::new()?;
    let mut got = 0u64;
    let mut last = None;
    while got < expected {
        let msg = tokio::select! {
            m = s.rx.message() => m,
            _ = stop.changed() => break,
        };
        let resp = match msg {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                rec.record_error(&super::runner::status_text(&e));
                break;
            }
        };
        let now = Instant::now();
        for ev in &resp.events {
            let Some(kv) = &ev.kv else { continue };
            let Some(stamp) = kv.value.get(..STAMP_BYTES) else {
                continue;
            };
            let mut b = [0u8; STAMP_BYTES];
            b.copy_from_slice(stamp);
            let seq = u64::from_be_bytes(b);
            let Some(sent) = usize::try_from(seq).ok().and_then(|i| starts.get(i)) else {
                continue;
            };
            let sent = sent.load(Ordering::Acquire);
            if sent == 0 {
                continue;
            }
            rec.record(now.saturating_duration_since(base + Duration::from_nanos(sent)));
            got += 1;
            last = Some(now);
            progress.inc();
        }
    }
    for _ in got..expected {
        rec.record_error("watch event not received");
    }
    Ok((rec, last))
}

/// Runs a watch plan: `clients` put loops over `conns`.
pub async fn run(conns: &[Channel], clients: usize, plan: &WatchPlan) -> Result<WatchOutcome, BenchError> {
    if plan.streams == 0 || plan.per_stream == 0 || plan.put_keys.is_empty() {
        return Err(BenchError::Invalid(
            "expected positive --streams and watchers per stream".to_string(),
        ));
    }
    // Create the watchers, streams in parallel.
    let created_at = Instant::now();
    let opens = (0..plan.streams).map(|s| {
        let keys = plan.watcher_keys[s * plan.per_stream..(s + 1) * plan.per_stream].to_vec();
        open_stream(conns[s % conns.len()].clone(), keys, plan.prev_kv)
    });
    let streams = tokio::time::timeout(BENCH_WATCH_CREATE_TIMEOUT, futures::future::try_join_all(opens))
        .await
        .map_err(|_| BenchError::Timeout("watch creation"))??;
    let creation_wall = created_at.elapsed();
    let mut creation = Recorder::new()?;
    for s in &streams {
        creation.merge(&s.creation)?;
    }

    // Events each stream must receive.
    let mut expected = Vec::with_capacity(plan.streams);
    for s in 0..plan.streams {
        let mut per_key: HashMap<&Bytes, u64> = HashMap::new();
        for k in &plan.watcher_keys[s * plan.per_stream..(s + 1) * plan.per_stream] {
            *per_key.entry(k).or_insert(0) += 1;
        }
        let n: u64 = (0..plan.put_total)
            .map(|i| {
                per_key
                    .get(&plan.put_keys[i % plan.put_keys.len()])
                    .copied()
                    .unwrap_or(0)
            })
            .sum();
        expected.push(n);
    }
    let total_events: u64 = expected.iter().sum();

    let base = Instant::now();
    let starts: Arc<Vec<AtomicU64>> = Arc::new((0..plan.put_total).map(|_| AtomicU64::new(0)).collect());
    let progress = Progress::new(total_events, "events");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let receivers: Vec<_> = streams
        .into_iter()
        .zip(expected)
        .map(|(s, n)| {
            tokio::spawn(receive(
                s,
                n,
                base,
                starts.clone(),
                progress.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();

    let value = Bytes::from(vec![b'v'; plan.value_size.max(STAMP_BYTES)]);
    let put_keys = Arc::new(plan.put_keys.clone());
    let workers: Vec<StampedPut> = (0..clients.max(1))
        .map(|c| StampedPut {
            kv: KvClient::new(conns[c % conns.len()].clone()),
            keys: put_keys.clone(),
            value: value.clone(),
            base,
            starts: starts.clone(),
        })
        .collect();
    let puts = closed_loop(workers, plan.put_total, plan.put_rate, 1, &Progress::new(0, "")).await?;

    // Stop the receivers after the drain deadline if events are still missing.
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(BENCH_EVENT_DRAIN_TIMEOUT).await;
        let _ = stop_tx.send(true);
    });
    let mut events = Recorder::new()?;
    let mut last = base;
    for r in receivers {
        let (rec, at) = r
            .await
            .map_err(|e| BenchError::Invalid(format!("watch receiver failed: {e}")))??;
        events.merge(&rec)?;
        if let Some(at) = at {
            last = last.max(at);
        }
    }
    stopper.abort();
    progress.finish();
    let put_summary = puts.series.first().map(|r| r.summary("put", puts.wall));
    Ok(WatchOutcome {
        creation: creation.summary("watch creation", creation_wall),
        events: events.summary("watch events", last.saturating_duration_since(base)),
        puts: match put_summary {
            Some(s) => s,
            None => Recorder::new()?.summary("put", puts.wall),
        },
    })
}
