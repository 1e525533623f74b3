//! Shared by the benchmarks (`benches/watch.rs`, `benches/lease.rs`, `benches/compare.rs`),
//! included with `#[path]`: starting the real etcd or Mainstay as a child process on free
//! loopback ports (and stopping and restarting it on the same data), connecting, and the
//! number formatting of the result tables.

#![allow(dead_code, reason = "each benchmark uses a different subset")]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use mainstay::proto::etcdserverpb::StatusRequest;
use mainstay::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tonic::transport::{Channel, Endpoint};

/// How long a server gets to start and elect itself leader.
pub const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How long one unary request may take.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Etcd,
    Mainstay,
}

pub const KINDS: [Kind; 2] = [Kind::Etcd, Kind::Mainstay];

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Etcd => "etcd",
            Kind::Mainstay => "mainstay",
        }
    }
    pub fn index(self) -> usize {
        match self {
            Kind::Etcd => 0,
            Kind::Mainstay => 1,
        }
    }
}

pub fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a count")),
        Err(_) => Ok(default),
    }
}

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A server child process with its own data directory; killed when dropped.
pub struct Server {
    pub kind: Kind,
    pub child: Child,
    pub endpoint: String,
    pub log: PathBuf,
    pub bin: PathBuf,
    pub args: Vec<String>,
    pub _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start(kind: Kind, bin: &Path, bench: &str) -> Result<Server> {
        Server::start_with(kind, bin, bench, &[]).await
    }

    /// Starts a server with `extra` flags after the standard single-member ones.
    pub async fn start_with(kind: Kind, bin: &Path, bench: &str, extra: &[String]) -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("bench-{bench}-{}-", kind.label()))
            .tempdir()?;
        let endpoint = format!("http://127.0.0.1:{}", free_port()?);
        let peer = format!("http://127.0.0.1:{}", free_port()?);
        let log = dir.path().join("server.log");
        let mut args = vec![
            "--name=n1".to_string(),
            format!("--data-dir={}", dir.path().join("data").display()),
            format!("--listen-client-urls={endpoint}"),
            format!("--advertise-client-urls={endpoint}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=n1={peer}"),
        ];
        args.extend(extra.iter().cloned());
        let child = spawn(bin, &args, &log)?;
        let mut server = Server {
            kind,
            child,
            endpoint,
            log,
            bin: bin.to_path_buf(),
            args,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    /// Stops the server with SIGTERM (as systemd or the kubelet would), waiting up to
    /// `deadline` before killing it.
    pub async fn stop(&mut self, deadline: Duration) -> Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let until = Instant::now() + deadline;
        while self.child.try_wait()?.is_none() {
            if Instant::now() >= until {
                let _ = self.child.kill();
                self.child.wait()?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Starts the stopped server again on the same data directory, ports and flags, without
    /// waiting for it to be ready.
    pub fn respawn(&mut self) -> Result<()> {
        self.child = spawn(&self.bin, &self.args, &self.log)?;
        Ok(())
    }

    pub async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            self.check_alive()?;
            if let Ok(ch) = connect(&self.endpoint).await
                && let Ok(Ok(resp)) = tokio::time::timeout(
                    REQUEST_DEADLINE,
                    MaintenanceClient::new(ch).status(StatusRequest {}),
                )
                .await
                && resp.into_inner().leader != 0
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("not ready within {READY_DEADLINE:?}{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails when the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!("{} exited ({status}){}", self.kind.label(), self.log_tail()),
            Err(e) => bail!("cannot check {}: {e}", self.kind.label()),
        }
    }

    /// The process's resident set size, in bytes.
    pub fn rss_bytes(&mut self) -> Result<u64> {
        self.check_alive()?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .ok_or_else(|| anyhow!("no VmRSS in /proc/{}/status", self.child.id()))?
            .trim()
            .parse::<u64>()?;
        Ok(kib * 1024)
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n    ");
        if tail.is_empty() {
            String::new()
        } else {
            format!("; last log lines:\n    {tail}")
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(bin: &Path, args: &[String], log: &Path) -> Result<Child> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // Both servers read ETCD_* variables; neither should see the caller's.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETCD") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.spawn()
        .with_context(|| format!("cannot start {}", bin.display()))
}

pub async fn connect(endpoint: &str) -> Result<Channel> {
    let ch = Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(ch)
}

pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Shortens an error to its first line for the table; the full text goes to the notes.
pub fn short(e: &str) -> String {
    let first = e.lines().next().unwrap_or_default();
    if first.chars().count() > 60 {
        format!("{}…", first.chars().take(60).collect::<String>())
    } else {
        first.to_string()
    }
}

/// The nearest-rank percentile `p` of `sorted` (NaN when empty).
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).map_or(f64::NAN, |v| *v as f64)
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if !n.is_multiple_of(2) {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn version_line(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown version".to_string())
}
