//! `/metrics` (etcd-compat.md §7.2, §7.3): the exposition parsed by the real Prometheus Python
//! client parser and checked against etcd's table (tests/data/etcd-metrics.tsv: names, types,
//! HELP texts, labels, buckets), linted by `promtool check metrics`, scraped by a real
//! Prometheus that evaluates every etcd-mixin alert (tests/data/etcd-mixin-alerts.yaml), and
//! compared with the real etcd 3.4's metric names. scripts/test installs Prometheus (Debian
//! `prometheus`) and the venv with `prometheus_client` (target/venv).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mainstay::proto::etcdserverpb::watch_client::WatchClient;
use mainstay::proto::etcdserverpb::{
    PutRequest, RangeRequest, WatchCreateRequest, WatchRequest, watch_request,
};

use crate::harness::{Pair, Server, free_port};

const TABLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/etcd-metrics.tsv");
const ALERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/etcd-mixin-alerts.yaml");
const CHECKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/metrics_check.py");
const DEADLINE: Duration = Duration::from_secs(30);

/// The body of an HTTP/1.0 GET (HTTP/1.0, so Go servers answer without chunked encoding).
async fn get(port: u16, path_and_query: &str) -> (u16, String) {
    try_get(port, path_and_query).await.unwrap()
}

/// [`get`], with connection failures returned.
async fn try_get(port: u16, path_and_query: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let req = format!("GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await??;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let code = raw.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// The value of the sample line `series` (exact name and labels as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Metric family names of an exposition (its `# TYPE` lines), Go runtime ones left out.
fn family_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|n| !n.starts_with("go_"))
        .map(str::to_string)
        .collect()
}

/// (name, status) rows of the etcd table; status is `3.4`/`3.5` or the reason Mainstay lacks it.
fn table() -> Vec<(String, String)> {
    std::fs::read_to_string(TABLE)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[0].to_string(), cols[4].to_string())
        })
        .collect()
}

fn venv_python() -> PathBuf {
    std::env::var_os("MAINSTAY_METRICS_PYTHON").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/venv/bin/python")),
        PathBuf::from,
    )
}

/// Drives every instrumented path once: KV, Txn, compaction, leases, maintenance, health.
async fn exercise(s: &Server) {
    let mut kv = s.kv().await;
    for i in 0..3 {
        kv.put(PutRequest {
            key: format!("k{i}").into(),
            value: "v".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    kv.range(RangeRequest {
        key: "k".into(),
        range_end: "l".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    for args in [
        &["txn"][..],
        &["del", "k2"],
        &["compaction", "2"],
        &["defrag"],
        &["endpoint", "hashkv"],
        &["lease", "grant", "60"],
        &["endpoint", "status"],
    ] {
        let input = if args == ["txn"] {
            "value(\"k0\") = \"v\"\n\nput k0 w\n\n\n"
        } else {
            ""
        };
        let mut child = Command::new(crate::harness::etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", s.endpoint()))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args == ["lease", "grant", "60"] {
            let id = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string();
            assert!(s.etcdctl(&["lease", "keep-alive", "--once", &id]).0);
            assert!(s.etcdctl(&["lease", "revoke", &id]).0);
        }
    }
    for path in ["/health", "/livez", "/readyz"] {
        assert_eq!(get(s.client_port, path).await.0, 200, "{path}");
    }
}

/// etcd's counters record the real code paths: puts, ranges, txns, leases, WAL fsyncs, gRPC
/// calls and messages, health checks (etcd mvcc/metrics.go, lease/metrics.go, go-grpc-prometheus).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_record_the_requests_served_and_parse_as_etcds() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    exercise(&s).await;
    // A watch counts as a stream and a watcher while it is open.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
            key: "w".into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut watch = WatchClient::connect(s.endpoint()).await.unwrap();
    let mut stream = watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().unwrap().created);
    let deadline = Instant::now() + DEADLINE;
    let text = loop {
        let (code, text) = get(s.client_port, "/metrics").await;
        assert_eq!(code, 200);
        if sample(&text, "etcd_debugging_mvcc_watcher_total") == Some(1.0) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the open watcher is not counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Values come from the code paths: 3 puts + the Txn's put; Range + Txn compare + the
    // range etcdctl's txn reads nothing else; one lease granted, renewed and revoked.
    let at_least = |series: &str, min: f64| {
        let v = sample(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
        assert!(v >= min, "{series} = {v}, expected ≥ {min}");
    };
    at_least("etcd_mvcc_put_total", 4.0);
    at_least("etcd_mvcc_range_total", 2.0);
    at_least("etcd_mvcc_txn_total", 1.0);
    at_least("etcd_mvcc_delete_total", 1.0);
    at_least("etcd_debugging_mvcc_total_put_size_in_bytes", 4.0 * 3.0);
    at_least("etcd_debugging_lease_granted_total", 1.0);
    at_least("etcd_debugging_lease_renewed_total", 1.0);
    at_least("etcd_debugging_lease_revoked_total", 1.0);
    at_least("etcd_debugging_mvcc_compact_revision", 2.0);
    at_least("etcd_disk_wal_fsync_duration_seconds_count", 1.0);
    at_least("etcd_disk_wal_write_bytes_total", 1.0);
    at_least("etcd_disk_backend_defrag_duration_seconds_count", 1.0);
    at_least("etcd_mvcc_hash_rev_duration_seconds_count", 1.0);
    at_least("etcd_network_client_grpc_received_bytes_total", 1.0);
    at_least("etcd_network_client_grpc_sent_bytes_total", 1.0);
    at_least("etcd_server_health_success", 1.0);
    at_least(
        r#"etcd_server_healthcheck{name="linearizable_read",type="readyz"}"#,
        1.0,
    );
    at_least(
        r#"etcd_server_apply_duration_seconds_count{op="Put",success="true",version="v3"}"#,
        3.0,
    );
    let puts = r#"{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
    assert_eq!(
        sample(&text, &format!("grpc_server_started_total{puts}")),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, &format!("grpc_server_msg_received_total{puts}")),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, &format!("grpc_server_msg_sent_total{puts}")),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#
        ),
        Some(3.0)
    );
    assert_eq!(sample(&text, "etcd_debugging_mvcc_watch_stream_total"), Some(1.0));
    assert_eq!(sample(&text, "etcd_server_has_leader"), Some(1.0));
    assert_eq!(sample(&text, "etcd_server_is_leader"), Some(1.0));
    assert_eq!(
        sample(&text, "etcd_server_quota_backend_bytes"),
        Some(2147483648.0)
    );
    assert_eq!(sample(&text, "etcd_server_proposals_pending"), Some(0.0));

    // The real Prometheus Python parser accepts it, and every etcd metric that applies to a
    // single member has etcd's type, HELP, labels and buckets.
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let python = venv_python();
    assert!(
        python.exists(),
        "{} missing: run scripts/test, which creates the venv with prometheus_client",
        python.display()
    );
    let out = Command::new(&python)
        .args([CHECKER, file.to_str().unwrap(), TABLE])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "checker failed: {report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    eprintln!("etcd metrics Mainstay lacks: {:#}", report["lacking"]);

    // promtool's lint: its only findings are etcd's own naming (e.g. gauges named *_total).
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool missing: run scripts/test, which installs Debian's prometheus");
    {
        use std::io::Write;
        lint.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let lint = lint.wait_with_output().unwrap();
    let etcd_names: BTreeSet<String> = table().into_iter().map(|(n, _)| n).collect();
    let findings =
        String::from_utf8_lossy(&lint.stdout).into_owned() + &String::from_utf8_lossy(&lint.stderr);
    for line in findings.lines().filter(|l| !l.trim().is_empty()) {
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(
            etcd_names.contains(name) || name.starts_with("process_") || name.starts_with("promhttp_"),
            "promtool finding on a name etcd does not have: {line}"
        );
    }

    // Closing the watch withdraws it from the gauges.
    drop(stream);
    drop(tx);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, text) = get(s.client_port, "/metrics").await;
        if sample(&text, "etcd_debugging_mvcc_watcher_total") == Some(0.0)
            && sample(&text, "etcd_debugging_mvcc_watch_stream_total") == Some(0.0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "watch gauges stay up after the stream closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every etcd 3.4 metric name is exported, or listed in tests/data/etcd-metrics.tsv with the
/// reason it does not apply to Mainstay (v2 store, grpc-proxy, bbolt internals, peers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_names_cover_etcd_3_4_except_documented_gaps() {
    let pair = Pair::start().await;
    let etcd = family_names(&get(pair.etcd.client_port, "/metrics").await.1);
    let ours = family_names(&get(pair.mainstay.client_port, "/metrics").await.1);
    let gaps: BTreeSet<String> = table()
        .into_iter()
        .filter(|(_, status)| !status.starts_with('3'))
        .map(|(n, _)| n)
        .collect();
    let lacking: Vec<&String> = etcd.difference(&ours).collect();
    eprintln!("etcd 3.4 metric names Mainstay lacks: {lacking:?}");
    let undocumented: Vec<&&String> = lacking.iter().filter(|n| !gaps.contains(**n)).collect();
    assert!(
        undocumented.is_empty(),
        "etcd 3.4 names neither exported nor documented: {undocumented:?}"
    );
}

/// A Prometheus process, killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus on a free port scraping `target` every second as job `etcd`.
    fn start(dir: &Path, target: u16) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: etcd\n    \
                 static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus missing: run scripts/test, which installs Debian's prometheus");
        Prometheus { child, port }
    }

    /// Runs an instant query; the parsed `data.result` array, or the error text.
    async fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>, String> {
        let q: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
        let (_, body) = try_get(self.port, &format!("/api/v1/query?query={q}"))
            .await
            .map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if v["status"] != "success" {
            return Err(body);
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

/// Metric names an expression selects (identifiers directly followed by `{`).
fn selected_metrics(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    for (i, _) in expr.match_indices('{') {
        let start = expr[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |p| p + 1);
        if start < i && !bytes[start].is_ascii_digit() {
            out.insert(expr[start..i].to_string());
        }
    }
    out
}

#[derive(serde::Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(serde::Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(serde::Deserialize)]
struct Rule {
    alert: String,
    expr: String,
}

/// Metrics the mixin uses that a single member does not have: peer metrics, and the handling
/// histogram etcd exports only with `--metrics=extensive`.
const NOT_ON_A_SINGLE_MEMBER: [&str; 3] = [
    "etcd_network_peer_sent_failures_total",
    "etcd_network_peer_round_trip_time_seconds_bucket",
    "grpc_server_handling_seconds_bucket",
];

/// The etcd-mixin alerts (contrib/mixin) evaluated by a real Prometheus scraping a healthy
/// member: every expression parses and evaluates, the metrics each one selects are there
/// (except peer metrics and the `--metrics=extensive` histogram), and none fires — in
/// particular not etcdNoLeader, etcdMembersDown or etcdInsufficientMembers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_mixin_alerts_evaluate_against_a_healthy_member() {
    let dir = tempfile::tempdir().unwrap();
    let member = dir.path().join("member");
    std::fs::create_dir(&member).unwrap();
    let s = Server::mainstay(&member).await;
    exercise(&s).await;
    let prom = Prometheus::start(dir.path(), s.client_port);
    // Up and scraped a few times, so rate() windows have samples.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let scraped = prom
            .query(r#"count_over_time(up{job="etcd"}[1m]) >= 3 and up{job="etcd"} == 1"#)
            .await;
        if scraped.is_ok_and(|r| !r.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the member: {}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rules: RuleFile = serde_saphyr::from_str(&std::fs::read_to_string(ALERTS).unwrap()).unwrap();
    let rules: Vec<Rule> = rules.groups.into_iter().flat_map(|g| g.rules).collect();
    assert_eq!(rules.len(), 15);
    for rule in &rules {
        let fired = prom
            .query(&rule.expr)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", rule.alert));
        assert!(
            fired.is_empty(),
            "{} fires on a healthy member: {fired:?}",
            rule.alert
        );
        for metric in selected_metrics(&rule.expr) {
            if NOT_ON_A_SINGLE_MEMBER.contains(&metric.as_str()) {
                continue;
            }
            let series = prom
                .query(&format!(r#"{metric}{{job=~".*etcd.*"}}"#))
                .await
                .unwrap();
            assert!(!series.is_empty(), "{}: {metric} has no series", rule.alert);
        }
    }
    // The ratio the failed-request alert divides by has data (requests were answered OK).
    let total = prom
        .query(r#"sum(rate(grpc_server_handled_total{job=~".*etcd.*"}[5m])) without (grpc_type, grpc_code)"#)
        .await
        .unwrap();
    assert!(!total.is_empty());
}

#[test]
fn selectors_are_found_in_alert_expressions() {
    let found = selected_metrics(r#"sum(up{job=~".*etcd.*"} == bool 1) / rate(x_total{a="b"}[5m])[15m:1m]"#);
    assert_eq!(found, BTreeSet::from(["up".to_string(), "x_total".to_string()]));
}
