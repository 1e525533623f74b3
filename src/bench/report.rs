//! Latency recording and the printed report, shaped like etcd's `pkg/report` (used by etcd's
//! `tools/benchmark`): a summary (total time, slowest, fastest, average, stddev,
//! requests/sec), a 10-bucket linear response-time histogram between the fastest and the
//! slowest request, the latency distribution at etcd's percentiles (10, 25, 50, 75, 90, 95,
//! 99, 99.9) and the error distribution.
//!
//! Latencies are kept in an HdrHistogram (nanoseconds, 3 significant digits, so memory stays
//! bounded at any `--total`) instead of etcd's slice of every sample; fastest, slowest, mean
//! and stddev are kept exactly, and percentiles are clamped into `[fastest, slowest]`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::error::BenchError;
use crate::config::limits::BENCH_HISTOGRAM_SIGFIGS;

/// etcd's reported percentiles (`pkg/report/report.go: pctls`).
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];
/// Buckets of the response-time histogram (etcd: `bc := 10`, plus one for the slowest).
pub const HISTOGRAM_BUCKETS: usize = 10;
/// Width in characters of the longest histogram bar (etcd: 40).
const BAR_WIDTH: u64 = 40;

/// Latencies and errors of one series of requests (one client task's, or merged).
#[derive(Debug, Clone)]
pub struct Recorder {
    hist: Histogram<u64>,
    count: u64,
    sum_ns: f64,
    sum_sq_ns: f64,
    min_ns: u64,
    max_ns: u64,
    errors: BTreeMap<String, u64>,
}

impl Recorder {
    /// An empty recorder. Fails only if the histogram precision constant is invalid.
    pub fn new() -> Result<Recorder, BenchError> {
        let mut hist = Histogram::<u64>::new(BENCH_HISTOGRAM_SIGFIGS)
            .map_err(|e| BenchError::Invalid(format!("latency histogram: {e:?}")))?;
        hist.auto(true);
        Ok(Recorder {
            hist,
            count: 0,
            sum_ns: 0.0,
            sum_sq_ns: 0.0,
            min_ns: u64::MAX,
            max_ns: 0,
            errors: BTreeMap::new(),
        })
    }

    /// Records one successful request that took `latency`.
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        // `record` grows the auto-resizing histogram; `saturating_record` would not.
        if self.hist.record(ns).is_err() {
            self.hist.saturating_record(ns);
        }
        self.count += 1;
        let f = ns as f64;
        self.sum_ns += f;
        self.sum_sq_ns += f * f;
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Counts one failed request under its error text (etcd counts `err.Error()`).
    pub fn record_error(&mut self, error: &str) {
        *self.errors.entry(error.to_string()).or_insert(0) += 1;
    }

    /// Successful requests recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Failed requests recorded.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds `other`'s samples and errors into this recorder.
    pub fn merge(&mut self, other: &Recorder) -> Result<(), BenchError> {
        self.hist
            .add(&other.hist)
            .map_err(|e| BenchError::Invalid(format!("latency histogram: {e:?}")))?;
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.sum_sq_ns += other.sum_sq_ns;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        for (e, n) in &other.errors {
            *self.errors.entry(e.clone()).or_insert(0) += n;
        }
        Ok(())
    }

    /// The latency at percentile `p` (0–100), in nanoseconds, within the histogram's
    /// precision and never outside `[fastest, slowest]`; 0 when nothing was recorded.
    pub fn percentile_ns(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let v = self.hist.value_at_quantile(p / 100.0);
        self.hist.median_equivalent(v).clamp(self.min_ns, self.max_ns)
    }

    /// The summary of this series, `wall` being the time the whole run took.
    pub fn summary(&self, name: &str, wall: Duration) -> Summary {
        let n = self.count;
        let secs = wall.as_secs_f64();
        let (fastest, slowest, average, stddev) = if n == 0 {
            (0.0, 0.0, 0.0, 0.0)
        } else {
            let mean = self.sum_ns / n as f64;
            let var = (self.sum_sq_ns / n as f64 - mean * mean).max(0.0);
            (
                self.min_ns as f64 / 1e9,
                self.max_ns as f64 / 1e9,
                mean / 1e9,
                var.sqrt() / 1e9,
            )
        };
        let ms = |p: f64| self.percentile_ns(p) as f64 / 1e6;
        Summary {
            name: name.to_string(),
            total_secs: secs,
            requests: n,
            errors: self.error_count(),
            requests_per_sec: if secs > 0.0 { n as f64 / secs } else { 0.0 },
            fastest_secs: fastest,
            slowest_secs: slowest,
            average_secs: average,
            stddev_secs: stddev,
            p50_ms: ms(50.0),
            p90_ms: ms(90.0),
            p99_ms: ms(99.0),
            p999_ms: ms(99.9),
            max_ms: slowest * 1e3,
            percentiles: PERCENTILES.iter().map(|p| (*p, ms(*p))).collect(),
            histogram: self.buckets(),
            error_distribution: self.errors.clone(),
        }
    }

    /// etcd's histogram: boundaries `fastest + i·(slowest−fastest)/10` for i in 0..10, then
    /// `slowest`; each sample counts in the first bucket whose boundary it does not exceed.
    fn buckets(&self) -> Vec<Bucket> {
        if self.count == 0 {
            return Vec::new();
        }
        let (lo, hi) = (self.min_ns as f64, self.max_ns as f64);
        let step = (hi - lo) / HISTOGRAM_BUCKETS as f64;
        let mut bounds: Vec<f64> = (0..HISTOGRAM_BUCKETS).map(|i| lo + step * i as f64).collect();
        bounds.push(hi);
        let mut counts = vec![0u64; bounds.len()];
        for v in self.hist.iter_recorded() {
            // The lowest value the sample's histogram slot stands for, so that a sample equal to
            // a boundary is not pushed past it by the histogram's rounding.
            let value = (self.hist.lowest_equivalent(v.value_iterated_to()) as f64).clamp(lo, hi);
            let idx = bounds
                .iter()
                .position(|b| value <= *b)
                .unwrap_or(bounds.len() - 1);
            counts[idx] += v.count_at_value();
        }
        bounds
            .into_iter()
            .zip(counts)
            .map(|(b, count)| Bucket {
                upper_secs: b / 1e9,
                count,
            })
            .collect()
    }
}

/// One bucket of the response-time histogram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// The bucket's upper bound, seconds.
    pub upper_secs: f64,
    /// Requests whose latency fell in this bucket.
    pub count: u64,
}

/// The outcome of one series (what etcd's report prints), also printed as JSON with
/// `--output json`. Times are seconds (`*_secs`) or milliseconds (`*_ms`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The series, e.g. `put`, `read`, `write`, `watch events`.
    pub name: String,
    /// Wall time of the run.
    pub total_secs: f64,
    /// Successful requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Successful requests per second of wall time.
    pub requests_per_sec: f64,
    /// Fastest request.
    pub fastest_secs: f64,
    /// Slowest request.
    pub slowest_secs: f64,
    /// Mean latency.
    pub average_secs: f64,
    /// Population standard deviation of the latency.
    pub stddev_secs: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 90th percentile latency.
    pub p90_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// 99.9th percentile latency.
    pub p999_ms: f64,
    /// Slowest request.
    pub max_ms: f64,
    /// `(percentile, latency ms)` at etcd's percentiles.
    pub percentiles: Vec<(f64, f64)>,
    /// The response-time histogram.
    pub histogram: Vec<Bucket>,
    /// Failed requests by error text.
    pub error_distribution: BTreeMap<String, u64>,
}

impl Summary {
    /// The report as etcd's `benchmark` prints it (`pkg/report/report.go: String`); numbers
    /// with `%4.4f` or, when `precise`, with full precision (etcd's `--precise`).
    pub fn render(&self, precise: bool) -> String {
        let f = |v: f64| {
            if precise {
                format!("{v}")
            } else {
                format!("{v:4.4}")
            }
        };
        let mut s = String::new();
        if self.requests > 0 {
            s.push_str("\nSummary:\n");
            let _ = writeln!(s, "  Total:\t{} secs.", f(self.total_secs));
            let _ = writeln!(s, "  Slowest:\t{} secs.", f(self.slowest_secs));
            let _ = writeln!(s, "  Fastest:\t{} secs.", f(self.fastest_secs));
            let _ = writeln!(s, "  Average:\t{} secs.", f(self.average_secs));
            let _ = writeln!(s, "  Stddev:\t{} secs.", f(self.stddev_secs));
            let _ = writeln!(s, "  Requests/sec:\t{}", f(self.requests_per_sec));
            s.push_str("\nResponse time histogram:\n");
            let top = self.histogram.iter().map(|b| b.count).max().unwrap_or(0);
            for b in &self.histogram {
                let len = (b.count * BAR_WIDTH).checked_div(top).unwrap_or(0);
                let bar = "∎".repeat(usize::try_from(len).unwrap_or(0));
                let _ = writeln!(s, "  {} [{}]\t|{bar}", f(b.upper_secs), b.count);
            }
            s.push_str("\nLatency distribution:\n");
            for (p, ms) in &self.percentiles {
                if *ms > 0.0 {
                    let _ = writeln!(s, "  {p}% in {ms:.3} ms.");
                }
            }
        }
        if !self.error_distribution.is_empty() {
            s.push_str("\nError distribution:\n");
            for (e, n) in &self.error_distribution {
                let _ = writeln!(s, "  [{n}]\t{e}");
            }
        }
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 0.002 + 1e-9
    }

    #[test]
    fn percentiles_of_1_to_1000_ms_are_within_a_tenth_of_a_percent() {
        let mut r = Recorder::new().unwrap();
        for v in 1..=1000 {
            r.record(ms(v));
        }
        let s = r.summary("put", Duration::from_secs(2));
        assert!(close(s.p50_ms, 500.0), "p50 {}", s.p50_ms);
        assert!(close(s.p90_ms, 900.0), "p90 {}", s.p90_ms);
        assert!(close(s.p99_ms, 990.0), "p99 {}", s.p99_ms);
        assert!(close(s.p999_ms, 999.0), "p99.9 {}", s.p999_ms);
        assert_eq!(s.max_ms, 1000.0);
        assert_eq!(s.fastest_secs, 0.001);
        assert_eq!(s.requests, 1000);
        assert_eq!(s.requests_per_sec, 500.0);
        assert!(close(s.average_secs, 0.5005));
        // Population stddev of 1..=1000 ms is sqrt((1000²−1)/12) ms.
        assert!(close(s.stddev_secs, (999_999.0f64 / 12.0).sqrt() / 1e3));
    }

    #[test]
    fn percentiles_never_exceed_the_slowest_request() {
        let mut r = Recorder::new().unwrap();
        r.record(Duration::from_nanos(123_456_789));
        assert_eq!(r.percentile_ns(50.0), 123_456_789);
        assert_eq!(r.percentile_ns(99.9), 123_456_789);
    }

    #[test]
    fn histogram_has_etcds_eleven_linear_buckets_and_counts_every_sample() {
        let mut r = Recorder::new().unwrap();
        for v in [10, 10, 20, 55, 100] {
            r.record(ms(v));
        }
        let s = r.summary("range", Duration::from_secs(1));
        assert_eq!(s.histogram.len(), HISTOGRAM_BUCKETS + 1);
        let bounds: Vec<f64> = s.histogram.iter().map(|b| b.upper_secs).collect();
        assert!(close(bounds[0], 0.010) && close(bounds[1], 0.019) && close(bounds[10], 0.100));
        let counts: Vec<u64> = s.histogram.iter().map(|b| b.count).collect();
        // 10,10 → first bound; 20 → ≤0.028 (bucket 2); 55 → ≤0.055 (bucket 5); 100 → last.
        assert_eq!(counts, vec![2, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn merge_combines_counts_extremes_and_errors() {
        let mut a = Recorder::new().unwrap();
        let mut b = Recorder::new().unwrap();
        a.record(ms(5));
        b.record(ms(1));
        b.record(ms(9));
        a.record_error("etcdserver: request timed out");
        b.record_error("etcdserver: request timed out");
        a.merge(&b).unwrap();
        let s = a.summary("put", Duration::from_secs(1));
        assert_eq!((s.requests, s.errors), (3, 2));
        assert_eq!((s.fastest_secs, s.slowest_secs), (0.001, 0.009));
        assert_eq!(s.error_distribution["etcdserver: request timed out"], 2);
    }

    #[test]
    fn render_prints_etcds_sections_and_bars() {
        let mut r = Recorder::new().unwrap();
        for v in [1, 2, 3, 4] {
            r.record(ms(v));
        }
        r.record_error("boom");
        let text = r.summary("put", Duration::from_secs(1)).render(false);
        for section in [
            "\nSummary:\n",
            "  Requests/sec:\t4.0000\n",
            "\nResponse time histogram:\n",
            "\nLatency distribution:\n",
            "  50% in 2.000 ms.\n",
            "  99.9% in 4.000 ms.\n",
            "\nError distribution:\n  [1]\tboom\n",
        ] {
            assert!(text.contains(section), "missing {section:?} in\n{text}");
        }
        assert!(text.contains(&"∎".repeat(40)));
    }

    #[test]
    fn empty_report_has_no_summary() {
        let r = Recorder::new().unwrap();
        let s = r.summary("put", Duration::from_secs(1));
        assert_eq!(s.requests, 0);
        assert!(s.render(false).is_empty());
    }
}
