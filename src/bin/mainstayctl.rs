//! `mainstayctl`: the operator's tool. For now it prints its version; node bootstrap, data
//! tools and client commands arrive with later issues.

use clap::{Arg, ArgAction, Command};

fn main() {
    let matches = Command::new("mainstayctl")
        .about("Mainstay operator tool (PKI bootstrap, static-pod manifests, data tools: coming in later releases)")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .arg(Arg::new("version").long("version").action(ArgAction::SetTrue).help("Print the version"))
        .subcommand(Command::new("version").about("Print the version"))
        .get_matches();
    if matches.get_flag("version")
        || matches.subcommand_name() == Some("version")
        || matches.subcommand_name().is_none()
    {
        println!("mainstayctl version: {}", env!("CARGO_PKG_VERSION"));
        println!("API version: 3.5");
    }
}
