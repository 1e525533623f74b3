//! Status, MemberList, health (gRPC and HTTP) and the Unimplemented answers of RPCs that later
//! issues fill in (etcd-compat.md §1.1, §2.9, §7.1).

use mainstay::proto::etcdserverpb::downgrade_request::DowngradeAction;
use mainstay::proto::etcdserverpb::{DowngradeRequest, MemberListRequest};
use tonic::Code;

use crate::harness::{Kind, Server, http_get};

#[tokio::test]
async fn status_reports_a_semver_at_least_3_5_13_and_a_positive_db_size() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let st = s.status().await;
    let v: Vec<u64> = st.version.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(
        v >= vec![3, 5, 13],
        "kube-apiserver gates progress requests on >= 3.5.13, got {}",
        st.version
    );
    assert!(st.db_size > 0, "etcdctl endpoint status divides by dbSize");
    let header = st.header.unwrap();
    assert_eq!(st.leader, header.member_id, "a single member leads itself");
    assert!(st.raft_term >= 1);
    assert!(st.raft_index >= st.raft_applied_index && st.raft_applied_index > 0);
    assert!(st.errors.is_empty());
    // etcd 3.6 fields (etcd-compat.md §2.9): storage schema version, quota (2 GiB default) and
    // a downgrade status that is never absent.
    assert_eq!(st.storage_version, "3.5.0");
    assert_eq!(st.db_size_quota, 2 * 1024 * 1024 * 1024);
    let downgrade = st.downgrade_info.expect("downgradeInfo");
    assert!(!downgrade.enabled && downgrade.target_version.is_empty());
}

#[tokio::test]
async fn member_list_shows_the_one_member_with_its_urls() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let ml = s
        .cluster()
        .await
        .member_list(MemberListRequest { linearizable: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ml.members.len(), 1);
    let m = &ml.members[0];
    assert_eq!(m.name, "n1");
    assert_eq!(m.peer_ur_ls, vec![format!("http://127.0.0.1:{}", s.peer_port)]);
    assert_eq!(m.client_ur_ls, vec![s.endpoint()]);
    assert!(!m.is_learner);
    assert_eq!(m.id, ml.header.unwrap().member_id);
}

#[tokio::test]
async fn http_health_answers_etcds_json_on_the_client_port() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let resp = http_get(s.client_port, "/health").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with(r#"{"health":"true","reason":""}"#), "{resp}");
    let resp = http_get(s.client_port, "/version").await;
    assert!(resp.contains(r#""etcdserver":"3.5.21""#), "{resp}");
}

#[tokio::test]
async fn grpc_health_service_reports_serving() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let channel = tonic::transport::Channel::from_shared(s.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut h = tonic_health::pb::health_client::HealthClient::new(channel);
    let r = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn rpcs_of_later_issues_answer_unimplemented() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::mainstay(dir.path()).await;
    let e = s
        .maintenance()
        .await
        .downgrade(DowngradeRequest {
            action: DowngradeAction::Enable as i32,
            version: "3.4".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
}

#[tokio::test]
async fn metrics_listener_serves_livez_readyz_and_health_like_etcd() {
    // etcd 3.5.11+ (etcdhttp/health.go): Kubernetes-style probes; kubeadm probes
    // http://127.0.0.1:2381/livez and /readyz (etcd-compat.md §7.1).
    let dir = tempfile::tempdir().unwrap();
    let metrics = crate::harness::free_port();
    let flag = format!("--listen-metrics-urls=http://127.0.0.1:{metrics}");
    let s = Server::start(crate::harness::Kind::Mainstay, dir.path(), &[&flag]).await;
    let body = |r: &str| r.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    let livez = http_get(metrics, "/livez").await;
    assert!(livez.starts_with("HTTP/1.1 200"), "{livez}");
    assert_eq!(body(&livez), "ok\n");
    let readyz = http_get(metrics, "/readyz?verbose").await;
    assert_eq!(
        body(&readyz),
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n"
    );
    let excluded = http_get(metrics, "/readyz?verbose&exclude=linearizable_read").await;
    assert!(
        body(&excluded).contains("[+]linearizable_read excluded: ok\n"),
        "{excluded}"
    );
    let one = http_get(metrics, "/livez/serializable_read").await;
    assert_eq!(body(&one), "ok\n");
    assert!(
        http_get(metrics, "/livez/no_such_check")
            .await
            .starts_with("HTTP/1.1 404")
    );
    let health = http_get(metrics, "/health?serializable=true").await;
    assert!(health.ends_with(r#"{"health":"true","reason":""}"#), "{health}");
    // The client port serves the probes too.
    assert_eq!(body(&http_get(s.client_port, "/readyz").await), "ok\n");
}

#[tokio::test]
async fn metrics_use_etcds_names_types_and_grpc_labels() {
    // etcd-compat.md §7.2: dashboards and etcd-mixin alerts match these names exactly.
    let dir = tempfile::tempdir().unwrap();
    let metrics = crate::harness::free_port();
    let flag = format!("--listen-metrics-urls=http://127.0.0.1:{metrics}");
    let s = Server::start(crate::harness::Kind::Mainstay, dir.path(), &[&flag]).await;
    let mut kv = s.kv().await;
    kv.put(mainstay::proto::etcdserverpb::PutRequest {
        key: "m".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let e = kv
        .range(mainstay::proto::etcdserverpb::RangeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let text = http_get(metrics, "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for (name, kind) in [
        ("etcd_server_has_leader", "gauge"),
        ("etcd_server_is_leader", "gauge"),
        ("etcd_server_leader_changes_seen_total", "counter"),
        ("etcd_server_proposals_committed_total", "gauge"),
        ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
        ("etcd_disk_backend_commit_duration_seconds", "histogram"),
        ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
        ("etcd_server_quota_backend_bytes", "gauge"),
        ("grpc_server_handled_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}")),
            "{name} {kind} missing"
        );
    }
    assert!(text.contains("etcd_server_has_leader 1"));
    assert!(text.contains(
        r#"grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1"#
    ));
    assert!(text.contains(r#"grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1"#));
    // The client port serves /metrics too.
    assert!(
        http_get(s.client_port, "/metrics")
            .await
            .contains("etcd_mvcc_put_total")
    );
}

/// `--emulated-etcd-version` (Mainstay; issue #11): the reported release changes everywhere
/// etcd reports its own — Status, `/version` and the `etcd_server_version` /
/// `etcd_cluster_version` metrics — exactly as the real etcd 3.4.23 reports itself.
#[tokio::test]
async fn emulated_etcd_version_is_reported_like_that_etcd_release() {
    let dir = tempfile::tempdir().unwrap();
    let (m_dir, e_dir) = (dir.path().join("m"), dir.path().join("e"));
    std::fs::create_dir_all(&m_dir).unwrap();
    std::fs::create_dir_all(&e_dir).unwrap();
    let s = Server::start(Kind::Mainstay, &m_dir, &["--emulated-etcd-version=3.4.23"]).await;
    let etcd = Server::start(Kind::Etcd, &e_dir, &[]).await;
    let st = s.status().await;
    assert_eq!(st.version, "3.4.23");
    let body = |text: String| {
        text.split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let ours = body(http_get(s.client_port, "/version").await);
    // etcd answers "not_decided" until it has settled the cluster version after its election.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let theirs = loop {
        let v = body(http_get(etcd.client_port, "/version").await);
        if !v.contains("not_decided") {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "etcd never decided its cluster version"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(ours, theirs);
    assert_eq!(ours, r#"{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#);
    let metrics = http_get(s.client_port, "/metrics").await;
    for line in [
        r#"etcd_server_version{server_version="3.4.23"} 1"#,
        r#"etcd_cluster_version{cluster_version="3.4"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line}");
        assert!(
            http_get(etcd.client_port, "/metrics").await.contains(line),
            "etcd lacks {line}"
        );
    }
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_mainstay"))
        .args([
            "--emulated-etcd-version=2.3.8",
            &format!("--data-dir={}", dir.path().join("x").display()),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--emulated-etcd-version"));
}
