//! Logging flags (etcd `embed/config_logging.go`): `--log-outputs` targets, zap's JSON line
//! layout, `--logger` validation, and the rule that values never reach the log.

use std::process::Command;
use std::time::{Duration, Instant};

use mainstay::proto::etcdserverpb::PutRequest;
use serde_json::Value;

use crate::harness::{Kind, Server};

/// The first four keys of every zap JSON line, in order (zap's production encoder).
const ZAP_KEYS: [&str; 4] = ["level", "ts", "caller", "msg"];

/// Parses the JSON lines of `text`; panics on a line that is not a JSON object.
fn json_lines(text: &str) -> Vec<serde_json::Map<String, Value>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => m,
            other => panic!("not a JSON object line: {l:?} ({other:?})"),
        })
        .collect()
}

/// Polls `path` until some line contains `needle` (the server writes asynchronously).
async fn wait_for_line(path: &std::path::Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "{needle:?} never logged; log:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `--log-outputs=FILE` sends the log to the file only, as zap JSON lines that start with
/// etcd's keys `level`, `ts`, `caller`, `msg` — the same leading keys as etcd's own zap lines
/// (checked against the real etcd with `--logger=zap`); a key's value written at debug level
/// never appears in the log.
#[tokio::test]
async fn log_outputs_file_gets_zap_json_lines_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("mainstay-out.log");
    let theirs = dir.path().join("etcd-out.log");
    let (m_dir, e_dir) = (dir.path().join("m"), dir.path().join("e"));
    std::fs::create_dir_all(&m_dir).unwrap();
    std::fs::create_dir_all(&e_dir).unwrap();
    let s = Server::start(
        Kind::Mainstay,
        &m_dir,
        &[&format!("--log-outputs={}", ours.display()), "--log-level=debug"],
    )
    .await;
    let etcd = Server::start(
        Kind::Etcd,
        &e_dir,
        &["--logger=zap", &format!("--log-outputs={}", theirs.display())],
    )
    .await;
    const VALUE: &str = "v4lue-that-must-not-be-logged";
    s.kv()
        .await
        .put(PutRequest {
            key: "logging/key".into(),
            value: VALUE.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let text = wait_for_line(&ours, "ready to serve client requests").await;
    let lines = json_lines(&text);
    assert!(lines.len() > 3, "{text}");
    for line in &lines {
        let keys: Vec<&str> = line.keys().map(String::as_str).take(4).collect();
        assert_eq!(keys, ZAP_KEYS, "{line:?}");
        assert!(
            ["debug", "info", "warn", "error"].contains(&line["level"].as_str().unwrap()),
            "{line:?}"
        );
        let ts = line["ts"].as_str().unwrap();
        assert!(
            ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
    }
    let etcd_lines = json_lines(&wait_for_line(&theirs, "\"msg\"").await);
    let etcd_keys: Vec<&str> = etcd_lines[0].keys().map(String::as_str).take(4).collect();
    assert_eq!(etcd_keys, ZAP_KEYS, "etcd's own zap layout");
    assert!(!text.contains(VALUE), "a value reached the log");
    assert!(
        !s.log_text().contains("ready to serve"),
        "the log went to stderr/stdout as well"
    );
    drop(etcd);
}

/// etcd 3.6 `--log-format`: `console` switches from JSON lines to plain text lines; an unknown
/// format is refused at start-up with `unsupported log format: x`.
#[tokio::test]
async fn log_format_console_writes_text_lines_and_unknown_formats_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("console.log");
    let s = Server::start(
        Kind::Mainstay,
        dir.path(),
        &[
            "--log-format=console",
            &format!("--log-outputs={}", out.display()),
        ],
    )
    .await;
    let text = wait_for_line(&out, "ready to serve client requests").await;
    assert!(
        text.lines().all(|l| !l.starts_with('{')),
        "console lines are not JSON:\n{text}"
    );
    drop(s);
    let refused = Command::new(env!("CARGO_BIN_EXE_mainstay"))
        .args([
            "--log-format=xml",
            &format!("--data-dir={}", dir.path().join("d").display()),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("unsupported log format: xml"), "{stderr}");
}
