//! `mainstayctl bench` (issue #8: etcd's `tools/benchmark` workloads and report) against a
//! Mainstay started by the harness: the report has etcd's sections (`pkg/report/report.go`)
//! and counts every request exactly once. Sizes are tiny; no timing is asserted.

use std::process::Command;

use serde_json::Value;

use crate::harness::{Kind, Server};

/// Runs `mainstayctl bench --endpoints=<server> <args>`; (success, stdout, stderr).
fn bench(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mainstayctl"))
        .arg("bench")
        .arg(format!("--endpoints={}", server.endpoint()))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn histogram_total(summary: &Value) -> u64 {
    summary["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn bench_put_and_range_print_etcds_report_and_count_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Kind::Mainstay, dir.path(), &[]).await;

    // Text report, as etcd's benchmark prints it; no progress bar when stderr is a pipe.
    let (ok, out, err) = bench(
        &server,
        &[
            "--clients=4",
            "put",
            "--total=200",
            "--val-size=256",
            "--key-space-size=50",
            "--sequential-keys",
        ],
    );
    assert!(ok, "bench put failed: {err}");
    for section in [
        "\nSummary:\n",
        "  Total:\t",
        "  Requests/sec:\t",
        "\nResponse time histogram:\n",
        "\nLatency distribution:\n",
        "  50% in ",
        "  99.9% in ",
    ] {
        assert!(out.contains(section), "missing {section:?} in:\n{out}");
    }
    assert!(!out.contains("Error distribution"), "put had errors:\n{out}");
    assert!(!err.contains('\r'), "progress bar drawn on a pipe: {err:?}");
    let bars: Vec<&str> = out.lines().filter(|l| l.contains("]\t|")).collect();
    assert_eq!(bars.len(), 11, "etcd's 10 + 1 histogram buckets:\n{out}");
    let counted: u64 = bars
        .iter()
        .map(|l| {
            l.split('[')
                .nth(1)
                .unwrap()
                .split(']')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(counted, 200);

    // The puts wrote 50 distinct 8-byte keys (key-space-size 50, sequential).
    let mut kv = server.kv().await;
    let all = kv
        .range(mainstay::proto::etcdserverpb::RangeRequest {
            key: vec![0u8].into(),
            range_end: vec![0u8].into(),
            count_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.count, 50);

    // Range, serializable and linearizable, JSON output: exact counts and ordered percentiles.
    for k in ["bench/a", "bench/b"] {
        kv.put(mainstay::proto::etcdserverpb::PutRequest {
            key: k.as_bytes().to_vec().into(),
            value: vec![b'v'; 256].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for consistency in ["s", "l"] {
        let (ok, out, err) = bench(
            &server,
            &[
                "--conns=2",
                "--clients=8",
                "--output=json",
                "range",
                "bench/",
                "--prefix",
                "--total=300",
                &format!("--consistency={consistency}"),
            ],
        );
        assert!(ok, "bench range failed: {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["command"], "range");
        let line = if consistency == "s" {
            "serializable"
        } else {
            "linearizable"
        };
        assert_eq!(v["preface"][0], format!("bench with {line} range"));
        let s = &v["sections"][0]["summary"];
        assert_eq!(s["requests"], 300);
        assert_eq!(s["errors"], 0);
        assert_eq!(histogram_total(s), 300);
        let p = |k: &str| s[k].as_f64().unwrap();
        assert!(p("p50_ms") <= p("p90_ms") && p("p90_ms") <= p("p99_ms") && p("p99_ms") <= p("p999_ms"));
        assert!(p("p999_ms") <= p("max_ms") && p("max_ms") > 0.0);
        assert!(p("requests_per_sec") > 0.0);
    }
}

#[tokio::test]
async fn bench_txn_watch_and_lease_workloads_complete_against_mainstay() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Kind::Mainstay, dir.path(), &[]).await;
    let json = |args: &[&str]| {
        let mut all = vec!["--output=json"];
        all.extend_from_slice(args);
        let (ok, out, err) = bench(&server, &all);
        assert!(ok, "bench {args:?} failed: {err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    let v = json(&[
        "--clients=4",
        "txn-put",
        "--total=40",
        "--txn-ops=5",
        "--key-space-size=100",
    ]);
    assert_eq!(v["sections"][0]["summary"]["requests"], 40);

    let v = json(&["--clients=4", "txn-mixed", "--total=60", "--key-space-size=10"]);
    let reads = v["sections"][0]["summary"]["requests"].as_u64().unwrap();
    let writes = v["sections"][1]["summary"]["requests"].as_u64().unwrap();
    assert_eq!(reads + writes, 60, "{v}");
    assert_eq!(v["sections"][0]["summary"]["errors"], 0, "{v}");

    // 3 streams × 5 watchers on one key, 10 puts: 150 events, each timed.
    let v = json(&[
        "watch-latency",
        "--streams=3",
        "--watchers-per-stream=5",
        "--put-total=10",
        "--put-rate=200",
    ]);
    let s = &v["sections"][0]["summary"];
    assert_eq!(
        (s["requests"].as_u64(), s["errors"].as_u64()),
        (Some(150), Some(0))
    );

    // etcd's watch: 2 streams × 4 watchers over 2 keys, 6 puts alternating keys → 24 events.
    let v = json(&[
        "watch",
        "--streams=2",
        "--watch-per-stream=4",
        "--watched-key-total=2",
        "--sequential-keys",
        "--key-space-size=2",
        "--put-total=6",
    ]);
    assert_eq!(v["sections"][0]["summary"]["requests"], 8);
    assert_eq!(v["sections"][1]["summary"]["requests"], 24);

    let v = json(&["--clients=3", "lease-keepalive", "--total=30"]);
    assert_eq!(v["sections"][0]["summary"]["requests"], 30);
    assert_eq!(v["sections"][0]["summary"]["errors"], 0);
}

#[tokio::test]
async fn bench_reports_an_unreachable_endpoint_as_an_error() {
    let port = crate::harness::free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_mainstayctl"))
        .args([
            "bench",
            &format!("--endpoints=127.0.0.1:{port}"),
            "--dial-timeout=1s",
            "put",
            "--total=1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("Error: cannot connect to http://127.0.0.1:"),
        "{err}"
    );
}
