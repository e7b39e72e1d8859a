//! Compiles every contract under `proto/` with protox (no system `protoc`) and
//! writes the encoded FileDescriptorSet that reflection and the gateway serve.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    // Our contracts, plus google.rpc so that error details have generated types.
    let mut files = proto_files(&root.join("meshwork"))?;
    files.extend(proto_files(&root.join("google/rpc"))?);
    // protovalidate's rule types: the validator reads the rules into them.
    files.extend(proto_files(&root.join("buf"))?);
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    // Directories too, so that a new contract file triggers a rebuild.
    println!("cargo:rerun-if-changed={}", root.join("google").display());
    println!("cargo:rerun-if-changed={}", root.join("meshwork").display());
    println!("cargo:rerun-if-changed={}", root.join("buf").display());

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;

    // Encoded straight from the compiler: a round trip through prost_types
    // would drop custom options such as `google.api.http`.
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("meshwork_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Unimplemented methods answer UNIMPLEMENTED by default: a bare
        // server (the platform benchmark's baseline) implements one method.
        .generate_default_stubs(true)
        // prost's codec plus each request's `buf.validate` rules.
        .codec_path("crate::validate::codec::ValidatingCodec")
        // One file that nests every package's module, so that a new
        // contract needs no edit in lib.rs.
        .include_file("packages.rs")
        // `prost::Name` on every message: typed event payloads travel as
        // `google.protobuf.Any` and need their type URL.
        .compile_fds_with_config(compiler.file_descriptor_set(), {
            let mut config = tonic_prost_build::Config::new();
            config.enable_type_names();
            config
        })?;
    Ok(())
}

/// Every `.proto` below `dir`, sorted so that builds are reproducible.
fn proto_files(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "proto") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
