//! `mainstayctl manifest`: the static Pod `/etc/kubernetes/manifests/etcd.yaml` that kubelet
//! runs on a control-plane node, as kubeadm writes it for etcd (`cmd/kubeadm/app/phases/etcd/
//! local.go` `GetEtcdPodSpec`, `cmd/kubeadm/app/util/staticpod/utils.go`; etcd-compat.md §5.1,
//! Kubernetes 1.31–1.33 layout) with the image and the binary set to Mainstay.
//!
//! The Pod is built as typed structs ([`super::pod`]) and serialized with serde-saphyr, which
//! quotes every string a YAML 1.1 reader would take for a boolean, number or null (`"true"`,
//! `"on"`, `"10"`), so kubelet's parser reads back exactly what was meant.
//!
//! The command line is kubeadm's: `--flag=value` arguments sorted by flag name, built from a
//! map of defaults that `extra-args` entries override (kubeadm `etcd.local.extraArgs`). With
//! `etcd-flag-names: "3.6"` the 3.6 spellings replace the experimental ones
//! (`--feature-gates=InitialCorruptCheck=true`, `--watch-progress-notify-interval=5s`), as
//! kubeadm 1.34 does for etcd ≥ 3.6 images; Mainstay accepts both. The probes target the first
//! `--listen-metrics-urls` URL (kubeadm derives host, port and scheme from it too).
//!
//! Differences from kubeadm: the container command is `mainstay`, the image Mainstay's; when
//! the advertise address is itself the loopback address, `--listen-client-urls` lists it once;
//! the ports can be changed (`client-port`, `peer-port`, `metrics-port`; kubeadm's are fixed),
//! which tests use to run the generated command line on free ports.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::pod::{
    Container, HostPathVolumeSource, HttpGetAction, ObjectMeta, Pod, PodSecurityContext, PodSpec, PodStatus,
    Probe, Resources, SeccompProfile, Volume, VolumeMount,
};
use super::{CtlError, create_dir, write_atomic};
use crate::config::limits::{
    KUBE_ETCD_CLIENT_PORT, KUBE_ETCD_METRICS_PORT, KUBE_ETCD_PEER_PORT, KUBE_ETCD_SNAPSHOT_COUNT,
    KUBE_LIVENESS_FAILURE_THRESHOLD, KUBE_PROBE_INITIAL_DELAY_SECS, KUBE_PROBE_PERIOD_SECS,
    KUBE_PROBE_TIMEOUT_SECS, KUBE_READINESS_FAILURE_THRESHOLD, KUBE_READINESS_PERIOD_SECS,
    KUBE_STARTUP_FAILURE_THRESHOLD, KUBE_STATIC_POD_PRIORITY,
};

/// Where kubelet looks for static Pods (kubeadm `KubernetesDir/manifests`).
pub const DEFAULT_MANIFEST_DIR: &str = "/etc/kubernetes/manifests";
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "etcd.yaml";
/// Mode kubeadm writes static Pod manifests with.
pub const MANIFEST_FILE_MODE: u32 = 0o600;
/// Mode of a manifest directory created here (kubeadm `os.MkdirAll(manifestDir, 0700)`).
pub const MANIFEST_DIR_MODE: u32 = 0o700;
/// kubeadm's default etcd data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/etcd";
/// kubeadm's default certificate directory.
pub const DEFAULT_CERT_DIR: &str = super::certs::DEFAULT_CERT_DIR;
/// The binary the container runs (kubeadm: `etcd`).
pub const COMMAND: &str = "mainstay";
/// Annotation kubeadm publishes the member's client URL in; `kubeadm join` reads it to find
/// the etcd endpoints.
pub const ADVERTISE_CLIENT_URLS_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";
/// `--experimental-watch-progress-notify-interval` / `--watch-progress-notify-interval` value
/// kubeadm passes.
pub const WATCH_PROGRESS_NOTIFY_INTERVAL: &str = "5s";

/// The default image: Mainstay's, tagged with this build's version.
pub fn default_image() -> String {
    format!("ghcr.io/mainstay/mainstay:v{}", env!("CARGO_PKG_VERSION"))
}

/// Which spelling of the corrupt-check and progress-notify flags to write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum FlagNames {
    /// `--experimental-initial-corrupt-check=true`, `--experimental-watch-progress-notify-
    /// interval=5s` (kubeadm ≤ 1.33, or etcd images < 3.6).
    #[default]
    #[serde(rename = "3.5")]
    Etcd35,
    /// `--feature-gates=InitialCorruptCheck=true`, `--watch-progress-notify-interval=5s`
    /// (kubeadm 1.34+ with etcd ≥ 3.6).
    #[serde(rename = "3.6")]
    Etcd36,
}

impl std::str::FromStr for FlagNames {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "3.5" => Ok(FlagNames::Etcd35),
            "3.6" => Ok(FlagNames::Etcd36),
            other => Err(format!("invalid etcd flag names {other:?} (want 3.5 or 3.6)")),
        }
    }
}

/// The inputs of a manifest, from a YAML config file (keys as below) and/or command-line
/// flags of the same names. Unset fields take kubeadm's defaults; `node-name` and
/// `advertise-address` are required.
///
/// ```yaml
/// node-name: cp1
/// advertise-address: 10.0.0.11
/// image: ghcr.io/mainstay/mainstay:v0.1.0
/// data-dir: /var/lib/etcd
/// cert-dir: /etc/kubernetes/pki
/// initial-cluster: cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380
/// initial-cluster-state: existing
/// etcd-flag-names: "3.5"
/// extra-args:
///   quota-backend-bytes: "8589934592"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ManifestConfig {
    /// Member name (`--name`), also the key in `--initial-cluster`.
    pub node_name: Option<String>,
    /// The node's IP address for client and peer URLs.
    pub advertise_address: Option<IpAddr>,
    /// Container image.
    pub image: Option<String>,
    /// Data directory on the host (mounted at the same path).
    pub data_dir: Option<String>,
    /// PKI directory on the host; `<cert-dir>/etcd` is mounted.
    pub cert_dir: Option<String>,
    /// `--initial-cluster`; default `<node-name>=https://<address>:<peer-port>`.
    pub initial_cluster: Option<String>,
    /// `new` (default, not written) or `existing` (written, as on `kubeadm join`).
    pub initial_cluster_state: Option<String>,
    /// Flag spellings, `3.5` (default) or `3.6`.
    pub etcd_flag_names: Option<FlagNames>,
    /// Client port (default 2379).
    pub client_port: Option<u16>,
    /// Peer port (default 2380).
    pub peer_port: Option<u16>,
    /// Metrics and probe port (default 2381).
    pub metrics_port: Option<u16>,
    /// Extra or overriding flags, by name without dashes.
    #[serde(default)]
    pub extra_args: BTreeMap<String, String>,
}

impl ManifestConfig {
    /// Parses the YAML config file text of `path`.
    ///
    /// # Errors
    /// [`CtlError::Parse`] for invalid YAML or an unknown key.
    pub fn from_yaml(path: &Path, text: &str) -> Result<Self, CtlError> {
        let parsed: Option<ManifestConfig> =
            serde_saphyr::from_str(text).map_err(|e| CtlError::parse(path, e))?;
        Ok(parsed.unwrap_or_default())
    }

    /// Reads and parses the config file `path`.
    ///
    /// # Errors
    /// [`CtlError::Io`] or [`CtlError::Parse`].
    pub fn read(path: &Path) -> Result<Self, CtlError> {
        let text = std::fs::read_to_string(path).map_err(|e| CtlError::io(path, e))?;
        Self::from_yaml(path, &text)
    }

    /// `self` with every field `over` sets replaced (command-line flags over the file);
    /// `extra-args` are merged key by key.
    pub fn overridden_by(mut self, over: ManifestConfig) -> Self {
        fn pick<T>(base: &mut Option<T>, over: Option<T>) {
            if over.is_some() {
                *base = over;
            }
        }
        pick(&mut self.node_name, over.node_name);
        pick(&mut self.advertise_address, over.advertise_address);
        pick(&mut self.image, over.image);
        pick(&mut self.data_dir, over.data_dir);
        pick(&mut self.cert_dir, over.cert_dir);
        pick(&mut self.initial_cluster, over.initial_cluster);
        pick(&mut self.initial_cluster_state, over.initial_cluster_state);
        pick(&mut self.etcd_flag_names, over.etcd_flag_names);
        pick(&mut self.client_port, over.client_port);
        pick(&mut self.peer_port, over.peer_port);
        pick(&mut self.metrics_port, over.metrics_port);
        self.extra_args.extend(over.extra_args);
        self
    }
}

/// `host` as it appears in a URL: IPv6 in brackets.
fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The arguments after the binary name, as `name → value`, sorted by name.
///
/// # Errors
/// [`CtlError::Config`] for a missing node name or address, an `initial-cluster-state` other
/// than `new`/`existing`, or an `extra-args` name that is not a Mainstay/etcd flag.
pub fn command_args(cfg: &ManifestConfig) -> Result<BTreeMap<String, String>, CtlError> {
    let name = cfg
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| CtlError::Config("a node name is required (--node-name)".to_owned()))?;
    let ip = cfg.advertise_address.ok_or_else(|| {
        CtlError::Config("an advertise address is required (--advertise-address)".to_owned())
    })?;
    let loopback = if ip.is_ipv6() {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let client = cfg.client_port.unwrap_or(KUBE_ETCD_CLIENT_PORT);
    let peer = cfg.peer_port.unwrap_or(KUBE_ETCD_PEER_PORT);
    let metrics = cfg.metrics_port.unwrap_or(KUBE_ETCD_METRICS_PORT);
    let data_dir = cfg.data_dir.as_deref().unwrap_or(DEFAULT_DATA_DIR);
    let pki = format!(
        "{}/etcd",
        cfg.cert_dir
            .as_deref()
            .unwrap_or(DEFAULT_CERT_DIR)
            .trim_end_matches('/')
    );
    let (host, lo) = (url_host(ip), url_host(loopback));
    let client_url = format!("https://{host}:{client}");
    let peer_url = format!("https://{host}:{peer}");
    let listen_client = if ip == loopback {
        client_url.clone()
    } else {
        format!("https://{lo}:{client},{client_url}")
    };
    let mut args = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        args.insert(k.to_owned(), v);
    };
    set("advertise-client-urls", client_url);
    set("cert-file", format!("{pki}/server.crt"));
    set("client-cert-auth", "true".to_owned());
    set("data-dir", data_dir.to_owned());
    match cfg.etcd_flag_names.unwrap_or_default() {
        FlagNames::Etcd35 => {
            set("experimental-initial-corrupt-check", "true".to_owned());
            set(
                "experimental-watch-progress-notify-interval",
                WATCH_PROGRESS_NOTIFY_INTERVAL.to_owned(),
            );
        }
        FlagNames::Etcd36 => {
            set("feature-gates", "InitialCorruptCheck=true".to_owned());
            set(
                "watch-progress-notify-interval",
                WATCH_PROGRESS_NOTIFY_INTERVAL.to_owned(),
            );
        }
    }
    set("initial-advertise-peer-urls", peer_url.clone());
    set(
        "initial-cluster",
        cfg.initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{name}={peer_url}")),
    );
    match cfg.initial_cluster_state.as_deref() {
        None | Some("new") => {}
        Some("existing") => set("initial-cluster-state", "existing".to_owned()),
        Some(other) => {
            return Err(CtlError::Config(format!(
                "invalid initial-cluster-state {other:?} (want new or existing)"
            )));
        }
    }
    set("key-file", format!("{pki}/server.key"));
    set("listen-client-urls", listen_client);
    set("listen-metrics-urls", format!("http://{lo}:{metrics}"));
    set("listen-peer-urls", peer_url);
    set("name", name.to_owned());
    set("peer-cert-file", format!("{pki}/peer.crt"));
    set("peer-client-cert-auth", "true".to_owned());
    set("peer-key-file", format!("{pki}/peer.key"));
    set("peer-trusted-ca-file", format!("{pki}/ca.crt"));
    set("snapshot-count", KUBE_ETCD_SNAPSHOT_COUNT.to_string());
    set("trusted-ca-file", format!("{pki}/ca.crt"));
    for (k, v) in &cfg.extra_args {
        let flag = k.trim_start_matches('-');
        if crate::config::flags::lookup(flag).is_none() {
            return Err(CtlError::Config(format!(
                "extra argument --{flag} is not a Mainstay (etcd) flag"
            )));
        }
        args.insert(flag.to_owned(), v.clone());
    }
    Ok(args)
}

/// The container command: `mainstay` followed by `--name=value` for each argument, sorted by
/// name (kubeadm `BuildArgumentListFromMap`).
pub fn command_line(args: &BTreeMap<String, String>) -> Vec<String> {
    std::iter::once(COMMAND.to_owned())
        .chain(args.iter().map(|(k, v)| format!("--{k}={v}")))
        .collect()
}

/// The probe target: host, port and upper-case scheme of the first `--listen-metrics-urls`
/// URL (kubeadm `GetEtcdProbeEndpoint`).
fn probe_target(args: &BTreeMap<String, String>) -> Result<(String, u16, String), CtlError> {
    let first = args
        .get("listen-metrics-urls")
        .and_then(|v| v.split(',').next())
        .unwrap_or_default()
        .trim();
    let bad = |why: &str| CtlError::Config(format!("listen-metrics-urls {first:?}: {why}"));
    let url = url::Url::parse(first).map_err(|e| bad(&e.to_string()))?;
    let host = url
        .host_str()
        .ok_or_else(|| bad("no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
    Ok((host, port, url.scheme().to_ascii_uppercase()))
}

/// The etcd static Pod for `cfg`.
///
/// # Errors
/// As [`command_args`]; also [`CtlError::Config`] for an unusable `listen-metrics-urls`.
pub fn build(cfg: &ManifestConfig) -> Result<Pod, CtlError> {
    let args = command_args(cfg)?;
    let (host, port, scheme) = probe_target(&args)?;
    let probe = |path: &str, failure_threshold: i32, initial_delay_seconds: i32, period_seconds: i32| Probe {
        failure_threshold,
        http_get: HttpGetAction {
            host: host.clone(),
            path: path.to_owned(),
            port,
            scheme: scheme.clone(),
        },
        initial_delay_seconds,
        period_seconds,
        timeout_seconds: KUBE_PROBE_TIMEOUT_SECS,
    };
    let data_dir = cfg
        .data_dir
        .clone()
        .unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned());
    let pki = format!(
        "{}/etcd",
        cfg.cert_dir
            .as_deref()
            .unwrap_or(DEFAULT_CERT_DIR)
            .trim_end_matches('/')
    );
    let host_path = |path: &str| HostPathVolumeSource {
        path: path.to_owned(),
        kind: "DirectoryOrCreate".to_owned(),
    };
    let pairs = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    Ok(Pod {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        metadata: ObjectMeta {
            annotations: pairs(&[(
                ADVERTISE_CLIENT_URLS_ANNOTATION,
                args.get("advertise-client-urls")
                    .map(String::as_str)
                    .unwrap_or_default(),
            )]),
            creation_timestamp: None,
            labels: pairs(&[("component", "etcd"), ("tier", "control-plane")]),
            name: "etcd".to_owned(),
            namespace: "kube-system".to_owned(),
        },
        spec: PodSpec {
            containers: vec![Container {
                command: command_line(&args),
                image: cfg.image.clone().unwrap_or_else(default_image),
                image_pull_policy: "IfNotPresent".to_owned(),
                liveness_probe: probe(
                    "/livez",
                    KUBE_LIVENESS_FAILURE_THRESHOLD,
                    KUBE_PROBE_INITIAL_DELAY_SECS,
                    KUBE_PROBE_PERIOD_SECS,
                ),
                name: "etcd".to_owned(),
                readiness_probe: Some(probe(
                    "/readyz",
                    KUBE_READINESS_FAILURE_THRESHOLD,
                    0,
                    KUBE_READINESS_PERIOD_SECS,
                )),
                resources: Resources {
                    requests: pairs(&[("cpu", "100m"), ("memory", "100Mi")]),
                },
                startup_probe: probe(
                    "/readyz",
                    KUBE_STARTUP_FAILURE_THRESHOLD,
                    KUBE_PROBE_INITIAL_DELAY_SECS,
                    KUBE_PROBE_PERIOD_SECS,
                ),
                volume_mounts: vec![
                    VolumeMount {
                        mount_path: data_dir.clone(),
                        name: "etcd-data".to_owned(),
                    },
                    VolumeMount {
                        mount_path: pki.clone(),
                        name: "etcd-certs".to_owned(),
                    },
                ],
            }],
            host_network: true,
            priority: Some(KUBE_STATIC_POD_PRIORITY),
            priority_class_name: "system-node-critical".to_owned(),
            security_context: PodSecurityContext {
                seccomp_profile: SeccompProfile {
                    kind: "RuntimeDefault".to_owned(),
                },
            },
            // Sorted by name, as kubeadm's VolumeMapToSlice returns them.
            volumes: vec![
                Volume {
                    host_path: host_path(&pki),
                    name: "etcd-certs".to_owned(),
                },
                Volume {
                    host_path: host_path(&data_dir),
                    name: "etcd-data".to_owned(),
                },
            ],
        },
        status: PodStatus {},
    })
}

/// The Pod as YAML.
///
/// # Errors
/// [`CtlError::Config`] if serialization fails (it cannot for these types).
pub fn render(pod: &Pod) -> Result<String, CtlError> {
    serde_saphyr::to_string(pod).map_err(|e| CtlError::Config(format!("serializing the manifest: {e}")))
}

/// Writes `yaml` to `<dir>/etcd.yaml` (mode 0600, atomically, creating `dir`); returns the
/// path.
///
/// # Errors
/// [`CtlError::Io`].
pub fn write(dir: &Path, yaml: &str) -> Result<PathBuf, CtlError> {
    create_dir(dir, MANIFEST_DIR_MODE)?;
    let path = dir.join(MANIFEST_FILE);
    write_atomic(&path, yaml.as_bytes(), MANIFEST_FILE_MODE)?;
    Ok(path)
}

/// The host name, lower-cased, as kubeadm's default node name (`os.Hostname` +
/// `strings.ToLower`); `None` where it cannot be read.
pub fn default_node_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
