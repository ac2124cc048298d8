//! Generates the prost types from `proto/` with protox, a pure-Rust protobuf compiler, so no
//! `protoc` binary is needed on any machine that builds wsgate.
//!
//! With the `grpc` feature, tonic's service generator is added to the same run: the
//! `wsgate.v1.PushApi` client and server (`push_api_client`, `push_api_server`) land in the same
//! module as the messages. Without it only the messages are generated, and the crate does not
//! depend on tonic at all.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/wsgate/v1/worker.proto", "proto/wsgate/v1/api.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let mut config = prost_build::Config::new();
    // Payloads are `Bytes`, so a decoded frame's payload is shared, not copied, on its way to
    // every recipient.
    config.bytes(["."]);
    #[cfg(feature = "grpc")]
    config.service_generator(
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            // No `connect(addr)` helper: the client takes any channel, so this crate needs only
            // tonic's codegen, not its transport.
            .build_transport(false)
            .service_generator(),
    );
    config.compile_fds(descriptors)?;
    Ok(())
}
