//! Test harness: starts the built `mainstay` binary, or the real etcd (Debian `etcd-server`,
//! `/usr/bin/etcd`, or `$ETCD_BIN`), on free loopback ports with a temporary data directory,
//! and connects gRPC clients generated from the project's own protos.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mainstay::proto::etcdserverpb::StatusRequest;
use mainstay::proto::etcdserverpb::cluster_client::ClusterClient;
use mainstay::proto::etcdserverpb::kv_client::KvClient;
use mainstay::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tonic::transport::Channel;

/// How long a server gets to become ready.
pub const READY_DEADLINE: Duration = Duration::from_secs(30);

/// Which server binary a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The `mainstay` binary built by cargo.
    Mainstay,
    /// The real etcd.
    Etcd,
}

/// A running server process, killed when dropped.
pub struct Server {
    pub kind: Kind,
    child: Option<Child>,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// `--name`.
    pub name: String,
    /// `--initial-cluster`.
    initial_cluster: String,
    extra: Vec<String>,
}

/// A free TCP port on 127.0.0.1 (bound and released; a race with another process is possible
/// but harmless in practice for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The etcd binary for differential tests.
pub fn etcd_bin() -> PathBuf {
    std::env::var_os("ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"))
}

/// The etcdctl binary.
pub fn etcdctl_bin() -> PathBuf {
    std::env::var_os("ETCDCTL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcdctl"))
}

impl Server {
    /// Starts a server of `kind` with its data under `dir` and waits until it answers Status.
    pub async fn start(kind: Kind, dir: &Path, extra: &[&str]) -> Server {
        let peer_port = free_port();
        let mut s = Server {
            kind,
            child: None,
            client_port: free_port(),
            peer_port,
            data_dir: dir.join("data"),
            log: dir.join(format!("{kind:?}.log")),
            name: "n1".to_owned(),
            initial_cluster: format!("n1=http://127.0.0.1:{peer_port}"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn();
        s.wait_ready().await;
        s
    }

    /// Starts a new cluster of `n` members of `kind` (names `m0`, `m1`, ...) on loopback, each
    /// with its data and log under `dir`, and waits until every member knows a leader.
    pub async fn start_cluster(kind: Kind, dir: &Path, n: usize, extra: &[&str]) -> Vec<Server> {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Server> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| Server {
                kind,
                child: None,
                client_port: *client,
                peer_port: *peer,
                data_dir: dir.join(format!("m{i}.data")),
                log: dir.join(format!("m{i}.log")),
                name: format!("m{i}"),
                initial_cluster: initial_cluster.clone(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
            })
            .collect();
        for m in &mut members {
            m.spawn();
        }
        for m in &mut members {
            m.wait_ready().await;
        }
        members
    }

    /// Restores `snapshot` (an `etcdctl snapshot save` file) with the real `etcdctl snapshot
    /// restore` into `dir/data` as member `n1` on fresh ports, starts the real etcd on it and
    /// waits until it answers Status.
    pub async fn etcd_restored(dir: &Path, snapshot: &Path) -> Server {
        let peer_port = free_port();
        let mut s = Server {
            kind: Kind::Etcd,
            child: None,
            client_port: free_port(),
            peer_port,
            data_dir: dir.join("data"),
            log: dir.join("Etcd.log"),
            name: "n1".to_owned(),
            initial_cluster: format!("n1=http://127.0.0.1:{peer_port}"),
            extra: Vec::new(),
        };
        let peer = format!("http://127.0.0.1:{}", s.peer_port);
        let out = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "restore"])
            .arg(snapshot)
            .arg(format!("--data-dir={}", s.data_dir.display()))
            .args(["--name", "n1"])
            .arg(format!("--initial-cluster=n1={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run etcdctl ({e}); install Debian's etcd-client"));
        assert!(
            out.status.success(),
            "etcdctl snapshot restore failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.spawn();
        s.wait_ready().await;
        s
    }

    /// Starts a mainstay server in `dir`.
    pub async fn mainstay(dir: &Path) -> Server {
        Server::start(Kind::Mainstay, dir, &[]).await
    }

    /// The client endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn spawn(&mut self) {
        let bin = match self.kind {
            Kind::Mainstay => PathBuf::from(env!("CARGO_BIN_EXE_mainstay")),
            Kind::Etcd => etcd_bin(),
        };
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut args = vec![
            "--name".to_string(),
            self.name.clone(),
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={}", self.endpoint()),
            format!("--advertise-client-urls={}", self.endpoint()),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={}", self.initial_cluster),
        ];
        args.extend(self.extra.iter().cloned());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&bin)
            .args(&args)
            .env_remove("ETCDCTL_API")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "{:?} exited early with {status}; log:\n{}",
                    self.kind,
                    self.log_text()
                );
            }
            if let Ok(mut m) = MaintenanceClient::connect(self.endpoint()).await
                && let Ok(resp) = m.status(StatusRequest {}).await
                && resp.into_inner().leader != 0
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} not ready in {READY_DEADLINE:?}; log:\n{}",
                self.kind,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILLs the process (no chance to flush anything).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again on the same ports and data directory.
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_ready().await;
    }

    /// A KV client.
    pub async fn kv(&self) -> KvClient<Channel> {
        KvClient::connect(self.endpoint())
            .await
            .unwrap()
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    /// A Maintenance client.
    pub async fn maintenance(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::connect(self.endpoint()).await.unwrap()
    }

    /// A Cluster client.
    pub async fn cluster(&self) -> ClusterClient<Channel> {
        ClusterClient::connect(self.endpoint()).await.unwrap()
    }

    /// Runs the real etcdctl (API v3) against this server; returns (exit ok, stdout, stderr).
    pub fn etcdctl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run etcdctl ({e}); install Debian's etcd-client"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The real etcd and Mainstay side by side, each with its own data directory, for tests that
/// run the same commands against both and compare.
pub struct Pair {
    pub etcd: Server,
    pub mainstay: Server,
    _dirs: [tempfile::TempDir; 2],
}

impl Pair {
    /// Starts both servers.
    pub async fn start() -> Pair {
        let (de, dm) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (etcd, mainstay) = tokio::join!(
            Server::start(Kind::Etcd, de.path(), &[]),
            Server::start(Kind::Mainstay, dm.path(), &[])
        );
        Pair {
            etcd,
            mainstay,
            _dirs: [de, dm],
        }
    }

    /// Both servers, etcd first.
    pub fn both(&self) -> [&Server; 2] {
        [&self.etcd, &self.mainstay]
    }
}

/// A plain HTTP/1.1 GET to 127.0.0.1:`port` (health, metrics and version endpoints); returns the
/// whole raw response, status line and headers included.
pub async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}
