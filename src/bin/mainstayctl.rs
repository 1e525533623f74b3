//! `mainstayctl`: the operator's tool. Prints its version, reports on snapshot files
//! (`snapshot status`, etcdutl/etcdctl-compatible output), saves and restores them (`snapshot
//! save`, etcdctl's flags; `snapshot restore`, etcdutl's flags), and bootstraps Kubernetes
//! control-plane nodes the way kubeadm does for etcd: `certs` (PKI), `certs check-expiration`
//! and `manifest` (the etcd static Pod), and runs etcd's benchmark workloads against any etcd v3
//! endpoint (`bench`, logic in `mainstay::bench`). The logic lives in the library (`mainstay::ctl`,
//! `mainstay::snapshot`); this file only maps command-line flags onto it. Join/leave arrive
//! with a later issue.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};
use mainstay::bbolt::Reader;
use mainstay::bench::{self, BenchArgs};
use mainstay::cluster::bootstrap::Bootstrap;
use mainstay::config::duration::parse_go_duration;
use mainstay::config::{ParseOutcome, parse};
use mainstay::ctl::certs::{self, PkiOptions};
use mainstay::ctl::manifest::{self, FlagNames, ManifestConfig};
use mainstay::ctl::{CtlError, expiration};
use mainstay::proto::etcdserverpb::SnapshotRequest;
use mainstay::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use mainstay::snapshot::restore::{RestoreError, RestoreOptions, restore};
use mainstay::snapshot::save::{SaveError, save_stream};
use mainstay::snapshot::status::{WriteOut, render, status};

/// etcdutl's exit status for misused flags (`cobrautl.ExitBadArgs`).
const EXIT_BAD_ARGS: u8 = 128;

fn main() -> ExitCode {
    let matches = Command::new("mainstayctl")
        .about("Mainstay operator tool: snapshot save, status and restore; kubeadm-style PKI and etcd static Pod manifest")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .arg(Arg::new("version").long("version").action(ArgAction::SetTrue).help("Print the version"))
        .subcommand(Command::new("version").about("Print the version"))
        .subcommand(
            Command::new("snapshot")
                .about("Snapshot files (etcd's format)")
                .subcommand(
                    Command::new("status")
                        .about("Gets backend snapshot status of a given file (as etcdutl snapshot status)")
                        .arg(Arg::new("file").required(true).value_parser(clap::value_parser!(PathBuf)))
                        .arg(
                            Arg::new("write-out")
                                .short('w')
                                .long("write-out")
                                .default_value("simple")
                                .value_parser(["simple", "json", "fields"])
                                .help("Output format"),
                        ),
                )
                .subcommand(restore_command())
                .subcommand(save_command()),
        )
        .subcommand(certs_command())
        .subcommand(manifest_command())
        .subcommand(BenchArgs::command().name("bench"))
        .get_matches();
    if let Some(("bench", sub)) = matches.subcommand() {
        return bench_main(sub);
    }
    if let Some(("snapshot", sub)) = matches.subcommand() {
        match sub.subcommand() {
            Some(("status", args)) => return snapshot_status(args),
            Some(("restore", args)) => return snapshot_restore(args),
            Some(("save", args)) => return snapshot_save(args),
            _ => {}
        }
    }
    if let Some(("certs", args)) = matches.subcommand() {
        return report(match args.subcommand() {
            Some(("check-expiration", sub)) => check_expiration(sub),
            _ => certs(args),
        });
    }
    if let Some(("manifest", args)) = matches.subcommand() {
        return report(manifest(args));
    }
    if matches.get_flag("version")
        || matches.subcommand_name() == Some("version")
        || matches.subcommand_name().is_none()
    {
        println!("mainstayctl version: {}", env!("CARGO_PKG_VERSION"));
        println!("API version: 3.5");
    }
    ExitCode::SUCCESS
}

/// etcdutl `snapshot status`: integrity check, hash, revision, keys, size; `Error: …` and exit
/// status 1 on failure, as etcdctl/etcdutl report errors.
fn snapshot_status(args: &clap::ArgMatches) -> ExitCode {
    let how = match args.get_one::<String>("write-out").map(String::as_str) {
        Some("json") => WriteOut::Json,
        Some("fields") => WriteOut::Fields,
        _ => WriteOut::Simple,
    };
    let Some(path) = args.get_one::<PathBuf>("file") else {
        return ExitCode::FAILURE;
    };
    let result = std::fs::File::open(path)
        .map_err(|e| e.to_string())
        .and_then(|f| Reader::open(f).map_err(|e| e.to_string()))
        .and_then(|r| status(&r).map_err(|e| e.to_string()));
    match result {
        Ok(s) => {
            print!("{}", render(&s, how));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A cobra-style boolean flag: `--flag`, `--flag=true`, `--flag=false`.
fn bool_flag(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .num_args(0..=1)
        .require_equals(true)
        .default_value("false")
        .default_missing_value("true")
        .value_parser(clap::value_parser!(bool))
        .help(help)
}

fn string_flag(name: &'static str, default: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).default_value(default).help(help)
}

/// `snapshot restore` with etcdutl's flags and defaults (etcd 3.5
/// `etcdutl/etcdutl/snapshot_command.go` `NewSnapshotRestoreCommand`).
fn restore_command() -> Command {
    Command::new("restore")
        .about("Restores an etcd member snapshot to a Mainstay data directory (as etcdutl snapshot restore)")
        .arg(Arg::new("file").required(true).value_parser(clap::value_parser!(PathBuf)))
        .arg(
            Arg::new("data-dir")
                .long("data-dir")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("Path to the output data directory"),
        )
        .arg(
            Arg::new("wal-dir")
                .long("wal-dir")
                .help("Not supported: Mainstay keeps its log inside --data-dir"),
        )
        .arg(string_flag(
            "initial-cluster",
            "default=http://localhost:2380",
            "Initial cluster configuration for restore bootstrap",
        ))
        .arg(string_flag(
            "initial-cluster-token",
            "etcd-cluster",
            "Initial cluster token for the etcd cluster during restore bootstrap",
        ))
        .arg(string_flag(
            "initial-advertise-peer-urls",
            "http://localhost:2380",
            "List of this member's peer URLs to advertise to the rest of the cluster",
        ))
        .arg(string_flag("name", "default", "Human-readable name for this member"))
        .arg(bool_flag(
            "skip-hash-check",
            "Ignore snapshot integrity hash value (required if copied from data directory)",
        ))
        .arg(
            Arg::new("initial-memory-map-size")
                .long("initial-memory-map-size")
                .value_parser(clap::value_parser!(u64))
                .help("Accepted for etcdutl compatibility; Mainstay has no memory map to size"),
        )
        .arg(
            Arg::new("bump-revision")
                .long("bump-revision")
                .default_value("0")
                .value_parser(clap::value_parser!(u64))
                .help("How much to increase the latest revision after restore"),
        )
        .arg(bool_flag(
            "mark-compacted",
            "Mark the latest revision after restore as the point of scheduled compaction (required if --bump-revision > 0, disallowed otherwise)",
        ))
}

/// etcdutl `snapshot restore`: checks the flags as etcd does at bootstrap, restores, and logs
/// what it did on stderr; `Error: …` with exit status 1 on failure (128 for misused flags).
fn snapshot_restore(args: &clap::ArgMatches) -> ExitCode {
    let fail = |code: u8, e: &dyn std::fmt::Display| {
        eprintln!("Error: {e}");
        ExitCode::from(code)
    };
    let text = |name: &str| args.get_one::<String>(name).cloned().unwrap_or_default();
    let (Some(file), Some(data_dir)) = (
        args.get_one::<PathBuf>("file"),
        args.get_one::<PathBuf>("data-dir"),
    ) else {
        return fail(EXIT_BAD_ARGS, &"snapshot restore requires exactly one argument");
    };
    if args.get_one::<String>("wal-dir").is_some() {
        return fail(
            EXIT_BAD_ARGS,
            &"--wal-dir is not supported: Mainstay keeps its raft log inside --data-dir",
        );
    }
    let bump_revision = args.get_one::<u64>("bump-revision").copied().unwrap_or(0);
    let mark_compacted = args.get_flag("mark-compacted");
    if (bump_revision > 0) != mark_compacted {
        return fail(EXIT_BAD_ARGS, &RestoreError::BumpNeedsMarkCompacted);
    }
    // The server's own flag parser gives etcd's URL parsing and bootstrap checks.
    let server_args: Vec<String> = [
        "name",
        "initial-cluster",
        "initial-cluster-token",
        "initial-advertise-peer-urls",
    ]
    .iter()
    .flat_map(|f| [format!("--{f}"), text(f)])
    .chain([format!("--data-dir={}", data_dir.display())])
    .collect();
    let config = match parse(&server_args, &|_| None) {
        ParseOutcome::Run(c) => c,
        ParseOutcome::Exit { stderr, .. } => {
            return fail(1, &stderr.lines().next().unwrap_or("invalid flags").to_owned());
        }
    };
    let bootstrap = match Bootstrap::from_config(&config) {
        Ok(b) => b,
        Err(e) => return fail(1, &e),
    };
    let opts = RestoreOptions {
        data_dir: data_dir.clone(),
        bootstrap,
        skip_hash_check: args.get_flag("skip-hash-check"),
        bump_revision,
        mark_compacted,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,fjall=warn,lsm_tree=warn",
        ))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
    tracing::info!(path = %file.display(), data_dir = %data_dir.display(), "restoring snapshot");
    match restore(file, &opts) {
        Ok(r) => {
            if r.dropped_users > 0 || r.dropped_roles > 0 {
                tracing::warn!(
                    users = r.dropped_users,
                    roles = r.dropped_roles,
                    "the snapshot's auth users and roles are not restored: Mainstay does not implement etcd auth yet (auth was disabled in the snapshot)"
                );
            }
            tracing::info!(
                path = %file.display(),
                data_dir = %data_dir.display(),
                revision = r.revision.0,
                compact_revision = r.compact_revision.0,
                key_entries = r.key_entries,
                leases = r.leases,
                alarms = r.alarms,
                member_id = %opts.bootstrap.member,
                cluster_id = %opts.bootstrap.cluster,
                "restored snapshot"
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &e),
    }
}

/// `snapshot save` with etcdctl's connection flags and environment (`--endpoints`,
/// `--cacert/--cert/--key`, `--dial-timeout`; `ETCDCTL_*`).
fn save_command() -> Command {
    let env_flag = |name: &'static str, env: &'static str, help: &'static str| {
        Arg::new(name).long(name).env(env).help(help)
    };
    Command::new("save")
        .about("Stores an etcd node backend snapshot to a given file (as etcdctl snapshot save)")
        .arg(
            Arg::new("file")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf)),
        )
        .arg(
            env_flag("endpoints", "ETCDCTL_ENDPOINTS", "gRPC endpoint (exactly one)")
                .default_value("127.0.0.1:2379"),
        )
        .arg(env_flag(
            "cacert",
            "ETCDCTL_CACERT",
            "verify certificates of TLS-enabled secure servers using this CA bundle",
        ))
        .arg(env_flag(
            "cert",
            "ETCDCTL_CERT",
            "identify secure client using this TLS certificate file",
        ))
        .arg(env_flag(
            "key",
            "ETCDCTL_KEY",
            "identify secure client using this TLS key file",
        ))
        .arg(
            env_flag(
                "dial-timeout",
                "ETCDCTL_DIAL_TIMEOUT",
                "dial timeout for client connections",
            )
            .default_value("2s"),
        )
}

/// etcdctl `snapshot save`: one endpoint, stream to `FILE.part`, trailer check, rename;
/// prints `Snapshot saved at FILE` on success, `Error: …` and exit status 1 on failure.
fn snapshot_save(args: &clap::ArgMatches) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("Error: {e}");
        ExitCode::FAILURE
    };
    let text = |name: &str| args.get_one::<String>(name).cloned();
    let Some(file) = args.get_one::<PathBuf>("file") else {
        return fail(&"snapshot save expects one argument");
    };
    let endpoints: Vec<String> = text("endpoints")
        .unwrap_or_default()
        .split(',')
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    let [endpoint] = endpoints.as_slice() else {
        return fail(&SaveError::MultipleEndpoints(endpoints.clone()));
    };
    let dial_timeout = match parse_go_duration(&text("dial-timeout").unwrap_or_default()) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let tls = [text("cacert"), text("cert"), text("key")];
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let result = runtime.block_on(async {
        let channel = connect(endpoint, &tls, dial_timeout).await?;
        let stream = MaintenanceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .snapshot(SnapshotRequest {})
            .await
            .map_err(|s| s.message().to_owned())?
            .into_inner();
        save_stream(stream, file).await.map_err(|e| e.to_string())
    });
    match result {
        Ok(_) => {
            println!("Snapshot saved at {}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// A channel to `endpoint` (`host:port`, `http://…` or `https://…`); TLS when the scheme is
/// `https` or a TLS file is given (etcdctl's rule for scheme-less endpoints).
async fn connect(
    endpoint: &str,
    [cacert, cert, key]: &[Option<String>; 3],
    dial_timeout: std::time::Duration,
) -> Result<tonic::transport::Channel, String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let secure = endpoint.starts_with("https://")
        || (!endpoint.contains("://") && (cacert.is_some() || cert.is_some()));
    let url = match endpoint.split_once("://") {
        Some((_, rest)) if secure => format!("https://{rest}"),
        Some(_) => endpoint.to_owned(),
        None if secure => format!("https://{endpoint}"),
        None => format!("http://{endpoint}"),
    };
    let read = |p: &String| std::fs::read(p).map_err(|e| format!("{p}: {e}"));
    let mut ep = Endpoint::from_shared(url)
        .map_err(|e| e.to_string())?
        .connect_timeout(dial_timeout);
    if secure {
        let mut config = ClientTlsConfig::new();
        if let Some(ca) = cacert {
            config = config.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(c), Some(k)) = (cert, key) {
            config = config.identity(Identity::from_pem(read(c)?, read(k)?));
        }
        ep = ep.tls_config(config).map_err(|e| e.to_string())?;
    }
    ep.connect()
        .await
        .map_err(|e| format!("context deadline exceeded ({e})"))
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

/// `Error: …` on stderr and exit status 1 on failure.
fn report(result: Result<(), CtlError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cert_dir_arg() -> Arg {
    Arg::new("cert-dir")
        .long("cert-dir")
        .default_value(certs::DEFAULT_CERT_DIR)
        .value_parser(clap::value_parser!(PathBuf))
        .help("The path where certificates are stored")
}

fn node_name_arg() -> Arg {
    Arg::new("node-name")
        .long("node-name")
        .help("Node (member) name; default: the host name, lower-cased")
}

fn advertise_address_arg(multiple: bool) -> Arg {
    let arg = Arg::new("advertise-address")
        .long("advertise-address")
        .value_parser(clap::value_parser!(std::net::IpAddr))
        .help("The IP address this member advertises to clients and peers");
    if multiple {
        arg.action(ArgAction::Append).value_delimiter(',')
    } else {
        arg
    }
}

fn certs_command() -> Command {
    let list = |name: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .action(ArgAction::Append)
            .value_delimiter(',')
            .help(help)
    };
    Command::new("certs")
        .about("Create the etcd certificates of kubeadm's PKI layout (etcd/ca, etcd/server, etcd/peer, etcd/healthcheck-client, apiserver-etcd-client)")
        .arg(cert_dir_arg())
        .arg(node_name_arg())
        .arg(advertise_address_arg(true))
        .arg(list("server-cert-sans", "Extra SANs (IP addresses or DNS names) for the server certificate"))
        .arg(list("peer-cert-sans", "Extra SANs (IP addresses or DNS names) for the peer certificate"))
        .arg(
            Arg::new("renew")
                .long("renew")
                .action(ArgAction::SetTrue)
                .help("Re-issue every leaf certificate even if the existing one is valid (the CA is kept)"),
        )
        .subcommand(
            Command::new("check-expiration")
                .about("Check the expiration of the etcd certificates (as kubeadm certs check-expiration)")
                .arg(cert_dir_arg()),
        )
}

fn node_name(args: &ArgMatches) -> Result<String, CtlError> {
    args.get_one::<String>("node-name")
        .cloned()
        .or_else(manifest::default_node_name)
        .ok_or_else(|| CtlError::Config("cannot read the host name; give --node-name".to_owned()))
}

fn strings(args: &ArgMatches, name: &str) -> Vec<String> {
    args.get_many::<String>(name)
        .map(|v| v.cloned().collect())
        .unwrap_or_default()
}

fn certs(args: &ArgMatches) -> Result<(), CtlError> {
    let opts = PkiOptions {
        cert_dir: args.get_one::<PathBuf>("cert-dir").cloned().unwrap_or_default(),
        node_name: node_name(args)?,
        advertise_addresses: args
            .get_many::<std::net::IpAddr>("advertise-address")
            .map(|v| v.copied().collect())
            .unwrap_or_default(),
        server_cert_sans: strings(args, "server-cert-sans"),
        peer_cert_sans: strings(args, "peer-cert-sans"),
        renew: args.get_flag("renew"),
    };
    let steps = certs::ensure(&opts, time::OffsetDateTime::now_utc())?;
    let text: String = steps.iter().map(|s| format!("{s}\n")).collect();
    out(&text);
    Ok(())
}

fn check_expiration(args: &ArgMatches) -> Result<(), CtlError> {
    let dir = args.get_one::<PathBuf>("cert-dir").cloned().unwrap_or_default();
    out(&expiration::report(&dir, time::OffsetDateTime::now_utc())?);
    Ok(())
}

fn manifest_command() -> Command {
    let text = |name: &'static str, help: &'static str| Arg::new(name).long(name).help(help);
    let port = |name: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .value_parser(clap::value_parser!(u16))
            .help(help)
    };
    Command::new("manifest")
        .about("Write the etcd static Pod manifest (etcd.yaml) kubeadm would, running Mainstay")
        .arg(
            Arg::new("config")
                .long("config")
                .value_parser(clap::value_parser!(PathBuf))
                .help("YAML file with the settings below (keys as the flag names, plus extra-args); flags override it"),
        )
        .arg(node_name_arg())
        .arg(advertise_address_arg(false))
        .arg(text("image", "Container image (default ghcr.io/mainstay/mainstay:v<version>)"))
        .arg(text("data-dir", "Data directory on the host (default /var/lib/etcd)"))
        .arg(text("cert-dir", "PKI directory on the host (default /etc/kubernetes/pki)"))
        .arg(text("initial-cluster", "--initial-cluster (default <node-name>=https://<address>:2380)"))
        .arg(
            Arg::new("initial-cluster-state")
                .long("initial-cluster-state")
                .value_parser(["new", "existing"])
                .help("new (default) or existing (joining a running cluster)"),
        )
        .arg(
            Arg::new("etcd-flag-names")
                .long("etcd-flag-names")
                .value_parser(["3.5", "3.6"])
                .help("3.5: --experimental-* flags (kubeadm <= 1.33); 3.6: --feature-gates and 3.6 names (kubeadm 1.34)"),
        )
        .arg(port("client-port", "Client port (default 2379)"))
        .arg(port("peer-port", "Peer port (default 2380)"))
        .arg(port("metrics-port", "Metrics and probe port (default 2381)"))
        .arg(
            Arg::new("extra-arg")
                .long("extra-arg")
                .action(ArgAction::Append)
                .help("Extra server flag as name=value (repeatable; overrides a default, like etcd.local.extraArgs)"),
        )
        .arg(
            Arg::new("manifest-dir")
                .long("manifest-dir")
                .default_value(manifest::DEFAULT_MANIFEST_DIR)
                .value_parser(clap::value_parser!(PathBuf))
                .help("Directory kubelet reads static Pods from"),
        )
        .arg(
            Arg::new("dry-run")
                .long("dry-run")
                .action(ArgAction::SetTrue)
                .help("Print the manifest instead of writing it"),
        )
}

fn manifest(args: &ArgMatches) -> Result<(), CtlError> {
    let file = match args.get_one::<PathBuf>("config") {
        Some(path) => ManifestConfig::read(path)?,
        None => ManifestConfig::default(),
    };
    let mut extra_args = std::collections::BTreeMap::new();
    for kv in strings(args, "extra-arg") {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| CtlError::Config(format!("--extra-arg {kv:?}: want name=value")))?;
        extra_args.insert(k.trim_start_matches('-').to_owned(), v.to_owned());
    }
    let flags = ManifestConfig {
        node_name: args.get_one::<String>("node-name").cloned(),
        advertise_address: args.get_one::<std::net::IpAddr>("advertise-address").copied(),
        image: args.get_one::<String>("image").cloned(),
        data_dir: args.get_one::<String>("data-dir").cloned(),
        cert_dir: args.get_one::<String>("cert-dir").cloned(),
        initial_cluster: args.get_one::<String>("initial-cluster").cloned(),
        initial_cluster_state: args.get_one::<String>("initial-cluster-state").cloned(),
        etcd_flag_names: args
            .get_one::<String>("etcd-flag-names")
            .map(|s| s.parse::<FlagNames>())
            .transpose()
            .map_err(CtlError::Config)?,
        client_port: args.get_one::<u16>("client-port").copied(),
        peer_port: args.get_one::<u16>("peer-port").copied(),
        metrics_port: args.get_one::<u16>("metrics-port").copied(),
        extra_args,
    };
    let mut cfg = file.overridden_by(flags);
    if cfg.node_name.is_none() {
        cfg.node_name = manifest::default_node_name();
    }
    let yaml = manifest::render(&manifest::build(&cfg)?)?;
    if args.get_flag("dry-run") {
        out(&yaml);
        return Ok(());
    }
    let dir = args
        .get_one::<PathBuf>("manifest-dir")
        .cloned()
        .unwrap_or_default();
    let path = manifest::write(&dir, &yaml)?;
    out(&format!(
        "[etcd] Wrote static Pod manifest for a local etcd member to {:?}\n",
        path.display().to_string()
    ));
    Ok(())
}

/// `mainstayctl bench`: runs the workload and prints etcd's report; `Error: …` and exit status
/// 1 when it cannot run (failed requests are part of the report, not a failure).
fn bench_main(sub: &clap::ArgMatches) -> ExitCode {
    let args = match BenchArgs::from_arg_matches(sub) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::run(&args)) {
        Ok(result) => {
            print!(
                "{}",
                bench::render(&result, args.global.output, args.global.precise)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
