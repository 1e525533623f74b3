//! Lease benchmark: Mainstay against the real etcd 3.4 (`/usr/bin/etcd`, or `$ETCD_BIN`).
//!
//! Both servers run as child processes of this benchmark on free 127.0.0.1 ports, each with a
//! fresh temporary data directory under the same temporary root, and are killed when the
//! benchmark ends (normally, on error or on Ctrl-C). Measurements alternate between the two
//! servers (etcd, Mainstay, etcd, Mainstay, ...).
//!
//! - keep-alive throughput: 10,000 leases (TTL 60 s) are granted (64 grants in flight), then
//!   100,000 keep-alive requests are sent round-robin over the leases on 4 LeaseKeepAlive
//!   streams on one client connection, at most 256 unanswered requests per stream. The figure
//!   is responses per second from the first request to the last response; every response must
//!   carry a TTL above 0 (a live lease). The requests are split over 2 rounds per server.
//! - writes while leases expire: a single client puts one key sequentially for 5 s (baseline),
//!   then 10,000 leases with TTL 5 s are granted, each followed at once by a put of its own key
//!   attached to it (64 grant+put pairs in flight). The same sequential put loop then runs for
//!   15 s while the leases expire; p50, p99 and max put latency of both loops are reported. A
//!   second connection polls a count-only Range over the leased keys every 100 ms; the time
//!   from the moment the first and the last lease's TTL ran out (its grant response + 5 s)
//!   until the count reaches 0 is reported too. 2 rounds per server; the latency samples are
//!   pooled and the removal times averaged. etcd revokes at most 1,000 expired leases per
//!   second (`leaseRevokeRate`), so 10,000 take about 10 s from the first expiry; its minimum
//!   TTL with default timing is 2 s, below the 5 s used here.
//!
//! Environment:
//! - `MAINSTAY_BIN`: the server binary (default: the `mainstay` binary cargo built next to
//!   this benchmark, `target/release/mainstay`).
//! - `ETCD_BIN`: the etcd binary (default `/usr/bin/etcd`).
//! - `LEASE_BENCH_LEASES` (10000), `LEASE_BENCH_KEEPALIVES` (100000),
//!   `LEASE_BENCH_EXPIRING` (10000), `LEASE_BENCH_WINDOW_SECS` (15): sizes, to make a quick
//!   smoke run possible.
//!
//! Run it with `scripts/bench-lease`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use mainstay::proto::etcdserverpb::kv_client::KvClient;
use mainstay::proto::etcdserverpb::lease_client::LeaseClient;
use mainstay::proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, RangeRequest};
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

#[path = "common/mod.rs"]
mod common;

use common::*;

/// The benchmark's name in temporary directory prefixes.
const BENCH: &str = "lease";

/// How long granting (and attaching keys to) all leases of one run may take.
const GRANT_DEADLINE: Duration = Duration::from_secs(300);
/// How long one keep-alive round may take.
const KEEPALIVE_DEADLINE: Duration = Duration::from_secs(300);
/// How long after the last lease's TTL ran out its keys must all be gone.
const REMOVAL_DEADLINE: Duration = Duration::from_secs(120);

/// Grants (or grant+put pairs) in flight while granting leases.
const GRANT_CONCURRENCY: usize = 64;
/// TTL of the keep-alive leases, in seconds.
const KEEPALIVE_TTL: i64 = 60;
/// LeaseKeepAlive streams the keep-alives are spread over.
const KEEPALIVE_STREAMS: usize = 4;
/// Unanswered keep-alive requests allowed per stream.
const KEEPALIVE_WINDOW: usize = 256;
/// Rounds per server in the keep-alive measurement (the requests are split between them).
const KEEPALIVE_ROUNDS: usize = 2;
/// TTL of the expiring leases, in seconds (above etcd's minimum of 2 s with default timing).
const EXPIRY_TTL: i64 = 5;
/// Length of the baseline put loop.
const BASELINE: Duration = Duration::from_secs(5);
/// Rounds per server in the expiry measurement.
const EXPIRY_ROUNDS: usize = 2;
/// Interval of the count-only Range polling for the leased keys.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The key the put loops write.
const PROBE_KEY: &str = "bench/lease/probe";

struct Config {
    mainstay_bin: PathBuf,
    etcd_bin: PathBuf,
    leases: usize,
    keepalives: usize,
    expiring: usize,
    window: Duration,
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
            leases: env_usize("LEASE_BENCH_LEASES", 10_000)?.max(1),
            keepalives: env_usize("LEASE_BENCH_KEEPALIVES", 100_000)?
                .max(KEEPALIVE_ROUNDS * KEEPALIVE_STREAMS),
            expiring: env_usize("LEASE_BENCH_EXPIRING", 10_000)?.max(1),
            window: Duration::from_secs(env_usize("LEASE_BENCH_WINDOW_SECS", 15)?.max(1) as u64),
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

fn lease_client(ch: Channel) -> LeaseClient<Channel> {
    LeaseClient::new(ch)
}

/// Grants `count` leases with `ttl`, `GRANT_CONCURRENCY` at a time. With `key_prefix`, each
/// grant is followed at once by a put of `<key_prefix><n>` attached to the new lease. Returns
/// the lease IDs, the times of the first and the last grant response and the granted TTL (the
/// largest one the server answered).
async fn grant(
    server: &mut Server,
    count: usize,
    ttl: i64,
    key_prefix: Option<&str>,
) -> Result<(Vec<i64>, Instant, Instant, i64)> {
    let ch = connect(&server.endpoint).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..GRANT_CONCURRENCY {
        let mut lease = lease_client(ch.clone());
        let mut kv = KvClient::new(ch.clone());
        let next = next.clone();
        let prefix = key_prefix.map(str::to_string);
        tasks.push(tokio::spawn(async move {
            let mut granted = Vec::new();
            let mut first = None;
            let mut last = None;
            let mut max_ttl = 0;
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    return Ok::<_, anyhow::Error>((granted, first, last, max_ttl));
                }
                let resp = tokio::time::timeout(
                    REQUEST_DEADLINE,
                    lease.lease_grant(LeaseGrantRequest { ttl, id: 0 }),
                )
                .await
                .context("lease grant timed out")??
                .into_inner();
                if !resp.error.is_empty() {
                    bail!("lease grant failed: {}", resp.error);
                }
                let now = Instant::now();
                first.get_or_insert(now);
                last = Some(now);
                max_ttl = max_ttl.max(resp.ttl);
                if let Some(prefix) = &prefix {
                    let put = PutRequest {
                        key: Bytes::from(format!("{prefix}{i:05}")),
                        value: Bytes::from_static(b"leased"),
                        lease: resp.id,
                        ..PutRequest::default()
                    };
                    tokio::time::timeout(REQUEST_DEADLINE, kv.put(put))
                        .await
                        .context("put with lease timed out")??;
                }
                granted.push(resp.id);
            }
        }));
    }
    let until = tokio::time::Instant::now() + GRANT_DEADLINE;
    let mut result = Ok(());
    let mut ids = Vec::with_capacity(count);
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    let mut granted_ttl = 0;
    for t in tasks {
        match tokio::time::timeout_at(until, t).await {
            Ok(Ok(Ok((granted, f, l, m)))) => {
                ids.extend(granted);
                first = match (first, f) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                last = last.max(l);
                granted_ttl = granted_ttl.max(m);
            }
            Ok(Ok(Err(e))) => {
                next.store(count, Ordering::SeqCst);
                result = Err(e);
            }
            Ok(Err(e)) => result = Err(e.into()),
            Err(_) => {
                next.store(count, Ordering::SeqCst);
                result = Err(anyhow!("granting {count} leases took over {GRANT_DEADLINE:?}"));
            }
        }
    }
    if let Err(e) = result {
        server.check_alive()?;
        return Err(e);
    }
    if ids.len() != count {
        bail!("granted {} leases where {count} were expected", ids.len());
    }
    let (Some(first), Some(last)) = (first, last) else {
        bail!("no lease was granted");
    };
    Ok((ids, first, last, granted_ttl))
}

/// One keep-alive round: `requests` keep-alives for `ids`, round-robin, over
/// `KEEPALIVE_STREAMS` streams on one connection. Returns responses per second.
async fn keepalive_round(server: &mut Server, ids: Arc<Vec<i64>>, requests: usize) -> Result<f64> {
    let ch = connect(&server.endpoint).await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..KEEPALIVE_STREAMS {
        let count = requests / KEEPALIVE_STREAMS + usize::from(s < requests % KEEPALIVE_STREAMS);
        let client = lease_client(ch.clone());
        let ids = ids.clone();
        tasks.push(tokio::spawn(keepalive_stream(client, ids, s, count)));
    }
    let until = tokio::time::Instant::now() + KEEPALIVE_DEADLINE;
    let mut result = Ok(());
    let mut answered = 0;
    for t in tasks {
        match tokio::time::timeout_at(until, t).await {
            Ok(Ok(Ok(n))) => answered += n,
            Ok(Ok(Err(e))) => result = Err(e),
            Ok(Err(e)) => result = Err(e.into()),
            Err(_) => result = Err(anyhow!("{requests} keep-alives took over {KEEPALIVE_DEADLINE:?}")),
        }
    }
    let elapsed = start.elapsed();
    if let Err(e) = result {
        server.check_alive()?;
        return Err(e);
    }
    if answered != requests {
        bail!("{answered} keep-alive responses where {requests} were expected");
    }
    Ok(requests as f64 / elapsed.as_secs_f64())
}

/// One keep-alive stream: sends `count` requests (stream `s` takes every
/// `KEEPALIVE_STREAMS`-th lease, round-robin), at most `KEEPALIVE_WINDOW` unanswered, and
/// reads every response. Returns the number of responses.
async fn keepalive_stream(
    mut client: LeaseClient<Channel>,
    ids: Arc<Vec<i64>>,
    s: usize,
    count: usize,
) -> Result<usize> {
    let window = Arc::new(Semaphore::new(KEEPALIVE_WINDOW));
    let (tx, rx) = mpsc::channel(KEEPALIVE_WINDOW);
    let feeder_window = window.clone();
    let feeder = tokio::spawn(async move {
        for k in 0..count {
            let Ok(permit) = feeder_window.acquire().await else {
                return;
            };
            permit.forget();
            let id = ids[(k * KEEPALIVE_STREAMS + s) % ids.len()];
            if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                return;
            }
        }
    });
    let result = async {
        let mut responses = client
            .lease_keep_alive(ReceiverStream::new(rx))
            .await
            .context("keep-alive stream not opened")?
            .into_inner();
        let mut answered = 0;
        while answered < count {
            match responses.message().await {
                Ok(Some(resp)) => {
                    if resp.ttl <= 0 {
                        bail!("keep-alive for lease {:x} answered TTL {}", resp.id, resp.ttl);
                    }
                    answered += 1;
                    window.add_permits(1);
                }
                Ok(None) => bail!("the server ended a keep-alive stream after {answered} responses"),
                Err(status) => bail!("keep-alive stream failed: {status}"),
            }
        }
        Ok(answered)
    }
    .await;
    window.close();
    feeder.abort();
    result
}

/// A sequential put loop on `PROBE_KEY` for `length`; returns each put's latency in ns.
async fn put_loop(kv: &mut KvClient<Channel>, length: Duration) -> Result<Vec<u64>> {
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < length {
        let put = PutRequest {
            key: Bytes::from(PROBE_KEY),
            value: Bytes::from(i.to_string()),
            ..PutRequest::default()
        };
        let t = Instant::now();
        tokio::time::timeout(REQUEST_DEADLINE, kv.put(put))
            .await
            .context("probe put timed out")??;
        samples.push(t.elapsed().as_nanos() as u64);
        i += 1;
    }
    Ok(samples)
}

/// Polls a count-only Range over `[prefix, prefix+1)` until it answers 0 or `until` passes.
/// Returns the moment the count was first seen at 0.
async fn wait_removed(mut kv: KvClient<Channel>, prefix: String, until: Instant) -> Result<Instant> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let range_end = Bytes::from(end);
    loop {
        let req = RangeRequest {
            key: Bytes::from(prefix.clone()),
            range_end: range_end.clone(),
            count_only: true,
            ..RangeRequest::default()
        };
        let count = tokio::time::timeout(REQUEST_DEADLINE, kv.range(req))
            .await
            .context("count-only range timed out")??
            .into_inner()
            .count;
        if count == 0 {
            return Ok(Instant::now());
        }
        if Instant::now() >= until {
            bail!("{count} leased keys still present {REMOVAL_DEADLINE:?} after the last TTL ran out");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Samples of all expiry rounds on one server.
#[derive(Default)]
struct ExpiryTotals {
    baseline: Vec<u64>,
    during: Vec<u64>,
    removals_first: Vec<f64>,
    removals: Vec<f64>,
}

/// Samples of one expiry round.
struct ExpiryRound {
    baseline: Vec<u64>,
    during: Vec<u64>,
    /// Seconds from the first lease's TTL running out until every leased key was gone.
    removal_first: f64,
    /// Seconds from the last lease's TTL running out until every leased key was gone.
    removal: f64,
}

/// One expiry round: baseline put loop, `count` leases with a key each, then the put loop
/// while they expire, and the time until their keys are gone.
async fn expiry_round(
    server: &mut Server,
    count: usize,
    window: Duration,
    round: usize,
) -> Result<ExpiryRound> {
    let ch = connect(&server.endpoint).await?;
    let mut kv = KvClient::new(ch.clone());
    let baseline = put_loop(&mut kv, BASELINE).await?;
    let prefix = format!("bench/lease/expiring-{round}/");
    let (_, first_grant, last_grant, ttl) = grant(server, count, EXPIRY_TTL, Some(&prefix)).await?;
    let ttl = Duration::from_secs(ttl.max(0) as u64);
    let first_expiry = first_grant + ttl;
    let last_expiry = last_grant + ttl;
    let poll_ch = connect(&server.endpoint).await?;
    let poller = tokio::spawn(wait_removed(
        KvClient::new(poll_ch),
        prefix,
        last_expiry + REMOVAL_DEADLINE,
    ));
    let during = match put_loop(&mut kv, window).await {
        Ok(s) => s,
        Err(e) => {
            poller.abort();
            server.check_alive()?;
            return Err(e);
        }
    };
    let removed =
        match tokio::time::timeout_at((last_expiry + REMOVAL_DEADLINE + REQUEST_DEADLINE).into(), poller)
            .await
        {
            Ok(Ok(Ok(t))) => t,
            Ok(Ok(Err(e))) => {
                server.check_alive()?;
                return Err(e);
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => bail!("the leased keys were not gone in time"),
        };
    let since = |t: Instant| {
        if removed >= t {
            removed.duration_since(t).as_secs_f64()
        } else {
            -t.duration_since(removed).as_secs_f64()
        }
    };
    Ok(ExpiryRound {
        baseline,
        during,
        removal_first: since(first_expiry),
        removal: since(last_expiry),
    })
}

async fn keepalive_phase(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let mut servers = [
        start(Kind::Etcd, cfg, notes).await,
        start(Kind::Mainstay, cfg, notes).await,
    ];
    let mut grant_rates: [Figure; 2] = [Err(String::new()), Err(String::new())];
    let mut leases: [Result<Arc<Vec<i64>>, String>; 2] = [Err(String::new()), Err(String::new())];
    for kind in KINDS {
        let i = kind.index();
        match &mut servers[i] {
            Err(e) => {
                grant_rates[i] = Err(e.clone());
                leases[i] = Err(e.clone());
            }
            Ok(server) => {
                let t = Instant::now();
                match grant(server, cfg.leases, KEEPALIVE_TTL, None).await {
                    Ok((ids, _, _, _)) => {
                        let rate = cfg.leases as f64 / t.elapsed().as_secs_f64();
                        log(&format!(
                            "{} granted {} leases in {:.1?} ({rate:.0}/s)",
                            kind.label(),
                            cfg.leases,
                            t.elapsed()
                        ));
                        grant_rates[i] = Ok(rate);
                        leases[i] = Ok(Arc::new(ids));
                    }
                    Err(e) => {
                        let msg = fail(kind, "lease grant", &e, notes);
                        grant_rates[i] = Err(msg.clone());
                        leases[i] = Err(msg);
                    }
                }
            }
        }
    }
    let mut rates: [Result<Vec<f64>, String>; 2] = leases.clone().map(|l| l.map(|_| Vec::new()));
    for round in 0..KEEPALIVE_ROUNDS {
        let requests =
            cfg.keepalives / KEEPALIVE_ROUNDS + usize::from(round < cfg.keepalives % KEEPALIVE_ROUNDS);
        for kind in KINDS {
            let i = kind.index();
            let (Ok(server), Ok(ids), Ok(acc)) = (&mut servers[i], &leases[i], &mut rates[i]) else {
                continue;
            };
            let what = format!("keep-alive, round {}", round + 1);
            match keepalive_round(server, ids.clone(), requests).await {
                Ok(rate) => {
                    log(&format!(
                        "{} {what}: {requests} responses, {rate:.0}/s",
                        kind.label()
                    ));
                    acc.push(rate);
                }
                Err(e) => rates[i] = Err(fail(kind, &what, &e, notes)),
            }
        }
    }
    rows.push(Row {
        name: format!(
            "lease grant, {} leases, {GRANT_CONCURRENCY} in flight",
            thousands(cfg.leases as u64)
        ),
        unit: Unit::PerSecond("grants/s"),
        lower_is_better: false,
        figures: grant_rates,
    });
    rows.push(Row {
        name: format!(
            "keep-alive throughput, {} leases, {KEEPALIVE_STREAMS} streams",
            thousands(cfg.leases as u64)
        ),
        unit: Unit::PerSecond("responses/s"),
        lower_is_better: false,
        figures: rates.map(|r| r.map(|mut v| median(&mut v))),
    });
    log("stopping both servers");
}

async fn expiry_phase(cfg: &Config, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let mut servers = [
        start(Kind::Etcd, cfg, notes).await,
        start(Kind::Mainstay, cfg, notes).await,
    ];
    let mut acc: [Result<ExpiryTotals, String>; 2] =
        [Ok(ExpiryTotals::default()), Ok(ExpiryTotals::default())];
    for (i, s) in servers.iter().enumerate() {
        if let Err(e) = s {
            acc[i] = Err(e.clone());
        }
    }
    for round in 0..EXPIRY_ROUNDS {
        for kind in KINDS {
            let i = kind.index();
            let (Ok(server), Ok(totals)) = (&mut servers[i], &mut acc[i]) else {
                continue;
            };
            let what = format!("expiry of {} leases, round {}", cfg.expiring, round + 1);
            match expiry_round(server, cfg.expiring, cfg.window, round).await {
                Ok(r) => {
                    log(&format!(
                        "{} {what}: {} baseline puts, {} puts during expiry, keys gone {:.2} s after the first TTL, {:.2} s after the last",
                        kind.label(),
                        r.baseline.len(),
                        r.during.len(),
                        r.removal_first,
                        r.removal
                    ));
                    totals.baseline.extend(r.baseline);
                    totals.during.extend(r.during);
                    totals.removals_first.push(r.removal_first);
                    totals.removals.push(r.removal);
                }
                Err(e) => acc[i] = Err(fail(kind, &what, &e, notes)),
            }
        }
    }
    let stats = acc.map(|a| {
        a.map(|mut t| {
            t.baseline.sort_unstable();
            t.during.sort_unstable();
            let stat = |v: &[u64]| {
                [
                    percentile(v, 50.0) / 1e6,
                    percentile(v, 99.0) / 1e6,
                    percentile(v, 100.0) / 1e6,
                ]
            };
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            (
                stat(&t.baseline),
                stat(&t.during),
                [mean(&t.removals_first), mean(&t.removals)],
            )
        })
    });
    let n = thousands(cfg.expiring as u64);
    for (label, pick) in [("p50", 0), ("p99", 1), ("max", 2)] {
        rows.push(Row {
            name: format!("put latency {label}, baseline (no leases)"),
            unit: Unit::Millis,
            lower_is_better: true,
            figures: stats.clone().map(|s| s.map(|(b, _, _)| b[pick])),
        });
        rows.push(Row {
            name: format!("put latency {label}, while {n} leases expire"),
            unit: Unit::Millis,
            lower_is_better: true,
            figures: stats.clone().map(|s| s.map(|(_, d, _)| d[pick])),
        });
    }
    for (label, pick) in [("first", 0), ("last", 1)] {
        rows.push(Row {
            name: format!("all {n} leased keys gone, after the {label} TTL"),
            unit: Unit::Seconds,
            lower_is_better: true,
            figures: stats.clone().map(|s| s.map(|(_, _, r)| r[pick])),
        });
    }
    log("stopping both servers");
}

/// A measured figure or why there is none.
type Figure = Result<f64, String>;

#[derive(Clone, Copy)]
enum Unit {
    Millis,
    Seconds,
    PerSecond(&'static str),
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
        (Ok(v), Unit::Seconds) => format!("{v:.2} s"),
        (Ok(v), Unit::PerSecond(what)) => format!("{} {what}", thousands(*v as u64)),
    }
}

fn log(msg: &str) {
    eprintln!("[bench-lease] {msg}");
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
    println!("Lease benchmark: Mainstay vs {etcd_version}");
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
        "Keep-alive: {} leases (TTL {KEEPALIVE_TTL} s), {} requests per server over {KEEPALIVE_ROUNDS} rounds \
         (median), {KEEPALIVE_STREAMS} streams on one connection, at most {KEEPALIVE_WINDOW} unanswered per stream. \
         Expiry: {} leases (TTL {EXPIRY_TTL} s) with one key each, {EXPIRY_ROUNDS} rounds per server; one \
         sequential put client, {BASELINE:?} before the grants (baseline) and {:?} after them (while the leases \
         expire), samples pooled over the rounds; keys gone: count-only Range every {POLL_INTERVAL:?}, \
         time after the first and the last grant response + TTL, mean over the rounds.",
        cfg.leases, cfg.keepalives, cfg.expiring, cfg.window
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
    keepalive_phase(&cfg, &mut rows, &mut notes).await;
    expiry_phase(&cfg, &mut rows, &mut notes).await;
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
