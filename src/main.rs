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
    if let Err(e) = mainstay::logging::init(&config.logging) {
        eprintln!("mainstay: {e}");
        std::process::exit(1);
    }
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
