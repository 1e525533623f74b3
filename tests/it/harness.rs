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
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

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

/// PEM files a test client uses to reach a TLS client port.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// CA bundle the server certificate must chain to (read at each connect, so it may
    /// appear after start, as auto-TLS certificates do).
    pub ca: PathBuf,
    /// Client certificate and key, if the client presents one.
    pub identity: Option<(PathBuf, PathBuf)>,
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
    /// `http` or `https` for this member's peer URLs.
    peer_scheme: String,
    extra: Vec<String>,
    /// Set for servers whose client URL is `https`.
    pub tls: Option<ClientTls>,
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
        Self::start_with(kind, dir, extra, None).await
    }

    /// Starts a server whose client URL is `https://127.0.0.1:PORT` (the TLS flags go in
    /// `extra`); readiness and the client helpers use `tls`.
    pub async fn start_tls(kind: Kind, dir: &Path, extra: &[&str], tls: ClientTls) -> Server {
        Self::start_with(kind, dir, extra, Some(tls)).await
    }

    /// Spawns a server with an `https` client URL and returns at once, without a readiness
    /// check (for servers the harness' client cannot verify); the caller polls.
    pub fn spawn_tls_unchecked(kind: Kind, dir: &Path, extra: &[&str]) -> Server {
        let mut s = Self::unstarted(
            kind,
            dir,
            extra,
            Some(ClientTls {
                ca: PathBuf::new(),
                identity: None,
            }),
        );
        s.spawn();
        s
    }

    async fn start_with(kind: Kind, dir: &Path, extra: &[&str], tls: Option<ClientTls>) -> Server {
        let mut s = Self::unstarted(kind, dir, extra, tls);
        s.spawn();
        s.wait_ready().await;
        s
    }

    fn unstarted(kind: Kind, dir: &Path, extra: &[&str], tls: Option<ClientTls>) -> Server {
        let peer_port = free_port();
        Server {
            tls,
            kind,
            child: None,
            client_port: free_port(),
            peer_port,
            data_dir: dir.join("data"),
            log: dir.join(format!("{kind:?}.log")),
            name: "n1".to_owned(),
            initial_cluster: format!("n1=http://127.0.0.1:{peer_port}"),
            peer_scheme: "http".to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Starts a new cluster of `n` members of `kind` (names `m0`, `m1`, ...) on loopback, each
    /// with its data and log under `dir`, and waits until every member knows a leader.
    pub async fn start_cluster(kind: Kind, dir: &Path, n: usize, extra: &[&str]) -> Vec<Server> {
        let mut members = Self::prepare_cluster_with(kind, dir, n, extra, "http");
        Self::start_all(&mut members).await;
        members
    }

    /// [`Server::start_cluster`] with `https` peer URLs (the peer TLS flags go in `extra`).
    pub async fn start_cluster_peer_tls(kind: Kind, dir: &Path, n: usize, extra: &[&str]) -> Vec<Server> {
        let mut members = Self::prepare_cluster_with(kind, dir, n, extra, "https");
        Self::start_all(&mut members).await;
        members
    }

    /// The members [`Server::start_cluster`] would start, not started yet (ports chosen, data
    /// directories `dir/m<i>.data` untouched), so a test can prepare their data directories
    /// (e.g. restore a snapshot into each) first; start them with [`Server::start_all`].
    pub fn prepare_cluster(kind: Kind, dir: &Path, n: usize, extra: &[&str]) -> Vec<Server> {
        Self::prepare_cluster_with(kind, dir, n, extra, "http")
    }

    fn prepare_cluster_with(kind: Kind, dir: &Path, n: usize, extra: &[&str], scheme: &str) -> Vec<Server> {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}={scheme}://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        ports
            .iter()
            .enumerate()
            .map(|(i, (client, peer))| Server {
                tls: None,
                kind,
                child: None,
                client_port: *client,
                peer_port: *peer,
                data_dir: dir.join(format!("m{i}.data")),
                log: dir.join(format!("m{i}.log")),
                name: format!("m{i}"),
                initial_cluster: initial_cluster.clone(),
                peer_scheme: scheme.to_owned(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
            })
            .collect()
    }

    /// One member like [`Server::start`]'s (name `n1`, data in `dir/data`), not started yet.
    pub fn prepare(kind: Kind, dir: &Path, extra: &[&str]) -> Server {
        Self::unstarted(kind, dir, extra, None)
    }

    /// Starts every member of `members`, then waits until each knows a leader.
    pub async fn start_all(members: &mut [Server]) {
        for m in members.iter_mut() {
            m.spawn();
        }
        for m in members.iter_mut() {
            m.wait_ready().await;
        }
    }

    /// `--initial-cluster` this member starts with.
    pub fn initial_cluster(&self) -> &str {
        &self.initial_cluster
    }

    /// `--initial-advertise-peer-urls` this member starts with.
    pub fn peer_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.peer_scheme, self.peer_port)
    }

    /// Restores `snapshot` (an `etcdctl snapshot save` file) with the real `etcdctl snapshot
    /// restore` into `dir/data` as member `n1` on fresh ports, starts the real etcd on it and
    /// waits until it answers Status.
    pub async fn etcd_restored(dir: &Path, snapshot: &Path) -> Server {
        let peer_port = free_port();
        let mut s = Server {
            tls: None,
            kind: Kind::Etcd,
            child: None,
            client_port: free_port(),
            peer_port,
            data_dir: dir.join("data"),
            log: dir.join("Etcd.log"),
            name: "n1".to_owned(),
            initial_cluster: format!("n1=http://127.0.0.1:{peer_port}"),
            peer_scheme: "http".to_owned(),
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

    /// The client endpoint, `http://127.0.0.1:PORT` (`https` for TLS servers).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// A gRPC channel to the client port (TLS per `self.tls`).
    pub async fn channel(&self) -> Result<Channel, Box<dyn std::error::Error + Send + Sync>> {
        let mut endpoint = Endpoint::from_shared(self.endpoint())?;
        if let Some(tls) = &self.tls {
            let mut config =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(&tls.ca)?));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(std::fs::read(cert)?, std::fs::read(key)?));
            }
            endpoint = endpoint.tls_config(config)?;
        }
        Ok(endpoint.connect().await?)
    }

    /// The process id, for sending signals.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits up to `deadline` for the process to exit by itself; its exit status.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    fn spawn(&mut self) {
        let bin = match self.kind {
            Kind::Mainstay => PathBuf::from(env!("CARGO_BIN_EXE_mainstay")),
            Kind::Etcd => etcd_bin(),
        };
        let peer = format!("{}://127.0.0.1:{}", self.peer_scheme, self.peer_port);
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
            if let Ok(channel) = self.channel().await
                && let Ok(resp) = MaintenanceClient::new(channel).status(StatusRequest {}).await
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

    /// This server's Maintenance.Status answer.
    pub async fn status(&self) -> mainstay::proto::etcdserverpb::StatusResponse {
        self.maintenance()
            .await
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    /// A KV client.
    pub async fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel().await.unwrap())
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    /// A Maintenance client.
    pub async fn maintenance(&self) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channel().await.unwrap())
    }

    /// A Cluster client.
    pub async fn cluster(&self) -> ClusterClient<Channel> {
        ClusterClient::new(self.channel().await.unwrap())
    }

    /// Runs the real etcdctl (API v3) against this server; returns (exit ok, stdout, stderr).
    pub fn etcdctl(&self, args: &[&str]) -> (bool, String, String) {
        let mut tls_args = Vec::new();
        if let Some(tls) = &self.tls {
            tls_args.push(format!("--cacert={}", tls.ca.display()));
            if let Some((cert, key)) = &tls.identity {
                tls_args.push(format!("--cert={}", cert.display()));
                tls_args.push(format!("--key={}", key.display()));
            }
        }
        let out = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .args(&tls_args)
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
