//! `mainstayctl bench`: a client-side load generator shaped like etcd's `tools/benchmark`
//! (same subcommands, flags and defaults; the same report: summary, response-time
//! histogram, latency distribution, error distribution), so its numbers compare with
//! published etcd figures and so one tool drives both Mainstay and the real etcd in
//! `scripts/bench`. It speaks only the public etcd v3 gRPC API, so it works against any etcd
//! v3 endpoint, plaintext or TLS.
//!
//! - [`args`]: the command line; [`client`]: connections; [`runner`]: the closed-loop driver;
//!   [`kv`], [`watch`], [`lease`]: the workloads; [`report`]: latency statistics and output.
//! - [`run`] executes parsed arguments and returns the report sections; [`render`] formats
//!   them as text or JSON. Failed requests are counted in the report, not returned as errors.

pub mod args;
pub mod client;
pub mod error;
pub mod keys;
pub mod kv;
pub mod lease;
pub mod progress;
pub mod report;
pub mod runner;
pub mod watch;

use serde::Serialize;
use tonic::transport::Channel;

pub use args::BenchArgs;
use args::{BenchCommand, Consistency, Output};
pub use error::BenchError;
use progress::Progress;
pub use report::Summary;
use runner::{Outcome, Worker, closed_loop};

/// One titled part of a report (etcd prints e.g. `Watch creation summary:` before a report).
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// Printed before the summary (may be empty).
    pub title: String,
    /// The statistics.
    pub summary: Summary,
}

/// Everything a benchmark run printed.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// The subcommand.
    pub command: String,
    /// Lines etcd prints before the report (e.g. `bench with linearizable range`).
    pub preface: Vec<String>,
    /// The report sections.
    pub sections: Vec<Section>,
}

impl BenchResult {
    /// The section whose summary is named `name`.
    pub fn series(&self, name: &str) -> Option<&Summary> {
        self.sections.iter().map(|s| &s.summary).find(|s| s.name == name)
    }
}

fn section(title: &str, summary: Summary) -> Section {
    Section {
        title: title.to_string(),
        summary,
    }
}

async fn drive<W: Worker>(
    workers: Vec<W>,
    total: usize,
    rate: u64,
    series: usize,
    label: &str,
) -> Result<Outcome, BenchError> {
    let progress = Progress::new(total as u64, label);
    closed_loop(workers, total, rate, series, &progress).await
}

fn consistency_line(c: Consistency) -> String {
    match c {
        Consistency::Linearizable => "bench with linearizable range".to_string(),
        Consistency::Serializable => "bench with serializable range".to_string(),
    }
}

fn single(outcome: &Outcome, name: &str) -> Result<Summary, BenchError> {
    outcome
        .series
        .first()
        .map(|r| r.summary(name, outcome.wall))
        .ok_or_else(|| BenchError::Invalid("no results".to_string()))
}

/// Runs the benchmark `args` describes against `args.global.endpoints`.
pub async fn run(args: &BenchArgs) -> Result<BenchResult, BenchError> {
    let conns = client::connect_all(&args.global).await?;
    run_on(&conns, args).await
}

/// Runs the benchmark on already dialled connections (`args.global.conns` is ignored).
pub async fn run_on(conns: &[Channel], args: &BenchArgs) -> Result<BenchResult, BenchError> {
    if conns.is_empty() {
        return Err(BenchError::Invalid("no connections".to_string()));
    }
    let clients = args.global.clients.max(1);
    let mut preface = Vec::new();
    let (command, sections) = match &args.command {
        BenchCommand::Put(o) => {
            let out = drive(kv::put(conns, clients, o)?, o.total, o.rate, 1, "put").await?;
            ("put", vec![section("", single(&out, "put")?)])
        }
        BenchCommand::TxnPut(o) => {
            let out = drive(kv::txn_put(conns, clients, o)?, o.total, o.rate, 1, "txn-put").await?;
            ("txn-put", vec![section("", single(&out, "txn-put")?)])
        }
        BenchCommand::Range(o) => {
            preface.push(consistency_line(o.consistency));
            let out = drive(kv::range(conns, clients, o)?, o.total, o.rate, 1, "range").await?;
            ("range", vec![section("", single(&out, "range")?)])
        }
        BenchCommand::TxnMixed(o) => {
            preface.push(consistency_line(o.consistency));
            let out = drive(kv::txn_mixed(conns, clients, o)?, o.total, o.rate, 2, "txn-mixed").await?;
            let mut secs = Vec::new();
            for (idx, name, title) in [
                (kv::READ_SERIES, "read", "Read"),
                (kv::WRITE_SERIES, "write", "Write"),
            ] {
                let rec = &out.series[idx.min(out.series.len() - 1)];
                let n = rec.count() + rec.error_count();
                secs.push(section(
                    &format!("Total {title} Ops: {n}\nDetails:"),
                    rec.summary(name, out.wall),
                ));
            }
            ("txn-mixed", secs)
        }
        BenchCommand::Watch(o) => {
            let out = watch::run(conns, clients, &watch::watch_plan(o)?).await?;
            (
                "watch",
                vec![
                    section("Watch creation summary:", out.creation),
                    section("Watch events received summary:", out.events),
                ],
            )
        }
        BenchCommand::WatchLatency(o) => {
            let out = watch::run(conns, clients, &watch::latency_plan(o)).await?;
            ("watch-latency", vec![section("", out.events)])
        }
        BenchCommand::LeaseKeepalive(o) => {
            let workers = lease::workers(conns, clients).await?;
            let out = drive(workers, o.total, 0, 1, "lease-keepalive").await?;
            (
                "lease-keepalive",
                vec![section("", single(&out, "lease-keepalive")?)],
            )
        }
    };
    Ok(BenchResult {
        command: command.to_string(),
        preface,
        sections,
    })
}

/// The result as `--output` asks: etcd's text report, or one JSON object.
pub fn render(result: &BenchResult, output: Output, precise: bool) -> String {
    match output {
        Output::Json => serde_json::to_string_pretty(result).unwrap_or_default() + "\n",
        Output::Text => {
            let mut s = String::new();
            for line in &result.preface {
                s.push_str(line);
                s.push('\n');
            }
            for sec in &result.sections {
                if !sec.title.is_empty() {
                    s.push_str(&sec.title);
                    s.push('\n');
                }
                s.push_str(&sec.summary.render(precise));
            }
            s
        }
    }
}
