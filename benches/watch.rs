//! Watch benchmark: Mainstay against the real etcd 3.4 (`/usr/bin/etcd`, or `$ETCD_BIN`).
//!
//! Both servers run as child processes of this benchmark on free 127.0.0.1 ports, each with a
//! fresh temporary data directory under the same temporary root, and are killed when the
//! benchmark ends (normally, on error or on Ctrl-C). Measurements alternate between the two
//! servers (etcd, Mainstay, etcd, Mainstay, ...) where repeating them is cheap.
//!
//! - put→event latency, p50 and p99, with 100 and with 10,000 watchers on one key, spread
//!   over 10 watch streams on one client connection (as clientv3 multiplexes them). A separate
//!   connection writes the key, one put at a time: the next put is sent only once every watcher
//!   has received the previous event. Latency is the time from just before the Put is sent to
//!   the moment the event has been decoded on each watcher; every watcher contributes one
//!   sample per put.
//! - memory per watcher: the server's VmRSS (`/proc/<pid>/status`) before opening any watch
//!   stream and after 100,000 watchers (one distinct key each) were confirmed created on 100
//!   streams, divided by the watcher count.
//! - catch-up throughput: 50,000 revisions are written (64 puts in flight), then one watcher
//!   is created at revision 1 on their prefix and timed until it has received every event.
//!
//! Environment:
//! - `MAINSTAY_BIN`: the server binary (default: the `mainstay` binary cargo built next to
//!   this benchmark, `target/release/mainstay`).
//! - `ETCD_BIN`: the etcd binary (default `/usr/bin/etcd`).
//! - `WATCH_BENCH_PUTS` (200), `WATCH_BENCH_LARGE_WATCHERS` (10000),
//!   `WATCH_BENCH_MEM_WATCHERS` (100000), `WATCH_BENCH_CATCHUP_REVISIONS` (50000): sizes, to
//!   make a quick smoke run possible.
//!
//! Run it with `scripts/bench-watch`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use mainstay::proto::etcdserverpb::kv_client::KvClient;
use mainstay::proto::etcdserverpb::watch_client::WatchClient;
use mainstay::proto::etcdserverpb::watch_request::RequestUnion;
use mainstay::proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

#[path = "common/mod.rs"]
mod common;

use common::*;

/// The benchmark's name in temporary directory prefixes.
const BENCH: &str = "watch";

/// How long creating all watchers of one run may take.
const CREATE_DEADLINE: Duration = Duration::from_secs(300);
/// How long one put may take to reach every watcher.
const EVENT_DEADLINE: Duration = Duration::from_secs(30);
/// How long loading the catch-up revisions may take.
const LOAD_DEADLINE: Duration = Duration::from_secs(600);
/// How long one catch-up replay may take.
const REPLAY_DEADLINE: Duration = Duration::from_secs(300);
/// Time given to the server after creating watchers before its RSS is read.
const RSS_SETTLE: Duration = Duration::from_secs(2);

/// Watch streams the latency watchers are spread over.
const LATENCY_STREAMS: usize = 10;
/// Rounds per latency configuration and server (the puts are split between them).
const LATENCY_ROUNDS: usize = 2;
/// Unmeasured puts at the start of each latency round.
const WARMUP_PUTS: usize = 10;
/// Watch streams the memory watchers are spread over.
const MEMORY_STREAMS: usize = 100;
/// Puts in flight while loading the catch-up revisions.
const LOAD_CONCURRENCY: usize = 64;
/// Replays per server in the catch-up measurement (the median is reported).
const CATCHUP_ROUNDS: usize = 3;
/// Size of the values written for the catch-up measurement.
const CATCHUP_VALUE_BYTES: usize = 64;

struct Config {
    mainstay_bin: PathBuf,
    etcd_bin: PathBuf,
    puts: usize,
    small_watchers: usize,
    large_watchers: usize,
    memory_watchers: usize,
    catchup_revisions: usize,
}

impl Config {
    fn from_env() -> Result<Config> {
        let mainstay_bin = std::env::var_os("MAINSTAY_BIN")
            .map(PathBuf::from)
            .or_else(|| option_env!("CARGO_BIN_EXE_mainstay").map(PathBuf::from))
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/mainstay"));
        let etcd_bin = std::env::var_os("ETCD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
        let cfg = Config {
            mainstay_bin,
            etcd_bin,
            puts: env_usize("WATCH_BENCH_PUTS", 200)?.max(LATENCY_ROUNDS),
            small_watchers: 100,
            large_watchers: env_usize("WATCH_BENCH_LARGE_WATCHERS", 10_000)?.max(1),
            memory_watchers: env_usize("WATCH_BENCH_MEM_WATCHERS", 100_000)?.max(MEMORY_STREAMS),
            catchup_revisions: env_usize("WATCH_BENCH_CATCHUP_REVISIONS", 50_000)?.max(1),
        };
        for (what, bin, hint) in [
            (
                "mainstay",
                &cfg.mainstay_bin,
                "build it with `cargo build --release --bin mainstay`",
            ),
            (
                "etcd",
                &cfg.etcd_bin,
                "install Debian's etcd-server or set ETCD_BIN",
            ),
        ] {
            if !bin.is_file() {
                bail!("{what} binary {} not found; {hint}", bin.display());
            }
        }
        Ok(cfg)
    }

    fn bin(&self, kind: Kind) -> &Path {
        match kind {
            Kind::Etcd => &self.etcd_bin,
            Kind::Mainstay => &self.mainstay_bin,
        }
    }
}

fn watch_client(ch: Channel) -> WatchClient<Channel> {
    WatchClient::new(ch)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

fn create_request(key: Bytes, range_end: Bytes, start_revision: i64) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key,
            range_end,
            start_revision,
            ..WatchCreateRequest::default()
        })),
    }
}

/// One open watch stream: the request side stays open while `requests` lives.
struct OpenStream {
    requests: mpsc::Sender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

/// Opens a watch stream on `ch` and queues `creates` on it. The create requests are fed while
/// the call waits for the response headers (etcd sends them with its first response).
async fn open_stream(ch: Channel, creates: Vec<WatchRequest>) -> Result<OpenStream> {
    let (tx, rx) = mpsc::channel(1024);
    let feeder = tx.clone();
    tokio::spawn(async move {
        for c in creates {
            if feeder.send(c).await.is_err() {
                return;
            }
        }
    });
    let responses = tokio::time::timeout(CREATE_DEADLINE, watch_client(ch).watch(ReceiverStream::new(rx)))
        .await
        .context("watch stream not opened in time")??
        .into_inner();
    Ok(OpenStream {
        requests: tx,
        responses,
    })
}

/// Progress shared by the receiving tasks of one run. Receivers wake the waiting task only
/// when a counter reaches its target, not on every response.
struct Progress {
    created: AtomicU64,
    created_target: AtomicU64,
    events: AtomicU64,
    events_target: AtomicU64,
    failure: Mutex<Option<String>>,
    changed: Notify,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            created: AtomicU64::new(0),
            created_target: AtomicU64::new(u64::MAX),
            events: AtomicU64::new(0),
            events_target: AtomicU64::new(u64::MAX),
            failure: Mutex::new(None),
            changed: Notify::new(),
        }
    }

    fn fail(&self, msg: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(msg);
        }
        self.changed.notify_one();
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Adds `n` to `counter` and wakes the waiter when it reached `target`.
    fn add(&self, counter: &AtomicU64, target: &AtomicU64, n: u64) {
        if counter.fetch_add(n, Ordering::SeqCst) + n >= target.load(Ordering::SeqCst) {
            self.changed.notify_one();
        }
    }

    /// Waits until `counter` reaches `target`, a receiver fails, or `deadline` passes.
    async fn wait_for(
        &self,
        counter: &AtomicU64,
        target_slot: &AtomicU64,
        target: u64,
        deadline: Duration,
        what: &str,
    ) -> Result<()> {
        target_slot.store(target, Ordering::SeqCst);
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(f) = self.failure() {
                bail!("{f}");
            }
            let n = counter.load(Ordering::SeqCst);
            if n >= target {
                return Ok(());
            }
            if tokio::time::timeout_at(until, self.changed.notified())
                .await
                .is_err()
            {
                bail!("only {n} of {target} {what} within {deadline:?}");
            }
        }
    }
}

/// Reads one stream until `stop` fires: counts created watchers and events, and keeps the
/// latency of every measured event (puts numbered `warmup` and up), in nanoseconds.
async fn receive(
    mut responses: Streaming<WatchResponse>,
    base: Instant,
    warmup: u64,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> Vec<u64> {
    let mut samples = Vec::new();
    loop {
        let msg = tokio::select! {
            m = responses.message() => m,
            _ = stop.changed() => return samples,
        };
        let resp = match msg {
            Ok(Some(resp)) => resp,
            Ok(None) => {
                progress.fail("the server ended a watch stream".to_string());
                return samples;
            }
            Err(status) => {
                progress.fail(format!("watch stream failed: {status}"));
                return samples;
            }
        };
        let now = base.elapsed().as_nanos() as u64;
        if resp.canceled {
            progress.fail(format!(
                "watch {} canceled: {:?}",
                resp.watch_id, resp.cancel_reason
            ));
            return samples;
        }
        if resp.created {
            progress.add(&progress.created, &progress.created_target, 1);
        }
        for ev in &resp.events {
            if let Some((i, sent)) = ev.kv.as_ref().and_then(|kv| parse_stamp(&kv.value))
                && i >= warmup
            {
                samples.push(now.saturating_sub(sent));
            }
        }
        if !resp.events.is_empty() {
            progress.add(
                &progress.events,
                &progress.events_target,
                resp.events.len() as u64,
            );
        }
    }
}

/// A put's value: its number and the time it was sent, in nanoseconds since `base`.
fn stamp(i: usize, base: Instant) -> Bytes {
    Bytes::from(format!("{i}:{}", base.elapsed().as_nanos()))
}

fn parse_stamp(v: &[u8]) -> Option<(u64, u64)> {
    let (i, t) = std::str::from_utf8(v).ok()?.split_once(':')?;
    Some((i.parse().ok()?, t.parse().ok()?))
}

/// The watchers of one run, spread over `streams` streams on one connection.
struct WatchSet {
    streams: Vec<mpsc::Sender<WatchRequest>>,
    receivers: Vec<JoinHandle<Vec<u64>>>,
    progress: Arc<Progress>,
    stop: watch::Sender<bool>,
}

impl WatchSet {
    /// Opens the streams, queues `keys.len()` creates (one per key) and waits until every
    /// watcher is confirmed created.
    async fn create(
        server: &mut Server,
        keys: Vec<Bytes>,
        streams: usize,
        base: Instant,
        warmup: u64,
    ) -> Result<WatchSet> {
        let ch = connect(&server.endpoint).await?;
        let progress = Arc::new(Progress::new());
        let (stop, stop_rx) = watch::channel(false);
        let total = keys.len();
        let mut set = WatchSet {
            streams: Vec::new(),
            receivers: Vec::new(),
            progress: progress.clone(),
            stop,
        };
        let mut per_stream: Vec<Vec<WatchRequest>> = vec![Vec::new(); streams];
        for (i, key) in keys.into_iter().enumerate() {
            per_stream[i % streams].push(create_request(key, Bytes::new(), 0));
        }
        for creates in per_stream {
            let s = open_stream(ch.clone(), creates).await?;
            set.streams.push(s.requests);
            set.receivers.push(tokio::spawn(receive(
                s.responses,
                base,
                warmup,
                progress.clone(),
                stop_rx.clone(),
            )));
        }
        let waited = progress
            .wait_for(
                &progress.created,
                &progress.created_target,
                total as u64,
                CREATE_DEADLINE,
                "watchers created",
            )
            .await;
        if let Err(e) = waited {
            server.check_alive()?;
            return Err(e);
        }
        Ok(set)
    }

    /// Stops the receivers and returns their samples.
    async fn finish(self) -> Vec<u64> {
        let _ = self.stop.send(true);
        let mut samples = Vec::new();
        for r in self.receivers {
            if let Ok(Ok(s)) = tokio::time::timeout(REQUEST_DEADLINE, r).await {
                samples.extend(s);
            }
        }
        drop(self.streams);
        samples
    }
}

/// One latency round: `watchers` watchers on one key, `warmup + puts` sequential puts.
async fn latency_round(server: &mut Server, watchers: usize, puts: usize, tag: &str) -> Result<Vec<u64>> {
    let key = Bytes::from(format!("bench/latency/{tag}"));
    let base = Instant::now();
    let set = WatchSet::create(
        server,
        vec![key.clone(); watchers],
        LATENCY_STREAMS.min(watchers),
        base,
        WARMUP_PUTS as u64,
    )
    .await?;
    let mut kv = KvClient::new(connect(&server.endpoint).await?);
    let progress = set.progress.clone();
    for i in 0..WARMUP_PUTS + puts {
        let put = PutRequest {
            key: key.clone(),
            value: stamp(i, base),
            ..PutRequest::default()
        };
        tokio::time::timeout(REQUEST_DEADLINE, kv.put(put))
            .await
            .context("put timed out")??;
        let target = ((i + 1) * watchers) as u64;
        if let Err(e) = progress
            .wait_for(
                &progress.events,
                &progress.events_target,
                target,
                EVENT_DEADLINE,
                "events",
            )
            .await
        {
            server.check_alive()?;
            return Err(e.context(format!("put {i}")));
        }
    }
    let got = progress.events.load(Ordering::SeqCst);
    let samples = set.finish().await;
    let expected = ((WARMUP_PUTS + puts) * watchers) as u64;
    if got != expected || samples.len() != puts * watchers {
        bail!(
            "received {got} events ({} measured) where {expected} ({}) were expected",
            samples.len(),
            puts * watchers
        );
    }
    Ok(samples)
}

/// Memory per watcher in bytes: RSS growth over creating `watchers` watchers, one key each.
async fn memory_run(server: &mut Server, watchers: usize) -> Result<(f64, u64)> {
    tokio::time::sleep(RSS_SETTLE).await;
    let before = server.rss_bytes()?;
    let keys = (0..watchers)
        .map(|i| Bytes::from(format!("bench/memory/{i:07}")))
        .collect();
    let set = WatchSet::create(server, keys, MEMORY_STREAMS, Instant::now(), 0).await?;
    tokio::time::sleep(RSS_SETTLE).await;
    let after = server.rss_bytes()?;
    set.finish().await;
    let grown = after.saturating_sub(before);
    Ok((grown as f64 / watchers as f64, grown))
}

const CATCHUP_PREFIX: &str = "bench/catchup/";

/// Writes `revisions` puts under the catch-up prefix, `LOAD_CONCURRENCY` at a time.
async fn load(server: &mut Server, revisions: usize) -> Result<()> {
    let ch = connect(&server.endpoint).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let value = Bytes::from(vec![b'v'; CATCHUP_VALUE_BYTES]);
    let mut tasks = Vec::new();
    for _ in 0..LOAD_CONCURRENCY {
        let mut kv = KvClient::new(ch.clone());
        let next = next.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= revisions {
                    return Ok::<(), anyhow::Error>(());
                }
                let put = PutRequest {
                    key: Bytes::from(format!("{CATCHUP_PREFIX}{:04}", i % 1000)),
                    value: value.clone(),
                    ..PutRequest::default()
                };
                tokio::time::timeout(REQUEST_DEADLINE, kv.put(put))
                    .await
                    .context("put timed out")??;
            }
        }));
    }
    let until = tokio::time::Instant::now() + LOAD_DEADLINE;
    let mut result = Ok(());
    for t in tasks {
        match tokio::time::timeout_at(until, t).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => result = Err(e),
            Ok(Err(e)) => result = Err(e.into()),
            Err(_) => {
                next.store(revisions, Ordering::SeqCst);
                result = Err(anyhow!(
                    "loading {revisions} revisions took over {LOAD_DEADLINE:?}"
                ));
            }
        }
    }
    if result.is_err() {
        server.check_alive()?;
    }
    result
}

/// One replay: a watcher on the catch-up prefix from revision 1, timed until it has received
/// `revisions` events. Returns events per second.
async fn replay(server: &mut Server, revisions: usize) -> Result<f64> {
    let ch = connect(&server.endpoint).await?;
    let mut end = CATCHUP_PREFIX.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let start = Instant::now();
    let mut s = open_stream(
        ch,
        vec![create_request(Bytes::from(CATCHUP_PREFIX), Bytes::from(end), 1)],
    )
    .await?;
    let until = tokio::time::Instant::now() + REPLAY_DEADLINE;
    let mut events = 0usize;
    while events < revisions {
        let resp = match tokio::time::timeout_at(until, s.responses.message()).await {
            Err(_) => bail!("only {events} of {revisions} events within {REPLAY_DEADLINE:?}"),
            Ok(Err(status)) => {
                server.check_alive()?;
                bail!("watch stream failed: {status}")
            }
            Ok(Ok(None)) => bail!("the server ended the watch stream"),
            Ok(Ok(Some(resp))) => resp,
        };
        if resp.canceled {
            bail!("watch canceled: {:?}", resp.cancel_reason);
        }
        events += resp.events.len();
    }
    let elapsed = start.elapsed();
    drop(s.requests);
    if events != revisions {
        bail!("received {events} events where {revisions} were expected");
    }
    Ok(revisions as f64 / elapsed.as_secs_f64())
}

/// A measured figure or why there is none.
type Figure = Result<f64, String>;

#[derive(Clone, Copy)]
enum Unit {
    Millis,
    Bytes,
    PerSecond,
}

struct Row {
    name: String,
    unit: Unit,
    lower_is_better: bool,
    figures: [Figure; 2],
}

fn format_figure(f: &Figure, unit: Unit) -> String {
    match (f, unit) {
        (Err(e), _) => format!("failed: {e}"),
        (Ok(v), Unit::Millis) => format!("{v:.3} ms"),
        (Ok(v), Unit::Bytes) if *v >= 1024.0 => format!("{:.2} KiB", v / 1024.0),
        (Ok(v), Unit::Bytes) => format!("{v:.0} B"),
        (Ok(v), Unit::PerSecond) => format!("{} events/s", thousands(*v as u64)),
    }
}

fn log(msg: &str) {
    eprintln!("[bench-watch] {msg}");
}

/// Starts a server, logging a failure.
async fn start(kind: Kind, cfg: &Config, notes: &mut Vec<String>) -> Result<Server, String> {
    log(&format!("starting {}", kind.label()));
    Server::start(kind, cfg.bin(kind), BENCH).await.map_err(|e| {
        notes.push(format!("{} did not start: {e:#}", kind.label()));
        format!("did not start: {e:#}")
    })
}

fn fail(kind: Kind, what: &str, e: &anyhow::Error, notes: &mut Vec<String>) -> String {
    let msg = format!("{e:#}");
    log(&format!("{} {what}: FAILED: {msg}", kind.label()));
    notes.push(format!("{} {what}: {msg}", kind.label()));
    msg
}

async fn latency_phase(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let mut servers = [
        start(Kind::Etcd, cfg, notes).await,
        start(Kind::Mainstay, cfg, notes).await,
    ];
    for watchers in [cfg.small_watchers, cfg.large_watchers] {
        let mut samples: [Result<Vec<u64>, String>; 2] = [Ok(Vec::new()), Ok(Vec::new())];
        for (i, s) in servers.iter().enumerate() {
            if let Err(e) = s {
                samples[i] = Err(e.clone());
            }
        }
        for round in 0..LATENCY_ROUNDS {
            let puts = cfg.puts / LATENCY_ROUNDS + usize::from(round < cfg.puts % LATENCY_ROUNDS);
            for kind in KINDS {
                let (Ok(server), Ok(acc)) = (&mut servers[kind.index()], &mut samples[kind.index()]) else {
                    continue;
                };
                let what = format!("latency, {watchers} watchers, round {}", round + 1);
                let t = Instant::now();
                match latency_round(server, watchers, puts, &format!("{watchers}-{round}")).await {
                    Ok(s) => {
                        log(&format!(
                            "{} {what}: {} samples in {:.1?}",
                            kind.label(),
                            s.len(),
                            t.elapsed()
                        ));
                        acc.extend(s);
                    }
                    Err(e) => samples[kind.index()] = Err(fail(kind, &what, &e, notes)),
                }
            }
        }
        let stats = samples.map(|s| {
            s.map(|mut v| {
                v.sort_unstable();
                (percentile(&v, 50.0) / 1e6, percentile(&v, 99.0) / 1e6)
            })
        });
        for (p, pick) in [("p50", 0), ("p99", 1)] {
            rows.push(Row {
                name: format!("put→event latency {p}, {} watchers", thousands(watchers as u64)),
                unit: Unit::Millis,
                lower_is_better: true,
                figures: stats
                    .clone()
                    .map(|s| s.map(|(p50, p99)| if pick == 0 { p50 } else { p99 })),
            });
        }
    }
    log("stopping both servers");
}

async fn memory_phase(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let mut figures: [Figure; 2] = [Err(String::new()), Err(String::new())];
    for kind in KINDS {
        figures[kind.index()] = match start(kind, cfg, notes).await {
            Err(e) => Err(e),
            Ok(mut server) => {
                let what = format!("memory, {} watchers", cfg.memory_watchers);
                let t = Instant::now();
                match memory_run(&mut server, cfg.memory_watchers).await {
                    Ok((per, grown)) => {
                        log(&format!(
                            "{} {what}: RSS grew {:.1} MiB, {per:.0} B per watcher ({:.1?})",
                            kind.label(),
                            grown as f64 / 1048576.0,
                            t.elapsed()
                        ));
                        Ok(per)
                    }
                    Err(e) => Err(fail(kind, &what, &e, notes)),
                }
            }
        };
    }
    rows.push(Row {
        name: format!(
            "memory per watcher, {} watchers",
            thousands(cfg.memory_watchers as u64)
        ),
        unit: Unit::Bytes,
        lower_is_better: true,
        figures,
    });
}

async fn catchup_phase(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let revisions = cfg.catchup_revisions;
    let mut servers = [
        start(Kind::Etcd, cfg, notes).await,
        start(Kind::Mainstay, cfg, notes).await,
    ];
    let mut rates: [Result<Vec<f64>, String>; 2] = [Ok(Vec::new()), Ok(Vec::new())];
    for kind in KINDS {
        let i = kind.index();
        match &mut servers[i] {
            Err(e) => rates[i] = Err(e.clone()),
            Ok(server) => {
                let t = Instant::now();
                match load(server, revisions).await {
                    Ok(()) => log(&format!(
                        "{} loaded {revisions} revisions in {:.1?}",
                        kind.label(),
                        t.elapsed()
                    )),
                    Err(e) => rates[i] = Err(fail(kind, "catch-up load", &e, notes)),
                }
            }
        }
    }
    for round in 0..CATCHUP_ROUNDS {
        for kind in KINDS {
            let i = kind.index();
            let (Ok(server), Ok(acc)) = (&mut servers[i], &mut rates[i]) else {
                continue;
            };
            let what = format!("catch-up replay, round {}", round + 1);
            match replay(server, revisions).await {
                Ok(rate) => {
                    log(&format!("{} {what}: {rate:.0} events/s", kind.label()));
                    acc.push(rate);
                }
                Err(e) => rates[i] = Err(fail(kind, &what, &e, notes)),
            }
        }
    }
    rows.push(Row {
        name: format!("catch-up replay of {} revisions", thousands(revisions as u64)),
        unit: Unit::PerSecond,
        lower_is_better: false,
        figures: rates.map(|r| r.map(|mut v| median(&mut v))),
    });
    log("stopping both servers");
}

fn print_table(cfg: &Config, rows: &[Row], notes: &[String]) {
    let etcd_version = version_line(&cfg.etcd_bin);
    let etcd_label = etcd_version
        .strip_prefix("etcd Version: ")
        .map_or_else(|| "etcd".to_string(), |v| format!("etcd {v}"));
    let header = [
        "Measurement".to_string(),
        etcd_label,
        "Mainstay".to_string(),
        "Mainstay/etcd".to_string(),
    ];
    let mut lines = vec![header];
    for r in rows {
        let ratio = match &r.figures {
            [Ok(e), Ok(m)] if *e > 0.0 => {
                let verdict = if m == e {
                    "same"
                } else if (m < e) == r.lower_is_better {
                    "better"
                } else {
                    "worse"
                };
                format!("{:.2}× ({verdict})", m / e)
            }
            _ => "n/a".to_string(),
        };
        lines.push([
            r.name.clone(),
            format_figure(&r.figures[0].clone().map_err(|e| short(&e)), r.unit),
            format_figure(&r.figures[1].clone().map_err(|e| short(&e)), r.unit),
            ratio,
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0))
        .collect();
    let fmt = |l: &[String; 4]| {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s}{}", " ".repeat(w - s.chars().count())))
            .collect();
        format!("| {} |", cells.join(" | "))
    };
    println!();
    println!("Watch benchmark: Mainstay vs {etcd_version}");
    println!(
        "host: {} CPUs; servers and client on the same host; Mainstay binary {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cfg.mainstay_bin.display()
    );
    println!();
    println!("{}", fmt(&lines[0]));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for l in &lines[1..] {
        println!("{}", fmt(l));
    }
    println!();
    println!(
        "Latency: {} puts per server and watcher count ({LATENCY_ROUNDS} rounds of {WARMUP_PUTS} warm-up + half), \
         watchers on {LATENCY_STREAMS} streams over one connection. Memory: {MEMORY_STREAMS} streams, \
         one key per watcher, VmRSS delta / watchers. Catch-up: median of {CATCHUP_ROUNDS} replays.",
        cfg.puts
    );
    if !notes.is_empty() {
        println!();
        println!("Notes:");
        for n in notes {
            println!("- {n}");
        }
    }
}

async fn run() -> Result<()> {
    let cfg = Config::from_env()?;
    log(&format!(
        "mainstay: {}; etcd: {} ({})",
        cfg.mainstay_bin.display(),
        cfg.etcd_bin.display(),
        version_line(&cfg.etcd_bin)
    ));
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    latency_phase(&cfg, &mut rows, &mut notes).await;
    memory_phase(&cfg, &mut rows, &mut notes).await;
    catchup_phase(&cfg, &mut rows, &mut notes).await;
    print_table(&cfg, &rows, &notes);
    Ok(())
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        tokio::select! {
            r = run() => r,
            // Dropping `run` drops the servers, which kills them.
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })
}
