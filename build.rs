//! Compiles the vendored etcd protos (and Mainstay's internal ones) with protox, a pure-Rust
//! protobuf compiler, so building needs no system `protoc`. pbjson-build then generates serde
//! impls for etcd's packages in grpc-gateway's JSON mapping (proto field names on output, int64
//! as strings, bytes as base64, enums by name), used by the `/v3/*` JSON gateway.

use prost::Message;

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
    let encoded = fds.encode_to_vec();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .bytes(".")
        .compile_fds(fds)?;
    // etcd's gateway (grpc-gateway v1 `JSONPb{OrigName: true}`) prints proto field names and
    // ignores unknown input fields.
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(&[
            ".etcdserverpb",
            ".mvccpb",
            ".authpb",
            ".v3lockpb",
            ".v3electionpb",
        ])?;
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
