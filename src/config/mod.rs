//! Server configuration: etcd's command line, `ETCD_*` environment and YAML config file, turned
//! into one validated [`Config`].
//!
//! [`parse`] reproduces etcd's `etcdmain` start-up sequence (`server/etcdmain/config.go`):
//!
//! 1. Parse the command line with Go `flag` semantics. An unknown flag or a bad value prints the
//!    error and the usage to stderr and exits 2; `-h`/`--help` prints the flag list and exits 0.
//! 2. Any argument left over is an error: `'<arg>' is not a valid flag` (exit 1).
//! 3. `--version` prints [`VERSION_TEXT`] and exits 0.
//! 4. With `--config-file` (or `ETCD_CONFIG_FILE`) the YAML file is the only source: other flags
//!    and the environment are ignored.
//! 5. Otherwise each flag not on the command line is taken from `ETCD_<NAME>`. A flag given both
//!    ways is fatal; unknown `ETCD_*` variables only warn.
//! 6. Derived defaults (`<name>.etcd`, `<name>=<peer urls>`) are filled in and the whole is
//!    validated with etcd's rules and error texts (`embed.Config.Validate`); failures exit 1.
//!
//! Why a hand-written parser rather than clap: Go's `flag` rules cannot be expressed in clap.
//! Long names take a single dash (`-name`), which clap always reads as a cluster of short flags;
//! whether `--flag next` consumes `next` depends on the flag's kind (never for booleans), so a
//! pre-pass to normalise dashes would already be the whole tokenizer; parsing stops at the
//! first positional argument; a repeated flag silently overrides; and the messages and exit
//! codes (`flag provided but not defined: -x`, exit 2) are part of what scripts and kubelet logs
//! see. The environment must also come from an injected lookup (clap's `env` reads the process
//! environment, which tests cannot set safely in edition 2024) and needs etcd's flag-and-env
//! conflict rule. The tokenizer below is Go's `FlagSet.parseOne`, step by step; the flag table
//! in `flags.rs` plays the role the `Arg` list would.

pub mod duration;
mod file;
pub mod flags;
pub mod limits;
mod resolve;
pub mod value;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

pub use flags::{FlagKind, FlagSpec, FlagValue};

use duration::go_quote;

/// What `--version` prints (etcd's four lines). Mainstay reports the etcd release whose
/// behaviour it follows, and names itself and its own version on the `Git SHA` line.
#[cfg(target_arch = "aarch64")]
pub const VERSION_TEXT: &str = concat!(
    "etcd Version: 3.5.21\nGit SHA: mainstay ",
    env!("CARGO_PKG_VERSION"),
    "\nGo Version: mainstay-rust\nGo OS/Arch: linux/arm64\n"
);
/// What `--version` prints (etcd's four lines). Mainstay reports the etcd release whose
/// behaviour it follows, and names itself and its own version on the `Git SHA` line.
#[cfg(not(target_arch = "aarch64"))]
pub const VERSION_TEXT: &str = concat!(
    "etcd Version: 3.5.21\nGit SHA: mainstay ",
    env!("CARGO_PKG_VERSION"),
    "\nGo Version: mainstay-rust\nGo OS/Arch: linux/amd64\n"
);

/// `--initial-cluster-state`: whether this member bootstraps a new cluster or joins one.
/// Ignored by etcd once the data directory holds a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterState {
    /// `new` (the default): bootstrap with every member of `--initial-cluster`.
    #[default]
    New,
    /// `existing`: join a running cluster (kubeadm `join --control-plane`).
    Existing,
}

/// TLS files and checks for one listener side (clients or peers), from the `--cert-file`
/// family or the `--peer-*` family. Paths are as given; nothing is read here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Server certificate (`--cert-file` / `--peer-cert-file`).
    pub cert_file: Option<PathBuf>,
    /// Server key (`--key-file` / `--peer-key-file`).
    pub key_file: Option<PathBuf>,
    /// Certificate used when acting as a client (`--client-cert-file` / `--peer-client-cert-file`).
    pub client_cert_file: Option<PathBuf>,
    /// Key used when acting as a client (`--client-key-file` / `--peer-client-key-file`).
    pub client_key_file: Option<PathBuf>,
    /// CA bundle for verifying the other side (`--trusted-ca-file` / `--peer-trusted-ca-file`).
    pub trusted_ca_file: Option<PathBuf>,
    /// Require and verify client certificates (`--client-cert-auth` / `--peer-client-cert-auth`).
    pub client_cert_auth: bool,
    /// Generate self-signed certificates (`--auto-tls` / `--peer-auto-tls`).
    pub auto_tls: bool,
    /// Certificate revocation list (`--client-crl-file` / `--peer-crl-file`).
    pub crl_file: Option<PathBuf>,
    /// Allowed SAN host names of client certificates (`--client-cert-allowed-hostname` /
    /// `--peer-cert-allowed-hostname`).
    pub allowed_hostnames: Vec<String>,
    /// Allowed common names of peer certificates (`--peer-cert-allowed-cn`; empty for clients).
    pub allowed_cns: Vec<String>,
    /// Skip the SAN check of peer client certificates (`--peer-skip-client-san-verification`
    /// or its `--experimental-` spelling; always false for clients).
    pub skip_client_san_verification: bool,
}

impl TlsConfig {
    /// Whether a certificate/key pair or auto TLS is configured, i.e. the listener serves TLS.
    pub fn enabled(&self) -> bool {
        self.auto_tls || (self.cert_file.is_some() && self.key_file.is_some())
    }
}

/// TLS settings shared by client and peer listeners (`--tls-min-version`,
/// `--tls-max-version`, `--cipher-suites`, `--self-signed-cert-validity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `TLS1.2` (default) or `TLS1.3`.
    pub min_version: String,
    /// `TLS1.2`, `TLS1.3`, or empty for the highest supported (TLS 1.3).
    pub max_version: String,
    /// Go cipher-suite names restricting TLS 1.2; empty = the defaults.
    pub cipher_suites: Vec<String>,
    /// Validity of auto-TLS certificates, in years (default 1).
    pub self_signed_cert_validity_years: u64,
}

/// Where a flag's effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueSource {
    /// Not set anywhere: the table default.
    Default,
    /// The command line.
    CommandLine,
    /// An `ETCD_*` environment variable.
    Environment,
    /// The `--config-file` YAML file.
    ConfigFile,
}

/// The validated server configuration. Field defaults are etcd 3.5's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `--name`, default `default`. Also this member's key in `initial_cluster`.
    pub name: String,
    /// `--data-dir`, default `<name>.etcd` (relative to the working directory).
    pub data_dir: PathBuf,
    /// `--wal-dir`; `None` means `<data-dir>/member/wal`.
    pub wal_dir: Option<PathBuf>,
    /// `--listen-client-urls`, default `http://localhost:2379`; sorted, without duplicates.
    pub listen_client_urls: Vec<Url>,
    /// `--listen-client-http-urls` (HTTP-only listeners), default empty.
    pub listen_client_http_urls: Vec<Url>,
    /// `--advertise-client-urls`, default `http://localhost:2379`; sorted, without duplicates.
    pub advertise_client_urls: Vec<Url>,
    /// `--listen-peer-urls`, default `http://localhost:2380`.
    pub listen_peer_urls: Vec<Url>,
    /// `--initial-advertise-peer-urls`, default `http://localhost:2380`.
    pub initial_advertise_peer_urls: Vec<Url>,
    /// `--initial-cluster` as (member name, peer URL) pairs in the given order; a name repeats
    /// for a member with several peer URLs. Default: `<name>=<each initial-advertise-peer-url>`,
    /// i.e. `default=http://localhost:2380`; empty when a discovery flag replaces it.
    pub initial_cluster: Vec<(String, Url)>,
    /// `--initial-cluster-token`, default `etcd-cluster`; mixed into member and cluster IDs.
    pub initial_cluster_token: String,
    /// `--initial-cluster-state`, default [`ClusterState::New`].
    pub initial_cluster_state: ClusterState,
    /// `--listen-metrics-urls` (plain `/metrics` and health endpoints), default empty.
    pub listen_metrics_urls: Vec<Url>,
    /// `--max-request-bytes`, in bytes; default [`limits::REQUEST_BYTES_MAX_DEFAULT`].
    pub max_request_bytes: u64,
    /// `--max-concurrent-streams`: HTTP/2 streams per client connection (etcd default
    /// `math.MaxUint32`); also bounds the JSON gateway's concurrent calls, as etcd's gateway
    /// shares one gRPC connection.
    pub max_concurrent_streams: u32,
    /// `--max-txn-ops`; default [`limits::TXN_OPS_MAX_DEFAULT`].
    pub max_txn_ops: usize,
    /// `--heartbeat-interval` (given in milliseconds); default 100 ms.
    pub heartbeat_interval: Duration,
    /// `--election-timeout` (given in milliseconds); default 1000 ms. At least 5 heartbeats
    /// and at most 50 s.
    pub election_timeout: Duration,
    /// `--snapshot-count`, applied entries between snapshots; default 100,000.
    pub snapshot_count: u64,
    /// `--quota-backend-bytes`, in bytes. 0 on the command line means the 2 GiB default
    /// ([`limits::QUOTA_BACKEND_BYTES_DEFAULT`]); a negative value disables the quota, as in
    /// etcd, and is stored as `u64::MAX`.
    pub quota_backend_bytes: u64,
    /// `--watch-progress-notify-interval` or `--experimental-watch-progress-notify-interval`
    /// (the experimental spelling wins when set, as in etcd 3.6); default 10 minutes.
    pub watch_progress_notify_interval: Duration,
    /// `--logger`, `--log-level` (lower-cased: debug, info, warn, error, dpanic, panic or
    /// fatal), `--log-outputs` and `--log-format`.
    pub logging: crate::logging::LogSettings,
    /// `--enable-grpc-gateway` (the `/v3/*` JSON gateway), default true.
    pub enable_grpc_gateway: bool,
    /// `--auth-token` as given (`simple`, or `jwt,pub-key=…,priv-key=…,sign-method=…`).
    pub auth_token: String,
    /// `--bcrypt-cost`, default [`limits::BCRYPT_COST_DEFAULT`]; checked at start-up.
    pub bcrypt_cost: u64,
    /// `--auth-token-ttl` (given in seconds), default [`limits::AUTH_TOKEN_TTL_DEFAULT`].
    pub auth_token_ttl: Duration,
    /// Client-facing TLS (`--cert-file`, `--key-file`, `--trusted-ca-file`, ...).
    pub client_tls: TlsConfig,
    /// Peer TLS (`--peer-cert-file`, `--peer-key-file`, ...).
    pub peer_tls: TlsConfig,
    /// TLS versions, cipher suites and auto-TLS validity for both sides.
    pub tls: TlsOptions,
    /// Effective server feature gates: etcd 3.6's gates with their defaults, then the
    /// boolean `--experimental-*` flags that map onto gates, then `--feature-gates`.
    pub feature_gates: BTreeMap<String, bool>,
    /// How often the leader checkpoints each long-lived lease's remaining TTL: `Some` when the
    /// `LeaseCheckpoint` gate (`--experimental-enable-lease-checkpoint`) is on, from
    /// `--lease-checkpoint-interval` (default 5 minutes, etcd's `defaultLeaseCheckpointInterval`).
    /// Checkpointed remaining TTLs are always persisted (etcd 3.6 behaviour, so
    /// `LeaseCheckpointPersist` is implied) and honoured after a restart or leader change.
    pub lease_checkpoint_interval: Option<Duration>,
    /// `--emulated-etcd-version` (Mainstay): the etcd release reported to clients; default
    /// [`crate::version::DEFAULT_ETCD_VERSION`].
    pub emulated_etcd_version: crate::version::Version,
    /// Names of flags the user set (command line, env or config file) that Mainstay accepts
    /// but does not act on yet, in table order; the server logs "flag ... is not yet
    /// effective" for each. Only flags set to a value different from their default appear.
    pub not_yet_effective: Vec<String>,
    /// Warnings etcd would log while parsing: unknown `ETCD_*` variables, ignored legacy
    /// flags, dropped duplicate URLs, unknown config-file keys, an oversized quota.
    pub warnings: Vec<String>,
    /// Every flag's effective value, by name, for flags without a typed field above.
    pub values: BTreeMap<&'static str, FlagValue>,
    /// Where each flag's value came from; flags absent here have their default.
    pub sources: BTreeMap<&'static str, ValueSource>,
}

impl Config {
    /// The effective value of flag `name` (its default when unset), or `None` for an unknown
    /// name.
    pub fn value(&self, name: &str) -> Option<&FlagValue> {
        self.values.get(name)
    }

    /// Whether the user set flag `name`, by any means (etcd's `FlagsExplicitlySet`).
    pub fn is_set(&self, name: &str) -> bool {
        self.sources.contains_key(name)
    }

    /// Where flag `name`'s value came from ([`ValueSource::Default`] when unset).
    pub fn source(&self, name: &str) -> ValueSource {
        self.sources.get(name).copied().unwrap_or(ValueSource::Default)
    }

    /// The peer URLs `initial_cluster` lists for this member.
    pub fn own_initial_peer_urls(&self) -> Vec<&Url> {
        self.initial_cluster
            .iter()
            .filter(|(n, _)| *n == self.name)
            .map(|(_, u)| u)
            .collect()
    }

    /// The checks etcd runs only when bootstrapping a member without data
    /// (`config.ServerConfig.VerifyBootstrap`): this member is in `--initial-cluster`, its
    /// URLs there are exactly `--initial-advertise-peer-urls`, and no URL is listed twice.
    /// URLs are compared as text; etcd also accepts two spellings that resolve to the same
    /// address.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with etcd's message.
    pub fn verify_bootstrap(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let own: Vec<String> = self.own_initial_peer_urls().into_iter().map(go_url).collect();
        if own.is_empty() {
            let name = go_quote(&self.name);
            return invalid(format!(
                "couldn't find local name {name} in the initial cluster configuration"
            ));
        }
        let mut advertised: Vec<String> = self.initial_advertise_peer_urls.iter().map(go_url).collect();
        advertised.sort();
        let named = |urls: &[&String]| {
            urls.iter()
                .map(|u| format!("{}={u}", self.name))
                .collect::<Vec<_>>()
                .join(",")
        };
        let only_in_cluster: Vec<&String> = own.iter().filter(|u| !advertised.contains(u)).collect();
        if !only_in_cluster.is_empty() {
            return invalid(format!(
                "--initial-cluster has {} but missing from --initial-advertise-peer-urls={}",
                named(&only_in_cluster),
                advertised.join(",")
            ));
        }
        let only_advertised: Vec<&String> = advertised.iter().filter(|u| !own.contains(u)).collect();
        if !only_advertised.is_empty() {
            let only: Vec<&str> = only_advertised.iter().map(|u| u.as_str()).collect();
            return invalid(format!(
                "--initial-advertise-peer-urls has {} but missing from --initial-cluster={}",
                only.join(","),
                named(&advertised.iter().collect::<Vec<_>>())
            ));
        }
        let mut all: Vec<&Url> = self.initial_cluster.iter().map(|(_, u)| u).collect();
        all.sort();
        if all.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
            let cluster: Vec<String> = self
                .initial_cluster
                .iter()
                .map(|(n, u)| format!("{n}={}", go_url(u)))
                .collect();
            return invalid(format!("initial cluster {} has duplicate url", cluster.join(",")));
        }
        Ok(())
    }
}

/// A URL as Go prints it: `url` adds a `/` path to http(s) URLs that Go leaves off.
pub fn go_url(u: &Url) -> String {
    let s = u.as_str();
    match s.strip_suffix('/') {
        Some(t) if u.path() == "/" && u.query().is_none() && u.fragment().is_none() => t.to_owned(),
        _ => s.to_owned(),
    }
}

/// The result of [`parse`]: run the server, or exit with the given output.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "built once per process start; boxing buys nothing"
)]
pub enum ParseOutcome {
    /// Start the server with this configuration.
    Run(Config),
    /// Print `stdout` and `stderr` and exit with `code` (0 for `--help`/`--version`, 2 for
    /// Go flag errors, 1 for validation errors), as etcd does.
    Exit {
        /// Process exit code.
        code: i32,
        /// Text for standard output.
        stdout: String,
        /// Text for standard error.
        stderr: String,
    },
}

/// Why the configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Rejected by the Go flag parser (unknown flag, bad value, missing argument): etcd prints
    /// the message and its usage and exits 2.
    #[error("{0}")]
    Usage(String),
    /// Rejected after parsing: etcd logs "failed to verify flags" with this message, exits 1.
    #[error("{0}")]
    Invalid(String),
    /// A fatal start-up error (a flag set both on the command line and in the environment):
    /// etcd logs it at fatal level and exits 1.
    #[error("{0}")]
    Fatal(String),
}

impl ConfigError {
    fn into_outcome(self) -> ParseOutcome {
        let (code, stderr) = match self {
            ConfigError::Usage(msg) => (2, format!("{msg}\n{}\n", flags::USAGE)),
            ConfigError::Invalid(msg) => (1, format!("failed to verify flags: {msg}\n")),
            ConfigError::Fatal(msg) => (1, format!("{msg}\n")),
        };
        ParseOutcome::Exit {
            code,
            stdout: String::new(),
            stderr,
        }
    }
}

/// Parses etcd's command line, environment and config file into a [`Config`].
///
/// `args` excludes argv\[0\]. `env` looks up an environment variable. Unknown `ETCD_*`
/// variables cannot be listed through a lookup, so they are not warned about here; use
/// [`parse_with_env_vars`] for that.
pub fn parse(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> ParseOutcome {
    run(args, env, None)
}

/// Like [`parse`], with the whole environment as (name, value) pairs, which also allows
/// etcd's "unrecognized environment variable ETCD_X=..." warnings. `main` can call it with
/// `std::env::vars_os()` converted with `to_string_lossy` (`std::env::vars()` panics on a
/// non-UTF-8 variable).
pub fn parse_with_env_vars(args: &[String], vars: &[(String, String)]) -> ParseOutcome {
    let lookup = |key: &str| vars.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    run(args, &lookup, Some(vars))
}

fn run(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    vars: Option<&[(String, String)]>,
) -> ParseOutcome {
    let cli = match parse_command_line(args) {
        Ok(CommandLine::Help) => {
            return ParseOutcome::Exit {
                code: 0,
                stdout: format!("{}\n", flags::help_text()),
                stderr: format!("{}\n", flags::USAGE),
            };
        }
        Ok(CommandLine::Flags(cli)) => cli,
        Err(e) => return e.into_outcome(),
    };
    if let Some(stray) = cli.positional.first() {
        return ConfigError::Invalid(format!("'{stray}' is not a valid flag")).into_outcome();
    }
    if matches!(cli.values.get("version"), Some((_, FlagValue::Bool(true)))) {
        return ParseOutcome::Exit {
            code: 0,
            stdout: VERSION_TEXT.to_owned(),
            stderr: String::new(),
        };
    }
    let config_file = match cli.values.get("config-file") {
        Some((path, _)) if !path.is_empty() => Some(path.clone()),
        _ => env("ETCD_CONFIG_FILE").filter(|p| !p.is_empty()),
    };
    let settings = match config_file {
        Some(path) => resolve::from_file(&path, cli),
        None => resolve::from_command_line_and_env(cli, env, vars),
    };
    match settings.and_then(resolve::build) {
        Ok(config) => ParseOutcome::Run(config),
        Err(e) => e.into_outcome(),
    }
}

/// The command line after Go-style parsing.
enum CommandLine {
    /// `-h`, `-help` or `--help` was reached.
    Help,
    Flags(ParsedFlags),
}

/// Flags from the command line, last occurrence winning, with their raw text.
struct ParsedFlags {
    values: BTreeMap<&'static str, (String, FlagValue)>,
    positional: Vec<String>,
    warnings: Vec<String>,
}

/// Go's `FlagSet.Parse` (`flag.go: parseOne`), with etcd's flag table.
fn parse_command_line(args: &[String]) -> Result<CommandLine, ConfigError> {
    let mut parsed = ParsedFlags {
        values: BTreeMap::new(),
        positional: Vec::new(),
        warnings: Vec::new(),
    };
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        // A non-flag argument (including a lone "-") ends flag parsing; "--" is consumed.
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        if arg == "--" {
            i += 1;
            break;
        }
        let body = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-'))
            .unwrap_or(arg);
        if body.starts_with('-') || body.starts_with('=') {
            return Err(ConfigError::Usage(format!("bad flag syntax: {arg}")));
        }
        i += 1;
        let (name, inline_value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(spec) = flags::lookup(name) else {
            if name == "help" || name == "h" {
                return Ok(CommandLine::Help);
            }
            return Err(ConfigError::Usage(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let raw = if spec.is_bool_like() {
            inline_value.unwrap_or("true").to_owned()
        } else if let Some(v) = inline_value {
            v.to_owned()
        } else if let Some(next) = args.get(i) {
            i += 1;
            next.clone()
        } else {
            return Err(ConfigError::Usage(format!("flag needs an argument: -{name}")));
        };
        let value = flags::parse_value(spec, &raw).map_err(|e| {
            ConfigError::Usage(if spec.kind == FlagKind::Bool {
                format!("invalid boolean value {} for -{name}: {e}", go_quote(&raw))
            } else {
                format!("invalid value {} for flag -{name}: {e}", go_quote(&raw))
            })
        })?;
        if spec.kind == FlagKind::Ignored {
            parsed
                .warnings
                .push(format!("flag \"-{name}\" is no longer supported - ignoring."));
        }
        parsed.values.insert(spec.name, (raw, value));
    }
    parsed.positional = args.get(i..).unwrap_or_default().to_vec();
    Ok(CommandLine::Flags(parsed))
}

#[cfg(test)]
mod tests;
