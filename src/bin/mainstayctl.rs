//! `mainstayctl`: the operator's tool. Prints its version, reports on snapshot files
//! (`snapshot status`, etcdutl/etcdctl-compatible output) and restores a data directory from one
//! (`snapshot restore`, etcdutl's flags); node bootstrap and client commands arrive with later
//! issues.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command};
use mainstay::bbolt::Reader;
use mainstay::cluster::bootstrap::Bootstrap;
use mainstay::config::{ParseOutcome, parse};
use mainstay::snapshot::restore::{RestoreError, RestoreOptions, restore};
use mainstay::snapshot::status::{WriteOut, render, status};

/// etcdutl's exit status for misused flags (`cobrautl.ExitBadArgs`).
const EXIT_BAD_ARGS: u8 = 128;

fn main() -> ExitCode {
    let matches = Command::new("mainstayctl")
        .about("Mainstay operator tool (snapshot status and restore; PKI bootstrap and manifests in later releases)")
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
                .subcommand(restore_command()),
        )
        .get_matches();
    if let Some(("snapshot", sub)) = matches.subcommand() {
        match sub.subcommand() {
            Some(("status", args)) => return snapshot_status(args),
            Some(("restore", args)) => return snapshot_restore(args),
            _ => {}
        }
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
