//! `mainstayctl`: the operator's tool. Prints its version, reports on snapshot files
//! (`snapshot status`, etcdutl/etcdctl-compatible output), and bootstraps Kubernetes
//! control-plane nodes the way kubeadm does for etcd: `certs` (PKI), `certs check-expiration`
//! and `manifest` (the etcd static Pod). The logic lives in `mainstay::ctl`; this file only
//! maps command-line flags onto it. Join/leave and restore arrive with later issues.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};
use mainstay::bbolt::Reader;
use mainstay::ctl::certs::{self, PkiOptions};
use mainstay::ctl::manifest::{self, FlagNames, ManifestConfig};
use mainstay::ctl::{CtlError, expiration};
use mainstay::snapshot::status::{WriteOut, render, status};

fn main() -> ExitCode {
    let matches = Command::new("mainstayctl")
        .about("Mainstay operator tool: snapshot status, kubeadm-style PKI and etcd static Pod manifest")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .arg(
            Arg::new("version")
                .long("version")
                .action(ArgAction::SetTrue)
                .help("Print the version"),
        )
        .subcommand(Command::new("version").about("Print the version"))
        .subcommand(
            Command::new("snapshot")
                .about("Snapshot files (etcd's format)")
                .subcommand(
                    Command::new("status")
                        .about("Gets backend snapshot status of a given file (as etcdutl snapshot status)")
                        .arg(
                            Arg::new("file")
                                .required(true)
                                .value_parser(clap::value_parser!(PathBuf)),
                        )
                        .arg(
                            Arg::new("write-out")
                                .short('w')
                                .long("write-out")
                                .default_value("simple")
                                .value_parser(["simple", "json", "fields"])
                                .help("Output format"),
                        ),
                ),
        )
        .subcommand(certs_command())
        .subcommand(manifest_command())
        .get_matches();
    if let Some(("snapshot", sub)) = matches.subcommand()
        && let Some(("status", args)) = sub.subcommand()
    {
        return snapshot_status(args);
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
