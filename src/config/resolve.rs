//! Merging the sources of flag values and validating the result (etcd's `configFromCmdLine`,
//! `configFromFile` and `embed.Config.Validate`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use url::{Host, Url};

use super::duration::go_quote;
use super::flags::{self, FLAGS, FlagKind, FlagSpec, FlagValue};
use super::{
    ClusterState, Config, ConfigError, ParsedFlags, TlsConfig, TlsOptions, ValueSource, file, go_url, limits,
    value,
};

/// Flag values the user set, before defaults and validation.
#[derive(Debug, Default)]
pub(super) struct Settings {
    values: BTreeMap<&'static str, FlagValue>,
    /// The text each command-line or environment value was parsed from.
    raw: BTreeMap<&'static str, String>,
    sources: BTreeMap<&'static str, ValueSource>,
    from_file: bool,
    warnings: Vec<String>,
}

impl Settings {
    fn set(&mut self, name: &'static str, raw: String, value: FlagValue, source: ValueSource) {
        self.values.insert(name, value);
        self.raw.insert(name, raw);
        self.sources.insert(name, source);
    }
    fn is_set(&self, name: &str) -> bool {
        self.sources.contains_key(name)
    }
    /// The effective value: the one set, else the table default.
    fn get(&self, name: &str) -> FlagValue {
        match self.values.get(name) {
            Some(v) => v.clone(),
            None => flags::lookup(name).map_or(FlagValue::Ignored, flags::default_value),
        }
    }
    fn bool(&self, name: &str) -> bool {
        matches!(self.get(name), FlagValue::Bool(true))
    }
    fn str(&self, name: &str) -> String {
        match self.get(name) {
            FlagValue::Str(s) => s,
            _ => String::new(),
        }
    }
    fn path(&self, name: &str) -> Option<PathBuf> {
        Some(self.str(name)).filter(|s| !s.is_empty()).map(PathBuf::from)
    }
    fn uint(&self, name: &str) -> u64 {
        match self.get(name) {
            FlagValue::Uint(v) => v,
            _ => 0,
        }
    }
    fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            FlagValue::Int(v) => v,
            _ => 0,
        }
    }
    fn duration(&self, name: &str) -> Duration {
        match self.get(name) {
            FlagValue::Duration(d) => d,
            _ => Duration::ZERO,
        }
    }
    fn urls(&self, name: &str) -> Vec<Url> {
        match self.get(name) {
            FlagValue::Urls(u) => u,
            _ => Vec::new(),
        }
    }
    fn strings(&self, name: &str) -> Vec<String> {
        match self.get(name) {
            FlagValue::Strings(s) => s,
            _ => Vec::new(),
        }
    }
    /// For a flag renamed in etcd 3.6: the name to read, the `experimental-` one when set.
    fn renamed<'a>(&self, old: &'a str, new: &'a str) -> &'a str {
        if self.is_set(old) { old } else { new }
    }
}

/// Settings from the config file; other flags and the environment are ignored (etcd
/// `configFromFile`).
pub(super) fn from_file(path: &str, cli: ParsedFlags) -> Result<Settings, ConfigError> {
    let mut f = file::load(path)?;
    // Warnings the flag parser already gave (ignored legacy flags) still stand.
    f.warnings.splice(0..0, cli.warnings);
    Ok(Settings {
        sources: f.values.keys().map(|k| (*k, ValueSource::ConfigFile)).collect(),
        values: f.values,
        raw: BTreeMap::new(),
        from_file: true,
        warnings: f.warnings,
    })
}

/// Settings from the command line, with `ETCD_*` variables for flags not on it (etcd
/// `pkg/flags.SetFlagsFromEnv`). `vars`, when given, lists the whole environment so unknown
/// `ETCD_*` names can be warned about.
///
/// # Errors
/// [`ConfigError::Fatal`] if a flag is on the command line and its variable is set (even to
/// ""); [`ConfigError::Invalid`] if a variable's value does not parse.
pub(super) fn from_command_line_and_env(
    cli: ParsedFlags,
    env: &dyn Fn(&str) -> Option<String>,
    vars: Option<&[(String, String)]>,
) -> Result<Settings, ConfigError> {
    let mut s = Settings {
        warnings: cli.warnings,
        ..Settings::default()
    };
    for (name, (raw, value)) in cli.values {
        s.set(name, raw, value, ValueSource::CommandLine);
    }
    // etcd unsets ETCD_VERSION with a warning instead of treating it as --version.
    let version_var = env("ETCD_VERSION").filter(|v| !v.is_empty());
    if let Some(v) = &version_var {
        s.warnings.push(format!(
            "cannot set special environment variable ETCD_VERSION={v}"
        ));
    }
    // Go's FlagSet.VisitAll order: by name.
    let mut specs: Vec<&'static FlagSpec> = FLAGS.iter().filter(|f| f.name != "version").collect();
    specs.sort_by_key(|f| f.name);
    for spec in &specs {
        let key = spec.env_name();
        if s.is_set(spec.name) && env(&key).is_some() {
            return Err(ConfigError::Fatal(format!(
                "conflicting environment variable {} is shadowed by corresponding command-line flag \
                 (either unset environment variable or disable flag)",
                go_quote(&key)
            )));
        }
    }
    let mut used = BTreeSet::new();
    let mut env_error = None;
    for spec in specs {
        let key = spec.env_name();
        let Some(raw) = env(&key).filter(|v| !v.is_empty() && !s.is_set(spec.name)) else {
            continue;
        };
        match flags::parse_value(spec, &raw) {
            Ok(value) => {
                if spec.kind == FlagKind::Ignored {
                    s.warnings.push(format!(
                        "flag \"-{}\" is no longer supported - ignoring.",
                        spec.name
                    ));
                }
                s.set(spec.name, raw, value, ValueSource::Environment);
            }
            // etcd keeps going and reports the last failure.
            Err(e) => env_error = Some(format!("invalid value {} for {key}: {e}", go_quote(&raw))),
        }
        used.insert(key);
    }
    for (k, v) in vars.unwrap_or_default() {
        let special = k == "ETCD_VERSION" && version_var.is_some();
        if k.starts_with("ETCD_") && !used.contains(k) && !special {
            s.warnings
                .push(format!("unrecognized environment variable {k}={v}"));
        }
    }
    match env_error {
        Some(e) => Err(ConfigError::Invalid(e)),
        None => Ok(s),
    }
}

/// Validates, then fills in derived defaults.
///
/// # Errors
/// [`ConfigError::Invalid`] with etcd's message for the first rule broken.
pub(super) fn build(mut s: Settings) -> Result<Config, ConfigError> {
    validate(&s)?;
    let feature_gates = resolve_feature_gates(&s)?;
    let name = s.str("name");
    // etcd parses --initial-cluster when the server starts, after Validate.
    let initial_advertise_peer_urls = s.urls("initial-advertise-peer-urls");
    let initial_cluster = if s.is_set("initial-cluster") {
        value::parse_initial_cluster(&s.str("initial-cluster"))
            .map_err(|e| ConfigError::Invalid(format!("error setting up initial cluster: {e}")))?
    } else if discovery_set(&s) {
        Vec::new()
    } else {
        initial_advertise_peer_urls
            .iter()
            .map(|u| (name.clone(), u.clone()))
            .collect()
    };
    let quota_backend_bytes = quota_backend_bytes(&mut s);
    warn_duplicate_urls(&mut s);
    let watch_progress_notify_interval = s.duration(s.renamed(
        "experimental-watch-progress-notify-interval",
        "watch-progress-notify-interval",
    ));
    let values: BTreeMap<&'static str, FlagValue> = FLAGS.iter().map(|f| (f.name, s.get(f.name))).collect();
    let not_yet_effective = FLAGS
        .iter()
        .filter(|f| s.is_set(f.name) && !f.implemented && f.kind != FlagKind::Ignored)
        .filter(|f| !matches!(f.name, "config-file" | "version"))
        .filter(|f| s.get(f.name) != flags::default_value(f))
        .map(|f| f.name.to_owned())
        .collect();
    let data_dir = match s.str("data-dir") {
        d if d.is_empty() => PathBuf::from(format!("{name}.etcd")),
        d => PathBuf::from(d),
    };
    Ok(Config {
        data_dir,
        wal_dir: s.path("wal-dir"),
        listen_client_urls: s.urls("listen-client-urls"),
        listen_client_http_urls: s.urls("listen-client-http-urls"),
        advertise_client_urls: s.urls("advertise-client-urls"),
        listen_peer_urls: s.urls("listen-peer-urls"),
        initial_advertise_peer_urls,
        initial_cluster,
        initial_cluster_token: s.str("initial-cluster-token"),
        initial_cluster_state: match s.str("initial-cluster-state").as_str() {
            "existing" => ClusterState::Existing,
            _ => ClusterState::New,
        },
        listen_metrics_urls: s.urls("listen-metrics-urls"),
        max_request_bytes: s.uint("max-request-bytes"),
        max_concurrent_streams: u32::try_from(s.uint("max-concurrent-streams")).unwrap_or(u32::MAX),
        max_txn_ops: usize::try_from(s.uint("max-txn-ops")).unwrap_or(usize::MAX),
        heartbeat_interval: Duration::from_millis(s.uint("heartbeat-interval")),
        election_timeout: Duration::from_millis(s.uint("election-timeout")),
        snapshot_count: s.uint("snapshot-count"),
        quota_backend_bytes,
        watch_progress_notify_interval,
        logging: crate::logging::LogSettings {
            logger: s.str("logger"),
            // zap reads "" as info.
            level: Some(s.str("log-level").to_ascii_lowercase())
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| "info".to_owned()),
            outputs: s.strings("log-outputs"),
            format: s.str("log-format"),
        },
        enable_grpc_gateway: s.bool("enable-grpc-gateway"),
        auth_token: s.str("auth-token"),
        bcrypt_cost: s.uint("bcrypt-cost"),
        auth_token_ttl: Duration::from_secs(s.uint("auth-token-ttl")),
        client_tls: client_tls(&s),
        peer_tls: peer_tls(&s),
        lease_checkpoint_interval: feature_gates
            .get("LeaseCheckpoint")
            .copied()
            .unwrap_or(false)
            .then(|| s.duration("lease-checkpoint-interval"))
            .filter(|d| !d.is_zero()),
        tls: TlsOptions {
            min_version: s.str("tls-min-version"),
            max_version: s.str("tls-max-version"),
            cipher_suites: s.strings("cipher-suites"),
            self_signed_cert_validity_years: s.uint("self-signed-cert-validity"),
        },
        emulated_etcd_version: crate::version::Version::parse(&s.str("emulated-etcd-version"))
            .map_err(ConfigError::Invalid)?,
        feature_gates,
        not_yet_effective,
        warnings: std::mem::take(&mut s.warnings),
        values,
        sources: std::mem::take(&mut s.sources),
        name,
    })
}

/// `--quota-backend-bytes` in bytes: 0 is the 2 GiB default, negative disables the quota
/// (etcd `storage.NewBackendQuota`), above 8 GiB is allowed with a warning.
fn quota_backend_bytes(s: &mut Settings) -> u64 {
    let quota = s.int("quota-backend-bytes");
    let bytes = match u64::try_from(quota) {
        Ok(0) => limits::QUOTA_BACKEND_BYTES_DEFAULT,
        Ok(q) => q,
        Err(_) => u64::MAX,
    };
    if quota > 0 && bytes > limits::QUOTA_BACKEND_BYTES_SUGGESTED_MAX {
        s.warnings.push(format!(
            "--quota-backend-bytes {quota} exceeds the suggested maximum of 8 GiB"
        ));
    }
    bytes
}

/// etcd drops repeated URLs from a list silently; say so.
fn warn_duplicate_urls(s: &mut Settings) {
    for spec in FLAGS.iter().filter(|f| f.kind == FlagKind::UrlList) {
        let dups = s
            .raw
            .get(spec.name)
            .map(|raw| value::duplicate_urls(raw))
            .unwrap_or_default();
        if !dups.is_empty() {
            s.warnings.push(format!(
                "--{}: duplicate URL {} ignored",
                spec.name,
                dups.join(",")
            ));
        }
    }
}

/// Whether a discovery flag replaces the default `--initial-cluster` (etcdmain clears it).
fn discovery_set(s: &Settings) -> bool {
    ["discovery", "discovery-srv", "discovery-srv-name"]
        .iter()
        .any(|f| !s.str(f).is_empty())
        || !s.strings("discovery-endpoints").is_empty()
}

/// etcd's checks, in `embed.Config.Validate`'s order (plus etcdmain's advertise-URL rule and
/// etcd 3.6's checks on renamed flags).
fn validate(s: &Settings) -> Result<(), ConfigError> {
    check_logging(s)?;
    for name in [
        "listen-peer-urls",
        "listen-client-urls",
        "listen-client-http-urls",
        "listen-metrics-urls",
    ] {
        check_bind_urls(&s.urls(name))?;
    }
    check_bootstrap_flags(s)?;
    check_raft_timing(s)?;
    // etcdmain drops the default advertise URLs when only the listen URLs were given, and
    // Validate then refuses; a config file keeps the default.
    if !s.from_file && s.is_set("listen-client-urls") && !s.is_set("advertise-client-urls") {
        return Err(ConfigError::Invalid(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly".to_owned(),
        ));
    }
    check_compaction(s)?;
    check_tls_versions(s)?;
    check_renamed_flags(s)
}

/// At most one way to find the initial members (`ErrConflictBootstrapFlags`), and v3
/// discovery needs both its endpoints and its token.
fn check_bootstrap_flags(s: &Settings) -> Result<(), ConfigError> {
    let endpoints = !s.strings("discovery-endpoints").is_empty();
    let has_initial_cluster = if s.is_set("initial-cluster") {
        !s.str("initial-cluster").is_empty()
    } else {
        !discovery_set(s)
    };
    let sources = [
        has_initial_cluster,
        !s.str("discovery").is_empty(),
        !s.str("discovery-srv").is_empty(),
        endpoints,
    ];
    if sources.iter().filter(|b| **b).count() > 1 {
        // etcd 3.5's text, or 3.6's once the 3.6-only --discovery-endpoints is involved.
        let choices = if endpoints {
            "\"initial-cluster\", \"discovery\", \"discovery-endpoints\" or \"discovery-srv\""
        } else {
            "\"initial-cluster\", \"discovery\" or \"discovery-srv\""
        };
        return Err(ConfigError::Invalid(format!(
            "multiple discovery or bootstrap flags are set. Choose one of {choices}"
        )));
    }
    if s.str("discovery-token").is_empty() == endpoints {
        return Err(ConfigError::Invalid(
            "both --discovery-token and --discovery-endpoints must be set".to_owned(),
        ));
    }
    Ok(())
}

/// Heartbeat and election timeout, in milliseconds: both positive, election at least five
/// heartbeats and at most 50 s.
fn check_raft_timing(s: &Settings) -> Result<(), ConfigError> {
    let (tick_ms, election_ms) = (s.uint("heartbeat-interval"), s.uint("election-timeout"));
    let msg = if tick_ms == 0 {
        format!("--heartbeat-interval must be >0 (set to {tick_ms}ms)")
    } else if election_ms == 0 {
        format!("--election-timeout must be >0 (set to {election_ms}ms)")
    } else if tick_ms.saturating_mul(limits::ELECTION_TIMEOUT_MIN_HEARTBEATS) > election_ms {
        format!(
            "--election-timeout[{election_ms}ms] should be at least as 5 times as --heartbeat-interval[{tick_ms}ms]"
        )
    } else if election_ms > limits::ELECTION_TIMEOUT_MAX_MS {
        format!(
            "--election-timeout[{election_ms}ms] is too long, and should be set less than {}ms",
            limits::ELECTION_TIMEOUT_MAX_MS
        )
    } else {
        return Ok(());
    };
    Err(ConfigError::Invalid(msg))
}

/// etcd 3.6: an `--experimental-*` flag and its new name may not both be set.
fn check_renamed_flags(s: &Settings) -> Result<(), ConfigError> {
    for (old, new) in flags::EXPERIMENTAL_FLAG_RENAMES {
        if s.is_set(old) && s.is_set(new) {
            return Err(ConfigError::Invalid(format!(
                "cannot set --{old} and --{new} at the same time, please use --{new} only"
            )));
        }
    }
    if s.is_set("experimental-warning-unary-request-duration") && s.is_set("warning-unary-request-duration") {
        return Err(ConfigError::Invalid(
            "both --experimental-warning-unary-request-duration and --warning-unary-request-duration flags are set. \
             Use only --warning-unary-request-duration"
                .to_owned(),
        ));
    }
    if s.duration(s.renamed("experimental-compact-hash-check-time", "compact-hash-check-time"))
        .is_zero()
    {
        return Err(ConfigError::Invalid(
            "--compact-hash-check-time must be >0 (set to 0s)".to_owned(),
        ));
    }
    Ok(())
}

/// `embed.Config.setupLogging`: the logger, level and outputs.
fn check_logging(s: &Settings) -> Result<(), ConfigError> {
    match s.str("logger").as_str() {
        "zap" => {}
        "capnslog" => {
            return Err(ConfigError::Invalid(
                "--logger=capnslog is removed in v3.5".to_owned(),
            ));
        }
        other => {
            return Err(ConfigError::Invalid(format!(
                "unknown logger option {}",
                go_quote(other)
            )));
        }
    }
    // zap's Level.UnmarshalText: lower or upper case, "" meaning info.
    let level = s.str("log-level");
    let known = ["debug", "info", "warn", "error", "dpanic", "panic", "fatal"];
    if !level.is_empty()
        && !known
            .iter()
            .any(|k| level == *k || level == k.to_ascii_uppercase())
    {
        return Err(ConfigError::Invalid(format!(
            "unrecognized level: {}",
            go_quote(&level)
        )));
    }
    let outputs = s.strings("log-outputs");
    if outputs.len() > 1 && outputs.iter().any(|o| o == "default") {
        return Err(ConfigError::Invalid(
            "multi logoutput for \"default\" is not supported yet".to_owned(),
        ));
    }
    // etcd 3.6 `logutil.ConvertToZapFormat`.
    match s.str("log-format").as_str() {
        "json" | "console" | "" => Ok(()),
        other => Err(ConfigError::Invalid(format!("unsupported log format: {other}"))),
    }
}

/// `embed.checkBindURLs`: listeners bind IP literals or `localhost`, never other host names.
fn check_bind_urls(urls: &[Url]) -> Result<(), ConfigError> {
    for u in urls.iter().filter(|u| !matches!(u.scheme(), "unix" | "unixs")) {
        if let Some(Host::Domain(d)) = u.host()
            && d != "localhost"
        {
            return Err(ConfigError::Invalid(format!(
                "expected IP in URL for binding ({})",
                go_url(u)
            )));
        }
    }
    Ok(())
}

/// `--auto-compaction-mode` and `--auto-compaction-retention` (etcd `Validate` and
/// `embed.parseCompactionRetention`): periodic takes a duration or a number of hours,
/// revision a number of revisions.
fn check_compaction(s: &Settings) -> Result<(), ConfigError> {
    let mode = s.str("auto-compaction-mode");
    let retention = s.str("auto-compaction-retention");
    let as_int = retention.parse::<i64>();
    let ok = match mode.as_str() {
        "" | "periodic" => as_int.is_ok() || super::duration::parse_go_duration(&retention).is_ok(),
        "revision" => as_int.is_ok(),
        _ => {
            return Err(ConfigError::Invalid(format!(
                "unknown auto-compaction-mode {}",
                go_quote(&mode)
            )));
        }
    };
    if !ok {
        return Err(ConfigError::Invalid(format!(
            "error parsing CompactionRetention: invalid auto-compaction-retention {} for mode {}",
            go_quote(&retention),
            go_quote(&mode)
        )));
    }
    Ok(())
}

/// `--tls-min-version` / `--tls-max-version` (etcd `tlsutil.GetTLSVersion` and `Validate`).
fn check_tls_versions(s: &Settings) -> Result<(), ConfigError> {
    let rank = |v: &str| match v {
        "" => Ok(0),
        "TLS1.2" => Ok(12),
        "TLS1.3" => Ok(13),
        _ => Err(ConfigError::Invalid(format!(
            "unexpected TLS version {} (must be one of: TLS1.2, TLS1.3)",
            go_quote(v)
        ))),
    };
    let (min, max) = (s.str("tls-min-version"), s.str("tls-max-version"));
    let (min_rank, max_rank) = (rank(&min)?, rank(&max)?);
    if max_rank != 0 && min_rank > max_rank {
        return Err(ConfigError::Invalid(format!(
            "min version ({min}) is greater than max version ({max})"
        )));
    }
    if min_rank == 13 && !s.strings("cipher-suites").is_empty() {
        return Err(ConfigError::Invalid(
            "cipher suites cannot be configured when only TLS1.3 is enabled".to_owned(),
        ));
    }
    Ok(())
}

/// etcd 3.6 feature gates: defaults, then the boolean `--experimental-*` flags, then
/// `--feature-gates` (`embed.SetFeatureGatesFromExperimentalFlags`).
fn resolve_feature_gates(s: &Settings) -> Result<BTreeMap<String, bool>, ConfigError> {
    let explicit = match s.get("feature-gates") {
        FlagValue::FeatureGates(g) => g,
        _ => Vec::new(),
    };
    let mut gates: BTreeMap<String, bool> = flags::FEATURE_GATES
        .iter()
        .map(|(name, default)| ((*name).to_owned(), *default))
        .collect();
    for (flag, gate) in flags::EXPERIMENTAL_FLAG_GATES.iter().filter(|(f, _)| s.is_set(f)) {
        let value = s.bool(flag);
        if let Some((_, g)) = explicit.iter().rev().find(|(k, _)| k == gate) {
            return Err(ConfigError::Invalid(format!(
                "cannot specify both flags: --{flag}={value} and --feature-gates={gate}={g} at the same time, \
                 please just use --feature-gates={gate}={g}"
            )));
        }
        gates.insert((*gate).to_owned(), value);
    }
    for (k, v) in explicit
        .into_iter()
        .filter(|(k, _)| k != "AllAlpha" && k != "AllBeta")
    {
        gates.insert(k, v);
    }
    let enabled = |g: &str| gates.get(g).copied().unwrap_or(false);
    if enabled("LeaseCheckpointPersist") && !enabled("LeaseCheckpoint") {
        return Err(ConfigError::Invalid(
            if s.is_set("experimental-enable-lease-checkpoint-persist") {
                "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint"
                .to_owned()
            } else {
                "enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint"
                    .to_owned()
            },
        ));
    }
    Ok(gates)
}

fn client_tls(s: &Settings) -> TlsConfig {
    TlsConfig {
        cert_file: s.path("cert-file"),
        key_file: s.path("key-file"),
        client_cert_file: s.path("client-cert-file"),
        client_key_file: s.path("client-key-file"),
        trusted_ca_file: s.path("trusted-ca-file"),
        client_cert_auth: s.bool("client-cert-auth"),
        auto_tls: s.bool("auto-tls"),
        crl_file: s.path("client-crl-file"),
        allowed_hostnames: s.strings("client-cert-allowed-hostname"),
        allowed_cns: Vec::new(),
        skip_client_san_verification: false,
    }
}

fn peer_tls(s: &Settings) -> TlsConfig {
    TlsConfig {
        cert_file: s.path("peer-cert-file"),
        key_file: s.path("peer-key-file"),
        client_cert_file: s.path("peer-client-cert-file"),
        client_key_file: s.path("peer-client-key-file"),
        trusted_ca_file: s.path("peer-trusted-ca-file"),
        client_cert_auth: s.bool("peer-client-cert-auth"),
        auto_tls: s.bool("peer-auto-tls"),
        crl_file: s.path("peer-crl-file"),
        allowed_hostnames: s.strings("peer-cert-allowed-hostname"),
        allowed_cns: s.strings("peer-cert-allowed-cn"),
        skip_client_san_verification: s.bool("peer-skip-client-san-verification")
            || s.bool("experimental-peer-skip-client-san-verification"),
    }
}
