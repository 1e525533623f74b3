//! The side-by-side comparison of issue #8: Mainstay against the real etcd 3.4 (`/usr/bin/etcd`,
//! or `$ETCD_BIN`) on this machine, in one run, printed as a table of both absolute figures and
//! the Mainstay/etcd ratio. Run it with `scripts/bench` (which builds release first).
//!
//! Both servers are single members started by this program on free 127.0.0.1 ports, each
//! with its own data directory under the same temporary root (so the same file system), with
//! their default durability — both fsync every commit before answering (etcd's WAL; Mainstay's
//! group-committed raft log) — and kubeadm's `--snapshot-count=10000`. The load comes from
//! `mainstay::bench` (the library behind `mainstayctl bench`, etcd's benchmark workloads)
//! running in this process.
//!
//! Phase 1 (one pair of servers): every workload of the matrix runs against etcd, then
//! Mainstay, then etcd, then Mainstay (`ROUNDS` times each, interleaved to cancel machine
//! drift); the table shows the mean over rounds. Then `etcdctl check perf --load l` runs
//! against each (60 s each; pass/fail).
//! Phase 2 (a fresh pair): `LOAD_KEYS` keys (64 B keys, 256 B values) are written with
//! 10-put transactions, then each server's resident memory (VmRSS) and data-directory disk
//! usage are read, and each is stopped with SIGTERM and started again on its data: the
//! restart time is from spawn to the first answered linearizable Range of a loaded key.
//!
//! Environment:
//! - `BENCH_SMOKE=1`: small sizes (about 30 s plus the build; no `check perf` unless
//!   `BENCH_CHECK_PERF=1`). Otherwise the full matrix (about 15 minutes on 2 cores).
//! - `MAINSTAY_BIN` (default `target/release/mainstay`), `ETCD_BIN` (`/usr/bin/etcd`),
//!   `ETCDCTL_BIN` (`/usr/bin/etcdctl`).
//! - `BENCH_ROUNDS`: rounds per workload and server (full 2, smoke 1).
//! - `BENCH_LOAD_KEYS`: keys of phase 2 (full 1,000,000, smoke 20,000).
//! - `BENCH_ONLY`: a comma-separated list of workload names to run (e.g. `put-1`).
//! - `BENCH_REPORTS`: a file to which every run's full etcd-style report is appended.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clap::Parser;
use mainstay::bench::args::Output;
use mainstay::bench::{self, BenchArgs, BenchResult};
use mainstay::proto::etcdserverpb::kv_client::KvClient;
use mainstay::proto::etcdserverpb::{PutRequest, RangeRequest};

#[path = "common/mod.rs"]
mod common;

use common::*;

/// The benchmark's name in temporary directory prefixes.
const BENCH: &str = "compare";
/// Flags given to both servers besides the single-member ones (kubeadm's snapshot count).
const SERVER_FLAGS: &[&str] = &["--snapshot-count=10000"];
/// The key the range workloads read (written once, 256 B value).
const RANGE_KEY: &str = "bench-range-key";
/// How long a stopped server gets to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(60);
/// How long a restarted server gets to answer its first request.
const RESTART_DEADLINE: Duration = Duration::from_secs(600);
/// Poll interval while waiting for the restarted server.
const RESTART_POLL: Duration = Duration::from_millis(5);
/// Time given to each server after loading before its RSS is read.
const RSS_SETTLE: Duration = Duration::from_secs(3);
/// Longest `etcdctl check perf` may run (it runs 60 s plus set-up and clean-up).
const CHECK_PERF_DEADLINE: Duration = Duration::from_secs(300);

/// What a row reports, taken from one run's result.
#[derive(Clone, Copy)]
enum Metric {
    /// Requests per second of the named series (higher is better).
    Throughput(&'static str),
    /// A latency percentile of the named series in ms (lower is better).
    Latency(&'static str, f64),
}

impl Metric {
    fn get(self, r: &BenchResult) -> Option<f64> {
        match self {
            Metric::Throughput(s) => r.series(s).map(|s| s.requests_per_sec),
            Metric::Latency(s, p) => r.series(s).map(|s| match p {
                x if x >= 100.0 => s.max_ms,
                x if x >= 99.9 => s.p999_ms,
                x if x >= 99.0 => s.p99_ms,
                x if x >= 90.0 => s.p90_ms,
                _ => s.p50_ms,
            }),
        }
    }
    fn higher_is_better(self) -> bool {
        matches!(self, Metric::Throughput(_))
    }
    fn label(self) -> String {
        match self {
            Metric::Throughput(_) => "req/s".to_string(),
            Metric::Latency(_, p) => format!("p{p} ms"),
        }
    }
}

/// One workload of the matrix: a `mainstayctl bench` command line and the rows it yields.
struct Workload {
    name: &'static str,
    title: String,
    args: String,
    metrics: Vec<Metric>,
}

struct Sizes {
    put_1: usize,
    put_n: usize,
    range_1: usize,
    range_n: usize,
    many_clients: &'static str,
    watch_small_puts: usize,
    watch_large_watchers_per_stream: usize,
    watch_large_puts: usize,
    watch_large_rate: u64,
    lease_total: usize,
    load_keys: usize,
    rounds: usize,
    check_perf: bool,
}

impl Sizes {
    fn from_env() -> Result<Sizes> {
        let smoke = std::env::var("BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0");
        let check = std::env::var("BENCH_CHECK_PERF").ok().map(|v| v != "0");
        let s = if smoke {
            Sizes {
                put_1: 300,
                put_n: 5_000,
                range_1: 1_000,
                range_n: 10_000,
                many_clients: "--conns=100 --clients=1000",
                watch_small_puts: 100,
                watch_large_watchers_per_stream: 100,
                watch_large_puts: 40,
                watch_large_rate: 20,
                lease_total: 10_000,
                load_keys: env_usize("BENCH_LOAD_KEYS", 20_000)?,
                rounds: env_usize("BENCH_ROUNDS", 1)?,
                check_perf: check.unwrap_or(false),
            }
        } else {
            Sizes {
                put_1: 5_000,
                put_n: 100_000,
                range_1: 10_000,
                range_n: 100_000,
                many_clients: "--conns=100 --clients=1000",
                watch_small_puts: 1_000,
                watch_large_watchers_per_stream: 1_000,
                watch_large_puts: 200,
                watch_large_rate: 20,
                lease_total: 100_000,
                load_keys: env_usize("BENCH_LOAD_KEYS", 1_000_000)?,
                rounds: env_usize("BENCH_ROUNDS", 2)?,
                check_perf: check.unwrap_or(true),
            }
        };
        Ok(s)
    }

    fn matrix(&self) -> Vec<Workload> {
        let many = self.many_clients;
        let one = "--conns=1 --clients=1";
        let kv = "--key-size=8 --val-size=256 --sequential-keys";
        let lat = |s| {
            vec![
                Metric::Throughput(s),
                Metric::Latency(s, 50.0),
                Metric::Latency(s, 99.0),
            ]
        };
        let w = |name, title: &str, args: String, metrics| Workload {
            name,
            title: title.to_string(),
            args,
            metrics,
        };
        let watchers_large = 10 * self.watch_large_watchers_per_stream;
        vec![
            w(
                "put-1",
                "put, 1 client",
                format!("{one} put {kv} --total={0} --key-space-size={0}", self.put_1),
                lat("put"),
            ),
            w(
                "put-n",
                "put, 1000 clients / 100 conns",
                format!("{many} put {kv} --total={0} --key-space-size={0}", self.put_n),
                lat("put"),
            ),
            w(
                "txn-put-1",
                "txn-put, 1 client",
                format!("{one} txn-put {kv} --total={0} --key-space-size={0}", self.put_1),
                lat("txn-put"),
            ),
            w(
                "txn-put-n",
                "txn-put, 1000 clients / 100 conns",
                format!("{many} txn-put {kv} --total={0} --key-space-size={0}", self.put_n),
                lat("txn-put"),
            ),
            w(
                "range-l-1",
                "range linearizable, 1 client",
                format!("{one} range {RANGE_KEY} --consistency=l --total={}", self.range_1),
                lat("range"),
            ),
            w(
                "range-s-1",
                "range serializable, 1 client",
                format!("{one} range {RANGE_KEY} --consistency=s --total={}", self.range_1),
                lat("range"),
            ),
            w(
                "range-l-n",
                "range linearizable, 1000 clients",
                format!(
                    "{many} range {RANGE_KEY} --consistency=l --total={}",
                    self.range_n
                ),
                lat("range"),
            ),
            w(
                "range-s-n",
                "range serializable, 1000 clients",
                format!(
                    "{many} range {RANGE_KEY} --consistency=s --total={}",
                    self.range_n
                ),
                lat("range"),
            ),
            w(
                "watch-100",
                "watch put→event, 100 watchers",
                format!(
                    "{one} watch-latency --streams=10 --watchers-per-stream=10 --put-total={} --put-rate=100",
                    self.watch_small_puts
                ),
                vec![
                    Metric::Latency("watch events", 50.0),
                    Metric::Latency("watch events", 99.0),
                ],
            ),
            w(
                "watch-large",
                &format!("watch put→event, {} watchers", thousands(watchers_large as u64)),
                format!(
                    "{one} watch-latency --streams=10 --watchers-per-stream={} --put-total={} --put-rate={}",
                    self.watch_large_watchers_per_stream, self.watch_large_puts, self.watch_large_rate
                ),
                vec![
                    Metric::Latency("watch events", 50.0),
                    Metric::Latency("watch events", 99.0),
                ],
            ),
            w(
                "lease-keepalive",
                "lease-keepalive, 1000 clients / 100 conns",
                format!("{many} lease-keepalive --total={}", self.lease_total),
                lat("lease-keepalive"),
            ),
        ]
    }
}

struct Bins {
    mainstay: PathBuf,
    etcd: PathBuf,
    etcdctl: PathBuf,
}

impl Bins {
    fn from_env() -> Result<Bins> {
        let var = |k: &str, d: PathBuf| std::env::var_os(k).map(PathBuf::from).unwrap_or(d);
        let b = Bins {
            mainstay: var(
                "MAINSTAY_BIN",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/mainstay"),
            ),
            etcd: var("ETCD_BIN", PathBuf::from("/usr/bin/etcd")),
            etcdctl: var("ETCDCTL_BIN", PathBuf::from("/usr/bin/etcdctl")),
        };
        for p in [&b.mainstay, &b.etcd, &b.etcdctl] {
            if !p.exists() {
                bail!(
                    "{} not found (scripts/bench builds and installs what is needed)",
                    p.display()
                );
            }
        }
        Ok(b)
    }
    fn bin(&self, k: Kind) -> &Path {
        match k {
            Kind::Etcd => &self.etcd,
            Kind::Mainstay => &self.mainstay,
        }
    }
}

/// One table row: the values per server (index `Kind::index`) and which way is better.
struct Row {
    title: String,
    unit: String,
    values: [Option<f64>; 2],
    higher_is_better: bool,
}

impl Row {
    fn render(&self) -> String {
        let fmt = |v: Option<f64>| match v {
            Some(v) if v >= 1000.0 => thousands(v.round() as u64),
            Some(v) if v >= 10.0 => format!("{v:.1}"),
            Some(v) => format!("{v:.3}"),
            None => "–".to_string(),
        };
        let ratio = match self.values {
            [Some(e), Some(m)] if e > 0.0 => format!("{:.2}×", m / e),
            _ => "–".to_string(),
        };
        let better = if self.higher_is_better { "higher" } else { "lower" };
        format!(
            "| {} | {} | {} | {} | {ratio} | {better} |",
            self.title,
            self.unit,
            fmt(self.values[Kind::Etcd.index()]),
            fmt(self.values[Kind::Mainstay.index()]),
        )
    }
}

fn parse_args(endpoint: &str, line: &str) -> Result<BenchArgs> {
    let mut argv = vec!["bench".to_string(), format!("--endpoints={endpoint}")];
    argv.extend(line.split_whitespace().map(str::to_string));
    BenchArgs::try_parse_from(argv).map_err(|e| anyhow!("{line}: {e}"))
}

fn append_report(what: &str, kind: Kind, result: &BenchResult) {
    if let Some(path) = std::env::var_os("BENCH_REPORTS") {
        let text = format!(
            "==== {what} — {} ====\n{}\n",
            kind.label(),
            bench::render(result, Output::Text, false)
        );
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
    }
}

async fn put_key(endpoint: &str, key: &str, value: Bytes) -> Result<()> {
    let mut kv = KvClient::new(connect(endpoint).await?);
    tokio::time::timeout(
        REQUEST_DEADLINE,
        kv.put(PutRequest {
            key: Bytes::from(key.to_string()),
            value,
            ..PutRequest::default()
        }),
    )
    .await
    .context("put timed out")??;
    Ok(())
}

/// Phase 1: the matrix, interleaved etcd, Mainstay, etcd, Mainstay.
async fn matrix(bins: &Bins, sizes: &Sizes, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let only: Option<Vec<String>> = std::env::var("BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let flags: Vec<String> = SERVER_FLAGS.iter().map(|s| s.to_string()).collect();
    let mut servers = Vec::new();
    for kind in KINDS {
        let s = Server::start_with(kind, bins.bin(kind), BENCH, &flags).await?;
        put_key(&s.endpoint, RANGE_KEY, Bytes::from(vec![b'r'; 256])).await?;
        servers.push(s);
    }
    for w in sizes.matrix() {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == w.name)) {
            continue;
        }
        let mut sums = vec![[0.0f64; 2]; w.metrics.len()];
        let mut ok = [0usize; 2];
        for round in 0..sizes.rounds.max(1) {
            for s in servers.iter_mut() {
                s.check_alive()?;
                let args = parse_args(&s.endpoint, &w.args)?;
                eprintln!(
                    "[{}] {} round {}: mainstayctl bench {}",
                    s.kind.label(),
                    w.name,
                    round + 1,
                    w.args
                );
                match bench::run(&args).await {
                    Ok(res) => {
                        append_report(&w.title, s.kind, &res);
                        let errors: u64 = res.sections.iter().map(|x| x.summary.errors).sum();
                        if errors > 0 {
                            notes.push(format!(
                                "{} on {}: {errors} failed requests ({:?})",
                                w.title,
                                s.kind.label(),
                                res.sections
                                    .iter()
                                    .flat_map(|x| x.summary.error_distribution.keys())
                                    .next()
                            ));
                        }
                        for (i, m) in w.metrics.iter().enumerate() {
                            sums[i][s.kind.index()] += m.get(&res).unwrap_or(f64::NAN);
                        }
                        ok[s.kind.index()] += 1;
                    }
                    Err(e) => notes.push(format!(
                        "{} on {}: {}",
                        w.title,
                        s.kind.label(),
                        short(&e.to_string())
                    )),
                }
            }
        }
        for (i, m) in w.metrics.iter().enumerate() {
            let mean = |k: usize| {
                (ok[k] > 0)
                    .then(|| sums[i][k] / ok[k] as f64)
                    .filter(|v| v.is_finite())
            };
            rows.push(Row {
                title: w.title.clone(),
                unit: m.label(),
                values: [mean(0), mean(1)],
                higher_is_better: m.higher_is_better(),
            });
        }
    }
    if sizes.check_perf && only.is_none() {
        let mut vals = [None, None];
        for s in servers.iter_mut() {
            eprintln!("[{}] etcdctl check perf --load l (about 60 s)", s.kind.label());
            let (pass, summary) = check_perf(&bins.etcdctl, &s.endpoint).await?;
            notes.push(format!("check perf --load l on {}: {summary}", s.kind.label()));
            vals[s.kind.index()] = Some(if pass { 1.0 } else { 0.0 });
        }
        rows.push(Row {
            title: "etcdctl check perf --load l (1 = PASS, 0 = FAIL)".to_string(),
            unit: "pass".to_string(),
            values: vals,
            higher_is_better: true,
        });
    }
    Ok(())
}

/// Runs `etcdctl check perf --load l`; returns whether it passed and its last output lines.
async fn check_perf(etcdctl: &Path, endpoint: &str) -> Result<(bool, String)> {
    let etcdctl = etcdctl.to_path_buf();
    let endpoint = endpoint.to_string();
    let out = tokio::time::timeout(
        CHECK_PERF_DEADLINE,
        tokio::task::spawn_blocking(move || {
            Command::new(etcdctl)
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={endpoint}"))
                .args(["check", "perf", "--load=l"])
                .output()
        }),
    )
    .await
    .context("check perf did not finish")???;
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("PASS") || l.starts_with("FAIL") || l.contains("Slowest") || l.contains("Stddev")
        })
        .collect();
    Ok((out.status.success(), lines.join("; ")))
}

/// Allocated bytes of every file under `dir` (what `du` reports).
fn disk_usage(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            disk_usage(&entry.path())?
        } else {
            meta.blocks() * 512
        };
    }
    Ok(total)
}

/// From now until a linearizable Range of `key` is answered with the key.
async fn first_served(server: &mut Server, key: &Bytes, since: Instant) -> Result<Duration> {
    loop {
        server.check_alive()?;
        let attempt = async {
            let mut kv = KvClient::new(connect(&server.endpoint).await?);
            let r = kv
                .range(RangeRequest {
                    key: key.clone(),
                    ..RangeRequest::default()
                })
                .await?
                .into_inner();
            anyhow::Ok(r.count == 1)
        };
        if let Ok(Ok(true)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
            return Ok(since.elapsed());
        }
        if since.elapsed() > RESTART_DEADLINE {
            bail!(
                "{} did not serve within {RESTART_DEADLINE:?}{}",
                server.kind.label(),
                server.log_tail()
            );
        }
        tokio::time::sleep(RESTART_POLL).await;
    }
}

/// Phase 2: load, memory, disk, restart.
async fn data_phase(bins: &Bins, sizes: &Sizes, rows: &mut Vec<Row>, notes: &mut Vec<String>) -> Result<()> {
    let flags: Vec<String> = SERVER_FLAGS.iter().map(|s| s.to_string()).collect();
    let keys = sizes.load_keys.max(10);
    let txns = keys / 10;
    let load = format!(
        "--conns=10 --clients=100 txn-put --txn-ops=10 --key-size=64 --val-size=256 --key-space-size={keys} --total={txns}"
    );
    let probe = mainstay::bench::keys::key(7, 64);
    let mut rss = [None, None];
    let mut du = [None, None];
    let mut restart = [None, None];
    let mut load_rate = [None, None];
    for kind in KINDS {
        let mut s = Server::start_with(kind, bins.bin(kind), BENCH, &flags).await?;
        eprintln!(
            "[{}] loading {} keys: mainstayctl bench {load}",
            kind.label(),
            thousands(keys as u64)
        );
        let res = bench::run(&parse_args(&s.endpoint, &load)?).await?;
        append_report("load", kind, &res);
        if let Some(sum) = res.series("txn-put") {
            load_rate[kind.index()] = Some(sum.requests_per_sec * 10.0);
            if sum.errors > 0 {
                notes.push(format!(
                    "load on {}: {} failed transactions",
                    kind.label(),
                    sum.errors
                ));
            }
        }
        tokio::time::sleep(RSS_SETTLE).await;
        rss[kind.index()] = Some(s.rss_bytes()? as f64 / (1024.0 * 1024.0));
        s.stop(STOP_DEADLINE).await?;
        du[kind.index()] = Some(disk_usage(&s.data_dir())? as f64 / (1024.0 * 1024.0));
        let since = Instant::now();
        s.respawn()?;
        restart[kind.index()] = Some(first_served(&mut s, &probe, since).await?.as_secs_f64() * 1e3);
        eprintln!(
            "[{}] rss {:.0} MiB, data dir {:.0} MiB, restart {:.0} ms",
            kind.label(),
            rss[kind.index()].unwrap_or(f64::NAN),
            du[kind.index()].unwrap_or(f64::NAN),
            restart[kind.index()].unwrap_or(f64::NAN)
        );
    }
    let n = thousands(keys as u64);
    for (title, unit, values, higher) in [
        (
            format!("load {n} keys (txn of 10 puts, 100 clients)"),
            "keys/s",
            load_rate,
            true,
        ),
        (format!("resident memory after {n} keys"), "MiB", rss, false),
        (format!("data dir after {n} keys"), "MiB", du, false),
        (
            format!("restart to first linearizable read, {n} keys"),
            "ms",
            restart,
            false,
        ),
    ] {
        rows.push(Row {
            title,
            unit: unit.to_string(),
            values,
            higher_is_better: higher,
        });
    }
    Ok(())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .map_or("?".to_string(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0)
        });
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    format!(
        "{cpus} CPUs ({model}), {mem} RAM, data dirs under {}",
        std::env::temp_dir().display()
    )
}

async fn run() -> Result<()> {
    let bins = Bins::from_env()?;
    let sizes = Sizes::from_env()?;
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    matrix(&bins, &sizes, &mut rows, &mut notes).await?;
    if std::env::var("BENCH_ONLY").is_err() {
        data_phase(&bins, &sizes, &mut rows, &mut notes).await?;
    }
    let mut out = String::new();
    let _ = writeln!(out, "\nMainstay vs etcd — {}", machine());
    let _ = writeln!(out, "etcd: {}", version_line(&bins.etcd));
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "mainstay: {} at commit {commit} ({}, `--version`: {})",
        env!("CARGO_PKG_VERSION"),
        bins.mainstay.display(),
        version_line(&bins.mainstay)
    );
    let _ = writeln!(
        out,
        "rounds per workload and server: {} (interleaved etcd, mainstay); took {:.0} s\n",
        sizes.rounds,
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| Measurement | Unit | etcd 3.4 | Mainstay | Mainstay/etcd | Better |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---|");
    for r in &rows {
        let _ = writeln!(out, "{}", r.render());
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "\nNotes:");
        for n in &notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    println!("{out}");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("compare: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
