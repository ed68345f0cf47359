//! Generates the prost types from `proto/reprise.proto` with the pure-Rust
//! `protox` compiler, so building needs no `protoc` binary.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/reprise.proto");
    let descriptors = protox::compile(["proto/reprise.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
