//! `mainstay`: the server. Accepts etcd's command line and `ETCD_*` environment verbatim.

use mainstay::config::{ParseOutcome, parse};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args, &|name| std::env::var(name).ok()) {
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
            config.log_level
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
        eprintln!("mainstay: {e:#}");
        std::process::exit(1);
    }
}
