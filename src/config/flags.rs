//! The table of every etcd server flag Mainstay accepts, and the value syntax of each kind.
//!
//! One row per flag: name, value kind, default (as etcd prints it in `--help`), a one-line help
//! text, and whether Mainstay acts on it yet. The table is the single source for the command
//! line, the `ETCD_*` environment, the YAML config file and the `--help` text. It is the union
//! of etcd 3.5.21 and 3.6 flags: both the `--experimental-*` and the 3.6 spellings, the 3.5-only
//! v2/proxy flags (3.6 rejects those; Mainstay follows 3.5 and accepts them), and the legacy
//! names etcd silently ignores.
//!
//! Each kind's syntax follows Go's `flag` package and etcd's `pkg/flags` (see `value.rs` and
//! `duration.rs`): booleans use `strconv.ParseBool`, integers `strconv.ParseInt/ParseUint(s, 0,
//! 64)` (so `0x10`, `0o17`, `1_000` work), durations `time.ParseDuration`, URL lists
//! `types.NewURLs` (comma separated, trimmed, scheme http/https/unix/unixs, `host:port`, no
//! path; sorted and de-duplicated as etcd's `UniqueURLs` does).

use std::time::Duration;

use url::Url;

use super::duration::parse_go_duration;
use super::value::{
    parse_feature_gates, parse_go_bool, parse_go_int, parse_go_uint, parse_url_list, split_list,
};

/// How a flag's value is written and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// Go `bool`: bare `--flag` means true; a value needs `=` (`--flag=false`).
    Bool,
    /// Free text (paths, names, tokens), or one of the spec's `choices` when those are given.
    String,
    /// Go `int`/`int64`: signed 64-bit, decimal or `0x`/`0o`/`0b`/leading-`0` octal.
    Int,
    /// Go `uint`/`uint64`: unsigned 64-bit, same bases as [`FlagKind::Int`], no sign.
    Uint,
    /// etcd `flags.Uint32Value`: like [`FlagKind::Uint`] but at most `u32::MAX`.
    Uint32,
    /// Go `time.Duration` syntax (`5s`, `1h30m`); see `duration.rs`.
    Duration,
    /// Comma-separated URLs (`http`, `https`, `unix`, `unixs`).
    UrlList,
    /// Comma-separated strings.
    StringList,
    /// `Name=bool[,Name=bool...]` server feature gates (etcd 3.6 `--feature-gates`).
    FeatureGates,
    /// A legacy name etcd accepts as a boolean-like flag and ignores with a warning.
    Ignored,
}

/// Where a flag is listed in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Member identity, storage and limits.
    Member,
    /// Bootstrap and cluster membership.
    Clustering,
    /// The etcd 3.5 v2 proxy (accepted, never run).
    Proxy,
    /// TLS for clients and peers.
    Security,
    /// v3 authentication.
    Auth,
    /// Metrics and profiling.
    Monitoring,
    /// Logging.
    Logging,
    /// OpenTelemetry tracing.
    Tracing,
    /// Experimental flags and their etcd 3.6 names.
    Experimental,
    /// Flags that may break consensus guarantees.
    Unsafe,
    /// Mainstay's own settings, which etcd has only in its embed configuration or not at all.
    Mainstay,
    /// `--config-file` and `--version`.
    Other,
    /// Legacy names, not shown in `--help`.
    Hidden,
}

/// One row of the flag table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagSpec {
    /// Name without dashes, e.g. `listen-client-urls`.
    pub name: &'static str,
    /// Value syntax.
    pub kind: FlagKind,
    /// Default value in the flag's own syntax, as etcd 3.5 shows it. Empty for "unset".
    pub default: &'static str,
    /// One-line help text.
    pub help: &'static str,
    /// Whether Mainstay acts on the value. Flags set to a non-default value while this is
    /// false are reported in `Config::not_yet_effective`.
    pub implemented: bool,
    /// `--help` section.
    pub section: Section,
    /// For [`FlagKind::String`]: the only accepted values (Go's `SelectiveStringValue`).
    pub choices: &'static [&'static str],
}

impl FlagSpec {
    const fn new(
        section: Section,
        name: &'static str,
        kind: FlagKind,
        default: &'static str,
        help: &'static str,
    ) -> Self {
        Self {
            name,
            kind,
            default,
            help,
            implemented: false,
            section,
            choices: &[],
        }
    }
    const fn implemented(mut self) -> Self {
        self.implemented = true;
        self
    }
    const fn choices(mut self, choices: &'static [&'static str]) -> Self {
        self.choices = choices;
        self
    }

    /// The environment variable etcd reads this flag from: `ETCD_` + upper-case name with
    /// dashes turned into underscores (`pkg/flags.FlagToEnv`).
    pub fn env_name(&self) -> String {
        env_name(self.name)
    }

    /// Whether Go's flag parser treats the flag as boolean (no separate value argument).
    pub fn is_bool_like(&self) -> bool {
        matches!(self.kind, FlagKind::Bool | FlagKind::Ignored)
    }
}

/// `ETCD_<NAME>` for a flag name (`pkg/flags.FlagToEnv`).
pub fn env_name(flag: &str) -> String {
    format!("ETCD_{}", flag.to_ascii_uppercase().replace('-', "_"))
}

/// Looks a flag up by its exact name (Go flag names are case-sensitive).
pub fn lookup(name: &str) -> Option<&'static FlagSpec> {
    FLAGS.iter().find(|f| f.name == name)
}

use FlagKind::{Bool as B, Duration as D, FeatureGates as FG, Ignored as IGN, Int as I, String as S};
use FlagKind::{StringList as SL, Uint as U, Uint32 as U32, UrlList as URLS};
use Section::Tracing as TRC;
use Section::{Auth as AUTH, Clustering as CL, Experimental as EXP, Hidden as HID, Logging as LOG};
use Section::{Member as MEM, Monitoring as MON, Other as OTH, Proxy as PRX, Security as SEC};

const fn f(
    section: Section,
    name: &'static str,
    kind: FlagKind,
    default: &'static str,
    help: &'static str,
) -> FlagSpec {
    FlagSpec::new(section, name, kind, default, help)
}

/// Every flag, in `--help` order. Defaults are etcd 3.5.21's.
#[rustfmt::skip]
pub static FLAGS: &[FlagSpec] = &[
    f(MEM, "name", S, "default", "Human-readable name for this member.").implemented(),
    f(MEM, "data-dir", S, "", "Path to the data directory (default '${name}.etcd').").implemented(),
    f(MEM, "wal-dir", S, "", "Path to the dedicated wal directory (default: data-dir/member/wal)."),
    f(MEM, "snapshot-count", U, "100000", "Number of committed transactions to trigger a snapshot to disk.").implemented(),
    f(MEM, "heartbeat-interval", U, "100", "Time (in milliseconds) of a heartbeat interval.").implemented(),
    f(MEM, "election-timeout", U, "1000", "Time (in milliseconds) for an election to timeout.").implemented(),
    f(MEM, "initial-election-tick-advance", B, "true", "Whether to fast-forward initial election ticks on boot for faster election."),
    f(MEM, "listen-peer-urls", URLS, "http://localhost:2380", "List of URLs to listen on for peer traffic.").implemented(),
    f(MEM, "listen-client-urls", URLS, "http://localhost:2379", "List of URLs to listen on for client grpc traffic (and http unless --listen-client-http-urls is set).").implemented(),
    f(MEM, "listen-client-http-urls", URLS, "", "List of URLs to listen on for http only client traffic.").implemented(),
    f(MEM, "max-snapshots", U, "5", "Maximum number of snapshot files to retain (0 is unlimited)."),
    f(MEM, "max-wals", U, "5", "Maximum number of wal files to retain (0 is unlimited)."),
    f(MEM, "quota-backend-bytes", I, "0", "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).").implemented(),
    f(MEM, "backend-bbolt-freelist-type", S, "map", "Freelist type of the backend (array and map are supported types)."),
    f(MEM, "backend-batch-interval", D, "0s", "Maximum time before commit the backend transaction (0 = backend default)."),
    f(MEM, "backend-batch-limit", I, "0", "Maximum operations before commit the backend transaction (0 = backend default)."),
    f(MEM, "max-txn-ops", U, "128", "Maximum number of operations permitted in a transaction.").implemented(),
    f(MEM, "max-request-bytes", U, "1572864", "Maximum client request size in bytes the server will accept.").implemented(),
    f(MEM, "max-concurrent-streams", U32, "4294967295", "Maximum concurrent streams that each client can open at a time.").implemented(),
    f(MEM, "grpc-keepalive-min-time", D, "5s", "Minimum duration interval that a client should wait before pinging server."),
    f(MEM, "grpc-keepalive-interval", D, "2h", "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable)."),
    f(MEM, "grpc-keepalive-timeout", D, "20s", "Additional duration of wait before closing a non-responsive connection (0 to disable)."),
    f(MEM, "socket-reuse-port", B, "false", "Enable to set socket option SO_REUSEPORT on listeners."),
    f(MEM, "socket-reuse-address", B, "false", "Enable to set socket option SO_REUSEADDR on listeners."),
    f(MEM, "raft-read-timeout", D, "5s", "Read timeout set on each rafthttp connection."),
    f(MEM, "raft-write-timeout", D, "5s", "Write timeout set on each rafthttp connection."),

    f(CL, "initial-advertise-peer-urls", URLS, "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster.").implemented(),
    f(CL, "initial-cluster", S, "", "Initial cluster configuration for bootstrapping (default '${name}=${initial-advertise-peer-urls}').").implemented(),
    f(CL, "initial-cluster-state", S, "new", "Initial cluster state ('new' or 'existing').").implemented().choices(&["new", "existing"]),
    f(CL, "initial-cluster-token", S, "etcd-cluster", "Initial cluster token for the etcd cluster during bootstrap.").implemented(),
    f(CL, "advertise-client-urls", URLS, "http://localhost:2379", "List of this member's client URLs to advertise to the public.").implemented(),
    f(CL, "discovery", S, "", "Discovery URL used to bootstrap the cluster (v2 discovery)."),
    f(CL, "discovery-fallback", S, "proxy", "Expected behavior ('exit' or 'proxy') when discovery services fails.").choices(&["proxy", "exit"]),
    f(CL, "discovery-proxy", S, "", "HTTP proxy to use for traffic to discovery service."),
    f(CL, "discovery-srv", S, "", "DNS srv domain used to bootstrap the cluster."),
    f(CL, "discovery-srv-name", S, "", "Suffix to the dns srv name queried when bootstrapping."),
    f(CL, "discovery-endpoints", SL, "", "V3 discovery: List of gRPC endpoints of the discovery service."),
    f(CL, "discovery-token", S, "", "V3 discovery: discovery token for the etcd cluster to be bootstrapped."),
    f(CL, "discovery-dial-timeout", D, "2s", "V3 discovery: dial timeout for client connections."),
    f(CL, "discovery-request-timeout", D, "5s", "V3 discovery: timeout for discovery requests (excluding dial timeout)."),
    f(CL, "discovery-keepalive-time", D, "2s", "V3 discovery: keepalive time for client connections."),
    f(CL, "discovery-keepalive-timeout", D, "6s", "V3 discovery: keepalive timeout for client connections."),
    f(CL, "discovery-insecure-transport", B, "true", "V3 discovery: disable transport security for client connections."),
    f(CL, "discovery-insecure-skip-tls-verify", B, "false", "V3 discovery: skip server certificate verification."),
    f(CL, "discovery-cert", S, "", "V3 discovery: identify secure client using this TLS certificate file."),
    f(CL, "discovery-key", S, "", "V3 discovery: identify secure client using this TLS key file."),
    f(CL, "discovery-cacert", S, "", "V3 discovery: verify certificates of TLS-enabled secure servers using this CA bundle."),
    f(CL, "discovery-user", S, "", "V3 discovery: username[:password] for authentication."),
    f(CL, "discovery-password", S, "", "V3 discovery: password for authentication."),
    f(CL, "strict-reconfig-check", B, "true", "Reject reconfiguration requests that would cause quorum loss."),
    f(CL, "pre-vote", B, "true", "Enable the raft Pre-Vote algorithm."),
    f(CL, "auto-compaction-retention", S, "0", "Auto compaction retention length. 0 means disable auto compaction."),
    f(CL, "auto-compaction-mode", S, "periodic", "Interpret 'auto-compaction-retention' one of: periodic|revision."),
    f(CL, "enable-v2", B, "false", "Accept etcd V2 client requests (etcd 3.5 only; Mainstay serves no v2 API)."),
    f(CL, "experimental-enable-v2v3", S, "", "Serve v2 requests through the v3 backend under a given prefix (etcd 3.5 only)."),
    f(CL, "v2-deprecation", S, "not-yet", "v2store deprecation stage: not-yet, write-only, write-only-drop-data or gone.").choices(&["not-yet", "write-only", "write-only-drop-data", "gone"]),

    f(PRX, "proxy", S, "off", "Proxy mode setting ('off', 'readonly' or 'on').").choices(&["off", "readonly", "on"]),
    f(PRX, "proxy-failure-wait", U, "5000", "Time (in milliseconds) an endpoint will be held in a failed state."),
    f(PRX, "proxy-refresh-interval", U, "30000", "Time (in milliseconds) of the endpoints refresh interval."),
    f(PRX, "proxy-dial-timeout", U, "1000", "Time (in milliseconds) for a dial to timeout."),
    f(PRX, "proxy-write-timeout", U, "5000", "Time (in milliseconds) for a write to timeout."),
    f(PRX, "proxy-read-timeout", U, "0", "Time (in milliseconds) for a read to timeout."),

    f(SEC, "cert-file", S, "", "Path to the client server TLS cert file.").implemented(),
    f(SEC, "key-file", S, "", "Path to the client server TLS key file.").implemented(),
    f(SEC, "client-cert-file", S, "", "Path to an explicit client TLS cert file used when etcd acts as a client."),
    f(SEC, "client-key-file", S, "", "Path to an explicit client TLS key file used when etcd acts as a client."),
    f(SEC, "client-cert-auth", B, "false", "Enable client cert authentication.").implemented(),
    f(SEC, "client-crl-file", S, "", "Path to the client certificate revocation list file.").implemented(),
    f(SEC, "client-cert-allowed-hostname", SL, "", "Comma-separated list of allowed SAN hostnames for client cert authentication.").implemented(),
    f(SEC, "trusted-ca-file", S, "", "Path to the client server TLS trusted CA cert file.").implemented(),
    f(SEC, "auto-tls", B, "false", "Client TLS using generated certificates.").implemented(),
    f(SEC, "peer-cert-file", S, "", "Path to the peer server TLS cert file.").implemented(),
    f(SEC, "peer-key-file", S, "", "Path to the peer server TLS key file.").implemented(),
    f(SEC, "peer-client-cert-file", S, "", "Path to an explicit peer client TLS cert file."),
    f(SEC, "peer-client-key-file", S, "", "Path to an explicit peer client TLS key file."),
    f(SEC, "peer-client-cert-auth", B, "false", "Enable peer client cert authentication.").implemented(),
    f(SEC, "peer-trusted-ca-file", S, "", "Path to the peer server TLS trusted CA file.").implemented(),
    f(SEC, "peer-cert-allowed-cn", SL, "", "Comma-separated list of allowed CNs for inter-peer TLS authentication."),
    f(SEC, "peer-cert-allowed-hostname", SL, "", "Comma-separated list of allowed SAN hostnames for inter-peer TLS authentication.").implemented(),
    f(SEC, "peer-auto-tls", B, "false", "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.").implemented(),
    f(SEC, "self-signed-cert-validity", U, "1", "The validity period of the client and peer certificates, unit is year.").implemented(),
    f(SEC, "peer-crl-file", S, "", "Path to the peer certificate revocation list file.").implemented(),
    f(SEC, "cipher-suites", SL, "", "Comma-separated list of supported TLS cipher suites (empty will be auto-populated by Go).").implemented(),
    f(SEC, "cors", S, "*", "Comma-separated whitelist of origins for CORS (empty or * means allow all)."),
    f(SEC, "host-whitelist", S, "*", "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all)."),
    f(SEC, "tls-min-version", S, "TLS1.2", "Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3.").implemented(),
    f(SEC, "tls-max-version", S, "", "Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty defers to Go).").implemented(),
    f(SEC, "experimental-peer-skip-client-san-verification", B, "false", "Skip verification of SAN field in client certificate for peer connections."),
    f(SEC, "peer-skip-client-san-verification", B, "false", "Skip verification of SAN field in client certificate for peer connections (3.6 name)."),

    f(AUTH, "auth-token", S, "simple", "Specify a v3 authentication token type and its options ('simple' or 'jwt').").implemented(),
    f(AUTH, "bcrypt-cost", U, "10", "Specify the cost / strength of the bcrypt algorithm for hashing auth passwords (4 to 31).").implemented(),
    f(AUTH, "auth-token-ttl", U, "300", "Time (in seconds) of the auth-token-ttl.").implemented(),

    f(MON, "enable-pprof", B, "false", "Enable runtime profiling data via HTTP server at client URL + /debug/pprof/."),
    f(MON, "metrics", S, "basic", "Set level of detail for exported metrics, specify 'extensive' to include histogram metrics."),
    f(MON, "listen-metrics-urls", URLS, "", "List of URLs to listen on for the metrics and health endpoints.").implemented(),

    f(LOG, "logger", S, "zap", "Currently only supports 'zap' for structured logging.").implemented(),
    f(LOG, "log-outputs", SL, "default", "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.").implemented(),
    f(LOG, "log-level", S, "info", "Configures log level. Only supports debug, info, warn, error, panic, or fatal.").implemented(),
    f(LOG, "log-format", S, "json", "Configures log format. Only supports json, console.").implemented(),
    f(LOG, "enable-log-rotation", B, "false", "Enable log rotation of a single log-outputs file target."),
    f(LOG, "log-rotation-config-json", S, "{\"maxsize\": 100, \"maxage\": 0, \"maxbackups\": 0, \"localtime\": false, \"compress\": false}", "Configures log rotation if enabled with a JSON logger config."),
    f(LOG, "disable-log-sampling", B, "false", "Disable log sampling."),

    f(TRC, "experimental-enable-distributed-tracing", B, "false", "Enable distributed tracing using OpenTelemetry Tracing."),
    f(TRC, "experimental-distributed-tracing-address", S, "localhost:4317", "Address for distributed tracing used for OpenTelemetry Tracing."),
    f(TRC, "experimental-distributed-tracing-service-name", S, "etcd", "Service name for distributed tracing."),
    f(TRC, "experimental-distributed-tracing-instance-id", S, "", "Service instance ID for distributed tracing; must be unique per etcd instance."),
    f(TRC, "experimental-distributed-tracing-sampling-rate", I, "0", "Number of samples to collect per million spans for OpenTelemetry Tracing."),
    f(TRC, "enable-distributed-tracing", B, "false", "Enable distributed tracing using OpenTelemetry Tracing (3.6 name)."),
    f(TRC, "distributed-tracing-address", S, "localhost:4317", "Address for distributed tracing (3.6 name)."),
    f(TRC, "distributed-tracing-service-name", S, "etcd", "Service name for distributed tracing (3.6 name)."),
    f(TRC, "distributed-tracing-instance-id", S, "", "Service instance ID for distributed tracing (3.6 name)."),
    f(TRC, "distributed-tracing-sampling-rate", I, "0", "Samples per million spans for distributed tracing (3.6 name)."),

    f(EXP, "enable-grpc-gateway", B, "true", "Enable GRPC gateway."),
    f(EXP, "experimental-initial-corrupt-check", B, "false", "Enable to check data corruption before serving any client/peer traffic."),
    f(EXP, "experimental-corrupt-check-time", D, "0s", "Duration of time between cluster corruption check passes."),
    f(EXP, "corrupt-check-time", D, "0s", "Duration of time between cluster corruption check passes (3.6 name)."),
    f(EXP, "experimental-compact-hash-check-enabled", B, "false", "Enable leader to periodically check followers compaction hashes."),
    f(EXP, "experimental-compact-hash-check-time", D, "1m", "Duration of time between leader checks followers compaction hashes."),
    f(EXP, "compact-hash-check-time", D, "1m", "Duration of time between leader checks followers compaction hashes (3.6 name)."),
    f(EXP, "experimental-enable-lease-checkpoint", B, "false", "Enable leader to send regular checkpoints to other members to prevent reset of remaining TTL on leader change.").implemented(),
    f(EXP, "experimental-enable-lease-checkpoint-persist", B, "false", "Enable persisting remainingTTL to prevent indefinite auto-renewal of long lived leases.").implemented(),
    f(EXP, "experimental-compaction-batch-limit", I, "1000", "Sets the maximum revisions deleted in each compaction batch."),
    f(EXP, "compaction-batch-limit", I, "1000", "Sets the maximum revisions deleted in each compaction batch (3.6 name)."),
    f(EXP, "experimental-compaction-sleep-interval", D, "10ms", "Sets the sleep interval between each compaction batch."),
    f(EXP, "compaction-sleep-interval", D, "10ms", "Sets the sleep interval between each compaction batch (3.6 name)."),
    f(EXP, "experimental-watch-progress-notify-interval", D, "10m", "Duration of periodic watch progress notifications.").implemented(),
    f(EXP, "watch-progress-notify-interval", D, "10m", "Duration of periodic watch progress notifications (3.6 name).").implemented(),
    f(EXP, "experimental-downgrade-check-time", D, "5s", "Duration of time between two downgrade status checks."),
    f(EXP, "downgrade-check-time", D, "5s", "Duration of time between two downgrade status checks (3.6 name)."),
    f(EXP, "experimental-warning-apply-duration", D, "100ms", "Time duration after which a warning is generated if request takes more time."),
    f(EXP, "warning-apply-duration", D, "100ms", "Time duration after which a warning is generated if request takes more time (3.6 name)."),
    f(EXP, "experimental-warning-unary-request-duration", D, "0s", "Time duration after which a warning is generated if a unary request takes more time (0 = 300ms)."),
    f(EXP, "warning-unary-request-duration", D, "300ms", "Time duration after which a warning is generated if a unary request takes more time."),
    f(EXP, "experimental-memory-mlock", B, "false", "Enable to enforce etcd pages (in particular bbolt) to stay in RAM."),
    f(EXP, "memory-mlock", B, "false", "Enable to enforce etcd pages (in particular bbolt) to stay in RAM (3.6 name)."),
    f(EXP, "experimental-txn-mode-write-with-shared-buffer", B, "true", "Enable the write transaction to use a shared buffer in its readonly check operations."),
    f(EXP, "experimental-stop-grpc-service-on-defrag", B, "false", "Enable etcd gRPC service to stop serving client requests on defragmentation."),
    f(EXP, "experimental-bootstrap-defrag-threshold-megabytes", U, "0", "Defrag during bootstrap if it frees at least this many megabytes (0 = off)."),
    f(EXP, "bootstrap-defrag-threshold-megabytes", U, "0", "Defrag during bootstrap if it frees at least this many megabytes (3.6 name)."),
    f(EXP, "experimental-max-learners", I, "1", "Sets the maximum number of learners that can be available in the cluster membership."),
    f(EXP, "max-learners", I, "1", "Sets the maximum number of learners in the cluster membership (3.6 name)."),
    f(EXP, "experimental-snapshot-catchup-entries", U, "5000", "Number of entries for a slow follower to catch up after compacting the raft storage entries."),
    f(EXP, "snapshot-catchup-entries", U, "5000", "Number of entries for a slow follower to catch up (3.6 name)."),
    f(EXP, "feature-gates", FG, "", "Server feature gates, e.g. 'InitialCorruptCheck=true,CompactHashCheck=false' (3.6)."),

    f(Section::Unsafe, "force-new-cluster", B, "false", "Force to create a new one-member cluster."),
    f(Section::Unsafe, "unsafe-no-fsync", B, "false", "Disables fsync, unsafe, will cause data loss."),

    f(Section::Mainstay, "emulated-etcd-version", S, "3.5.21", "The etcd release Mainstay reports (Status, /version, etcd_server_version); kube-apiserver needs at least 3.5.13.").implemented(),
    f(Section::Mainstay, "lease-checkpoint-interval", D, "5m0s", "Time between checkpoints of a lease's remaining TTL while lease checkpointing is enabled (etcd's embed LeaseCheckpointInterval).").implemented(),

    f(OTH, "config-file", S, "", "Path to the server configuration file; other flags and environment variables are then ignored."),
    f(OTH, "version", B, "false", "Print the version and exit."),

    f(HID, "cluster-active-size", IGN, "", ""),
    f(HID, "cluster-remove-delay", IGN, "", ""),
    f(HID, "cluster-sync-interval", IGN, "", ""),
    f(HID, "config", IGN, "", ""),
    f(HID, "force", IGN, "", ""),
    f(HID, "max-result-buffer", IGN, "", ""),
    f(HID, "max-retry-attempts", IGN, "", ""),
    f(HID, "peer-heartbeat-interval", IGN, "", ""),
    f(HID, "peer-election-timeout", IGN, "", ""),
    f(HID, "retry-interval", IGN, "", ""),
    f(HID, "snapshot", IGN, "", ""),
    f(HID, "v", IGN, "", ""),
    f(HID, "vv", IGN, "", ""),
];

/// etcd 3.6 server feature gates and their defaults (`server/features/etcd_features.go`).
pub const FEATURE_GATES: &[(&str, bool)] = &[
    ("StopGRPCServiceOnDefrag", false),
    ("InitialCorruptCheck", false),
    ("CompactHashCheck", false),
    ("TxnModeWriteWithSharedBuffer", true),
    ("LeaseCheckpoint", false),
    ("LeaseCheckpointPersist", false),
    ("SetMemberLocalAddr", false),
];

/// The boolean `--experimental-*` flags that etcd 3.6 maps onto a feature gate
/// (`features.ExperimentalFlagToFeatureMap`).
#[rustfmt::skip]
pub const EXPERIMENTAL_FLAG_GATES: &[(&str, &str)] = &[
    ("experimental-stop-grpc-service-on-defrag", "StopGRPCServiceOnDefrag"),
    ("experimental-initial-corrupt-check", "InitialCorruptCheck"),
    ("experimental-compact-hash-check-enabled", "CompactHashCheck"),
    ("experimental-txn-mode-write-with-shared-buffer", "TxnModeWriteWithSharedBuffer"),
    ("experimental-enable-lease-checkpoint", "LeaseCheckpoint"),
    ("experimental-enable-lease-checkpoint-persist", "LeaseCheckpointPersist"),
];

/// Non-boolean `--experimental-*` flags and their etcd 3.6 replacements
/// (`embed.experimentalFlagMigrationMap`); setting both is an error in 3.6.
#[rustfmt::skip]
pub const EXPERIMENTAL_FLAG_RENAMES: &[(&str, &str)] = &[
    ("experimental-compact-hash-check-time", "compact-hash-check-time"),
    ("experimental-corrupt-check-time", "corrupt-check-time"),
    ("experimental-compaction-batch-limit", "compaction-batch-limit"),
    ("experimental-watch-progress-notify-interval", "watch-progress-notify-interval"),
    ("experimental-warning-apply-duration", "warning-apply-duration"),
    ("experimental-bootstrap-defrag-threshold-megabytes", "bootstrap-defrag-threshold-megabytes"),
    ("experimental-memory-mlock", "memory-mlock"),
    ("experimental-snapshot-catchup-entries", "snapshot-catchup-entries"),
    ("experimental-compaction-sleep-interval", "compaction-sleep-interval"),
    ("experimental-downgrade-check-time", "downgrade-check-time"),
    ("experimental-peer-skip-client-san-verification", "peer-skip-client-san-verification"),
    ("experimental-enable-distributed-tracing", "enable-distributed-tracing"),
    ("experimental-distributed-tracing-address", "distributed-tracing-address"),
    ("experimental-distributed-tracing-service-name", "distributed-tracing-service-name"),
    ("experimental-distributed-tracing-instance-id", "distributed-tracing-instance-id"),
    ("experimental-distributed-tracing-sampling-rate", "distributed-tracing-sampling-rate"),
    ("experimental-max-learners", "max-learners"),
];

/// A parsed flag value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagValue {
    /// [`FlagKind::Bool`].
    Bool(bool),
    /// [`FlagKind::String`].
    Str(String),
    /// [`FlagKind::Int`].
    Int(i64),
    /// [`FlagKind::Uint`] and [`FlagKind::Uint32`].
    Uint(u64),
    /// [`FlagKind::Duration`].
    Duration(Duration),
    /// [`FlagKind::UrlList`], sorted and de-duplicated.
    Urls(Vec<Url>),
    /// [`FlagKind::StringList`].
    Strings(Vec<String>),
    /// [`FlagKind::FeatureGates`], in the order given.
    FeatureGates(Vec<(String, bool)>),
    /// [`FlagKind::Ignored`].
    Ignored,
}

/// Parses `raw` as a value of `spec`'s kind, as Go's `flag.Value.Set` would.
///
/// # Errors
/// Returns the text Go's flag package puts after the colon in
/// `invalid value "<raw>" for flag -<name>: <text>`, e.g. `parse error`.
pub fn parse_value(spec: &FlagSpec, raw: &str) -> Result<FlagValue, String> {
    Ok(match spec.kind {
        FlagKind::Bool => FlagValue::Bool(parse_go_bool(raw).ok_or("parse error")?),
        FlagKind::String => {
            if !spec.choices.is_empty() && !spec.choices.contains(&raw) {
                return Err("invalid value".to_owned());
            }
            FlagValue::Str(raw.to_owned())
        }
        FlagKind::Int => FlagValue::Int(parse_go_int(raw)?),
        FlagKind::Uint => FlagValue::Uint(parse_go_uint(raw)?),
        FlagKind::Uint32 => {
            let v = parse_go_uint(raw)?;
            if v > u64::from(u32::MAX) {
                return Err("value out of range".to_owned());
            }
            FlagValue::Uint(v)
        }
        FlagKind::Duration => FlagValue::Duration(parse_go_duration(raw).map_err(|_| "parse error")?),
        // etcd's UniqueURLs treats "" as an allowed exception that keeps the current value.
        FlagKind::UrlList if raw.is_empty() => FlagValue::Urls(parse_url_list(spec.default)?),
        FlagKind::UrlList => FlagValue::Urls(parse_url_list(raw)?),
        FlagKind::StringList => FlagValue::Strings(split_list(raw)),
        FlagKind::FeatureGates => FlagValue::FeatureGates(parse_feature_gates(raw)?),
        FlagKind::Ignored => FlagValue::Ignored,
    })
}

/// The value a flag has when nobody sets it.
pub fn default_value(spec: &FlagSpec) -> FlagValue {
    // Every default in the table is valid for its kind; the unit test
    // `every_table_default_parses` pins that, so the fallback is never taken.
    parse_value(spec, spec.default).unwrap_or(FlagValue::Ignored)
}

/// What etcd prints to stderr as its usage line (`etcdmain/help.go: usageline`), without the
/// `gateway` and `grpc-proxy` sub-commands, which Mainstay does not have.
pub const USAGE: &str = "Usage:

  etcd [flags]
    Start an etcd server.

  etcd --version
    Show the version of etcd.

  etcd -h | --help
    Show the help information about etcd.

  etcd --config-file
    Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.
";

/// The flag list etcd prints to stdout for `--help` (`help.go: flagsline`), generated from
/// [`FLAGS`] in the same `  --name 'default'\n    help` layout.
pub fn help_text() -> String {
    let mut out = String::new();
    let mut section = None;
    for spec in FLAGS.iter().filter(|f| f.section != Section::Hidden) {
        if section != Some(spec.section) {
            section = Some(spec.section);
            out.push_str(match spec.section {
                Section::Member => "\nMember:\n",
                Section::Clustering => "\nClustering:\n",
                Section::Proxy => "\nv2 Proxy (etcd 3.5 only; accepted, not run):\n",
                Section::Security => "\nSecurity:\n",
                Section::Auth => "\nAuth:\n",
                Section::Monitoring => "\nProfiling and Monitoring:\n",
                Section::Logging => "\nLogging:\n",
                Section::Tracing => "\nDistributed tracing:\n",
                Section::Experimental => "\nExperimental features and their 3.6 names:\n",
                Section::Unsafe => "\nUnsafe feature:\n",
                Section::Mainstay => "\nMainstay settings (not etcd flags):\n",
                Section::Other | Section::Hidden => "\nOther:\n",
            });
        }
        out.push_str(&format!(
            "  --{} '{}'\n    {}\n",
            spec.name, spec.default, spec.help
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> &'static FlagSpec {
        lookup(name).unwrap()
    }

    #[test]
    fn every_table_default_parses() {
        for s in FLAGS {
            assert!(
                parse_value(s, s.default).is_ok(),
                "default of {} does not parse",
                s.name
            );
        }
    }

    #[test]
    fn flag_names_are_unique() {
        for (i, a) in FLAGS.iter().enumerate() {
            assert!(
                FLAGS[i + 1..].iter().all(|b| b.name != a.name),
                "{} listed twice",
                a.name
            );
        }
    }

    #[test]
    fn only_the_listed_flags_are_implemented() {
        let mut implemented: Vec<_> = FLAGS.iter().filter(|f| f.implemented).map(|f| f.name).collect();
        implemented.sort_unstable();
        let want = [
            "advertise-client-urls",
            "auth-token",
            "auth-token-ttl",
            "auto-tls",
            "bcrypt-cost",
            "cert-file",
            "cipher-suites",
            "client-cert-allowed-hostname",
            "client-cert-auth",
            "client-crl-file",
            "data-dir",
            "election-timeout",
            "emulated-etcd-version",
            "experimental-enable-lease-checkpoint",
            "experimental-enable-lease-checkpoint-persist",
            "experimental-watch-progress-notify-interval",
            "heartbeat-interval",
            "initial-advertise-peer-urls",
            "initial-cluster",
            "initial-cluster-state",
            "initial-cluster-token",
            "key-file",
            "lease-checkpoint-interval",
            "listen-client-http-urls",
            "listen-client-urls",
            "listen-metrics-urls",
            "listen-peer-urls",
            "log-format",
            "log-level",
            "log-outputs",
            "logger",
            "max-concurrent-streams",
            "max-request-bytes",
            "max-txn-ops",
            "name",
            "peer-auto-tls",
            "peer-cert-allowed-hostname",
            "peer-cert-file",
            "peer-client-cert-auth",
            "peer-crl-file",
            "peer-key-file",
            "peer-trusted-ca-file",
            "quota-backend-bytes",
            "self-signed-cert-validity",
            "snapshot-count",
            "tls-max-version",
            "tls-min-version",
            "trusted-ca-file",
            "watch-progress-notify-interval",
        ];
        assert_eq!(implemented, want);
    }

    #[test]
    fn env_name_upper_cases_and_replaces_dashes() {
        assert_eq!(env_name("initial-cluster-state"), "ETCD_INITIAL_CLUSTER_STATE");
        assert_eq!(spec("data-dir").env_name(), "ETCD_DATA_DIR");
    }

    #[test]
    fn uint32_flags_reject_values_above_u32_max() {
        assert_eq!(
            parse_value(spec("max-concurrent-streams"), "4294967296"),
            Err("value out of range".to_owned())
        );
        assert_eq!(
            parse_value(spec("max-concurrent-streams"), "4294967295"),
            Ok(FlagValue::Uint(4_294_967_295))
        );
    }

    #[test]
    fn choices_reject_other_values() {
        assert_eq!(
            parse_value(spec("initial-cluster-state"), "bogus"),
            Err("invalid value".to_owned())
        );
        assert_eq!(
            parse_value(spec("initial-cluster-state"), "existing"),
            Ok(FlagValue::Str("existing".to_owned()))
        );
    }

    #[test]
    fn help_lists_every_visible_flag_in_etcd_layout() {
        let help = help_text();
        assert!(help.contains("  --name 'default'\n    Human-readable name for this member.\n"));
        assert!(help.contains("--watch-progress-notify-interval '10m'"));
        assert!(!help.contains("--vv"));
    }
}
