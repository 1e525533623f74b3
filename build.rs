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
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
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
