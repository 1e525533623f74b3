//! `mainstayctl`: the operator's tool. Prints its version and reports on snapshot files
//! (`snapshot status`, etcdutl/etcdctl-compatible output) and runs etcd's benchmark workloads
//! against any etcd v3 endpoint (`bench`, logic in `mainstay::bench`); node bootstrap,
//! restore and client commands arrive with later issues.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command, CommandFactory, FromArgMatches};
use mainstay::bbolt::Reader;
use mainstay::bench::{self, BenchArgs};
use mainstay::snapshot::status::{WriteOut, render, status};

fn main() -> ExitCode {
    let matches = Command::new("mainstayctl")
        .about("Mainstay operator tool (snapshot status; PKI bootstrap, manifests and restore in later releases)")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .arg(Arg::new("version").long("version").action(ArgAction::SetTrue).help("Print the version"))
        .subcommand(Command::new("version").about("Print the version"))
        .subcommand(
            Command::new("snapshot").about("Snapshot files (etcd's format)").subcommand(
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
            ),
        )
        .subcommand(BenchArgs::command().name("bench"))
        .get_matches();
    if let Some(("bench", sub)) = matches.subcommand() {
        return bench_main(sub);
    }
    if let Some(("snapshot", sub)) = matches.subcommand()
        && let Some(("status", args)) = sub.subcommand()
    {
        return snapshot_status(args);
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
