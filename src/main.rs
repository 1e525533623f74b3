//! `mainstay`: the server. Accepts etcd's command line and `ETCD_*` environment verbatim.

use mainstay::config::{ParseOutcome, parse_with_env_vars};

fn main() {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    let config = match parse_with_env_vars(&args, &vars) {
        ParseOutcome::Run(config) => config,
        ParseOutcome::Exit { code, stdout, stderr } => {
            print!("{stdout}");
            eprint!("{stderr}");
            std::process::exit(code);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{},openraft=warn,fjall=warn,lsm_tree=warn",
            tracing_level(&config.log_level)
        ))
    });
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mainstay: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(mainstay::server::run(config)) {
        tracing::error!(error = format!("{e:#}"), "mainstay stopped");
        std::process::exit(1);
    }
}

/// etcd's `--log-level` (debug, info, warn, error, panic, fatal) as a tracing level.
fn tracing_level(etcd_level: &str) -> &'static str {
    match etcd_level {
        "debug" => "debug",
        "warn" => "warn",
        "error" | "panic" | "fatal" | "dpanic" => "error",
        _ => "info",
    }
}
