//! The subset of the Kubernetes `v1.Pod` schema a kubeadm etcd static Pod uses, with
//! Kubernetes' JSON field names (`k8s.io/api/core/v1/types.go`).
//!
//! Fields are declared in alphabetical order because kubeadm's manifests are Go structs
//! marshalled to JSON and converted to YAML, which sorts keys; serde keeps declaration order,
//! so the output reads like kubeadm's. Unknown fields are rejected when parsing, so a parse
//! of kubeadm's own `etcd.yaml` into these types proves they cover all of it. Zero-valued
//! `omitempty` fields (a probe's `initialDelaySeconds: 0`) are left out, as Go does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `v1.Pod`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pod {
    /// Always `v1`.
    pub api_version: String,
    /// Always `Pod`.
    pub kind: String,
    /// Name, namespace, labels, annotations.
    pub metadata: ObjectMeta,
    /// The Pod spec.
    pub spec: PodSpec,
    /// Always empty in a manifest (`status: {}`).
    pub status: PodStatus,
}

/// `metav1.ObjectMeta` (subset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// `kubeadm.kubernetes.io/etcd.advertise-client-urls` and the like.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Go marshals the zero `metav1.Time` as `null`; kubeadm's manifests carry
    /// `creationTimestamp: null` (before Kubernetes 1.35 dropped it).
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    /// `component: etcd`, `tier: control-plane`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
}

/// `v1.PodSpec` (subset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSpec {
    /// The one etcd container.
    pub containers: Vec<Container>,
    /// Share the node's network namespace.
    pub host_network: bool,
    /// Resolved priority of `priorityClassName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// `system-node-critical`.
    pub priority_class_name: String,
    /// Pod-level security context.
    pub security_context: PodSecurityContext,
    /// hostPath volumes.
    pub volumes: Vec<Volume>,
}

/// `v1.PodStatus`: always empty here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodStatus {}

/// `v1.Container` (subset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    /// argv: the binary, then `--flag=value` arguments.
    pub command: Vec<String>,
    /// Container image reference.
    pub image: String,
    /// `IfNotPresent`.
    pub image_pull_policy: String,
    /// Restarts the container when failing.
    pub liveness_probe: Probe,
    /// Container name.
    pub name: String,
    /// Marks the Pod ready (absent before Kubernetes 1.31).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    /// Resource requests.
    pub resources: Resources,
    /// Holds off the liveness probe until the member has started.
    pub startup_probe: Probe,
    /// Mounts of the volumes.
    pub volume_mounts: Vec<VolumeMount>,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// `v1.Probe` with an HTTP GET handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    /// Consecutive failures that count as failed.
    pub failure_threshold: i32,
    /// The request.
    pub http_get: HttpGetAction,
    /// Seconds before the first probe (omitted when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub initial_delay_seconds: i32,
    /// Seconds between probes.
    pub period_seconds: i32,
    /// Seconds before a probe times out.
    pub timeout_seconds: i32,
}

/// `v1.HTTPGetAction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGetAction {
    /// Host to connect to (kubeadm: the loopback address).
    pub host: String,
    /// Request path, e.g. `/livez`.
    pub path: String,
    /// Port number (an `IntOrString` holding an int).
    pub port: u16,
    /// `HTTP` or `HTTPS`.
    pub scheme: String,
}

/// `v1.ResourceRequirements` (requests only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// `cpu: 100m`, `memory: 100Mi`.
    pub requests: BTreeMap<String, String>,
}

/// `v1.VolumeMount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    /// Path inside the container.
    pub mount_path: String,
    /// Volume name.
    pub name: String,
}

/// `v1.Volume` with a hostPath source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// The host directory.
    pub host_path: HostPathVolumeSource,
    /// Volume name.
    pub name: String,
}

/// `v1.HostPathVolumeSource`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostPathVolumeSource {
    /// Host path.
    pub path: String,
    /// `DirectoryOrCreate`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `v1.PodSecurityContext` (subset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSecurityContext {
    /// `RuntimeDefault`.
    pub seccomp_profile: SeccompProfile,
}

/// `v1.SeccompProfile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeccompProfile {
    /// `RuntimeDefault`.
    #[serde(rename = "type")]
    pub kind: String,
}
