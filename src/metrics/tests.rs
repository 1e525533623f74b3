use prometheus::{Encoder, TextEncoder};

use super::Metrics;
use super::grpc::{FrameCounter, code_name, grpc_type};

fn text(m: &Metrics) -> String {
    let mut out = Vec::new();
    TextEncoder::new().encode(&m.registry.gather(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn every_metric_registers_with_etcds_name_and_type() {
    let m = Metrics::new().unwrap();
    m.wal_fsync.observe(0.002);
    let text = text(&m);
    for (name, kind) in [
        ("etcd_server_has_leader", "gauge"),
        ("etcd_server_proposals_committed_total", "gauge"),
        ("etcd_debugging_mvcc_keys_total", "gauge"),
        ("etcd_disk_wal_write_bytes_total", "gauge"),
        ("etcd_mvcc_put_total", "counter"),
        ("etcd_debugging_mvcc_put_total", "counter"),
        ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
        ("etcd_debugging_lease_ttl_total", "histogram"),
        ("grpc_server_handled_total", "counter"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} {kind} missing:\n{text}"
        );
    }
    // etcd's fsync buckets start at 1 ms and end at 8.192 s (wal/metrics.go).
    assert!(text.contains(r#"etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"}"#));
    assert!(text.contains(r#"etcd_disk_wal_fsync_duration_seconds_bucket{le="8.192"}"#));
}

#[test]
fn grpc_counters_of_etcds_methods_start_at_zero_for_every_code() {
    // go-grpc-prometheus' Register(server) initializes every method with every code.
    let text = text(&Metrics::new().unwrap());
    assert!(text.contains(
        r#"grpc_server_handled_total{grpc_code="DataLoss",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 0"#
    ));
    assert!(text.contains(
        r#"grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 0"#
    ));
    let handled = text
        .lines()
        .filter(|l| l.starts_with("grpc_server_handled_total{"))
        .count();
    assert_eq!(handled, 43 * 17, "43 methods × 17 codes");
}

#[test]
fn grpc_types_follow_the_method_not_just_its_name() {
    assert_eq!(grpc_type("etcdserverpb.Watch", "Watch"), "bidi_stream");
    assert_eq!(grpc_type("grpc.health.v1.Health", "Watch"), "server_stream");
    assert_eq!(grpc_type("etcdserverpb.Maintenance", "Snapshot"), "server_stream");
    assert_eq!(grpc_type("v3electionpb.Election", "Observe"), "server_stream");
    assert_eq!(grpc_type("v3lockpb.Lock", "Lock"), "unary");
    assert_eq!(code_name(tonic::Code::Cancelled), "Canceled");
}

#[test]
fn grpc_messages_are_counted_across_chunk_boundaries() {
    // Two messages of 3 and 0 bytes, then a 300-byte one split over three chunks.
    let mut f = FrameCounter::default();
    assert_eq!(f.feed(&[0, 0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0]), (2, 3));
    assert_eq!(f.feed(&[0, 0, 0]), (0, 0));
    let mut rest = vec![1, 44];
    rest.extend(std::iter::repeat_n(7u8, 100));
    assert_eq!(f.feed(&rest), (1, 300));
    assert_eq!(f.feed(&[7u8; 200]), (0, 0));
    assert_eq!(f.feed(&[0, 0, 0, 0, 1, 9]), (1, 1));
}
