//! Compiles the vendored etcd protos (and Mainstay's internal ones) with protox, a pure-Rust
//! protobuf compiler, so building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/kv.proto",
        "proto/auth.proto",
        "proto/rpc.proto",
        "proto/mainstay.proto",
        "proto/v3lock.proto",
        "proto/v3election.proto",
        "proto/peer.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    toolchain_version();
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}

/// Exposes the compiler's version as `MAINSTAY_RUSTC_VERSION` (`rust1.90.0`, shaped like Go's
/// `go1.23.7`) for the `etcd_server_go_version` metric.
fn toolchain_version() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let out = std::process::Command::new(rustc).arg("--version").output();
    if let Ok(out) = out
        && let Some(v) = String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1)
    {
        println!("cargo:rustc-env=MAINSTAY_RUSTC_VERSION=rust{v}");
    }
}
