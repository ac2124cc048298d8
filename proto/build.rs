//! Generates the prost types from `proto/` with protox, a pure-Rust protobuf compiler, so no
//! `protoc` binary is needed on any machine that builds wsgate.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/wsgate/v1/worker.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new()
        // Payloads are `Bytes`, so a decoded frame's payload is shared, not copied, on its way
        // to every recipient.
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
