//! The closed-loop driver shared by the request/response workloads (put, txn-put, range,
//! txn-mixed, lease-keepalive), as etcd's `benchmark` runs them: `--clients` loops, each
//! sending its next request when the previous one answered, spread round-robin over the
//! connections, together sending `--total` requests, optionally paced to `--rate` per second.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::error::BenchError;
use super::progress::Progress;
use super::report::Recorder;
use crate::config::limits::BENCH_REQUEST_TIMEOUT;

/// One client loop's request maker.
pub trait Worker: Send + 'static {
    /// Sends request number `i` (0-based, unique across clients) and waits for its answer.
    /// Returns the series the request belongs to (0 unless a workload reports several, like
    /// txn-mixed's reads and writes) and the outcome.
    fn call(&mut self, i: usize) -> impl Future<Output = (usize, Result<(), tonic::Status>)> + Send;
}

/// etcd's error text for a failed request (`err.Error()` of a gRPC status).
pub fn status_text(s: &tonic::Status) -> String {
    format!("rpc error: code = {:?} desc = {}", s.code(), s.message())
}

/// Spaces request starts `1/rate` seconds apart from a common start (rate 0: no pacing);
/// like etcd's `rate.NewLimiter(rate, 1)`, a late request does not build up a burst beyond one.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start: tokio::time::Instant,
    interval: Option<Duration>,
}

impl Pacer {
    /// A pacer for `rate` requests per second.
    pub fn new(rate: u64) -> Pacer {
        Pacer {
            start: tokio::time::Instant::now(),
            interval: (rate > 0).then(|| Duration::from_secs_f64(1.0 / rate as f64)),
        }
    }

    /// Waits until request `i` may start.
    pub async fn wait(&self, i: usize) {
        if let Some(iv) = self.interval {
            tokio::time::sleep_until(self.start + iv.mul_f64(i as f64)).await;
        }
    }
}

/// What a run measured: its wall time and one recorder per series.
#[derive(Debug)]
pub struct Outcome {
    /// From the first request's start to the last answer.
    pub wall: Duration,
    /// Merged latencies and errors per series.
    pub series: Vec<Recorder>,
}

/// Runs `workers` (one per client) until `total` requests were sent, each with at most
/// `BENCH_REQUEST_TIMEOUT`; `series` is the number of series the workers report.
pub async fn closed_loop<W: Worker>(
    workers: Vec<W>,
    total: usize,
    rate: u64,
    series: usize,
    progress: &Progress,
) -> Result<Outcome, BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let pacer = Pacer::new(rate);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(workers.len());
    for mut w in workers {
        let next = next.clone();
        let progress = progress.clone();
        let mut recs = (0..series.max(1))
            .map(|_| Recorder::new())
            .collect::<Result<Vec<_>, _>>()?;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                pacer.wait(i).await;
                let st = Instant::now();
                let (s, res) = match tokio::time::timeout(BENCH_REQUEST_TIMEOUT, w.call(i)).await {
                    Ok(r) => r,
                    Err(_) => (
                        0,
                        Err(tonic::Status::deadline_exceeded("context deadline exceeded")),
                    ),
                };
                let rec = recs.len() - 1;
                let rec = &mut recs[s.min(rec)];
                match res {
                    Ok(()) => rec.record(st.elapsed()),
                    Err(e) => rec.record_error(&status_text(&e)),
                }
                progress.inc();
            }
            recs
        }));
    }
    let mut merged = (0..series.max(1))
        .map(|_| Recorder::new())
        .collect::<Result<Vec<_>, _>>()?;
    for t in tasks {
        let recs = t
            .await
            .map_err(|e| BenchError::Invalid(format!("client task failed: {e}")))?;
        for (m, r) in merged.iter_mut().zip(&recs) {
            m.merge(r)?;
        }
    }
    progress.finish();
    Ok(Outcome {
        wall: started.elapsed(),
        series: merged,
    })
}
