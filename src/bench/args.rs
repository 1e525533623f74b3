//! Command-line arguments of `mainstayctl bench`, with the names and defaults of etcd's
//! `tools/benchmark` (`cmd/root.go` global flags; `cmd/put.go`, `txn_put.go`, `range.go`,
//! `txn_mixed.go`, `watch.go`, `watch_latency.go`, `lease.go` per subcommand), so published
//! etcd command lines run unchanged. Global flags may be given before or after the
//! subcommand (cobra's persistent flags).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::duration::parse_go_duration;

/// `mainstayctl bench [global flags] <subcommand> [flags]`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "bench",
    about = "A low-level benchmark tool for etcd v3 endpoints (etcd's `benchmark`, same flags)"
)]
pub struct BenchArgs {
    /// Connection and output flags shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// The workload.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// Output formats (etcd: `--output`, where only `json` is an alternative to the text report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// etcd's text report.
    Text,
    /// One JSON object with every series' summary.
    Json,
}

/// Read consistency of ranges (etcd: `--consistency l|s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable: the server confirms leadership (ReadIndex) before reading.
    #[value(name = "l")]
    Linearizable,
    /// Serializable: served from the member's local store.
    #[value(name = "s")]
    Serializable,
}

fn go_duration(s: &str) -> Result<Duration, String> {
    parse_go_duration(s).map_err(|e| e.to_string())
}

/// Global flags (etcd `cmd/root.go`).
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// gRPC endpoints, comma separated (`host:port` or `http(s)://host:port`).
    #[arg(long, global = true, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Total number of gRPC connections.
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,
    /// Total number of gRPC clients (concurrent request loops, spread over the connections).
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,
    /// Verify certificates of HTTPS-enabled servers using this CA bundle.
    #[arg(long, global = true)]
    pub cacert: Option<PathBuf>,
    /// Identify HTTPS client using this SSL certificate file.
    #[arg(long, global = true)]
    pub cert: Option<PathBuf>,
    /// Identify HTTPS client using this SSL key file.
    #[arg(long, global = true)]
    pub key: Option<PathBuf>,
    /// Dial timeout for client connections (Go duration; 0 means 10 s).
    #[arg(long, global = true, value_parser = go_duration, default_value = "0s")]
    pub dial_timeout: Duration,
    /// Use full floating point precision.
    #[arg(long, global = true)]
    pub precise: bool,
    /// Output format of the results.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// The workloads.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// Benchmark put.
    Put(PutOpts),
    /// Benchmark txn-put (a Txn of `--txn-ops` puts, the Kubernetes-shaped write).
    TxnPut(TxnPutOpts),
    /// Benchmark range: `range KEY [END]`.
    Range(RangeOpts),
    /// Benchmark a mixed load of txn-put and txn-range: `txn-mixed [KEY [END]]`.
    TxnMixed(TxnMixedOpts),
    /// Benchmark watch: event fan-out to many watchers while keys are written.
    Watch(WatchOpts),
    /// Benchmark watch latency: time from a put to its event at every watcher.
    WatchLatency(WatchLatencyOpts),
    /// Benchmark lease keepalive.
    LeaseKeepalive(LeaseKeepaliveOpts),
}

/// Key and value shape of written requests.
#[derive(Debug, Clone, Args)]
pub struct KeyOpts {
    /// Key size of put request.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size of put request.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Maximum possible keys.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Use sequential keys (otherwise uniformly random in the key space).
    #[arg(long)]
    pub sequential_keys: bool,
}

/// `put` (etcd `cmd/put.go`).
#[derive(Debug, Clone, Args)]
pub struct PutOpts {
    /// Key and value shape.
    #[command(flatten)]
    pub keys: KeyOpts,
    /// Total number of put requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: usize,
    /// Maximum puts per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// `txn-put` (etcd `cmd/txn_put.go`).
#[derive(Debug, Clone, Args)]
pub struct TxnPutOpts {
    /// Key and value shape.
    #[command(flatten)]
    pub keys: KeyOpts,
    /// Total number of txn requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: usize,
    /// Maximum txns per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Number of puts per txn.
    #[arg(long, default_value_t = 1)]
    pub txn_ops: usize,
}

/// `range KEY [END]` (etcd `cmd/range.go`).
#[derive(Debug, Clone, Args)]
pub struct RangeOpts {
    /// The key (or range start) to read.
    #[arg(id = "range_key", value_name = "KEY")]
    pub key: String,
    /// The range end (exclusive); absent reads the one key.
    #[arg(id = "range_end", value_name = "END")]
    pub end: Option<String>,
    /// Total number of range requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: usize,
    /// Maximum range requests per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Linearizable(l) or Serializable(s).
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    pub consistency: Consistency,
    /// Maximum keys per response (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Read every key with KEY as prefix (END must be absent).
    #[arg(long)]
    pub prefix: bool,
    /// Only count the keys.
    #[arg(long)]
    pub count_only: bool,
    /// Only return the keys.
    #[arg(long)]
    pub keys_only: bool,
}

/// `txn-mixed [KEY [END]]` (etcd `cmd/txn_mixed.go`): each request is a Txn holding one put
/// or one range, reads chosen with probability `rw-ratio / (1 + rw-ratio)`.
#[derive(Debug, Clone, Args)]
pub struct TxnMixedOpts {
    /// Range start of the reads; without END the reads cover every key with KEY as prefix
    /// (etcd reads "" as a prefix, i.e. everything, with `--limit`).
    #[arg(id = "range_key", value_name = "KEY", default_value = "")]
    pub key: String,
    /// Range end of the reads.
    #[arg(id = "range_end", value_name = "END")]
    pub end: Option<String>,
    /// Key and value shape of the writes.
    #[command(flatten)]
    pub keys: KeyOpts,
    /// Total number of txn requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: usize,
    /// Maximum txns per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Read operation range result limit.
    #[arg(long, default_value_t = 1000)]
    pub limit: i64,
    /// Linearizable(l) or Serializable(s).
    #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
    pub consistency: Consistency,
    /// Read/write ops ratio.
    #[arg(long, default_value_t = 1.0)]
    pub rw_ratio: f64,
}

/// `watch` (etcd `cmd/watch.go`).
#[derive(Debug, Clone, Args)]
pub struct WatchOpts {
    /// Total watch streams.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Total watchers per stream.
    #[arg(long, default_value_t = 100)]
    pub watch_per_stream: usize,
    /// Total number of keys to be watched.
    #[arg(long, default_value_t = 1)]
    pub watched_key_total: usize,
    /// Number of keys to put per second (0 is no limit).
    #[arg(long, default_value_t = 0)]
    pub put_rate: u64,
    /// Number of put requests.
    #[arg(long, default_value_t = 1000)]
    pub put_total: usize,
    /// Key size of watch request.
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Maximum possible keys.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Use sequential keys.
    #[arg(long)]
    pub sequential_keys: bool,
}

/// `watch-latency` (etcd `cmd/watch_latency.go`).
#[derive(Debug, Clone, Args)]
pub struct WatchLatencyOpts {
    /// Total watch streams.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Total watchers per stream.
    #[arg(long, visible_alias = "watch-per-stream", default_value_t = 10)]
    pub watchers_per_stream: usize,
    /// Number of keys to put per second.
    #[arg(long, default_value_t = 100)]
    pub put_rate: u64,
    /// Number of put requests.
    #[arg(long, visible_alias = "total", default_value_t = 1000)]
    pub put_total: usize,
    /// Also ask for the previous key-value in every event.
    #[arg(long)]
    pub prevkv: bool,
    /// Key size of watch response.
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Value size of watch response (at least 8: the value carries the put's sequence number).
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
}

/// `lease-keepalive` (etcd `cmd/lease.go`).
#[derive(Debug, Clone, Args)]
pub struct LeaseKeepaliveOpts {
    /// Total number of lease keepalive requests.
    #[arg(long, default_value_t = 10_000)]
    pub total: usize,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "test code")]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> BenchArgs {
        BenchArgs::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn definition_is_consistent_and_range_key_does_not_clash_with_tls_key() {
        use clap::CommandFactory;
        BenchArgs::command().debug_assert();
        let a = parse(&["range", "foo", "--key=/k.pem", "--cert=/c.pem"]);
        assert_eq!(a.global.key, Some(PathBuf::from("/k.pem")));
        let BenchCommand::Range(r) = a.command else {
            panic!()
        };
        assert_eq!(r.key, "foo");
    }

    #[test]
    fn defaults_are_etcds() {
        let a = parse(&["put"]);
        assert_eq!(a.global.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!((a.global.conns, a.global.clients), (1, 1));
        let BenchCommand::Put(p) = a.command else { panic!() };
        assert_eq!((p.keys.key_size, p.keys.val_size, p.total), (8, 8, 10_000));
        assert_eq!(
            (p.keys.key_space_size, p.keys.sequential_keys, p.rate),
            (1, false, 0)
        );
        let BenchCommand::Watch(w) = parse(&["watch"]).command else {
            panic!()
        };
        assert_eq!(
            (w.streams, w.watch_per_stream, w.put_total, w.key_size),
            (10, 100, 1000, 32)
        );
        let BenchCommand::WatchLatency(w) = parse(&["watch-latency"]).command else {
            panic!()
        };
        assert_eq!((w.streams, w.watchers_per_stream, w.put_rate), (10, 10, 100));
        let BenchCommand::TxnMixed(m) = parse(&["txn-mixed"]).command else {
            panic!()
        };
        assert_eq!(
            (m.limit, m.rw_ratio, m.consistency),
            (1000, 1.0, Consistency::Linearizable)
        );
    }

    #[test]
    fn etcds_documented_command_line_parses_with_globals_before_or_after() {
        // etcd docs op-guide/performance.md: the 1000-client write benchmark.
        let a = parse(&[
            "--endpoints=http://10.0.0.1:2379,http://10.0.0.2:2379",
            "--conns=100",
            "--clients=1000",
            "put",
            "--key-size=8",
            "--sequential-keys",
            "--total=100000",
            "--val-size=256",
        ]);
        assert_eq!(a.global.endpoints.len(), 2);
        assert_eq!((a.global.conns, a.global.clients), (100, 1000));
        let BenchCommand::Put(p) = a.command else { panic!() };
        assert!(p.keys.sequential_keys);
        assert_eq!((p.total, p.keys.val_size), (100_000, 256));

        let b = parse(&[
            "range",
            "foo",
            "--consistency=s",
            "--clients",
            "7",
            "--dial-timeout=2s",
        ]);
        assert_eq!(b.global.clients, 7);
        assert_eq!(b.global.dial_timeout, Duration::from_secs(2));
        let BenchCommand::Range(r) = b.command else {
            panic!()
        };
        assert_eq!(
            (r.key.as_str(), r.end, r.consistency),
            ("foo", None, Consistency::Serializable)
        );
    }

    #[test]
    fn txn_put_and_tls_and_aliases_parse() {
        let a = parse(&[
            "txn-put",
            "--txn-ops=10",
            "--key-space-size=1000",
            "--cacert=/ca.pem",
            "--cert=/c.pem",
            "--key=/k.pem",
            "--output=json",
        ]);
        assert_eq!(a.global.cacert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(a.global.output, Output::Json);
        let BenchCommand::TxnPut(t) = a.command else {
            panic!()
        };
        assert_eq!((t.txn_ops, t.keys.key_space_size), (10, 1000));
        let BenchCommand::WatchLatency(w) =
            parse(&["watch-latency", "--watch-per-stream=1000", "--total=5"]).command
        else {
            panic!()
        };
        assert_eq!((w.watchers_per_stream, w.put_total), (1000, 5));
    }

    #[test]
    fn bad_values_are_rejected() {
        for bad in [
            &["range"][..],
            &["range", "k", "--consistency=x"],
            &["put", "--total=-1"],
            &["put", "--dial-timeout=5"],
            &["nope"],
        ] {
            let args = std::iter::once("bench").chain(bad.iter().copied());
            assert!(BenchArgs::try_parse_from(args).is_err(), "{bad:?} parsed");
        }
    }
}
