//! TEMPORARY stub until the flags module lands.
pub mod limits {
    pub const GRPC_OVERHEAD_BYTES: u64 = 512 * 1024;
    pub const QUOTA_BACKEND_BYTES_DEFAULT: u64 = 2 * 1024 * 1024 * 1024;
    pub const SNAPSHOT_CATCHUP_ENTRIES_DEFAULT: u64 = 5000;
}
use std::path::PathBuf;
use std::time::Duration;
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<url::Url>,
    pub advertise_client_urls: Vec<url::Url>,
    pub initial_advertise_peer_urls: Vec<url::Url>,
    pub initial_cluster: Vec<(String, url::Url)>,
    pub initial_cluster_token: String,
    pub max_request_bytes: u64,
    pub max_txn_ops: usize,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_count: u64,
    pub quota_backend_bytes: u64,
    pub log_level: String,
    pub not_yet_effective: Vec<String>,
    pub warnings: Vec<String>,
}
pub enum ParseOutcome {
    Run(Config),
    Exit {
        code: i32,
        stdout: String,
        stderr: String,
    },
}
pub fn parse(_args: &[String], _env: &dyn Fn(&str) -> Option<String>) -> ParseOutcome {
    let u = |s: &str| url::Url::parse(s).unwrap_or_else(|_| unreachable!());
    ParseOutcome::Run(Config {
        name: "default".into(),
        data_dir: "default.etcd".into(),
        listen_client_urls: vec![u("http://localhost:2379")],
        advertise_client_urls: vec![u("http://localhost:2379")],
        initial_advertise_peer_urls: vec![u("http://localhost:2380")],
        initial_cluster: vec![("default".into(), u("http://localhost:2380"))],
        initial_cluster_token: "etcd-cluster".into(),
        max_request_bytes: 1572864,
        max_txn_ops: 128,
        heartbeat_interval: Duration::from_millis(100),
        election_timeout: Duration::from_millis(1000),
        snapshot_count: 100000,
        quota_backend_bytes: 0,
        log_level: "info".into(),
        not_yet_effective: vec![],
        warnings: vec![],
    })
}
